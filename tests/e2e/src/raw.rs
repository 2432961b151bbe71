//! [`RawConn`]: a bare TCP connection that speaks the Kafka wire protocol one request at a time,
//! built on `kafka-protocol`'s message types, plus the byte-level escapes (raw frames, partial
//! writes) that the bad-input tests need. Blocking std sockets with read/write timeouts.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest,
    ListOffsetsRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

/// How long any single read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Kafka error codes used by the tests (values from Kafka's `Errors`).
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// CRC mismatch or otherwise corrupt batch.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// A batch larger than `message.max.bytes`.
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// Illegal topic name.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// The API version is not supported.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
    /// The topic exists already.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// A request the broker refuses as malformed or contradictory.
    pub const INVALID_REQUEST: i16 = 42;
}

/// Highest versions this harness asks for: below the versions that address topics by id
/// (Produce v13, Fetch v13), which these tests do not use.
fn our_max(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 12,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 8,
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::ApiVersions => 3,
        _ => 0,
    }
}

/// A client connection, sending one request and reading its response at a time.
pub struct RawConn {
    stream: TcpStream,
    /// Correlation id of the next request.
    next_correlation: i32,
    /// The broker's ApiVersions answer, once asked.
    versions: Option<ApiVersionsResponse>,
}

impl RawConn {
    /// Connects with timeouts set.
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set write timeout");
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            next_correlation: 1,
            versions: None,
        }
    }

    /// Writes bytes as they are (no size prefix added).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes one frame: a size prefix and `body`.
    pub fn send_frame(&mut self, body: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(body);
        self.write_raw(&frame)
    }

    /// Reads one response frame body.
    pub fn read_frame(&mut self) -> io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if !(0..=256 << 20).contains(&size) {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("response frame size {size}"),
            ));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Asserts that the broker closes this connection within `timeout` (EOF or reset), without
    /// sending anything first. Panics if it answers or keeps the connection open.
    pub fn expect_closed(&mut self, what: &str, timeout: Duration) {
        match self.wait_closed(timeout) {
            Closed::Yes => {}
            Closed::Answered(n) => {
                panic!("{what}: expected the broker to close the connection; it sent {n} bytes")
            }
            Closed::StillOpen => {
                panic!("{what}: the connection is still open after {timeout:?}")
            }
        }
    }

    /// Waits until the peer closes the connection, it sends something, or `timeout` passes.
    pub fn wait_closed(&mut self, timeout: Duration) -> Closed {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set read timeout");
        let result = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break Closed::Yes,
                Ok(n) => break Closed::Answered(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        break Closed::StillOpen;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Reset, aborted, broken pipe: closed.
                Err(_) => break Closed::Yes,
            }
        };
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        result
    }

    /// Encodes a request (header + body) without the size prefix.
    pub fn encode_request<R: Request>(&mut self, version: i16, req: &R) -> (i32, Vec<u8>) {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("gregor-e2e")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, R::header_version(version))
            .expect("encode request header");
        req.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode api {} v{version}: {e}", R::KEY));
        (correlation_id, buf.to_vec())
    }

    /// Sends a request at `version` and decodes its response.
    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
        let (correlation_id, body) = self.encode_request(version, req);
        self.send_frame(&body)?;
        let mut resp = self.read_frame()?;
        let header = ResponseHeader::decode(&mut resp, R::Response::header_version(version))
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "correlation id {} in response to {correlation_id}",
                    header.correlation_id
                ),
            ));
        }
        let decoded = R::Response::decode(&mut resp, version).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("decode response to api {} v{version}: {e}", R::KEY),
            )
        })?;
        if resp.has_remaining() {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "{} bytes left over after the response to api {} v{version}",
                    resp.remaining(),
                    R::KEY
                ),
            ));
        }
        Ok(decoded)
    }

    /// ApiVersions (v3, falling back to v0 if the broker says v3 is unsupported).
    pub fn api_versions(&mut self) -> ApiVersionsResponse {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor-e2e"))
            .with_client_software_version(StrBytes::from_static_str("0.1"));
        let resp = self
            .request(3, &req)
            .unwrap_or_else(|e| panic!("ApiVersions v3: {e}"));
        let resp = if resp.error_code == code::UNSUPPORTED_VERSION {
            self.request(0, &ApiVersionsRequest::default())
                .unwrap_or_else(|e| panic!("ApiVersions v0: {e}"))
        } else {
            resp
        };
        assert_eq!(resp.error_code, code::NONE, "ApiVersions error");
        self.versions = Some(resp.clone());
        resp
    }

    /// The version to use for `key`: the highest both the broker and this harness support.
    pub fn version(&mut self, key: ApiKey) -> i16 {
        if self.versions.is_none() {
            self.api_versions();
        }
        let versions = self.versions.as_ref().expect("asked above");
        let k = key as i16;
        let range = versions
            .api_keys
            .iter()
            .find(|v| v.api_key == k)
            .unwrap_or_else(|| panic!("the broker does not advertise {key:?}"));
        let v = range.max_version.min(our_max(key));
        assert!(
            v >= range.min_version,
            "{key:?}: broker supports v{}..v{}, harness up to v{}",
            range.min_version,
            range.max_version,
            our_max(key)
        );
        v
    }

    /// Asks FindCoordinator (v4, groups) for `group` until it answers NONE (Kafka creates its
    /// offsets topic on the first lookup; a new gregor node may still be loading it); panics
    /// after `timeout`.
    pub fn wait_for_group_coordinator(&mut self, group: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let resp = self
                .request(
                    4,
                    &kafka_protocol::messages::FindCoordinatorRequest::default()
                        .with_key_type(0)
                        .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]),
                )
                .unwrap_or_else(|e| panic!("FindCoordinator: {e}"));
            let code = resp.coordinators.first().map_or(-1, |c| c.error_code);
            if code == code::NONE {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no coordinator for group {group} within {timeout:?} (error {code})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// CreateTopics for one topic; returns the topic's error code.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        let v = self.version(ApiKey::CreateTopics);
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let resp = self
            .request(v, &req)
            .unwrap_or_else(|e| panic!("CreateTopics v{v}: {e}"));
        assert_eq!(resp.topics.len(), 1, "CreateTopics: one result per topic");
        resp.topics[0].error_code
    }

    /// Produce `records` (a record set: one or more batches) to one partition with acks=all;
    /// returns (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, records: Vec<u8>) -> (i16, i64) {
        let v = self.version(ApiKey::Produce);
        let resp = self
            .request(v, &produce_request(topic, partition, records))
            .unwrap_or_else(|e| panic!("Produce v{v}: {e}"));
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .expect("Produce response has the partition");
        (p.error_code, p.base_offset)
    }

    /// ListOffsets LATEST for one partition: its log end offset.
    pub fn log_end_offset(&mut self, topic: &str, partition: i32) -> i64 {
        let v = self.version(ApiKey::ListOffsets);
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]);
        let resp = self
            .request(v, &req)
            .unwrap_or_else(|e| panic!("ListOffsets v{v}: {e}"));
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .expect("ListOffsets response has the partition");
        assert_eq!(p.error_code, code::NONE, "ListOffsets error");
        p.offset
    }

    /// One Fetch of one partition from `offset`: the record set bytes as the broker sent them.
    pub fn fetch_raw(&mut self, topic: &str, partition: i32, offset: i64) -> Bytes {
        let (code, records) = self.fetch_partition(topic, partition, offset);
        assert_eq!(code, code::NONE, "Fetch partition error");
        records
    }

    /// One Fetch of one partition from `offset`: the partition's error code and record set.
    pub fn fetch_partition(&mut self, topic: &str, partition: i32, offset: i64) -> (i16, Bytes) {
        let v = self.version(ApiKey::Fetch);
        let req = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let resp = self
            .request(v, &req)
            .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
        assert_eq!(resp.error_code, code::NONE, "Fetch top-level error");
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .expect("Fetch response has the partition");
        (p.error_code, p.records.clone().unwrap_or_default())
    }

    /// The compression codec (attributes & 7) of each complete batch one Fetch from `offset`
    /// returns: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn fetch_batch_codecs(&mut self, topic: &str, partition: i32, offset: i64) -> Vec<i16> {
        let raw = self.fetch_raw(topic, partition, offset);
        gregor_protocol::batch::batches(&raw)
            // A Fetch may end in a partial batch: stop there.
            .map_while(Result::ok)
            .map(|b| b.attributes() & 7)
            .collect()
    }

    /// Fetches one partition from `offset` (a single Fetch) and decodes every record in it.
    pub fn fetch_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Vec<FetchedRecord> {
        let records = self.fetch_raw(topic, partition, offset);
        let mut out = Vec::new();
        let mut records = records;
        while records.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut records)
                .unwrap_or_else(|e| panic!("decode fetched batch: {e}"));
            for r in set.records {
                out.push(FetchedRecord {
                    offset: r.offset,
                    key: r.key.map(|k| k.to_vec()),
                    value: r.value.map(|v| v.to_vec()),
                });
            }
        }
        out.retain(|r| r.offset >= offset);
        out
    }
}

/// One record read back by [`RawConn::fetch_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

/// What [`RawConn::wait_closed`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// EOF or reset.
    Yes,
    /// The broker sent this many bytes.
    Answered(usize),
    /// Neither within the timeout.
    StillOpen,
}

/// A topic name as `kafka-protocol` wants it.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A Produce request (acks=all) of `records` to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

/// A valid uncompressed batch of `(key, value)` records.
pub fn simple_batch(records: &[(&str, &str)]) -> Vec<u8> {
    type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
    let recs: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    gregor_protocol::batch::encode_simple_batch(now, &recs)
}

/// A valid uncompressed batch of `n` records (`k<i>`, `v<i>`) from producer `pid` at `epoch`
/// with sequences from `seq`: idempotent, or transactional when `transactional`.
pub fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    let records: Vec<(String, String)> =
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    let refs: Vec<(&str, &str)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut b = simple_batch(&refs);
    if transactional {
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    }
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One uncompressed batch of values with a timestamp each (create time, the first record's
/// as the batch's base), offsets from 0; the producer fields say "not idempotent".
pub fn timed_batch(records: &[(i64, &str)]) -> Vec<u8> {
    fn put_varlong(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let base = records.first().map_or(0, |r| r.0);
    let max = records.iter().map(|r| r.0).max().unwrap_or(base);
    let mut body = Vec::new();
    for (i, &(timestamp, value)) in records.iter().enumerate() {
        let mut r = vec![0u8]; // attributes
        put_varlong(&mut r, timestamp - base);
        put_varlong(&mut r, i as i64);
        put_varlong(&mut r, -1); // key: null
        put_varlong(&mut r, value.len() as i64);
        r.extend_from_slice(value.as_bytes());
        put_varlong(&mut r, 0); // headers
        put_varlong(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let n = records.len() as i32;
    gregor_protocol::batch::build_batch(0, 0, n - 1, base, max, n, &body)
}
