//! Metadata snapshots: a whole [`MetadataImage`] as bytes, so the metadata log can be compacted
//! and a new or lagging node can start from the snapshot instead of the log's first record.
//!
//! ```text
//! magic: u32 "GMSN" | format version: int16 | last offset: int64 | last epoch: int32
//! record count: int32 | (length: int32, framed record)… | crc32c: u32 of everything before it
//! ```
//!
//! The records are [`MetadataImage::to_records`]; reading them back replays them on the empty
//! image, so a snapshot that decodes always yields a valid image. Writing the bytes to disk
//! (and where) is the Raft state machine's job; this module is pure.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::delta::MetadataDelta;
use crate::error::{DecodeError, ReplayError};
use crate::image::{MetadataImage, MetadataProvenance};
use crate::records::{put_framed, put_len, Reader};

const MAGIC: u32 = u32::from_be_bytes(*b"GMSN");
const FORMAT_VERSION: i16 = 0;

/// A snapshot that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("corrupt metadata snapshot: {0}")]
    Decode(#[from] DecodeError),
    #[error("metadata snapshot does not replay: {0}")]
    Replay(#[from] ReplayError),
}

/// Encodes `image` as a snapshot.
pub fn encode_snapshot(image: &MetadataImage) -> Bytes {
    let provenance = image.provenance();
    let records = image.to_records();
    let mut b = BytesMut::new();
    b.put_u32(MAGIC);
    b.put_i16(FORMAT_VERSION);
    b.put_i64(provenance.offset);
    b.put_i32(provenance.epoch);
    put_len(&mut b, records.len());
    for record in &records {
        put_framed(&mut b, record);
    }
    let crc = crc32c::crc32c(&b);
    b.put_u32(crc);
    b.freeze()
}

/// Decodes a snapshot written by [`encode_snapshot`] into the image it describes.
pub fn decode_snapshot(buf: &[u8]) -> Result<MetadataImage, SnapshotError> {
    if buf.len() < 4 {
        return Err(DecodeError::Truncated("snapshot").into());
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    let mut r = Reader::new(body);
    let magic = r.u32("snapshot magic")?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic).into());
    }
    let stored = Reader::new(crc).u32("snapshot checksum")?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::ChecksumMismatch { stored, computed }.into());
    }
    let version = r.i16("snapshot version")?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedSnapshotVersion(version).into());
    }
    let provenance = MetadataProvenance {
        offset: r.i64("snapshot offset")?,
        epoch: r.i32("snapshot epoch")?,
    };
    let count = r.count("snapshot record count", 8)?;
    let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
    for _ in 0..count {
        delta.replay(&r.framed_record()?)?;
    }
    r.finish()?;
    Ok(delta.apply(provenance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_image_round_trips() {
        let image = MetadataImage::empty();
        assert_eq!(decode_snapshot(&encode_snapshot(&image)), Ok(image));
    }

    #[test]
    fn corruption_is_detected() {
        let image = MetadataImage::empty();
        let mut enc = encode_snapshot(&image).to_vec();
        let last = enc.len() - 1;
        enc[last] ^= 1;
        assert!(matches!(
            decode_snapshot(&enc),
            Err(SnapshotError::Decode(DecodeError::ChecksumMismatch { .. }))
        ));
        enc[0] = b'X';
        assert!(matches!(
            decode_snapshot(&enc),
            Err(SnapshotError::Decode(DecodeError::BadMagic(_)))
        ));
        assert!(decode_snapshot(&[]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_snapshot(&bytes);
            // Also with a valid magic and checksum, so the record decoding is reached.
            let mut b = BytesMut::new();
            b.put_u32(MAGIC);
            b.put_slice(&bytes);
            let crc = crc32c::crc32c(&b);
            b.put_u32(crc);
            let _ = decode_snapshot(&b);
        }
    }
}
