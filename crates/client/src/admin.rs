//! Admin operations: CreateTopics, DeleteTopics, Metadata (list/describe topics),
//! DescribeConfigs and IncrementalAlterConfigs (topics, brokers, groups), sent over the cluster's control connection (any
//! broker; a KRaft broker forwards controller work itself), except a broker's own configs,
//! which that broker describes.

use crate::cluster::{Cluster, ClusterMetadata};
use crate::connection::ClientConfig;
use crate::error::{ClientError, Result};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use uuid::Uuid;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count; `None` uses the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Replication factor; `None` uses the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with broker defaults for everything but the name.
    pub fn new(name: impl Into<String>) -> Self {
        NewTopic {
            name: name.into(),
            partitions: None,
            replication_factor: None,
            configs: Vec::new(),
        }
    }
}

/// A resource with configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic's configs.
    Topic(String),
    /// A broker's configs (`Some(id)`), or the dynamic defaults of every broker (`None`).
    Broker(Option<i32>),
    /// A group's configs (KIP-848, KIP-932: `share.auto.offset.reset`, ...), by group id.
    Group(String),
    /// A broker's log levels (Kafka's BROKER_LOGGER, KIP-412), by broker id; answered by that
    /// broker itself.
    BrokerLogger(i32),
}

impl ConfigResource {
    /// Kafka's resource type and name.
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(Some(id)) => (4, id.to_string()),
            ConfigResource::Broker(None) => (4, String::new()),
            ConfigResource::Group(g) => (32, g.clone()),
            ConfigResource::BrokerLogger(id) => (8, id.to_string()),
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(Some(id)) => write!(f, "broker {id}"),
            ConfigResource::Broker(None) => write!(f, "the brokers' defaults"),
            ConfigResource::Group(g) => write!(f, "group {g}"),
            ConfigResource::BrokerLogger(id) => write!(f, "broker-logger {id}"),
        }
    }
}

/// One change of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the key to the value.
    Set(String, String),
    /// Remove the key (back to its default).
    Delete(String),
}

/// Kafka's `ConfigSource` names, as `kafka-configs` prints them.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// One config entry of a resource, as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// True when the value was set on the topic rather than inherited (source 1,
    /// DYNAMIC_TOPIC_CONFIG).
    pub is_topic_override: bool,
    /// True when the broker hides the value.
    pub is_sensitive: bool,
    /// True when it cannot be changed.
    pub read_only: bool,
    /// Where the value comes from (Kafka's `ConfigSource`; [`config_source_name`]).
    pub source: i8,
}

/// Admin client.
#[derive(Debug)]
pub struct Admin {
    cluster: Cluster,
    /// How long the broker may take to create/delete topics (`timeout_ms` in the request).
    operation_timeout: Duration,
}

impl Admin {
    /// Connects to the cluster.
    pub async fn connect(bootstrap: &str, config: &ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::connect(bootstrap, config).await?,
            operation_timeout: Duration::from_secs(30),
        })
    }

    /// The underlying cluster view.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Metadata for `topics`, or for every topic when `None`.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<ClusterMetadata> {
        self.cluster.metadata(topics).await
    }

    /// Names of all topics, sorted; internal topics included only when asked.
    pub async fn list_topics(&mut self, include_internal: bool) -> Result<Vec<String>> {
        let md = self.cluster.metadata(None).await?;
        Ok(md
            .topics
            .into_iter()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name)
            .collect())
    }

    /// Creates topics; returns one result per topic (its id when the broker reports one, nil
    /// otherwise), in request order.
    pub async fn create_topics(
        &mut self,
        topics: &[NewTopic],
    ) -> Result<Vec<(String, Result<Uuid>)>> {
        let timeout_ms = duration_ms(self.operation_timeout);
        let conn = self.cluster.control().await?;
        let version = conn.version(ApiKey::CreateTopics)?;
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = timeout_ms;
        for t in topics {
            let mut ct = CreatableTopic::default();
            ct.name = TopicName(StrBytes::from_string(t.name.clone()));
            ct.num_partitions = t.partitions.unwrap_or(-1);
            ct.replication_factor = t.replication_factor.unwrap_or(-1);
            ct.configs = t
                .configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect();
            req.topics.push(ct);
        }
        let limit = self.operation_timeout + self.cluster.config().request_timeout;
        let conn = self.cluster.control().await?;
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        let mut out = Vec::new();
        for t in topics {
            let r = resp
                .topics
                .iter()
                .find(|r| r.name.0.as_str() == t.name)
                .ok_or_else(|| ClientError::Protocol {
                    addr: String::new(),
                    message: format!("CreateTopics response has no result for {}", t.name),
                })
                .and_then(|r| {
                    ClientError::check(r.error_code, r.error_message.as_deref(), || {
                        format!("create topic {}", t.name)
                    })
                    .map(|()| r.topic_id)
                });
            out.push((t.name.clone(), r));
        }
        self.cluster
            .invalidate_all(topics.iter().map(|t| t.name.as_str()));
        Ok(out)
    }

    /// Creates one topic and returns its id (nil when the broker does not report ids).
    pub async fn create_topic(&mut self, topic: NewTopic) -> Result<Uuid> {
        let mut r = self.create_topics(std::slice::from_ref(&topic)).await?;
        match r.pop() {
            Some((_, res)) => res,
            None => Err(ClientError::InvalidArgument("no topic given".to_owned())),
        }
    }

    /// Deletes topics by name; one result per topic, in request order.
    pub async fn delete_topics(&mut self, names: &[String]) -> Result<Vec<(String, Result<()>)>> {
        let timeout_ms = duration_ms(self.operation_timeout);
        let limit = self.operation_timeout + self.cluster.config().request_timeout;
        let conn = self.cluster.control().await?;
        let version = conn.version(ApiKey::DeleteTopics)?;
        let mut req = DeleteTopicsRequest::default();
        req.timeout_ms = timeout_ms;
        for n in names {
            let name = TopicName(StrBytes::from_string(n.clone()));
            if version >= 6 {
                req.topics
                    .push(DeleteTopicState::default().with_name(Some(name)));
            } else {
                req.topic_names.push(name);
            }
        }
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        let mut out = Vec::new();
        for n in names {
            let r = resp
                .responses
                .iter()
                .find(|r| r.name.as_ref().is_some_and(|x| x.0.as_str() == n))
                .ok_or_else(|| ClientError::Protocol {
                    addr: String::new(),
                    message: format!("DeleteTopics response has no result for {n}"),
                })
                .and_then(|r| {
                    ClientError::check(r.error_code, r.error_message.as_deref(), || {
                        format!("delete topic {n}")
                    })
                });
            out.push((n.clone(), r));
        }
        self.cluster
            .invalidate_all(names.iter().map(String::as_str));
        Ok(out)
    }

    /// True when the broker implements DescribeConfigs.
    pub async fn supports_describe_configs(&mut self) -> Result<bool> {
        Ok(self
            .cluster
            .control()
            .await?
            .supports(ApiKey::DescribeConfigs))
    }

    /// All configs of a topic (defaults included), sorted by name.
    pub async fn describe_topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>> {
        self.describe_configs(&ConfigResource::Topic(topic.to_owned()))
            .await
    }

    /// All configs of a resource (defaults included), sorted by name. A broker's go to that
    /// broker, as Kafka requires.
    pub async fn describe_configs(
        &mut self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>> {
        let (resource_type, name) = resource.wire();
        let conn = match resource {
            ConfigResource::Broker(Some(id)) | ConfigResource::BrokerLogger(id) => {
                self.cluster.metadata(Some(&[])).await?;
                self.cluster.broker(*id).await?
            }
            _ => self.cluster.control().await?,
        };
        let version = conn.version(ApiKey::DescribeConfigs)?;
        let mut req = DescribeConfigsRequest::default();
        req.resources.push(
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configuration_keys(None),
        );
        let resp = conn.send_at(&req, version).await?;
        let r = resp
            .results
            .into_iter()
            .find(|r| r.resource_name.as_str() == name)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!("DescribeConfigs response has no result for {resource}"),
            })?;
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            format!("describe configs of {resource}")
        })?;
        let mut out: Vec<ConfigEntry> = r
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                is_topic_override: c.config_source == 1,
                is_sensitive: c.is_sensitive,
                read_only: c.read_only,
                source: c.config_source,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Changes configs of a resource (IncrementalAlterConfigs SET / DELETE).
    pub async fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let (resource_type, name) = resource.wire();
        // A broker's log levels and its own configs are changed by that broker, as Kafka's
        // brokers require (the log levels are never forwarded).
        let conn = match resource {
            ConfigResource::BrokerLogger(id) | ConfigResource::Broker(Some(id)) => {
                self.cluster.metadata(Some(&[])).await?;
                self.cluster.broker(*id).await?
            }
            _ => self.cluster.control().await?,
        };
        let version = conn.version(ApiKey::IncrementalAlterConfigs)?;
        let configs = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigOp::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(1)
                    .with_value(None),
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configs(configs)]);
        let resp = conn.send_at(&req, version).await?;
        let r = resp
            .responses
            .into_iter()
            .find(|r| r.resource_name.as_str() == name)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!("IncrementalAlterConfigs response has no result for {resource}"),
            })?;
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            format!("alter configs of {resource}")
        })
    }
}

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
