//! Interop with confluent-kafka (Python, on the librdkafka it bundles): admin, keyed acks=all
//! produce and explicit-assignment consume, and every compression codec.

use gregor_e2e::client::{self, CONFLUENT};

#[test]
fn admin_create_and_list_topics() {
    client::scenario_admin(CONFLUENT);
}

#[test]
fn keyed_produce_acks_all_then_consume_in_order() {
    client::scenario_keyed_roundtrip(CONFLUENT, 2000);
}

#[test]
fn compression_gzip() {
    client::scenario_compression(CONFLUENT, "gzip");
}

#[test]
fn compression_snappy() {
    client::scenario_compression(CONFLUENT, "snappy");
}

#[test]
fn compression_lz4() {
    client::scenario_compression(CONFLUENT, "lz4");
}

#[test]
fn compression_zstd() {
    client::scenario_compression(CONFLUENT, "zstd");
}
