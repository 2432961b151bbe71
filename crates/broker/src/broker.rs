//! The broker's shared state: what every connection and handler sees (Kafka's `KafkaApis`
//! dependencies). The listener (server.rs) builds it at startup; handlers, the group
//! coordinator and the periodic tasks take it by `Arc`, never the socket or the listener.
//!
//! ```text
//!  server (listener, startup) ──builds──► Broker { config, replicas, groups, advertised, clock }
//!  connection ─► router ─► handlers ──────────┘        │           │
//!                                   ReplicaManager (partitions, purgatory)   GroupRuntime,
//!                                                                            TxnRuntime
//! ```

use std::sync::Arc;

use gregor_controller::ControllerChannel;

use crate::admin_node::AdminNode;
use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::group_coordinator::GroupRuntime;
use crate::replica_manager::ReplicaManager;

/// Shared state every connection and handler sees.
pub struct Broker {
    /// Configuration.
    pub config: Arc<BrokerConfig>,
    /// Topics, partitions, logs, and the purgatory where produces and fetches wait.
    pub replicas: Arc<ReplicaManager>,
    /// Host and port given to clients in Metadata.
    pub advertised: (String, u16),
    /// The same for each listener served beside the primary one (`SSL`, ...), by name.
    pub listener_advertised: Vec<(String, (String, u16))>,
    /// Consumer group coordinator.
    pub groups: Arc<GroupRuntime>,
    /// Time, wherever it decides something (the same clock the replica manager and the group
    /// runtime use).
    pub clock: Arc<dyn Clock>,
    /// The cluster id (`meta.properties`).
    pub cluster_id: String,
    /// Requests to the active controller (create and delete topics, ...).
    pub controller: Arc<dyn ControllerChannel>,
    /// The metadata quorum, for the controller's id (`None` in unit tests).
    pub quorum: Option<Arc<gregor_raft::MetadataQuorum>>,
    /// Producer ids for InitProducerId, from blocks the controller allocates.
    pub producer_ids: Arc<crate::producer_id_manager::ProducerIdManager>,
    /// Transaction coordinator (the `__transaction_state` partitions this broker leads).
    pub txn: Arc<crate::txn_coordinator::TxnRuntime>,
    /// The partition leaders' client of the transaction coordinators (KIP-890 verification).
    pub txn_verification: Arc<crate::add_partitions_to_txn_manager::AddPartitionsToTxnManager>,
    /// Client quotas (produce and fetch byte rates), from the applied metadata image.
    pub quotas: Arc<crate::quota::ClientQuotaManager>,
    /// The SSL listeners' stores, reloaded when their dynamic `ssl.*` configs change.
    pub tls: Arc<crate::tls::ListenerTls>,
    /// The share coordinator (the `__share_group_state` partitions this broker leads, KIP-932).
    pub share_coordinator: Arc<crate::share_coordinator::ShareCoordinatorRuntime>,
    /// The share coordinators' client: share-partitions' durable state (KIP-932).
    pub share_persister: Arc<dyn crate::share_persister::Persister>,
    /// The share-partitions this broker leads and their consumers' share sessions (KIP-932).
    pub share_partitions: Arc<crate::share_partitions::SharePartitionManager>,
    /// Incremental fetch sessions (KIP-227, [`crate::fetch_session`]).
    pub fetch_sessions: Arc<crate::fetch_session::FetchSessions>,
    /// This process's log levels (the BROKER_LOGGER resource, [`crate::log_levels`]).
    pub log_levels: Arc<crate::log_levels::LogLevels>,
}

impl Broker {
    /// This broker's advertised host and port on `listener`.
    pub fn advertised_on(&self, listener: &str) -> &(String, u16) {
        self.listener_advertised
            .iter()
            .find(|(name, _)| name == listener)
            .map_or(&self.advertised, |(_, a)| a)
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .field("cluster_id", &self.cluster_id)
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// The controller id told to clients (Metadata, DescribeCluster): the active controller
    /// when it is also a registered broker (combined mode), else this broker. A controller-only
    /// node has no client listener, so a client sent there could not reach it; like Kafka's
    /// KRaft brokers, this one takes the client's controller requests and forwards them.
    pub fn controller_id(&self) -> Option<i32> {
        match &self.quorum {
            Some(q) => {
                let leader = q.leader().and_then(|id| i32::try_from(id).ok())?;
                let is_broker = self.replicas.image().cluster().broker(leader).is_some();
                Some(if is_broker {
                    leader
                } else {
                    self.config.node_id
                })
            }
            None => Some(self.config.node_id),
        }
    }

    /// Waits until every topic in `ids` is in this broker's applied image (`present`) or gone
    /// from it (`!present`), as every admin node does ([`AdminNode::wait_for_topics`]).
    pub async fn wait_for_topics(&self, ids: &[uuid::Uuid], present: bool, timeout_ms: i32) {
        AdminNode::wait_for_topics(self, ids, present, timeout_ms).await;
    }
}

impl AsRef<ReplicaManager> for Broker {
    fn as_ref(&self) -> &ReplicaManager {
        &self.replicas
    }
}

/// Test and bench support: a broker over `config` (storage opened, no listener, no quorum), registered
/// and unfenced in its own metadata image, with `__consumer_offsets`, and a controller channel
/// that decides CreateTopics and DeleteTopics in process with gregor-metadata's controller
/// functions and applies the records at once.
#[doc(hidden)]
pub fn test_broker_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Arc<Broker> {
    use gregor_metadata::{Endpoint, MetadataRecord, RegisterBrokerRecord};
    let config = Arc::new(config);
    let replicas =
        Arc::new(ReplicaManager::open(Arc::clone(&config), Arc::clone(&clock)).expect("open"));
    replicas.apply_records(&[MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        log_dirs: Vec::new(),
        broker_id: config.node_id,
        incarnation_id: uuid::Uuid::new_v4(),
        broker_epoch: 1,
        endpoints: vec![Endpoint {
            name: crate::handlers::metadata::CLIENT_LISTENER.into(),
            host: "127.0.0.1".into(),
            port: 9092,
            security_protocol: 0,
        }],
        rack: config.cluster.rack.clone(),
        fenced: false,
    })]);
    // A new cluster's first registration finalizes the transaction version (the controller's
    // default, 2), as in `gregor_controller`.
    replicas.apply_records(&[MetadataRecord::FeatureLevel(
        gregor_metadata::FeatureLevelRecord {
            name: gregor_metadata::TRANSACTION_VERSION_FEATURE.to_string(),
            feature_level: 2,
        },
    )]);
    // And the share version (KIP-932), the group version (KIP-848) and the streams version
    // (KIP-1071), as the server's controller does.
    replicas.apply_records(&[MetadataRecord::FeatureLevel(
        gregor_metadata::FeatureLevelRecord {
            name: gregor_metadata::SHARE_VERSION_FEATURE.to_string(),
            feature_level: gregor_metadata::SHARE_VERSION_LATEST,
        },
    )]);
    replicas.apply_records(&[MetadataRecord::FeatureLevel(
        gregor_metadata::FeatureLevelRecord {
            name: gregor_metadata::GROUP_VERSION_FEATURE.to_string(),
            feature_level: gregor_metadata::GROUP_VERSION_LATEST,
        },
    )]);
    replicas.apply_records(&[MetadataRecord::FeatureLevel(
        gregor_metadata::FeatureLevelRecord {
            name: gregor_metadata::STREAMS_VERSION_FEATURE.to_string(),
            feature_level: gregor_metadata::STREAMS_VERSION_LATEST,
        },
    )]);
    let controller = Arc::new(test_support::InProcessController {
        replicas: Arc::clone(&replicas),
    });
    let offsets = crate::group_coordinator::offsets_topic(&config, 1);
    futures::executor::block_on(controller.call(
        gregor_controller::ControllerRequest::CreateTopics(
            gregor_controller::protocol::CreateTopicsRequest {
                topics: vec![offsets],
                validate_only: false,
            },
        ),
    ))
    .expect("create the offsets topic");
    let groups = Arc::new(GroupRuntime::open(&replicas).expect("group runtime"));
    let producer_ids = Arc::new(crate::producer_id_manager::ProducerIdManager::new(
        config.node_id,
        Arc::clone(&controller) as Arc<dyn ControllerChannel>,
        Arc::clone(&replicas),
    ));
    let txn = Arc::new(crate::txn_coordinator::TxnRuntime::new(
        Arc::clone(&replicas),
        Arc::clone(&producer_ids),
        Arc::clone(&controller) as Arc<dyn ControllerChannel>,
    ));
    let txn_verification = Arc::new(
        crate::add_partitions_to_txn_manager::AddPartitionsToTxnManager::new(
            Arc::clone(&config),
            Arc::clone(&replicas),
            Arc::clone(&txn),
        ),
    );
    let quotas = Arc::new(crate::quota::ClientQuotaManager::new(config.quota_window()));
    let share_coordinator = Arc::new(crate::share_coordinator::ShareCoordinatorRuntime::new(
        Arc::clone(&replicas),
        Arc::clone(&controller) as Arc<dyn ControllerChannel>,
    ));
    let share_persister = Arc::new(crate::share_persister::SharePersister::new(
        Arc::clone(&config),
        Arc::clone(&replicas),
        Arc::clone(&share_coordinator),
    ));
    Arc::new(Broker {
        config,
        replicas,
        advertised: ("127.0.0.1".into(), 9092),
        listener_advertised: Vec::new(),
        groups,
        clock,
        cluster_id: "test-cluster".into(),
        controller,
        quorum: None,
        producer_ids,
        txn,
        txn_verification,
        quotas,
        tls: Default::default(),
        share_coordinator,
        share_persister,
        share_partitions: Default::default(),
        fetch_sessions: Default::default(),
        log_levels: Default::default(),
    })
}

/// A test broker on `dir` whose groups are all coordinated by `__consumer_offsets-0`, with a
/// topic `t` of `partitions` partitions: the group handlers' tests.
#[cfg(test)]
pub(crate) fn test_group_broker(dir: &std::path::Path, partitions: i32) -> Arc<Broker> {
    let mut config = crate::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.group.offsets_topic_num_partitions = 1;
    let b = test_broker(config);
    b.replicas
        .create_topic("t", partitions, 1, Default::default())
        .expect("create");
    b
}

/// [`test_broker_with_clock`] on the system clock.
#[cfg(test)]
pub(crate) fn test_broker(config: BrokerConfig) -> Arc<Broker> {
    test_broker_with_clock(config, Arc::new(crate::clock::SystemClock))
}

#[doc(hidden)]
pub mod test_support {
    use std::sync::Arc;

    use futures::future::BoxFuture;
    use futures::FutureExt;
    use gregor_controller::protocol as proto;
    use gregor_controller::{
        ChannelError, ControllerChannel, ControllerRequest, ControllerResponse,
    };
    use gregor_metadata::controller::{
        alter_partition_reassignment, create_partitions, create_topic, delete_topic, elect_leader,
        ControllerDefaults, CreateTopic,
    };
    use gregor_metadata::{ControllerError, Election, TopicIdPartition};

    use crate::replica_manager::ReplicaManager;

    /// CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders and the reassignment
    /// requests decided by gregor-metadata's controller functions on the replica manager's
    /// image and applied at once (unit tests have no quorum).
    pub struct InProcessController {
        pub replicas: Arc<ReplicaManager>,
    }

    impl ControllerChannel for InProcessController {
        fn call(
            &self,
            req: ControllerRequest,
        ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
            let resp = match req {
                ControllerRequest::CreateTopics(r) => {
                    let mut results = Vec::new();
                    for t in r.topics {
                        let image = self.replicas.image();
                        let id = self.replicas.test_topic_id(&t.name);
                        let partitions = if t.num_partitions < 0 {
                            1
                        } else {
                            t.num_partitions
                        };
                        let rf = if t.replication_factor < 0 {
                            1
                        } else {
                            t.replication_factor
                        };
                        let decided = create_topic(
                            &image,
                            &CreateTopic {
                                name: t.name.clone(),
                                topic_id: id,
                                partitions,
                                replication_factor: rf,
                                configs: t
                                    .configs
                                    .iter()
                                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                                    .collect(),
                                placement_seed: 0,
                            },
                        );
                        results.push(match decided {
                            Ok(records) => {
                                if !r.validate_only {
                                    self.replicas.apply_records(&records);
                                }
                                proto::CreatableTopicResult {
                                    name: t.name,
                                    topic_id: id,
                                    error_code: 0,
                                    error_message: None,
                                    num_partitions: partitions,
                                    replication_factor: rf,
                                }
                            }
                            Err(e) => proto::CreatableTopicResult {
                                name: t.name,
                                topic_id: uuid::Uuid::nil(),
                                error_code: e.code(),
                                error_message: Some(e.to_string()),
                                num_partitions: -1,
                                replication_factor: -1,
                            },
                        });
                    }
                    ControllerResponse::CreateTopics(proto::CreateTopicsResponse {
                        topics: results,
                    })
                }
                ControllerRequest::DeleteTopics(r) => {
                    let mut results = Vec::new();
                    for t in r.topics {
                        let image = self.replicas.image();
                        let id = match &t {
                            proto::TopicRef::Id(id) => Some(*id),
                            proto::TopicRef::Name(n) => image.topics().topic_id(n),
                        };
                        let outcome = id.and_then(|id| {
                            let name = image.topics().topic(id)?.name.clone();
                            Some((id, delete_topic(&image, &name)))
                        });
                        results.push(match outcome {
                            Some((id, Ok(records))) => {
                                self.replicas.apply_records(&records);
                                proto::DeletableTopicResult {
                                    name: None,
                                    topic_id: id,
                                    error_code: 0,
                                    error_message: None,
                                }
                            }
                            Some((id, Err(e))) => proto::DeletableTopicResult {
                                name: None,
                                topic_id: id,
                                error_code: e.code(),
                                error_message: Some(e.to_string()),
                            },
                            None => proto::DeletableTopicResult {
                                name: None,
                                topic_id: uuid::Uuid::nil(),
                                error_code: 3,
                                error_message: None,
                            },
                        });
                    }
                    ControllerResponse::DeleteTopics(proto::DeleteTopicsResponse {
                        topics: results,
                    })
                }
                ControllerRequest::CreatePartitions(r) => {
                    let results = r
                        .topics
                        .into_iter()
                        .map(|t| {
                            let outcome = if t.assignments.is_some() {
                                Err((gregor_metadata::code::INVALID_REQUEST, None))
                            } else {
                                create_partitions(&self.replicas.image(), &t.name, t.count, 0)
                                    .map(|records| {
                                        if !r.validate_only {
                                            self.replicas.apply_records(&records);
                                        }
                                    })
                                    .map_err(|e| (e.code(), Some(e.to_string())))
                            };
                            let (error_code, error_message) = outcome.err().unwrap_or((0, None));
                            proto::TopicResult {
                                name: t.name,
                                error_code,
                                error_message,
                            }
                        })
                        .collect();
                    ControllerResponse::CreatePartitions(proto::CreatePartitionsResponse {
                        results,
                    })
                }
                ControllerRequest::ElectLeaders(r) => {
                    let election = match r.election_type {
                        proto::ElectionType::Preferred => Election::Preferred,
                        proto::ElectionType::Unclean => Election::Unclean,
                    };
                    let image = self.replicas.image();
                    let asked = r.partitions.is_some();
                    let partitions = r.partitions.unwrap_or_else(|| {
                        image
                            .topics()
                            .topics()
                            .flat_map(|t| {
                                t.partitions().map(|(p, _)| proto::TopicPartition {
                                    topic: t.name.clone(),
                                    partition: p,
                                })
                            })
                            .collect()
                    });
                    let mut results = Vec::new();
                    for tp in partitions {
                        let outcome = match image.topics().topic_id(&tp.topic) {
                            None => Err(ControllerError::UnknownTopicOrPartition),
                            Some(topic_id) => elect_leader(
                                &self.replicas.image(),
                                TopicIdPartition {
                                    topic_id,
                                    partition: tp.partition,
                                },
                                election,
                                &ControllerDefaults::default(),
                            ),
                        };
                        let (error_code, error_message) = match outcome {
                            Ok(record) => {
                                self.replicas.apply_records(&[record]);
                                (0, None)
                            }
                            Err(ControllerError::ElectionNotNeeded) if !asked => continue,
                            Err(e) => (e.code(), Some(e.to_string())),
                        };
                        results.push(proto::PartitionResult {
                            topic: tp.topic,
                            partition: tp.partition,
                            error_code,
                            error_message,
                        });
                    }
                    ControllerResponse::ElectLeaders(proto::ElectLeadersResponse { results })
                }
                ControllerRequest::AlterPartitionReassignments(r) => {
                    let results = r
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let image = self.replicas.image();
                            let outcome = match image.topics().topic_id(&p.topic) {
                                None => Err(ControllerError::UnknownTopicOrPartition),
                                Some(topic_id) => alter_partition_reassignment(
                                    &image,
                                    TopicIdPartition {
                                        topic_id,
                                        partition: p.partition,
                                    },
                                    p.replicas.as_deref(),
                                    &ControllerDefaults::default(),
                                ),
                            };
                            let (error_code, error_message) = match outcome {
                                Ok(record) => {
                                    self.replicas
                                        .apply_records(&record.into_iter().collect::<Vec<_>>());
                                    (0, None)
                                }
                                Err(e) => (e.code(), Some(e.to_string())),
                            };
                            proto::PartitionResult {
                                topic: p.topic,
                                partition: p.partition,
                                error_code,
                                error_message,
                            }
                        })
                        .collect();
                    ControllerResponse::AlterPartitionReassignments(
                        proto::AlterPartitionReassignmentsResponse { results },
                    )
                }
                ControllerRequest::AllocateProducerIds(r) => {
                    let image = self.replicas.image();
                    ControllerResponse::AllocateProducerIds(
                        match gregor_metadata::controller::allocate_producer_ids(
                            &image,
                            r.broker_id,
                            r.broker_epoch,
                        ) {
                            Ok((block, record)) => {
                                self.replicas.apply_records(&[record]);
                                proto::AllocateProducerIdsResponse {
                                    error_code: 0,
                                    producer_id_start: block.first_producer_id,
                                    producer_id_len: block.size as i32,
                                }
                            }
                            Err(e) => proto::AllocateProducerIdsResponse {
                                error_code: e.code(),
                                producer_id_start: -1,
                                producer_id_len: 0,
                            },
                        },
                    )
                }
                ControllerRequest::AlterUserScramCredentials(r) => {
                    use gregor_metadata::controller::alter_user_scram_credentials;
                    let (deletions, upsertions) = r.into_alterations();
                    let decided = alter_user_scram_credentials(
                        &self.replicas.image(),
                        &deletions,
                        &upsertions,
                    );
                    self.replicas.apply_records(&decided.records);
                    let results = decided
                        .results
                        .into_iter()
                        .map(|(name, outcome)| {
                            let (error_code, error_message) = match outcome {
                                Ok(()) => (0, None),
                                Err(e) => (e.code(), Some(e.to_string())),
                            };
                            proto::TopicResult {
                                name,
                                error_code,
                                error_message,
                            }
                        })
                        .collect();
                    ControllerResponse::AlterUserScramCredentials(
                        proto::AlterUserScramCredentialsResponse { results },
                    )
                }
                ControllerRequest::UpdateFeatures(r) => {
                    let decided = gregor_metadata::update_features(
                        &self.replicas.image(),
                        1,
                        &r.feature_updates(),
                    );
                    let (error_code, error_message) = match decided {
                        Ok(records) => {
                            if !r.validate_only {
                                self.replicas.apply_records(&records);
                            }
                            (0, None)
                        }
                        Err(message) => {
                            (gregor_metadata::code::INVALID_UPDATE_VERSION, Some(message))
                        }
                    };
                    ControllerResponse::UpdateFeatures(proto::UpdateFeaturesResponse {
                        error_code,
                        error_message,
                    })
                }
                ControllerRequest::UnregisterBroker(r) => {
                    let decided = gregor_metadata::controller::unregister_broker(
                        &self.replicas.image(),
                        r.broker_id,
                        &gregor_metadata::controller::ControllerDefaults::default(),
                    );
                    let (error_code, error_message) = match decided {
                        Ok(records) => {
                            self.replicas.apply_records(&records);
                            (0, None)
                        }
                        Err(e) => (e.code(), Some(e.to_string())),
                    };
                    ControllerResponse::UnregisterBroker(proto::UnregisterBrokerResponse {
                        error_code,
                        error_message,
                    })
                }
                ControllerRequest::CreateAcls(r) => {
                    let acls: Vec<_> = r.creations.iter().map(proto::AclEntry::to_acl).collect();
                    let decided = gregor_metadata::controller::create_acls(
                        &self.replicas.image(),
                        &acls,
                        &mut uuid::Uuid::new_v4,
                    );
                    self.replicas.apply_records(&decided.records);
                    ControllerResponse::CreateAcls(proto::CreateAclsResponse::from_results(
                        decided.results,
                    ))
                }
                ControllerRequest::DeleteAcls(r) => {
                    let filters: Vec<_> = r
                        .filters
                        .iter()
                        .map(proto::AclFilterEntry::to_filter)
                        .collect();
                    let decided =
                        gregor_metadata::controller::delete_acls(&self.replicas.image(), &filters);
                    self.replicas.apply_records(&decided.records);
                    ControllerResponse::DeleteAcls(proto::DeleteAclsResponse::from_results(
                        decided.results,
                    ))
                }
                // Group and client metrics configs (topic and broker configs stay undecided
                // here).
                ControllerRequest::AlterConfigs(r)
                    if r.topics.is_empty() && r.brokers.is_empty() =>
                {
                    // A group's or a subscription's config changes, one record a key, all
                    // or none.
                    type ConfigRecord = fn(
                        &str,
                        &str,
                        Option<&str>,
                    ) -> Result<
                        gregor_metadata::MetadataRecord,
                        gregor_metadata::ControllerError,
                    >;
                    let alter = |name: String,
                                 configs: &[(String, Option<String>)],
                                 record: ConfigRecord| {
                        let records: Result<Vec<_>, _> = configs
                            .iter()
                            .map(|(k, v)| record(&name, k, v.as_deref()))
                            .collect();
                        let (error_code, error_message) = match records {
                            Ok(records) => {
                                if !r.validate_only {
                                    self.replicas.apply_records(&records);
                                }
                                (0, None)
                            }
                            Err(e) => (e.code(), Some(e.to_string())),
                        };
                        proto::TopicResult {
                            name,
                            error_code,
                            error_message,
                        }
                    };
                    let group_results = r
                        .groups
                        .iter()
                        .map(|g| {
                            alter(
                                g.group.clone(),
                                &g.configs,
                                gregor_metadata::controller::alter_group_config,
                            )
                        })
                        .collect();
                    let client_metrics_results = r
                        .client_metrics
                        .iter()
                        .map(|c| {
                            alter(
                                c.subscription.clone(),
                                &c.configs,
                                gregor_metadata::controller::alter_client_metrics_config,
                            )
                        })
                        .collect();
                    ControllerResponse::AlterConfigs(proto::AlterConfigsResponse {
                        results: Vec::new(),
                        broker_results: Vec::new(),
                        group_results,
                        client_metrics_results,
                    })
                }
                other => ControllerResponse::error(
                    gregor_metadata::code::NOT_CONTROLLER,
                    format!("not decided in unit tests: {other:?}"),
                ),
            };
            async move { Ok(resp) }.boxed()
        }
    }
}
