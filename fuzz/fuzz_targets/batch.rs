//! Fuzz target `batch`: a produced record set → `validate_record_set`, the `batches` iterator,
//! `BatchView::parse` and every header accessor, and for a set that validates, offset
//! assignment. None may panic; a set that validates must still validate after its offsets are
//! assigned (the CRC does not cover them) and must take exactly the offsets it declared.
#![no_main]

use gregor_protocol::batch::{assign_offsets_vectored, batches, validate_record_set, BatchView};
use libfuzzer_sys::fuzz_target;

/// `message.max.bytes` for the target (Kafka's default).
const MAX_BATCH: usize = 1_048_588;

fuzz_target!(|data: &[u8]| {
    for b in batches(data) {
        let Ok(b) = b else { break };
        let _ = (
            b.base_offset(),
            b.partition_leader_epoch(),
            b.magic(),
            b.crc(),
            b.attributes(),
            b.last_offset_delta(),
            b.base_timestamp(),
            b.max_timestamp(),
            b.producer_id(),
            b.producer_epoch(),
            b.base_sequence(),
            b.record_count(),
            b.is_transactional(),
            b.is_control(),
            b.is_log_append_time(),
            b.compression(),
            b.computed_crc(),
            b.last_offset(),
            b.next_offset(),
            b.validate(),
        );
    }
    let _ = BatchView::parse(data);

    let Ok(validated) = validate_record_set(data, MAX_BATCH) else {
        return;
    };
    let summary = *validated.summary();
    for log_append_time in [None, Some(1_700_000_000_000)] {
        let first = 1_000;
        let (assigned, next) = assign_offsets_vectored(&validated, first, 7, log_append_time);
        assert_eq!(assigned.len() as u32, summary.batch_count);
        assert_eq!(next - first, summary.offset_count);
        let mut rewritten = Vec::with_capacity(data.len());
        for a in &assigned {
            rewritten.extend_from_slice(&a.header);
            rewritten.extend_from_slice(a.body);
        }
        assert_eq!(rewritten.len(), data.len());
        let again =
            validate_record_set(&rewritten, MAX_BATCH).expect("still valid after assignment");
        assert_eq!(again.summary().offset_count, summary.offset_count);
        let starts: Vec<i64> = batches(&rewritten)
            .map(|b| b.expect("valid").base_offset())
            .collect();
        assert_eq!(starts.first().copied(), Some(first));
    }
});
