//! Poison-pill batches: a valid header and CRC around records that are garbage (random compressed
//! bytes, a compressed stream of garbage records, a record length of 10⁶, a record count that
//! lies, offset deltas out of order). Each must be refused with Kafka's error code
//! (CORRUPT_MESSAGE when the codec stream does not decode, INVALID_RECORD when the records do not
//! add up), leave the log end where it was, and leave the partition readable to the end by
//! librdkafka consumers and writable by the next valid batch.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::raw::{code, simple_batch, RawConn};
use gregor_e2e::{kcat, unique_topic, Broker};
use gregor_protocol::batch::build_batch;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

/// Kafka's INVALID_RECORD: the records inside a batch are malformed.
const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;
/// Two hours, past Kafka 4's default `message.timestamp.after.max.ms` of one.
const TWO_HOURS_MS: i64 = 7_200_000;
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

/// Encodes a zigzag varint.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Plain v2 records `(offsetDelta, value)`, no key, no headers.
fn records(recs: &[(i64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (delta, value) in recs {
        let mut r = vec![0u8, 0]; // attributes, timestampDelta
        put_varint(&mut r, *delta);
        put_varint(&mut r, -1); // key
        put_varint(&mut r, value.len() as i64);
        r.extend_from_slice(value);
        put_varint(&mut r, 0); // headers
        put_varint(&mut out, r.len() as i64);
        out.extend_from_slice(&r);
    }
    out
}

fn n_records(n: i64) -> Vec<u8> {
    let recs: Vec<(i64, &[u8])> = (0..n).map(|i| (i, &b"poison?"[..])).collect();
    records(&recs)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A batch with a valid header and CRC: `count` records claimed, `body` as the records (already
/// compressed with `codec`, the attributes' codec bits).
fn batch(codec: i16, count: i32, body: &[u8]) -> Vec<u8> {
    build_batch(0, codec, count - 1, now_ms(), now_ms(), count, body)
}

/// Compresses `data` with the producer-side encoder of `codec` (kafka-protocol's, the Java
/// client's framing: xerial for snappy, the LZ4 frame format).
fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| {
        b.put_slice(data);
        Ok(())
    };
    match codec {
        1 => Gzip::compress(&mut out, put),
        2 => Snappy::compress(&mut out, put),
        3 => Lz4::compress(&mut out, put),
        4 => Zstd::compress(&mut out, put),
        _ => panic!("codec {codec}"),
    }
    .expect("compress");
    out.to_vec()
}

/// Bytes that are no codec's valid stream.
fn garbage(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Every poison case: (name, batch, expected error code).
fn poison_cases() -> Vec<(String, Vec<u8>, i16)> {
    let mut huge_length = Vec::new();
    put_varint(&mut huge_length, 1_000_000);
    huge_length.extend_from_slice(&n_records(1)[1..]);
    let out_of_order = records(&[(0, b"a"), (2, b"b")]);
    let mut cases = vec![
        (
            "record length of 10^6".to_string(),
            batch(0, 1, &huge_length),
            INVALID_RECORD,
        ),
        (
            "record count 5 over 3 records".to_string(),
            batch(0, 5, &n_records(3)),
            INVALID_RECORD,
        ),
        (
            "record count 2 over 3 records".to_string(),
            batch(0, 2, &n_records(3)),
            INVALID_RECORD,
        ),
        (
            "offset deltas 0, 2".to_string(),
            batch(0, 2, &out_of_order),
            INVALID_RECORD,
        ),
        (
            "random bytes as records".to_string(),
            batch(0, 3, &garbage(300)),
            INVALID_RECORD,
        ),
    ];
    // KIP-937: a create time two hours ahead of the broker's clock.
    let ahead = now_ms() + TWO_HOURS_MS;
    cases.push((
        "create time two hours ahead".to_string(),
        build_batch(0, 0, 2, ahead, ahead, 3, &n_records(3)),
        INVALID_TIMESTAMP,
    ));
    for (codec, name) in [(1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")] {
        cases.push((
            format!("{name}: create time two hours ahead"),
            build_batch(
                0,
                codec,
                2,
                ahead,
                ahead,
                3,
                &compress(codec, &n_records(3)),
            ),
            INVALID_TIMESTAMP,
        ));
        cases.push((
            format!("{name}: random compressed bytes"),
            batch(codec, 3, &garbage(300)),
            code::CORRUPT_MESSAGE,
        ));
        cases.push((
            format!("{name}: stream of garbage records"),
            batch(codec, 3, &compress(codec, &garbage(300))),
            INVALID_RECORD,
        ));
        cases.push((
            format!("{name}: record count that lies"),
            batch(codec, 4, &compress(codec, &n_records(3))),
            INVALID_RECORD,
        ));
        cases.push((
            format!("{name}: record length of 10^6"),
            batch(codec, 1, &compress(codec, &huge_length)),
            INVALID_RECORD,
        ));
    }
    cases
}

/// A topic with three records, every poison case refused, then a valid batch accepted.
fn poisoned_topic(broker: &Broker) -> String {
    let topic = unique_topic("poison");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), code::NONE, "CreateTopics");
    let first = simple_batch(&[("k0", "v0"), ("k1", "v1"), ("k2", "v2")]);
    assert_eq!(conn.produce(&topic, 0, first), (code::NONE, 0));
    for (name, poison, want) in poison_cases() {
        let (got, base) = conn.produce(&topic, 0, poison);
        assert_eq!(got, want, "{name}: error code");
        assert_eq!(base, -1, "{name}: base offset");
        assert_eq!(conn.log_end_offset(&topic, 0), 3, "{name}: log end moved");
    }
    // Valid batches still go in, compressed and not.
    assert_eq!(
        conn.produce(&topic, 0, simple_batch(&[("k3", "v3")])),
        (code::NONE, 3)
    );
    let valid = batch(4, 3, &compress(4, &n_records(3)));
    assert_eq!(conn.produce(&topic, 0, valid), (code::NONE, 4));
    assert_eq!(conn.log_end_offset(&topic, 0), 7);
    topic
}

#[test]
fn poison_batches_are_refused_and_kcat_reads_to_the_end() {
    let broker = Broker::start();
    let topic = poisoned_topic(&broker);
    let out = kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            &topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %s\n",
        ],
        None,
        KCAT_TIMEOUT,
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(
        got,
        [
            "0 v0",
            "1 v1",
            "2 v2",
            "3 v3",
            "4 poison?",
            "5 poison?",
            "6 poison?"
        ],
        "kcat output:\n{out}"
    );
}

/// The same with the current librdkafka (confluent-kafka), which stalls or fails with
/// `_BAD_COMPRESSION` on a stored poison batch.
#[test]
fn current_librdkafka_consumer_reads_past_refused_poison() {
    let broker = Broker::start();
    let topic = poisoned_topic(&broker);
    let recs = CONFLUENT.consume(&broker, &topic);
    let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..7).collect::<Vec<i64>>(),
        "records read: {recs:?}"
    );
}

/// A compressed batch that inflates past the limit (256 × message.max.bytes, at least 64 MiB) is
/// refused with MESSAGE_TOO_LARGE before the broker has decoded more than the limit.
#[test]
fn decompression_bomb_is_refused() {
    // 256 × 100 kB is below the 64 MiB floor: the limit is 64 MiB.
    let broker = Broker::start_with(&["message.max.bytes=100000"]);
    let topic = unique_topic("poison-bomb");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), code::NONE, "CreateTopics");
    // One record whose value is 80 MiB of zeros: about 80 KiB of zstd.
    let value_len = 80usize << 20;
    let mut record = vec![0u8, 0, 0, 1];
    put_varint(&mut record, value_len as i64);
    record.resize(record.len() + value_len, 0);
    record.push(0);
    let mut body = Vec::new();
    put_varint(&mut body, record.len() as i64);
    body.extend_from_slice(&record);
    let bomb = batch(4, 1, &compress(4, &body));
    // Within message.max.bytes, so only the decompressed size can be refused.
    assert!(bomb.len() < 100_000, "bomb is {} bytes", bomb.len());
    assert_eq!(conn.produce(&topic, 0, bomb), (code::MESSAGE_TOO_LARGE, -1));
    assert_eq!(conn.log_end_offset(&topic, 0), 0);
}
