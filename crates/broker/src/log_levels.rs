//! This broker's log levels, readable and changeable while it runs: Kafka's BROKER_LOGGER
//! config resource (KIP-412; `kafka-configs --entity-type broker-loggers`), answered by
//! DescribeConfigs and IncrementalAlterConfigs for this broker's own id.
//!
//! gregor logs with `tracing`; a logger is a tracing target (a module path such as
//! `gregor_broker::replica_manager`), named the way log4j names loggers, with dots
//! (`gregor_broker.replica_manager`: `kafka-configs` refuses a key with `:`; the `::` form is
//! taken too), and `root` is the default level. [`LogLevels`] keeps the
//! root's level and the levels set per target, renders them as an `EnvFilter` directive string
//! and hands it to the applier `gregor server` installed (a `tracing_subscriber::reload`
//! handle), which swaps the process's filter. Nothing here touches tracing-subscriber itself,
//! so the broker crate stays free of it and a unit test runs without a subscriber.
//!
//! ```text
//!  IncrementalAlterConfigs(BROKER_LOGGER, "<node id>")
//!        │ SET t=DEBUG / DELETE t
//!        ▼
//!  LogLevels::alter ── validate every op ──► new levels ──► directives "info,t=debug,..."
//!                                                               │
//!                                         applier (reload handle) ─► EnvFilter swapped
//! ```
//!
//! Kafka's levels map onto tracing's: FATAL and ERROR → `error`, WARN → `warn`, INFO →
//! `info`, DEBUG → `debug`, TRACE → `trace`; a level `off` (set by RUST_LOG) is described as
//! OFF. SET takes Kafka's six level names only (upper case, as Kafka's `LogLevelConfig`);
//! DELETE removes a target's own level, so it follows the nearest enclosing target that has
//! one, and at last the root (log4j's hierarchy, where an unset logger inherits). As in Kafka,
//! the levels are not persisted: a restart starts again from RUST_LOG or the default.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use gregor_protocol::error::ErrorCode;

/// The root logger's name, as Kafka's `Log4jController.ROOT_LOGGER` names it.
pub const ROOT_LOGGER: &str = "root";

/// The filter `gregor server` starts with when RUST_LOG is not set.
pub const DEFAULT_DIRECTIVES: &str = "info,openraft=warn";

/// The targets of libraries gregor runs whose lines are worth a level of their own.
pub const LIBRARY_TARGETS: &[&str] = &["openraft"];

/// Kafka's `LogLevelConfig.VALID_LOG_LEVELS`, sorted as Kafka's refusal lists them.
pub const KAFKA_LEVELS: &[&str] = &["DEBUG", "ERROR", "FATAL", "INFO", "TRACE", "WARN"];

/// IncrementalAlterConfigs' operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// A tracing level filter, `Off` the quietest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing.
    Off,
    /// `error` (Kafka's FATAL and ERROR).
    Error,
    /// `warn`.
    Warn,
    /// `info`.
    Info,
    /// `debug`.
    Debug,
    /// `trace`.
    Trace,
}

impl Level {
    /// A Kafka level name (SET's value), upper case as Kafka requires.
    pub fn from_kafka(name: &str) -> Option<Level> {
        Some(match name {
            "FATAL" | "ERROR" => Level::Error,
            "WARN" => Level::Warn,
            "INFO" => Level::Info,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => return None,
        })
    }

    /// The name DescribeConfigs gives it (log4j's).
    pub fn kafka_name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// A level in an `EnvFilter` directive (any case, or tracing's numbers).
    fn from_directive(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" | "0" => Level::Off,
            "error" | "1" => Level::Error,
            "warn" | "2" => Level::Warn,
            "info" | "3" => Level::Info,
            "debug" | "4" => Level::Debug,
            "trace" | "5" => Level::Trace,
            _ => return None,
        })
    }

    /// Its name in an `EnvFilter` directive.
    fn directive(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// The levels in force: what the filter is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Levels {
    /// The root's level (a directive without a target).
    root: Level,
    /// Targets with a level of their own.
    targets: BTreeMap<String, Level>,
    /// Directives kept as given (span and field filters), not loggers.
    other: Vec<String>,
}

impl Levels {
    /// Reads an `EnvFilter` directive string (RUST_LOG's syntax). A bare target means `trace`,
    /// as in `EnvFilter`; directives with span or field filters are kept as they are.
    fn parse(directives: &str) -> Levels {
        let mut levels = Levels {
            // EnvFilter's default when no directive names the root.
            root: Level::Error,
            targets: BTreeMap::new(),
            other: Vec::new(),
        };
        for d in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            if d.contains(['[', '{']) {
                levels.other.push(d.to_string());
                continue;
            }
            match d.split_once('=') {
                Some((target, level)) => match Level::from_directive(level.trim()) {
                    Some(l) => {
                        levels.targets.insert(target.trim().to_string(), l);
                    }
                    None => levels.other.push(d.to_string()),
                },
                None => match Level::from_directive(d) {
                    Some(l) => levels.root = l,
                    None => {
                        levels.targets.insert(d.to_string(), Level::Trace);
                    }
                },
            }
        }
        levels
    }

    /// The directive string for `EnvFilter`.
    fn directives(&self) -> String {
        let mut parts = vec![self.root.directive().to_string()];
        parts.extend(
            self.targets
                .iter()
                .map(|(t, l)| format!("{t}={}", l.directive())),
        );
        parts.extend(self.other.iter().cloned());
        parts.join(",")
    }

    /// The level `target` logs at: that of the longest target directive it starts with (as
    /// `EnvFilter` matches targets), else the root's.
    fn effective(&self, target: &str) -> Level {
        if target == ROOT_LOGGER {
            return self.root;
        }
        self.targets
            .iter()
            .filter(|(t, _)| target.starts_with(t.as_str()))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.root, |(_, l)| *l)
    }
}

/// Applies a directive string to the process's filter; the reason when it cannot.
pub type Applier = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The broker's log levels (see the module's docs). One per process: `gregor server` installs
/// it with [`install`]; a broker built without it (unit tests) gets a detached one that keeps
/// the levels but changes no filter.
pub struct LogLevels {
    /// The levels in force and the targets that have logged.
    state: Mutex<State>,
    /// Swaps the process's filter (`None`: detached).
    applier: Option<Applier>,
    /// Held by an alteration from its checks until its levels are in force.
    altering: Mutex<()>,
}

#[derive(Debug)]
struct State {
    levels: Levels,
    /// Targets whose log lines the subscriber has seen (log4j's loggers that exist).
    seen: BTreeSet<String>,
}

impl std::fmt::Debug for LogLevels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLevels")
            .field("applier", &self.applier.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for LogLevels {
    fn default() -> Self {
        LogLevels::new(DEFAULT_DIRECTIVES, None)
    }
}

/// The process's handle, once `gregor server` installed it.
static INSTALLED: OnceLock<Arc<LogLevels>> = OnceLock::new();

/// Installs the process's log levels: `directives` the filter the subscriber started with,
/// `applier` what swaps it. Later calls change nothing and return the first handle.
pub fn install(directives: &str, applier: Applier) -> Arc<LogLevels> {
    Arc::clone(INSTALLED.get_or_init(|| Arc::new(LogLevels::new(directives, Some(applier)))))
}

/// The installed handle, or a detached one when none is installed.
pub fn installed() -> Arc<LogLevels> {
    INSTALLED.get().cloned().unwrap_or_default()
}

/// The tracing target a logger name stands for (`a.b` → `a::b`).
fn target_of(name: &str) -> String {
    name.replace('.', "::")
}

/// A target's logger name, dotted as log4j's (`a::b` → `a.b`).
fn logger_name(target: &str) -> String {
    target.replace("::", ".")
}

/// An operation that failed: Kafka's error code and message.
pub type Refusal = (ErrorCode, String);

/// A BROKER_LOGGER resource's name as DescribeConfigs checks it (Kafka's `ConfigHelper`): this
/// broker's id.
pub fn check_describe_name(name: &str, node_id: i32) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err((
            ErrorCode::INVALID_REQUEST,
            "Broker id must not be empty".to_string(),
        ));
    }
    match name.parse::<i32>() {
        Err(_) => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Broker id must be an integer, but it is: {name}"),
        )),
        Ok(id) if id != node_id => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Unexpected broker id, expected {node_id} but received {name}"),
        )),
        Ok(_) => Ok(()),
    }
}

/// A BROKER_LOGGER resource's name as IncrementalAlterConfigs checks it (Kafka's
/// `RuntimeLoggerManager`): this broker's id; the change is never forwarded.
pub fn check_alter_name(name: &str, node_id: i32) -> Result<(), Refusal> {
    match name.parse::<i32>() {
        Err(_) => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Node id must be an integer, but it is: {name}"),
        )),
        Ok(id) if id != node_id => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Unexpected node id. Expected {node_id}, but received {name}"),
        )),
        Ok(_) => Ok(()),
    }
}

impl LogLevels {
    /// Levels read from `directives`, applied through `applier` when it is given.
    pub fn new(directives: &str, applier: Option<Applier>) -> LogLevels {
        LogLevels {
            state: Mutex::new(State {
                levels: Levels::parse(directives),
                seen: BTreeSet::new(),
            }),
            applier,
            altering: Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a target the subscriber saw a log line (callsite) of.
    pub fn note_target(&self, target: &str) {
        let mut state = self.state();
        if !state.seen.contains(target) {
            state.seen.insert(target.to_string());
        }
    }

    /// The directive string the filter is built from now.
    pub fn directives(&self) -> String {
        self.state().levels.directives()
    }

    /// Every logger (dotted names) with its level, Kafka's names: the root, the crate targets,
    /// the targets with a level of their own and those that have logged (Kafka's
    /// `LoggingController.loggers`).
    pub fn loggers(&self) -> Vec<(String, &'static str)> {
        let state = self.state();
        let mut names: BTreeSet<&str> = MODULE_TARGETS
            .iter()
            .chain(LIBRARY_TARGETS)
            .copied()
            .collect();
        names.extend(state.levels.targets.keys().map(String::as_str));
        names.extend(state.seen.iter().map(String::as_str));
        let mut out = vec![(ROOT_LOGGER.to_string(), state.levels.root.kafka_name())];
        out.extend(
            names
                .into_iter()
                .map(|n| (logger_name(n), state.levels.effective(n).kafka_name())),
        );
        out
    }

    /// Whether `target` is a logger: the root, one of gregor's modules or the libraries'
    /// targets, a target with a level, or one that has logged (Kafka refuses the others:
    /// log4j has no such logger).
    fn exists(state: &State, target: &str) -> bool {
        let gregor_module = |rest: &str| {
            rest.split("::").all(|seg| {
                !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        };
        let in_gregor_crate = MODULE_TARGETS
            .iter()
            .filter(|m| !m.contains("::"))
            .any(|krate| {
                target
                    .strip_prefix(krate)
                    .and_then(|rest| rest.strip_prefix("::"))
                    .is_some_and(gregor_module)
            });
        target == ROOT_LOGGER
            || in_gregor_crate
            || MODULE_TARGETS.contains(&target)
            || LIBRARY_TARGETS.contains(&target)
            || state.levels.targets.contains_key(target)
            || state.seen.contains(target)
    }

    /// Checks IncrementalAlterConfigs' operations (name, operation, value) as Kafka's
    /// `RuntimeLoggerManager.validateLogLevelConfigs` does, and unless `validate_only` applies
    /// them, all or none.
    pub fn alter(
        &self,
        ops: &[(String, i8, Option<String>)],
        validate_only: bool,
    ) -> Result<(), Refusal> {
        // One change at a time; the state lock itself is not held while the filter is swapped:
        // swapping re-registers every callsite, which notes its target here.
        let _one_at_a_time = self.altering.lock().unwrap_or_else(|e| e.into_inner());
        let state = self.state();
        let mut next = state.levels.clone();
        for (name, op, value) in ops {
            let target = target_of(name);
            let unknown = || {
                (
                    ErrorCode::INVALID_CONFIG,
                    format!("Logger {name} does not exist!"),
                )
            };
            match *op {
                OP_SET => {
                    if !Self::exists(&state, &target) {
                        return Err(unknown());
                    }
                    let value = value.as_deref().unwrap_or("");
                    let Some(level) = Level::from_kafka(value) else {
                        return Err((
                            ErrorCode::INVALID_CONFIG,
                            format!(
                                "Cannot set the log level of {name} to {value} as it is not a \
                                 supported log level. Valid log levels are {}",
                                KAFKA_LEVELS.join(", ")
                            ),
                        ));
                    };
                    if target == ROOT_LOGGER {
                        next.root = level;
                    } else {
                        next.targets.insert(target, level);
                    }
                }
                OP_DELETE => {
                    if !Self::exists(&state, &target) {
                        return Err(unknown());
                    }
                    if target == ROOT_LOGGER {
                        return Err((
                            ErrorCode::INVALID_REQUEST,
                            format!(
                                "Removing the log level of the {ROOT_LOGGER} logger is not allowed"
                            ),
                        ));
                    }
                    next.targets.remove(&target);
                }
                OP_APPEND | OP_SUBTRACT => {
                    let op = if *op == OP_APPEND {
                        "APPEND"
                    } else {
                        "SUBTRACT"
                    };
                    return Err((
                        ErrorCode::INVALID_REQUEST,
                        format!("{op} operation is not allowed for the BROKER_LOGGER resource"),
                    ));
                }
                other => {
                    return Err((
                        ErrorCode::INVALID_REQUEST,
                        format!(
                            "Unknown operation type {other} is not allowed for the BROKER_LOGGER \
                             resource"
                        ),
                    ))
                }
            }
        }
        if validate_only || next == state.levels {
            return Ok(());
        }
        drop(state);
        let directives = next.directives();
        if let Some(apply) = &self.applier {
            apply(&directives).map_err(|e| {
                (
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    format!("Cannot apply the log levels {directives:?}: {e}"),
                )
            })?;
        }
        self.state().levels = next;
        for (name, op, value) in ops {
            if *op == OP_SET {
                tracing::warn!(
                    "Updated the log level of {name} to {}",
                    value.as_deref().unwrap_or("")
                );
            } else {
                tracing::warn!("Unset the log level of {name}");
            }
        }
        Ok(())
    }
}

/// gregor's modules, the targets its log lines carry (`module_path!()`): every crate's root
/// and every module file but test modules. A unit test keeps names of removed modules out; a module added since
/// is still a logger (a module path in a gregor crate) and is listed once it has logged.
pub const MODULE_TARGETS: &[&str] = &[
    "gregor",
    "gregor::acls",
    "gregor::cluster",
    "gregor::cluster_describe",
    "gregor::configs",
    "gregor::consume",
    "gregor::groups",
    "gregor::output",
    "gregor::perf",
    "gregor::perf::consume",
    "gregor::perf::e2e",
    "gregor::perf::floor",
    "gregor::perf::loopback",
    "gregor::perf::produce",
    "gregor::perf::stats",
    "gregor::produce",
    "gregor::quotas",
    "gregor::records_cmd",
    "gregor::server",
    "gregor::share_groups",
    "gregor::tool",
    "gregor::topics",
    "gregor::transactions",
    "gregor_broker",
    "gregor_broker::add_partitions_to_txn_manager",
    "gregor_broker::alter_partition",
    "gregor_broker::authorizer",
    "gregor_broker::broker",
    "gregor_broker::broker_configs",
    "gregor_broker::client_metrics",
    "gregor_broker::clock",
    "gregor_broker::cluster",
    "gregor_broker::config",
    "gregor_broker::config_docs",
    "gregor_broker::connection",
    "gregor_broker::console",
    "gregor_broker::controller_listener",
    "gregor_broker::controller_sasl",
    "gregor_broker::delegation_tokens",
    "gregor_broker::fake_node",
    "gregor_broker::group_configs",
    "gregor_broker::group_coordinator",
    "gregor_broker::group_coordinator::high_watermarks",
    "gregor_broker::group_coordinator::share_groups",
    "gregor_broker::group_coordinator::streams_groups",
    "gregor_broker::handlers",
    "gregor_broker::handlers::add_offsets_to_txn",
    "gregor_broker::handlers::add_partitions_to_txn",
    "gregor_broker::handlers::admin_common",
    "gregor_broker::handlers::alter_client_quotas",
    "gregor_broker::handlers::alter_configs",
    "gregor_broker::handlers::alter_partition_reassignments",
    "gregor_broker::handlers::alter_replica_log_dirs",
    "gregor_broker::handlers::alter_share_group_offsets",
    "gregor_broker::handlers::alter_user_scram_credentials",
    "gregor_broker::handlers::api_versions",
    "gregor_broker::handlers::consumer_group_describe",
    "gregor_broker::handlers::consumer_group_heartbeat",
    "gregor_broker::handlers::create_acls",
    "gregor_broker::handlers::create_delegation_token",
    "gregor_broker::handlers::create_partitions",
    "gregor_broker::handlers::create_topics",
    "gregor_broker::handlers::delete_acls",
    "gregor_broker::handlers::delete_groups",
    "gregor_broker::handlers::delete_records",
    "gregor_broker::handlers::delete_share_group_offsets",
    "gregor_broker::handlers::delete_share_group_state",
    "gregor_broker::handlers::delete_topics",
    "gregor_broker::handlers::describe_acls",
    "gregor_broker::handlers::describe_client_quotas",
    "gregor_broker::handlers::describe_cluster",
    "gregor_broker::handlers::describe_configs",
    "gregor_broker::handlers::describe_delegation_token",
    "gregor_broker::handlers::describe_groups",
    "gregor_broker::handlers::describe_log_dirs",
    "gregor_broker::handlers::describe_producers",
    "gregor_broker::handlers::describe_quorum",
    "gregor_broker::handlers::describe_share_group_offsets",
    "gregor_broker::handlers::describe_topic_partitions",
    "gregor_broker::handlers::describe_transactions",
    "gregor_broker::handlers::describe_user_scram_credentials",
    "gregor_broker::handlers::elect_leaders",
    "gregor_broker::handlers::end_txn",
    "gregor_broker::handlers::expire_delegation_token",
    "gregor_broker::handlers::fetch",
    "gregor_broker::handlers::find_coordinator",
    "gregor_broker::handlers::group_common",
    "gregor_broker::handlers::heartbeat",
    "gregor_broker::handlers::incremental_alter_configs",
    "gregor_broker::handlers::init_producer_id",
    "gregor_broker::handlers::initialize_share_group_state",
    "gregor_broker::handlers::join_group",
    "gregor_broker::handlers::leave_group",
    "gregor_broker::handlers::list_config_resources",
    "gregor_broker::handlers::list_groups",
    "gregor_broker::handlers::list_offsets",
    "gregor_broker::handlers::list_partition_reassignments",
    "gregor_broker::handlers::list_transactions",
    "gregor_broker::handlers::metadata",
    "gregor_broker::handlers::offset_commit",
    "gregor_broker::handlers::offset_delete",
    "gregor_broker::handlers::offset_fetch",
    "gregor_broker::handlers::offset_for_leader_epoch",
    "gregor_broker::handlers::produce",
    "gregor_broker::handlers::read_share_group_state",
    "gregor_broker::handlers::read_share_group_state_summary",
    "gregor_broker::handlers::renew_delegation_token",
    "gregor_broker::handlers::sasl_authenticate",
    "gregor_broker::handlers::sasl_handshake",
    "gregor_broker::handlers::share_acknowledge",
    "gregor_broker::handlers::share_fetch",
    "gregor_broker::handlers::share_group_describe",
    "gregor_broker::handlers::share_group_heartbeat",
    "gregor_broker::handlers::streams_group_describe",
    "gregor_broker::handlers::streams_group_heartbeat",
    "gregor_broker::handlers::sync_group",
    "gregor_broker::handlers::txn_offset_commit",
    "gregor_broker::handlers::write_share_group_state",
    "gregor_broker::handlers::write_txn_markers",
    "gregor_broker::http_server",
    "gregor_broker::inter_broker",
    "gregor_broker::internal_topic",
    "gregor_broker::log_cleaner",
    "gregor_broker::log_levels",
    "gregor_broker::memory_pool",
    "gregor_broker::metadata",
    "gregor_broker::oauthbearer",
    "gregor_broker::partition",
    "gregor_broker::principal_mapping",
    "gregor_broker::producer_id_manager",
    "gregor_broker::purgatory",
    "gregor_broker::quota",
    "gregor_broker::refusal_log",
    "gregor_broker::replica_fetcher",
    "gregor_broker::replica_manager",
    "gregor_broker::replica_selector",
    "gregor_broker::request",
    "gregor_broker::response",
    "gregor_broker::router",
    "gregor_broker::sasl",
    "gregor_broker::scram",
    "gregor_broker::scram_bootstrap",
    "gregor_broker::server",
    "gregor_broker::share_coordinator",
    "gregor_broker::share_partitions",
    "gregor_broker::share_persister",
    "gregor_broker::stats",
    "gregor_broker::tls",
    "gregor_broker::topic_config",
    "gregor_broker::txn_coordinator",
    "gregor_client",
    "gregor_client::acls",
    "gregor_client::admin",
    "gregor_client::assignor",
    "gregor_client::cluster",
    "gregor_client::cluster_admin",
    "gregor_client::connection",
    "gregor_client::consumer",
    "gregor_client::error",
    "gregor_client::group",
    "gregor_client::group_consumer",
    "gregor_client::keystore",
    "gregor_client::log_admin",
    "gregor_client::partitioner",
    "gregor_client::producer",
    "gregor_client::quotas",
    "gregor_client::records",
    "gregor_client::security",
    "gregor_client::share_group",
    "gregor_client::transactions",
    "gregor_controller",
    "gregor_controller::clock",
    "gregor_controller::controller",
    "gregor_controller::lifecycle",
    "gregor_controller::log",
    "gregor_controller::protocol",
    "gregor_controller::sim",
    "gregor_group",
    "gregor_group::api",
    "gregor_group::consumer_group",
    "gregor_group::consumer_group::api",
    "gregor_group::consumer_group::assignor",
    "gregor_group::consumer_group::coordinator",
    "gregor_group::consumer_group::group",
    "gregor_group::consumer_group::member",
    "gregor_group::consumer_group::migration",
    "gregor_group::consumer_group::reconcile",
    "gregor_group::consumer_group::records",
    "gregor_group::consumer_group::topics",
    "gregor_group::consumer_protocol",
    "gregor_group::coordinator",
    "gregor_group::error",
    "gregor_group::group",
    "gregor_group::loader",
    "gregor_group::migration",
    "gregor_group::offsets",
    "gregor_group::records",
    "gregor_group::share_group",
    "gregor_group::share_group::api",
    "gregor_group::share_group::assignor",
    "gregor_group::share_group::coordinator",
    "gregor_group::share_group::group",
    "gregor_group::share_group::records",
    "gregor_group::streams_group",
    "gregor_group::streams_group::api",
    "gregor_group::streams_group::assignor",
    "gregor_group::streams_group::coordinator",
    "gregor_group::streams_group::group",
    "gregor_group::streams_group::member",
    "gregor_group::streams_group::reconcile",
    "gregor_group::streams_group::records",
    "gregor_group::streams_group::tasks",
    "gregor_group::streams_group::topology",
    "gregor_group::state",
    "gregor_group::txn_offsets",
    "gregor_metadata",
    "gregor_metadata::acl",
    "gregor_metadata::acl_index",
    "gregor_metadata::controller",
    "gregor_metadata::delegation_token",
    "gregor_metadata::delta",
    "gregor_metadata::election",
    "gregor_metadata::error",
    "gregor_metadata::heartbeat",
    "gregor_metadata::image",
    "gregor_metadata::placement",
    "gregor_metadata::records",
    "gregor_metadata::scram",
    "gregor_metadata::snapshot",
    "gregor_protocol",
    "gregor_protocol::batch",
    "gregor_protocol::control",
    "gregor_protocol::error",
    "gregor_protocol::frame",
    "gregor_protocol::recompress",
    "gregor_protocol::record_rewrite",
    "gregor_protocol::record_walk",
    "gregor_protocol::request",
    "gregor_raft",
    "gregor_raft::fsutil",
    "gregor_raft::log_store",
    "gregor_raft::network",
    "gregor_raft::pre_vote",
    "gregor_raft::quorum",
    "gregor_raft::quorum_sasl",
    "gregor_raft::state_machine",
    "gregor_raft::types",
    "gregor_raft::vote_gate",
    "gregor_replication",
    "gregor_replication::epoch",
    "gregor_replication::error",
    "gregor_replication::failover_sim",
    "gregor_replication::isr",
    "gregor_replication::partition",
    "gregor_replication::replica",
    "gregor_replication::sim",
    "gregor_replication::sim_rng",
    "gregor_share",
    "gregor_share::coordinator",
    "gregor_share::partition",
    "gregor_share::records",
    "gregor_share::state",
    "gregor_share::wire",
    "gregor_storage",
    "gregor_storage::checkpoint",
    "gregor_storage::cleaner",
    "gregor_storage::index",
    "gregor_storage::index_file",
    "gregor_storage::leader_epoch",
    "gregor_storage::loader",
    "gregor_storage::log",
    "gregor_storage::manager",
    "gregor_storage::producer_state",
    "gregor_storage::segment",
    "gregor_storage::time_index",
    "gregor_storage::txn_index",
    "gregor_txn",
    "gregor_txn::coordinator",
    "gregor_txn::decisions",
    "gregor_txn::error",
    "gregor_txn::metadata",
    "gregor_txn::records",
    "gregor_txn::state",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (name.to_string(), op, value.map(str::to_string))
    }

    /// A handle whose applier records each directive string it is given.
    fn recording(directives: &str) -> (LogLevels, Arc<Mutex<Vec<String>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&applied);
        let applier: Applier = Box::new(move |d: &str| {
            sink.lock().expect("test lock").push(d.to_string());
            Ok(())
        });
        (LogLevels::new(directives, Some(applier)), applied)
    }

    fn level_of(levels: &LogLevels, name: &str) -> Option<&'static str> {
        levels
            .loggers()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l)
    }

    #[test]
    fn parses_rust_log_directives() {
        let l = Levels::parse("info,openraft=warn,gregor_storage,x[span]=debug");
        assert_eq!(l.root, Level::Info);
        assert_eq!(l.targets.get("openraft"), Some(&Level::Warn));
        assert_eq!(l.targets.get("gregor_storage"), Some(&Level::Trace));
        assert_eq!(l.other, vec!["x[span]=debug".to_string()]);
        assert_eq!(
            l.directives(),
            "info,gregor_storage=trace,openraft=warn,x[span]=debug"
        );
        // No root directive: EnvFilter's default is error.
        assert_eq!(Levels::parse("gregor=debug").root, Level::Error);
    }

    #[test]
    fn describes_root_and_crates_with_effective_levels() {
        let levels = LogLevels::new("info,openraft=warn,gregor_broker::server=debug", None);
        let loggers = levels.loggers();
        assert_eq!(loggers[0], ("root".to_string(), "INFO"));
        assert_eq!(level_of(&levels, "openraft"), Some("WARN"));
        assert_eq!(level_of(&levels, "gregor_storage"), Some("INFO"));
        assert_eq!(level_of(&levels, "gregor_broker.server"), Some("DEBUG"));
        levels.note_target("gregor_broker::server::accept");
        assert_eq!(
            level_of(&levels, "gregor_broker.server.accept"),
            Some("DEBUG")
        );
    }

    #[test]
    fn set_applies_the_new_filter_and_delete_falls_back_to_the_root() {
        let (levels, applied) = recording("info,openraft=warn");
        levels
            .alter(
                &[op("gregor_broker::replica_manager", OP_SET, Some("DEBUG"))],
                false,
            )
            .expect("set");
        assert_eq!(
            level_of(&levels, "gregor_broker.replica_manager"),
            Some("DEBUG")
        );
        assert_eq!(
            applied.lock().expect("lock").last().map(String::as_str),
            Some("info,gregor_broker::replica_manager=debug,openraft=warn")
        );
        // The dotted name is the same logger.
        levels
            .alter(
                &[op("gregor_broker.replica_manager", OP_DELETE, None)],
                false,
            )
            .expect("delete");
        assert_eq!(
            level_of(&levels, "gregor_broker.replica_manager"),
            Some("INFO")
        );
        assert_eq!(levels.directives(), "info,openraft=warn");
        // FATAL is tracing's error; the root can be set.
        levels
            .alter(&[op("root", OP_SET, Some("FATAL"))], false)
            .expect("root");
        assert_eq!(level_of(&levels, "root"), Some("ERROR"));
        assert_eq!(level_of(&levels, "gregor_storage"), Some("ERROR"));
    }

    #[test]
    fn refusals_are_kafkas() {
        let (levels, applied) = recording("info");
        let refused =
            |ops: &[(String, i8, Option<String>)]| levels.alter(ops, false).expect_err("refused");
        let (code, message) = refused(&[op("kafka.server.ReplicaManager", OP_SET, Some("DEBUG"))]);
        assert_eq!(code, ErrorCode::INVALID_CONFIG);
        assert_eq!(
            message,
            "Logger kafka.server.ReplicaManager does not exist!"
        );
        assert_eq!(
            refused(&[op("gregor_broker::", OP_SET, Some("DEBUG"))]).0,
            ErrorCode::INVALID_CONFIG
        );
        assert_eq!(
            refused(&[op("gregor_nosuchcrate.x", OP_SET, Some("DEBUG"))]).0,
            ErrorCode::INVALID_CONFIG
        );
        // A module added after the list was written is still one of gregor's.
        let (fresh, _) = recording("info");
        assert!(fresh
            .alter(
                &[op("gregor_broker.some_new_module", OP_SET, Some("DEBUG"))],
                true
            )
            .is_ok());
        let (code, message) = refused(&[op("gregor_broker", OP_SET, Some("debug"))]);
        assert_eq!(code, ErrorCode::INVALID_CONFIG);
        assert!(
            message.ends_with("Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN"),
            "{message}"
        );
        for bad in ["OFF", "ALL", "VERBOSE"] {
            assert_eq!(
                refused(&[op("gregor_broker", OP_SET, Some(bad))]).0,
                ErrorCode::INVALID_CONFIG
            );
        }
        let (code, message) = refused(&[op("gregor_broker", OP_APPEND, Some("DEBUG"))]);
        assert_eq!(code, ErrorCode::INVALID_REQUEST);
        assert_eq!(
            message,
            "APPEND operation is not allowed for the BROKER_LOGGER resource"
        );
        assert_eq!(
            refused(&[op("gregor_broker", OP_SUBTRACT, Some("DEBUG"))]).0,
            ErrorCode::INVALID_REQUEST
        );
        assert_eq!(
            refused(&[op("root", OP_DELETE, None)]).0,
            ErrorCode::INVALID_REQUEST
        );
        assert_eq!(
            refused(&[op("nope", OP_DELETE, None)]).0,
            ErrorCode::INVALID_CONFIG
        );
        // All or nothing: a good SET before a bad one changes nothing.
        refused(&[
            op("gregor_storage", OP_SET, Some("TRACE")),
            op("nope", OP_SET, Some("DEBUG")),
        ]);
        assert_eq!(levels.directives(), "info");
        assert!(applied.lock().expect("lock").is_empty());
    }

    /// Walks `dir` (a crate's `src`), adding each module file's target under `prefix`.
    fn modules(dir: &std::path::Path, prefix: &str, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "bin" {
                    modules(&path, &format!("{prefix}::{name}"), out);
                }
            } else if let Some(stem) = name.strip_suffix(".rs") {
                // Test modules log nothing in a broker.
                if stem == "tests" || stem.ends_with("_tests") {
                    continue;
                }
                match stem {
                    "lib" | "main" | "mod" => out.insert(prefix.to_string()),
                    _ => out.insert(format!("{prefix}::{stem}")),
                };
            }
        }
    }

    #[test]
    fn module_targets_are_the_source_tree() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(&crates).expect("crates dir").flatten() {
            let dir = entry.file_name().to_string_lossy().to_string();
            let krate = if dir == "cli" {
                "gregor".to_string()
            } else {
                format!("gregor_{dir}")
            };
            modules(&entry.path().join("src"), &krate, &mut found);
        }
        let listed: BTreeSet<String> = MODULE_TARGETS.iter().map(|t| t.to_string()).collect();
        let stale: Vec<_> = listed.difference(&found).collect();
        assert!(
            stale.is_empty(),
            "log_levels::MODULE_TARGETS names modules that are gone: remove {stale:?}"
        );
        assert!(listed.contains("gregor_broker::log_levels"));
        let missing: Vec<_> = found.difference(&listed).collect();
        if !missing.is_empty() {
            eprintln!("log_levels::MODULE_TARGETS could list {missing:?}");
        }
    }

    #[test]
    fn validate_only_changes_nothing() {
        let (levels, applied) = recording("info");
        levels
            .alter(&[op("gregor_storage", OP_SET, Some("TRACE"))], true)
            .expect("valid");
        assert_eq!(levels.directives(), "info");
        assert_eq!(level_of(&levels, "gregor_storage"), Some("INFO"));
        assert!(applied.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_failing_applier_keeps_the_old_levels() {
        let applier: Applier = Box::new(|_: &str| Err("no subscriber".to_string()));
        let levels = LogLevels::new("info", Some(applier));
        let (code, _) = levels
            .alter(&[op("gregor_storage", OP_SET, Some("DEBUG"))], false)
            .expect_err("refused");
        assert_eq!(code, ErrorCode::UNKNOWN_SERVER_ERROR);
        assert_eq!(levels.directives(), "info");
    }
}
