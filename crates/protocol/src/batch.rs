//! RecordBatch v2 (magic 2): a view over the fixed 61-byte header, validation and offset assignment.
//!
//! ```text
//! off len field                       off len field
//!   0  8  baseOffset                   27  8  baseTimestamp
//!   8  4  batchLength (bytes after it) 35  8  maxTimestamp
//!  12  4  partitionLeaderEpoch         43  8  producerId
//!  16  1  magic (= 2)                  51  2  producerEpoch
//!  17  4  crc (CRC-32C of 21..end)     53  4  baseSequence
//!  21  2  attributes                   57  4  records count
//!  23  4  lastOffsetDelta              61  …  records (maybe compressed)
//! ```
//!
//! On the produce path the broker checks the header and the CRC, walks the records without
//! copying them (decompressing compressed batches as a stream; see [`crate::record_walk`]), in
//! one pass that returns [`ValidatedRecords`] (the set plus each batch's position); the log then
//! rewrites `baseOffset` and `partitionLeaderEpoch` (both outside the CRC) in a copy of each
//! header, found from those positions. Only `LogAppendTime` topics need the CRC recomputed, because `maxTimestamp` is inside
//! it. Reads of the log (recovery, fetch) check headers and CRCs only.

/// Bytes in front of `batchLength`'s payload: `baseOffset` + `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_LEN: usize = 61;
/// The only record format gregor stores or serves.
pub const MAGIC_V2: i8 = 2;
/// Start of the CRC-covered region.
pub(crate) const CRC_START: usize = 21;

/// Attributes bits 0-2: the compression codec.
pub(crate) const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attributes bit 4: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attributes bit 5: a control batch (a transaction marker, see [`crate::control`]).
pub const ATTR_CONTROL: i16 = 0x20;

/// Why a batch (or the record set it sits in) is rejected. Each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The bytes do not form whole batches (truncated, bad length field, empty set).
    #[error("malformed record batch: {0}")]
    Malformed(&'static str),
    /// The batch is not magic v2.
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the batch contents.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC written by the producer.
        stored: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// A batch is larger than `message.max.bytes`.
    #[error("record batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the batch including its 12-byte log overhead.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The header or the records inside the batch do not add up: record count, offset deltas,
    /// lengths, unknown compression codec (Kafka's `InvalidRecordException`).
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// A compressed batch inflates past [`crate::record_walk::decompression_limit`].
    #[error("record batch decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// Limit on the decompressed bytes of one batch.
        limit: usize,
    },
}

impl BatchError {
    /// The Kafka error code a Produce response carries for this problem.
    pub fn error_code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            BatchError::Malformed(_) | BatchError::CrcMismatch { .. } => ErrorCode::CORRUPT_MESSAGE,
            BatchError::UnsupportedMagic(_) => ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            BatchError::TooLarge { .. } | BatchError::DecompressedTooLarge { .. } => {
                ErrorCode::MESSAGE_TOO_LARGE
            }
            BatchError::Invalid(_) => ErrorCode::INVALID_RECORD,
        }
    }
}

/// Compression codec named by a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Records are stored plain.
    None,
    /// gzip (codec 1).
    Gzip,
    /// snappy, xerial framing (codec 2).
    Snappy,
    /// lz4 frame (codec 3).
    Lz4,
    /// zstd (codec 4).
    Zstd,
}

/// A read-only view over one batch: `bytes` starts at `baseOffset` and holds the whole batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl<'a> BatchView<'a> {
    /// Views the batch at the front of `buf`, checking only that its header and declared length fit.
    /// Magic and CRC are left to [`BatchView::validate`].
    pub fn parse(buf: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Malformed("shorter than a batch header"));
        }
        let len = be_i32(buf, 8);
        if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Malformed(
                "batch length smaller than its header",
            ));
        }
        let total = LOG_OVERHEAD + len as usize;
        if buf.len() < total {
            return Err(BatchError::Malformed(
                "batch extends past the end of the record set",
            ));
        }
        Ok(BatchView {
            bytes: &buf[..total],
        })
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Total size on disk and on the wire (12-byte log overhead included).
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    /// First offset in the batch.
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    /// Last offset in the batch.
    ///
    /// Saturates: `baseOffset` is outside the CRC, so a damaged segment or a hostile peer can put
    /// any value there, and recovery and clients compute this before they judge the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// Offset the next batch will start at (saturating, as [`BatchView::last_offset`]).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    /// `partitionLeaderEpoch` field.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, 12)
    }
    /// `magic` byte.
    pub fn magic(&self) -> i8 {
        self.bytes[16] as i8
    }
    /// Stored CRC-32C.
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, 17) as u32
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, 21)
    }
    /// `lastOffsetDelta` field.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    /// `baseTimestamp` field.
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    /// `maxTimestamp` field.
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    /// `producerId` field (-1 when not idempotent).
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    /// `producerEpoch` field.
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    /// `baseSequence` field.
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    /// Number of records in the batch.
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    /// True when the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    /// True when timestamps are `LogAppendTime`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE != 0
    }
    /// Compression codec, or an error for codes 5–7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes() & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(BatchError::Invalid("unknown compression codec")),
        }
    }
    /// CRC-32C of the covered region, as it should be stored.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_START..])
    }

    /// Check of one batch's header and CRC: magic, CRC, codec, counts. The records themselves
    /// are left to [`BatchView::validate_records`].
    pub fn validate(&self) -> Result<(), BatchError> {
        if self.magic() != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(self.magic()));
        }
        let computed = self.computed_crc();
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch {
                stored: self.crc(),
                computed,
            });
        }
        self.compression()?;
        if self.last_offset_delta() < 0 {
            return Err(BatchError::Invalid("negative lastOffsetDelta"));
        }
        let count = self.record_count();
        if count <= 0 {
            return Err(BatchError::Invalid(
                "a produced batch must hold at least one record",
            ));
        }
        if i64::from(count) != i64::from(self.last_offset_delta()) + 1 {
            return Err(BatchError::Invalid(
                "record count does not match lastOffsetDelta",
            ));
        }
        Ok(())
    }

    /// Walks the records inside the batch (decompressing it as a stream if it is compressed) and
    /// checks that they are well formed and fill the batch exactly: `records count` records,
    /// `offsetDelta`s 0, 1, 2, …, every length within the record. At most `decompression_limit`
    /// decompressed bytes are read. Call after [`BatchView::validate`].
    pub fn validate_records(
        &self,
        decompression_limit: usize,
    ) -> Result<TimestampRange, BatchError> {
        crate::record_walk::validate_records(self, decompression_limit, usize::MAX)
    }
}

/// Iterates the batches of a record set, stopping with an error at the first malformed one.
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches { rest: buf }
}

/// Iterator returned by [`batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchView<'a>, BatchError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match BatchView::parse(self.rest) {
            Ok(b) => {
                self.rest = &self.rest[b.size()..];
                Some(Ok(b))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record without a timestamp.
pub const NO_TIMESTAMP: i64 = -1;

/// The smallest and the largest timestamp of some records, those without one
/// ([`NO_TIMESTAMP`]) left out: [`TimestampRange::EMPTY`] (`min > max`) when none has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampRange {
    /// The smallest timestamp.
    pub min: i64,
    /// The largest timestamp.
    pub max: i64,
}

impl TimestampRange {
    /// No timestamp at all.
    pub const EMPTY: TimestampRange = TimestampRange {
        min: i64::MAX,
        max: i64::MIN,
    };

    /// Takes `timestamp` in, unless it is [`NO_TIMESTAMP`].
    #[inline]
    pub fn add(&mut self, timestamp: i64) {
        if timestamp != NO_TIMESTAMP {
            self.min = self.min.min(timestamp);
            self.max = self.max.max(timestamp);
        }
    }

    /// Both ranges in one.
    pub fn merge(self, other: TimestampRange) -> TimestampRange {
        TimestampRange {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Whether no timestamp was taken in.
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }
}

impl Default for TimestampRange {
    fn default() -> Self {
        TimestampRange::EMPTY
    }
}

/// What a validated record set holds; what the log needs to append it and index it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordSetSummary {
    /// Number of batches.
    pub batch_count: u32,
    /// Offsets the set will take (sum of `lastOffsetDelta + 1`).
    pub offset_count: i64,
    /// Largest `maxTimestamp` in the set.
    pub max_timestamp: i64,
    /// Offset delta (from the first offset of the set) of the batch holding `max_timestamp`.
    pub max_timestamp_offset_delta: i64,
    /// Size of the largest batch.
    pub largest_batch: usize,
    /// The records' own timestamps (`baseTimestamp + timestampDelta`), as the record walk
    /// read them: what Kafka's `message.timestamp.before.max.ms` and `after.max.ms` check.
    pub record_timestamps: TimestampRange,
}

/// Where one batch of a validated record set sits, as validation found it: enough to rewrite
/// its header without parsing the set again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// Position of the batch's first byte (`baseOffset`) in the record set.
    pub position: usize,
    /// Size of the batch, 12-byte log overhead included.
    pub size: usize,
    /// The batch's `lastOffsetDelta` (its record count minus one, as validation checked).
    pub last_offset_delta: i32,
    /// The largest of its records' timestamps, [`NO_TIMESTAMP`] when none has one: the
    /// `maxTimestamp` its header gets if it says otherwise (Kafka's `LogValidator` sets it).
    pub record_max_timestamp: i64,
}

/// A produced record set that passed [`validate_record_set`]: the bytes, borrowed from the
/// request, with what validation learnt about them. Only [`validate_record_set`] makes one, so
/// the log cannot be handed a set that was not validated, and the append rewrites the headers
/// from [`BatchSpan`]s instead of walking the set a second time.
#[derive(Debug, Clone)]
pub struct ValidatedRecords<'a> {
    bytes: &'a [u8],
    summary: RecordSetSummary,
    batches: Vec<BatchSpan>,
}

impl<'a> ValidatedRecords<'a> {
    /// The record set, as the producer sent it.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Counts and timestamps of the set.
    pub fn summary(&self) -> &RecordSetSummary {
        &self.summary
    }

    /// The batches, in order.
    pub fn batches(&self) -> &[BatchSpan] {
        &self.batches
    }

    /// Size of the set in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: validation refuses an empty set. (For clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Validates every batch of a produced record set: whole batches only, magic 2, CRC-32C, counts,
/// each batch at most `max_batch_bytes` (Kafka's `message.max.bytes`), and the records inside each
/// batch well formed ([`BatchView::validate_records`], decompressing at most
/// [`crate::record_walk::decompression_limit`]`(max_batch_bytes)` bytes per batch).
///
/// This is the one pass over the set: the [`ValidatedRecords`] it returns carries each batch's
/// position, so [`assign_offsets_vectored`] does not parse the set again.
pub fn validate_record_set(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<ValidatedRecords<'_>, BatchError> {
    validate_record_set_bounded(buf, max_batch_bytes, usize::MAX)
}

/// [`validate_record_set`] with each record of a compressed batch at most `max_record_bytes`
/// decompressed (Kafka's `max.decompressed.message.bytes`: the length a record declares for
/// its body; INVALID_RECORD past it). Uncompressed records are not held to it, as in Kafka.
pub fn validate_record_set_bounded(
    buf: &[u8],
    max_batch_bytes: usize,
    max_record_bytes: usize,
) -> Result<ValidatedRecords<'_>, BatchError> {
    let decompression_limit = crate::record_walk::decompression_limit(max_batch_bytes);
    let mut s = RecordSetSummary {
        max_timestamp: -1,
        ..RecordSetSummary::default()
    };
    let mut spans = Vec::with_capacity(1);
    let mut position = 0;
    for b in batches(buf) {
        let b = b?;
        if b.size() > max_batch_bytes {
            return Err(BatchError::TooLarge {
                size: b.size(),
                limit: max_batch_bytes,
            });
        }
        b.validate()?;
        // Kafka's LogValidator checks for batches a client sent: control batches (transaction
        // markers) come only from a transaction coordinator, and an idempotent batch must say
        // where its sequence starts.
        if b.is_control() {
            return Err(BatchError::Invalid("clients may not write control batches"));
        }
        if b.is_transactional() && b.producer_id() < 0 {
            return Err(BatchError::Invalid(
                "a transactional batch needs a producer id",
            ));
        }
        if b.producer_id() >= 0 && b.base_sequence() < 0 {
            return Err(BatchError::Invalid(
                "a batch with a producer id needs a base sequence",
            ));
        }
        let timestamps =
            crate::record_walk::validate_records(&b, decompression_limit, max_record_bytes)?;
        s.record_timestamps = s.record_timestamps.merge(timestamps);
        // The records' own largest timestamp, not what the header claims.
        let record_max_timestamp = if timestamps.is_empty() {
            NO_TIMESTAMP
        } else {
            timestamps.max
        };
        if record_max_timestamp > s.max_timestamp {
            s.max_timestamp = record_max_timestamp;
            s.max_timestamp_offset_delta = s.offset_count + i64::from(b.last_offset_delta());
        }
        s.batch_count += 1;
        s.offset_count += i64::from(b.last_offset_delta()) + 1;
        s.largest_batch = s.largest_batch.max(b.size());
        spans.push(BatchSpan {
            position,
            size: b.size(),
            last_offset_delta: b.last_offset_delta(),
            record_max_timestamp,
        });
        position += b.size();
    }
    if s.batch_count == 0 {
        return Err(BatchError::Malformed("empty record set"));
    }
    Ok(ValidatedRecords {
        bytes: buf,
        summary: s,
        batches: spans,
    })
}

/// One batch of a record set as it will be written: a copy of its 61-byte header (rewritten
/// for a produced set) and the untouched rest of the batch, borrowed from the request. Writing
/// `header` then `body` (one vectored write) stores the batch without copying its records.
#[derive(Debug, Clone)]
pub struct AssignedBatch<'a> {
    /// The header with `baseOffset`, `partitionLeaderEpoch` (and for LogAppendTime the
    /// attributes, `maxTimestamp` and CRC) rewritten.
    pub header: [u8; BATCH_HEADER_LEN],
    /// Everything after the header: the records, as the producer sent them.
    pub body: &'a [u8],
}

impl<'a> AssignedBatch<'a> {
    /// A stored or replicated batch written as it is (a follower's append): the header is
    /// copied, not changed.
    pub fn unchanged(batch: BatchView<'a>) -> AssignedBatch<'a> {
        let bytes = batch.as_bytes();
        let mut header = [0u8; BATCH_HEADER_LEN];
        header.copy_from_slice(&bytes[..BATCH_HEADER_LEN]);
        AssignedBatch {
            header,
            body: &bytes[BATCH_HEADER_LEN..],
        }
    }

    /// Bytes the batch takes in the log.
    pub fn size(&self) -> usize {
        BATCH_HEADER_LEN + self.body.len()
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        be_i64(&self.header, 0).saturating_add(i64::from(be_i32(&self.header, 23)))
    }

    /// The batch's `maxTimestamp` (after any LogAppendTime rewrite).
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.header, 35)
    }
}

/// Rewrites one header: offsets, leader epoch, and for `log_append_time = Some(now)` the
/// timestamp type, `maxTimestamp` and the CRC (chained over the untouched body). Otherwise a
/// `maxTimestamp` other than `record_max` (the records' largest timestamp, when known) is set
/// to it, with the CRC, as Kafka's `LogValidator` does: a header claiming a far-off time
/// cannot skew the time index or hold a segment past its retention.
fn rewrite_header(
    header: &mut [u8; BATCH_HEADER_LEN],
    body: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
    record_max: Option<i64>,
) {
    header[0..8].copy_from_slice(&base_offset.to_be_bytes());
    header[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    let new_max = match (log_append_time, record_max) {
        (Some(now), _) => {
            let attrs = be_i16(header, 21) | ATTR_TIMESTAMP_TYPE;
            header[21..23].copy_from_slice(&attrs.to_be_bytes());
            Some(now)
        }
        (None, Some(max)) if be_i16(header, 21) & ATTR_TIMESTAMP_TYPE == 0 => {
            (be_i64(header, 35) != max).then_some(max)
        }
        (None, _) => None,
    };
    if let Some(max) = new_max {
        header[35..43].copy_from_slice(&max.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[CRC_START..]), body);
        header[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Assigns offsets to a validated record set without copying it: each batch's `baseOffset`
/// becomes the next free offset and `partitionLeaderEpoch` the leader's epoch, in a copy of its
/// header. With `log_append_time = Some(now)` the batch is switched to LogAppendTime,
/// `maxTimestamp` set and the CRC recomputed (Kafka's `message.timestamp.type=LogAppendTime`);
/// the CRC of the body is chained onto the new header's, so the body is read but never written.
///
/// The batches are found from the spans validation recorded, not by parsing the set again.
/// Returns the batches and the offset after the last record.
pub fn assign_offsets_vectored<'a>(
    set: &ValidatedRecords<'a>,
    first_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> (Vec<AssignedBatch<'a>>, i64) {
    let bytes = set.bytes;
    let mut next = first_offset;
    let mut out = Vec::with_capacity(set.batches.len());
    for span in &set.batches {
        let batch = &bytes[span.position..span.position + span.size];
        let mut header = [0u8; BATCH_HEADER_LEN];
        header.copy_from_slice(&batch[..BATCH_HEADER_LEN]);
        let body = &batch[BATCH_HEADER_LEN..];
        rewrite_header(
            &mut header,
            body,
            next,
            leader_epoch,
            log_append_time,
            Some(span.record_max_timestamp),
        );
        next += i64::from(span.last_offset_delta) + 1;
        out.push(AssignedBatch { header, body });
    }
    (out, next)
}

/// Offset assignment in place, for callers that own the bytes (tools, tests): the same header
/// rewrite as [`assign_offsets_vectored`], walking the set's headers.
///
/// Returns the offset after the last record. The set should have passed [`validate_record_set`];
/// a malformed one is refused before anything is written.
pub fn assign_offsets(
    buf: &mut [u8],
    first_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> Result<i64, BatchError> {
    let mut spans = Vec::new();
    let mut position = 0;
    for b in batches(buf) {
        let b = b?;
        spans.push((position, b.size(), b.last_offset_delta()));
        position += b.size();
    }
    let mut next = first_offset;
    for (position, size, delta) in spans {
        let (head, body) = buf[position..position + size].split_at_mut(BATCH_HEADER_LEN);
        let mut header = [0u8; BATCH_HEADER_LEN];
        header.copy_from_slice(head);
        rewrite_header(&mut header, body, next, leader_epoch, log_append_time, None);
        head.copy_from_slice(&header);
        next += i64::from(delta) + 1;
    }
    Ok(next)
}

/// Builds a batch from raw record bytes. For tests and tools that need valid batches without a
/// full encoder: `records` must already be `count` encoded v2 records.
pub fn build_batch(
    base_offset: i64,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    let len = (BATCH_HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Stamps a batch made by [`build_batch`] or [`encode_simple_batch`] as a producer's: its
/// producer id, epoch and base sequence, and the transactional attribute (bit 4) when
/// `transactional`; the CRC is recomputed. A group coordinator writes offsets sent in a
/// transaction this way (Kafka's coordinator uses base sequence 0). Does nothing to a slice
/// shorter than a batch header.
pub fn set_producer(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let mut attributes = be_i16(batch, 21);
    if transactional {
        attributes |= ATTR_TRANSACTIONAL;
    } else {
        attributes &= !ATTR_TRANSACTIONAL;
    }
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Gives a re-encoded batch the end of `original`'s span: its last offset delta (a batch may
/// end in offsets its records do not use), its max timestamp and its timestamp type, then
/// recomputes the CRC. Does nothing to a slice shorter than a batch header.
pub fn keep_span(batch: &mut [u8], original: &BatchView<'_>) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let mut attributes = be_i16(batch, 21);
    if original.is_log_append_time() {
        attributes |= ATTR_TIMESTAMP_TYPE;
    } else {
        attributes &= !ATTR_TIMESTAMP_TYPE;
    }
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[23..27].copy_from_slice(&original.last_offset_delta().to_be_bytes());
    batch[35..43].copy_from_slice(&original.max_timestamp().to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A record as `(key, value)`, either may be null.
pub type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Encodes simple uncompressed records (value only, or key and value; no headers) into one batch.
/// Used by tests, benchmarks and the CLI producer.
pub fn encode_simple_batch(base_timestamp: i64, records: &[SimpleRecord<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut r = Vec::new();
        r.push(0u8); // attributes
        put_varlong(&mut r, 0); // timestamp delta
        put_varlong(&mut r, i as i64); // offset delta
        match key {
            Some(k) => {
                put_varlong(&mut r, k.len() as i64);
                r.extend_from_slice(k);
            }
            None => put_varlong(&mut r, -1),
        }
        match value {
            Some(v) => {
                put_varlong(&mut r, v.len() as i64);
                r.extend_from_slice(v);
            }
            None => put_varlong(&mut r, -1),
        }
        put_varlong(&mut r, 0); // headers
        put_varlong(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let n = records.len() as i32;
    build_batch(0, 0, n - 1, base_timestamp, base_timestamp, n, &body)
}

pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(n: usize) -> Vec<u8> {
        let recs: Vec<SimpleRecord<'_>> = (0..n)
            .map(|_| (Some(&b"k"[..]), Some(&b"value"[..])))
            .collect();
        encode_simple_batch(1_700_000_000_000, &recs)
    }

    #[test]
    fn valid_set_is_summarised() {
        let mut set = batch(3);
        set.extend_from_slice(&batch(2));
        let v = validate_record_set(&set, 1 << 20).expect("valid");
        assert_eq!(v.summary().batch_count, 2);
        assert_eq!(v.summary().offset_count, 5);
        let first = batch(3).len();
        assert_eq!(
            v.batches(),
            &[
                BatchSpan {
                    position: 0,
                    size: first,
                    last_offset_delta: 2,
                    record_max_timestamp: 1_700_000_000_000,
                },
                BatchSpan {
                    position: first,
                    size: set.len() - first,
                    last_offset_delta: 1,
                    record_max_timestamp: 1_700_000_000_000,
                }
            ]
        );
        assert_eq!(v.bytes(), &set[..]);
    }

    #[test]
    fn offsets_are_assigned_without_touching_the_crc() {
        let mut set = batch(3);
        set.extend_from_slice(&batch(2));
        let next = assign_offsets(&mut set, 100, 7, None).expect("assign");
        assert_eq!(next, 105);
        let bs: Vec<_> = batches(&set).collect::<Result<_, _>>().expect("parse");
        assert_eq!(bs[0].base_offset(), 100);
        assert_eq!(bs[1].base_offset(), 103);
        assert_eq!(bs[1].partition_leader_epoch(), 7);
        validate_record_set(&set, 1 << 20).expect("still valid");
    }

    /// A header whose `maxTimestamp` is not its records' largest timestamp gets theirs, CRC
    /// and all (Kafka's LogValidator); a true one is left as it is, CRC untouched.
    #[test]
    fn a_false_max_timestamp_is_replaced_by_the_records() {
        let honest = batch(2);
        let mut lying = honest.clone();
        lying[35..43].copy_from_slice(&i64::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&lying[CRC_START..]);
        lying[17..21].copy_from_slice(&crc.to_be_bytes());
        let v = validate_record_set(&lying, 1 << 20).expect("valid as sent");
        assert_eq!(v.summary().max_timestamp, 1_700_000_000_000);
        let (assigned, _) = assign_offsets_vectored(&v, 10, 0, None);
        assert_eq!(assigned[0].max_timestamp(), 1_700_000_000_000);
        let mut stored = assigned[0].header.to_vec();
        stored.extend_from_slice(assigned[0].body);
        let back = validate_record_set(&stored, 1 << 20).expect("the CRC holds");
        assert_eq!(back.summary().max_timestamp, 1_700_000_000_000);
        let v = validate_record_set(&honest, 1 << 20).expect("valid");
        let (assigned, _) = assign_offsets_vectored(&v, 10, 0, None);
        assert_eq!(assigned[0].header[17..21], honest[17..21], "CRC untouched");
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut set = batch(2);
        assign_offsets(&mut set, 0, 0, Some(42)).expect("assign");
        let b = BatchView::parse(&set).expect("parse");
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), 42);
        b.validate().expect("crc recomputed");
    }

    #[test]
    fn vectored_assignment_leaves_the_set_untouched_and_writes_valid_batches() {
        let mut set = batch(3);
        set.extend_from_slice(&batch(2));
        let original = set.clone();
        for append_time in [None, Some(1_234)] {
            let validated = validate_record_set(&set, 1 << 20).expect("valid");
            let (assigned, next) = assign_offsets_vectored(&validated, 50, 2, append_time);
            assert_eq!(next, 55);
            assert_eq!(set, original);
            let written: Vec<u8> = assigned
                .iter()
                .flat_map(|a| a.header.iter().chain(a.body).copied())
                .collect();
            let mut in_place = original.clone();
            assign_offsets(&mut in_place, 50, 2, append_time).expect("assign");
            assert_eq!(written, in_place);
            validate_record_set(&written, 1 << 20).expect("valid after rewrite");
            assert_eq!(assigned[1].last_offset(), 54);
            if let Some(t) = append_time {
                assert_eq!(assigned[0].max_timestamp(), t);
            }
        }
    }

    /// Found by the `batch` fuzz target: a batch whose `baseOffset` is near `i64::MAX` (the CRC
    /// does not cover it) made `last_offset` overflow, a panic in debug builds, in recovery's
    /// `check_batch` and in the client's fetch decoding.
    #[test]
    fn offsets_near_the_end_of_the_range_saturate() {
        for (base, delta) in [(i64::MAX, 5i32), (i64::MAX - 3, 9), (i64::MIN, -1)] {
            let mut b = batch(1);
            b[0..8].copy_from_slice(&base.to_be_bytes());
            b[23..27].copy_from_slice(&delta.to_be_bytes());
            let v = BatchView::parse(&b).expect("parses");
            assert_eq!(v.last_offset(), base.saturating_add(delta.into()));
            assert_eq!(v.next_offset(), v.last_offset().saturating_add(1));
        }
    }

    #[test]
    fn corruption_is_detected() {
        let mut set = batch(2);
        let last = set.len() - 1;
        set[last] ^= 0xff;
        assert!(matches!(
            validate_record_set(&set, 1 << 20),
            Err(BatchError::CrcMismatch { .. })
        ));
        let set = batch(2);
        assert!(matches!(
            validate_record_set(&set[..set.len() - 1], 1 << 20),
            Err(BatchError::Malformed(_))
        ));
        assert!(matches!(
            validate_record_set(&set, 10),
            Err(BatchError::TooLarge { .. })
        ));
        let mut v1 = batch(1);
        v1[16] = 1;
        assert_eq!(
            validate_record_set(&v1, 1 << 20).err(),
            Some(BatchError::UnsupportedMagic(1))
        );
        assert!(validate_record_set(&[], 1 << 20).is_err());
    }

    #[test]
    fn set_producer_makes_a_valid_transactional_batch() {
        let mut b = batch(2);
        set_producer(&mut b, 42, 3, 0, true);
        let v = validate_record_set(&b, 1 << 20).expect("valid after stamping");
        assert_eq!(v.summary().offset_count, 2);
        let h = batches(&b).next().expect("one").expect("parses");
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(
            (h.producer_id(), h.producer_epoch(), h.base_sequence()),
            (42, 3, 0)
        );
    }

    #[test]
    fn clients_may_not_write_control_batches_or_idempotent_ones_without_a_sequence() {
        let records = &batch(1)[BATCH_HEADER_LEN..];
        let control = build_batch(0, ATTR_CONTROL, 0, 1, 1, 1, records);
        assert!(matches!(
            validate_record_set(&control, 1 << 20),
            Err(BatchError::Invalid(_))
        ));
        let mut idempotent = batch(1);
        idempotent[43..51].copy_from_slice(&7i64.to_be_bytes());
        let crc = crc32c::crc32c(&idempotent[CRC_START..]);
        idempotent[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_record_set(&idempotent, 1 << 20),
            Err(BatchError::Invalid(_))
        ));
        idempotent[53..57].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&idempotent[CRC_START..]);
        idempotent[17..21].copy_from_slice(&crc.to_be_bytes());
        validate_record_set(&idempotent, 1 << 20).expect("with a base sequence");
    }

    proptest! {
        #[test]
        fn validation_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_record_set(&data, 1 << 20);
        }

        #[test]
        fn flipping_any_covered_byte_is_caught(n in 1usize..5, pos in 21usize..200, bit in 0u8..8) {
            let mut set = batch(n);
            let pos = pos % set.len();
            prop_assume!(pos >= 21);
            set[pos] ^= 1 << bit;
            prop_assert!(validate_record_set(&set, 1 << 20).is_err());
        }
    }
}
