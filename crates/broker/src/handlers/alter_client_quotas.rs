//! AlterClientQuotas (key 49): sets or removes client quotas (KIP-546;
//! `kafka-configs --alter --entity-type clients --add-config producer_byte_rate=...`,
//! `gregor quotas alter`). The broker checks each entry's values, the active controller
//! checks the entity and keys and commits each entry's changes to the metadata log
//! (`ClientQuotaRecord`), and the reply waits until this node has applied them. A refused
//! entry has its own error (INVALID_REQUEST with Kafka's message) and does not stop the others.
//!
//! The principal needs ALTER_CONFIGS on the cluster; without it every entry is
//! CLUSTER_AUTHORIZATION_FAILED.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, ClientQuotaEntity, MetadataImage, QuotaEntityName};
use gregor_metadata::{QUOTA_ENTITY_CLIENT_ID, QUOTA_ENTITY_USER};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use gregor_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey};

use super::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterClientQuotas;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// One entry as the controller takes it, or why the broker refuses it first.
fn alteration(
    entry: &gregor_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<proto::ClientQuotaAlteration, String> {
    let mut ops = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        if !op.remove && !op.value.is_finite() {
            return Err(format!(
                "Invalid value {} for quota {}: not a number",
                op.value, op.key
            ));
        }
        ops.push((op.key.to_string(), (!op.remove).then_some(op.value)));
    }
    Ok(proto::ClientQuotaAlteration {
        entity: entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect(),
        ops,
    })
}

/// The entity the image keys the quotas by, when the parts are the ones gregor knows.
fn image_entity(parts: &[(String, Option<String>)]) -> Option<ClientQuotaEntity> {
    let mut entity = ClientQuotaEntity {
        user: None,
        client_id: None,
        ip: None,
    };
    for (t, n) in parts {
        let name = QuotaEntityName::from_option(n.as_deref());
        match t.as_str() {
            QUOTA_ENTITY_USER => entity.user = Some(name),
            QUOTA_ENTITY_CLIENT_ID => entity.client_id = Some(name),
            gregor_metadata::QUOTA_ENTITY_IP => entity.ip = Some(name),
            _ => return None,
        }
    }
    Some(entity)
}

/// Waits (a few seconds at most) until this node's image shows every committed change.
async fn wait_applied(node: &dyn AdminNode, applied: &[proto::ClientQuotaAlteration]) {
    let wanted: Vec<(ClientQuotaEntity, String, Option<f64>)> = applied
        .iter()
        .filter_map(|a| Some((image_entity(&a.entity)?, &a.ops)))
        .flat_map(|(e, ops)| ops.iter().map(move |(k, v)| (e.clone(), k.clone(), *v)))
        .collect();
    let shows = |image: &MetadataImage| {
        wanted
            .iter()
            .all(|(e, k, v)| image.client_quotas().quota(e, k) == *v)
    };
    let mut images = node.watch_image();
    let wait = async {
        loop {
            if shows(&images.borrow_and_update()) || images.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
}

/// Handles an AlterClientQuotas request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: AlterClientQuotasRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = alter_client_quotas(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// Every entry refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `AlterClientQuotasRequest.getErrorResponse`).
fn denied(req: &AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let entries = req
        .entries
        .iter()
        .map(|entry| {
            EntryData::default()
                .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
                .with_error_message(Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)))
                .with_entity(entities(entry))
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// An entry's entity, as the answer echoes it.
fn entities(
    entry: &gregor_protocol::messages::alter_client_quotas_request::EntryData,
) -> Vec<EntityData> {
    entry
        .entity
        .iter()
        .map(|e| {
            EntityData::default()
                .with_entity_type(e.entity_type.clone())
                .with_entity_name(e.entity_name.clone())
        })
        .collect()
}

/// Checks, asks the controller, and waits for the changes here. The principal needs
/// ALTER_CONFIGS on the cluster (Kafka's `ControllerApis.handleAlterClientQuotas`).
async fn alter_client_quotas(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    if !authorizer::authorize_cluster(node, ctx, AclOperation::AlterConfigs) {
        return denied(&req);
    }
    // Kafka answers once per entity (`ClientQuotaControlManager.alterClientQuotas`): an entity
    // the request names more than once, or whose entry names a key twice, is answered
    // INVALID_REQUEST "Ignoring duplicate entity ..."; only its first entry is applied, and only
    // when that entry names no key twice. Later entries of an entity are not answered.
    let repeats = Repeats::of(&req.entries);
    // Per first entry of an entity: the broker's refusal, or the alteration for the controller.
    let checked: Vec<Option<Result<proto::ClientQuotaAlteration, String>>> = req
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let first = repeats.first_of[i] == i;
            first.then(|| {
                if names_a_key_twice(entry) {
                    Err(ignoring_duplicate(entry))
                } else {
                    alteration(entry)
                }
            })
        })
        .collect();
    // An `ip` entity named by a host name must resolve, as Kafka's controller checks
    // (`isValidIpEntity`); the controller takes the name as written.
    let mut checked = checked;
    for entry in checked.iter_mut().flatten() {
        let Some(host) = entry.as_ref().ok().and_then(|a| host_named_ip(&a.entity)) else {
            continue;
        };
        if !resolves(&host).await {
            *entry = Err(format!("{host} is not a valid IP or resolvable host."));
        }
    }
    let to_send: Vec<proto::ClientQuotaAlteration> =
        checked.iter().filter_map(|c| c.clone()?.ok()).collect();
    let mut answers: Vec<(ErrorCode, Option<String>)> = Vec::new();
    if !to_send.is_empty() {
        let request = ControllerRequest::AlterClientQuotas(proto::AlterClientQuotasRequest {
            entries: to_send.clone(),
            validate_only: req.validate_only,
        });
        let failure = |code, message| vec![(code, Some(message)); to_send.len()];
        answers = match node.controller().call(request).await {
            Ok(ControllerResponse::AlterClientQuotas(resp))
                if resp.results.len() == to_send.len() =>
            {
                resp.results
                    .into_iter()
                    .map(|r| (ErrorCode(r.error_code), r.error_message))
                    .collect()
            }
            Ok(other) => {
                let (code, message) = super::create_topics::controller_failure(&other);
                failure(code, message)
            }
            Err(e) => failure(ErrorCode::REQUEST_TIMED_OUT, e.to_string()),
        };
        if !req.validate_only {
            let applied: Vec<proto::ClientQuotaAlteration> = to_send
                .iter()
                .zip(&answers)
                .filter(|(_, (code, _))| code.code() == 0)
                .map(|(a, _)| a.clone())
                .collect();
            wait_applied(node, &applied).await;
        }
    }
    let mut answers = answers.into_iter();
    let entries = req
        .entries
        .iter()
        .zip(checked)
        .enumerate()
        .filter_map(|(i, (entry, checked))| {
            let (code, message) = match checked? {
                Err(message) => (ErrorCode::INVALID_REQUEST, Some(message)),
                Ok(_) => answers.next().unwrap_or((
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    Some("no answer from the controller".into()),
                )),
            };
            let (code, message) = if repeats.count[i] > 1 {
                (ErrorCode::INVALID_REQUEST, Some(ignoring_duplicate(entry)))
            } else {
                (code, message)
            };
            Some(
                EntryData::default()
                    .with_error_code(code.code())
                    .with_error_message(message.filter(|_| code.code() != 0).map(str_bytes))
                    .with_entity(entities(entry)),
            )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

type RequestEntry = gregor_protocol::messages::alter_client_quotas_request::EntryData;

/// The host name of an entity that is an `ip` alone, named by a host name (not an address).
fn host_named_ip(parts: &[(String, Option<String>)]) -> Option<String> {
    let [(entity_type, Some(name))] = parts else {
        return None;
    };
    (entity_type == gregor_metadata::QUOTA_ENTITY_IP
        && name.parse::<std::net::IpAddr>().is_err()
        && gregor_metadata::controller::is_host_name(name))
    .then(|| name.clone())
}

/// Whether `host` resolves to an address (within a few seconds).
async fn resolves(host: &str) -> bool {
    let lookup = tokio::net::lookup_host((host, 0));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(mut addresses)) => addresses.next().is_some(),
        _ => false,
    }
}

/// Which entries of a request name the same entity: Kafka's `ClientQuotaEntity` is a map of
/// entity type to name, so the parts' order does not matter (and a type given twice keeps its
/// last name, as Java's `HashMap.put`).
struct Repeats {
    /// By entry: the index of the first entry naming its entity.
    first_of: Vec<usize>,
    /// By first entry: how many entries name its entity.
    count: Vec<usize>,
}

impl Repeats {
    fn of(entries: &[RequestEntry]) -> Repeats {
        let mut firsts: std::collections::HashMap<Vec<(&str, Option<&str>)>, usize> =
            std::collections::HashMap::new();
        let first_of: Vec<usize> = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| *firsts.entry(entity_map(entry)).or_insert(i))
            .collect();
        let mut count = vec![0; entries.len()];
        for &first in &first_of {
            count[first] += 1;
        }
        Repeats { first_of, count }
    }
}

/// An entry's entity as Kafka's map: (type, name) by type, the last name of a repeated type.
fn entity_map(entry: &RequestEntry) -> Vec<(&str, Option<&str>)> {
    let map: std::collections::BTreeMap<&str, Option<&str>> = entry
        .entity
        .iter()
        .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()))
        .collect();
    map.into_iter().collect()
}

/// Whether the entry's operations name a quota key more than once.
fn names_a_key_twice(entry: &RequestEntry) -> bool {
    let mut keys = std::collections::HashSet::new();
    !entry.ops.iter().all(|op| keys.insert(op.key.as_str()))
}

/// Kafka's answer to an entity named more than once (or with a key named twice):
/// `Ignoring duplicate entity ClientQuotaEntity(entries={...})`.
fn ignoring_duplicate(entry: &RequestEntry) -> String {
    let parts: Vec<(&str, Option<&str>)> = entry
        .entity
        .iter()
        .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()))
        .collect();
    format!(
        "Ignoring duplicate entity ClientQuotaEntity(entries={})",
        java_hash_map_text(&parts)
    )
}

/// Java's `HashMap.toString` of the map Kafka builds from an entity's parts
/// (`new HashMap<>(parts.size())`, then `put` each in order): `{type=name, ...}`, a null name
/// as `null`, in the map's iteration order; a repeated type keeps its first place and its last
/// name.
fn java_hash_map_text(parts: &[(&str, Option<&str>)]) -> String {
    let order = gregor_group::streams_group::topology::java_hash_order_sized(
        parts.iter().map(|(key, _)| *key),
        parts.len(),
    );
    let entries: Vec<String> = order
        .iter()
        .map(|key| {
            let name = parts
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .and_then(|(_, n)| *n);
            format!("{key}={}", name.unwrap_or("null"))
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_cluster, ctx_of};
    use gregor_protocol::messages::alter_client_quotas_request::{
        EntityData as RequestEntity, EntryData as RequestEntry, OpData,
    };

    /// Java's own `HashMap.toString` of these maps (Java 17), as Kafka writes them.
    #[test]
    fn entities_print_in_java_s_hash_map_order() {
        for (parts, java) in [
            (
                vec![("user", Some("repeat-v")), ("client-id", Some("c"))],
                "{client-id=c, user=repeat-v}",
            ),
            (
                vec![("client-id", Some("c")), ("user", Some("repeat-v"))],
                "{client-id=c, user=repeat-v}",
            ),
            (
                vec![
                    ("ip", Some("1.2.3.4")),
                    ("user", Some("u")),
                    ("client-id", Some("c")),
                ],
                "{client-id=c, user=u, ip=1.2.3.4}",
            ),
            (
                vec![("client-id", None), ("ip", None), ("user", Some("x"))],
                "{client-id=null, user=x, ip=null}",
            ),
            (vec![("user", Some("a")), ("user", Some("b"))], "{user=b}"),
            (
                vec![
                    ("foo", Some("1")),
                    ("bar", Some("2")),
                    ("user", Some("3")),
                    ("client-id", Some("4")),
                ],
                "{bar=2, client-id=4, user=3, foo=1}",
            ),
        ] {
            assert_eq!(java_hash_map_text(&parts), java, "{parts:?}");
        }
    }

    fn entry(parts: &[(&str, &str)], keys: &[&str]) -> RequestEntry {
        RequestEntry::default()
            .with_entity(
                parts
                    .iter()
                    .map(|(t, n)| {
                        RequestEntity::default()
                            .with_entity_type(str_bytes(*t))
                            .with_entity_name(Some(str_bytes(*n)))
                    })
                    .collect(),
            )
            .with_ops(
                keys.iter()
                    .map(|k| OpData::default().with_key(str_bytes(*k)).with_value(1.0))
                    .collect(),
            )
    }

    #[test]
    fn entries_naming_the_same_entity_are_found_in_any_order() {
        let entries = [
            entry(
                &[("user", "a"), ("client-id", "c")],
                &["producer_byte_rate"],
            ),
            entry(
                &[("user", "b")],
                &["producer_byte_rate", "producer_byte_rate"],
            ),
            entry(
                &[("client-id", "c"), ("user", "a")],
                &["consumer_byte_rate"],
            ),
            entry(&[("user", "a")], &["producer_byte_rate"]),
            entry(
                &[("client-id", "c"), ("user", "a")],
                &["producer_byte_rate"],
            ),
        ];
        let repeats = Repeats::of(&entries);
        assert_eq!(repeats.first_of, vec![0, 1, 0, 3, 0]);
        assert_eq!(repeats.count, vec![3, 1, 0, 1, 0]);
        assert!(names_a_key_twice(&entries[1]));
        assert!(!names_a_key_twice(&entries[0]));
        assert_eq!(
            ignoring_duplicate(&entries[2]),
            "Ignoring duplicate entity ClientQuotaEntity(entries={client-id=c, user=a})"
        );
    }

    /// With an authorizer: ALTER_CONFIGS on the cluster, else every entry is
    /// CLUSTER_AUTHORIZATION_FAILED with its entity; allowed, the entries go to the controller
    /// (which unit tests do not have for quotas).
    #[tokio::test]
    async fn altering_quotas_needs_alter_configs_on_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let req = AlterClientQuotasRequest::default().with_entries(vec![RequestEntry::default()
            .with_entity(vec![RequestEntity::default()
                .with_entity_type(str_bytes(QUOTA_ENTITY_CLIENT_ID))
                .with_entity_name(Some(str_bytes("app")))])
            .with_ops(vec![OpData::default()
                .with_key(str_bytes("producer_byte_rate"))
                .with_value(1024.0)])]);
        let alice = ctx_of("alice", KEY, 1);
        let resp = alter_client_quotas(&b, &alice, req.clone()).await;
        assert_eq!(resp.entries.len(), 1);
        let entry = &resp.entries[0];
        assert_eq!(
            entry.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert_eq!(
            entry.error_message.as_deref(),
            Some(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)
        );
        assert_eq!(
            entry.entity[0].entity_name.as_deref(),
            Some("app"),
            "the entity is echoed"
        );
        allow_cluster(&b, "User:alice", AclOperation::AlterConfigs);
        let resp = alter_client_quotas(&b, &alice, req).await;
        assert_eq!(
            resp.entries[0].error_code,
            gregor_metadata::code::NOT_CONTROLLER
        );
    }
}
