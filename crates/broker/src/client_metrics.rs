//! Client metrics subscriptions (Kafka's `ConfigResource.Type.CLIENT_METRICS`, KIP-714): named
//! sets of `metrics` (metric name prefixes), `interval.ms` (the push interval) and `match`
//! (client selectors), kept in the metadata log as config records.
//!
//! ```text
//! kafka-client-metrics --alter --name sub1 --metrics p. --interval 60000
//!    ─► IncrementalAlterConfigs (CLIENT_METRICS, "sub1")
//!    ─► check_key / check_value (Kafka's ClientMetricsConfigs: names, types, interval range,
//!       match patterns) ─► the controller (ConfigRecord, resource type 16) ─► every image
//! kafka-client-metrics --list ─► ListConfigResources (v0 or v1, CLIENT_METRICS)
//! kafka-client-metrics --describe ─► DescribeConfigs (CLIENT_METRICS) ─► describe
//! kafka-client-metrics --delete ─► IncrementalAlterConfigs DELETE of every key: the
//!    subscription goes with its last config
//! ```
//!
//! gregor stores and serves subscriptions for the admin tools only: it has no telemetry
//! receiver, so (as Kafka without a `ClientTelemetry` plugin) it does not advertise
//! GetTelemetrySubscriptions or PushTelemetry, and no client ever receives a subscription.

use std::collections::BTreeMap;

use gregor_protocol::error::ErrorCode;

use crate::broker_configs::{config_type, DescribedKey, SOURCE_DEFAULT};

/// Kafka's `ConfigSource.CLIENT_METRICS_CONFIG` (`DYNAMIC_CLIENT_METRICS_CONFIG` in the admin
/// client).
pub const SOURCE_CLIENT_METRICS: i8 = 7;

/// `interval.ms`'s bounds, inclusive (Kafka's `ClientMetricsConfigs`).
const INTERVAL_MS_MIN: i64 = 100;
const INTERVAL_MS_MAX: i64 = 3_600_000;

/// The keys a `match` entry may select on (Kafka's `ClientMetricsConfigs.ALLOWED_MATCH_PARAMS`).
pub const MATCH_PARAMS: &[&str] = &[
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// One subscription key: its name, Kafka's type, default and documentation.
#[derive(Debug, Clone, Copy)]
pub struct ClientMetricsKey {
    pub name: &'static str,
    pub config_type: i8,
    pub default: &'static str,
    pub documentation: &'static str,
}

/// Kafka 4.4's `ClientMetricsConfigs.CONFIG`, in the order DescribeConfigs lists them.
pub const KEYS: &[ClientMetricsKey] = &[
    ClientMetricsKey {
        name: "interval.ms",
        config_type: config_type::INT,
        default: "300000",
        documentation: "Metrics push interval in milliseconds",
    },
    ClientMetricsKey {
        name: "match",
        config_type: config_type::LIST,
        default: "",
        documentation: "Client match criteria",
    },
    ClientMetricsKey {
        name: "metrics",
        config_type: config_type::LIST,
        default: "",
        documentation: "Telemetry metric name prefix list",
    },
];

/// A refusal: the error code and Kafka's message.
pub type Refusal = (ErrorCode, String);

/// Kafka's check of a subscription's name (`ClientMetricsConfigs.validate`).
pub fn check_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err((
            ErrorCode::INVALID_REQUEST,
            "Subscription name can't be empty".to_string(),
        ));
    }
    Ok(())
}

/// Kafka's `validateConfigs` of a key's name: one of [`KEYS`], else INVALID_REQUEST.
pub fn check_key(name: &str) -> Result<(), Refusal> {
    if KEYS.iter().any(|k| k.name == name) {
        Ok(())
    } else {
        Err((
            ErrorCode::INVALID_REQUEST,
            format!("Unknown client metrics configuration: {name}"),
        ))
    }
}

/// The items of a LIST value as Kafka's `ConfigDef` parses it: split on commas, each trimmed;
/// an empty (or blank) value is the empty list.
fn list_items(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// Kafka's checks of one value: the type (`ConfigDef.parse`, INVALID_CONFIG), the push
/// interval's range (INVALID_REQUEST) and each match pattern (`key=regex`, a known key and a
/// valid regular expression; INVALID_CONFIG). Kafka's messages.
pub fn check_value(name: &str, value: &str) -> Result<(), Refusal> {
    check_key(name)?;
    match name {
        "interval.ms" => {
            let n: i64 = value
                .trim()
                .parse()
                .ok()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| {
                    (
                        ErrorCode::INVALID_CONFIG,
                        format!(
                            "Invalid value {value} for configuration {name}: Not a number of \
                             type INT"
                        ),
                    )
                })?;
            if !(INTERVAL_MS_MIN..=INTERVAL_MS_MAX).contains(&n) {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!(
                        "Invalid value {n} for {name}, interval must be between \
                         {INTERVAL_MS_MIN} and {INTERVAL_MS_MAX} (1 hour)"
                    ),
                ));
            }
        }
        "match" => {
            for pattern in list_items(value) {
                check_match_pattern(pattern)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// One `match` entry: exactly one `=` between a known key and a regular expression (Java's
/// `String.split("=")`, which drops trailing empty parts, so `client_id=` is refused too).
fn check_match_pattern(pattern: &str) -> Result<(), Refusal> {
    let illegal = || {
        (
            ErrorCode::INVALID_CONFIG,
            format!("Illegal client matching pattern: {pattern}"),
        )
    };
    let mut parts: Vec<&str> = pattern.split('=').collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    let [key, regex] = parts.as_slice() else {
        return Err(illegal());
    };
    if !MATCH_PARAMS.contains(&key.trim()) {
        return Err(illegal());
    }
    regex::Regex::new(regex.trim()).map_err(|_| illegal())?;
    Ok(())
}

/// Every key of a subscription as Kafka 4.4 describes it: set ones with
/// CLIENT_METRICS_CONFIG and themselves as their one synonym, the others with their default
/// (DEFAULT_CONFIG, no synonyms). A subscription that does not exist shows every default.
pub fn describe(configs: &BTreeMap<String, String>) -> Vec<DescribedKey> {
    KEYS.iter()
        .map(|k| match configs.get(k.name) {
            Some(v) => DescribedKey {
                name: k.name,
                value: v.clone(),
                source: SOURCE_CLIENT_METRICS,
                config_type: k.config_type,
                documentation: k.documentation,
                synonyms: vec![(k.name.to_string(), Some(v.clone()), SOURCE_CLIENT_METRICS)],
            },
            None => DescribedKey {
                name: k.name,
                value: k.default.to_string(),
                source: SOURCE_DEFAULT,
                config_type: k.config_type,
                documentation: k.documentation,
                synonyms: Vec::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_controllers() {
        let mut ours: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let mut controllers = gregor_metadata::controller::CLIENT_METRICS_CONFIGS.to_vec();
        ours.sort_unstable();
        controllers.sort_unstable();
        assert_eq!(ours, controllers);
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        assert!(check_value("interval.ms", "60000").is_ok());
        assert!(check_value("interval.ms", "100").is_ok());
        assert!(check_value("interval.ms", "3600000").is_ok());
        assert_eq!(
            check_value("interval.ms", "50"),
            Err((
                ErrorCode::INVALID_REQUEST,
                "Invalid value 50 for interval.ms, interval must be between 100 and 3600000 \
                 (1 hour)"
                    .to_string()
            ))
        );
        assert_eq!(
            check_value("interval.ms", "x").map_err(|e| e.0),
            Err(ErrorCode::INVALID_CONFIG)
        );
        assert_eq!(
            check_value("interval.ms", "99999999999").map_err(|e| e.0),
            Err(ErrorCode::INVALID_CONFIG)
        );
        assert!(check_value("metrics", "org.apache.kafka.producer., a.b").is_ok());
        assert!(check_value("metrics", "").is_ok());
        assert!(check_value("match", "").is_ok());
        assert!(check_value("match", "client_id=abc.*,client_software_name=java").is_ok());
        for bad in [
            "foo=bar",
            "client_id=[",
            "client_id",
            "client_id=",
            "client_id=a=b",
            "=x",
        ] {
            assert_eq!(
                check_value("match", bad),
                Err((
                    ErrorCode::INVALID_CONFIG,
                    format!("Illegal client matching pattern: {bad}")
                )),
                "{bad}"
            );
        }
        assert_eq!(
            check_value("nope", "1"),
            Err((
                ErrorCode::INVALID_REQUEST,
                "Unknown client metrics configuration: nope".to_string()
            ))
        );
        assert_eq!(
            check_name("").map_err(|e| e.0),
            Err(ErrorCode::INVALID_REQUEST)
        );
    }

    #[test]
    fn a_subscription_is_described_with_its_values_and_the_defaults() {
        let configs = BTreeMap::from([
            ("interval.ms".to_string(), "60000".to_string()),
            (
                "metrics".to_string(),
                "org.apache.kafka.producer.".to_string(),
            ),
        ]);
        let d = describe(&configs);
        let names: Vec<&str> = d.iter().map(|d| d.name).collect();
        assert_eq!(names, ["interval.ms", "match", "metrics"]);
        assert_eq!(
            (d[0].value.as_str(), d[0].source, d[0].config_type),
            ("60000", SOURCE_CLIENT_METRICS, config_type::INT)
        );
        assert_eq!(
            d[0].synonyms,
            vec![(
                "interval.ms".to_string(),
                Some("60000".to_string()),
                SOURCE_CLIENT_METRICS
            )]
        );
        assert_eq!(
            (d[1].value.as_str(), d[1].source, d[1].synonyms.len()),
            ("", SOURCE_DEFAULT, 0)
        );
        let none = describe(&BTreeMap::new());
        assert_eq!(none[0].value, "300000");
        assert!(none.iter().all(|d| d.source == SOURCE_DEFAULT));
    }
}

/// The CLIENT_METRICS resource through the router: IncrementalAlterConfigs, AlterConfigs,
/// DescribeConfigs and ListConfigResources as `kafka-client-metrics` sends them.
#[cfg(test)]
mod handler_tests {
    use std::sync::Arc;

    use gregor_protocol::messages::{
        alter_configs_request, AlterConfigsRequest, DescribeConfigsResponse,
        ListConfigResourcesRequest, ListConfigResourcesResponse,
    };
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::broker::Broker;
    use crate::handlers::admin_common::test_cluster::temp_broker as broker;
    use crate::handlers::admin_common::test_configs;
    use crate::handlers::describe_configs::RESOURCE_CLIENT_METRICS;
    use crate::txn_coordinator::tests::call;

    const SET: i8 = 0;
    const DELETE: i8 = 1;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    async fn alter(
        b: &Arc<Broker>,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
    ) -> (i16, Option<String>) {
        test_configs::incremental_alter(b, RESOURCE_CLIENT_METRICS, name, ops).await
    }

    async fn describe(b: &Arc<Broker>, name: &str) -> DescribeConfigsResponse {
        test_configs::describe(b, RESOURCE_CLIENT_METRICS, name).await
    }

    async fn listed(b: &Arc<Broker>) -> Vec<String> {
        let req = ListConfigResourcesRequest::default()
            .with_resource_types(vec![RESOURCE_CLIENT_METRICS]);
        let resp: ListConfigResourcesResponse = call(b, 1, &req).await;
        assert_eq!(resp.error_code, 0);
        resp.config_resources
            .iter()
            .map(|r| r.resource_name.to_string())
            .collect()
    }

    fn values(resp: &DescribeConfigsResponse) -> Vec<(String, String, i8)> {
        resp.results[0]
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_deref().unwrap_or("").to_string(),
                    c.config_source,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_subscription_is_set_described_listed_and_deleted() {
        let (_dir, b) = broker();
        assert_eq!(
            alter(
                &b,
                "sub1",
                &[
                    ("metrics", SET, Some("org.apache.kafka.producer.")),
                    ("interval.ms", SET, Some("60000")),
                ]
            )
            .await,
            (0, None)
        );
        assert_eq!(listed(&b).await, vec!["sub1".to_string()]);
        let resp = describe(&b, "sub1").await;
        assert_eq!(resp.results[0].error_code, 0);
        assert_eq!(
            values(&resp),
            vec![
                ("interval.ms".into(), "60000".into(), SOURCE_CLIENT_METRICS),
                ("match".into(), "".into(), SOURCE_DEFAULT),
                (
                    "metrics".into(),
                    "org.apache.kafka.producer.".into(),
                    SOURCE_CLIENT_METRICS
                ),
            ]
        );
        // A subscription that does not exist: Kafka's defaults.
        assert_eq!(
            values(&describe(&b, "nosuch").await),
            vec![
                ("interval.ms".into(), "300000".into(), SOURCE_DEFAULT),
                ("match".into(), "".into(), SOURCE_DEFAULT),
                ("metrics".into(), "".into(), SOURCE_DEFAULT),
            ]
        );
        assert_eq!(
            describe(&b, "").await.results[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        // APPEND on a list key.
        assert_eq!(
            alter(&b, "sub1", &[("metrics", 2, Some("a.b"))]).await,
            (0, None)
        );
        assert_eq!(
            b.replicas
                .image()
                .configs()
                .client_metrics_config("sub1", "metrics"),
            Some("org.apache.kafka.producer.,a.b")
        );
        // kafka-client-metrics --delete removes every key; the subscription goes with them.
        assert_eq!(
            alter(
                &b,
                "sub1",
                &[
                    ("metrics", DELETE, None),
                    ("interval.ms", DELETE, None),
                    ("match", DELETE, None),
                ]
            )
            .await,
            (0, None)
        );
        assert!(listed(&b).await.is_empty());
        // Deleting one that does not exist succeeds, as in Kafka.
        assert_eq!(
            alter(&b, "nosuch", &[("metrics", DELETE, None)]).await,
            (0, None)
        );
    }

    #[tokio::test]
    async fn bad_subscriptions_get_kafkas_errors_and_change_nothing() {
        let (_dir, b) = broker();
        let request = ErrorCode::INVALID_REQUEST.code();
        let config = ErrorCode::INVALID_CONFIG.code();
        assert_eq!(
            alter(&b, "s", &[("interval.ms", SET, Some("50"))]).await,
            (
                request,
                Some(
                    "Invalid value 50 for interval.ms, interval must be between 100 and \
                     3600000 (1 hour)"
                        .into()
                )
            )
        );
        assert_eq!(
            alter(&b, "s", &[("match", SET, Some("foo=bar"))]).await,
            (
                config,
                Some("Illegal client matching pattern: foo=bar".into())
            )
        );
        assert_eq!(
            alter(&b, "s", &[("nope", SET, Some("1"))]).await,
            (
                request,
                Some("Unknown client metrics configuration: nope".into())
            )
        );
        assert_eq!(
            alter(&b, "", &[("interval.ms", SET, Some("1000"))]).await,
            (request, Some("Subscription name can't be empty".into()))
        );
        // One bad key refuses the whole change.
        assert_eq!(
            alter(
                &b,
                "s",
                &[
                    ("metrics", SET, Some("a.")),
                    ("interval.ms", SET, Some("x")),
                ]
            )
            .await
            .0,
            config
        );
        assert!(listed(&b).await.is_empty());
    }

    /// AlterConfigs (the legacy form) replaces the subscription's whole set.
    #[tokio::test]
    async fn alter_configs_replaces_the_whole_subscription() {
        let (_dir, b) = broker();
        assert_eq!(
            alter(
                &b,
                "sub",
                &[
                    ("metrics", SET, Some("a.")),
                    ("interval.ms", SET, Some("1000")),
                ]
            )
            .await,
            (0, None)
        );
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_CLIENT_METRICS)
                .with_resource_name(s("sub"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("match"))
                    .with_value(Some(s("client_id=x.*")))]),
        ]);
        let resp: gregor_protocol::messages::AlterConfigsResponse = call(&b, 2, &req).await;
        assert_eq!(resp.responses[0].error_code, 0);
        let now: Vec<(String, String)> = b
            .replicas
            .image()
            .configs()
            .client_metrics_configs("sub")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            now,
            vec![("match".to_string(), "client_id=x.*".to_string())]
        );
    }
}
