//! Broker configuration: Kafka's `server.properties` keys, their defaults, and parsing.
//!
//! Sources, later ones winning: built-in defaults (Kafka's), a properties file (`--config`),
//! `--set key=value` pairs, then the CLI's `--data-dir`/`--listen`. Unknown keys are accepted
//! with a warning (as Kafka does); a known key with a bad value is an error naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use gregor_storage::LogConfig;

/// A configuration problem, reported before the broker starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for config {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A `--set` argument without `=`.
    #[error("expected key=value, got {0:?}")]
    NotKeyValue(String),
    /// The properties file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// How produce requests relate to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// gregor's default: an acks=all produce is answered only after its records are fsynced
    /// (group commit); acks=0/1 are answered once written to the page cache.
    OnAcksAll,
    /// Kafka's behaviour, chosen by setting `log.flush.interval.messages` or
    /// `log.flush.interval.ms`: no fsync on the produce path, the log is flushed every
    /// `messages` appended records or every `interval_ms`.
    Interval {
        /// Flush after this many records (`i64::MAX` = never by count).
        messages: i64,
        /// Flush when the oldest unflushed data is this old (`i64::MAX` = never by time).
        interval_ms: i64,
    },
}

/// Everything the broker reads from configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`).
    pub node_id: i32,
    /// `listeners` (first PLAINTEXT listener) or `--listen`.
    pub listen: SocketAddr,
    /// `advertised.listeners`: host and port given to clients in Metadata; defaults to the
    /// bound address.
    pub advertised: Option<(String, u16)>,
    /// `log.dirs` / `log.dir` (first entry) or `--data-dir`.
    pub data_dir: PathBuf,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `message.max.bytes`: largest record batch accepted (per topic: `max.message.bytes`).
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: largest request frame.
    pub socket_request_max_bytes: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often the recovery points (what the
    /// flushes made durable) are written to their checkpoint file, when they moved. Kafka's
    /// default is 60 s; gregor's is 1 s, because recovery treats a bad batch below the
    /// checkpointed recovery point as corruption to keep, not a torn write to cut: the closer
    /// the checkpoint follows the flushes, the less acknowledged data is left to the torn-write
    /// rule after a crash.
    pub checkpoint_interval_ms: u64,
    /// `log.message.timestamp.type` is `LogAppendTime`.
    pub log_append_time: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `log.cleanup.policy`.
    pub cleanup_policy: String,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `fetch.max.bytes`: most record bytes one Fetch response carries, whatever the request's
    /// `max_bytes` (the first batch of the first partition with data is sent even if larger).
    pub fetch_max_bytes: usize,
    /// Fsync behaviour (see [`FlushPolicy`]).
    pub flush: FlushPolicy,
    /// Default per-log settings (`log.segment.bytes`, `log.roll.ms`, `log.retention.*`, ...).
    pub log: LogConfig,
    /// `max.connections`: connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Group coordinator settings (`group.*`, `offsets.*`, `offset.metadata.max.bytes`).
    pub group: gregor_group::GroupConfig,
    /// Keys given that gregor does not use (reported once at start).
    pub ignored: Vec<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            data_dir: PathBuf::from("gregor-data"),
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            retention_check_interval_ms: 300_000,
            checkpoint_interval_ms: 1_000,
            log_append_time: false,
            delete_topic_enable: true,
            cleanup_policy: "delete".into(),
            min_insync_replicas: 1,
            fetch_max_bytes: 57_671_680,
            flush: FlushPolicy::OnAcksAll,
            log: LogConfig::default(),
            max_connections: 10_000,
            group: gregor_group::GroupConfig::default(),
            ignored: Vec::new(),
        }
    }
}

/// Parses Java-properties text: `key=value` or `key: value` or `key value`, `#`/`!` comments,
/// backslash line continuations.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        // Java's rule: the key ends at the first '=', ':' or whitespace; then optional
        // whitespace, one optional '=' or ':', optional whitespace, and the value.
        match entry.find(|c: char| c == '=' || c == ':' || c.is_whitespace()) {
            Some(i) => {
                let key = entry[..i].to_string();
                let mut rest = entry[i..].trim_start();
                if let Some(r) = rest.strip_prefix(['=', ':']) {
                    rest = r.trim_start();
                }
                out.push((key, rest.trim_end().to_string()));
            }
            None => out.push((entry.trim().to_string(), String::new())),
        }
    }
    out
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| invalid(key, value, "expected a number"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    // Accepts `PLAINTEXT://host:port[,...]` or a bare `host:port`; the first entry wins.
    let first = value.split(',').next().unwrap_or("").trim();
    let hostport = match first.split_once("://") {
        Some((_, rest)) => rest,
        None => first,
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected [PLAINTEXT://]host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "bad port number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Resolves `host:port` (host may be a name such as `localhost`) to a socket address.
pub fn resolve_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let (host, port) = parse_listener(key, value)?;
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| invalid(key, value, e.to_string()))?
        .next()
        .ok_or_else(|| invalid(key, value, "host does not resolve"))
}

impl BrokerConfig {
    /// Applies one key. Returns `Ok(false)` for keys gregor does not know.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let ms_from = |unit: i64, key: &str, v: &str| -> Result<i64, ConfigError> {
            let n: i64 = parse_num(key, v)?;
            Ok(if n < 0 { -1 } else { n.saturating_mul(unit) })
        };
        match key {
            "node.id" | "broker.id" => self.node_id = parse_num(key, value)?,
            "listeners" => self.listen = resolve_listen(key, value)?,
            "advertised.listeners" | "advertised.listener" => {
                self.advertised = Some(parse_listener(key, value)?)
            }
            "log.dirs" | "log.dir" => {
                let first = value.split(',').next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err(invalid(key, value, "empty directory"));
                }
                self.data_dir = PathBuf::from(first);
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.num_partitions = n;
            }
            "default.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.default_replication_factor = n;
            }
            "message.max.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "must not be negative"));
                }
                self.message_max_bytes = n as usize;
            }
            "socket.request.max.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.socket_request_max_bytes = n as usize;
            }
            "log.segment.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 14 {
                    return Err(invalid(key, value, "must be at least 14"));
                }
                self.log.segment_bytes = n as u64;
            }
            "log.roll.ms" => self.log.segment_ms = positive_ms(key, value)?,
            "log.roll.hours" => self.log.segment_ms = ms_from(3_600_000, key, value)?.max(1),
            "log.retention.ms" => self.log.retention_ms = ms_from(1, key, value)?,
            "log.retention.minutes" => self.log.retention_ms = ms_from(60_000, key, value)?,
            "log.retention.hours" => self.log.retention_ms = ms_from(3_600_000, key, value)?,
            "log.retention.bytes" => self.log.retention_bytes = parse_num(key, value)?,
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = positive_ms(key, value)? as u64
            }
            "log.flush.offset.checkpoint.interval.ms" => {
                self.checkpoint_interval_ms = positive_ms(key, value)? as u64
            }
            "log.index.interval.bytes" => self.log.index_interval_bytes = parse_num(key, value)?,
            "log.index.size.max.bytes" => {
                let n: u32 = parse_num(key, value)?;
                if n < 4096 {
                    return Err(invalid(key, value, "must be at least 4096"));
                }
                self.log.segment_index_bytes = n;
            }
            "log.message.timestamp.type" => {
                self.log_append_time = match value.trim() {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => return Err(invalid(key, value, "expected CreateTime or LogAppendTime")),
                }
            }
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(key, value)?,
            "log.cleanup.policy" => {
                crate::topic_config::validate_cleanup_policy(value)
                    .map_err(|r| invalid(key, value, r))?;
                self.cleanup_policy = value.trim().to_string();
            }
            "min.insync.replicas" => self.min_insync_replicas = parse_num(key, value)?,
            "fetch.max.bytes" => {
                // Kafka's type and bounds: an int, at least 1024.
                let n: i32 = parse_num(key, value)?;
                if n < 1024 {
                    return Err(invalid(key, value, "must be at least 1024"));
                }
                self.fetch_max_bytes = n as usize;
            }
            "max.connections" => self.max_connections = parse_num(key, value)?,
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = parse_num(key, value)?
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms = parse_num(key, value)?
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = parse_num(key, value)?
            }
            "group.max.size" => self.group.max_size = parse_num(key, value)?,
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_max_bytes = parse_num(key, value)?
            }
            "offsets.retention.minutes" => {
                let m: i64 = parse_num(key, value)?;
                if m < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.group.offsets_retention_ms = m.saturating_mul(60_000);
            }
            "offsets.retention.check.interval.ms" => {
                self.group.offsets_retention_check_interval_ms = positive_ms(key, value)?
            }
            "offsets.topic.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.group.offsets_topic_num_partitions = n;
            }
            "log.flush.interval.messages" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                let interval_ms = match self.flush {
                    FlushPolicy::Interval { interval_ms, .. } => interval_ms,
                    FlushPolicy::OnAcksAll => i64::MAX,
                };
                self.flush = FlushPolicy::Interval {
                    messages: n,
                    interval_ms,
                };
            }
            "log.flush.interval.ms" => {
                let n = positive_ms(key, value)?;
                let messages = match self.flush {
                    FlushPolicy::Interval { messages, .. } => messages,
                    FlushPolicy::OnAcksAll => i64::MAX,
                };
                self.flush = FlushPolicy::Interval {
                    messages,
                    interval_ms: n,
                };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Applies a list of pairs, remembering unknown keys in `ignored`.
    pub fn apply<I, K, V>(&mut self, pairs: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (k, v) in pairs {
            if !self.set(k.as_ref(), v.as_ref())? {
                self.ignored.push(k.as_ref().to_string());
            }
        }
        Ok(())
    }

    /// Loads a properties file on top of the current values.
    pub fn load_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.apply(parse_properties(&text))
    }

    /// Applies `key=value` strings (the CLI's `--set`).
    pub fn apply_overrides(&mut self, sets: &[String]) -> Result<(), ConfigError> {
        let mut pairs = BTreeMap::new();
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(s.clone()))?;
            pairs.insert(k.trim().to_string(), v.trim().to_string());
        }
        // Apply in the order given, not sorted: later --set wins over an earlier one.
        for s in sets {
            if let Some((k, _)) = s.split_once('=') {
                if let Some(v) = pairs.remove(k.trim()) {
                    if !self.set(k.trim(), &v)? {
                        self.ignored.push(k.trim().to_string());
                    }
                }
            }
        }
        Ok(())
    }
}

fn positive_ms(key: &str, value: &str) -> Result<i64, ConfigError> {
    let n: i64 = parse_num(key, value)?;
    if n < 1 {
        return Err(invalid(key, value, "must be at least 1"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_like_java() {
        let p = parse_properties(
            "# comment\n! also\nnum.partitions=3\nlog.dirs : /tmp/x\nlisteners PLAINTEXT://127.0.0.1:9093\nlong=a\\\n  b\n",
        );
        assert_eq!(
            p,
            vec![
                ("num.partitions".into(), "3".into()),
                ("log.dirs".into(), "/tmp/x".into()),
                ("listeners".into(), "PLAINTEXT://127.0.0.1:9093".into()),
                ("long".into(), "ab".into()),
            ]
        );
    }

    #[test]
    fn known_keys_apply_and_bad_values_fail() {
        let mut c = BrokerConfig::default();
        c.apply([
            ("num.partitions", "3"),
            ("log.retention.hours", "1"),
            ("listeners", "PLAINTEXT://127.0.0.1:9999"),
            ("zookeeper.connect", "x"),
        ])
        .expect("valid");
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log.retention_ms, 3_600_000);
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.ignored, vec!["zookeeper.connect".to_string()]);
        assert!(c.set("num.partitions", "zero").is_err());
        assert!(c.set("num.partitions", "0").is_err());
        assert!(c.set("auto.create.topics.enable", "yes").is_err());
        assert_eq!(BrokerConfig::default().fetch_max_bytes, 55 << 20);
        c.set("fetch.max.bytes", "1024").expect("valid");
        assert_eq!(c.fetch_max_bytes, 1024);
        assert!(c.set("fetch.max.bytes", "1023").is_err());
        assert!(c.set("fetch.max.bytes", "2147483648").is_err());
        assert!(c.apply_overrides(&["novalue".into()]).is_err());
    }

    #[test]
    fn kafka_flush_keys_switch_policy() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.flush, FlushPolicy::OnAcksAll);
        c.set("log.flush.interval.ms", "1000").expect("valid");
        assert_eq!(
            c.flush,
            FlushPolicy::Interval {
                messages: i64::MAX,
                interval_ms: 1000
            }
        );
    }
}
