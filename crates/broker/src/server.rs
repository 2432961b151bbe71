//! The listener and the broker's lifetime: open storage, bind, build the shared state
//! ([`Broker`], broker.rs), accept connections (bounded by `max.connections` and, per client
//! address, `max.connections.per.ip`), run the periodic tasks (retention, checkpoints,
//! Kafka-style flushes, the replication tick), and on shutdown stop accepting, then flush and
//! mark the data directory clean (or return an error when the final flush failed, which the
//! binary turns into a non-zero exit). A controller-only node (`process.roles=controller`)
//! runs only the metadata quorum and its controller (`run_controller_only`). A broker that the
//! controller refuses for good (another live process holds its node id) stops with an error.
//! Nothing else in the crate depends on this module.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use gregor_controller::protocol::{BrokerEndpoint, CreateTopicsRequest};
use gregor_controller::{
    BrokerIdentity, BrokerLifecycleManager, BrokerState, ControllerChannel, ControllerConfig,
    ControllerRequest, ControllerResponse, LifecycleConfig,
};
use gregor_raft::{MetadataQuorum, QuorumConfig};

use crate::admin_node::ControllerNode;
use crate::broker::Broker;
use crate::clock::{Clock, SystemClock};
use crate::cluster::{run_controller_activation, run_publisher, ControllerSlot, QuorumChannel};
use crate::config::{BrokerConfig, NetConfig};
use crate::connection::ClientStream;
use crate::controller_listener::ControllerApis;
use crate::group_coordinator::{offsets_topic, GroupRuntime, OFFSETS_TOPIC};
use crate::memory_pool::MemoryPool;
use crate::metadata::{LegacyMetadata, MetaProperties};
use crate::replica_manager::ReplicaManager;
use crate::request::ListenerName;

/// Runs a broker until `shutdown` turns true. Logs `listening on HOST:PORT` once it serves
/// clients: after its storage is open, the metadata quorum runs, and this broker is
/// registered, caught up with the metadata log and unfenced.
pub async fn run(
    mut config: BrokerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    config.place_metadata_log();
    config.validate()?;
    crate::controller_sasl::check_scram_start(&config, &config.data_dir.join(METADATA_DIR))?;
    for key in &config.ignored {
        warn!(key = %key, "config key not used by gregor; ignored");
    }
    // Before any partition opens: their meters register with the recorder it installs.
    let metrics = start_http(&config, shutdown.clone()).await?;
    if !config.cluster.roles.broker {
        return run_controller_only(config, shutdown, metrics).await;
    }
    let mut config = config;
    // Brokers that reach each other over TLS dial with the listener's truststore (and show its
    // keystore, for a peer that asks for client certificates); over SASL they log in with the
    // listener's JAAS username and password (inter_broker.rs).
    // The inter-broker listener's stores, read once for its server side and for dialling
    // peers; a reload of its dynamic ssl.* configs changes both (tls.rs: ReloadableTls).
    let inter_broker_tls = match config.inter_broker_tls()? {
        Some(settings) => {
            let name = config.inter_broker_listener_name();
            let tls = crate::tls::ReloadableTls::new(&name, settings)
                .map_err(|e| anyhow::anyhow!("listener {name}: {e}"))?;
            Some(Arc::new(tls))
        }
        None => None,
    };
    let inter_broker_sasl = config.inter_broker_sasl()?.map(|(settings, _)| settings);
    config.inter_broker_security =
        crate::inter_broker::client_security(&config, inter_broker_tls.as_deref())?;
    if let Some(login) = config
        .inter_broker_security
        .as_ref()
        .and_then(|s| s.sasl.as_ref())
    {
        info!(user = %login.username, mechanism = login.mechanism.name(),
            "brokers log in to each other with SASL");
    }
    if let Some(authorizer) = &config.authorizer {
        // Brokers replicate, write transaction markers and verify transactions with Kafka
        // requests that need CLUSTER_ACTION on the cluster, as in Kafka. Whether the brokers'
        // principal has it is checked against the ACLs once the image is here
        // (inter_broker::watch_login); a super user has it now.
        if let Some(principal) = crate::inter_broker::principal(&config) {
            if !config.cluster.is_single_node(config.node_id)
                && !authorizer.is_super_user(&principal)
            {
                info!(
                    %principal,
                    "the authorizer is on and brokers reach each other as {principal}, not a \
                     super user: it needs CLUSTER_ACTION on the cluster (checked against the \
                     ACLs once the metadata is loaded)"
                );
            }
        }
        info!(
            super_users = ?authorizer.super_users,
            allow_everyone_if_no_acl_found = authorizer.allow_everyone_if_no_acl_found,
            "authorizer on: every request is checked against the ACLs"
        );
    }
    let config = Arc::new(config);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    // Opening the logs takes the data directory's lock first: nothing here touches a
    // directory another process is using.
    let replicas = {
        let (c, clock) = (Arc::clone(&config), Arc::clone(&clock));
        Arc::new(tokio::task::spawn_blocking(move || ReplicaManager::open(c, clock)).await??)
    };
    let (props, dir_ids) = settle_all_meta_properties(&config)?;
    replicas.set_dir_ids(dir_ids);
    let listener = gregor_client::socket::bind(config.listen, &config.net.sockets)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let bound: SocketAddr = listener.local_addr()?;
    let advertised = config.advertised.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            bound.ip().to_string()
        };
        (host, bound.port())
    });
    let listener_tls = Arc::new(crate::tls::ListenerTls::default());
    let (listeners, endpoints, listener_advertised) = bind_client_listeners(
        &config,
        listener,
        &advertised,
        inter_broker_tls,
        inter_broker_sasl,
        &listener_tls,
    )
    .await?;

    // The metadata quorum and, while this node leads it, the active controller.
    let slot = Arc::new(ControllerSlot::default());
    let (quorum_cfg, scram_image) = quorum_config(&config, &props, bound, Some(&listener_tls))?;
    let quorum_advertised = quorum_cfg.advertised.clone();
    let quorum = Arc::new(
        MetadataQuorum::start(quorum_cfg, slot.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the metadata quorum: {e}"))?,
    );
    // SCRAM logins between the nodes are checked against this quorum's image from now on.
    let _ = scram_image.set(Arc::downgrade(&quorum));
    ControllerApis::install(
        &quorum,
        props.cluster_id.clone(),
        Arc::clone(&clock),
        Arc::new(ControllerNode::new(
            Arc::clone(&config),
            &quorum,
            crate::log_levels::installed(),
            Arc::clone(&listener_tls),
        )),
        controller_principal_mapper(&config),
        controller_sasl_settings(&config),
    );
    if let Some(m) = &metrics {
        let _ = m.quorum.set(Arc::clone(&quorum));
    }
    let mut cluster_tasks = vec![tokio::spawn(run_controller_activation(
        Arc::clone(&quorum),
        Arc::clone(&slot),
        controller_config(&config),
    ))];
    cluster_tasks.extend(crate::scram_bootstrap::spawn_report(
        &config.scram_bootstrap,
        quorum.image(),
    ));
    cluster_tasks.extend(spawn_auto_join(&config, &props, &quorum, quorum_advertised));
    import_legacy_metadata(&config, &quorum).await?;
    let (applied_tx, applied_rx) = watch::channel(-1i64);
    cluster_tasks.push(tokio::spawn(run_publisher(
        Arc::clone(&replicas),
        quorum.image(),
        applied_tx,
    )));
    let channel: Arc<dyn ControllerChannel> = Arc::new(QuorumChannel(Arc::clone(&quorum)));
    let lifecycle = BrokerLifecycleManager::start(
        Arc::clone(&channel),
        BrokerIdentity {
            broker_id: config.node_id,
            incarnation_id: uuid::Uuid::new_v4(),
            endpoints,
            rack: config.cluster.rack.clone(),
            previous_broker_epoch: replicas.previous_broker_epoch(),
            log_dirs: replicas.online_dir_ids(),
        },
        applied_rx.clone(),
        LifecycleConfig {
            heartbeat_interval: Duration::from_millis(config.cluster.broker_heartbeat_interval_ms),
            // A controlled shutdown moves leaderships within a few heartbeats; when no
            // controller answers (the quorum is gone: the whole cluster is stopping) the
            // broker stops after one session timeout rather than hanging.
            controlled_shutdown_timeout: Duration::from_millis(
                config.cluster.broker_session_timeout_ms.max(1000),
            ),
            // Two sessions: an earlier process of this node that crashed is fenced by then.
            duplicate_registration_timeout: Duration::from_millis(
                config.cluster.broker_session_timeout_ms.saturating_mul(2),
            ),
            ..LifecycleConfig::default()
        },
    );
    match wait_until_running(&lifecycle, &mut shutdown).await {
        Startup::Running => {
            wait_until_unfenced_image_applied(&quorum, applied_rx, config.node_id).await
        }
        Startup::ShutdownRequested => {
            info!("shutdown requested before the broker was running");
            stop_cluster(quorum, cluster_tasks).await;
            return Ok(());
        }
        Startup::Refused(reason) => {
            stop_cluster(quorum, cluster_tasks).await;
            let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
            return Err(duplicate_node_error(config.node_id, &reason));
        }
    }
    // KIP-858: the controller learns which log directory holds each replica.
    cluster_tasks.push(tokio::spawn(assign_log_dirs(
        Arc::clone(&replicas),
        Arc::clone(&channel),
        lifecycle.watch_broker_epoch(),
    )));
    // Caught up with the metadata log: say now if peers will refuse this broker's login.
    cluster_tasks.push(tokio::spawn(crate::inter_broker::watch_login(
        Arc::clone(&config),
        quorum.image(),
    )));
    // Replication: followers fetch from their leaders; leaders send their ISR changes.
    cluster_tasks.push(tokio::spawn(
        crate::replica_fetcher::run_replica_fetcher_manager(
            Arc::clone(&replicas),
            Arc::clone(&config),
        ),
    ));
    cluster_tasks.push(tokio::spawn(
        crate::alter_partition::run_alter_partition_sender(
            Arc::clone(&replicas),
            Arc::clone(&channel),
        ),
    ));
    // The image has caught up with the metadata log: logs it does not name are strays.
    {
        let r = Arc::clone(&replicas);
        match tokio::task::spawn_blocking(move || r.set_aside_stray_logs()).await? {
            Ok(0) => {}
            Ok(n) => warn!(
                partitions = n,
                "stray logs moved aside (kept as <topic>-<partition>.<hex>-stray)"
            ),
            Err(e) => warn!(error = %e, "cannot move stray logs aside"),
        }
    }
    // A lone node makes the offsets topic before it serves; a cluster member makes it in the
    // background once enough brokers are live.
    if offsets_replication_factor(&config) <= 1 {
        ensure_offsets_topic(
            Arc::clone(&config),
            Arc::clone(&replicas),
            Arc::clone(&channel),
            Some(Duration::from_secs(30)),
        )
        .await?;
    } else {
        let (c, r, ch) = (
            Arc::clone(&config),
            Arc::clone(&replicas),
            Arc::clone(&channel),
        );
        cluster_tasks.push(tokio::spawn(async move {
            if let Err(e) = ensure_offsets_topic(c, r, ch, None).await {
                warn!(error = %e, "{OFFSETS_TOPIC} was not created");
            }
        }));
    }
    let groups = {
        let r = Arc::clone(&replicas);
        Arc::new(tokio::task::spawn_blocking(move || GroupRuntime::open(&r)).await??)
    };
    let producer_ids = Arc::new(crate::producer_id_manager::ProducerIdManager::new(
        config.node_id,
        Arc::clone(&channel),
        Arc::clone(&replicas),
    ));
    // The transaction coordinator loads the `__transaction_state` partitions this broker
    // leads (the topic is created on the first transactional request, as in Kafka).
    let txn = Arc::new(crate::txn_coordinator::TxnRuntime::new(
        Arc::clone(&replicas),
        Arc::clone(&producer_ids),
        Arc::clone(&channel),
    ));
    {
        let t = Arc::clone(&txn);
        if let Err(e) = tokio::task::spawn_blocking(move || t.sync_leadership()).await? {
            warn!(error = %e, "the transaction coordinator could not load every partition");
        }
    }
    // Partition leaders ask the coordinators before a transactional produce opens a
    // transaction (KIP-890 part 1).
    let txn_verification = Arc::new(
        crate::add_partitions_to_txn_manager::AddPartitionsToTxnManager::new(
            Arc::clone(&config),
            Arc::clone(&replicas),
            Arc::clone(&txn),
        ),
    );
    // The share coordinator loads the `__share_group_state` partitions this broker leads (the
    // topic is created on first need, as in Kafka); the persister asks it, or its peers.
    let share_coordinator = Arc::new(crate::share_coordinator::ShareCoordinatorRuntime::new(
        Arc::clone(&replicas),
        Arc::clone(&channel),
    ));
    {
        let s = Arc::clone(&share_coordinator);
        if let Err(e) = tokio::task::spawn_blocking(move || s.sync_leadership()).await? {
            warn!(error = %e, "the share coordinator could not load every partition");
        }
    }
    let share_persister = Arc::new(crate::share_persister::SharePersister::new(
        Arc::clone(&config),
        Arc::clone(&replicas),
        Arc::clone(&share_coordinator),
    ));
    let broker = Arc::new(Broker {
        config: Arc::clone(&config),
        replicas,
        advertised,
        listener_advertised,
        groups,
        clock,
        cluster_id: props.cluster_id.clone(),
        controller: channel,
        quorum: Some(Arc::clone(&quorum)),
        producer_ids,
        txn,
        txn_verification,
        quotas: Arc::new(crate::quota::ClientQuotaManager::new(config.quota_window())),
        tls: listener_tls,
        share_coordinator,
        share_persister,
        share_partitions: Default::default(),
        fetch_sessions: Arc::new(crate::fetch_session::FetchSessions::new(
            config.fetch_session_cache_slots,
            crate::fetch_session::EVICTION_MS,
        )),
        log_levels: crate::log_levels::installed(),
    });
    if let Some(m) = &metrics {
        let _ = m.broker.set(Arc::clone(&broker));
    }
    info!(node = config.node_id, cluster_id = %props.cluster_id, "listening on {bound}");

    let mut tasks = spawn_periodic_tasks(&broker, shutdown.clone());
    // Compaction of `cleanup.policy=compact` logs, on its own threads (blocking file I/O),
    // started again with new settings when its dynamic configs change.
    let log_cleaner = Arc::new(Mutex::new(Some(crate::log_cleaner::LogCleaner::start(
        Arc::clone(&broker.replicas),
        broker.replicas.effective_config().cleaner.clone(),
    ))));
    tasks.push(tokio::spawn(follow_cleaner_settings(
        Arc::clone(&broker.replicas),
        Arc::clone(&log_cleaner),
    )));
    // The group coordinator follows the leadership of `__consumer_offsets`' partitions.
    tasks.push(tokio::spawn(follow_offsets_leadership(
        Arc::clone(&broker.groups),
        Arc::clone(&broker.replicas),
    )));
    tasks.push(tokio::spawn(
        Arc::clone(&broker.groups).run_ticker(Arc::clone(&broker.replicas)),
    ));
    // The transaction coordinator follows the leadership of `__transaction_state`'s
    // partitions, and aborts timed-out transactions and expires idle ids on its timers.
    tasks.push(tokio::spawn(follow_transaction_state_leadership(
        Arc::clone(&broker.txn),
        Arc::clone(&broker.replicas),
    )));
    tasks.push(tokio::spawn(Arc::clone(&broker.txn).run_timers()));
    // Share-partitions: acquisition lock timeouts, state writes, idle share sessions.
    tasks.push(tokio::spawn(
        Arc::clone(&broker.share_partitions).run_timers(Arc::downgrade(&broker)),
    ));
    // Share groups' dead-letter queues (KIP-1191).
    tasks.push(tokio::spawn(
        Arc::clone(&broker.share_partitions).run_dead_letter_queues(Arc::downgrade(&broker)),
    ));
    // The share coordinator follows the leadership of `__share_group_state`'s partitions.
    tasks.push(tokio::spawn(
        crate::share_coordinator::follow_share_group_state_leadership(
            Arc::clone(&broker.share_coordinator),
            Arc::clone(&broker.replicas),
        ),
    ));
    // Client quotas follow the applied images, so a change applies without a restart.
    tasks.push(tokio::spawn(crate::quota::follow_images(
        Arc::clone(&broker.quotas),
        broker.replicas.watch_image(),
    )));
    // The SSL listeners serve the stores their dynamic ssl.* configs name: those of the image
    // caught up with now (a restart after a rotation), then each change applied.
    reload_listener_tls(&broker, false);
    tasks.push(tokio::spawn(follow_listener_tls(Arc::clone(&broker))));
    let slots = Arc::new(crate::connection_slots::ConnectionSlots::default());
    let per_ip = Arc::new(ConnectionQuotas::default());
    let inter_broker_listener = config.inter_broker_listener_name().to_ascii_uppercase();
    let listener_names: Vec<String> = listeners
        .iter()
        .map(|l| l.name.as_str().to_ascii_uppercase())
        .collect();
    let mut ip_rates = IpRates::new(config.quota_window());
    tasks.push(tokio::spawn(follow_ip_quota_hosts(
        Arc::clone(&broker.replicas),
        Arc::clone(&ip_rates.hosts),
    )));
    let mut creation = CreationRates::new(
        config.quota_window(),
        listeners
            .iter()
            .map(|l| l.name.as_str().eq_ignore_ascii_case(&inter_broker_listener))
            .collect(),
    );
    let pool = Arc::new(MemoryPool::new(config.net.queued_max_request_bytes));
    let mut backoff = Duration::from_millis(5);
    let mut broker_state = lifecycle.state();
    let mut refused = None;
    let mut dir_failure = broker.replicas.watch_dir_failure();
    // KIP-858: failed log directories not yet acknowledged by the controller, with the time
    // (`log.dir.failure.timeout.ms` after the failure) by which they must be.
    let mut unacknowledged = UnacknowledgedDirs::new(
        Duration::from_millis(config.log_dir_failure_timeout_ms),
        lifecycle.acknowledged_offline_dirs(),
    );
    let mut applied = broker.replicas.watch_image();
    // KIP-1066: whether every log directory is cordoned, from the metadata caught up with now.
    lifecycle.set_cordoned(broker.replicas.all_dirs_cordoned());
    let mut stop_for_dir = false;
    let mut metadata_failed = None;
    loop {
        // `max.connections` and the listeners' own, read anew for each connection: dynamic.
        let limits = || {
            let effective = broker.replicas.effective_config();
            crate::connection_slots::SlotLimits::new(
                effective.max_connections,
                &effective.net.listener_max_connections,
                &listener_names,
                &inter_broker_listener,
            )
        };
        let (accepted, at) = tokio::select! {
            _ = shutdown.changed() => break,
            _ = follow_log_dirs(&mut dir_failure, &mut applied, &broker.replicas, &lifecycle, &mut unacknowledged) => {
                stop_for_dir = true;
                break;
            }
            cause = quorum.failed() => {
                metadata_failed = Some(metadata_log_failed(&cause));
                break;
            }
            // Registering again after losing the registration, and refused for good.
            _ = broker_state.wait_for(|s| *s == BrokerState::Refused) => {
                refused = Some(lifecycle.refusal().unwrap_or_default());
                break;
            }
            a = accept_any(&listeners, &creation.throttled_until, &slots, &limits) => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (permit, evicted) = slots.open(at, &limits());
                if let Some(other) = evicted {
                    info!(%peer, listener = %listener_names[at], closed_on = %listener_names[other],
                        "inter-broker connection past max.connections: closing the least \
                         recently used connection of another listener");
                }
                let l = &listeners[at];
                // The stores current now: a reload changes the next connection's.
                let (name, tls, sasl) = (
                    l.name.clone(),
                    l.tls.as_ref().map(|t| (t.acceptor(), t.principal_mapper())),
                    l.sasl.clone(),
                );
                backoff = Duration::from_millis(5);
                let effective = broker.replicas.effective_config();
                // KIP-612: past its connection creation rate the listener accepts nothing more
                // until the rate is back under it; this connection is served.
                if let Some(wait) = creation.record(at, &effective.net, name.as_str()) {
                    tracing::debug!(listener = %name.as_str(), wait_ms = wait.as_millis() as u64,
                        "connection creation rate reached (max.connection.creation.rate): \
                         the listener waits before accepting more");
                }
                // An IPv4 client of a dual-stack listener counts as its IPv4 address.
                let ip = peer.ip().to_canonical();
                // KIP-612's `ip` quotas: past its address's rate a connection is not served and
                // not counted; it is closed once the address is back under the rate, which
                // slows a client that reconnects in a loop (Kafka's delayed close).
                let image = broker.replicas.image();
                if let Some(hold) = ip_rates.record(image.client_quotas(), ip) {
                    creation.unrecord(at);
                    tracing::debug!(%peer, hold_ms = hold.as_millis() as u64,
                        "connection creation rate of the address reached \
                         (connection_creation_rate quota): closing the connection after the hold");
                    tokio::spawn(async move {
                        tokio::time::sleep(hold).await;
                        drop(stream);
                    });
                    continue;
                }
                let Some(quota) = ConnectionQuotas::open(&per_ip, ip, &effective.net) else {
                    // Kafka closes the socket at once and logs the address at INFO.
                    info!(
                        %peer,
                        max = effective.net.max_connections_for(ip),
                        "rejected connection: the address already has the maximum number of \
                         connections (max.connections.per.ip)"
                    );
                    drop(stream);
                    continue;
                };
                let broker = Arc::clone(&broker);
                let pool = Arc::clone(&pool);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let mut principal = crate::request::Principal::default();
                    let stream = match tls {
                        None => ClientStream::Plain(stream),
                        Some((acceptor, mapper)) => {
                            let _ = stream.set_nodelay(true);
                            let limit = Duration::from_millis(
                                broker.config.net.socket_request_timeout_ms.min(1 << 40),
                            );
                            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => {
                                    // A client certificate names the client (a SASL login
                                    // on SASL_SSL names it again, and wins).
                                    let dn = s.get_ref().1.peer_certificates().and_then(|c| {
                                        crate::tls::certificate_principal(c.first()?)
                                    });
                                    match dn {
                                        // On SSL the subject goes through
                                        // ssl.principal.mapping.rules; no rule matching fails
                                        // authentication, as in Kafka.
                                        Some(dn) if sasl.is_none() => match mapper.name(&dn) {
                                            Ok(user) => {
                                                principal = crate::request::Principal::user(&user)
                                            }
                                            Err(e) => {
                                                info!(%peer, listener = %name.as_str(),
                                                    error = %e,
                                                    "SSL authentication failed: Failed to map \
                                                     name for '{dn}' based on SSL principal \
                                                     mapping rules; connection closed");
                                                return;
                                            }
                                        },
                                        Some(dn) => {
                                            principal = crate::request::Principal::user(&dn)
                                        }
                                        None => {}
                                    }
                                    ClientStream::Tls(Box::new(s))
                                }
                                Ok(Err(e)) if gregor_raft::went_away(&e) => {
                                    // A disconnection, which Kafka logs at DEBUG.
                                    tracing::debug!(%peer, listener = %name.as_str(), error = %e,
                                        "the client closed its connection during the TLS handshake");
                                    return;
                                }
                                Ok(Err(e)) => {
                                    // Kafka logs a failed handshake at INFO with the address.
                                    info!(%peer, listener = %name.as_str(), error = %e,
                                        "TLS handshake failed; connection closed");
                                    return;
                                }
                                Err(_) => {
                                    info!(%peer, listener = %name.as_str(),
                                        "TLS handshake not completed within \
                                         socket.request.timeout.ms; connection closed");
                                    return;
                                }
                            }
                        }
                    };
                    let session = sasl.map(|settings| {
                        let scram: Arc<dyn crate::sasl::ScramCredentials> =
                            Arc::new(ImageScramCredentials(
                                Arc::clone(&broker.replicas),
                                crate::delegation_tokens::ImageTokens {
                                    replicas: Arc::clone(&broker.replicas),
                                    config: broker.config.delegation_tokens.clone(),
                                },
                            ));
                        crate::sasl::SaslSession::new(settings, scram)
                    });
                    let identity = crate::connection::Identity {
                        listener: name,
                        principal,
                        sasl: session,
                        last_use: Some(permit.last_use.clone()),
                    };
                    let open = crate::stats::connection_opened(identity.listener.as_str());
                    let close = Arc::clone(&permit.close);
                    tokio::select! {
                        () = crate::connection::serve(broker, pool, stream, peer, identity, shutdown) => {}
                        () = close.notified() => {
                            info!(%peer, "connection closed to make room for an inter-broker \
                                connection (max.connections)");
                        }
                    }
                    drop(open);
                    drop(quota);
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    info!("shutting down");
    // With the metadata log failed this node reaches no controller (its quorum client has
    // stopped): its session ends and the controller fences it instead.
    if refused.is_none()
        && metadata_failed.is_none()
        && config.cluster.controlled_shutdown_enable
        && (stop_for_dir || !config.cluster.is_single_node(config.node_id))
    {
        if lifecycle.controlled_shutdown().await {
            info!("controlled shutdown: the controller moved this broker's leaderships");
        } else {
            warn!("controlled shutdown: the controller did not answer in time; stopping anyway");
        }
    }
    for t in tasks {
        t.abort();
    }
    // KIP-966: the clean-shutdown marker names the registration this process had, so the
    // next start can prove its stop was clean.
    broker.replicas.set_broker_epoch(lifecycle.broker_epoch());
    drop(lifecycle);
    // Before the final flush: a clean in progress is abandoned, its files removed.
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(cleaner) = log_cleaner.lock().unwrap_or_else(|p| p.into_inner()).take() {
            cleaner.shutdown();
        }
    })
    .await;
    stop_cluster(quorum, cluster_tasks).await;
    if let Some(reason) = refused {
        let b = Arc::clone(&broker);
        let _ = tokio::task::spawn_blocking(move || b.replicas.shutdown()).await;
        return Err(duplicate_node_error(config.node_id, &reason));
    }
    let b = Arc::clone(&broker);
    // A failed final flush is not a clean stop: the caller exits non-zero so that whoever
    // stopped the broker (an operator, systemd, a rolling restart) learns that acknowledged
    // data may not be on disk, and the next start recovers the logs (no clean-shutdown marker).
    let flushed = tokio::task::spawn_blocking(move || b.replicas.shutdown()).await;
    if let Some(e) = metadata_failed {
        return Err(e);
    }
    match flushed {
        Ok(Ok(())) => {
            info!("clean shutdown complete");
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "shutdown flush failed; the data directory is not marked clean");
            Err(anyhow::anyhow!(
                "shutdown flush failed: {e}; the next start will recover the logs"
            ))
        }
        Err(e) => {
            error!(error = %e, "shutdown task failed");
            Err(anyhow::anyhow!("shutdown task failed: {e}"))
        }
    }
}

/// Runs a controller-only node (`process.roles=controller`) until `shutdown` turns true: a
/// voter of the metadata quorum that becomes the active controller when it leads. It opens no
/// partition logs, never registers as a broker (so it is never given replicas and clients never
/// see it in Metadata), and listens only on its controller listener. Logs `listening on
/// HOST:PORT` with the controller listener's address once the quorum runs.
async fn run_controller_only(
    config: BrokerConfig,
    mut shutdown: watch::Receiver<bool>,
    metrics: Option<Arc<crate::stats::Source>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    if LegacyMetadata::load(&config.data_dir)?.is_some() {
        anyhow::bail!(
            "{} holds the topics of a single-node gregor broker; a controller-only node does not \
             host partitions, so start it with a data directory of its own",
            config.data_dir.display()
        );
    }
    let props = settle_meta_properties(&config)?;
    let listen = config.cluster.controller_listen.ok_or_else(|| {
        anyhow::anyhow!("a controller-only node needs a controller listener (--controller-listen)")
    })?;
    // The metadata quorum locks its own directory, so a second process on this data dir stops
    // there.
    let slot = Arc::new(ControllerSlot::default());
    // The controller listener's stores when it is SSL, reloaded as a broker's listeners are.
    let listener_tls = Arc::new(crate::tls::ListenerTls::default());
    let (quorum_cfg, scram_image) = quorum_config(&config, &props, listen, Some(&listener_tls))?;
    let quorum_advertised = quorum_cfg.advertised.clone();
    let quorum = Arc::new(
        MetadataQuorum::start(quorum_cfg, slot.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the metadata quorum: {e}"))?,
    );
    // SCRAM logins between the nodes are checked against this quorum's image from now on.
    let _ = scram_image.set(Arc::downgrade(&quorum));
    let config = Arc::new(config);
    ControllerApis::install(
        &quorum,
        props.cluster_id.clone(),
        Arc::new(SystemClock) as Arc<dyn Clock>,
        Arc::new(ControllerNode::new(
            Arc::clone(&config),
            &quorum,
            crate::log_levels::installed(),
            Arc::clone(&listener_tls),
        )),
        controller_principal_mapper(&config),
        controller_sasl_settings(&config),
    );
    if let Some(m) = &metrics {
        let _ = m.quorum.set(Arc::clone(&quorum));
    }
    let mut tasks = vec![
        tokio::spawn(run_controller_activation(
            Arc::clone(&quorum),
            Arc::clone(&slot),
            controller_config(&config),
        )),
        tokio::spawn(follow_controller_tls(
            Arc::clone(&config),
            quorum.image(),
            listener_tls,
        )),
    ];
    tasks.extend(crate::scram_bootstrap::spawn_report(
        &config.scram_bootstrap,
        quorum.image(),
    ));
    tasks.extend(spawn_auto_join(&config, &props, &quorum, quorum_advertised));
    info!(
        node = config.node_id,
        cluster_id = %props.cluster_id,
        "controller-only node listening on {} (controller listener)",
        quorum.local_addr()
    );
    let mut metadata_failed = None;
    while !*shutdown.borrow_and_update() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() {
                break;
            },
            cause = quorum.failed() => {
                metadata_failed = Some(metadata_log_failed(&cause));
                break;
            }
        }
    }
    info!("shutting down");
    stop_cluster(quorum, tasks).await;
    if let Some(e) = metadata_failed {
        return Err(e);
    }
    info!("clean shutdown complete");
    Ok(())
}

/// The error a node stops with when Raft stopped on a storage error (a write or fsync of the
/// metadata log failed): it cannot follow the metadata any more, so it must not go on serving
/// what it last knew (Kafka's node halts on a metadata log directory failure).
fn metadata_log_failed(cause: &str) -> anyhow::Error {
    error!(
        cause,
        "the metadata log cannot be written (Raft stopped on a storage error): stopping this node"
    );
    anyhow::anyhow!(
        "the metadata log failed ({cause}); the next start recovers it once its directory is \
         writable"
    )
}

/// Tells the controller what its log directories' state asks of it, in the heartbeats:
/// whether every directory is cordoned (KIP-1066, after each applied image: `cordoned.log.dirs`
/// is dynamic), and every directory that goes offline. A failed directory's replicas go into
/// every heartbeat from then on, and the controller leads them elsewhere and takes them out of
/// their ISRs (Kafka's `OfflineLogDirs`) while this broker goes on serving its other
/// directories. Resolves only when this broker cannot go on and another could lead what it
/// leads: the directory holding the metadata log failed, or every directory did (then it stops
/// with a controlled shutdown, as Kafka's broker halts). Alone, it never resolves.
///
/// A failed directory the controller has not acknowledged (no heartbeat carrying it answered)
/// within `log.dir.failure.timeout.ms` also resolves it: the broker shuts down, as Kafka's
/// `BrokerLifecycleManager` does, so that its session ends and the directory's partitions are
/// led elsewhere. The pending directories live in `unacknowledged`, outside this future, which
/// the accept loop drops and makes again for every connection.
async fn follow_log_dirs(
    failed: &mut watch::Receiver<bool>,
    applied: &mut watch::Receiver<Arc<gregor_metadata::MetadataImage>>,
    replicas: &ReplicaManager,
    lifecycle: &BrokerLifecycleManager,
    unacknowledged: &mut UnacknowledgedDirs,
) {
    loop {
        tokio::select! {
            changed = failed.changed() => if changed.is_err() {
                break;
            },
            () = unacknowledged.overdue() => {
                error!(
                    timeout_ms = unacknowledged.timeout.as_millis() as u64,
                    "shutting down: the controller was not told of the offline log directory \
                     within log.dir.failure.timeout.ms"
                );
                return;
            }
            changed = applied.changed() => {
                if changed.is_err() {
                    break;
                }
                lifecycle.set_cordoned(replicas.all_dirs_cordoned());
                // Replicas assigned to a directory that could not be opened at start.
                lifecycle.set_offline_replicas(offline_replicas(replicas));
                continue;
            }
        }
        if !*failed.borrow_and_update() {
            continue;
        }
        let offline = offline_replicas(replicas);
        warn!(
            replicas = offline.len(),
            "reporting the replicas of the offline log directories to the controller"
        );
        lifecycle.set_offline_replicas(offline);
        let offline_dirs = replicas.offline_dir_ids();
        unacknowledged.failed(&offline_dirs);
        lifecycle.set_offline_log_dirs(offline_dirs);
        if replicas.failed_dirs_are_fatal() && replicas.other_brokers_registered() {
            error!(
                "the log directory of the metadata log, or every log directory, is offline: \
                 stopping this broker (controlled shutdown) so that its partitions are led \
                 elsewhere"
            );
            return;
        }
    }
    std::future::pending::<()>().await
}

/// KIP-858: the failed log directories the controller has not acknowledged yet, each with the
/// time by which it must (`log.dir.failure.timeout.ms` after the failure was seen).
struct UnacknowledgedDirs {
    timeout: Duration,
    acknowledged: watch::Receiver<Vec<uuid::Uuid>>,
    pending: Vec<(tokio::time::Instant, uuid::Uuid)>,
}

impl UnacknowledgedDirs {
    fn new(timeout: Duration, acknowledged: watch::Receiver<Vec<uuid::Uuid>>) -> Self {
        UnacknowledgedDirs {
            timeout,
            acknowledged,
            pending: Vec::new(),
        }
    }

    /// Starts the clock of each of `offline` not yet pending nor acknowledged.
    fn failed(&mut self, offline: &[uuid::Uuid]) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let acknowledged = self.acknowledged.borrow().clone();
        for dir in offline {
            if !acknowledged.contains(dir) && !self.pending.iter().any(|(_, d)| d == dir) {
                self.pending.push((deadline, *dir));
            }
        }
    }

    /// Resolves once a pending directory is past its time without being acknowledged;
    /// acknowledged ones are dropped as they are.
    async fn overdue(&mut self) {
        loop {
            {
                let acknowledged = self.acknowledged.borrow_and_update();
                self.pending.retain(|(_, d)| !acknowledged.contains(d));
            }
            let Some(first) = self.pending.iter().map(|(t, _)| *t).min() else {
                // Nothing pending: only a new failure (through `failed`) starts a clock.
                std::future::pending::<()>().await;
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(first) => {
                    let acknowledged = self.acknowledged.borrow();
                    let now = tokio::time::Instant::now();
                    if self.pending.iter().any(|(t, d)| *t <= now && !acknowledged.contains(d)) {
                        return;
                    }
                }
                changed = self.acknowledged.changed() => if changed.is_err() {
                    std::future::pending::<()>().await;
                },
            }
        }
    }
}

/// The replicas in offline log directories, as the heartbeats report them.
fn offline_replicas(replicas: &ReplicaManager) -> Vec<gregor_controller::protocol::OfflineReplica> {
    replicas
        .offline_replicas()
        .into_iter()
        .map(
            |(topic_id, partition)| gregor_controller::protocol::OfflineReplica {
                topic_id,
                partition,
            },
        )
        .collect()
}

/// The most replicas one AssignReplicasToDirs names.
const MAX_DIR_ASSIGNMENTS: usize = 1000;

/// KIP-858 (Kafka's `AssignmentsManager`): tells the controller which log directory holds each
/// replica whose directory the applied metadata does not have right (new replicas on a broker
/// with several directories, moved ones, ones from before directory assignment), after each
/// applied image and again every second until the metadata says so.
async fn assign_log_dirs(
    replicas: Arc<ReplicaManager>,
    channel: Arc<dyn ControllerChannel>,
    mut epoch: watch::Receiver<Option<i64>>,
) {
    use gregor_controller::protocol::{
        AssignReplicasToDirsRequest, ControllerRequest, ControllerResponse, DirectoryAssignment,
    };
    let mut applied = replicas.watch_image();
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() {
                return;
            },
            changed = epoch.changed() => if changed.is_err() {
                return;
            },
            _ = retry.tick() => {}
        }
        let Some(broker_epoch) = *epoch.borrow() else {
            continue;
        };
        let pending = replicas.pending_dir_assignments();
        if pending.is_empty() {
            continue;
        }
        let assignments: Vec<DirectoryAssignment> = pending
            .into_iter()
            .take(MAX_DIR_ASSIGNMENTS)
            .map(|(topic_id, partition, directory)| DirectoryAssignment {
                topic_id,
                partition,
                directory,
            })
            .collect();
        let count = assignments.len();
        let request = ControllerRequest::AssignReplicasToDirs(AssignReplicasToDirsRequest {
            broker_id: replicas.config().node_id,
            broker_epoch,
            assignments,
        });
        match channel.call(request).await {
            Ok(ControllerResponse::AssignReplicasToDirs(r)) if r.error_code == 0 => {
                info!(
                    replicas = count,
                    "replicas assigned to their log directories"
                );
            }
            Ok(other) => {
                tracing::debug!(answer = ?other, "AssignReplicasToDirs not accepted; retrying");
            }
            Err(e) => tracing::debug!(error = %e, "AssignReplicasToDirs failed; retrying"),
        }
    }
}

/// `controller.quorum.auto.join.enable` on a controller: the task that makes it a voter
/// ([`crate::auto_join`]).
fn spawn_auto_join(
    config: &BrokerConfig,
    props: &MetaProperties,
    quorum: &Arc<MetadataQuorum>,
    advertised: String,
) -> Option<tokio::task::JoinHandle<()>> {
    if !(config.cluster.auto_join && config.cluster.roles.controller) {
        return None;
    }
    let listener_name = config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    Some(tokio::spawn(
        crate::auto_join::AutoJoin {
            quorum: Arc::clone(quorum),
            cluster_id: props.cluster_id.clone(),
            directory_id: props.directory_id.clone(),
            listener_name,
            advertised,
        }
        .run(),
    ))
}

/// Starts the HTTP listener (`/metrics`) when `http.listener` is set, after installing the
/// metrics recorder; its gauges read the quorum and the broker once they are set in the
/// returned source.
async fn start_http(
    config: &BrokerConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<crate::stats::Source>>> {
    let Some(addr) = config.http_listen else {
        return Ok(None);
    };
    let handle = crate::stats::install();
    let listener = crate::http_server::bind(addr).await?;
    let source = Arc::new(crate::stats::Source {
        node_id: config.node_id,
        controller: config.cluster.roles.controller,
        broker_role: config.cluster.roles.broker,
        ..Default::default()
    });
    tokio::spawn(crate::http_server::serve(
        listener,
        handle,
        Arc::clone(&source),
        shutdown,
    ));
    Ok(Some(source))
}

/// SCRAM credentials from the metadata image this broker applied last (the metadata log's
/// `UserScramCredentialRecord`s), so a credential changed with kafka-configs holds for the
/// next login without a restart.
struct ImageScramCredentials(Arc<ReplicaManager>, crate::delegation_tokens::ImageTokens);

impl crate::sasl::ScramCredentials for ImageScramCredentials {
    fn credential(
        &self,
        user: &str,
        mechanism: crate::scram::ScramMechanism,
    ) -> Option<crate::scram::ScramCredential> {
        self.0
            .image()
            .scram()
            .credential(user, mechanism.type_id())
            .cloned()
    }

    fn token_credential(
        &self,
        token_id: &str,
        mechanism: crate::scram::ScramMechanism,
    ) -> Option<crate::sasl::TokenCredential> {
        self.1.credential(token_id, mechanism)
    }
}

/// What [`bind_client_listeners`] gives back: the bound listeners (the primary first), the
/// endpoints to register, and each other listener's advertised address by name.
type BoundListeners = (
    Vec<ClientListener>,
    Vec<BrokerEndpoint>,
    Vec<(String, (String, u16))>,
);

/// Binds the listeners served beside the primary one (`listener`, already bound, with the TLS
/// and SASL settings of the inter-broker listener) now, so a port taken or a bad certificate stops the start
/// with the reason.
async fn bind_client_listeners(
    config: &BrokerConfig,
    listener: TcpListener,
    advertised: &(String, u16),
    inter_broker_tls: Option<Arc<crate::tls::ReloadableTls>>,
    inter_broker_sasl: Option<Arc<crate::sasl::SaslSettings>>,
    registry: &crate::tls::ListenerTls,
) -> anyhow::Result<BoundListeners> {
    let acceptor = |settings: &crate::tls::TlsSettings, name: &str| {
        crate::tls::ReloadableTls::new(name, settings.clone())
            .map(Arc::new)
            .map_err(|e| anyhow::anyhow!("listener {name}: {e}"))
    };
    let endpoint =
        |name: &str, (host, port): &(String, u16), tls: bool, sasl: bool| BrokerEndpoint {
            name: name.to_string(),
            host: host.clone(),
            port: *port,
            security_protocol: match (tls, sasl) {
                (false, false) => SECURITY_PROTOCOL_PLAINTEXT,
                (true, false) => SECURITY_PROTOCOL_SSL,
                (false, true) => SECURITY_PROTOCOL_SASL_PLAINTEXT,
                (true, true) => SECURITY_PROTOCOL_SASL_SSL,
            },
        };
    let inter_broker = config.inter_broker_listener_name();
    let primary_tls = inter_broker_tls;
    if let Some(tls) = &primary_tls {
        registry.add(&inter_broker, Arc::clone(tls));
    }
    let mut endpoints = vec![endpoint(
        &inter_broker,
        advertised,
        primary_tls.is_some(),
        inter_broker_sasl.is_some(),
    )];
    let mut listeners = vec![ClientListener {
        listener,
        name: ListenerName::new(&inter_broker),
        tls: primary_tls,
        sasl: inter_broker_sasl,
    }];
    let mut listener_advertised = Vec::new();
    for spec in config.extra_listeners()? {
        let tls = spec
            .tls
            .as_ref()
            .map(|s| acceptor(s, &spec.name))
            .transpose()?;
        if let Some(tls) = &tls {
            registry.add(&spec.name, Arc::clone(tls));
        }
        let l = gregor_client::socket::bind(spec.addr, &config.net.sockets).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (listener {}): {e}",
                spec.addr,
                spec.name
            )
        })?;
        let at = l.local_addr()?;
        let adv = spec.advertised.clone().unwrap_or_else(|| {
            let host = if at.ip().is_unspecified() {
                advertised.0.clone()
            } else {
                at.ip().to_string()
            };
            (host, at.port())
        });
        info!(listener = %spec.name, tls = tls.is_some(),
            sasl = ?spec.sasl.as_ref().map(|s| &s.mechanisms), "serving clients on {at}");
        endpoints.push(endpoint(
            &spec.name,
            &adv,
            tls.is_some(),
            spec.sasl.is_some(),
        ));
        listener_advertised.push((spec.name.clone(), adv));
        listeners.push(ClientListener {
            listener: l,
            name: ListenerName::new(&spec.name),
            tls,
            sasl: spec.sasl.clone(),
        });
    }
    // OAUTHBEARER's JWKS is fetched from now on, so it is there for the first login.
    for sasl in listeners.iter().filter_map(|l| l.sasl.as_ref()) {
        sasl.start_background();
    }
    Ok((listeners, endpoints, listener_advertised))
}

/// Kafka's `SecurityProtocol` ids, as endpoints carry them in the metadata.
const SECURITY_PROTOCOL_PLAINTEXT: i16 = 0;
const SECURITY_PROTOCOL_SSL: i16 = 1;
const SECURITY_PROTOCOL_SASL_PLAINTEXT: i16 = 2;
const SECURITY_PROTOCOL_SASL_SSL: i16 = 3;

/// A bound client listener: its socket, its name, its TLS acceptor (SSL, SASL_SSL) and its
/// SASL settings (SASL_PLAINTEXT, SASL_SSL).
struct ClientListener {
    listener: TcpListener,
    name: ListenerName,
    tls: Option<Arc<crate::tls::ReloadableTls>>,
    sasl: Option<Arc<crate::sasl::SaslSettings>>,
}

/// Reloads each SSL listener's stores from the configuration in effect (the static one with the
/// image's dynamic configs over it) when its `ssl.*` settings changed or, with `reread`, when a
/// store file changed since it was read. A store that does not load, or that names another
/// subject, is logged and the listener keeps serving what it has (the broker that took the
/// change checked it before it was committed). Returns the refusals.
pub(crate) fn reload_listener_tls(broker: &Broker, reread: bool) -> Vec<(String, String)> {
    reload_listeners(&broker.tls, &broker.replicas.effective_config(), reread)
}

/// [`reload_listener_tls`] from its parts: the listeners and the configuration in effect.
pub(crate) fn reload_listeners(
    listeners: &crate::tls::ListenerTls,
    config: &BrokerConfig,
    reread: bool,
) -> Vec<(String, String)> {
    let mut refused = Vec::new();
    for (name, tls) in listeners.all() {
        let outcome = config
            .listener_tls_settings(&name)
            .and_then(|settings| tls.reload(&settings, reread));
        if let Err(e) = outcome {
            warn!(listener = %name, error = %e,
                "SSL stores not reloaded; the listener keeps its certificate");
            refused.push((name, e.to_string()));
        }
    }
    refused
}

/// After every applied image: [`reload_listener_tls`] (a change of a listener's dynamic ssl.*
/// configs).
/// The log cleaner's dynamic configs (`log.cleaner.threads`, `.backoff.ms`,
/// `.dedupe.buffer.size`, `.io.max.bytes.per.second`): after an image that changes them, the
/// cleaner's threads are stopped (a clean in progress is abandoned) and started again with the
/// new settings, as Kafka's `LogCleaner.reconfigure` does. The broker's shutdown takes the
/// cleaner from the same slot, after a restart in progress.
async fn follow_cleaner_settings(
    replicas: Arc<ReplicaManager>,
    cleaner: Arc<Mutex<Option<crate::log_cleaner::LogCleaner>>>,
) {
    let mut images = replicas.watch_image();
    let mut current = replicas.effective_config().cleaner.clone();
    while images.changed().await.is_ok() {
        let wanted = replicas.effective_config().cleaner.clone();
        if wanted == current {
            continue;
        }
        info!(
            threads = wanted.threads,
            backoff_ms = wanted.backoff_ms,
            dedupe_buffer_size = wanted.dedupe_buffer_size,
            io_max_bytes_per_second = wanted.io_max_bytes_per_second,
            "log cleaner settings changed: restarting the cleaner"
        );
        current = wanted.clone();
        let (replicas, cleaner) = (Arc::clone(&replicas), Arc::clone(&cleaner));
        let restart = move || {
            let mut slot = cleaner.lock().unwrap_or_else(|p| p.into_inner());
            // None: the broker is shutting down, and took it.
            if let Some(old) = slot.take() {
                old.shutdown();
                *slot = Some(crate::log_cleaner::LogCleaner::start(replicas, wanted));
            }
        };
        if let Err(e) = tokio::task::spawn_blocking(restart).await {
            error!(error = %e, "log cleaner restart failed");
        }
    }
}

/// The host names of `ip` quota entities, resolved after each image that names one (Kafka
/// resolves the name when it applies the quota record), for the accept loop's [`IpRates`]. A
/// name that does not resolve is logged and holds no address.
async fn follow_ip_quota_hosts(replicas: Arc<ReplicaManager>, resolved: ResolvedHosts) {
    let mut images = replicas.watch_image();
    let mut names: Vec<String> = Vec::new();
    loop {
        let now: Vec<String> = {
            let image = images.borrow_and_update();
            let mut now: Vec<String> = image
                .client_quotas()
                .entities()
                .filter_map(|(e, _)| e.ip.as_ref()?.as_option())
                .filter(|n| n.parse::<IpAddr>().is_err())
                .map(str::to_string)
                .collect();
            now.sort();
            now.dedup();
            now
        };
        if now != names {
            let mut map = HashMap::new();
            for name in &now {
                let lookup = tokio::net::lookup_host((name.as_str(), 0));
                match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                    Ok(Ok(addresses)) => {
                        let ips = addresses.map(|a| a.ip().to_canonical()).collect();
                        map.insert(name.clone(), ips);
                    }
                    _ => {
                        warn!(host = %name, "the host name of an ip quota does not resolve: the quota holds no address")
                    }
                }
            }
            resolved.store(Arc::new(map));
            names = now;
        }
        if images.changed().await.is_err() {
            return;
        }
    }
}

async fn follow_listener_tls(broker: Arc<Broker>) {
    let mut images = broker.replicas.watch_image();
    while images.changed().await.is_ok() {
        let b = Arc::clone(&broker);
        // Reading stores is file I/O and key parsing: off the runtime's threads.
        if let Err(e) = tokio::task::spawn_blocking(move || reload_listener_tls(&b, false)).await {
            error!(error = %e, "SSL reload task failed");
        }
    }
}

/// A controller-only node's [`follow_listener_tls`]: after every image the quorum applies, the
/// controller listener's stores are reloaded when its dynamic `ssl.*` configs changed.
async fn follow_controller_tls(
    config: Arc<BrokerConfig>,
    mut images: watch::Receiver<Arc<gregor_metadata::MetadataImage>>,
    listeners: Arc<crate::tls::ListenerTls>,
) {
    if listeners.all().is_empty() {
        return;
    }
    while images.changed().await.is_ok() {
        let effective = config.with_dynamic(images.borrow_and_update().configs());
        let listeners = Arc::clone(&listeners);
        // Reading stores is file I/O and key parsing: off the runtime's threads.
        let reload = move || reload_listeners(&listeners, &effective, false);
        if let Err(e) = tokio::task::spawn_blocking(reload).await {
            error!(error = %e, "SSL reload task failed");
        }
    }
}

/// The next connection on any of the listeners, and which one took it. `accept` is
/// cancel-safe, so the losers of the race lose nothing.
/// A listener throttled until a time (`throttled_until`, by listener) takes no connection
/// before it (KIP-612: Kafka's acceptor of that listener waits).
/// A listener at its connection limits ([`crate::connection_slots`]) takes none either until a
/// connection ends (or, the limits being dynamic, until it is looked at again, twice a second).
async fn accept_any(
    listeners: &[ClientListener],
    throttled_until: &[Option<tokio::time::Instant>],
    slots: &crate::connection_slots::ConnectionSlots,
    limits: &dyn Fn() -> crate::connection_slots::SlotLimits,
) -> (std::io::Result<(tokio::net::TcpStream, SocketAddr)>, usize) {
    loop {
        let now = tokio::time::Instant::now();
        let limits = limits();
        let mut full = false;
        let open: Vec<usize> = (0..listeners.len())
            .filter(|&i| {
                throttled_until
                    .get(i)
                    .copied()
                    .flatten()
                    .is_none_or(|t| t <= now)
            })
            .filter(|&i| {
                let available = slots.available(i, &limits);
                full |= !available;
                available
            })
            .collect();
        // A listener at its limits opens again when a connection ends.
        let freed = async {
            if full {
                tokio::select! {
                    () = slots.freed() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            } else {
                std::future::pending::<()>().await
            }
        };
        let next_open = throttled_until
            .iter()
            .flatten()
            .filter(|&&t| t > now)
            .min()
            .copied();
        if open.is_empty() {
            let reopen = async {
                match next_open {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = reopen => {}
                () = freed => {}
            }
            continue;
        }
        let accepts = futures::future::select_all(
            open.iter()
                .map(|&i| Box::pin(listeners[i].listener.accept())),
        );
        // A throttled listener opens again when its time is up.
        let reopen = async {
            match next_open {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            (result, at, _) = accepts => return (result, open[at]),
            () = reopen => continue,
            () = freed => continue,
        }
    }
}

/// KIP-612's connection creation rates, over the client quotas' window (`quota.window.num` ×
/// `quota.window.size.seconds`, as Kafka's): one per listener
/// (`listener.name.<l>.max.connection.creation.rate`) and one broker-wide
/// (`max.connection.creation.rate`) over every listener but the inter-broker one; and until
/// when each listener, past a rate it counts in, takes no new connection.
struct CreationRates {
    started: std::time::Instant,
    listeners: Vec<crate::quota::Rate>,
    broker: crate::quota::Rate,
    /// By listener: whether it is the inter-broker listener (outside the broker-wide rate).
    inter_broker: Vec<bool>,
    throttled_until: Vec<Option<tokio::time::Instant>>,
}

impl CreationRates {
    fn new(window: crate::quota::QuotaWindow, inter_broker: Vec<bool>) -> CreationRates {
        CreationRates {
            started: std::time::Instant::now(),
            listeners: vec![crate::quota::Rate::new(window); inter_broker.len()],
            broker: crate::quota::Rate::new(window),
            throttled_until: vec![None; inter_broker.len()],
            inter_broker,
        }
    }

    /// Counts a connection accepted on listener `at` (named `name`) under the rates `net`
    /// sets; how long the listener (or, past the broker-wide rate, every listener that counts
    /// in it) now waits, if it is past a rate (Kafka's `QuotaUtils.throttleTime`).
    fn record(&mut self, at: usize, net: &NetConfig, name: &str) -> Option<Duration> {
        let now_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let mut listener_wait = 0;
        if let Some(rate) = self.listeners.get_mut(at) {
            rate.record(1.0, now_ms);
            let quota = net
                .listener_connection_creation_rates
                .get(&name.to_ascii_uppercase())
                .copied();
            if let Some(quota) = quota {
                listener_wait = rate.throttle_time_ms(f64::from(quota), now_ms);
            }
        }
        let mut broker_wait = 0;
        if !self.inter_broker.get(at).copied().unwrap_or(false) {
            self.broker.record(1.0, now_ms);
            if net.max_connection_creation_rate < i32::MAX {
                broker_wait = self
                    .broker
                    .throttle_time_ms(f64::from(net.max_connection_creation_rate), now_ms);
            }
        }
        let now = tokio::time::Instant::now();
        let mut hold = |i: usize, ms: u64| {
            let until = now + Duration::from_millis(ms);
            if let Some(t) = self.throttled_until.get_mut(i) {
                *t = Some(t.map_or(until, |t| t.max(until)));
            }
        };
        if broker_wait > 0 {
            for i in 0..self.inter_broker.len() {
                if !self.inter_broker[i] {
                    hold(i, broker_wait);
                }
            }
        }
        if listener_wait > 0 {
            hold(at, listener_wait);
        }
        let wait = listener_wait.max(broker_wait);
        (wait > 0).then(|| Duration::from_millis(wait))
    }

    /// Takes back a connection [`CreationRates::record`] counted on listener `at` (one its
    /// address's own rate refused: Kafka's `updateListenerMetrics`).
    fn unrecord(&mut self, at: usize) {
        let now_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        if let Some(rate) = self.listeners.get_mut(at) {
            rate.record(-1.0, now_ms);
        }
        if !self.inter_broker.get(at).copied().unwrap_or(false) {
            self.broker.record(-1.0, now_ms);
        }
    }
}

/// KIP-612's per-address connection creation rates: the `connection_creation_rate` of the
/// `ip` client quota naming the address, else of the default `ip` entity, over the client
/// quotas' window. An address is tracked only while a quota applies to it.
struct IpRates {
    window: crate::quota::QuotaWindow,
    started: std::time::Instant,
    rates: HashMap<IpAddr, crate::quota::Rate>,
    pruned_at_ms: i64,
    /// The addresses of the `ip` entities named by a host name ([`follow_ip_quota_hosts`]).
    hosts: ResolvedHosts,
}

/// Host names of `ip` quota entities and the addresses they resolved to.
type ResolvedHosts = Arc<arc_swap::ArcSwap<HashMap<String, Vec<IpAddr>>>>;

impl IpRates {
    fn new(window: crate::quota::QuotaWindow) -> IpRates {
        IpRates {
            window,
            started: std::time::Instant::now(),
            rates: HashMap::new(),
            pruned_at_ms: 0,
            hosts: ResolvedHosts::default(),
        }
    }

    /// The `connection_creation_rate` that applies to `ip`: its own entity's (named by the
    /// address, in any of its spellings, or by a host name resolving to it, in `hosts`), else
    /// the default entity's.
    fn quota(
        quotas: &gregor_metadata::ClientQuotasImage,
        hosts: &HashMap<String, Vec<IpAddr>>,
        ip: IpAddr,
    ) -> Option<f64> {
        const KEY: &str = "connection_creation_rate";
        let mut default = None;
        for (entity, values) in quotas.entities() {
            let Some(name) = &entity.ip else { continue };
            let Some(&quota) = values.get(KEY) else {
                continue;
            };
            match name.as_option() {
                Some(n) => {
                    let named = match n.parse::<IpAddr>() {
                        Ok(a) => a.to_canonical() == ip,
                        Err(_) => hosts.get(n).is_some_and(|a| a.contains(&ip)),
                    };
                    if named {
                        return Some(quota);
                    }
                }
                None => default = Some(quota),
            }
        }
        default
    }

    /// Counts a connection from `ip` under the quotas of `quotas`; past the address's rate the
    /// connection is taken back out and the answer is how long to hold it before closing it
    /// (Kafka's `recordIpConnectionMaybeThrottle`).
    fn record(
        &mut self,
        quotas: &gregor_metadata::ClientQuotasImage,
        ip: IpAddr,
    ) -> Option<Duration> {
        let now_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.prune(now_ms);
        let Some(quota) = Self::quota(quotas, &self.hosts.load(), ip) else {
            self.rates.remove(&ip);
            return None;
        };
        let window = self.window;
        let rate = self
            .rates
            .entry(ip)
            .or_insert_with(|| crate::quota::Rate::new(window));
        rate.record(1.0, now_ms);
        let hold_ms = rate.throttle_time_ms(quota, now_ms);
        if hold_ms == 0 {
            return None;
        }
        rate.record(-1.0, now_ms);
        Some(Duration::from_millis(hold_ms))
    }

    /// Forgets, once a window span, the addresses with nothing left in their window.
    fn prune(&mut self, now_ms: i64) {
        let span = i64::from(self.window.samples) * self.window.window_ms;
        if now_ms - self.pruned_at_ms < span {
            return;
        }
        self.pruned_at_ms = now_ms;
        self.rates.retain(|_, r| r.measure(now_ms) > 0.0);
    }
}

/// Connections open per client address (Kafka's `ConnectionQuotas`, per-IP part). Taken once
/// per accepted connection and given back when it ends, so a mutex is fine here.
#[derive(Debug, Default)]
struct ConnectionQuotas {
    /// Open connections per address; an address leaves the map with its last connection.
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's share of its address's quota, given back on drop.
struct QuotaGuard {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    /// Counts a new connection from `ip`, or `None` if the address is at its limit
    /// (`max.connections.per.ip` and its overrides in `net`, dynamic configs).
    fn open(quotas: &Arc<ConnectionQuotas>, ip: IpAddr, net: &NetConfig) -> Option<QuotaGuard> {
        let max = net.max_connections_for(ip);
        let mut counts = quotas.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(QuotaGuard {
            quotas: Arc::clone(quotas),
            ip,
        })
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut counts = self.quotas.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The data directory's `meta.properties`: checked against this node, or written for a new
/// directory, its cluster id the configured one, else derived from the voters a new metadata
/// log starts with. A node that joins through bootstrap servers knows no voter to derive it
/// from: it needs `cluster.id`, as Kafka's `kafka-storage format -t`.
fn settle_meta_properties(config: &BrokerConfig) -> anyhow::Result<MetaProperties> {
    settle_all_meta_properties(config).map(|(props, _)| props)
}

/// [`settle_meta_properties`], with every log directory's id (KIP-858), in `log.dirs` order:
/// `None` for a directory after the first whose `meta.properties` cannot be read or written
/// (a failed disk: it stays offline).
fn settle_all_meta_properties(
    config: &BrokerConfig,
) -> anyhow::Result<(MetaProperties, Vec<Option<uuid::Uuid>>)> {
    check_metadata_log_dir(config)?;
    let c = &config.cluster;
    let voter_ids: Vec<i32> = c.starting_voters().iter().map(|v| v.id).collect();
    if c.bootstrap_mode()
        && voter_ids.is_empty()
        && c.cluster_id.is_none()
        && MetaProperties::load(&config.data_dir)?.is_none()
    {
        anyhow::bail!(
            "this node joins a metadata quorum through controller.quorum.bootstrap.servers: give \
             it the cluster's id with cluster.id (e.g. --set cluster.id=ID; `gregor cluster \
             describe` on a running node shows it), as Kafka's `kafka-storage format -t` takes \
             it; or --standalone / --initial-controllers to start a new cluster"
        );
    }
    let directory_id = c
        .initial_directory_ids
        .get(&config.node_id)
        .map(String::as_str);
    let props = MetaProperties::settle_with_directory(
        &config.data_dir,
        config.node_id,
        c.cluster_id.as_deref(),
        &voter_ids,
        directory_id,
    )?;
    let mut ids = settle_extra_log_dirs(config, &props)?;
    if config.metadata_dir_only {
        // The metadata log's own directory holds no partition: not a log directory.
        ids.remove(0);
    }
    Ok((props, ids))
}

/// The metadata log lives in `metadata.log.dir`, else in the first of `log.dirs`. Another
/// directory holding one means the list was reordered, `metadata.log.dir` set or changed (or
/// another node's directory is named): starting would begin a new metadata log without the
/// node's topics, and remove their logs as no longer hosted. Refused, naming it.
fn check_metadata_log_dir(config: &BrokerConfig) -> anyhow::Result<()> {
    let Some(other) = config
        .extra_log_dirs
        .iter()
        .find(|d| d.join(METADATA_DIR).is_dir())
    else {
        return check_metadata_dir_formatted(config);
    };
    let place = if config.metadata_log_dir.is_some() {
        "metadata.log.dir"
    } else {
        "the first of log.dirs"
    };
    if config.data_dir.join(METADATA_DIR).is_dir() {
        anyhow::bail!(
            "the log directory {} holds a metadata log of its own ({METADATA_DIR}), besides the \
             one in {}, {place}: it belongs to another node",
            other.display(),
            config.data_dir.display()
        );
    }
    if config.metadata_log_dir.is_some() {
        anyhow::bail!(
            "the metadata log ({METADATA_DIR}) is in {}, not in {}, the metadata.log.dir: set \
             metadata.log.dir={}, or leave it unset if that is the first of log.dirs",
            other.display(),
            config.data_dir.display(),
            other.display()
        );
    }
    anyhow::bail!(
        "the metadata log ({METADATA_DIR}) is in {}, not in {}, the first of log.dirs: list {} \
         first, or set metadata.log.dir={} (the first log directory holds the metadata log \
         unless metadata.log.dir names another)",
        other.display(),
        config.data_dir.display(),
        other.display(),
        other.display()
    )
}

/// A `metadata.log.dir` of its own that holds no `meta.properties` while a log directory has
/// one: the node ran with its metadata log somewhere else (or the directory is misspelt, or a
/// new disk). Kafka refuses a metadata log directory that is not formatted; gregor refuses it
/// when the node has run before, for the same reason: an empty metadata log would start a new
/// cluster's metadata without this node's topics.
fn check_metadata_dir_formatted(config: &BrokerConfig) -> anyhow::Result<()> {
    if !config.metadata_dir_only || MetaProperties::load(&config.data_dir)?.is_some() {
        return Ok(());
    }
    let Some((ran, props)) = config
        .extra_log_dirs
        .iter()
        .find_map(|d| Some((d, MetaProperties::load(d).ok()??)))
    else {
        return Ok(());
    };
    anyhow::bail!(
        "the metadata.log.dir {} holds no meta.properties, but the log directory {} has run as \
         node {} of cluster {}: set metadata.log.dir to the directory holding {METADATA_DIR}; \
         to begin an empty metadata log there (a replaced disk), copy {}'s meta.properties into \
         it without its directory.id line",
        config.data_dir.display(),
        ran.display(),
        props.node_id,
        props.cluster_id,
        ran.display()
    )
}

/// The other log directories' `meta.properties` (Kafka's JBOD): each belongs to this node and
/// cluster, with a directory id of its own (a new directory gets one); a directory of another
/// node or cluster, or two with one id (a copied directory), stop the start.
fn settle_extra_log_dirs(
    config: &BrokerConfig,
    main: &MetaProperties,
) -> anyhow::Result<Vec<Option<uuid::Uuid>>> {
    let mut ids: Vec<(String, std::path::PathBuf)> = Vec::new();
    let parsed = |id: &Option<String>| id.as_deref().and_then(gregor_protocol::kafka_uuid::parse);
    let mut dir_ids = vec![parsed(&main.directory_id)];
    if let Some(id) = &main.directory_id {
        ids.push((id.clone(), config.data_dir.clone()));
    }
    for dir in &config.extra_log_dirs {
        // A failed disk (the directory cannot be created, its meta.properties neither read
        // nor written) leaves the directory offline; the broker starts with the others.
        let settled = std::fs::create_dir_all(dir)
            .map_err(|source| crate::metadata::MetadataError::Io {
                path: dir.display().to_string(),
                source,
            })
            .and_then(|()| {
                MetaProperties::settle_with_directory(
                    dir,
                    config.node_id,
                    Some(&main.cluster_id),
                    &[],
                    None,
                )
            });
        let props = match settled {
            Ok(props) => props,
            Err(e @ crate::metadata::MetadataError::Io { .. }) => {
                warn!(dir = %dir.display(), error = %e, "the log directory cannot be read: it stays offline");
                dir_ids.push(None);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        dir_ids.push(parsed(&props.directory_id));
        if let Some(id) = props.directory_id {
            if let Some((_, other)) = ids.iter().find(|(known, _)| *known == id) {
                anyhow::bail!(
                    "the log directories {} and {} have the same directory.id {id} in their \
                     meta.properties (a copied directory?): give one of them a new id by removing \
                     its directory.id line",
                    other.display(),
                    dir.display()
                );
            }
            ids.push((id, dir.clone()));
        }
    }
    Ok(dir_ids)
}

/// The metadata quorum's settings: this node's directory inside the data dir, its controller
/// listener (an ephemeral port on the client listener's host for a lone node, whose quorum
/// nobody else dials), and the voters (this node alone by default). With them, the slot to
/// give the started quorum to, whose image SCRAM logins between the nodes are checked against.
fn quorum_config(
    config: &BrokerConfig,
    props: &MetaProperties,
    bound: SocketAddr,
    registry: Option<&crate::tls::ListenerTls>,
) -> anyhow::Result<(QuorumConfig, crate::controller_sasl::QuorumImageSlot)> {
    let cluster_id = props.cluster_id.as_str();
    let c = &config.cluster;
    let listen = c
        .controller_listen
        .unwrap_or_else(|| SocketAddr::new(bound.ip(), 0));
    let node = u64::try_from(config.node_id)
        .map_err(|_| anyhow::anyhow!("node.id {} must not be negative", config.node_id))?;
    let voters: std::collections::BTreeMap<u64, String> = if c.bootstrap_mode() {
        // The initial voters of a new cluster (none for a node that joins); the log's once
        // it has any.
        c.initial_voters
            .iter()
            .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
            .collect()
    } else if c.voters.is_empty() {
        [(node, listen.to_string())].into_iter().collect()
    } else {
        c.voters
            .iter()
            .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
            .collect()
    };
    let advertised = match (&c.controller_advertised, c.bootstrap_mode()) {
        (Some(a), true) => a.clone(),
        _ => listen.to_string(),
    };
    let mut q = QuorumConfig::new(
        node,
        cluster_id.to_string(),
        config.data_dir.join(METADATA_DIR),
        listen,
        advertised,
        voters,
    );
    if c.bootstrap_mode() {
        q.bootstrap_servers = c.bootstrap_servers.clone();
        q.initial_directory_ids = c
            .initial_directory_ids
            .iter()
            .map(|(id, d)| (*id as u64, d.clone()))
            .collect();
        // `--standalone`: this node alone starts the log, with its own directory's id. (With
        // `--initial-controllers` every initial voter must write the same first entry, so only
        // the ids the list gives are recorded.)
        if let (Some(own), [only]) = (&props.directory_id, c.initial_voters.as_slice()) {
            if only.id == config.node_id {
                q.initial_directory_ids
                    .entry(node)
                    .or_insert_with(|| own.clone());
            }
        }
    }
    q.heartbeat_ms = c.quorum_heartbeat_interval_ms;
    q.election_timeout_min_ms =
        crate::config::election_timeout_floor_ms(c.quorum_election_timeout_ms);
    q.election_timeout_max_ms = c.quorum_election_timeout_ms;
    q.snapshot_every = c.metadata_snapshot_interval_records;
    q.snapshot_max_bytes = c.metadata_snapshot_max_bytes;
    q.snapshot_max_interval = (c.metadata_snapshot_max_interval_ms > 0)
        .then(|| Duration::from_millis(c.metadata_snapshot_max_interval_ms));
    q.sockets = config.net.sockets;
    q.tls = controller_tls(config, registry)?;
    let scram_image = crate::controller_sasl::QuorumImageSlot::default();
    q.sasl = crate::controller_sasl::quorum_sasl(config, &scram_image)?;
    q.directory_id = props.directory_id.clone();
    Ok((q, scram_image))
}

/// The controller listener's SASL settings, for the Kafka clients it serves, when it is
/// SASL_* (checked at start by `BrokerConfig::validate`).
fn controller_sasl_settings(config: &BrokerConfig) -> Option<Arc<crate::sasl::SaslSettings>> {
    config.controller_sasl().ok().flatten().map(|(s, _)| s)
}

/// TLS on the controller listener when it is SSL: this node's keystore on both sides of every
/// quorum connection, peers checked against the truststore. The server asks every client for a
/// certificate (the quorum protocol refuses a connection without one); Kafka clients on the
/// port are held to `ssl.client.auth` (see `gregor_raft::QuorumTls`).
///
/// The stores are a `tls::ReloadableTls` registered in `registry` under the controller
/// listener's name, like a client listener's: its dynamic `listener.name.<controller>.ssl.*`
/// configs are checked by IncrementalAlterConfigs and reloaded after each image, and the quorum
/// takes the configs current at each handshake, both ways.
fn controller_tls(
    config: &BrokerConfig,
    registry: Option<&crate::tls::ListenerTls>,
) -> anyhow::Result<Option<Arc<gregor_raft::QuorumTls>>> {
    let Some(settings) = config.controller_tls()? else {
        return Ok(None);
    };
    let refused = |e: crate::tls::TlsError| anyhow::anyhow!("the controller listener: {e}");
    let name = config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    let stores =
        Arc::new(crate::tls::ReloadableTls::for_quorum(&name, settings.clone()).map_err(refused)?);
    // Its verifier and certificate follow the reloads by themselves.
    let client = stores.client_config().map_err(refused)?;
    let server = Arc::clone(&stores);
    let tls = gregor_raft::QuorumTls::reloadable(
        move || server.server_config(),
        move || Arc::clone(&client),
        settings.client_auth == crate::tls::ClientAuth::Required,
    );
    if let Some(registry) = registry {
        registry.add(&name, stores);
    }
    info!(
        ssl_client_auth = ?settings.client_auth,
        "the controller listener is SSL: quorum connections show and check certificates"
    );
    Ok(Some(Arc::new(tls)))
}

/// The controller listener's `ssl.principal.mapping.rules` (its own or the global ones), for
/// the Kafka clients it serves; the default (the subject as it is) when it is not SSL.
fn controller_principal_mapper(
    config: &BrokerConfig,
) -> Arc<crate::principal_mapping::SslPrincipalMapper> {
    match config.controller_tls() {
        Ok(Some(settings)) => settings.principal_mapper(),
        _ => Arc::default(),
    }
}

/// The metadata quorum's directory inside the data directory (not a partition: the log
/// manager never takes it for one, since it has no `-<partition>` suffix).
pub const METADATA_DIR: &str = "__cluster_metadata";

fn controller_config(config: &BrokerConfig) -> ControllerConfig {
    ControllerConfig {
        node_id: config.node_id,
        broker_session_timeout_ms: config.cluster.broker_session_timeout_ms,
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
        unclean_leader_election_enable: config.cluster.unclean_leader_election_enable,
        min_insync_replicas: config.min_insync_replicas,
        auto_leader_rebalance_enable: config.cluster.auto_leader_rebalance_enable,
        leader_imbalance_check_interval: Duration::from_secs(
            config.cluster.leader_imbalance_check_interval_secs,
        ),
        local_broker_id: config.cluster.roles.broker.then_some(config.node_id),
        // Two heartbeats: a live broker's controller calls give up on a leader that lost the
        // quorum as soon as another is elected, so its next heartbeat reaches the new
        // controller within one interval of the election.
        activation_grace_ms: config
            .cluster
            .broker_heartbeat_interval_ms
            .saturating_mul(2)
            .max(1_000)
            .min(config.cluster.broker_session_timeout_ms),
        transaction_version: Some(config.txn.transaction_version),
        share_version: Some(gregor_metadata::SHARE_VERSION_LATEST),
        group_version: Some(gregor_metadata::GROUP_VERSION_LATEST),
        streams_version: Some(gregor_metadata::STREAMS_VERSION_LATEST),
        metadata_version: Some(gregor_metadata::METADATA_VERSION_LATEST),
        eligible_leader_replicas_version: Some(
            gregor_metadata::ELIGIBLE_LEADER_REPLICAS_VERSION_LATEST,
        ),
        // `--add-scram`: written by the first active controller of a new metadata log.
        // A quorum found through bootstrap servers starts at kraft.version 1 (Kafka's format
        // with --standalone or --initial-controllers): its voters are the log's, changed with
        // AddRaftVoter and RemoveRaftVoter.
        bootstrap_records: config
            .scram_bootstrap
            .iter()
            .map(crate::scram_bootstrap::ScramBootstrap::record)
            .chain(config.cluster.bootstrap_mode().then(|| {
                gregor_metadata::MetadataRecord::FeatureLevel(gregor_metadata::FeatureLevelRecord {
                    name: gregor_metadata::KRAFT_VERSION_FEATURE.to_string(),
                    feature_level: 1,
                })
            }))
            .collect(),
        // The controller mints and checks tokens with the same secret as every broker.
        delegation_tokens: config.delegation_tokens.clone(),
    }
}

/// A data directory of an earlier single-node version: its topics go into the metadata log
/// once (this node leads its one-voter quorum), then the old file is renamed out of the way.
async fn import_legacy_metadata(
    config: &BrokerConfig,
    quorum: &MetadataQuorum,
) -> anyhow::Result<()> {
    let Some(legacy) = LegacyMetadata::load(&config.data_dir)? else {
        return Ok(());
    };
    if !config.cluster.is_single_node(config.node_id) {
        anyhow::bail!(
            "{} holds the topics of a single-node gregor; start this directory as a single node \
             (no controller.quorum.voters) once to import them, before it joins a cluster",
            config.data_dir.display()
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while quorum.leader() != Some(quorum.node_id()) {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the one-voter metadata quorum did not elect this node");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let has_topics = quorum.image().borrow().topics().topics().next().is_some();
    if !has_topics && !legacy.topics.is_empty() {
        let records = legacy.records(config.node_id);
        quorum
            .propose(records)
            .await
            .map_err(|e| anyhow::anyhow!("cannot import the old topic list: {e}"))?;
        info!(
            topics = legacy.topics.len(),
            "imported the topics of the previous version into the metadata log"
        );
    }
    LegacyMetadata::retire(&config.data_dir)?;
    Ok(())
}

/// How a broker's start ended.
enum Startup {
    /// Registered, caught up and unfenced.
    Running,
    /// A shutdown came first.
    ShutdownRequested,
    /// Another live process holds this node id; the controller's message.
    Refused(String),
}

/// The error a broker refused as a duplicate exits with.
fn duplicate_node_error(node_id: i32, reason: &str) -> anyhow::Error {
    error!(node = node_id, %reason, "refused by the controller: node id {node_id} is in use");
    anyhow::anyhow!(
        "node.id {node_id} is already registered by another live broker process \
         (DUPLICATE_BROKER_REGISTRATION: {reason}); each node needs its own node.id"
    )
}

/// Waits until the lifecycle manager reports the broker running (registered, caught up,
/// unfenced), a shutdown is asked for, or the controller refuses the broker for good. Says
/// every 10 s what it is waiting for.
async fn wait_until_running(
    lifecycle: &BrokerLifecycleManager,
    shutdown: &mut watch::Receiver<bool>,
) -> Startup {
    let mut state = lifecycle.state();
    let mut last_report = tokio::time::Instant::now();
    loop {
        let now = *state.borrow_and_update();
        if now == BrokerState::Running {
            return Startup::Running;
        }
        if now == BrokerState::Refused {
            return Startup::Refused(lifecycle.refusal().unwrap_or_default());
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            info!(state = ?now, "waiting to join the cluster (registered, caught up and unfenced)");
            last_report = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = shutdown.changed() => return Startup::ShutdownRequested,
            r = state.changed() => if r.is_err() { return Startup::ShutdownRequested },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Waits (up to 10 s) until this broker has applied an image that shows it unfenced: the
/// controller elects it back to the partitions it leads in the batch that unfences it, and a
/// client told "listening" right after a restart should find those leaders, not
/// LEADER_NOT_AVAILABLE. The heartbeat that reports the unfence can arrive before this node's
/// quorum member has applied that batch.
async fn wait_until_unfenced_image_applied(
    quorum: &MetadataQuorum,
    mut applied: watch::Receiver<i64>,
    node_id: i32,
) {
    let mut images = quorum.image();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (unfenced, offset) = {
            let image = images.borrow_and_update();
            (
                image.cluster().is_unfenced(node_id),
                image.provenance().offset,
            )
        };
        if unfenced && *applied.borrow_and_update() >= offset {
            return;
        }
        tokio::select! {
            r = images.changed() => if r.is_err() { return },
            r = applied.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => {
                warn!("the image that unfences this broker is not applied after 10 s; serving anyway");
                return;
            }
        }
    }
}

/// The replication factor `__consumer_offsets` is created with: `offsets.topic.replication.factor`
/// capped by the cluster's size as configured ([`crate::config::ClusterConfig::internal_topic_nodes`]).
fn offsets_replication_factor(config: &BrokerConfig) -> usize {
    config
        .cluster
        .internal_replication_factor(config.cluster.offsets_topic_replication_factor)
}

/// Creates `__consumer_offsets` through the controller once enough brokers are live for its
/// replication factor (until then group requests get COORDINATOR_NOT_AVAILABLE, as in Kafka),
/// and returns once it is applied here or `deadline` (if any) passed.
async fn ensure_offsets_topic(
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    channel: Arc<dyn ControllerChannel>,
    deadline: Option<Duration>,
) -> anyhow::Result<()> {
    let mut images = replicas.watch_image();
    let started = tokio::time::Instant::now();
    let want = offsets_replication_factor(&config);
    let mut last_report = started;
    loop {
        if replicas.topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let live = replicas.image().cluster().placeable_broker_ids().len();
        if live >= want {
            let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
                topics: vec![offsets_topic(&config, want)],
                validate_only: false,
            });
            match channel.call(request).await {
                Ok(ControllerResponse::CreateTopics(resp)) => {
                    if let Some(t) = resp.topics.first() {
                        let exists = t.error_code == 0
                            || t.error_code
                                == gregor_protocol::error::ErrorCode::TOPIC_ALREADY_EXISTS.code();
                        if !exists {
                            warn!(code = t.error_code, message = ?t.error_message, "cannot create {OFFSETS_TOPIC} yet");
                        }
                    }
                }
                other => warn!(answer = ?other, "cannot create {OFFSETS_TOPIC} yet"),
            }
        } else if last_report.elapsed() >= Duration::from_secs(10) {
            info!(
                live,
                want, "waiting for enough live brokers to create {OFFSETS_TOPIC}"
            );
            last_report = tokio::time::Instant::now();
        }
        if deadline.is_some_and(|d| started.elapsed() > d) {
            anyhow::bail!("{OFFSETS_TOPIC} could not be created in time");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), images.changed()).await;
    }
}

/// After every applied image, loads and unloads groups as this broker gains and loses the
/// leadership of `__consumer_offsets` partitions.
async fn follow_offsets_leadership(groups: Arc<GroupRuntime>, replicas: Arc<ReplicaManager>) {
    let mut images = replicas.watch_image();
    while images.changed().await.is_ok() {
        let (g, r) = (Arc::clone(&groups), Arc::clone(&replicas));
        match tokio::task::spawn_blocking(move || g.sync_leadership(&r)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "the group coordinator could not follow a leadership change")
            }
            Err(e) => error!(error = %e, "group leadership task failed"),
        }
    }
}

/// After every applied image, loads and unloads transactional ids as this broker gains and
/// loses the leadership of `__transaction_state` partitions.
async fn follow_transaction_state_leadership(
    txn: Arc<crate::txn_coordinator::TxnRuntime>,
    replicas: Arc<ReplicaManager>,
) {
    let mut images = replicas.watch_image();
    while images.changed().await.is_ok() {
        let t = Arc::clone(&txn);
        match tokio::task::spawn_blocking(move || t.sync_leadership()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "the transaction coordinator could not follow a leadership change")
            }
            Err(e) => error!(error = %e, "transaction leadership task failed"),
        }
    }
}

/// Stops the cluster tasks and the quorum.
async fn stop_cluster(quorum: Arc<MetadataQuorum>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.abort();
    }
    match Arc::try_unwrap(quorum) {
        Ok(q) => {
            if let Err(e) = q.shutdown().await {
                warn!(error = %e, "metadata quorum shutdown");
            }
        }
        // Someone still holds it (a connection task finishing); dropping it stops it.
        Err(q) => drop(q),
    }
}

/// A log flusher period past this (a year) is never: Kafka's default, Long.MAX_VALUE, which a
/// timer cannot be set to.
const FLUSH_SCHEDULER_NEVER_MS: u64 = 365 * 24 * 3600 * 1000;

fn spawn_periodic_tasks(
    broker: &Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let every = |ms: u64, b: Arc<Broker>, f: fn(&Broker)| {
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tick.tick() => {}
                }
                let b2 = Arc::clone(&b);
                // Retention and checkpoints touch the disk; keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || f(&b2)).await;
            }
        })
    };
    let c = &broker.config;
    tasks.push(every(
        c.retention_check_interval_ms,
        Arc::clone(broker),
        |b| b.replicas.apply_retention(),
    ));
    tasks.push(every(
        c.producer_id_expiration_check_interval_ms,
        Arc::clone(broker),
        |b| b.replicas.remove_expired_producers(),
    ));
    tasks.push(every(c.checkpoint_interval_ms, Arc::clone(broker), |b| {
        b.replicas.checkpoint()
    }));
    // Kafka's isr-expiration task: half the lag limit, so a lagging follower leaves the ISR
    // within 1.5 × replica.lag.time.max.ms. Its AlterPartition proposals go to the
    // AlterPartition sender (alter_partition.rs).
    tasks.push(every(
        (c.cluster.replica_lag_time_max_ms / 2).max(1) as u64,
        Arc::clone(broker),
        |b| b.replicas.tick_replication(),
    ));
    // Kafka's log flusher, for topics under an interval flush policy (any topic may come
    // under one at run time: `flush.messages` / `flush.ms`, the dynamic `log.flush.interval.*`).
    // A period past a year is Kafka's "never" (its default, Long.MAX_VALUE).
    if c.flush_scheduler_interval_ms <= FLUSH_SCHEDULER_NEVER_MS {
        tasks.push(every(
            c.flush_scheduler_interval_ms,
            Arc::clone(broker),
            |b| b.replicas.flush_by_policy(),
        ));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every log directory is settled as this node's, each with its own directory id; a
    /// copied directory (the same id twice), another node's directory and a reordered list
    /// (the metadata log not in the first) stop the start.
    #[test]
    fn extra_log_dirs_are_this_nodes_with_ids_of_their_own() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = |name: &str| root.path().join(name);
        let mut config = BrokerConfig {
            data_dir: dir("a"),
            extra_log_dirs: vec![dir("b"), dir("c")],
            ..BrokerConfig::default()
        };
        std::fs::create_dir_all(dir("a")).expect("mkdir");
        let main = settle_meta_properties(&config).expect("settle");
        let props: Vec<MetaProperties> = ["a", "b", "c"]
            .iter()
            .map(|d| {
                MetaProperties::load(&dir(d))
                    .expect("load")
                    .expect("written")
            })
            .collect();
        assert_eq!(props[0], main);
        let ids: std::collections::BTreeSet<_> =
            props.iter().map(|p| p.directory_id.clone()).collect();
        assert_eq!(ids.len(), 3, "{props:?}");
        assert!(props
            .iter()
            .all(|p| (p.node_id, &p.cluster_id) == (main.node_id, &main.cluster_id)));
        // Settled again: the same.
        assert_eq!(settle_meta_properties(&config).expect("again"), main);

        // A copy of c's directory added as d.
        std::fs::create_dir_all(dir("d")).expect("mkdir");
        std::fs::copy(
            dir("c").join("meta.properties"),
            dir("d").join("meta.properties"),
        )
        .expect("copy");
        config.extra_log_dirs.push(dir("d"));
        let e = settle_meta_properties(&config).expect_err("a copied directory");
        assert!(e.to_string().contains("have the same directory.id"), "{e}");
        config.extra_log_dirs.pop();

        // Another node's directory.
        MetaProperties {
            node_id: 7,
            ..props[1].clone()
        }
        .store(&dir("b"))
        .expect("store");
        let e = settle_meta_properties(&config).expect_err("node 7's directory");
        assert!(e.to_string().contains("belongs to node 7"), "{e}");
        props[1].store(&dir("b")).expect("store back");

        // The metadata log in c, not in a.
        std::fs::create_dir_all(dir("c").join(METADATA_DIR)).expect("mkdir");
        let e = settle_meta_properties(&config).expect_err("reordered");
        assert!(
            e.to_string()
                .contains(&format!("list {} first", dir("c").display())),
            "{e}"
        );
        std::fs::create_dir_all(dir("a").join(METADATA_DIR)).expect("mkdir");
        let e = settle_meta_properties(&config).expect_err("two metadata logs");
        assert!(e.to_string().contains("belongs to another node"), "{e}");
    }

    /// A `metadata.log.dir` of its own gets the node's `meta.properties` (its directory id the
    /// voter's) but is no log directory; each of `log.dirs` gets an id of its own. Set where
    /// the metadata log is not (it was in the first of `log.dirs`), the start is refused.
    #[test]
    fn a_metadata_log_dir_of_its_own_is_no_log_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = |name: &str| root.path().join(name);
        let mut config = BrokerConfig::default();
        let dirs = format!("{},{}", dir("a").display(), dir("b").display());
        config.set("log.dirs", &dirs).expect("log.dirs");
        config
            .set("metadata.log.dir", &dir("meta").display().to_string())
            .expect("metadata.log.dir");
        config.place_metadata_log();
        std::fs::create_dir_all(dir("meta")).expect("mkdir");
        let (main, ids) = settle_all_meta_properties(&config).expect("settle");
        let load = |d: &str| {
            MetaProperties::load(&dir(d))
                .expect("load")
                .expect("written")
        };
        assert_eq!(load("meta"), main);
        let parse = |p: MetaProperties| {
            p.directory_id
                .as_deref()
                .and_then(gregor_protocol::kafka_uuid::parse)
        };
        assert_eq!(ids, vec![parse(load("a")), parse(load("b"))]);
        assert!(ids.iter().all(Option::is_some));
        assert!(!ids.contains(&parse(main.clone())), "{ids:?}");

        // A misspelt metadata.log.dir of a node that has run.
        let mut misspelt = config.clone();
        misspelt.data_dir = dir("metadata");
        let e = settle_meta_properties(&misspelt).expect_err("not formatted");
        assert!(
            e.to_string().contains(&format!(
                "the metadata.log.dir {} holds no meta.properties, but the log directory {} has \
                 run as node 1",
                dir("metadata").display(),
                dir("a").display()
            )),
            "{e}"
        );
        assert!(!dir("metadata").join("meta.properties").exists());

        // A node whose metadata log is in the first of log.dirs, given a metadata.log.dir.
        std::fs::create_dir_all(dir("a").join(METADATA_DIR)).expect("mkdir");
        let e = settle_meta_properties(&config).expect_err("metadata log elsewhere");
        assert!(
            e.to_string().contains(&format!(
                "not in {}, the metadata.log.dir: set metadata.log.dir={}",
                dir("meta").display(),
                dir("a").display()
            )),
            "{e}"
        );
    }

    /// KIP-612: past a listener's own rate that listener waits; past the broker-wide rate every
    /// listener but the inter-broker one waits, and the inter-broker listener's connections do
    /// not count in it.
    #[test]
    fn connection_creation_rates_hold_back_the_listeners_past_them() {
        let window = crate::quota::QuotaWindow {
            samples: 2,
            window_ms: 1000,
        };
        // Listener 0 is the inter-broker one.
        let mut rates = CreationRates::new(window, vec![true, false, false]);
        let mut net = NetConfig::default();
        for _ in 0..50 {
            assert_eq!(rates.record(0, &net, "INTERNAL"), None, "no bound set");
        }
        net.max_connection_creation_rate = 5;
        for _ in 0..50 {
            assert_eq!(
                rates.record(0, &net, "INTERNAL"),
                None,
                "the inter-broker listener is outside the broker-wide rate"
            );
        }
        for i in 0..5 {
            assert_eq!(rates.record(1, &net, "external"), None, "connection {i}");
        }
        let wait = rates
            .record(2, &net, "OTHER")
            .expect("the sixth is past 5/s");
        // (6 - 5) / 5 of the one-second span.
        assert_eq!(wait, Duration::from_millis(200));
        assert!(
            rates.throttled_until[0].is_none(),
            "inter-broker listener open"
        );
        assert!(rates.throttled_until[1].is_some() && rates.throttled_until[2].is_some());
        // A listener's own rate holds the inter-broker listener too, and only it.
        let mut rates = CreationRates::new(window, vec![true, false]);
        let mut net = NetConfig::default();
        net.listener_connection_creation_rates
            .insert("INTERNAL".to_string(), 2);
        assert_eq!(rates.record(0, &net, "internal"), None);
        assert_eq!(rates.record(0, &net, "internal"), None);
        assert!(rates.record(0, &net, "internal").is_some(), "past 2/s");
        assert!(rates.throttled_until[0].is_some() && rates.throttled_until[1].is_none());
    }

    /// KIP-612's `ip` quotas: an address's own `connection_creation_rate` (in any spelling
    /// of the address), else the default entity's; a connection past it is held, not counted.
    #[test]
    fn an_address_past_its_connection_creation_rate_is_held() {
        use gregor_metadata::controller::alter_client_quota;
        use gregor_metadata::{ClientQuotaEntity, MetadataRecord, QuotaEntityName};
        let ip = |name: Option<&str>| ClientQuotaEntity {
            user: None,
            client_id: None,
            ip: Some(QuotaEntityName::from_option(name)),
        };
        let mut delta =
            gregor_metadata::MetadataDelta::new(Arc::new(gregor_metadata::MetadataImage::empty()));
        let records: Vec<MetadataRecord> = vec![
            alter_client_quota(
                &ip(Some("::ffff:10.0.0.1")),
                "connection_creation_rate",
                Some(2.0),
            )
            .expect("named"),
            alter_client_quota(&ip(None), "connection_creation_rate", Some(3.0)).expect("default"),
        ];
        for r in &records {
            delta.replay(r).expect("replay");
        }
        let image = delta.apply(gregor_metadata::MetadataProvenance {
            offset: 1,
            epoch: 1,
        });
        let quotas = image.client_quotas();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let none = HashMap::new();
        assert_eq!(IpRates::quota(quotas, &none, a), Some(2.0));
        assert_eq!(IpRates::quota(quotas, &none, b), Some(3.0));
        // An entity named by a host name holds the addresses it resolved to.
        let mut delta = gregor_metadata::MetadataDelta::new(Arc::new(image.clone()));
        let by_name = alter_client_quota(
            &ip(Some("gateway.example")),
            "connection_creation_rate",
            Some(7.0),
        )
        .expect("a host name");
        delta.replay(&by_name).expect("replay");
        let named = delta.apply(gregor_metadata::MetadataProvenance {
            offset: 2,
            epoch: 1,
        });
        let hosts = HashMap::from([("gateway.example".to_string(), vec![b])]);
        assert_eq!(IpRates::quota(named.client_quotas(), &hosts, b), Some(7.0));
        assert_eq!(
            IpRates::quota(named.client_quotas(), &none, b),
            Some(3.0),
            "unresolved, the default"
        );
        let mut rates = IpRates::new(crate::quota::QuotaWindow {
            samples: 2,
            window_ms: 1000,
        });
        assert_eq!(rates.record(quotas, a), None);
        assert_eq!(rates.record(quotas, a), None);
        // (3 - 2) / 2 of the one-second span; and it is not counted.
        assert_eq!(rates.record(quotas, a), Some(Duration::from_millis(500)));
        assert_eq!(rates.record(quotas, a), Some(Duration::from_millis(500)));
        for _ in 0..3 {
            assert_eq!(rates.record(quotas, b), None, "b has its own count");
        }
        assert!(rates.record(quotas, b).is_some());
        let none = gregor_metadata::MetadataImage::empty();
        assert_eq!(
            rates.record(none.client_quotas(), a),
            None,
            "no quota: no bound"
        );
        assert!(!rates.rates.contains_key(&a), "nor tracking");
    }

    /// KIP-858's `log.dir.failure.timeout.ms`: a failed directory not acknowledged in time is
    /// overdue; one acknowledged in time is not, nor is a later failure before its own time.
    #[tokio::test(start_paused = true)]
    async fn an_offline_dir_the_controller_never_learns_of_is_overdue() {
        let (ack_tx, ack_rx) = watch::channel(Vec::new());
        let mut dirs = UnacknowledgedDirs::new(Duration::from_secs(30), ack_rx);
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), dirs.overdue())
                .await
                .is_err(),
            "nothing failed"
        );
        dirs.failed(&[a]);
        let acked = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            ack_tx.send_replace(vec![a]);
            ack_tx
        });
        assert!(
            tokio::time::timeout(Duration::from_secs(60), dirs.overdue())
                .await
                .is_err(),
            "acknowledged after 10 s of 30"
        );
        let ack_tx = acked.await.expect("joined");
        dirs.failed(&[a, b]);
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(60), dirs.overdue())
            .await
            .expect("b is never acknowledged");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        drop(ack_tx);
    }

    #[test]
    fn per_ip_quotas_count_open_connections() {
        let mut net = NetConfig {
            max_connections_per_ip: 2,
            ..NetConfig::default()
        };
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        net.max_connections_per_ip_overrides.insert(b, 0);
        let q = Arc::new(ConnectionQuotas::default());
        let first = ConnectionQuotas::open(&q, a, &net).expect("1 of 2");
        let second = ConnectionQuotas::open(&q, a, &net).expect("2 of 2");
        assert!(ConnectionQuotas::open(&q, a, &net).is_none(), "3 of 2");
        assert!(ConnectionQuotas::open(&q, b, &net).is_none(), "override 0");
        drop(first);
        let third = ConnectionQuotas::open(&q, a, &net).expect("a slot was given back");
        drop((second, third));
        assert!(q.counts.lock().expect("lock").is_empty());
    }
}
