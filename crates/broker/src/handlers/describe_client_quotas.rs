//! DescribeClientQuotas (key 48): the client quotas of the applied metadata image whose entity
//! matches the request's filter (KIP-546; `kafka-configs --describe --entity-type clients`).
//!
//! Each filter component names an entity type (`user`, `client-id`) and how its name must
//! match: EXACT (this name), DEFAULT (the default entity), ANY (any entity of the type). With
//! `strict`, an entity matches only if it has no other types than the filter's. As in Kafka's
//! `ClientQuotasImage.describe`, ANY also matches the default entity of the type. A malformed
//! filter is the whole request's INVALID_REQUEST with Kafka's message.
//!
//! The principal needs DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{
    AclOperation, ClientQuotaEntity, ClientQuotasImage, QuotaEntityName, QUOTA_ENTITY_CLIENT_ID,
    QUOTA_ENTITY_USER,
};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_client_quotas_request::ComponentData;
use gregor_protocol::messages::describe_client_quotas_response::{
    EntityData, EntryData, ValueData,
};
use gregor_protocol::messages::{
    ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use super::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeClientQuotas;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// How one entity type of the filter must match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// This name, or the default entity.
    Exactly(QuotaEntityName),
    /// Any entity of the type.
    Any,
}

/// The filter: per entity type (user, client id), how it must match.
#[derive(Debug, Default)]
struct Filter {
    user: Option<Match>,
    client_id: Option<Match>,
    ip: Option<Match>,
    strict: bool,
}

fn parse_filter(components: &[ComponentData], strict: bool) -> Result<Filter, String> {
    let mut filter = Filter {
        strict,
        ..Filter::default()
    };
    for c in components {
        let entity_type = c.entity_type.as_str();
        let m = match (c.match_type, &c._match) {
            (MATCH_EXACT, Some(name)) => Match::Exactly(QuotaEntityName::Named(name.to_string())),
            (MATCH_EXACT, None) => {
                return Err(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".to_string(),
                )
            }
            (MATCH_DEFAULT, Some(_)) => {
                return Err(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .to_string(),
                )
            }
            (MATCH_ANY, Some(_)) => {
                return Err(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .to_string(),
                )
            }
            (MATCH_DEFAULT, None) => Match::Exactly(QuotaEntityName::Default),
            (MATCH_ANY, None) => Match::Any,
            (other, _) => return Err(format!("Unknown match type {other}")),
        };
        let slot = match entity_type {
            QUOTA_ENTITY_USER => &mut filter.user,
            QUOTA_ENTITY_CLIENT_ID => &mut filter.client_id,
            gregor_metadata::QUOTA_ENTITY_IP => &mut filter.ip,
            other => return Err(format!("Custom entity type '{other}' not supported")),
        };
        if slot.replace(m).is_some() {
            return Err(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            ));
        }
    }
    // Kafka's `ClientQuotasImage.describe`.
    if filter.ip.is_some() && (filter.user.is_some() || filter.client_id.is_some()) {
        return Err(
            "Invalid entity filter component combination. IP filter component should \
                    not be used with user or clientId filter component."
                .to_string(),
        );
    }
    Ok(filter)
}

fn part_matches(part: &Option<QuotaEntityName>, m: &Option<Match>, strict: bool) -> bool {
    match (m, part) {
        (None, None) => true,
        (None, Some(_)) => !strict,
        (Some(_), None) => false,
        (Some(Match::Any), Some(_)) => true,
        (Some(Match::Exactly(want)), Some(name)) => want == name,
    }
}

impl Filter {
    fn matches(&self, e: &ClientQuotaEntity) -> bool {
        part_matches(&e.user, &self.user, self.strict)
            && part_matches(&e.client_id, &self.client_id, self.strict)
            && part_matches(&e.ip, &self.ip, self.strict)
    }
}

/// The entity in Kafka's form: (type, name or null for the default), user first.
pub(crate) fn entity_parts(e: &ClientQuotaEntity) -> Vec<(&'static str, Option<String>)> {
    [
        (QUOTA_ENTITY_USER, &e.user),
        (QUOTA_ENTITY_CLIENT_ID, &e.client_id),
        (gregor_metadata::QUOTA_ENTITY_IP, &e.ip),
    ]
    .into_iter()
    .filter_map(|(t, n)| n.as_ref().map(|n| (t, n.as_option().map(str::to_string))))
    .collect()
}

fn describe(quotas: &ClientQuotasImage, filter: &Filter) -> Vec<EntryData> {
    quotas
        .entities()
        .filter(|(e, _)| filter.matches(e))
        .map(|(e, values)| {
            EntryData::default()
                .with_entity(
                    entity_parts(e)
                        .into_iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(t))
                                .with_entity_name(n.map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect()
}

/// Handles a DescribeClientQuotas request. The principal needs DESCRIBE_CONFIGS on the cluster
/// (Kafka's `handleDescribeClientQuotasRequest`); without it the request is
/// CLUSTER_AUTHORIZATION_FAILED without entries.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)))
            .with_entries(None);
    }
    match parse_filter(&req.components, req.strict) {
        Ok(filter) => {
            let image = broker.replicas.image();
            DescribeClientQuotasResponse::default()
                .with_entries(Some(describe(image.client_quotas(), &filter)))
        }
        Err(message) => DescribeClientQuotasResponse::default()
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::controller::alter_client_quota;
    use gregor_metadata::{MetadataDelta, MetadataImage, MetadataProvenance};

    fn component(t: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(str_bytes(t))
            .with_match_type(match_type)
            .with_match(name.map(str_bytes))
    }

    fn named(n: &str) -> Option<QuotaEntityName> {
        Some(QuotaEntityName::Named(n.into()))
    }

    fn image() -> Arc<ClientQuotasImage> {
        let entities = [
            ClientQuotaEntity {
                user: None,
                client_id: named("a"),
                ip: None,
            },
            ClientQuotaEntity {
                user: None,
                client_id: Some(QuotaEntityName::Default),
                ip: None,
            },
            ClientQuotaEntity {
                user: named("u"),
                client_id: named("a"),
                ip: None,
            },
            ClientQuotaEntity {
                user: named("u"),
                client_id: None,
                ip: None,
            },
        ];
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for e in &entities {
            delta
                .replay(&alter_client_quota(e, "producer_byte_rate", Some(100.0)).expect("ok"))
                .expect("replays");
        }
        Arc::clone(delta.apply(MetadataProvenance::EMPTY).client_quotas())
    }

    fn described(components: &[ComponentData], strict: bool) -> Vec<Vec<(String, Option<String>)>> {
        let filter = parse_filter(components, strict).expect("valid filter");
        describe(&image(), &filter)
            .into_iter()
            .map(|e| {
                e.entity
                    .into_iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.map(|n| n.to_string()),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    fn client(n: Option<&str>) -> Vec<(String, Option<String>)> {
        vec![("client-id".to_string(), n.map(str::to_string))]
    }

    #[test]
    fn exact_default_any_and_strict() {
        // EXACT client a, not strict: the client's own entity and the user's client a.
        let found = described(&[component("client-id", MATCH_EXACT, Some("a"))], false);
        assert_eq!(found.len(), 2);
        assert!(found.contains(&client(Some("a"))));
        // Strict: only the entity with nothing but the client id.
        assert_eq!(
            described(&[component("client-id", MATCH_EXACT, Some("a"))], true),
            vec![client(Some("a"))]
        );
        // DEFAULT client id.
        assert_eq!(
            described(&[component("client-id", MATCH_DEFAULT, None)], true),
            vec![client(None)]
        );
        // ANY client id, strict: both client-only entities (named and default).
        assert_eq!(
            described(&[component("client-id", MATCH_ANY, None)], true).len(),
            2
        );
        // No components, not strict: everything; strict: nothing.
        assert_eq!(described(&[], false).len(), 4);
        assert_eq!(described(&[], true).len(), 0);
    }

    #[test]
    fn malformed_filters_are_refused() {
        for (components, want) in [
            (
                vec![component("client-id", MATCH_EXACT, None)],
                "MATCH_TYPE_EXACT",
            ),
            (
                vec![component("client-id", MATCH_DEFAULT, Some("x"))],
                "MATCH_TYPE_DEFAULT, but also",
            ),
            (
                vec![component("client-id", MATCH_ANY, Some("x"))],
                "MATCH_TYPE_SPECIFIED, but also",
            ),
            (vec![component("client-id", 7, None)], "Unknown match type"),
            (vec![component("group", MATCH_ANY, None)], "not supported"),
            (
                vec![
                    component("user", MATCH_ANY, None),
                    component("user", MATCH_DEFAULT, None),
                ],
                "more than once",
            ),
        ] {
            let e = parse_filter(&components, false).expect_err("refused");
            assert!(e.contains(want), "{e}");
        }
    }

    /// With an authorizer: DESCRIBE_CONFIGS on the cluster, else CLUSTER_AUTHORIZATION_FAILED
    /// and no entries.
    #[test]
    fn describing_quotas_needs_describe_configs_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let alice = ctx_of("alice", KEY, 1);
        let resp = handle(&b, &alice, DescribeClientQuotasRequest::default());
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(resp.entries.is_none());
        allow_cluster(&b, "User:alice", AclOperation::DescribeConfigs);
        let resp = handle(&b, &alice, DescribeClientQuotasRequest::default());
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.entries.map(|e| e.len()), Some(0));
    }
}
