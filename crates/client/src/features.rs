//! Cluster features (KIP-584) as more [`Admin`] methods: what a broker supports and what the
//! cluster has finalized (ApiVersions v3+, Kafka's `Admin.describeFeatures`), and changing the
//! finalized levels (UpdateFeatures, Kafka's `Admin.updateFeatures`, which
//! `kafka-features.sh upgrade | downgrade | disable` calls).

use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, UpdateFeaturesRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{ClientError, Result};

/// One feature as a broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDescription {
    pub name: String,
    /// The levels the broker supports, `None` when it does not know the feature.
    pub supported: Option<(i16, i16)>,
    /// The cluster's finalized level, `None` when not finalized (level 0).
    pub finalized: Option<i16>,
}

/// The features of a broker's ApiVersions answer, by name, and the finalized levels' epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    pub features: Vec<FeatureDescription>,
    pub epoch: i64,
}

/// How a level may move (UpdateFeatures v1's `UpgradeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade = 1,
    SafeDowngrade = 2,
    UnsafeDowngrade = 3,
}

impl Admin {
    /// The features a broker supports and the cluster's finalized levels (ApiVersions v3+).
    pub async fn describe_features(&mut self) -> Result<Features> {
        let conn = self.cluster().control().await?;
        let version = conn.version_at_most(ApiKey::ApiVersions, 4)?;
        if version < 3 {
            return Err(ClientError::UnsupportedApi {
                addr: String::new(),
                api: "ApiVersions v3 (features)".to_string(),
            });
        }
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, None, || "describe features".to_string())?;
        let mut features: Vec<FeatureDescription> = resp
            .supported_features
            .iter()
            .map(|f| FeatureDescription {
                name: f.name.to_string(),
                supported: Some((f.min_version, f.max_version)),
                finalized: None,
            })
            .collect();
        for f in &resp.finalized_features {
            match features.iter_mut().find(|d| d.name == f.name.as_str()) {
                Some(d) => d.finalized = Some(f.max_version_level),
                None => features.push(FeatureDescription {
                    name: f.name.to_string(),
                    supported: None,
                    finalized: Some(f.max_version_level),
                }),
            }
        }
        features.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Features {
            features,
            epoch: resp.finalized_features_epoch,
        })
    }

    /// Sets finalized feature levels (level 0 disables a feature): all of them, or none and
    /// the controller's reason. `validate_only` checks without changing anything.
    pub async fn update_features(
        &mut self,
        updates: &[(String, i16, UpgradeType)],
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.cluster().control().await?;
        let version = conn.version_at_most(ApiKey::UpdateFeatures, 2)?;
        if version < 1 {
            return Err(ClientError::UnsupportedApi {
                addr: String::new(),
                api: "UpdateFeatures v1".to_string(),
            });
        }
        let req = UpdateFeaturesRequest::default()
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only)
            .with_feature_updates(
                updates
                    .iter()
                    .map(|(name, level, kind)| {
                        FeatureUpdateKey::default()
                            .with_feature(StrBytes::from_string(name.clone()))
                            .with_max_version_level(*level)
                            .with_upgrade_type(*kind as i8)
                    })
                    .collect(),
            );
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "update features".to_string()
        })?;
        for r in &resp.results {
            ClientError::check(r.error_code, r.error_message.as_deref(), || {
                format!("update feature {}", r.feature.as_str())
            })?;
        }
        Ok(())
    }
}

/// A partition's eligible leader replicas and last known ELR (KIP-966), as
/// DescribeTopicPartitions reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionElr {
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
}

impl Admin {
    /// The eligible leader replicas of `topics`' partitions, by (topic, partition), in one
    /// DescribeTopicPartitions v0 exchange (Kafka's `Admin.describeTopics` on a 3.9+ broker),
    /// paged with its cursor; empty when the broker does not serve the API. A topic the broker
    /// does not know is left out.
    pub async fn describe_elr(
        &mut self,
        topics: &[String],
    ) -> Result<std::collections::BTreeMap<(String, i32), PartitionElr>> {
        use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
        use kafka_protocol::messages::{DescribeTopicPartitionsRequest, TopicName};
        let conn = self.cluster().control().await?;
        let mut out = std::collections::BTreeMap::new();
        if topics.is_empty() || !conn.supports(ApiKey::DescribeTopicPartitions) {
            return Ok(out);
        }
        let requested: Vec<TopicRequest> = topics
            .iter()
            .map(|t| TopicRequest::default().with_name(TopicName(StrBytes::from_string(t.clone()))))
            .collect();
        let mut cursor = None;
        loop {
            let req = DescribeTopicPartitionsRequest::default()
                .with_topics(requested.clone())
                .with_response_partition_limit(2000)
                .with_cursor(cursor.take());
            let resp = conn.send_at(&req, 0).await?;
            for t in resp.topics.iter().filter(|t| t.error_code == 0) {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                for p in &t.partitions {
                    let ids = |v: &Option<Vec<kafka_protocol::messages::BrokerId>>| {
                        v.iter().flatten().map(|b| b.0).collect()
                    };
                    out.insert(
                        (name.clone(), p.partition_index),
                        PartitionElr {
                            elr: ids(&p.eligible_leader_replicas),
                            last_known_elr: ids(&p.last_known_elr),
                        },
                    );
                }
            }
            match resp.next_cursor {
                Some(c) => {
                    cursor = Some(
                        Cursor::default()
                            .with_topic_name(c.topic_name)
                            .with_partition_index(c.partition_index),
                    )
                }
                None => return Ok(out),
            }
        }
    }
}
