//! Hostile connections against the real binary: what a peer can make the broker hold (memory,
//! connection slots, time) and what the broker refuses at start.
//!
//! - many connections announcing 100 MB and sending 8 bytes cost kilobytes each, not megabytes;
//! - a full request memory pool (`queued.max.request.bytes`) stalls only requests that need it,
//!   and stalled partial requests are closed after `socket.request.timeout.ms`, which frees it;
//! - idle connections close after `connections.max.idle.ms`, slow partial requests after
//!   `socket.request.timeout.ms`, each logged once at INFO with the peer's address;
//! - `max.connections.per.ip` and its overrides; a listener's `max.connections`, and the
//!   inter-broker listener's exception to `max.connections`;
//! - the listeners' socket sizes (`socket.send.buffer.bytes`, `socket.receive.buffer.bytes`,
//!   `socket.listen.backlog.size`), as `ss` shows them;
//! - listeners whose security protocol gregor cannot serve stop the broker at start;
//! - an unsupported API version is logged at INFO with client id, address, API and version.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::raw::{code, simple_batch, Closed, RawConn};
use gregor_e2e::{unique_topic, Broker};
use kafka_protocol::messages::ApiKey;

/// The broker's resident memory (VmRSS) and address space (VmSize) in KiB, the process found by
/// its data directory in its command line.
fn broker_memory_kib(broker: &Broker) -> (u64, u64) {
    let dir = broker.data_dir().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains("server") || !cmdline.contains(&dir) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).expect("status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/PID/status"))
        };
        return (field("VmRSS:"), field("VmSize:"));
    }
    panic!("no gregor process with data dir {dir}");
}

/// Waits until the broker's log has a line containing every one of `parts`; returns it.
fn wait_for_log_line(broker: &Broker, parts: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let logs = broker.logs();
        if let Some(line) = logs.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} within {timeout:?}; log:\n{logs}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A request header (v1) for `api` at `version` with `client_id`.
fn header_v1(api: i16, version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    b.extend_from_slice(client_id.as_bytes());
    b
}

/// The first bytes of a frame announcing `size` bytes: the prefix and an ApiVersions header start.
fn announce(size: i32) -> Vec<u8> {
    let mut b = size.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 18, 0, 3]);
    b
}

/// Sends ApiVersions v0 on a bare socket and reads the answer (for tests that need the socket's
/// own address).
fn api_versions_v0(s: &mut TcpStream, correlation_id: i32) {
    let body = header_v1(ApiKey::ApiVersions as i16, 0, correlation_id, "gregor-e2e");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).expect("write ApiVersions");
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let mut resp = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    s.read_exact(&mut resp).expect("response");
    assert_eq!(resp.get(..4), Some(&correlation_id.to_be_bytes()[..]));
}

/// Whether the broker closes `s` within `timeout` (EOF or reset) without sending anything.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => panic!("expected a close, got {n} bytes"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// A fresh connection answers ApiVersions.
fn assert_serves(addr: SocketAddr, what: &str) {
    let mut conn = RawConn::connect(addr);
    let versions = conn.api_versions();
    assert!(
        !versions.api_keys.is_empty(),
        "{what}: ApiVersions is empty"
    );
}

#[test]
fn many_connections_announcing_100_mb_keep_memory_bounded() {
    // Fits a default soft limit of 1024 descriptors in this process.
    const CONNECTIONS: usize = 1000;
    // Measured with a debug build: 20 KiB of RSS per connection, no address space growth.
    // Before the fix (the decoder reserved each announced size) 70 KiB of RSS per connection.
    const RSS_BOUND_KIB: u64 = 48 * 1024;
    const VM_BOUND_KIB: u64 = 1024 * 1024;
    let broker = Broker::start();
    assert_serves(broker.addr(), "before");
    let (rss_before, vm_before) = broker_memory_kib(&broker);
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut s = TcpStream::connect(broker.addr()).expect("connect");
        s.write_all(&announce(100_000_000)).expect("write 8 bytes");
        held.push(s);
    }
    // Every connection has been accepted and read once the broker answers a later one.
    thread::sleep(Duration::from_millis(500));
    assert_serves(broker.addr(), "with 1000 stalled connections");
    thread::sleep(Duration::from_millis(500));
    let (rss_after, vm_after) = broker_memory_kib(&broker);
    let rss = rss_after.saturating_sub(rss_before);
    let vm = vm_after.saturating_sub(vm_before);
    eprintln!(
        "{CONNECTIONS} connections announcing 100 MB: RSS {rss_before} -> {rss_after} KiB \
         ({} KiB per connection), VmSize {vm_before} -> {vm_after} KiB ({} KiB per connection)",
        rss / CONNECTIONS as u64,
        vm / CONNECTIONS as u64,
    );
    assert!(
        rss < RSS_BOUND_KIB,
        "{CONNECTIONS} connections announcing 100 MB grew RSS by {rss} KiB (bound {RSS_BOUND_KIB})"
    );
    assert!(
        vm < VM_BOUND_KIB,
        "{CONNECTIONS} connections announcing 100 MB grew VmSize by {vm} KiB (bound {VM_BOUND_KIB})"
    );
    drop(held);
}

#[test]
fn a_full_request_memory_pool_stalls_only_large_requests_until_stalled_ones_time_out() {
    const TIMEOUT_MS: u64 = 3000;
    let broker = Broker::start_with(&[
        "socket.request.max.bytes=2097152",
        "queued.max.request.bytes=4194304",
        "socket.request.timeout.ms=3000",
    ]);
    let topic = unique_topic("pool");
    let mut healthy = RawConn::connect(broker.addr());
    assert_eq!(healthy.create_topic(&topic, 1), code::NONE);

    // Four peers each announce 2 MiB and send 1.5 MiB of it: the pool (4 MiB) cannot hold the
    // 6 MiB they would need, so some of them stop being read.
    let started = Instant::now();
    let stalled: Vec<thread::JoinHandle<TcpStream>> = (0..4)
        .map(|_| {
            let addr = broker.addr();
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_write_timeout(Some(Duration::from_millis(1500)))
                    .expect("timeout");
                let mut bytes = announce(2 << 20);
                bytes.resize(1_500_000, 0);
                // Blocks once the broker stops reading this socket: that is the point.
                let _ = s.write_all(&bytes);
                s
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1000));

    // Small requests need no pool memory: served at once.
    let t = Instant::now();
    assert_serves(broker.addr(), "pool full");
    assert_eq!(
        healthy.produce(&topic, 0, simple_batch(&[("k", "small")])),
        (code::NONE, 0)
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "small requests took {:?} with the pool full",
        t.elapsed()
    );

    // A 200 KB produce needs pool memory: it waits until the stalled requests time out.
    let value = "x".repeat(200_000);
    let t = Instant::now();
    assert_eq!(
        healthy.produce(&topic, 0, simple_batch(&[("k", &value)])),
        (code::NONE, 1),
        "large produce after the stalled requests timed out"
    );
    let waited = t.elapsed();
    let due = Duration::from_millis(TIMEOUT_MS).saturating_sub(t.duration_since(started));
    eprintln!("large produce waited {waited:?} (stalled requests due in {due:?})");
    assert!(
        waited + Duration::from_millis(500) >= due,
        "the large produce did not wait for pool memory ({waited:?}, due {due:?})"
    );
    wait_for_log_line(
        &broker,
        &["request not received whole", "127.0.0.1"],
        Duration::from_secs(5),
    );
    for h in stalled {
        let mut s = h.join().expect("stalled writer");
        assert!(
            closed_within(&mut s, Duration::from_secs(10)),
            "a stalled 2 MiB request is still open"
        );
    }
    assert_serves(broker.addr(), "after");
}

#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms() {
    let broker = Broker::start_with(&["connections.max.idle.ms=1000"]);
    let mut idle = TcpStream::connect(broker.addr()).expect("connect");
    api_versions_v0(&mut idle, 1);
    let local = idle.local_addr().expect("local address");
    // A connection that keeps asking stays open past the idle timeout.
    let mut busy = RawConn::connect(broker.addr());
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2000) {
        busy.api_versions();
        thread::sleep(Duration::from_millis(300));
    }
    // By now the idle one is gone.
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)),
        "idle connection still open"
    );
    let line = wait_for_log_line(
        &broker,
        &["closing idle connection", &local.to_string()],
        Duration::from_secs(5),
    );
    assert!(line.contains("INFO"), "{line}");
    busy.api_versions();
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_closed_after_socket_request_timeout_ms() {
    let broker = Broker::start_with(&["socket.request.timeout.ms=1500"]);
    let mut conn = TcpStream::connect(broker.addr()).expect("connect");
    let _ = conn.set_nodelay(true);
    let local = conn.local_addr().expect("local address");
    let mut request = announce(1000);
    request.resize(1004, 0);
    let t = Instant::now();
    let mut closed = false;
    // One byte every 100 ms: always progressing, never complete.
    for b in request.iter().take(100) {
        if conn.write_all(&[*b]).is_err() || closed_within(&mut conn, Duration::from_millis(100)) {
            closed = true;
            break;
        }
    }
    let elapsed = t.elapsed();
    assert!(closed, "still open after {elapsed:?} of a partial request");
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(5000),
        "closed after {elapsed:?}, timeout 1.5 s"
    );
    let line = wait_for_log_line(
        &broker,
        &["request not received whole", &local.to_string()],
        Duration::from_secs(5),
    );
    assert!(line.contains("INFO"), "{line}");
    assert_serves(broker.addr(), "after");
}

#[test]
fn max_connections_per_ip_limits_each_address() {
    let broker = Broker::start_with(&["max.connections.per.ip=2"]);
    let mut a = RawConn::connect(broker.addr());
    a.api_versions();
    let mut b = RawConn::connect(broker.addr());
    b.api_versions();
    let mut c = RawConn::connect(broker.addr());
    c.expect_closed("third connection from 127.0.0.1", Duration::from_secs(5));
    wait_for_log_line(
        &broker,
        &["rejected connection", "max.connections.per.ip"],
        Duration::from_secs(5),
    );
    drop(a);
    // The slot comes back once the broker has seen the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = RawConn::connect(broker.addr());
        match d.wait_closed(Duration::from_millis(300)) {
            Closed::StillOpen => {
                d.api_versions();
                break;
            }
            _ => assert!(Instant::now() < deadline, "no slot after a close"),
        }
    }
    b.api_versions();
}

#[test]
fn max_connections_per_ip_overrides_win_for_their_address() {
    let broker = Broker::start_with(&[
        "max.connections.per.ip=1",
        "max.connections.per.ip.overrides=127.0.0.1:3",
    ]);
    let mut open: Vec<RawConn> = (0..3).map(|_| RawConn::connect(broker.addr())).collect();
    for conn in &mut open {
        conn.api_versions();
    }
    let mut fourth = RawConn::connect(broker.addr());
    fourth.expect_closed("fourth connection, override 3", Duration::from_secs(5));
}

/// `ss`'s lines (no header) for the TCP sockets matching `filter`, with `flags` (e.g. `-l`
/// for listening sockets, `-m` for their memory).
fn ss(flags: &[&str], filter: &str) -> String {
    let out = Command::new("ss")
        .arg("-Htn")
        .args(flags)
        .arg(filter)
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "ss: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `field` in `ss -m`'s `skmem:(...)` (`rb`, `tb`).
fn skmem(text: &str, field: &str) -> u64 {
    let mem = text
        .split("skmem:(")
        .nth(1)
        .unwrap_or_else(|| panic!("no skmem in {text:?}"));
    mem.split([',', ')'])
        .find_map(|f| f.strip_prefix(field).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no {field} in {text:?}"))
}

#[test]
fn listener_sockets_take_the_configured_sizes() {
    let broker = Broker::start_with(&[
        "socket.send.buffer.bytes=60000",
        "socket.receive.buffer.bytes=70000",
        "socket.listen.backlog.size=7",
    ]);
    let port = broker.addr().port();
    let filter = format!("sport = :{port}");
    // A listening socket's Send-Q is its backlog.
    let listening = ss(&["-l"], &filter);
    let columns: Vec<&str> = listening.split_whitespace().collect();
    assert_eq!(columns.get(2), Some(&"7"), "backlog 7: {listening:?}");
    let mut conn = RawConn::connect(broker.addr());
    conn.api_versions();
    // The broker's side of the connection; Linux doubles the sizes it is given.
    let served = ss(&["-m"], &filter);
    assert_eq!(skmem(&served, "rb"), 140_000, "{served}");
    assert_eq!(skmem(&served, "tb"), 120_000, "{served}");
    assert!(
        !broker.logs().contains("ignored key=socket"),
        "the keys are not ignored"
    );

    // gregor's defaults, -1: the operating system's sizes, which it tunes as the connection
    // goes.
    let broker = Broker::start();
    let filter = format!("sport = :{}", broker.addr().port());
    let listening = ss(&["-l"], &filter);
    assert_eq!(
        listening.split_whitespace().nth(2),
        Some("1024"),
        "gregor's default backlog: {listening:?}"
    );
    let mut conn = RawConn::connect(broker.addr());
    conn.api_versions();
    let served = ss(&["-m"], &filter);
    assert_ne!(skmem(&served, "rb"), 140_000, "{served}");
    assert_ne!(skmem(&served, "tb"), 120_000, "{served}");
}

/// Runs `gregor server` with `sets` and no `--listen`; returns (exited, stderr).
fn server_exit(sets: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(gregor_e2e::broker::gregor_bin());
    cmd.arg("server").arg("--data-dir").arg(dir.path());
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gregor");
    let status = gregor_e2e::broker::wait_timeout(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status.and_then(|s| s.code()), stderr)
}

#[test]
fn listeners_gregor_cannot_serve_stop_the_broker_at_start() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["listeners=SSL://127.0.0.1:0"],
            &["SSL://127.0.0.1:0", "SSL"],
        ),
        (
            &["listeners=SASL_PLAINTEXT://127.0.0.1:0"],
            &["SASL_PLAINTEXT://127.0.0.1:0"],
        ),
        (
            &[
                "listener.security.protocol.map=CLIENT:SSL",
                "listeners=CLIENT://127.0.0.1:0",
            ],
            &["CLIENT://127.0.0.1:0", "SSL"],
        ),
        (
            &["listeners=CLIENT://127.0.0.1:0"],
            &["no security protocol defined for listener CLIENT"],
        ),
    ];
    for (sets, wanted) in cases {
        let (code, stderr) = server_exit(sets);
        assert_eq!(code, Some(1), "{sets:?}: exit code; stderr:\n{stderr}");
        for w in *wanted {
            assert!(
                stderr.contains(w),
                "{sets:?}: no {w:?} in stderr:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("listening on"),
            "{sets:?}: the broker listened:\n{stderr}"
        );
    }
}

#[test]
fn an_unsupported_api_version_is_logged_at_info_with_the_client() {
    let broker = Broker::start();
    let mut conn = TcpStream::connect(broker.addr()).expect("connect");
    let local = conn.local_addr().expect("local address");
    let mut body = header_v1(ApiKey::Metadata as i16, 99, 1, "too-new-client");
    body.extend_from_slice(&[0, 0, 0, 0]);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.write_all(&frame).expect("write");
    assert!(
        closed_within(&mut conn, Duration::from_secs(10)),
        "Metadata v99: still open"
    );
    let line = wait_for_log_line(
        &broker,
        &[
            "unsupported API version",
            "too-new-client",
            &local.to_string(),
        ],
        Duration::from_secs(5),
    );
    assert!(
        line.contains("INFO") && line.contains("Metadata") && line.contains("99"),
        "{line}"
    );
    assert_serves(broker.addr(), "after");
}

/// IncrementalAlterConfigs of one cluster-wide dynamic broker config (`None`: remove it); the
/// entry's error code.
fn alter_broker_default(conn: &mut RawConn, key: &str, value: Option<&str>) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use kafka_protocol::protocol::StrBytes;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_config_operation(if value.is_some() { 0 } else { 1 })
                .with_value(value.map(|v| StrBytes::from_string(v.to_string())))]),
    ]);
    let resp = conn.request(1, &req).expect("IncrementalAlterConfigs");
    resp.responses[0].error_code
}

/// Sends ApiVersions on a new connection; whether it is answered within `wait`.
fn answered_within(conn: &mut RawConn, wait: Duration) -> bool {
    let (_, request) =
        conn.encode_request(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    conn.send_frame(&request).expect("send ApiVersions");
    matches!(conn.wait_closed(wait), Closed::Answered(_))
}

/// `n` connections one after the other, each answering ApiVersions: how long they took.
fn connection_storm(addr: SocketAddr, n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let mut conn = RawConn::connect(addr);
        assert!(
            answered_within(&mut conn, Duration::from_secs(10)),
            "connection {i} of the storm was never answered"
        );
    }
    start.elapsed()
}

/// KIP-612: `listener.name.<l>.max.connection.creation.rate`, set at run time, holds a storm of
/// new connections to about that many a second (the listener waits before it accepts more;
/// every connection is still served), and removing it lets the next storm through at once.
/// The rate is measured over a window of two one-second samples here
/// (`quota.window.num=2`, `quota.window.size.seconds=1`).
#[test]
fn a_connection_storm_is_held_to_the_listener_s_creation_rate() {
    let broker = Broker::start_with(&["quota.window.num=2", "quota.window.size.seconds=1"]);
    let free = connection_storm(broker.addr(), 20);
    let mut admin = RawConn::connect(broker.addr());
    let key = "listener.name.plaintext.max.connection.creation.rate";
    assert_eq!(alter_broker_default(&mut admin, key, Some("5")), code::NONE);
    // Applied once a storm is held back; then the window cools before the measured storm.
    let deadline = Instant::now() + Duration::from_secs(20);
    while connection_storm(broker.addr(), 8) < Duration::from_millis(200) {
        assert!(Instant::now() < deadline, "the rate never applied");
    }
    thread::sleep(Duration::from_millis(2500));
    let held = connection_storm(broker.addr(), 20);
    assert!(
        held >= Duration::from_secs(2),
        "20 connections at 5 a second took {held:?} (unbounded: {free:?})"
    );
    assert_eq!(alter_broker_default(&mut admin, key, None), code::NONE);
    thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = connection_storm(broker.addr(), 20);
        if again < Duration::from_millis(1500) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still held after the rate was removed: {again:?}"
        );
        thread::sleep(Duration::from_millis(2500));
    }
    eprintln!("20 connections: unbounded {free:?}, at 5 a second {held:?}");
}

/// An `ip` quota named by a host name (`localhost`, as Kafka takes one) holds back the
/// connections from an address it resolves to; one that does not resolve is refused.
#[test]
fn an_ip_quota_named_by_a_host_name_holds_back_its_addresses() {
    let broker = Broker::start_with(&["quota.window.num=2", "quota.window.size.seconds=1"]);
    let mut admin = RawConn::connect(broker.addr());
    assert_eq!(
        alter_ip_quota(&mut admin, Some("no-such-host.invalid"), Some(2.0)),
        code::INVALID_REQUEST
    );
    assert_eq!(
        alter_ip_quota(&mut admin, Some("localhost"), Some(2.0)),
        code::NONE
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_of(broker.addr(), 4) == 4 {
        assert!(
            Instant::now() < deadline,
            "the localhost quota never applied"
        );
    }
    thread::sleep(Duration::from_millis(2500));
    let served = served_of(broker.addr(), 8);
    assert!(
        (2..8).contains(&served),
        "{served} of 8 served at 2 a second"
    );
    assert_eq!(
        alter_ip_quota(&mut admin, Some("localhost"), None),
        code::NONE
    );
}

/// `listener.name.external.max.connections` holds the EXTERNAL listener to 2 connections, and
/// `max.connections` the broker to 3; the inter-broker listener (PLAINTEXT, beside EXTERNAL)
/// takes a fourth, and the least recently used EXTERNAL connection is closed for it, as Kafka's
/// `ConnectionQuotas` do. A connection waiting on EXTERNAL is served once the broker is under
/// its limit again; the listener's limit changes at run time.
#[test]
fn a_listener_s_max_connections_and_the_inter_broker_exception() {
    let external = gregor_e2e::ports::reserve();
    let sets = [
        format!("listeners=PLAINTEXT://127.0.0.1:0,EXTERNAL://{external}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            .to_string(),
        "max.connections=3".to_string(),
        "listener.name.external.max.connections=2".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    gregor_e2e::broker::wait_accepting(external, Duration::from_secs(30), || broker.logs());
    let mut first = RawConn::connect(external);
    first.api_versions();
    let mut second = RawConn::connect(external);
    second.api_versions();
    let mut third = RawConn::connect(external);
    assert!(
        !answered_within(&mut third, Duration::from_millis(1000)),
        "a third EXTERNAL connection waits: the listener's limit is 2"
    );
    // The first is used after the second: the second is the least recently used.
    first.api_versions();
    let mut admin = RawConn::connect(broker.addr());
    admin.api_versions();
    // The broker is at its 3; the inter-broker listener takes one more all the same.
    let mut fourth = RawConn::connect(broker.addr());
    assert!(
        answered_within(&mut fourth, Duration::from_secs(5)),
        "the inter-broker listener is served past max.connections"
    );
    second.expect_closed(
        "the least recently used EXTERNAL connection",
        Duration::from_secs(5),
    );
    first.api_versions();
    wait_for_log_line(
        &broker,
        &["closing the least recently used connection", "EXTERNAL"],
        Duration::from_secs(5),
    );
    // EXTERNAL holds one now, under its 2, but the broker is at 3: the third still waits.
    assert!(!answered_within(&mut third, Duration::from_millis(1000)));
    drop(fourth);
    assert!(
        matches!(
            third.wait_closed(Duration::from_secs(5)),
            Closed::Answered(_)
        ),
        "the waiting connection is served once the broker is under max.connections"
    );
    // Raised at run time (a dynamic config, per listener, as in Kafka).
    assert_eq!(
        alter_broker_default(&mut admin, "max.connections", Some("100")),
        code::NONE
    );
    assert_eq!(
        alter_broker_default(
            &mut admin,
            "listener.name.external.max.connections",
            Some("3")
        ),
        code::NONE
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let _more = loop {
        let mut more = RawConn::connect(external);
        if answered_within(&mut more, Duration::from_millis(1000)) {
            break more;
        }
        assert!(
            Instant::now() < deadline,
            "the listener's new limit never applied"
        );
    };
    let mut over = RawConn::connect(external);
    assert!(
        !answered_within(&mut over, Duration::from_millis(1000)),
        "the listener holds 3, its new limit"
    );
}

/// `max.connections` changed at run time (a dynamic broker config, as in Kafka): lowered to 2,
/// a third connection waits unanswered until one of the two closes; raised again, more are
/// served at once.
#[test]
fn max_connections_changes_at_run_time() {
    let broker = Broker::start();
    let mut admin = RawConn::connect(broker.addr());
    assert_eq!(
        alter_broker_default(&mut admin, "max.connections", Some("2")),
        code::NONE
    );
    // Until the broker has applied it a third connection is still served.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (second, mut third) = loop {
        let mut second = RawConn::connect(broker.addr());
        assert!(answered_within(&mut second, Duration::from_secs(10)));
        let mut third = RawConn::connect(broker.addr());
        if !answered_within(&mut third, Duration::from_millis(1000)) {
            break (second, third);
        }
        assert!(Instant::now() < deadline, "max.connections=2 never applied");
    };
    drop(second);
    assert!(
        matches!(
            third.wait_closed(Duration::from_secs(5)),
            Closed::Answered(_)
        ),
        "the waiting connection is served once a slot is free"
    );
    assert_eq!(
        alter_broker_default(&mut admin, "max.connections", Some("100")),
        code::NONE
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut more = RawConn::connect(broker.addr());
        if answered_within(&mut more, Duration::from_millis(1000)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "max.connections=100 never applied"
        );
    }
}

/// AlterClientQuotas of one `ip` entity's `connection_creation_rate` (`None`: remove it).
fn alter_ip_quota(conn: &mut RawConn, ip: Option<&str>, rate: Option<f64>) -> i16 {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::AlterClientQuotasRequest;
    use kafka_protocol::protocol::StrBytes;
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(StrBytes::from_static_str("ip"))
            .with_entity_name(ip.map(|i| StrBytes::from_string(i.to_string())))])
        .with_ops(vec![OpData::default()
            .with_key(StrBytes::from_static_str("connection_creation_rate"))
            .with_value(rate.unwrap_or(0.0))
            .with_remove(rate.is_none())])]);
    let resp = conn.request(1, &req).expect("AlterClientQuotas");
    resp.entries[0].error_code
}

/// How many of `n` new connections, made one after the other, are answered; the others must
/// be closed by the broker unanswered.
fn served_of(addr: SocketAddr, n: usize) -> usize {
    let mut served = 0;
    for i in 0..n {
        let mut conn = RawConn::connect(addr);
        let (_, request) =
            conn.encode_request(3, &kafka_protocol::messages::ApiVersionsRequest::default());
        conn.send_frame(&request).expect("send ApiVersions");
        match conn.wait_closed(Duration::from_secs(10)) {
            Closed::Answered(_) => served += 1,
            Closed::Yes => {}
            Closed::StillOpen => panic!("connection {i}: neither answered nor closed in 10 s"),
        }
    }
    served
}

/// KIP-612's `ip` quota (`kafka-configs --entity-type ips --add-config
/// connection_creation_rate=N`): past 2 new connections a second from 127.0.0.1 the broker
/// serves none and closes them after a hold (Kafka's delayed close), the rate being measured
/// over two one-second samples; other addresses are not held; the default `ip` entity applies
/// to an address without its own; removing the quotas serves every connection again.
#[test]
fn an_ip_quota_holds_back_connections_from_that_address() {
    use gregor_e2e::broker::gregor_cli_ok;
    let broker = Broker::start_with(&["quota.window.num=2", "quota.window.size.seconds=1"]);
    let b = broker.bootstrap();
    let out = gregor_cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--ip",
            "127.0.0.1",
            "--set",
            "connection_creation_rate=2",
        ],
    );
    assert!(out.contains("updated 1 quota"), "{out}");
    let out = gregor_cli_ok(&b, &["quotas", "describe", "--ip", "127.0.0.1"]);
    assert!(
        out.contains("ip=127.0.0.1") && out.contains("connection_creation_rate"),
        "{out}"
    );
    let mut admin = RawConn::connect(broker.addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_of(broker.addr(), 4) == 4 {
        assert!(Instant::now() < deadline, "the ip quota never applied");
    }
    thread::sleep(Duration::from_millis(2500));
    let start = Instant::now();
    let served = served_of(broker.addr(), 8);
    let took = start.elapsed();
    assert!(
        (2..8).contains(&served),
        "{served} of 8 served at 2 a second"
    );
    assert!(
        took >= Duration::from_millis(500),
        "the refused connections were closed at once ({took:?}), not held"
    );
    // Another address on the same broker is not held.
    assert_eq!(
        alter_ip_quota(&mut admin, Some("127.0.0.1"), None),
        code::NONE
    );
    assert_eq!(
        alter_ip_quota(&mut admin, Some("10.9.9.9"), Some(1.0)),
        code::NONE
    );
    thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_of(broker.addr(), 6) < 6 {
        assert!(Instant::now() < deadline, "127.0.0.1 still held");
        thread::sleep(Duration::from_millis(2500));
    }
    // The default entity, for every address without its own.
    let out = gregor_cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--ip-default",
            "--set",
            "connection_creation_rate=2",
        ],
    );
    assert!(out.contains("updated 1 quota"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_of(broker.addr(), 4) == 4 {
        assert!(
            Instant::now() < deadline,
            "the default ip quota never applied"
        );
    }
    assert_eq!(alter_ip_quota(&mut admin, None, None), code::NONE);
    thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_of(broker.addr(), 6) < 6 {
        assert!(
            Instant::now() < deadline,
            "still held after the quotas were removed"
        );
        thread::sleep(Duration::from_millis(2500));
    }
    eprintln!("8 connections at 2 a second: {served} served, {took:?}");
}
