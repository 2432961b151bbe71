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
//! number of ACLs. The image is immutable and shared. A metadata delta copies it on its first
//! ACL record and updates the copy in place for the rest of the batch. Each map is cut into
//! [`SHARDS`] `Arc`'d pieces, so that copy takes only the pieces the record changes.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
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

/// How many pieces each map is cut into: a delta copies only the piece an ACL record changes.
const SHARDS: usize = 64;

/// The ACLs of one resource type, each map in [`SHARDS`] shared pieces.
#[derive(Debug, Clone, Default)]
struct TypeAcls {
    /// LITERAL ACLs by resource name, `*` included, looked up by the exact name; the piece
    /// is chosen by a hash of the name.
    literal: Vec<Arc<HashMap<Arc<str>, AclGroup>>>,
    /// PREFIXED ACLs by resource name, sorted, walked for the prefixes of a name; the piece is
    /// chosen by the name's first byte, which every prefix of a name shares (but the empty
    /// one, which the controller refuses and the walk still looks up).
    prefixed: Vec<Arc<BTreeMap<Arc<str>, AclGroup>>>,
}

fn literal_shard(name: &str) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    (hasher.finish() % SHARDS as u64) as usize
}

fn prefixed_shard(name: &str) -> usize {
    name.as_bytes()
        .first()
        .map_or(0, |b| usize::from(*b) % SHARDS)
}

/// The piece `i` to change, copied first if an image still shares it.
fn shard_mut<M: Clone + Default>(shards: &mut Vec<Arc<M>>, i: usize) -> &mut M {
    if shards.is_empty() {
        shards.resize_with(SHARDS, Default::default);
    }
    Arc::make_mut(&mut shards[i])
}

/// Removes the ACL of `id` from the group of `name` in `map`, and the group once empty.
fn remove_from<M>(map: &mut M, name: &str, id: Uuid)
where
    M: GroupMap,
{
    if let Some(group) = map.group_mut(name) {
        group.retain(|(i, _)| *i != id);
        if group.is_empty() {
            map.remove_group(name);
        }
    }
}

/// The two maps of groups, by name.
trait GroupMap {
    fn group_mut(&mut self, name: &str) -> Option<&mut AclGroup>;
    fn remove_group(&mut self, name: &str);
}

impl GroupMap for HashMap<Arc<str>, AclGroup> {
    fn group_mut(&mut self, name: &str) -> Option<&mut AclGroup> {
        self.get_mut(name)
    }

    fn remove_group(&mut self, name: &str) {
        self.remove(name);
    }
}

impl GroupMap for BTreeMap<Arc<str>, AclGroup> {
    fn group_mut(&mut self, name: &str) -> Option<&mut AclGroup> {
        self.get_mut(name)
    }

    fn remove_group(&mut self, name: &str) {
        self.remove(name);
    }
}

impl TypeAcls {
    fn literal(&self, name: &str) -> Option<&AclGroup> {
        self.literal.get(literal_shard(name))?.get(name)
    }

    fn prefixed(&self, name: &str) -> Option<&BTreeMap<Arc<str>, AclGroup>> {
        self.prefixed.get(prefixed_shard(name)).map(|m| &**m)
    }
}

impl AclIndex {
    /// Adds the ACL of `id`. An ACL of another pattern type applies to nothing (the controller
    /// and the replay refuse them) and is left out.
    pub(crate) fn insert(&mut self, id: Uuid, acl: &Arc<StandardAcl>) {
        let acls = self.types.entry(acl.resource_type).or_default();
        let name = acl.resource_name.as_str();
        let group = match acl.pattern_type {
            PatternType::Literal => {
                let map = shard_mut(&mut acls.literal, literal_shard(name));
                match map.contains_key(name) {
                    true => map.get_mut(name),
                    false => Some(map.entry(Arc::from(name)).or_default()),
                }
            }
            PatternType::Prefixed => {
                let map = shard_mut(&mut acls.prefixed, prefixed_shard(name));
                match map.contains_key(name) {
                    true => map.get_mut(name),
                    false => Some(map.entry(Arc::from(name)).or_default()),
                }
            }
            _ => None,
        };
        let Some(group) = group else {
            return;
        };
        group.push((id, acl.clone()));
    }

    /// Removes the ACL of `id` (`acl` is what it was).
    pub(crate) fn remove(&mut self, id: Uuid, acl: &StandardAcl) {
        let Some(acls) = self.types.get_mut(&acl.resource_type) else {
            return;
        };
        let name = acl.resource_name.as_str();
        // Only a piece that holds the ACL is copied.
        match acl.pattern_type {
            PatternType::Literal if acls.literal(name).is_some() => {
                let map = shard_mut(&mut acls.literal, literal_shard(name));
                remove_from(map, name, id);
            }
            PatternType::Prefixed if acls.prefixed(name).is_some_and(|m| m.contains_key(name)) => {
                let map = shard_mut(&mut acls.prefixed, prefixed_shard(name));
                remove_from(map, name, id);
            }
            _ => {}
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
            PatternType::Literal => acls.literal(name),
            PatternType::Prefixed => acls.prefixed(name).and_then(|m| m.get(name)),
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
            .flat_map(|acls| {
                let literal = acls.literal.iter().flat_map(|m| m.values());
                literal.chain(acls.prefixed.iter().flat_map(|m| m.values()))
            })
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
    /// A prefixed ACL on the empty name, in its own piece unless the name is empty.
    EmptyPrefix,
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
                    if let Some(group) = acls.literal(self.name) {
                        return Some(group);
                    }
                }
                Step::Wildcard => {
                    self.step = Step::Prefixed(self.name);
                    if let Some(group) = acls.literal(WILDCARD_RESOURCE) {
                        return Some(group);
                    }
                }
                Step::Prefixed(bound) => {
                    let below = acls.prefixed(self.name).and_then(|m| {
                        m.range::<str, _>((Bound::Unbounded, Bound::Included(bound)))
                            .next_back()
                    });
                    let Some((key, group)) = below else {
                        self.step = Step::EmptyPrefix;
                        continue;
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
                Step::EmptyPrefix => {
                    self.step = Step::Done;
                    if prefixed_shard(self.name) != prefixed_shard("") {
                        if let Some(group) = acls.prefixed("").and_then(|m| m.get("")) {
                            return Some(group);
                        }
                    }
                }
                Step::Done => return None,
            }
        }
    }
}
