//! `gregor acls list|add|remove`: the counterpart of `kafka-acls.sh`, over the Admin client
//! (DescribeAcls, CreateAcls, DeleteAcls). The broker needs an authorizer
//! (`authorizer.class.name`); without one it answers SECURITY_DISABLED.
//!
//! ```text
//! gregor acls list                                           # every ACL
//! gregor acls list --topic orders --resource-pattern-type match   # every ACL that applies
//! gregor acls add --allow-principal User:alice --producer --topic orders --idempotent
//! gregor acls add --allow-principal User:bob --consumer --topic orders --group billing
//! gregor acls add --deny-principal User:eve --operation read \
//!     --topic audit- --resource-pattern-type prefixed
//! gregor acls remove --topic orders --allow-principal User:bob --force
//! ```
//!
//! The options are `kafka-acls.sh`'s, and so is what they make: principals × hosts (`*` unless
//! given) × operations (ALL unless given) on every resource named, and the conveniences
//! `--producer` (WRITE, DESCRIBE, CREATE on the topics; WRITE, DESCRIBE on the transactional
//! ids; IDEMPOTENT_WRITE on the cluster with `--idempotent`) and `--consumer` (READ, DESCRIBE on
//! the topics; READ on the groups). Where Kafka's tool would quietly do something else, gregor's
//! says what happens: an option that would be ignored (`--group` with `--producer` alone,
//! `--cluster` with a convenience) is an error; `remove` takes what is left out as "any" (no
//! `--operation`: every operation; no host: every host; no principal: every principal), shows
//! what matches and asks before removing it (unless `--force`); and `list
//! --resource-pattern-type T` without a resource lists the ACLs of that pattern type.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use gregor_client::acls::{CLUSTER_NAME, WILDCARD_HOST};
use gregor_client::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};

use crate::output::Table;
use crate::tool::{admin, ConnectArgs};

/// `gregor acls` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AclsCommand {
    /// List ACLs: every one, or those of the resources and principals given.
    List(ListArgs),
    /// Add ACLs: allow or deny principals operations on resources.
    Add(AddArgs),
    /// Remove the ACLs that match; shows them and asks first unless --force.
    Remove(RemoveArgs),
}

/// `--resource-pattern-type`: how resource names match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PatternArg {
    /// The resource of exactly this name (`*`: every resource of the type).
    Literal,
    /// Every resource whose name starts with this one.
    Prefixed,
    /// (list, remove) Every ACL that applies to the named resource: literal, `*` and prefixes.
    Match,
    /// (list, remove) ACLs of any pattern type whose name is exactly this one.
    Any,
}

impl PatternArg {
    fn pattern_type(self) -> PatternType {
        match self {
            PatternArg::Literal => PatternType::Literal,
            PatternArg::Prefixed => PatternType::Prefixed,
            PatternArg::Match => PatternType::Match,
            PatternArg::Any => PatternType::Any,
        }
    }
}

/// The resources of an ACL; every option repeatable, `*` is every resource of the type.
#[derive(Debug, Clone, clap::Args)]
pub struct ResourceArgs {
    /// A topic.
    #[arg(long, value_name = "TOPIC")]
    topic: Vec<String>,
    /// A consumer group.
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// The cluster (IDEMPOTENT_WRITE, ALTER, DESCRIBE, CLUSTER_ACTION, CREATE, ...).
    #[arg(long)]
    cluster: bool,
    /// A transactional id.
    #[arg(long, value_name = "ID")]
    transactional_id: Vec<String>,
    /// A delegation token id.
    #[arg(long, value_name = "TOKEN_ID")]
    delegation_token: Vec<String>,
    /// A user principal as the resource (CREATE_TOKENS, DESCRIBE_TOKENS).
    #[arg(long, value_name = "PRINCIPAL")]
    user_principal: Vec<String>,
    /// How the names match: literal (the default) or prefixed; list and remove also take
    /// match and any.
    #[arg(long, value_enum, value_name = "TYPE")]
    resource_pattern_type: Option<PatternArg>,
}

/// Who may or may not do what: the entries of the ACLs to add or remove.
#[derive(Debug, Clone, clap::Args)]
pub struct EntryArgs {
    /// A principal to allow, TYPE:NAME (`User:alice`; `User:*` is everyone).
    #[arg(long, value_name = "PRINCIPAL")]
    allow_principal: Vec<String>,
    /// A principal to deny, TYPE:NAME; a DENY wins over any ALLOW.
    #[arg(long, value_name = "PRINCIPAL")]
    deny_principal: Vec<String>,
    /// A host (IP address) the allowed principals may connect from (add: `*` unless given).
    #[arg(long, value_name = "HOST", requires = "allow_principal")]
    allow_host: Vec<String>,
    /// A host the denied principals are denied from (add: `*` unless given).
    #[arg(long, value_name = "HOST", requires = "deny_principal")]
    deny_host: Vec<String>,
    /// Operations (repeatable or comma-separated): All, Read, Write, Create, Delete, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens,
    /// DescribeTokens. Add: All unless given.
    #[arg(
        long,
        value_name = "OPERATION",
        value_delimiter = ',',
        conflicts_with_all = ["producer", "consumer"]
    )]
    operation: Vec<String>,
    /// A producer's ACLs: WRITE, DESCRIBE, CREATE on the topics; WRITE, DESCRIBE on the
    /// transactional ids.
    #[arg(long, conflicts_with_all = ["deny_principal", "deny_host"])]
    producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster too.
    #[arg(long, requires = "producer")]
    idempotent: bool,
    /// A consumer's ACLs: READ, DESCRIBE on the topics; READ on the groups.
    #[arg(long, conflicts_with_all = ["deny_principal", "deny_host"])]
    consumer: bool,
}

/// Flags of `gregor acls list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    resources: ResourceArgs,
    /// Only the ACLs of this principal, TYPE:NAME (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    principal: Vec<String>,
}

/// Flags of `gregor acls add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    resources: ResourceArgs,
    #[command(flatten)]
    entries: EntryArgs,
}

/// Flags of `gregor acls remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    resources: ResourceArgs,
    #[command(flatten)]
    entries: EntryArgs,
    /// Remove without showing the matching ACLs and asking first.
    #[arg(long)]
    force: bool,
}

/// Runs a `gregor acls` subcommand.
pub async fn run(cmd: AclsCommand) -> anyhow::Result<()> {
    match cmd {
        AclsCommand::List(args) => list(args).await,
        AclsCommand::Add(args) => add(args).await,
        AclsCommand::Remove(args) => remove(args).await,
    }
}

/// A resource pattern named on the command line (a pattern filter for list and remove).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resource {
    resource_type: ResourceType,
    name: String,
    pattern_type: PatternType,
}

impl Resource {
    fn cluster() -> Resource {
        Resource {
            resource_type: ResourceType::Cluster,
            name: CLUSTER_NAME.to_string(),
            pattern_type: PatternType::Literal,
        }
    }
}

const WHICH_RESOURCE: &str = "which resource? give --topic T, --group G, --cluster, \
                              --transactional-id X, --delegation-token D or --user-principal P";

impl ResourceArgs {
    fn is_empty(&self) -> bool {
        self.topic.is_empty()
            && self.group.is_empty()
            && !self.cluster
            && self.transactional_id.is_empty()
            && self.delegation_token.is_empty()
            && self.user_principal.is_empty()
    }

    /// The resources named, each with `pattern_type`, in the order Kafka's tool lists them.
    fn patterns(&self, pattern_type: PatternType) -> anyhow::Result<Vec<Resource>> {
        let mut out = Vec::new();
        let mut push = |resource_type, names: &[String]| {
            for name in names {
                out.push(Resource {
                    resource_type,
                    name: name.trim().to_string(),
                    pattern_type,
                });
            }
        };
        push(ResourceType::Topic, &self.topic);
        push(ResourceType::Group, &self.group);
        push(ResourceType::TransactionalId, &self.transactional_id);
        push(ResourceType::DelegationToken, &self.delegation_token);
        push(ResourceType::User, &self.user_principal);
        if self.cluster {
            if pattern_type == PatternType::Prefixed {
                bail!("--cluster has no prefixed ACLs: its one name is {CLUSTER_NAME}");
            }
            out.push(Resource {
                pattern_type,
                ..Resource::cluster()
            });
        }
        if let Some(r) = out.iter().find(|r| r.name.is_empty()) {
            bail!("empty {} name", r.resource_type);
        }
        Ok(out)
    }

    /// `--resource-pattern-type` for adding: literal or prefixed.
    fn specific_pattern(&self) -> anyhow::Result<PatternType> {
        match self.resource_pattern_type {
            None | Some(PatternArg::Literal) => Ok(PatternType::Literal),
            Some(PatternArg::Prefixed) => Ok(PatternType::Prefixed),
            Some(other) => bail!(
                "--resource-pattern-type {} is a filter (for list and remove): ACLs are added \
                 literal or prefixed",
                other.pattern_type().name().to_lowercase()
            ),
        }
    }
}

/// A principal as Kafka takes it: TYPE:NAME.
fn principal(p: &str) -> anyhow::Result<String> {
    let p = p.trim();
    match p.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(p.to_string()),
        _ => bail!("principal {p:?} is not TYPE:NAME (User:alice, User:*)"),
    }
}

/// One (principal, host, permission) of the ACLs to make or match; `None` host: any host.
type Entry = (String, Option<String>, AclPermissionType);

impl EntryArgs {
    fn is_convenience(&self) -> bool {
        self.producer || self.consumer
    }

    /// Allowed principals × their hosts, then denied principals × theirs; a principal without
    /// hosts gets `default_host`.
    fn entries(&self, default_host: Option<&str>) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let sides = [
            (
                &self.allow_principal,
                &self.allow_host,
                AclPermissionType::Allow,
            ),
            (
                &self.deny_principal,
                &self.deny_host,
                AclPermissionType::Deny,
            ),
        ];
        for (principals, hosts, permission) in sides {
            let hosts: Vec<Option<String>> = if hosts.is_empty() {
                vec![default_host.map(str::to_string)]
            } else {
                hosts.iter().map(|h| Some(h.trim().to_string())).collect()
            };
            for p in principals {
                let p = principal(p)?;
                for h in &hosts {
                    let entry = (p.clone(), h.clone(), permission);
                    if !out.contains(&entry) {
                        out.push(entry);
                    }
                }
            }
        }
        Ok(out)
    }

    /// `--operation`s, or `default` when none is given.
    fn operations(&self, default: AclOperation) -> anyhow::Result<Vec<AclOperation>> {
        if self.operation.is_empty() {
            return Ok(vec![default]);
        }
        let mut out = Vec::new();
        for name in &self.operation {
            let op = AclOperation::from_name(name)
                .filter(|op| !matches!(op, AclOperation::Unknown | AclOperation::Any))
                .with_context(|| {
                    format!(
                        "unknown operation {name:?}; one of: {}",
                        AclOperation::ALL_VALUES
                            .iter()
                            .filter(|op| !matches!(op, AclOperation::Unknown | AclOperation::Any))
                            .map(|op| op.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if !out.contains(&op) {
                out.push(op);
            }
        }
        Ok(out)
    }

    /// The operations of `--producer` and `--consumer` per resource, after checking that every
    /// resource named has a use (Kafka's tool would ignore the others).
    fn convenience_operations(
        &self,
        resources: &ResourceArgs,
        pattern_type: PatternType,
    ) -> anyhow::Result<Vec<(Resource, Vec<AclOperation>)>> {
        use AclOperation::*;
        if resources.topic.is_empty() {
            bail!("--producer and --consumer need a --topic");
        }
        if self.consumer && resources.group.is_empty() {
            bail!("--consumer needs a --group");
        }
        if !self.consumer && !resources.group.is_empty() {
            bail!("--group takes --consumer: --producer makes no group ACLs");
        }
        if !self.producer && !resources.transactional_id.is_empty() {
            bail!("--transactional-id takes --producer: --consumer makes no transactional id ACLs");
        }
        if resources.cluster {
            bail!(
                "--producer and --consumer make no ACLs for --cluster; --idempotent adds \
                 IDEMPOTENT_WRITE on the cluster to --producer"
            );
        }
        if !resources.delegation_token.is_empty() || !resources.user_principal.is_empty() {
            bail!(
                "--producer and --consumer make ACLs for topics, groups and transactional ids only"
            );
        }
        let mut out = Vec::new();
        for r in resources.patterns(pattern_type)? {
            let mut ops = Vec::new();
            if r.resource_type == ResourceType::Topic {
                if self.producer {
                    ops.extend([Write, Describe, Create]);
                }
                if self.consumer {
                    for op in [Read, Describe] {
                        if !ops.contains(&op) {
                            ops.push(op);
                        }
                    }
                }
            } else if r.resource_type == ResourceType::Group {
                ops.push(Read);
            } else if r.resource_type == ResourceType::TransactionalId {
                ops.extend([Write, Describe]);
            }
            out.push((r, ops));
        }
        if self.idempotent {
            out.push((Resource::cluster(), vec![IdempotentWrite]));
        }
        Ok(out)
    }

    /// The operations per resource: the conveniences', or `--operation` (`default` when not
    /// given) on every resource, each one checked against what the resource type supports.
    fn resource_operations(
        &self,
        resources: &ResourceArgs,
        pattern_type: PatternType,
        default: AclOperation,
    ) -> anyhow::Result<Vec<(Resource, Vec<AclOperation>)>> {
        if resources.is_empty() {
            bail!(WHICH_RESOURCE);
        }
        if self.is_convenience() {
            return self.convenience_operations(resources, pattern_type);
        }
        let ops = self.operations(default)?;
        let out: Vec<(Resource, Vec<AclOperation>)> = resources
            .patterns(pattern_type)?
            .into_iter()
            .map(|r| (r, ops.clone()))
            .collect();
        for (r, ops) in &out {
            let supported = r.resource_type.supported_operations();
            let unsupported = |op: &&AclOperation| {
                !matches!(op, AclOperation::All | AclOperation::Any) && !supported.contains(op)
            };
            if let Some(op) = ops.iter().find(unsupported) {
                bail!(
                    "{} ACLs take operation ALL or {}, not {op}",
                    r.resource_type,
                    supported
                        .iter()
                        .map(|o| o.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(out)
    }
}

/// The ACLs `gregor acls add` makes: per resource, its operations × the principals and hosts.
fn add_bindings(resources: &ResourceArgs, entries: &EntryArgs) -> anyhow::Result<Vec<AclBinding>> {
    let pattern_type = resources.specific_pattern()?;
    let per_resource = entries.resource_operations(resources, pattern_type, AclOperation::All)?;
    let who = entries.entries(Some(WILDCARD_HOST))?;
    if who.is_empty() {
        bail!("whom? give --allow-principal P or --deny-principal P");
    }
    let mut out = Vec::new();
    for (r, ops) in &per_resource {
        for op in ops {
            for (principal, host, permission) in &who {
                let b = AclBinding {
                    resource_type: r.resource_type,
                    resource_name: r.name.clone(),
                    pattern_type: r.pattern_type,
                    principal: principal.clone(),
                    host: host.clone().unwrap_or_else(|| WILDCARD_HOST.to_string()),
                    operation: *op,
                    permission_type: *permission,
                };
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
    }
    Ok(out)
}

/// The filters of `gregor acls remove`: per resource, its operations (any unless given) × the
/// principals and hosts given (any when none is).
fn remove_filters(
    resources: &ResourceArgs,
    entries: &EntryArgs,
) -> anyhow::Result<Vec<AclBindingFilter>> {
    let pattern_type = resources
        .resource_pattern_type
        .map_or(PatternType::Literal, PatternArg::pattern_type);
    let per_resource = entries.resource_operations(resources, pattern_type, AclOperation::Any)?;
    let who: Vec<(Option<String>, Option<String>, AclPermissionType)> = {
        let given = entries.entries(None)?;
        if given.is_empty() {
            vec![(None, None, AclPermissionType::Any)]
        } else {
            given
                .into_iter()
                .map(|(p, h, perm)| (Some(p), h, perm))
                .collect()
        }
    };
    let mut out = Vec::new();
    for (r, ops) in &per_resource {
        for op in ops {
            for (principal, host, permission) in &who {
                let f = AclBindingFilter {
                    resource_type: r.resource_type,
                    resource_name: Some(r.name.clone()),
                    pattern_type: r.pattern_type,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: *op,
                    permission_type: *permission,
                };
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    }
    Ok(out)
}

/// The filters of `gregor acls list`: the resources named (literal unless told otherwise) or
/// every resource (any pattern type unless told), each for every `--principal` given.
fn list_filters(
    resources: &ResourceArgs,
    principals: &[String],
) -> anyhow::Result<Vec<AclBindingFilter>> {
    let given = resources
        .resource_pattern_type
        .map(PatternArg::pattern_type);
    let patterns: Vec<(ResourceType, Option<String>, PatternType)> = if resources.is_empty() {
        vec![(ResourceType::Any, None, given.unwrap_or(PatternType::Any))]
    } else {
        resources
            .patterns(given.unwrap_or(PatternType::Literal))?
            .into_iter()
            .map(|r| (r.resource_type, Some(r.name), r.pattern_type))
            .collect()
    };
    let principals: Vec<Option<String>> = if principals.is_empty() {
        vec![None]
    } else {
        principals
            .iter()
            .map(|p| principal(p).map(Some))
            .collect::<anyhow::Result<_>>()?
    };
    let mut out = Vec::new();
    for (resource_type, name, pattern_type) in &patterns {
        for p in &principals {
            out.push(AclBindingFilter {
                resource_type: *resource_type,
                resource_name: name.clone(),
                pattern_type: *pattern_type,
                principal: p.clone(),
                ..AclBindingFilter::any()
            });
        }
    }
    Ok(out)
}

/// ACLs as a table, one row each.
fn table<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> String {
    let mut t = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
        "RESOURCE-TYPE",
        "NAME",
        "PATTERN",
    ]);
    for a in acls {
        t.row(vec![
            a.principal.clone(),
            a.host.clone(),
            a.operation.name().to_string(),
            a.permission_type.name().to_string(),
            a.resource_type.name().to_string(),
            a.resource_name.clone(),
            a.pattern_type.name().to_string(),
        ]);
    }
    t.render()
}

/// The ACLs any of `filters` matches, once each, sorted by resource.
async fn matching(
    admin: &mut gregor_client::Admin,
    filters: &[AclBindingFilter],
) -> anyhow::Result<BTreeSet<AclBinding>> {
    let mut out = BTreeSet::new();
    for f in filters {
        out.extend(admin.describe_acls(f).await?);
    }
    Ok(out)
}

/// The errors of some bindings or filters as one error: the first alone, or all of them.
fn combined(what: &str, errors: Vec<gregor_client::ClientError>) -> anyhow::Error {
    if errors.len() == 1 {
        return errors
            .into_iter()
            .map(anyhow::Error::from)
            .next()
            .expect("one error");
    }
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::anyhow!("{} {what}:\n{}", errors.len(), lines.join("\n"))
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let filters = list_filters(&args.resources, &args.principal)?;
    let mut admin = admin(&args.connect).await?;
    let acls = matching(&mut admin, &filters).await?;
    if acls.is_empty() {
        let filtered = !args.resources.is_empty()
            || !args.principal.is_empty()
            || args.resources.resource_pattern_type.is_some();
        println!("no ACLs{}", if filtered { " match" } else { " set" });
    } else {
        print!("{}", table(&acls));
    }
    Ok(())
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let bindings = add_bindings(&args.resources, &args.entries)?;
    let mut admin = admin(&args.connect).await?;
    let results = admin.create_acls(&bindings).await?;
    let mut added = Vec::new();
    let mut errors = Vec::new();
    for (b, r) in bindings.iter().zip(results) {
        match r {
            Ok(()) => added.push(b),
            Err(e) => errors.push(e),
        }
    }
    if !added.is_empty() {
        println!("added {} ACL(s):", added.len());
        print!("{}", table(added));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(combined("ACLs were not added", errors))
    }
}

/// Asks on stderr (stdout is for the table) and reads a yes from stdin.
fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} (y/n) ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !std::io::stdin().is_terminal() {
        // A piped answer is not echoed: end the question's line.
        eprintln!();
    }
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let filters = remove_filters(&args.resources, &args.entries)?;
    let mut admin = admin(&args.connect).await?;
    if !args.force {
        let matched = matching(&mut admin, &filters).await?;
        if matched.is_empty() {
            println!("no ACLs match; nothing removed");
            return Ok(());
        }
        println!("{} ACL(s) match:", matched.len());
        print!("{}", table(&matched));
        if !confirm("remove them?")? {
            println!("nothing removed");
            return Ok(());
        }
    }
    let mut removed = BTreeSet::new();
    let mut errors = Vec::new();
    for r in admin.delete_acls(&filters).await? {
        match r {
            Ok(acls) => removed.extend(acls),
            Err(e) => errors.push(e),
        }
    }
    if removed.is_empty() && errors.is_empty() {
        println!("no ACLs match; nothing removed");
    } else if !removed.is_empty() {
        println!("removed {} ACL(s):", removed.len());
        print!("{}", table(&removed));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(combined("filters failed", errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use AclOperation::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(subcommand)]
        acls: AclsCommand,
    }

    fn parse(args: &str) -> Result<AclsCommand, clap::Error> {
        Cmd::try_parse_from(std::iter::once("acls").chain(args.split_whitespace())).map(|c| c.acls)
    }

    fn added(args: &str) -> anyhow::Result<Vec<AclBinding>> {
        match parse(&format!("add {args}")).expect("parses") {
            AclsCommand::Add(a) => add_bindings(&a.resources, &a.entries),
            other => panic!("not add: {other:?}"),
        }
    }

    fn removed(args: &str) -> anyhow::Result<Vec<AclBindingFilter>> {
        match parse(&format!("remove {args}")).expect("parses") {
            AclsCommand::Remove(a) => remove_filters(&a.resources, &a.entries),
            other => panic!("not remove: {other:?}"),
        }
    }

    fn listed(args: &str) -> anyhow::Result<Vec<AclBindingFilter>> {
        match parse(&format!("list {args}")).expect("parses") {
            AclsCommand::List(a) => list_filters(&a.resources, &a.principal),
            other => panic!("not list: {other:?}"),
        }
    }

    /// (resource type, name, pattern, principal, host, operation, permission) of each binding.
    fn rows(bindings: &[AclBinding]) -> Vec<String> {
        bindings
            .iter()
            .map(|b| {
                format!(
                    "{} {} {} {} {} {} {}",
                    b.resource_type,
                    b.resource_name,
                    b.pattern_type,
                    b.principal,
                    b.host,
                    b.operation,
                    b.permission_type
                )
            })
            .collect()
    }

    #[test]
    fn producer_writes_describes_and_creates_its_topics() {
        let b = added("--allow-principal User:alice --producer --topic orders").expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC orders LITERAL User:alice * WRITE ALLOW",
                "TOPIC orders LITERAL User:alice * DESCRIBE ALLOW",
                "TOPIC orders LITERAL User:alice * CREATE ALLOW",
            ]
        );
    }

    #[test]
    fn an_idempotent_transactional_producer_gets_the_cluster_and_its_ids() {
        let b = added(
            "--allow-principal User:alice --producer --idempotent --topic orders \
             --transactional-id tx --resource-pattern-type prefixed",
        )
        .expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC orders PREFIXED User:alice * WRITE ALLOW",
                "TOPIC orders PREFIXED User:alice * DESCRIBE ALLOW",
                "TOPIC orders PREFIXED User:alice * CREATE ALLOW",
                "TRANSACTIONAL_ID tx PREFIXED User:alice * WRITE ALLOW",
                "TRANSACTIONAL_ID tx PREFIXED User:alice * DESCRIBE ALLOW",
                // The cluster's one name is literal, whatever the pattern type of the others.
                "CLUSTER kafka-cluster LITERAL User:alice * IDEMPOTENT_WRITE ALLOW",
            ]
        );
    }

    #[test]
    fn consumer_reads_its_topics_and_groups() {
        let b = added(
            "--allow-principal User:bob --allow-host 10.0.0.7 --consumer --topic t --group g",
        )
        .expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC t LITERAL User:bob 10.0.0.7 READ ALLOW",
                "TOPIC t LITERAL User:bob 10.0.0.7 DESCRIBE ALLOW",
                "GROUP g LITERAL User:bob 10.0.0.7 READ ALLOW",
            ]
        );
    }

    #[test]
    fn producer_and_consumer_together_merge_on_the_topic() {
        let b = added("--allow-principal User:c --producer --consumer --topic t --group g")
            .expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC t LITERAL User:c * WRITE ALLOW",
                "TOPIC t LITERAL User:c * DESCRIBE ALLOW",
                "TOPIC t LITERAL User:c * CREATE ALLOW",
                "TOPIC t LITERAL User:c * READ ALLOW",
                "GROUP g LITERAL User:c * READ ALLOW",
            ]
        );
    }

    #[test]
    fn explicit_acls_are_principals_by_hosts_by_operations() {
        let b = added(
            "--allow-principal User:a --allow-principal User:b --allow-host 10.0.0.1 \
             --deny-principal User:c --operation read,Write --topic t",
        )
        .expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC t LITERAL User:a 10.0.0.1 READ ALLOW",
                "TOPIC t LITERAL User:b 10.0.0.1 READ ALLOW",
                "TOPIC t LITERAL User:c * READ DENY",
                "TOPIC t LITERAL User:a 10.0.0.1 WRITE ALLOW",
                "TOPIC t LITERAL User:b 10.0.0.1 WRITE ALLOW",
                "TOPIC t LITERAL User:c * WRITE DENY",
            ]
        );
        let b = added("--allow-principal User:* --cluster --topic *").expect("ok");
        assert_eq!(
            rows(&b),
            [
                "TOPIC * LITERAL User:* * ALL ALLOW",
                "CLUSTER kafka-cluster LITERAL User:* * ALL ALLOW",
            ]
        );
        let b =
            added("--allow-principal User:a --operation IdempotentWrite --cluster").expect("ok");
        assert_eq!(
            rows(&b),
            ["CLUSTER kafka-cluster LITERAL User:a * IDEMPOTENT_WRITE ALLOW"]
        );
    }

    #[test]
    fn adding_refuses_what_would_be_ignored_or_invalid() {
        let refused = |args: &str, why: &str| {
            let e = added(args).expect_err(args).to_string();
            assert!(e.contains(why), "{args}: {e}");
        };
        refused("--topic t", "whom?");
        refused("--allow-principal User:a", "which resource?");
        refused("--allow-principal alice --topic t", "not TYPE:NAME");
        refused(
            "--allow-principal User:a --topic t --resource-pattern-type match",
            "is a filter",
        );
        refused(
            "--allow-principal User:a --operation IdempotentWrite --topic t",
            "TOPIC ACLs take operation ALL or",
        );
        refused(
            "--allow-principal User:a --operation Reed --topic t",
            "unknown operation",
        );
        refused(
            "--allow-principal User:a --consumer --topic t",
            "needs a --group",
        );
        refused(
            "--allow-principal User:a --producer --group g",
            "need a --topic",
        );
        refused(
            "--allow-principal User:a --producer --topic t --group g",
            "takes --consumer",
        );
        refused(
            "--allow-principal User:a --consumer --topic t --group g --transactional-id x",
            "takes --producer",
        );
        refused(
            "--allow-principal User:a --producer --topic t --cluster",
            "no ACLs for --cluster",
        );
        refused(
            "--allow-principal User:a --cluster --resource-pattern-type prefixed",
            "no prefixed ACLs",
        );
        // Combinations Kafka's tool refuses are refused by the parser.
        for args in [
            "add --allow-principal User:a --producer --operation Read --topic t",
            "add --deny-principal User:a --consumer --topic t --group g",
            "add --allow-principal User:a --idempotent --topic t",
            "add --allow-host 1.2.3.4 --deny-principal User:a --topic t",
            "list --allow-principal User:a",
            "add --allow-principal User:a --topic t --force",
        ] {
            assert!(parse(args).is_err(), "{args} parsed");
        }
    }

    #[test]
    fn removing_matches_anything_left_out() {
        assert_eq!(
            removed("--topic t").expect("ok"),
            [AclBindingFilter {
                resource_type: ResourceType::Topic,
                resource_name: Some("t".into()),
                pattern_type: PatternType::Literal,
                ..AclBindingFilter::any()
            }]
        );
        assert_eq!(
            removed("--topic t --allow-principal User:a --resource-pattern-type match")
                .expect("ok"),
            [AclBindingFilter {
                resource_type: ResourceType::Topic,
                resource_name: Some("t".into()),
                pattern_type: PatternType::Match,
                principal: Some("User:a".into()),
                permission_type: AclPermissionType::Allow,
                ..AclBindingFilter::any()
            }]
        );
        let filters =
            removed("--allow-principal User:b --consumer --topic t --group g --force").expect("ok");
        let ops: Vec<(ResourceType, AclOperation)> = filters
            .iter()
            .map(|f| (f.resource_type, f.operation))
            .collect();
        assert_eq!(
            ops,
            [
                (ResourceType::Topic, Read),
                (ResourceType::Topic, Describe),
                (ResourceType::Group, Read),
            ]
        );
        assert!(filters.iter().all(|f| f.host.is_none()
            && f.principal.as_deref() == Some("User:b")
            && f.permission_type == AclPermissionType::Allow));
        assert!(removed("--allow-principal User:b")
            .expect_err("no resource")
            .to_string()
            .contains("which resource?"));
    }

    #[test]
    fn listing_filters_by_resource_and_principal() {
        assert_eq!(listed("").expect("ok"), [AclBindingFilter::any()]);
        assert_eq!(
            listed("--resource-pattern-type prefixed").expect("ok"),
            [AclBindingFilter {
                pattern_type: PatternType::Prefixed,
                ..AclBindingFilter::any()
            }]
        );
        let filters = listed("--topic t --cluster --principal User:a").expect("ok");
        assert_eq!(
            filters,
            [
                AclBindingFilter {
                    resource_type: ResourceType::Topic,
                    resource_name: Some("t".into()),
                    pattern_type: PatternType::Literal,
                    principal: Some("User:a".into()),
                    ..AclBindingFilter::any()
                },
                AclBindingFilter {
                    resource_type: ResourceType::Cluster,
                    resource_name: Some(CLUSTER_NAME.into()),
                    pattern_type: PatternType::Literal,
                    principal: Some("User:a".into()),
                    ..AclBindingFilter::any()
                },
            ]
        );
        assert_eq!(
            listed("--group g --resource-pattern-type match").expect("ok")[0].pattern_type,
            PatternType::Match
        );
    }

    #[test]
    fn tables_have_kafkas_columns() {
        let b = added("--allow-principal User:alice --operation read --topic orders").expect("ok");
        assert_eq!(
            table(&b),
            "PRINCIPAL   HOST  OPERATION  PERMISSION  RESOURCE-TYPE  NAME    PATTERN\n\
             User:alice  *     READ       ALLOW       TOPIC          orders  LITERAL\n"
        );
    }
}
