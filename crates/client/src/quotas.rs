//! Client quotas as more [`Admin`] methods: DescribeClientQuotas and AlterClientQuotas (the
//! AdminClient's `describeClientQuotas` / `alterClientQuotas`, KIP-546;
//! `kafka-configs.sh --entity-type clients|users|ips`), sent to any broker.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{ClientError, Result};

/// Kafka's entity type of users.
pub const ENTITY_USER: &str = "user";
/// Kafka's entity type of client ids.
pub const ENTITY_CLIENT_ID: &str = "client-id";
/// Kafka's entity type of client addresses (KIP-612: `connection_creation_rate`).
pub const ENTITY_IP: &str = "ip";

/// How a filter matches the name of one entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// This name.
    Exact(String),
    /// The default entity of the type.
    Default,
    /// Any entity of the type.
    Any,
}

/// Which quotas to describe: per entity type, how its name matches (`None`: the type is not
/// constrained, or, with `strict`, must be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaFilter {
    pub user: Option<QuotaMatch>,
    pub client_id: Option<QuotaMatch>,
    pub ip: Option<QuotaMatch>,
    pub strict: bool,
}

/// A quota entity in Kafka's form: (entity type, name; `None` for the default), user first.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// One entity's quotas, as DescribeClientQuotas reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientQuotaEntry {
    pub entity: QuotaEntity,
    /// (key, value), sorted by key.
    pub values: Vec<(String, f64)>,
}

/// A change to one quota of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaOp {
    Set(String, f64),
    Remove(String),
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// How an entity reads in messages: `client-id=c, user=<default>`.
pub fn entity_display(entity: &[(String, Option<String>)]) -> String {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Admin {
    /// The quotas whose entity matches `filter`, sorted by entity.
    pub async fn describe_client_quotas(
        &mut self,
        filter: &QuotaFilter,
    ) -> Result<Vec<ClientQuotaEntry>> {
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::DescribeClientQuotas)?;
        let component = |t: &str, m: &QuotaMatch| {
            let (match_type, name) = match m {
                QuotaMatch::Exact(n) => (0, Some(str_bytes(n))),
                QuotaMatch::Default => (1, None),
                QuotaMatch::Any => (2, None),
            };
            ComponentData::default()
                .with_entity_type(str_bytes(t))
                .with_match_type(match_type)
                .with_match(name)
        };
        let mut components = Vec::new();
        if let Some(m) = &filter.user {
            components.push(component(ENTITY_USER, m));
        }
        if let Some(m) = &filter.client_id {
            components.push(component(ENTITY_CLIENT_ID, m));
        }
        if let Some(m) = &filter.ip {
            components.push(component(ENTITY_IP, m));
        }
        let req = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(filter.strict);
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "describe client quotas".to_string()
        })?;
        let mut out: Vec<ClientQuotaEntry> = resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let mut entity: QuotaEntity = e
                    .entity
                    .into_iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.map(|n| n.to_string()),
                        )
                    })
                    .collect();
                entity.sort();
                entity.reverse(); // user before client-id
                let mut values: Vec<(String, f64)> = e
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                values.sort_by(|a, b| a.0.cmp(&b.0));
                ClientQuotaEntry { entity, values }
            })
            .collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        Ok(out)
    }

    /// Sets and removes quotas of one entity (AlterClientQuotas); the broker's error, with its
    /// message, if it refuses them.
    pub async fn alter_client_quotas(
        &mut self,
        entity: &[(String, Option<String>)],
        ops: &[QuotaOp],
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::AlterClientQuotas)?;
        let entry = EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(str_bytes(t))
                            .with_entity_name(n.as_deref().map(str_bytes))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|op| match op {
                        QuotaOp::Set(k, v) => OpData::default()
                            .with_key(str_bytes(k))
                            .with_value(*v)
                            .with_remove(false),
                        QuotaOp::Remove(k) => {
                            OpData::default().with_key(str_bytes(k)).with_remove(true)
                        }
                    })
                    .collect(),
            );
        let req = AlterClientQuotasRequest::default()
            .with_entries(vec![entry])
            .with_validate_only(validate_only);
        let resp = conn.send_at(&req, version).await?;
        let r = resp
            .entries
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: "AlterClientQuotas response has no entry".to_string(),
            })?;
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            format!("alter client quotas of {}", entity_display(entity))
        })
    }
}
