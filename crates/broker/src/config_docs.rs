//! One line of documentation for each config key DescribeConfigs lists, returned when a client
//! asks for it (`include_documentation`, v3+), as Kafka returns its own. UIs and
//! `kafka-configs --describe` show it next to the value. A test checks that every broker key
//! and every topic key has one.

/// The documentation of a broker or topic config key, if the key is known.
pub fn documentation(key: &str) -> Option<&'static str> {
    Some(match key {
        // ---- topic keys ----
        "cleanup.policy" => "What happens to old segments: delete (by retention time or size), compact (keep the latest record per key), or both (compact,delete).",
        "compression.type" => "The codec the leader stores batches in: producer keeps what the producer sent; uncompressed, gzip, snappy, lz4 or zstd re-encode batches in another codec.",
        // Topic and broker keys alike (the broker's is the topics' default).
        "compression.gzip.level" => "The gzip level (1 to 9, or -1 for zlib's default) the leader compresses with when compression.type is gzip and a batch comes in another codec.",
        "compression.lz4.level" => "The LZ4 level (1 to 17; 9, the default, is LZ4's fast compressor) the leader compresses with when compression.type is lz4 and a batch comes in another codec.",
        "compression.zstd.level" => "The zstd level (-131072 to 22) the leader compresses with when compression.type is zstd and a batch comes in another codec.",
        "delete.retention.ms" => "How long a tombstone (a null value) is kept in a compacted topic after its segment was cleaned, so consumers can see the delete.",
        "file.delete.delay.ms" => "How long a deleted segment's files wait before they are removed from disk.",
        "flush.messages" => "Records appended before the log is fsynced; the default (unset) fsyncs before acknowledging acks=all produces.",
        "flush.ms" => "Milliseconds between fsyncs of the log; the default (unset) fsyncs before acknowledging acks=all produces.",
        "index.interval.bytes" => "Bytes of log between two entries of the offset index.",
        "max.compaction.lag.ms" => "The longest a record may stay uncompacted in a compacted topic.",
        "max.message.bytes" => "The largest record batch the topic accepts, after compression.",
        "message.timestamp.after.max.ms" => "How far in the future a record's create time may be before the batch is refused.",
        "leader.replication.throttled.replicas" => "The replicas, as partition:broker (or * for all), whose leader sends to followers not in sync at most leader.replication.throttled.rate (KIP-73).",
        "follower.replication.throttled.replicas" => "The replicas, as partition:broker (or * for all), that fetch while not in sync at most follower.replication.throttled.rate (KIP-73).",
        "message.timestamp.before.max.ms" => "How far in the past a record's create time may be before the batch is refused.",
        "message.timestamp.type" => "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's time when it is appended.",
        "min.cleanable.dirty.ratio" => "The share of a compacted log not yet cleaned above which the cleaner picks the log.",
        "min.compaction.lag.ms" => "The least time a record stays uncompacted in a compacted topic.",
        "min.insync.replicas" => "The fewest in-sync replicas with which an acks=all produce is accepted (NOT_ENOUGH_REPLICAS below).",
        "retention.bytes" => "The most bytes a partition keeps before its oldest segments are deleted; -1: no limit.",
        "retention.ms" => "How long records are kept before their segment is deleted; -1: forever.",
        "segment.bytes" => "The size at which the active segment is rolled.",
        "segment.index.bytes" => "The size of each segment's offset and time index files.",
        "segment.jitter.ms" => "A random amount subtracted from segment.ms so that segments do not all roll at once.",
        "segment.ms" => "The age at which the active segment is rolled, even if not full.",
        "unclean.leader.election.enable" => "Whether a replica outside the ISR may become leader when no in-sync replica is left, at the cost of losing records.",
        // ---- broker keys ----
        "allow.everyone.if.no.acl.found" => "With an authorizer: a resource that no ACL names is open to every principal.",
        "authorizer.class.name" => "org.apache.kafka.metadata.authorizer.StandardAuthorizer checks every request against the ACLs of the metadata log; empty: no authorization.",
        "sasl.kerberos.kinit.cmd" | "sasl.kerberos.min.time.before.relogin" | "sasl.kerberos.principal.to.local.rules" | "sasl.kerberos.service.name" | "sasl.kerberos.ticket.renew.jitter" | "sasl.kerberos.ticket.renew.window.factor" => "Kafka's Kerberos (GSSAPI) setting: kept and described, no effect, since gregor serves no GSSAPI.",
        "super.users" => "Principals (User:<name>, separated by ;) the authorizer allows everything, whatever the ACLs say.",
        "auto.create.topics.enable" => "Create a topic when a client asks for its metadata or produces to it and it does not exist.",
        "auto.leader.rebalance.enable" => "Move leadership back to each partition's preferred replica periodically.",
        "broker.heartbeat.interval.ms" => "Milliseconds between a broker's heartbeats to the controller.",
        "broker.session.timeout.ms" => "A broker that has not sent a heartbeat for this long is fenced by the controller.",
        "cluster.id" => "The id of the cluster this node belongs to, from its data directory's meta.properties.",
        "connections.max.idle.ms" => "Idle client connections are closed after this long.",
        "connections.max.reauth.ms" => "With a positive value, a SASL session lasts at most this long (told to clients in SaslAuthenticate v1+); a client must re-authenticate on its connection before then, or the connection is closed at its next request (KIP-368). 0: sessions without end. Per listener and mechanism as listener.name.<listener>.<mechanism>.connections.max.reauth.ms.",
        "controlled.shutdown.enable" => "On shutdown, ask the controller to move leadership away first.",
        "controller.listener.names" => "The listener the controller serves the metadata quorum and brokers on.",
        "controller.quorum.election.timeout.ms" => "A voter that hears nothing from the quorum's leader for this long starts an election.",
        "controller.quorum.heartbeat.interval.ms" => "Milliseconds between the quorum leader's heartbeats to the voters.",
        "controller.quorum.voters" => "The metadata quorum's voters as id@host:port.",
        "cordoned.log.dirs" => "Log directories that take no new partition (entries of log.dirs, or * for all); their partitions stay and keep serving.",
        "controller.quorum.auto.join.enable" => {
            "Whether a controller that is not a voter of the metadata quorum makes itself one \
             (KIP-853, at kraft.version 1)."
        }
        "controller.quorum.bootstrap.servers" => {
            "Controller listeners (host:port) through which a node finds a quorum whose voters are \
             its metadata log's (KIP-853); used without controller.quorum.voters."
        }
        "default.replication.factor" => "The replication factor of automatically created topics.",
        "delegation.token.expiry.check.interval.ms" => "How often the active controller removes expired delegation tokens.",
        "delegation.token.expiry.time.ms" => "How long a delegation token lasts after its creation or renewal unless renewed again.",
        "delegation.token.max.lifetime.ms" => "The longest a delegation token can live, renewals included; a creation may ask for less.",
        "delete.topic.enable" => "Whether DeleteTopics may delete topics.",
        "broker.rack" => "The rack of this broker, in its registration: clients see it in Metadata, and the rack-aware replica selector sends a consumer in this rack to this broker.",
        "replica.selector.class" => "How a partition's leader picks the replica a consumer with a client.rack reads from (KIP-392): org.apache.kafka.common.replica.RackAwareReplicaSelector or LeaderSelector; unset, consumers read from leaders.",
        "fetch.max.bytes" => "The most record bytes one Fetch response carries.",
        "group.consumer.heartbeat.interval.ms" => "How often members of consumer groups (KIP-848) send their heartbeat.",
        "group.consumer.max.size" => "The most members a consumer group (KIP-848) may have.",
        "group.consumer.migration.policy" => "Which online migrations between the classic and the consumer group protocol are allowed: disabled, downgrade, upgrade or bidirectional.",
        "group.consumer.session.timeout.ms" => "A consumer group member (KIP-848) without a heartbeat for this long is removed.",
        "group.coordinator.rebalance.protocols" => "The group protocols this broker serves: classic (always), consumer (KIP-848; without it the consumer group APIs answer UNSUPPORTED_VERSION), share (accepted; share groups follow the share.version feature) and streams (KIP-1071; without it the streams group APIs answer UNSUPPORTED_VERSION).",
        "group.streams.session.timeout.ms" => "A streams group member (KIP-1071) without a heartbeat for this long is removed.",
        "group.streams.heartbeat.interval.ms" => "How often members of streams groups (KIP-1071) send their heartbeat.",
        "group.streams.max.size" => "The most members a streams group (KIP-1071) may have.",
        "group.streams.num.standby.replicas" => "How many standby replicas of each stateful task a streams group's assignor places.",
        "group.streams.initial.rebalance.delay.ms" => "How long a new streams group waits for more members before its first task assignment.",
        "group.streams.assignment.interval.ms" => "The shortest time between two task assignments of a streams group; a change meanwhile waits for the next heartbeat after it.",
        "group.initial.rebalance.delay.ms" => "How long a new classic group waits for more members before its first rebalance.",
        "group.max.session.timeout.ms" => "The longest session timeout a classic group member may ask for.",
        "group.max.size" => "The most members a classic group may have.",
        "group.min.session.timeout.ms" => "The shortest session timeout a classic group member may ask for.",
        "group.consumer.min.session.timeout.ms" => "The shortest consumer.session.timeout.ms a consumer group (KIP-848) may be given as a group config.",
        "group.consumer.max.session.timeout.ms" => "The longest consumer.session.timeout.ms a consumer group (KIP-848) may be given as a group config.",
        "group.consumer.min.heartbeat.interval.ms" => "The shortest consumer.heartbeat.interval.ms a consumer group (KIP-848) may be given as a group config.",
        "group.consumer.max.heartbeat.interval.ms" => "The longest consumer.heartbeat.interval.ms a consumer group (KIP-848) may be given as a group config.",
        "group.share.session.timeout.ms" => "A share group member (KIP-932) without a heartbeat for this long is removed.",
        "group.share.min.session.timeout.ms" => "The shortest share.session.timeout.ms a share group may be given as a group config.",
        "group.share.max.session.timeout.ms" => "The longest share.session.timeout.ms a share group may be given as a group config.",
        "group.share.heartbeat.interval.ms" => "How often members of share groups (KIP-932) send their heartbeat.",
        "group.share.min.heartbeat.interval.ms" => "The shortest share.heartbeat.interval.ms a share group may be given as a group config.",
        "group.share.max.heartbeat.interval.ms" => "The longest share.heartbeat.interval.ms a share group may be given as a group config.",
        "group.share.record.lock.duration.ms" => "How long a record delivered to a share consumer stays acquired before it is available again.",
        "group.share.min.record.lock.duration.ms" => "The shortest share.record.lock.duration.ms a share group may be given as a group config.",
        "group.share.max.record.lock.duration.ms" => "The longest share.record.lock.duration.ms a share group may be given as a group config.",
        "group.share.delivery.count.limit" => "How often a record is delivered to a share group before it is archived.",
        "group.share.min.delivery.count.limit" => "The smallest share.delivery.count.limit a share group may be given as a group config.",
        "group.share.max.delivery.count.limit" => "The largest share.delivery.count.limit a share group may be given as a group config.",
        "group.share.partition.max.record.locks" => "The most records in flight (acquired) per share-partition.",
        "group.share.min.partition.max.record.locks" => "The smallest share.partition.max.record.locks a share group may be given as a group config.",
        "group.share.max.partition.max.record.locks" => "The largest share.partition.max.record.locks a share group may be given as a group config.",
        "group.share.max.size" => "The most members a share group may have.",
        "group.share.max.share.sessions" => "The most share sessions (ShareFetch sessions) a broker keeps.",
        "leader.imbalance.check.interval.seconds" => "Seconds between checks for partitions led by other than their preferred replica.",
        "listener.security.protocol.map" => "The security protocol of each listener name.",
        "listeners" => "The addresses the node listens on, as NAME://host:port.",
        "log.cleaner.backoff.ms" => "How long an idle cleaner thread sleeps before it looks for a log to clean again.",
        "log.cleaner.dedupe.buffer.size" => "Memory for the cleaners' offset maps (key to latest offset), shared by the cleaner threads.",
        "log.cleaner.delete.retention.ms" => "The default delete.retention.ms of topics.",
        "log.cleaner.enable" => "Run the log cleaner, which compacts topics with cleanup.policy=compact.",
        "log.cleaner.io.max.bytes.per.second" => "The most bytes per second the cleaners read and write together.",
        "log.cleaner.max.compaction.lag.ms" => "The default max.compaction.lag.ms of topics.",
        "log.cleaner.min.cleanable.ratio" => "The default min.cleanable.dirty.ratio of topics.",
        "log.cleaner.min.compaction.lag.ms" => "The default min.compaction.lag.ms of topics.",
        "log.cleaner.threads" => "The number of cleaner threads.",
        "log.cleanup.policy" => "The default cleanup.policy of topics.",
        "log.dirs" => "The directories holding this node's logs, comma-separated; a new partition goes to the one holding the fewest. The first also holds the metadata log, unless metadata.log.dir names another.",
        "metadata.log.dir" => "The directory of the metadata log (and of the node's meta.properties): one of log.dirs, which then holds partitions too, or one of its own that holds none. Unset: the first of log.dirs.",
        "log.flush.interval.messages" => "Records appended before the log is fsynced; unset, acks=all produces are fsynced before they are acknowledged.",
        "log.flush.interval.ms" => "Milliseconds between fsyncs of the logs; unset, acks=all produces are fsynced before they are acknowledged.",
        "log.dir.failure.timeout.ms" => "How long a broker may go without telling the controller of a failed log directory (its heartbeats unanswered) before it shuts down, so that the directory's partitions are led elsewhere (KIP-858).",
        "log.flush.offset.checkpoint.interval.ms" => "Milliseconds between writes of the recovery-point checkpoint.",
        "log.index.interval.bytes" => "The default index.interval.bytes of topics.",
        "log.index.size.max.bytes" => "The default segment.index.bytes of topics.",
        "log.message.timestamp.type" => "The default message.timestamp.type of topics.",
        "log.message.timestamp.after.max.ms" => "The default message.timestamp.after.max.ms of topics: how far in the future a record's create time may be before its batch is refused with INVALID_TIMESTAMP (KIP-937).",
        "log.message.timestamp.before.max.ms" => "The default message.timestamp.before.max.ms of topics: how far in the past a record's create time may be before its batch is refused with INVALID_TIMESTAMP (KIP-937).",
        "log.retention.bytes" => "The default retention.bytes of topics.",
        "log.retention.check.interval.ms" => "Milliseconds between retention checks.",
        "log.retention.hours" => "The default retention of topics in hours (log.retention.ms wins when set).",
        "log.retention.minutes" => "The default retention of topics in minutes (log.retention.ms wins when set).",
        "log.retention.ms" => "The default retention.ms of topics.",
        "log.roll.hours" => "The default segment.ms of topics, in hours.",
        "log.roll.jitter.ms" => "The default segment.jitter.ms of topics: at most this much, at random, is taken off segment.ms for each segment, so that logs created together do not roll together.",
        "log.roll.jitter.hours" => "The default segment.jitter.ms of topics, in hours.",
        "log.roll.ms" => "The default segment.ms of topics.",
        "log.segment.bytes" => "The default segment.bytes of topics.",
        "connection.failed.authentication.delay.ms" => "How long the answer to a failed authentication, and the close after it, wait (KIP-306), which slows a client guessing passwords; below connections.max.idle.ms.",
        "max.connection.creation.rate" => "The most new connections a second the broker accepts on its listeners but the inter-broker one, measured over the quota window; past it the broker waits before it accepts the next (KIP-612).",
        "max.connections" => "The most client connections the broker accepts at once; past it the broker waits for one to close before it accepts the next.",
        "max.connections.per.ip" => "The most connections the broker accepts from one address.",
        "max.connections.per.ip.overrides" => "Per-address exceptions to max.connections.per.ip, as host:count pairs.",
        "max.incremental.fetch.session.cache.slots" => "The most incremental fetch sessions (KIP-227) the broker keeps; 0 keeps none.",
        "message.max.bytes" => "The default max.message.bytes of topics: the largest record batch accepted.",
        "metadata.log.max.snapshot.interval.records" => "Metadata log entries between two snapshots of the metadata.",
        "node.id" => "This node's id in the cluster.",
        "num.partitions" => "The partition count of automatically created topics.",
        "offset.metadata.max.bytes" => "The longest metadata string an offset commit may carry.",
        "offsets.retention.check.interval.ms" => "Milliseconds between checks for expired committed offsets.",
        "offsets.retention.minutes" => "Committed offsets of a group without members expire after this long.",
        "offsets.topic.num.partitions" => "The partition count of __consumer_offsets.",
        "offsets.topic.replication.factor" => "The replication factor of __consumer_offsets.",
        "http.listener" => "Where /metrics (Prometheus text, Kafka's metric names) is served over HTTP, host:port; empty: not served.",
        "peer.address.overrides" => "Addresses to reach other nodes at instead of those they advertise (id=host:port).",
        "process.roles" => "What this node runs: broker, controller, or both.",
        "producer.id.expiration.check.interval.ms" => "Milliseconds between checks for idle producer ids.",
        "producer.id.expiration.ms" => "A producer id idle for this long is forgotten by the partitions.",
        "quota.window.num" => "The number of samples a client quota's byte rate is measured over.",
        "replication.quota.window.num" => "The number of samples a replication quota's byte rate is measured over.",
        "replication.quota.window.size.seconds" => "The length of each sample of a replication quota's byte rate.",
        "leader.replication.throttled.rate" => "The most bytes per second this broker sends to the followers, not in sync, of the replicas its topics' leader.replication.throttled.replicas name on it (KIP-73; kafka-reassign-partitions --throttle sets it).",
        "follower.replication.throttled.rate" => "The most bytes per second this broker fetches for its replicas, not in sync, that their topics' follower.replication.throttled.replicas name (KIP-73; kafka-reassign-partitions --throttle sets it).",
        "quota.window.size.seconds" => "The length of each sample of a client quota's byte rate.",
        "add.partitions.to.txn.retry.backoff.ms" => "The pause before a partition leader asks the transaction coordinator again to add a produce's partition that got CONCURRENT_TRANSACTIONS (transactions version 2).",
        "add.partitions.to.txn.retry.backoff.max.ms" => "How long a partition leader retries adding a produce's partition to its transaction before the produce fails retriably.",
        "queued.max.request.bytes" => "Memory for requests being read beyond each connection's own buffer; -1: unbounded.",
        "replica.alter.log.dirs.io.max.bytes.per.second" => "The most bytes per second the moves of partitions between this broker's log directories copy, together.",
        "replica.fetch.backoff.ms" => "How long a follower waits after a failed fetch from its leader.",
        "replica.fetch.max.bytes" => "The most bytes a follower asks for per partition in one fetch.",
        "replica.fetch.response.max.bytes" => "The most bytes a follower asks for in one fetch.",
        "replica.fetch.wait.max.ms" => "The longest a follower's fetch waits at the leader for new records.",
        "replica.lag.time.max.ms" => "A follower that has not caught up for this long leaves the ISR.",
        "socket.request.max.bytes" => "The largest request the broker reads.",
        "socket.request.timeout.ms" => "How long a request to another node may take before it fails.",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms" => "Milliseconds between the transaction coordinator's checks for transactions past their timeout, which it aborts.",
        "transaction.remove.expired.transaction.cleanup.interval.ms" => "Milliseconds between the transaction coordinator's checks for expired transactional ids.",
        "transaction.partition.verification.enable" => "Have partition leaders ask the transaction coordinator whether a transactional produce's partition is in the producer's transaction before the first append (KIP-890).",
        "transaction.version" => "The transaction.version feature level a new cluster finalizes (0-2; 2, the default, lets clients use transactions version 2, KIP-890). Written to the metadata log once; later changes are ignored.",
        "transaction.max.timeout.ms" => "The longest transaction timeout a producer may ask for.",
        "share.coordinator.state.topic.min.isr" => "The min.insync.replicas of __share_group_state (at most its replication factor).",
        "share.coordinator.state.topic.num.partitions" => "The partition count of __share_group_state, where share coordinators keep share-partitions' state (KIP-932).",
        "share.coordinator.state.topic.replication.factor" => "The replication factor of __share_group_state (at most the cluster's size).",
        "share.coordinator.state.topic.segment.bytes" => "The segment.bytes of __share_group_state.",
        "share.coordinator.write.timeout.ms" => "How long a share coordinator waits for the in-sync replicas of __share_group_state to take a write.",
        "transaction.state.log.min.isr" => "The min.insync.replicas of __transaction_state.",
        "transaction.state.log.num.partitions" => "The partition count of __transaction_state.",
        "transaction.state.log.replication.factor" => "The replication factor of __transaction_state.",
        "transaction.state.log.segment.bytes" => "The segment.bytes of __transaction_state.",
        "transactional.id.expiration.ms" => "A transactional id without a transaction for this long is forgotten.",
        // ---- group keys (GROUP resources) ----
        k => return crate::group_configs::group_key_named(k).map(|g| g.documentation),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker_configs::BROKER_KEYS;
    use crate::topic_config::TOPIC_CONFIG_KEYS;

    /// Every key DescribeConfigs can list has its documentation.
    #[test]
    fn every_broker_and_topic_key_is_documented() {
        let missing: Vec<&str> = BROKER_KEYS
            .iter()
            .map(|k| k.name)
            .chain(TOPIC_CONFIG_KEYS.iter().copied())
            .filter(|k| documentation(k).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "keys without documentation: {missing:?}"
        );
    }
}
