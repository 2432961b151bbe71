//! Interop with kafka-python (a pure-Python client): admin, keyed acks=all
//! produce and explicit-assignment consume, and every compression codec.

use gregor_e2e::client::{self, KAFKA_PYTHON};

#[test]
fn admin_create_and_list_topics() {
    client::scenario_admin(KAFKA_PYTHON);
}

#[test]
fn keyed_produce_acks_all_then_consume_in_order() {
    client::scenario_keyed_roundtrip(KAFKA_PYTHON, 2000);
}

#[test]
fn compression_gzip() {
    client::scenario_compression(KAFKA_PYTHON, "gzip");
}

#[test]
fn compression_snappy() {
    client::scenario_compression(KAFKA_PYTHON, "snappy");
}

#[test]
fn compression_lz4() {
    client::scenario_compression(KAFKA_PYTHON, "lz4");
}

#[test]
fn compression_zstd() {
    client::scenario_compression(KAFKA_PYTHON, "zstd");
}
