//! Access control lists, free of I/O: Kafka's ACL vocabulary (resource, pattern, operation and
//! permission types with their wire codes), one ACL ([`StandardAcl`]), the filters of
//! DescribeAcls and DeleteAcls ([`AclBindingFilter`]), the ACLs of the metadata log
//! ([`AclsImage`]) and the decision Kafka's `StandardAuthorizer` makes over them
//! ([`StandardAuthorizer`]).
//!
//! ```text
//!  CreateAcls / DeleteAcls ─► controller::{create_acls, delete_acls} ─► AccessControlEntryRecord,
//!                                                                      RemoveAccessControlEntryRecord
//!  every request ─► broker's authorizer ─► StandardAuthorizer::authorize(image.acls(), …)
//!                                            super user? ─► deny ACL? ─► allow ACL? ─►
//!                                            any ACL on the resource? (deny) ─► default rule
//! ```
//!
//! The decision follows Kafka's `StandardAuthorizerData`: an ACL applies to a resource when it
//! names it literally, is the literal wildcard `*`, or is a prefix of its name; a DENY that
//! applies wins over any ALLOW; an ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE, and
//! one of ALTER_CONFIGS implies DESCRIBE_CONFIGS; a resource with ACLs that grant nothing is
//! denied; one without any is allowed only with `allow.everyone.if.no.acl.found`.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::acl_index::AclIndex;

/// The resource name that matches every resource of its type (a LITERAL pattern).
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host that matches every host.
pub const WILDCARD_HOST: &str = "*";
/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value of a wire code; UNKNOWN for a code Kafka does not define (as Kafka's
            /// `fromCode`).
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name of the value (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value of a name in any case (as Kafka's `fromString`), in camel case (as
            /// `kafka-acls.sh` also takes it) or with `-` between words: `IDEMPOTENT_WRITE`,
            /// `IdempotentWrite`, `idempotent-write`.
            pub fn from_name(name: &str) -> Option<$name> {
                let wanted = squash(name);
                Self::ALL_VALUES.iter().copied().find(|v| squash(v.name()) == wanted)
            }

            pub fn is_unknown(self) -> bool {
                self == $name::Unknown
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// A name without case or word separators, for `from_name`: Kafka's tools take both
/// `IDEMPOTENT_WRITE` and the camel case `IdempotentWrite` (`SecurityUtils.operation`).
fn squash(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any type.
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        /// The cluster itself, named [`CLUSTER_NAME`].
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka's `PatternType`: how an ACL's resource name matches resources.
    PatternType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any pattern type, names compared exactly.
        Any = 1, "ANY";
        /// In filters only: every ACL that applies to the named resource.
        Match = 2, "MATCH";
        /// The resource of exactly this name, or every resource for `*`.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with this one.
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// KIP-939: a transactional id whose producer takes part in a two-phase commit.
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermissionType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: either.
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations that mean something on a resource of this type (Kafka's
    /// `AclEntry.supportedOperations`): what the `authorized_operations` bit fields of Metadata,
    /// DescribeGroups and DescribeCluster are made of. Empty for ANY and UNKNOWN.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

/// One ACL (Kafka's `StandardAcl`): who (`principal`, `User:<name>` or `User:*`) may or may
/// not (`permission_type`) do what (`operation`) from where (`host`, an IP address or `*`) on
/// which resources (`resource_type`, `resource_name`, `pattern_type`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StandardAcl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl StandardAcl {
    /// Whether this ACL's pattern covers the resource `name` of its type (Kafka's
    /// `StandardAuthorizerData.checkSection` matching).
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => {
                self.resource_name == name || self.resource_name == WILDCARD_RESOURCE
            }
            PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
            _ => false,
        }
    }

    /// What this ACL says of `operation` by `principals` from `host` on a resource it covers:
    /// `None` when it does not apply (Kafka's `findResult`).
    fn result_for(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
    ) -> Option<AclPermissionType> {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if self.host != WILDCARD_HOST && self.host != host {
            return None;
        }
        if self.operation != AclOperation::All {
            let applies = if self.permission_type == AclPermissionType::Allow {
                use AclOperation::*;
                match operation {
                    Describe => matches!(self.operation, Describe | Read | Write | Delete | Alter),
                    DescribeConfigs => matches!(self.operation, DescribeConfigs | AlterConfigs),
                    op => self.operation == op,
                }
            } else {
                self.operation == operation
            };
            if !applies {
                return None;
            }
        }
        match self.permission_type {
            p @ (AclPermissionType::Allow | AclPermissionType::Deny) => Some(p),
            _ => None,
        }
    }
}

impl std::fmt::Display for StandardAcl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
            self.principal,
            self.host,
            self.operation,
            self.permission_type,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// Why a new ACL cannot be created (Kafka's `AclControlManager.validateNewAcl` and the broker's
/// checks before it): INVALID_REQUEST with this message.
pub fn validate_new_acl(acl: &StandardAcl) -> Result<(), String> {
    match acl.resource_type {
        ResourceType::Unknown | ResourceType::Any => {
            return Err(format!("Invalid resourceType {}", acl.resource_type))
        }
        _ => {}
    }
    match acl.pattern_type {
        PatternType::Literal | PatternType::Prefixed => {}
        other => return Err(format!("Invalid patternType {other}")),
    }
    match acl.operation {
        AclOperation::Unknown | AclOperation::Any => {
            return Err(format!("Invalid operation {}", acl.operation))
        }
        _ => {}
    }
    match acl.permission_type {
        AclPermissionType::Allow | AclPermissionType::Deny => {}
        other => return Err(format!("Invalid permissionType {other}")),
    }
    if acl.resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if acl.resource_name.is_empty() {
        return Err("Resource name should not be empty".to_string());
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => {
            return Err(format!(
                "Could not parse principal from `{}` (no colon is present separating the \
                 principal type from the principal name)",
                acl.principal
            ))
        }
    }
    Ok(())
}

/// A filter of DescribeAcls and DeleteAcls (Kafka's `AclBindingFilter`): `None` strings match
/// anything; ANY types match any value; a MATCH pattern type matches every ACL that applies to
/// the named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AclBindingFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        }
    }

    /// A filter with an UNKNOWN field matches nothing and is refused (Kafka's `isUnknown`).
    pub fn is_unknown(&self) -> bool {
        self.resource_type.is_unknown()
            || self.pattern_type.is_unknown()
            || self.operation.is_unknown()
            || self.permission_type.is_unknown()
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &StandardAcl) -> bool {
        self.matches_pattern(acl) && self.matches_entry(acl)
    }

    fn matches_pattern(&self, acl: &StandardAcl) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type {
            return *name == acl.resource_name;
        }
        // MATCH: the ACLs that apply to the resource `name`.
        acl.covers(name)
    }

    fn matches_entry(&self, acl: &StandardAcl) -> bool {
        if self.principal.as_ref().is_some_and(|p| *p != acl.principal) {
            return false;
        }
        if self.host.as_ref().is_some_and(|h| *h != acl.host) {
            return false;
        }
        if self.operation != AclOperation::Any && self.operation != acl.operation {
            return false;
        }
        self.permission_type == AclPermissionType::Any
            || self.permission_type == acl.permission_type
    }
}

/// How many pieces the ACLs by id are cut into, by the id's first byte (so that the pieces in
/// turn list the ids in order): a delta copies only the piece an ACL record changes.
const ID_SHARDS: usize = 64;

fn id_shard(id: &Uuid) -> usize {
    usize::from(id.as_bytes()[0]) * ID_SHARDS / 256
}

/// The ACLs of the metadata log (Kafka's `AclsImage`), by id and indexed by resource
/// ([`AclIndex`]) for the authorizer's checks.
#[derive(Debug, Clone, Default)]
pub struct AclsImage {
    /// The ACLs by id, in [`ID_SHARDS`] pieces shared with the images before and after (empty
    /// until the first ACL). The ACLs are shared with the index.
    by_id: Vec<Arc<BTreeMap<Uuid, Arc<StandardAcl>>>>,
    /// How many ACLs `by_id` holds.
    count: usize,
    /// The same ACLs by resource type and pattern: kept in step with `by_id` by
    /// [`AclsImage::insert`] and [`AclsImage::remove`], the only ways in and out.
    index: AclIndex,
}

/// Two images are equal when they hold the same ACLs under the same ids (the index follows).
impl PartialEq for AclsImage {
    fn eq(&self, other: &AclsImage) -> bool {
        self.count == other.count && self.iter().eq(other.iter())
    }
}

impl Eq for AclsImage {}

impl AclsImage {
    /// Adds (or replaces) the ACL of `id`.
    pub(crate) fn insert(&mut self, id: Uuid, acl: StandardAcl) {
        self.remove(&id);
        let acl = Arc::new(acl);
        self.index.insert(id, &acl);
        if self.by_id.is_empty() {
            self.by_id.resize_with(ID_SHARDS, Default::default);
        }
        Arc::make_mut(&mut self.by_id[id_shard(&id)]).insert(id, acl);
        self.count += 1;
    }

    /// Removes the ACL of `id`, returning it.
    pub(crate) fn remove(&mut self, id: &Uuid) -> Option<Arc<StandardAcl>> {
        if !self.contains_id(id) {
            return None;
        }
        let acl = Arc::make_mut(&mut self.by_id[id_shard(id)]).remove(id)?;
        self.count -= 1;
        self.index.remove(*id, &acl);
        Some(acl)
    }

    /// Whether an ACL of this id exists.
    pub fn contains_id(&self, id: &Uuid) -> bool {
        self.by_id
            .get(id_shard(id))
            .is_some_and(|m| m.contains_key(id))
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Every ACL with its id, in the order of the ids.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &StandardAcl)> {
        self.by_id
            .iter()
            .flat_map(|m| m.iter())
            .map(|(id, acl)| (id, &**acl))
    }

    /// Whether an identical ACL exists (creating it again adds nothing, as in Kafka).
    pub fn contains(&self, acl: &StandardAcl) -> bool {
        self.index
            .group(acl.resource_type, acl.pattern_type, &acl.resource_name)
            .iter()
            .any(|(_, a)| **a == *acl)
            || (!matches!(
                acl.pattern_type,
                PatternType::Literal | PatternType::Prefixed
            ) && self.iter().any(|(_, a)| a == acl))
    }

    /// The ACLs `filter` matches, in a stable order (resource, then entry).
    pub fn matching<'a>(&'a self, filter: &AclBindingFilter) -> Vec<(&'a Uuid, &'a StandardAcl)> {
        let mut found: Vec<_> = self.iter().filter(|(_, a)| filter.matches(a)).collect();
        found.sort_by(|a, b| a.1.cmp(b.1));
        found
    }
}

/// What decided an authorization (the `based on rule` of Kafka's audit log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchingRule {
    /// The principal is in `super.users`.
    SuperUser,
    /// No ACL applies to the resource: `allow.everyone.if.no.acl.found`.
    DefaultAllow,
    /// ACLs exist on the resource but none grants the operation, or none exists and
    /// `allow.everyone.if.no.acl.found` is off.
    DefaultDeny,
    /// This ACL allowed it.
    Allow(StandardAcl),
    /// This ACL denied it.
    Deny(StandardAcl),
}

impl MatchingRule {
    pub fn allowed(&self) -> bool {
        matches!(
            self,
            MatchingRule::SuperUser | MatchingRule::DefaultAllow | MatchingRule::Allow(_)
        )
    }
}

impl std::fmt::Display for MatchingRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchingRule::SuperUser => f.write_str("SuperUser"),
            MatchingRule::DefaultAllow => f.write_str("DefaultAllow"),
            MatchingRule::DefaultDeny => f.write_str("DefaultDeny"),
            MatchingRule::Allow(acl) | MatchingRule::Deny(acl) => {
                write!(f, "MatchingAcl(acl={acl})")
            }
        }
    }
}

/// Kafka's `StandardAuthorizer` settings and decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandardAuthorizer {
    /// `super.users`: principals (`User:<name>`) allowed everything, whatever the ACLs say.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: a resource without any ACL is open to all.
    pub allow_everyone_if_no_acl_found: bool,
}

impl StandardAuthorizer {
    /// The principals of a `super.users` value: `;`-separated, blanks trimmed.
    pub fn parse_super_users(value: &str) -> Vec<String> {
        value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }

    /// May `principal` (`User:<name>`) from `host` (an IP address) do `operation` on the
    /// resource `resource_type`/`name` (a literal name)?
    pub fn authorize(
        &self,
        acls: &AclsImage,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> MatchingRule {
        if self.is_super_user(principal) {
            return MatchingRule::SuperUser;
        }
        let covering = acls
            .index
            .covering(resource_type, name)
            .flatten()
            .map(|(_, acl)| &**acl);
        self.decide(covering, principal, host, operation)
    }

    /// The decision over the ACLs that cover the resource (Kafka's `checkSection` loop): a
    /// DENY that applies wins; else an ALLOW that applies; else the default rule, which only
    /// allows a resource no ACL covers.
    fn decide<'a>(
        &self,
        covering: impl IntoIterator<Item = &'a StandardAcl>,
        principal: &str,
        host: &str,
        operation: AclOperation,
    ) -> MatchingRule {
        let mut allow = None;
        let mut has_resource_acls = false;
        for acl in covering {
            has_resource_acls = true;
            match acl.result_for(principal, host, operation) {
                Some(AclPermissionType::Deny) => return MatchingRule::Deny(acl.clone()),
                Some(AclPermissionType::Allow) if allow.is_none() => allow = Some(acl),
                _ => {}
            }
        }
        match allow {
            Some(acl) => MatchingRule::Allow(acl.clone()),
            None if !has_resource_acls && self.allow_everyone_if_no_acl_found => {
                MatchingRule::DefaultAllow
            }
            None => MatchingRule::DefaultDeny,
        }
    }

    /// May `principal` do `operation` on at least one resource of `resource_type` (Kafka's
    /// `Authorizer.authorizeByResourceType`: an ALLOW on some name that no DENY covers)? Used
    /// where Kafka asks "may this client write to any topic" (an idempotent producer without
    /// IDEMPOTENT_WRITE on the cluster).
    pub fn authorize_by_resource_type(
        &self,
        acls: &AclsImage,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        // Super users, and the default rule on a name no ACL names.
        if self
            .authorize(acls, principal, host, operation, resource_type, "hardcode")
            .allowed()
        {
            return true;
        }
        let mut deny_literal = std::collections::HashSet::new();
        let mut deny_prefixed = std::collections::HashSet::new();
        let mut allow = Vec::new();
        let mut wildcard_allow = false;
        for acl in acls.index.of_type(resource_type) {
            if (acl.host != host && acl.host != WILDCARD_HOST)
                || (acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL)
                || (acl.operation != operation && acl.operation != AclOperation::All)
            {
                continue;
            }
            match (acl.permission_type, acl.pattern_type) {
                (AclPermissionType::Deny, PatternType::Literal) => {
                    if acl.resource_name == WILDCARD_RESOURCE {
                        return false;
                    }
                    deny_literal.insert(acl.resource_name.as_str());
                }
                (AclPermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(acl.resource_name.as_str());
                }
                // Not at once: a DENY on `*` met later still wins (as in Kafka).
                (AclPermissionType::Allow, PatternType::Literal)
                    if acl.resource_name == WILDCARD_RESOURCE =>
                {
                    wildcard_allow = true
                }
                (AclPermissionType::Allow, pattern) => allow.push((pattern, acl)),
                _ => {}
            }
        }
        wildcard_allow
            || allow.iter().any(|(pattern, acl)| {
                let name = acl.resource_name.as_str();
                if *pattern == PatternType::Literal && deny_literal.contains(name) {
                    return false;
                }
                !name
                    .char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .any(|prefix| deny_prefixed.contains(prefix))
            })
    }

    /// The bit field of the operations of `resource_type` that `principal` may do on `name`
    /// (Kafka's `authorizedOperations`: bit `code` set for each allowed operation).
    pub fn authorized_operations(
        &self,
        acls: &AclsImage,
        principal: &str,
        host: &str,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        if self.is_super_user(principal) {
            return all_operations(resource_type);
        }
        // One lookup of the covering ACLs for every operation.
        let covering: Vec<&StandardAcl> = acls
            .index
            .covering(resource_type, name)
            .flatten()
            .map(|(_, acl)| &**acl)
            .collect();
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| {
                self.decide(covering.iter().copied(), principal, host, **op)
                    .allowed()
            })
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// The bit field of every supported operation of `resource_type`: what Kafka answers for
/// `authorized_operations` when no authorizer is configured.
pub fn all_operations(resource_type: ResourceType) -> i32 {
    resource_type
        .supported_operations()
        .iter()
        .fold(0, |bits, op| bits | (1 << op.code()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    use AclOperation::*;
    use AclPermissionType::{Allow, Deny};
    use ResourceType::{Cluster, Group, Topic, TransactionalId};

    pub(crate) fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission_type: AclPermissionType,
    ) -> StandardAcl {
        StandardAcl {
            resource_type,
            resource_name: name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission_type,
        }
    }

    /// The id of the `i`th ACL of a test: ids spread over the pieces of the ACLs by id, and
    /// not in the order of `i`.
    fn test_id(i: usize) -> Uuid {
        let i = i as u128 + 1;
        Uuid::from_u128(((i * 0x9e) % 0x100) << 120 | i)
    }

    fn image(acls: &[StandardAcl]) -> AclsImage {
        let mut image = AclsImage::default();
        for (i, a) in acls.iter().enumerate() {
            image.insert(test_id(i), a.clone());
        }
        image
    }

    fn authorizer(super_users: &[&str], allow_if_none: bool) -> StandardAuthorizer {
        StandardAuthorizer {
            super_users: super_users.iter().map(|s| s.to_string()).collect(),
            allow_everyone_if_no_acl_found: allow_if_none,
        }
    }

    fn allowed(
        a: &StandardAuthorizer,
        acls: &AclsImage,
        principal: &str,
        op: AclOperation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        a.authorize(acls, principal, "127.0.0.1", op, rt, name)
            .allowed()
    }

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(Topic.code(), 2);
        assert_eq!(TransactionalId.code(), 5);
        assert_eq!(ResourceType::from_code(7), ResourceType::User);
        assert_eq!(ResourceType::from_code(42), ResourceType::Unknown);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(
            PatternType::from_name("prefixed"),
            Some(PatternType::Prefixed)
        );
        assert_eq!(IdempotentWrite.code(), 12);
        assert_eq!(
            AclOperation::from_name("describe_configs"),
            Some(DescribeConfigs)
        );
        assert_eq!(Allow.code(), 3);
        assert_eq!(Deny.code(), 2);
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), *op);
        }
    }

    #[test]
    fn names_parse_as_kafkas_tools_take_them() {
        for name in ["IdempotentWrite", "IDEMPOTENT_WRITE", "idempotent-write"] {
            assert_eq!(AclOperation::from_name(name), Some(IdempotentWrite));
        }
        assert_eq!(AclOperation::from_name(" Read "), Some(Read));
        assert_eq!(AclOperation::from_name("reed"), None);
        assert_eq!(
            ResourceType::from_name("transactional-id"),
            Some(TransactionalId)
        );
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_name(op.name()), Some(*op));
        }
    }

    /// Kafka's StandardAuthorizerTest: literal, prefixed and wildcard resources; DENY wins.
    #[test]
    fn deny_wins_over_allow_on_literal_prefixed_and_wildcard_resources() {
        let acls = image(&[
            acl(
                Topic,
                "foo",
                PatternType::Prefixed,
                "User:alice",
                "*",
                Read,
                Allow,
            ),
            acl(
                Topic,
                "foobar",
                PatternType::Literal,
                "User:alice",
                "*",
                Read,
                Deny,
            ),
            acl(
                Topic,
                "*",
                PatternType::Literal,
                "User:bob",
                "*",
                All,
                Allow,
            ),
            acl(
                Topic,
                "secret",
                PatternType::Prefixed,
                "User:bob",
                "*",
                Write,
                Deny,
            ),
        ]);
        let a = authorizer(&[], false);
        assert!(allowed(&a, &acls, "User:alice", Read, Topic, "foo"));
        assert!(allowed(&a, &acls, "User:alice", Read, Topic, "food"));
        assert!(!allowed(&a, &acls, "User:alice", Read, Topic, "foobar"));
        assert!(!allowed(&a, &acls, "User:alice", Read, Topic, "fo"));
        assert!(!allowed(&a, &acls, "User:alice", Write, Topic, "foo"));
        assert!(allowed(&a, &acls, "User:bob", Write, Topic, "anything"));
        assert!(allowed(&a, &acls, "User:bob", Read, Topic, "secret-1"));
        assert!(!allowed(&a, &acls, "User:bob", Write, Topic, "secret-1"));
        let rule = a.authorize(&acls, "User:bob", "10.0.0.1", Write, Topic, "secrets");
        assert!(matches!(rule, MatchingRule::Deny(ref d) if d.resource_name == "secret"));
        assert_eq!(
            a.authorize(&acls, "User:carol", "10.0.0.1", Read, Group, "g"),
            MatchingRule::DefaultDeny
        );
    }

    #[test]
    fn super_users_pass_every_deny() {
        let acls = image(&[acl(
            Topic,
            "*",
            PatternType::Literal,
            "User:*",
            "*",
            All,
            Deny,
        )]);
        let a = authorizer(&["User:admin"], false);
        assert_eq!(
            a.authorize(&acls, "User:admin", "10.0.0.1", Write, Topic, "t"),
            MatchingRule::SuperUser
        );
        assert!(!allowed(&a, &acls, "User:other", Write, Topic, "t"));
        assert_eq!(
            StandardAuthorizer::parse_super_users(" User:a ;User:b;; "),
            vec!["User:a", "User:b"]
        );
    }

    /// A resource without ACLs follows `allow.everyone.if.no.acl.found`; one with ACLs that
    /// grant nothing to this principal is denied either way.
    #[test]
    fn the_default_rule_applies_only_to_resources_without_acls() {
        let acls = image(&[acl(
            Topic,
            "t1",
            PatternType::Literal,
            "User:alice",
            "*",
            Read,
            Allow,
        )]);
        let open = authorizer(&[], true);
        assert_eq!(
            open.authorize(&acls, "User:bob", "10.0.0.1", Read, Topic, "t2"),
            MatchingRule::DefaultAllow
        );
        assert_eq!(
            open.authorize(&acls, "User:bob", "10.0.0.1", Read, Topic, "t1"),
            MatchingRule::DefaultDeny
        );
        assert!(!allowed(
            &authorizer(&[], false),
            &acls,
            "User:bob",
            Read,
            Topic,
            "t2"
        ));
    }

    /// ALLOW READ/WRITE/DELETE/ALTER imply DESCRIBE; ALLOW ALTER_CONFIGS implies
    /// DESCRIBE_CONFIGS; a DENY implies nothing but its own operation.
    #[test]
    fn implied_operations() {
        let a = authorizer(&[], false);
        for op in [Read, Write, Delete, Alter] {
            let acls = image(&[acl(
                Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "*",
                op,
                Allow,
            )]);
            assert!(allowed(&a, &acls, "User:u", Describe, Topic, "t"), "{op}");
            assert!(
                !allowed(&a, &acls, "User:u", DescribeConfigs, Topic, "t"),
                "{op}"
            );
        }
        let acls = image(&[acl(
            Topic,
            "t",
            PatternType::Literal,
            "User:u",
            "*",
            AlterConfigs,
            Allow,
        )]);
        assert!(allowed(&a, &acls, "User:u", DescribeConfigs, Topic, "t"));
        assert!(!allowed(&a, &acls, "User:u", Describe, Topic, "t"));
        let acls = image(&[
            acl(Topic, "t", PatternType::Literal, "User:u", "*", All, Allow),
            acl(Topic, "t", PatternType::Literal, "User:u", "*", Read, Deny),
        ]);
        assert!(allowed(&a, &acls, "User:u", Describe, Topic, "t"));
        assert!(!allowed(&a, &acls, "User:u", Read, Topic, "t"));
    }

    #[test]
    fn hosts_and_wildcard_principals() {
        let acls = image(&[
            acl(
                Group,
                "g",
                PatternType::Literal,
                "User:*",
                "10.0.0.1",
                Read,
                Allow,
            ),
            acl(
                Group,
                "g",
                PatternType::Literal,
                "User:eve",
                "*",
                Read,
                Deny,
            ),
        ]);
        let a = authorizer(&[], false);
        assert!(a
            .authorize(&acls, "User:x", "10.0.0.1", Read, Group, "g")
            .allowed());
        assert!(!a
            .authorize(&acls, "User:x", "10.0.0.2", Read, Group, "g")
            .allowed());
        assert!(!a
            .authorize(&acls, "User:eve", "10.0.0.1", Read, Group, "g")
            .allowed());
    }

    #[test]
    fn authorized_operations_bit_fields() {
        let acls = image(&[
            acl(Topic, "t", PatternType::Literal, "User:u", "*", Read, Allow),
            acl(
                Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                "User:u",
                "*",
                Create,
                Allow,
            ),
        ]);
        let a = authorizer(&[], false);
        let topic = a.authorized_operations(&acls, "User:u", "h", Topic, "t");
        assert_eq!(
            topic,
            (1 << 3) | (1 << 8),
            "READ and the DESCRIBE it implies"
        );
        let cluster = a.authorized_operations(&acls, "User:u", "h", Cluster, CLUSTER_NAME);
        assert_eq!(cluster, 1 << 5);
        assert_eq!(
            all_operations(ResourceType::TransactionalId),
            (1 << 8) | (1 << 4) | (1 << 15)
        );
        let admin = authorizer(&["User:root"], false);
        assert_eq!(
            admin.authorized_operations(&acls, "User:root", "h", Group, "g"),
            all_operations(Group)
        );
    }

    /// Kafka's AuthorizerTest for `authorizeByResourceType`: allowed when some ALLOW no DENY
    /// dominates exists.
    #[test]
    fn authorize_by_resource_type() {
        let a = authorizer(&[], false);
        let by_type = |acls: &[StandardAcl]| {
            a.authorize_by_resource_type(&image(acls), "User:u", "10.0.0.1", Write, Topic)
        };
        assert!(!by_type(&[]));
        assert!(by_type(&[acl(
            Topic,
            "t",
            PatternType::Literal,
            "User:u",
            "*",
            Write,
            Allow
        )]));
        assert!(!by_type(&[
            acl(
                Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "*",
                Write,
                Allow
            ),
            acl(Topic, "t", PatternType::Literal, "User:u", "*", Write, Deny),
        ]));
        assert!(!by_type(&[
            acl(
                Topic,
                "abc",
                PatternType::Prefixed,
                "User:u",
                "*",
                Write,
                Allow
            ),
            acl(Topic, "ab", PatternType::Prefixed, "User:*", "*", All, Deny),
        ]));
        assert!(by_type(&[
            acl(
                Topic,
                "abc",
                PatternType::Prefixed,
                "User:u",
                "*",
                Write,
                Allow
            ),
            acl(
                Topic,
                "abd",
                PatternType::Prefixed,
                "User:*",
                "*",
                All,
                Deny
            ),
        ]));
        assert!(!by_type(&[
            acl(
                Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "*",
                Write,
                Allow
            ),
            acl(Topic, "*", PatternType::Literal, "User:u", "*", Write, Deny),
        ]));
        assert!(by_type(&[acl(
            Topic,
            "*",
            PatternType::Literal,
            "User:*",
            "*",
            All,
            Allow
        )]));
        assert!(!by_type(&[acl(
            Topic,
            "t",
            PatternType::Literal,
            "User:u",
            "10.9.9.9",
            Write,
            Allow
        )]));
        // A DENY on `*` wins over an ALLOW on `*`, whichever came first.
        for (first, second) in [(Allow, Deny), (Deny, Allow)] {
            assert!(!by_type(&[
                acl(
                    Topic,
                    "*",
                    PatternType::Literal,
                    "User:u",
                    "*",
                    Write,
                    first
                ),
                acl(
                    Topic,
                    "*",
                    PatternType::Literal,
                    "User:u",
                    "*",
                    Write,
                    second
                ),
            ]));
        }
        let open = authorizer(&[], true);
        assert!(open.authorize_by_resource_type(&image(&[]), "User:u", "h", Write, Topic));
        let root = authorizer(&["User:u"], false);
        assert!(root.authorize_by_resource_type(
            &image(&[acl(
                Topic,
                "*",
                PatternType::Literal,
                "User:*",
                "*",
                All,
                Deny
            )]),
            "User:u",
            "h",
            Write,
            Topic
        ));
    }

    /// Kafka's ResourcePatternFilterTest and AclBindingFilterTest cases.
    #[test]
    fn filters_match_as_kafkas() {
        let prefixed = acl(
            Topic,
            "pay",
            PatternType::Prefixed,
            "User:u",
            "*",
            Read,
            Allow,
        );
        let literal = acl(
            Topic,
            "payments",
            PatternType::Literal,
            "User:u",
            "*",
            Read,
            Allow,
        );
        let wildcard = acl(Topic, "*", PatternType::Literal, "User:v", "h", Write, Deny);
        let filter = |name: Option<&str>, pattern: PatternType| AclBindingFilter {
            resource_type: Topic,
            resource_name: name.map(str::to_string),
            pattern_type: pattern,
            ..AclBindingFilter::any()
        };
        let matches = |f: &AclBindingFilter| [&prefixed, &literal, &wildcard].map(|a| f.matches(a));
        assert_eq!(matches(&AclBindingFilter::any()), [true, true, true]);
        assert_eq!(
            matches(&filter(Some("payments"), PatternType::Match)),
            [true, true, true]
        );
        assert_eq!(
            matches(&filter(Some("payments"), PatternType::Any)),
            [false, true, false]
        );
        assert_eq!(
            matches(&filter(Some("pay"), PatternType::Any)),
            [true, false, false]
        );
        assert_eq!(
            matches(&filter(Some("pay"), PatternType::Literal)),
            [false, false, false]
        );
        assert_eq!(
            matches(&filter(None, PatternType::Prefixed)),
            [true, false, false]
        );
        assert_eq!(
            matches(&filter(Some("other"), PatternType::Match)),
            [false, false, true]
        );
        let by_entry = AclBindingFilter {
            principal: Some("User:v".into()),
            host: Some("h".into()),
            operation: Write,
            permission_type: Deny,
            ..AclBindingFilter::any()
        };
        assert_eq!(matches(&by_entry), [false, false, true]);
        assert!(!AclBindingFilter::any().is_unknown());
        assert!(AclBindingFilter {
            operation: AclOperation::Unknown,
            ..AclBindingFilter::any()
        }
        .is_unknown());
    }

    #[test]
    fn new_acls_are_validated_as_kafka_does() {
        let good = acl(Topic, "t", PatternType::Literal, "User:u", "*", Read, Allow);
        assert_eq!(validate_new_acl(&good), Ok(()));
        let bad = [
            StandardAcl {
                resource_type: ResourceType::Any,
                ..good.clone()
            },
            StandardAcl {
                pattern_type: PatternType::Match,
                ..good.clone()
            },
            StandardAcl {
                operation: AclOperation::Any,
                ..good.clone()
            },
            StandardAcl {
                permission_type: AclPermissionType::Any,
                ..good.clone()
            },
            StandardAcl {
                resource_name: String::new(),
                ..good.clone()
            },
            StandardAcl {
                principal: "alice".into(),
                ..good.clone()
            },
            StandardAcl {
                resource_type: Cluster,
                resource_name: "c".into(),
                ..good.clone()
            },
        ];
        for acl in bad {
            assert!(validate_new_acl(&acl).is_err(), "{acl:?}");
        }
    }

    pub(crate) fn acl_strategy() -> impl Strategy<Value = StandardAcl> {
        (
            prop::sample::select(vec![Topic, Group, TransactionalId]),
            prop::sample::select(vec!["*", "a", "ab", "abc", "b"]),
            prop::sample::select(vec![PatternType::Literal, PatternType::Prefixed]),
            prop::sample::select(vec!["User:*", "User:u", "User:v"]),
            prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
            prop::sample::select(vec![All, Read, Write, Describe, Alter, AlterConfigs]),
            prop::sample::select(vec![Allow, Deny]),
        )
            .prop_map(|(rt, name, pt, principal, host, op, perm)| {
                acl(rt, name, pt, principal, host, op, perm)
            })
    }

    proptest! {
        /// Against any set of ACLs: a DENY that names the request exactly denies it (unless
        /// the principal is a super user), adding a DENY never allows what was denied, and
        /// `authorize_by_resource_type` is allowed whenever some named resource is.
        #[test]
        fn deny_is_monotone_and_exact_denies_deny(
            acls in proptest::collection::vec(acl_strategy(), 0..12),
            extra in acl_strategy(),
            allow_if_none in any::<bool>(),
            name in prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "c"]),
            op in prop::sample::select(vec![Read, Write, Describe, Alter, DescribeConfigs]),
        ) {
            let a = authorizer(&[], allow_if_none);
            let base = image(&acls);
            let before = a.authorize(&base, "User:u", "10.0.0.1", op, Topic, name).allowed();
            let mut with_deny = acls.clone();
            with_deny.push(StandardAcl { permission_type: Deny, ..extra });
            let after = a.authorize(&image(&with_deny), "User:u", "10.0.0.1", op, Topic, name).allowed();
            prop_assert!(before || !after, "a DENY allowed something");

            let mut exact = acls.clone();
            exact.push(acl(Topic, name, PatternType::Literal, "User:u", "10.0.0.1", op, Deny));
            prop_assert!(!a.authorize(&image(&exact), "User:u", "10.0.0.1", op, Topic, name).allowed());
            let root = authorizer(&["User:u"], false);
            prop_assert!(root.authorize(&image(&exact), "User:u", "10.0.0.1", op, Topic, name).allowed());

            if op != Describe && op != DescribeConfigs && !allow_if_none && before {
                prop_assert!(a.authorize_by_resource_type(&base, "User:u", "10.0.0.1", op, Topic));
            }
        }
    }

    /// The authorizer's decisions as they were made before the index, by scanning every ACL:
    /// the reference the indexed decisions are compared with.
    mod scan {
        use super::*;

        pub(super) fn authorize(
            a: &StandardAuthorizer,
            acls: &AclsImage,
            principal: &str,
            host: &str,
            operation: AclOperation,
            resource_type: ResourceType,
            name: &str,
        ) -> MatchingRule {
            if a.is_super_user(principal) {
                return MatchingRule::SuperUser;
            }
            let mut allow = None;
            let mut has_resource_acls = false;
            for (_, acl) in acls.iter() {
                if acl.resource_type != resource_type || !acl.covers(name) {
                    continue;
                }
                has_resource_acls = true;
                match acl.result_for(principal, host, operation) {
                    Some(AclPermissionType::Deny) => return MatchingRule::Deny(acl.clone()),
                    Some(AclPermissionType::Allow) if allow.is_none() => allow = Some(acl.clone()),
                    _ => {}
                }
            }
            match allow {
                Some(acl) => MatchingRule::Allow(acl),
                None if !has_resource_acls && a.allow_everyone_if_no_acl_found => {
                    MatchingRule::DefaultAllow
                }
                None => MatchingRule::DefaultDeny,
            }
        }

        pub(super) fn authorize_by_resource_type(
            a: &StandardAuthorizer,
            acls: &AclsImage,
            principal: &str,
            host: &str,
            operation: AclOperation,
            resource_type: ResourceType,
        ) -> bool {
            if authorize(
                a,
                acls,
                principal,
                host,
                operation,
                resource_type,
                "hardcode",
            )
            .allowed()
            {
                return true;
            }
            let mut deny_literal = std::collections::HashSet::new();
            let mut deny_prefixed = std::collections::HashSet::new();
            let mut allow = Vec::new();
            let mut wildcard_allow = false;
            for (_, acl) in acls.iter() {
                if acl.resource_type != resource_type
                    || (acl.host != host && acl.host != WILDCARD_HOST)
                    || (acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL)
                    || (acl.operation != operation && acl.operation != AclOperation::All)
                {
                    continue;
                }
                match (acl.permission_type, acl.pattern_type) {
                    (AclPermissionType::Deny, PatternType::Literal) => {
                        if acl.resource_name == WILDCARD_RESOURCE {
                            return false;
                        }
                        deny_literal.insert(acl.resource_name.as_str());
                    }
                    (AclPermissionType::Deny, PatternType::Prefixed) => {
                        deny_prefixed.insert(acl.resource_name.as_str());
                    }
                    // The one change to the scan: it answered at the first ALLOW on `*`, so
                    // a DENY on `*` with a greater id was missed; Kafka reads them all.
                    (AclPermissionType::Allow, PatternType::Literal)
                        if acl.resource_name == WILDCARD_RESOURCE =>
                    {
                        wildcard_allow = true
                    }
                    (AclPermissionType::Allow, pattern) => allow.push((pattern, acl)),
                    _ => {}
                }
            }
            wildcard_allow
                || allow.iter().any(|(pattern, acl)| {
                    let name = acl.resource_name.as_str();
                    if *pattern == PatternType::Literal && deny_literal.contains(name) {
                        return false;
                    }
                    !name
                        .char_indices()
                        .map(|(i, c)| &name[..i + c.len_utf8()])
                        .any(|prefix| deny_prefixed.contains(prefix))
                })
        }

        pub(super) fn authorized_operations(
            a: &StandardAuthorizer,
            acls: &AclsImage,
            principal: &str,
            host: &str,
            resource_type: ResourceType,
            name: &str,
        ) -> i32 {
            resource_type
                .supported_operations()
                .iter()
                .filter(|op| {
                    authorize(a, acls, principal, host, **op, resource_type, name).allowed()
                })
                .fold(0, |bits, op| bits | (1 << op.code()))
        }
    }

    /// The indexed decision and the scan's agree: the same kind of rule, and an ACL named by
    /// the indexed one is in the image and decides as it says (when several ACLs could decide,
    /// the scan names the first by id, the index the first it meets).
    fn assert_same_rule(
        acls: &AclsImage,
        name: &str,
        indexed: &MatchingRule,
        scanned: &MatchingRule,
        context: &dyn std::fmt::Debug,
    ) {
        assert_eq!(
            std::mem::discriminant(indexed),
            std::mem::discriminant(scanned),
            "indexed {indexed:?}, scanned {scanned:?}: {context:?}"
        );
        if let MatchingRule::Allow(acl) | MatchingRule::Deny(acl) = indexed {
            assert!(acls.contains(acl), "{acl:?} not in the image: {context:?}");
            assert!(acls.iter().any(|(_, a)| a == acl));
            assert!(
                acl.covers(name),
                "{acl:?} does not cover {name:?}: {context:?}"
            );
        }
    }

    /// Names over a small alphabet (with a two-byte character, the wildcard, and `!`, whose
    /// prefixed ACLs share a piece of the index with those of `a`), so that literal, prefixed
    /// and wildcard ACLs often cover the requested names.
    fn name_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop::sample::select(vec!["a", "b", "é", "*", "-", "!"]),
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    fn indexed_acl_strategy() -> impl Strategy<Value = StandardAcl> {
        (
            prop::sample::select(vec![Topic, Group, TransactionalId]),
            // Empty names too: the controller refuses them, the index must not care.
            prop_oneof![Just("*".to_string()), name_strategy()],
            prop::sample::select(vec![PatternType::Literal, PatternType::Prefixed]),
            prop::sample::select(vec!["User:*", "User:u", "User:v"]),
            prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
            prop::sample::select(vec![
                All,
                Read,
                Write,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
                Create,
            ]),
            prop::sample::select(vec![Allow, Deny]),
        )
            .prop_map(|(rt, name, pt, principal, host, op, perm)| {
                acl(rt, &name, pt, principal, host, op, perm)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The indexed authorizer decides as the scan over random ACL sets, built by inserts,
        /// replacements and removals, for `authorize`, `authorize_by_resource_type` and
        /// `authorized_operations`.
        #[test]
        fn indexed_decisions_equal_the_scan(
            acls in proptest::collection::vec(indexed_acl_strategy(), 0..40),
            replaced in proptest::collection::vec((0usize..40, indexed_acl_strategy()), 0..4),
            removed in proptest::collection::vec(0usize..40, 0..10),
            requests in proptest::collection::vec((
                prop::sample::select(vec![Topic, Group, TransactionalId]),
                name_strategy(),
                prop::sample::select(vec!["User:u", "User:v", "User:w"]),
                prop::sample::select(vec!["10.0.0.1", "10.0.0.2"]),
                prop::sample::select(AclOperation::ALL_VALUES.to_vec()),
            ), 1..20),
            allow_if_none in any::<bool>(),
            super_user in any::<bool>(),
        ) {
            let mut image = image(&acls);
            for (i, acl) in replaced {
                image.insert(test_id(i), acl);
            }
            for i in removed {
                image.remove(&test_id(i));
            }
            let supers: &[&str] = if super_user { &["User:v"] } else { &[] };
            let a = authorizer(supers, allow_if_none);
            for (rt, name, principal, host, op) in &requests {
                let context = (rt, name, principal, host, op);
                let indexed = a.authorize(&image, principal, host, *op, *rt, name);
                let scanned = scan::authorize(&a, &image, principal, host, *op, *rt, name);
                assert_same_rule(&image, name, &indexed, &scanned, &context);
                prop_assert_eq!(
                    a.authorize_by_resource_type(&image, principal, host, *op, *rt),
                    scan::authorize_by_resource_type(&a, &image, principal, host, *op, *rt),
                    "by resource type: {:?}", context
                );
                prop_assert_eq!(
                    a.authorized_operations(&image, principal, host, *rt, name),
                    scan::authorized_operations(&a, &image, principal, host, *rt, name),
                    "authorized operations: {:?}", context
                );
            }
            for (_, acl) in image.iter() {
                prop_assert!(image.contains(acl));
            }
            let ids: Vec<&Uuid> = image.iter().map(|(id, _)| id).collect();
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order");
            prop_assert_eq!(ids.len(), image.len());
            let rebuilt = self::image(&image.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>());
            prop_assert_eq!(rebuilt.len(), image.len());
            prop_assert!(image == image.clone());
        }
    }

    /// A walk of the prefixes of a long name meets exactly the prefixed patterns that start it,
    /// among many that share its first characters.
    #[test]
    fn the_prefix_walk_finds_every_prefix_and_nothing_else() {
        let name = "team-17.orders.eu-west";
        let mut image = AclsImage::default();
        let patterns = [
            "t",
            "te",
            "team-1",
            "team-17",
            "team-17.",
            "team-17.o",
            "team-17.orders.eu-west",
            "team-170",
            "team-17.orders.eu-west-1",
            "team-17.p",
            "team-16",
            "team-2",
            "u",
            "a",
            "team-17.orders.eu",
            "team-17.orders.f",
        ];
        for (i, p) in patterns.iter().enumerate() {
            image.insert(
                Uuid::from_u128(i as u128 + 1),
                acl(Topic, p, PatternType::Prefixed, "User:u", "*", Read, Allow),
            );
        }
        let mut found: Vec<&str> = image
            .index
            .covering(Topic, name)
            .flatten()
            .map(|(_, a)| a.resource_name.as_str())
            .collect();
        found.sort();
        let mut expected: Vec<&str> = patterns
            .iter()
            .copied()
            .filter(|p| name.starts_with(p))
            .collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    /// ACLs as a deployment has them: per team a prefixed ALLOW for its applications and a few
    /// literal ACLs on its topics, and some wildcard rules.
    fn team_acls(count: usize) -> AclsImage {
        let mut image = AclsImage::default();
        let add = |image: &mut AclsImage, acl: StandardAcl| {
            image.insert(Uuid::new_v4(), acl);
        };
        add(
            &mut image,
            acl(
                Topic,
                "*",
                PatternType::Literal,
                "User:ops",
                "*",
                Describe,
                Allow,
            ),
        );
        add(
            &mut image,
            acl(
                Topic,
                "_internal",
                PatternType::Prefixed,
                "User:*",
                "*",
                Write,
                Deny,
            ),
        );
        let mut team = 0;
        while image.len() < count {
            let prefix = format!("team-{team}.");
            let app = format!("User:app-{team}");
            add(
                &mut image,
                acl(Topic, &prefix, PatternType::Prefixed, &app, "*", All, Allow),
            );
            for j in 0..4 {
                let topic = format!("team-{team}.topic-{j}");
                let reader = format!("User:reader-{}", (team + j) % 997);
                add(
                    &mut image,
                    acl(
                        Topic,
                        &topic,
                        PatternType::Literal,
                        &reader,
                        "*",
                        Read,
                        Allow,
                    ),
                );
            }
            add(
                &mut image,
                acl(
                    Group,
                    &prefix,
                    PatternType::Prefixed,
                    &app,
                    "*",
                    Read,
                    Allow,
                ),
            );
            team += 1;
        }
        image
    }

    /// Checks per second, by the index and by the old scan, with 100, 10,000 and 100,000
    /// ACLs; and what one ACL record costs a metadata delta (the clone of the image on its
    /// first ACL record, then the insert). Run with
    /// `cargo test -p gregor-metadata --release --lib acl_check_rate -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn acl_check_rate() {
        use std::time::{Duration, Instant};
        let a = authorizer(&["User:admin"], false);
        for count in [100usize, 10_000, 100_000] {
            let image = team_acls(count);
            let teams = count / 6 + 1;
            let requests: Vec<(String, String)> = (0..1000)
                .map(|i| {
                    let team = (i * 7919) % teams;
                    let user = if i % 3 == 0 { team + 1 } else { team };
                    (
                        format!("team-{team}.topic-{}", i % 5),
                        format!("User:app-{user}"),
                    )
                })
                .collect();
            let rate = |check: &dyn Fn(&str, &str) -> bool, budget: Duration| {
                let start = Instant::now();
                let mut checks = 0u64;
                let mut allowed = 0u64;
                while start.elapsed() < budget {
                    for (topic, user) in &requests {
                        allowed += u64::from(check(user, topic));
                        checks += 1;
                    }
                }
                (
                    checks as f64 / start.elapsed().as_secs_f64(),
                    allowed * 1000 / checks,
                )
            };
            let (indexed, allowed_indexed) = rate(
                &|user, topic| {
                    a.authorize(&image, user, "10.0.0.1", Write, Topic, topic)
                        .allowed()
                },
                Duration::from_millis(500),
            );
            let (scanned, allowed_scanned) = rate(
                &|user, topic| {
                    scan::authorize(&a, &image, user, "10.0.0.1", Write, Topic, topic).allowed()
                },
                Duration::from_millis(if count > 10_000 { 3000 } else { 500 }),
            );
            assert_eq!(allowed_indexed, allowed_scanned);
            // A delta's first ACL record: a literal one, and a prefixed one in the piece
            // where all the teams' prefixed ACLs are.
            let rounds = 20;
            let first_record = |pattern_type: PatternType, name: &str| {
                let start = Instant::now();
                for _ in 0..rounds {
                    let mut copy = image.clone();
                    copy.insert(
                        Uuid::new_v4(),
                        acl(Topic, name, pattern_type, "User:n", "*", Read, Allow),
                    );
                    std::hint::black_box(&copy);
                }
                start.elapsed() / rounds
            };
            let literal_record = first_record(PatternType::Literal, "new");
            let prefixed_record = first_record(PatternType::Prefixed, "team-new.");
            // Before the index: the ACLs by id, held by value.
            let by_value: BTreeMap<Uuid, StandardAcl> =
                image.iter().map(|(id, a)| (*id, a.clone())).collect();
            let start = Instant::now();
            for _ in 0..rounds {
                let mut copy = by_value.clone();
                copy.insert(
                    Uuid::new_v4(),
                    acl(
                        Topic,
                        "new",
                        PatternType::Literal,
                        "User:n",
                        "*",
                        Read,
                        Allow,
                    ),
                );
                std::hint::black_box(&copy);
            }
            let before = start.elapsed() / rounds;
            println!(
                "{count:>7} ACLs: indexed {indexed:>12.0} checks/s, scan {scanned:>10.0} \
                 checks/s ({:.0}x); first ACL record of a delta \
                 {literal_record:?} literal, {prefixed_record:?} prefixed (before the index \
                 {before:?}); {allowed_indexed}/1000 allowed",
                indexed / scanned
            );
        }
    }
}
