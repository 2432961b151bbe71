//! AlterConfigs (key 33, the older, non-incremental form): the given configs become the topic's
//! whole set of overrides (those not named are removed), checked like CreateTopics' configs and
//! committed through the active controller (see IncrementalAlterConfigs). A BROKER resource
//! takes the whole set of its dynamic broker configs the same way.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::incremental_alter_configs::{alter_broker_resource, alter_topic, Checker, ConfigChange};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterConfigs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The changes that make `wanted` the whole set of overrides, or the first bad entry.
fn replace_all(
    current: &BTreeMap<String, String>,
    wanted: &[(String, Option<String>)],
    checker: &Checker<'_>,
) -> Result<Vec<ConfigChange>, (ErrorCode, String)> {
    let mut out = Vec::new();
    for (key, value) in wanted {
        checker.known(key)?;
        let Some(value) = value else {
            return Err((
                ErrorCode::INVALID_REQUEST,
                format!("Null value not supported for config {key}"),
            ));
        };
        checker.value(key, value)?;
        out.push((key.clone(), Some(value.clone())));
    }
    for key in current.keys() {
        if !wanted.iter().any(|(k, _)| k == key) {
            out.push((key.clone(), None));
        }
    }
    Ok(out)
}

/// Handles an AlterConfigs request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: AlterConfigsRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let mut responses = Vec::new();
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let wanted: Vec<(String, Option<String>)> = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let (code, message) = if r.resource_type == RESOURCE_BROKER {
                alter_broker_resource(&broker, &name, req.validate_only, |current, checker| {
                    replace_all(current, &wanted, checker)
                })
                .await
            } else if r.resource_type != RESOURCE_TOPIC {
                (
                    ErrorCode::INVALID_REQUEST,
                    Some("gregor alters topic and broker configurations only".to_string()),
                )
            } else if broker.replicas.topic(&name).is_none() {
                (
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(format!("Topic '{name}' does not exist.")),
                )
            } else {
                let current: BTreeMap<String, String> = broker
                    .replicas
                    .image()
                    .configs()
                    .topic_configs(&name)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                match replace_all(&current, &wanted, &Checker::Topic) {
                    Err((code, message)) => (code, Some(message)),
                    Ok(changes) => alter_topic(&broker, &name, changes, req.validate_only).await,
                }
            };
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_code(code.code())
                    .with_error_message(message.filter(|_| code.code() != 0).map(str_bytes)),
            );
        }
        encode(
            &ctx,
            &AlterConfigsResponse::default().with_responses(responses),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_configs_replace_every_override() {
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_string(), "1000".to_string());
        current.insert("segment.ms".to_string(), "2000".to_string());
        let changes = replace_all(
            &current,
            &[("retention.ms".to_string(), Some("3000".to_string()))],
            &Checker::Topic,
        )
        .expect("valid");
        assert_eq!(
            changes,
            vec![
                ("retention.ms".to_string(), Some("3000".to_string())),
                ("segment.ms".to_string(), None),
            ]
        );
        assert!(replace_all(
            &current,
            &[("retention.ms".to_string(), None)],
            &Checker::Topic
        )
        .is_err());
        assert!(replace_all(
            &current,
            &[("x".to_string(), Some("1".to_string()))],
            &Checker::Topic
        )
        .is_err());
    }
}
