//! The ACLs of the image indexed by resource (Kafka's `StandardAuthorizerData.aclsByResource`):
//! what the authorizer looks up instead of scanning every ACL on every check.
//!
//! ```text
//!  AccessControlEntryRecord ──► AclsImage::insert ──► by_id + AclIndex::insert
//!  RemoveAccessControlEntryRecord ──► AclsImage::remove ──► by_id + AclIndex::remove
//!  StandardAuthorizer::authorize(TOPIC "orders-eu") ──► AclIndex::covering
//!        literal  "orders-eu"           one hash lookup
//!        literal  "*"                   one hash lookup
//!        prefixed "orders-eu", "orders-", "orders", ..., "o"   walked as Kafka does:
//!          k = greatest prefixed key <= s (s starts as the name)
//!          k a prefix of the name? yield its ACLs; s = k without its last character
//!          otherwise                 s = the common prefix of k and s
//! ```
//!
//! Every step of the prefix walk shortens `s`, and a prefix of the name is never skipped: a
//! prefix `p` of the name with `p <= s` that is not `k` sorts below `k`, so `p` is also a
//! prefix of `k`, hence of the common prefix. A check costs a few map lookups whatever the
//! number of ACLs. The image is immutable and shared; a metadata delta clones it (and its index)
//! once, on its first ACL record, and updates the copy in place for the rest of the batch — the
//! same cost the ACLs by id already had.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use uuid::Uuid;

use crate::acl::{PatternType, ResourceType, StandardAcl, WILDCARD_RESOURCE};

/// The ACLs of one resource pattern: every ACL with the same type, name and pattern type.
pub(crate) type AclGroup = Vec<(Uuid, Arc<StandardAcl>)>;

/// The ACLs by resource type, then by pattern.
#[derive(Debug, Clone, Default)]
pub(crate) struct AclIndex {
    types: BTreeMap<ResourceType, TypeAcls>,
}

/// The ACLs of one resource type.
#[derive(Debug, Clone, Default)]
struct TypeAcls {
    /// LITERAL ACLs by resource name, `*` included: looked up by the exact name.
    literal: HashMap<Arc<str>, AclGroup>,
    /// PREFIXED ACLs by resource name, sorted: walked for the prefixes of a name.
    prefixed: BTreeMap<Arc<str>, AclGroup>,
}

impl TypeAcls {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.prefixed.is_empty()
    }
}

impl AclIndex {
    /// Adds the ACL of `id`. An ACL of another pattern type applies to nothing (the controller
    /// and the replay refuse them) and is left out.
    pub(crate) fn insert(&mut self, id: Uuid, acl: &Arc<StandardAcl>) {
        let acls = self.types.entry(acl.resource_type).or_default();
        let name = acl.resource_name.as_str();
        let group = match acl.pattern_type {
            PatternType::Literal => match acls.literal.get_mut(name) {
                Some(group) => group,
                None => acls.literal.entry(Arc::from(name)).or_default(),
            },
            PatternType::Prefixed => match acls.prefixed.get_mut(name) {
                Some(group) => group,
                None => acls.prefixed.entry(Arc::from(name)).or_default(),
            },
            _ => return,
        };
        group.push((id, acl.clone()));
    }

    /// Removes the ACL of `id` (`acl` is what it was).
    pub(crate) fn remove(&mut self, id: Uuid, acl: &StandardAcl) {
        let Some(acls) = self.types.get_mut(&acl.resource_type) else {
            return;
        };
        let name = acl.resource_name.as_str();
        match acl.pattern_type {
            PatternType::Literal => {
                if let Some(group) = acls.literal.get_mut(name) {
                    group.retain(|(i, _)| *i != id);
                    if group.is_empty() {
                        acls.literal.remove(name);
                    }
                }
            }
            PatternType::Prefixed => {
                if let Some(group) = acls.prefixed.get_mut(name) {
                    group.retain(|(i, _)| *i != id);
                    if group.is_empty() {
                        acls.prefixed.remove(name);
                    }
                }
            }
            _ => {}
        }
        if acls.is_empty() {
            self.types.remove(&acl.resource_type);
        }
    }

    /// The ACLs of exactly this resource pattern.
    pub(crate) fn group(
        &self,
        resource_type: ResourceType,
        pattern_type: PatternType,
        name: &str,
    ) -> &[(Uuid, Arc<StandardAcl>)] {
        let Some(acls) = self.types.get(&resource_type) else {
            return &[];
        };
        let group = match pattern_type {
            PatternType::Literal => acls.literal.get(name),
            PatternType::Prefixed => acls.prefixed.get(name),
            _ => None,
        };
        group.map_or(&[], Vec::as_slice)
    }

    /// Every ACL of `resource_type`, in no particular order.
    pub(crate) fn of_type(
        &self,
        resource_type: ResourceType,
    ) -> impl Iterator<Item = &StandardAcl> + '_ {
        self.types
            .get(&resource_type)
            .into_iter()
            .flat_map(|acls| acls.literal.values().chain(acls.prefixed.values()))
            .flatten()
            .map(|(_, acl)| &**acl)
    }

    /// The groups of ACLs that apply to the resource `resource_type`/`name`: its literal name,
    /// the literal wildcard `*`, and every prefixed pattern that starts the name.
    pub(crate) fn covering<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> Covering<'a> {
        Covering {
            acls: self.types.get(&resource_type),
            name,
            step: Step::Literal,
        }
    }
}

/// The walk of [`AclIndex::covering`], one group at a time.
pub(crate) struct Covering<'a> {
    acls: Option<&'a TypeAcls>,
    name: &'a str,
    step: Step<'a>,
}

enum Step<'a> {
    Literal,
    Wildcard,
    /// The prefixed ACLs that start the name and are at most this prefix of it.
    Prefixed(&'a str),
    Done,
}

impl<'a> Iterator for Covering<'a> {
    type Item = &'a [(Uuid, Arc<StandardAcl>)];

    fn next(&mut self) -> Option<Self::Item> {
        let acls = self.acls?;
        loop {
            match self.step {
                Step::Literal => {
                    self.step = if self.name == WILDCARD_RESOURCE {
                        // The name is the wildcard itself: the same group.
                        Step::Prefixed(self.name)
                    } else {
                        Step::Wildcard
                    };
                    if let Some(group) = acls.literal.get(self.name) {
                        return Some(group);
                    }
                }
                Step::Wildcard => {
                    self.step = Step::Prefixed(self.name);
                    if let Some(group) = acls.literal.get(WILDCARD_RESOURCE) {
                        return Some(group);
                    }
                }
                Step::Prefixed(bound) => {
                    let below = acls
                        .prefixed
                        .range::<str, _>((Bound::Unbounded, Bound::Included(bound)))
                        .next_back();
                    let Some((key, group)) = below else {
                        self.step = Step::Done;
                        return None;
                    };
                    if self.name.starts_with(&**key) {
                        // The next candidates are the proper prefixes of this key.
                        self.step = match key.char_indices().next_back() {
                            Some((last, _)) => Step::Prefixed(&self.name[..last]),
                            None => Step::Done,
                        };
                        return Some(group);
                    }
                    let mut common = key
                        .bytes()
                        .zip(bound.bytes())
                        .take_while(|(a, b)| a == b)
                        .count();
                    while !self.name.is_char_boundary(common) {
                        common -= 1;
                    }
                    self.step = Step::Prefixed(&self.name[..common]);
                }
                Step::Done => return None,
            }
        }
    }
}
