//! The record walk: checks that the records inside a RecordBatch v2 are well formed, the way
//! Kafka's `LogValidator` does on produce (through `DefaultRecordBatch`'s record iterators and
//! `DefaultRecord.readFrom`), so that a batch whose CRC is right but whose contents are garbage is
//! refused instead of being stored and stalling every consumer of the partition.
//!
//! ```text
//! record = length varint, then `length` bytes of:
//!          attributes int8 | timestampDelta varlong | offsetDelta varint
//!          keyLength varint (-1 = null) + key | valueLength varint (-1 = null) + value
//!          headerCount varint, each: keyLength varint (>= 0) + key,
//!                                    valueLength varint (-1 = null) + value
//! ```
//!
//! The batch must hold exactly `records count` records, fill its body exactly, and number them
//! with `offsetDelta` 0, 1, 2, … (gregor stores batches as they arrive, so it cannot renumber
//! them as Kafka does for compressed batches). Keys, values and headers are skipped, never
//! copied. A compressed batch is walked from a streaming decoder through a small buffer, so
//! validation never holds the decompressed records in memory (raw snappy, which has no streaming
//! form, is the one exception: its declared length is checked against the limit first), and it
//! stops once more than the decompression limit has come out of the decoder.
//!
//! Errors: records that decode but do not add up are `INVALID_RECORD` ([`BatchError::Invalid`]),
//! as Kafka's `InvalidRecordException`; a codec stream that does not decode is `CORRUPT_MESSAGE`
//! ([`BatchError::Malformed`]; Kafka lets that one escape as a plain `KafkaException`, which
//! clients see as UNKNOWN_SERVER_ERROR); a batch that inflates past the limit, a bound Kafka
//! does not have, is `MESSAGE_TOO_LARGE` ([`BatchError::DecompressedTooLarge`]).

use std::io::{self, Read};

use crate::batch::{BatchError, BatchView, Compression, TimestampRange, BATCH_HEADER_LEN};

/// Decompressed bytes a batch may hold per byte of `message.max.bytes` (see [`decompression_limit`]).
const DECOMPRESSION_RATIO_LIMIT: usize = 256;
/// Decompressed bytes any batch may hold, whatever `message.max.bytes` is (see [`decompression_limit`]).
const MIN_DECOMPRESSION_LIMIT: usize = 64 << 20;
/// Buffer between a decoder and the record walk: the size of the LZ4 blocks producers write
/// (64 KiB, librdkafka's and the Java client's), which LZ4 then decodes straight into it
/// instead of through a block buffer of its own; small enough to stay in L2.
const STREAM_BUFFER: usize = 64 << 10;
/// Magic that opens a snappy-java (xerial) framed stream, as the Java client writes it.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic, version and compatible-version fields of the xerial header.
const XERIAL_HEADER_LEN: usize = 16;

/// The most decompressed bytes a batch may produce when the batch itself may be `max_batch_bytes`.
///
/// Kafka sets no such bound. The walk holds none of what it decompresses, so the bound is not
/// about memory: it stops a few kilobytes of zstd or gzip (ratios beyond 1000:1) from keeping a
/// connection's thread decoding gigabytes. Clients size batches by their uncompressed bytes
/// (librdkafka's `batch.size`, the Java client's `max.request.size`), which a broker's
/// `message.max.bytes` mirrors, so 256 times that (and at least 64 MiB) is far above any batch a
/// client builds.
pub fn decompression_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes
        .saturating_mul(DECOMPRESSION_RATIO_LIMIT)
        .max(MIN_DECOMPRESSION_LIMIT)
}

/// Walks the records of `batch` (whose header already passed [`BatchView::validate`]),
/// decompressing them if needed, and fails at the first record that is not well formed.
/// `decompression_limit` bounds the decompressed bytes of a compressed batch, and
/// `max_record_bytes` each of its records' (the length a record declares for its body:
/// Kafka's `max.decompressed.message.bytes`, checked only where records are decompressed).
/// Returns the range of the records' timestamps (`baseTimestamp + timestampDelta`).
pub(crate) fn validate_records(
    batch: &BatchView<'_>,
    decompression_limit: usize,
    max_record_bytes: usize,
) -> Result<TimestampRange, BatchError> {
    let body = &batch.as_bytes()[BATCH_HEADER_LEN..];
    let count = batch.record_count();
    let base = batch.base_timestamp();
    match batch.compression()? {
        Compression::None => walk_slice(body, count, base),
        Compression::Gzip => {
            let decoder = flate2::bufread::MultiGzDecoder::new(body);
            walk_stream(decoder, decompression_limit, max_record_bytes, count, base).map(|(_, t)| t)
        }
        Compression::Snappy => {
            let decoder = SnappyJava::new(body, decompression_limit);
            walk_stream(decoder, decompression_limit, max_record_bytes, count, base).map(|(_, t)| t)
        }
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(body).map_err(|_| codec_error())?;
            let (decoder, timestamps) =
                walk_stream(decoder, decompression_limit, max_record_bytes, count, base)?;
            // The decoder reports a frame cut short as a plain end of stream; consumers'
            // decoders refuse it, so it must end with its end mark.
            match decoder.finish() {
                (_, Ok(())) => Ok(timestamps),
                (_, Err(_)) => Err(codec_error()),
            }
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|_| codec_error())?;
            walk_stream(decoder, decompression_limit, max_record_bytes, count, base).map(|(_, t)| t)
        }
    }
}

/// The records of a compressed `body` (codec `compression`), decompressed into memory: the
/// log cleaner rewrites batches from them. At most `limit` bytes come out (else
/// [`BatchError::DecompressedTooLarge`]). An uncompressed body is copied as it is.
pub(crate) fn decompress(
    body: &[u8],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    fn drain<R: Read>(reader: R, limit: usize) -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::new();
        let read = reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
                    BatchError::DecompressedTooLarge { limit }
                } else {
                    codec_error()
                }
            })?;
        if read > limit {
            return Err(BatchError::DecompressedTooLarge { limit });
        }
        Ok(out)
    }
    match compression {
        Compression::None => Ok(body.to_vec()),
        Compression::Gzip => drain(flate2::bufread::MultiGzDecoder::new(body), limit),
        Compression::Snappy => drain(SnappyJava::new(body, limit), limit),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(body).map_err(|_| codec_error())?;
            drain(decoder, limit)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|_| codec_error())?;
            drain(decoder, limit)
        }
    }
}

fn codec_error() -> BatchError {
    BatchError::Malformed("compressed records do not decompress")
}

/// Walks the records a decoder produces, each at most `max_record` bytes; returns the
/// decoder, drained to its end, and the records' timestamp range.
fn walk_stream<R: Read>(
    reader: R,
    limit: usize,
    max_record: usize,
    count: i32,
    base: i64,
) -> Result<(R, TimestampRange), BatchError> {
    let mut src = StreamSource {
        reader,
        buf: vec![0; STREAM_BUFFER].into_boxed_slice(),
        pos: 0,
        end: 0,
        produced: 0,
        limit,
        max_record,
    };
    let timestamps = walk(&mut src, count, base)?;
    Ok((src.reader, timestamps))
}

const PREMATURE_END: BatchError =
    BatchError::Invalid("incorrect declared batch size, premature end of records");

/// Where the records come from: the batch body itself, or a decoder over it.
trait Source {
    /// The next byte, `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips `n` bytes; `false` if the records end first.
    fn skip(&mut self, n: usize) -> Result<bool, BatchError>;
    /// True when no byte is left.
    fn at_end(&mut self) -> Result<bool, BatchError>;
    /// False when fewer than `n` bytes are certainly left (known only for uncompressed bodies).
    fn may_hold(&self, _n: usize) -> bool {
        true
    }
    /// The bytes read ahead and not consumed yet (may be empty).
    fn buffered(&self) -> &[u8] {
        &[]
    }
    /// Consumes `n` bytes of [`Source::buffered`].
    fn consume(&mut self, _n: usize) {}
    /// The largest record body allowed (decompressed records only).
    fn max_record(&self) -> usize {
        usize::MAX
    }
}

/// An uncompressed batch body, for the generic walk (see [`walk_slice`]).
struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let b = self.buf.get(self.pos).copied();
        self.pos += 1;
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, n: usize) -> Result<bool, BatchError> {
        if n > self.buf.len().saturating_sub(self.pos) {
            return Ok(false);
        }
        self.pos += n;
        Ok(true)
    }
    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.pos >= self.buf.len())
    }
    #[inline]
    fn may_hold(&self, n: usize) -> bool {
        n <= self.buf.len().saturating_sub(self.pos)
    }
}

/// A decoder's output seen through a small buffer, counting what it produced against the limit.
struct StreamSource<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Decompressed bytes taken from `reader` so far.
    produced: usize,
    limit: usize,
    /// The largest record body allowed (`max.decompressed.message.bytes`).
    max_record: usize,
}

impl<R: Read> StreamSource<R> {
    /// Refills the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, BatchError> {
        let n = loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) => {
                    return Err(BatchError::DecompressedTooLarge { limit: self.limit })
                }
                Err(_) => return Err(codec_error()),
            }
        };
        self.produced = self.produced.saturating_add(n);
        if self.produced > self.limit {
            return Err(BatchError::DecompressedTooLarge { limit: self.limit });
        }
        self.pos = 0;
        self.end = n;
        Ok(n > 0)
    }
}

impl<R: Read> Source for StreamSource<R> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        if self.pos == self.end && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }
    fn skip(&mut self, mut n: usize) -> Result<bool, BatchError> {
        loop {
            let here = n.min(self.end - self.pos);
            self.pos += here;
            n -= here;
            if n == 0 {
                return Ok(true);
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
    }
    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.pos == self.end && !self.fill()?)
    }
    #[inline]
    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }
    #[inline]
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
    fn max_record(&self) -> usize {
        self.max_record
    }
}

/// One record's bytes: reads fail once they would cross the record's declared length.
struct Body<'s, S> {
    src: &'s mut S,
    left: usize,
}

const PAST_RECORD: BatchError =
    BatchError::Invalid("invalid record structure: fields run past the record length");

impl<S: Source> Body<'_, S> {
    #[inline]
    fn byte(&mut self) -> Result<u8, BatchError> {
        if self.left == 0 {
            return Err(PAST_RECORD);
        }
        self.left -= 1;
        self.src.byte()?.ok_or(PREMATURE_END)
    }
    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), BatchError> {
        if n > self.left {
            return Err(PAST_RECORD);
        }
        self.left -= n;
        if self.src.skip(n)? {
            Ok(())
        } else {
            Err(PREMATURE_END)
        }
    }
    /// A zigzag varint of at most 5 bytes, as Kafka's `ByteUtils.readVarint`.
    #[inline]
    fn varint(&mut self) -> Result<i32, BatchError> {
        let mut raw = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            raw |= u32::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
            }
        }
        Err(BatchError::Invalid(
            "invalid record structure: varint is too long",
        ))
    }
    /// A zigzag varlong of at most 10 bytes, as Kafka's `ByteUtils.readVarlong`.
    #[inline]
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut raw = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(BatchError::Invalid(
            "invalid record structure: varlong is too long",
        ))
    }
    /// A length-prefixed byte field that may be null (-1), skipped.
    #[inline]
    fn nullable_bytes(&mut self) -> Result<(), BatchError> {
        match self.varint()? {
            -1 => Ok(()),
            n if n < 0 => Err(BatchError::Invalid(
                "invalid record structure: negative field length",
            )),
            n => self.skip(n as usize),
        }
    }
}

/// Reads a record's length varint, straight from the source (it precedes the body).
fn record_length<S: Source>(src: &mut S) -> Result<i32, BatchError> {
    let mut len = Body {
        src,
        left: usize::MAX,
    };
    len.varint()
}

/// Walks `count` records and checks that nothing follows them; the range of their timestamps
/// (`base` plus each record's delta).
fn walk<S: Source>(src: &mut S, count: i32, base: i64) -> Result<TimestampRange, BatchError> {
    if count < 0 {
        return Err(BatchError::Invalid("negative record count"));
    }
    let mut timestamps = TimestampRange::EMPTY;
    for expected_delta in 0..count {
        // Most records lie whole in the read-ahead buffer: check them there with the fast walk;
        // the rest, and any record it refuses (to say why), take the byte-by-byte path.
        if let Some((len, start)) = fast_varint(src.buffered(), 0) {
            if let Some(len) = usize::try_from(len).ok().filter(|&l| l <= src.max_record()) {
                let whole = src.buffered().get(start..start + len);
                if let Some(delta) = whole.and_then(|rec| fast_record(rec, expected_delta)) {
                    timestamps.add(base.wrapping_add(delta));
                    src.consume(start + len);
                    continue;
                }
            }
        }
        let len = record_length(src)?;
        if len < 0 {
            return Err(BatchError::Invalid("negative record length"));
        }
        let len = len as usize;
        if len > src.max_record() {
            return Err(BatchError::Invalid(
                "a record is larger than max.decompressed.message.bytes",
            ));
        }
        if !src.may_hold(len) {
            return Err(BatchError::Invalid(
                "invalid record size: the record is longer than the rest of the batch",
            ));
        }
        let mut body = Body { src, left: len };
        body.byte()?; // attributes: unused in v2
        let timestamp_delta = body.varlong()?;
        if body.varint()? != expected_delta {
            return Err(BatchError::Invalid(
                "record offsetDelta is not its position in the batch",
            ));
        }
        body.nullable_bytes()?; // key
        body.nullable_bytes()?; // value
        let headers = body.varint()?;
        if headers < 0 {
            return Err(BatchError::Invalid("negative record header count"));
        }
        for _ in 0..headers {
            match body.varint()? {
                n if n < 0 => return Err(BatchError::Invalid("negative record header key length")),
                n => body.skip(n as usize)?,
            }
            body.nullable_bytes()?; // header value
        }
        if body.left != 0 {
            return Err(BatchError::Invalid(
                "invalid record size: fields end before the record length",
            ));
        }
        timestamps.add(base.wrapping_add(timestamp_delta));
    }
    if !src.at_end()? {
        return Err(BatchError::Invalid(
            "incorrect declared batch size, records remain after the record count",
        ));
    }
    Ok(timestamps)
}

/// The walk over an uncompressed body. [`fast_walk`] decides whether the body is valid; only
/// when it is not does the generic [`walk`] go over it again to say why (and it stays the
/// reference: the two are tested to agree).
fn walk_slice(buf: &[u8], count: i32, base: i64) -> Result<TimestampRange, BatchError> {
    if let Some(timestamps) = fast_walk(buf, count, base) {
        return Ok(timestamps);
    }
    walk(&mut SliceSource { buf, pos: 0 }, count, base)
}

/// The same checks as [`walk`] over a slice, answering only yes or no: `Option`s in registers
/// instead of error values, and the common one- and two-byte varints a compare and a load
/// each. This is the produce path's hot loop (tens of thousands of records per request).
fn fast_walk(buf: &[u8], count: i32, base: i64) -> Option<TimestampRange> {
    if count < 0 {
        return None;
    }
    let mut timestamps = TimestampRange::EMPTY;
    let mut pos = 0;
    for expected_delta in 0..count {
        let (len, start) = fast_varint(buf, pos)?;
        let len = usize::try_from(len).ok()?;
        let rec = buf.get(start..start + len)?;
        timestamps.add(base.wrapping_add(fast_record(rec, expected_delta)?));
        pos = start + len;
    }
    (pos == buf.len()).then_some(timestamps)
}

/// Whether one record's body (the bytes its length covers) is well formed and numbered
/// `expected_delta`: its timestamp delta if it is.
#[inline]
fn fast_record(rec: &[u8], expected_delta: i32) -> Option<i64> {
    let (end, timestamp_delta) = fast_record_end(rec, expected_delta)?;
    (end == rec.len()).then_some(timestamp_delta)
}

#[inline]
fn fast_record_end(rec: &[u8], expected_delta: i32) -> Option<(usize, i64)> {
    // attributes (unused in v2), then timestampDelta
    let (timestamp_delta, p) = fast_varlong(rec, 1)?;
    let (delta, p) = fast_varint(rec, p)?;
    if delta != expected_delta {
        return None;
    }
    let p = fast_nullable_bytes(rec, p)?; // key
    let p = fast_nullable_bytes(rec, p)?; // value
    let (headers, mut p) = fast_varint(rec, p)?;
    if headers < 0 {
        return None;
    }
    for _ in 0..headers {
        let (key_len, q) = fast_varint(rec, p)?;
        p = q.checked_add(usize::try_from(key_len).ok()?)?;
        p = fast_nullable_bytes(rec, p)?; // header value
    }
    Some((p, timestamp_delta))
}

/// Skips a length-prefixed field that may be null (-1); the position after it.
#[inline]
fn fast_nullable_bytes(rec: &[u8], p: usize) -> Option<usize> {
    match fast_varint(rec, p)? {
        (-1, q) => Some(q),
        (n, q) => {
            let end = q.checked_add(usize::try_from(n).ok()?)?;
            (end <= rec.len()).then_some(end)
        }
    }
}

/// A zigzag varint at `p` (at most 5 bytes, as Kafka's `ByteUtils.readVarint`) and the position
/// after it.
#[inline]
fn fast_varint(rec: &[u8], p: usize) -> Option<(i32, usize)> {
    let zigzag = |raw: u32| ((raw >> 1) as i32) ^ -((raw & 1) as i32);
    let b0 = *rec.get(p)?;
    if b0 < 0x80 {
        return Some((zigzag(u32::from(b0)), p + 1));
    }
    let b1 = *rec.get(p + 1)?;
    if b1 < 0x80 {
        // Two bytes: record lengths and values of 64 bytes to 8 KiB.
        return Some((zigzag(u32::from(b0 & 0x7f) | u32::from(b1) << 7), p + 2));
    }
    let mut raw = 0u32;
    for (i, &b) in rec.get(p..)?.iter().take(5).enumerate() {
        raw |= u32::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b & 0x80 == 0 {
            return Some((zigzag(raw), p + i + 1));
        }
    }
    None
}

/// A zigzag varlong at `p` (at most 10 bytes, as Kafka's `ByteUtils.readVarlong`) and the
/// position after it.
#[inline]
fn fast_varlong(rec: &[u8], p: usize) -> Option<(i64, usize)> {
    let zigzag = |raw: u64| ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    let b0 = *rec.get(p)?;
    if b0 < 0x80 {
        return Some((zigzag(u64::from(b0)), p + 1));
    }
    let mut raw = 0u64;
    for (i, &b) in rec.get(p..)?.iter().take(10).enumerate() {
        raw |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b & 0x80 == 0 {
            return Some((zigzag(raw), p + i + 1));
        }
    }
    None
}

/// Marks the io::Error a decoder returns when a block would inflate past the limit.
#[derive(Debug)]
struct LimitExceeded;

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed size exceeds the limit")
    }
}

impl std::error::Error for LimitExceeded {}

/// Kafka's snappy codec (codec 2) as a reader. The Java client writes snappy-java's xerial
/// framing (a 16-byte header, then `[int32 length][raw snappy block]…`); librdkafka writes one
/// raw snappy block. Like snappy-java's `SnappyInputStream`, anything without the xerial magic is
/// read as raw snappy. Snappy blocks cannot be decoded in pieces, so one block at a time is held,
/// and its declared length is checked against the limit before anything is allocated.
struct SnappyJava<'a> {
    rest: &'a [u8],
    xerial: bool,
    block: Vec<u8>,
    pos: usize,
    /// Decompressed bytes this reader may still produce.
    budget: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyJava<'a> {
    fn new(body: &'a [u8], limit: usize) -> SnappyJava<'a> {
        let xerial = body.len() >= XERIAL_HEADER_LEN && body[..8] == XERIAL_MAGIC[..];
        SnappyJava {
            rest: if xerial {
                &body[XERIAL_HEADER_LEN..]
            } else {
                body
            },
            xerial,
            block: Vec::new(),
            pos: 0,
            budget: limit,
            decoder: snap::raw::Decoder::new(),
        }
    }

    /// Decodes the next block; `false` when none is left.
    fn next_block(&mut self) -> io::Result<bool> {
        let corrupt = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if self.xerial {
            let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
                return Err(corrupt("truncated xerial block length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if len > rest.len() {
                return Err(corrupt("xerial block longer than the batch"));
            }
            let (block, rest) = rest.split_at(len);
            self.rest = rest;
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let n = snap::raw::decompress_len(compressed).map_err(|_| corrupt("bad snappy length"))?;
        if n > self.budget {
            return Err(io::Error::other(LimitExceeded));
        }
        self.budget -= n;
        self.block.resize(n, 0);
        self.decoder
            .decompress(compressed, &mut self.block)
            .map_err(|_| corrupt("bad snappy block"))?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyJava<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::batch::{build_batch, validate_record_set};

    const LIMIT: usize = 1 << 20;

    fn check(set: &[u8]) -> Result<(), BatchError> {
        validate_record_set(set, LIMIT).map(|_| ())
    }

    /// Records as kafka-protocol's encoder (a real producer's encoding) writes them: keys, values,
    /// null values and headers.
    fn encoded(codec: Codec, n: usize) -> Vec<u8> {
        let recs: Vec<Record> = (0..n)
            .map(|i| {
                let mut headers = IndexMap::new();
                if i % 2 == 0 {
                    headers.insert(
                        StrBytes::from_static_str("h"),
                        Some(Bytes::from_static(b"v")),
                    );
                    headers.insert(StrBytes::from_static_str("null"), None);
                }
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: i as i32 - 1,
                    timestamp: 1_700_000_000_000 + i as i64,
                    key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                    value: (i % 5 != 4).then(|| Bytes::from(vec![b'x'; 50 + i])),
                    headers,
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    /// Encodes plain records: `(offsetDelta, key, value)` each, no headers.
    /// `(offsetDelta, key, value)` of one record.
    type RawRecord<'a> = (i32, Option<&'a [u8]>, Option<&'a [u8]>);
    /// A compressor for one codec (attribute value).
    type Compressor = fn(&[u8]) -> Vec<u8>;

    fn raw_records(recs: &[RawRecord<'_>]) -> Vec<u8> {
        let timed: Vec<_> = recs.iter().map(|&(d, k, v)| (d, 0, k, v)).collect();
        timed_records(&timed)
    }

    /// `(offsetDelta, timestampDelta, key, value)` of one record.
    type TimedRecord<'a> = (i32, i64, Option<&'a [u8]>, Option<&'a [u8]>);

    /// [`raw_records`] with a timestamp delta each.
    fn timed_records(recs: &[TimedRecord<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (delta, timestamp_delta, key, value) in recs {
            let mut r = vec![0u8]; // attributes
            put_varint(&mut r, *timestamp_delta);
            put_varint(&mut r, i64::from(*delta));
            for field in [key, value] {
                match field {
                    Some(f) => {
                        put_varint(&mut r, f.len() as i64);
                        r.extend_from_slice(f);
                    }
                    None => put_varint(&mut r, -1),
                }
            }
            put_varint(&mut r, 0); // headers
            put_varint(&mut out, r.len() as i64);
            out.extend_from_slice(&r);
        }
        out
    }

    fn n_records(n: i32) -> Vec<u8> {
        let recs: Vec<_> = (0..n)
            .map(|i| (i, Some(&b"k"[..]), Some(&b"value"[..])))
            .collect();
        raw_records(&recs)
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// A batch (valid header and CRC) around `body`, records already compressed with `codec`.
    fn batch_of(codec: i16, count: i32, body: &[u8]) -> Vec<u8> {
        build_batch(0, codec, count - 1, 1, 1, count, body)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    /// Kafka's `max.decompressed.message.bytes`: each decompressed record's body (the length
    /// it declares) is held to the bound, in every codec, the fast walk's and the byte walk's
    /// alike; several records under it pass whatever they add up to; uncompressed records are
    /// not held to it.
    #[test]
    fn decompressed_records_are_held_to_the_record_bound() {
        use crate::batch::validate_record_set_bounded;
        // One record with a value of `n` bytes: a body of n + 7 bytes (attributes, timestamp
        // and offset deltas, key -1, two-byte value length, header count): 993 is 1,000.
        let record = |n: usize| {
            let v = vec![b'x'; n];
            raw_records(&[(0, None, Some(&v[..]))])
        };
        let max = 1000;
        let bounded = |set: &[u8]| validate_record_set_bounded(set, LIMIT, max).map(|_| ());
        for (codec, compress) in [(1i16, gzip as Compressor), (2, xerial_snappy)] {
            assert_eq!(
                bounded(&batch_of(codec, 1, &compress(&record(993)))),
                Ok(())
            );
            assert_eq!(
                bounded(&batch_of(codec, 1, &compress(&record(994)))),
                Err(BatchError::Invalid(
                    "a record is larger than max.decompressed.message.bytes"
                )),
                "codec {codec}"
            );
            // A record past the bound after one within it, in the byte walk (a record split
            // across the read-ahead buffer's end) and the fast one.
            let mut two = record(10);
            let big = vec![b'y'; 70_000];
            two.extend(raw_records(&[(1, None, Some(&big[..]))]));
            assert!(bounded(&batch_of(codec, 2, &compress(&two))).is_err());
            assert_eq!(
                validate_record_set_bounded(&batch_of(codec, 2, &compress(&two)), LIMIT, 70_010)
                    .map(|_| ()),
                Ok(())
            );
            // Ten records of 500 bytes each: 5,060 bytes, each within the bound.
            let v = vec![b'z'; 500];
            let recs: Vec<RawRecord<'_>> = (0..10).map(|i| (i, None, Some(&v[..]))).collect();
            assert_eq!(
                bounded(&batch_of(codec, 10, &compress(&raw_records(&recs)))),
                Ok(())
            );
        }
        for codec in [Codec::Lz4, Codec::Zstd] {
            let set = encoded(codec, 40);
            assert!(
                validate_record_set_bounded(&set, LIMIT, 20).is_err(),
                "{codec:?}"
            );
            assert_eq!(
                validate_record_set_bounded(&set, LIMIT, 200).map(|_| ()),
                Ok(())
            );
        }
        // Uncompressed: not held to it.
        assert_eq!(bounded(&batch_of(0, 1, &record(5000))), Ok(()));
    }

    fn raw_snappy(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy")
    }

    fn xerial_snappy(data: &[u8]) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in data.chunks(100) {
            let block = raw_snappy(chunk);
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4::EncoderBuilder::new().build(Vec::new()).expect("lz4");
        e.write_all(data).expect("lz4");
        let (out, r) = e.finish();
        r.expect("lz4");
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).expect("zstd")
    }

    /// Each codec with a compressor, by attribute value.
    fn codecs() -> Vec<(i16, Compressor)> {
        vec![
            (1, gzip),
            (2, raw_snappy),
            (2, xerial_snappy),
            (3, lz4),
            (4, zstd),
        ]
    }

    /// Every record's timestamp counts (base plus its delta, which may be negative or take
    /// several bytes), compressed or not, and the fast and the generic walks agree; a record
    /// at -1 (no timestamp) is left out.
    #[test]
    fn the_walk_gives_the_records_timestamp_range() {
        let v = Some(&b"v"[..]);
        let body = timed_records(&[
            (0, 0, None, v),
            (1, -70_000, None, v),
            (2, 3, None, v),
            (3, 90_000_000, None, v),
        ]);
        let base = 1_700_000_000_000;
        let expected = TimestampRange {
            min: base - 70_000,
            max: base + 90_000_000,
        };
        assert_eq!(fast_walk(&body, 4, base), Some(expected));
        assert_eq!(
            walk(&mut SliceSource { buf: &body, pos: 0 }, 4, base),
            Ok(expected)
        );
        let plain = build_batch(0, 0, 3, base, base, 4, &body);
        let summary = *validate_record_set(&plain, LIMIT).expect("valid").summary();
        assert_eq!(summary.record_timestamps, expected);
        for (codec, compress) in codecs() {
            let set = build_batch(0, codec, 3, base, base, 4, &compress(&body));
            let summary = *validate_record_set(&set, LIMIT).expect("valid").summary();
            assert_eq!(summary.record_timestamps, expected, "codec {codec}");
        }
        // Base -1 and delta 0: no timestamp; the other record still counts.
        let body = timed_records(&[(0, 0, None, v), (1, 5, None, v)]);
        assert_eq!(
            fast_walk(&body, 2, -1),
            Some(TimestampRange { min: 4, max: 4 })
        );
        let body = timed_records(&[(0, 0, None, v)]);
        assert!(fast_walk(&body, 1, -1).expect("valid").is_empty());
    }

    #[test]
    fn batches_from_real_encoders_pass() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            for n in [1, 2, 7, 500] {
                let set = encoded(codec, n);
                check(&set).unwrap_or_else(|e| panic!("{codec:?} x{n}: {e}"));
            }
        }
    }

    #[test]
    fn every_codec_and_framing_passes() {
        let records = n_records(300);
        check(&batch_of(0, 300, &records)).expect("none");
        for (codec, compress) in codecs() {
            let set = batch_of(codec, 300, &compress(&records));
            check(&set).unwrap_or_else(|e| panic!("codec {codec}: {e}"));
        }
    }

    #[test]
    fn garbage_compressed_bytes_are_corrupt() {
        let garbage: Vec<u8> = (0..400u32).map(|i| (i * 7919 % 251) as u8).collect();
        for codec in 1..=4 {
            let err = check(&batch_of(codec, 1, &garbage)).expect_err("garbage");
            assert_eq!(
                err.error_code(),
                crate::error::ErrorCode::CORRUPT_MESSAGE,
                "codec {codec}: {err}"
            );
        }
    }

    #[test]
    fn compressed_garbage_records_are_invalid() {
        let garbage: Vec<u8> = (0..400u32).map(|i| (i * 7919 % 251) as u8).collect();
        for (codec, compress) in codecs() {
            let err = check(&batch_of(codec, 3, &compress(&garbage))).expect_err("garbage");
            assert!(
                matches!(err, BatchError::Invalid(_)),
                "codec {codec}: {err}"
            );
            assert_eq!(err.error_code(), crate::error::ErrorCode::INVALID_RECORD);
        }
    }

    /// Every poison case, uncompressed and in every codec.
    #[test]
    fn poison_records_are_invalid() {
        let mut huge_length = Vec::new();
        put_varint(&mut huge_length, 1_000_000);
        huge_length.extend_from_slice(&n_records(1)[1..]);
        // attributes, timestampDelta, then an offsetDelta of 5 bytes whose last has the high bit
        let rec = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 1, 1, 0];
        let mut varint_too_long = vec![rec.len() as u8 * 2];
        varint_too_long.extend_from_slice(&rec);
        let cases: Vec<(&str, i32, Vec<u8>)> = vec![
            ("record length of 10^6", 1, huge_length),
            ("count larger than the records", 3, n_records(2)),
            ("count smaller than the records", 2, n_records(3)),
            (
                "offsetDelta not sequential",
                2,
                raw_records(&[(0, None, Some(b"a")), (5, None, Some(b"b"))]),
            ),
            (
                "key length below -1",
                1,
                raw_records(&[(0, None, Some(b"a"))])
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if i == 4 { 3 } else { *b }) // key length varint -1 -> -2
                    .collect(),
            ),
            (
                "value longer than the record",
                1,
                raw_records(&[(0, None, Some(b"abc"))])
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if i == 5 { 40 } else { *b }) // value length 3 -> 20
                    .collect(),
            ),
            ("varint too long", 1, varint_too_long),
            ("trailing bytes", 1, [n_records(1), vec![0]].concat()),
            ("empty body", 1, Vec::new()),
        ];
        for (name, count, records) in &cases {
            let err = check(&batch_of(0, *count, records)).expect_err(name);
            assert!(matches!(err, BatchError::Invalid(_)), "{name}: {err}");
            for (codec, compress) in codecs() {
                let err = check(&batch_of(codec, *count, &compress(records)))
                    .expect_err(&format!("{name}, codec {codec}"));
                assert!(
                    matches!(err, BatchError::Invalid(_)),
                    "{name}, codec {codec}: {err}"
                );
            }
        }
    }

    #[test]
    fn negative_header_count_and_key_length_are_invalid() {
        // attributes, ts delta 0, offset delta 0, key -1, value -1, header count -1
        let rec = [0u8, 0, 0, 1, 1, 1];
        let mut body = vec![rec.len() as u8 * 2];
        body.extend_from_slice(&rec);
        assert!(matches!(
            check(&batch_of(0, 1, &body)),
            Err(BatchError::Invalid(_))
        ));
        // one header whose key length is -1
        let rec = [0u8, 0, 0, 1, 1, 2, 1, 1];
        let mut body = vec![rec.len() as u8 * 2];
        body.extend_from_slice(&rec);
        assert!(matches!(
            check(&batch_of(0, 1, &body)),
            Err(BatchError::Invalid(_))
        ));
        // the same header with a key of length 0 and a null value is fine
        let rec = [0u8, 0, 0, 1, 1, 2, 0, 1];
        let mut body = vec![rec.len() as u8 * 2];
        body.extend_from_slice(&rec);
        check(&batch_of(0, 1, &body)).expect("valid header");
    }

    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        // One record whose value is 80 MiB of zeros: a few hundred KB compressed at most.
        let value_len = 80usize << 20;
        let mut head = vec![0u8, 0, 0, 1];
        put_varint(&mut head, value_len as i64);
        let tail = [0u8];
        let mut record = Vec::new();
        put_varint(&mut record, (head.len() + value_len + tail.len()) as i64);
        record.extend_from_slice(&head);
        record.resize(record.len() + value_len, 0);
        record.extend_from_slice(&tail);
        for (codec, compress) in [
            (1, gzip as Compressor),
            (3, lz4),
            (4, zstd),
            (2, raw_snappy),
            (2, xerial_snappy),
        ] {
            let set = batch_of(codec, 1, &compress(&record));
            assert_eq!(
                validate_record_set(&set, usize::MAX >> 10).map(|_| ()),
                Ok(()),
                "codec {codec} within a large limit"
            );
            let view = BatchView::parse(&set).expect("parse");
            assert!(
                matches!(
                    view.validate_records(decompression_limit(0)),
                    Err(BatchError::DecompressedTooLarge { .. })
                ),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn raw_snappy_length_is_checked_before_allocating() {
        // A raw snappy stream that declares 2^32-1 bytes and holds 3.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x08, b'a', b'b', b'c'];
        assert!(matches!(
            check(&batch_of(2, 1, &body)),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn truncated_compressed_streams_are_refused() {
        let records = n_records(50);
        for (codec, compress) in codecs() {
            let full = compress(&records);
            for cut in [1, full.len() / 2, full.len() - 1] {
                let err = check(&batch_of(codec, 50, &full[..cut]));
                assert!(err.is_err(), "codec {codec} cut at {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn walking_arbitrary_bodies_never_panics(
            codec in 0i16..5,
            count in -2i32..40,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let _ = check(&batch_of(codec, count.max(1), &body));
        }

        /// The fast walk over uncompressed bodies agrees with the generic walk, on records
        /// that are valid, damaged in one byte, or arbitrary.
        #[test]
        fn slice_walk_agrees_with_the_generic_walk(
            n in 1i32..20,
            flip in proptest::option::of((0usize..400, any::<u8>())),
            arbitrary in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            count_offset in -1i32..2,
        ) {
            let mut body = arbitrary.unwrap_or_else(|| n_records(n));
            if let Some((at, byte)) = flip {
                if !body.is_empty() {
                    let at = at % body.len();
                    body[at] = byte;
                }
            }
            let count = n + count_offset;
            let fast = fast_walk(&body, count, 1_000);
            let generic = walk(&mut SliceSource { buf: &body, pos: 0 }, count, 1_000);
            prop_assert_eq!(fast, generic.as_ref().ok().copied(), "{:?}", generic);
        }

        #[test]
        fn walking_compressed_arbitrary_records_never_panics(
            which in 0usize..5,
            count in 1i32..40,
            records in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let (codec, compress) = codecs()[which];
            let _ = check(&batch_of(codec, count, &compress(&records)));
        }
    }
}
