//! Fuzz target `request`: bytes from a peer → `FrameDecoder` → request header → typed body, for
//! every API and version the broker serves, and for Produce, each partition's records through
//! `validate_record_set` as the append path does. Nothing on that path may panic, abort or
//! allocate from a length field the bytes do not back (run with `-rss_limit_mb` and `-max_len`).
//!
//! Input layout (the first byte picks the mode, so mutations of a valid request stay framed):
//! * even first byte: the rest is one frame body; it gets its true size prefix and reaches the
//!   decoder split at a position taken from the byte, as a socket may deliver it.
//! * odd first byte: the rest is a raw byte stream (size prefixes included, possibly lying),
//!   delivered in reads of `(byte >> 1) + 1` bytes; every whole frame is decoded.
#![no_main]

use bytes::{Bytes, BytesMut};
use gregor_protocol::batch::validate_record_set;
use gregor_protocol::frame::FrameDecoder;
use gregor_protocol::request::{decode_request, RequestBody, SUPPORTED_APIS};
use libfuzzer_sys::fuzz_target;


/// Frame limit for the target. Far below the broker's 100 MiB default so a lying size prefix
/// costs a small reservation per run; the limit check itself is the same code.
const MAX_FRAME: usize = 1 << 20;
/// `message.max.bytes` (Kafka's default).
const MAX_BATCH: usize = 1_048_588;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let decoder = FrameDecoder {
        max_frame: MAX_FRAME,
    };
    let mut stream = Vec::with_capacity(rest.len() + 4);
    let read_size = if mode & 1 == 0 {
        stream.extend_from_slice(&(rest.len() as i32).to_be_bytes());
        stream.extend_from_slice(rest);
        // Two reads, split somewhere in the frame.
        (usize::from(mode >> 1) % (stream.len() + 1)).max(1)
    } else {
        stream.extend_from_slice(rest);
        usize::from(mode >> 1) + 1
    };
    let mut buf = BytesMut::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let len = frame.len();
                    if let Ok(req) = decode_request(Bytes::from(frame), SUPPORTED_APIS) {
                        assert!(req.trailing <= len, "decoder read past the frame");
                        if let RequestBody::Produce(p) = &req.body {
                            for records in p
                                .topic_data
                                .iter()
                                .flat_map(|t| &t.partition_data)
                                .filter_map(|d| d.records.as_ref())
                            {
                                let _ = validate_record_set(records, MAX_BATCH);
                            }
                        }
                    }
                }
                Ok(None) => break,
                // The connection is closed on a framing error: nothing more is read.
                Err(_) => return,
            }
        }
    }
});
