//! Framing: every Kafka request and response is an `int32` size followed by that many bytes.
//!
//! [`FrameDecoder`] checks the size against the configured limit and treats a partial frame as
//! "not yet", never as an error. It never allocates on the peer's word: the announced size only
//! tells the caller how much is still to come ([`FrameDecoder::frame_len`]), and the caller grows
//! its buffer as bytes arrive (a hostile peer announcing 100 MB and sending 8 bytes must cost 8
//! bytes, not 100 MB).

use bytes::{Buf, BytesMut};

/// Why a frame cannot be accepted; either way the connection must be closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    Negative(i32),
    /// The size prefix exceeds `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes (socket.request.max.bytes)")]
    TooLarge {
        /// Size announced by the peer.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
}

/// Size of the length prefix in front of every frame.
pub const FRAME_PREFIX: usize = 4;

/// Splits size-prefixed frames off a read buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    /// The largest frame body accepted (Kafka's `socket.request.max.bytes`).
    pub max_frame: usize,
}

impl FrameDecoder {
    /// The length of the frame at the front of `buf`, prefix included, once its prefix is
    /// there (`Ok(None)` before); an invalid prefix is an error however few bytes follow it.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.get(..FRAME_PREFIX) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if size < 0 {
            return Err(FrameError::Negative(size));
        }
        let size = size as usize;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_frame,
            });
        }
        Ok(Some(FRAME_PREFIX + size))
    }

    /// Takes one complete frame body off the front of `buf`, if one is there.
    ///
    /// Returns `Ok(None)` when more bytes are needed, without reserving room for them: the
    /// caller decides how its buffer grows (see [`FrameDecoder::frame_len`]).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.frame_len(buf)? {
            Some(len) if buf.len() >= len => {
                buf.advance(FRAME_PREFIX);
                Ok(Some(buf.split_to(len - FRAME_PREFIX)))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_wait_for_more() {
        let d = FrameDecoder { max_frame: 100 };
        let mut b = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(d.decode(&mut b), Ok(None));
        b.extend_from_slice(&[3, 1, 2]);
        assert_eq!(d.decode(&mut b), Ok(None));
        b.extend_from_slice(&[3, 9]);
        let f = d.decode(&mut b).expect("valid").expect("complete");
        assert_eq!(&f[..], &[1, 2, 3]);
        assert_eq!(&b[..], &[9]);
    }

    #[test]
    fn a_partial_frame_reserves_nothing_for_the_announced_size() {
        let d = FrameDecoder {
            max_frame: 200 << 20,
        };
        let mut b = BytesMut::with_capacity(16);
        b.extend_from_slice(&(100i32 << 20).to_be_bytes());
        b.extend_from_slice(&[0, 18, 0, 3]);
        assert_eq!(d.decode(&mut b), Ok(None));
        assert_eq!(d.frame_len(&b), Ok(Some(4 + (100 << 20))));
        assert!(b.capacity() < 1024, "capacity {}", b.capacity());
    }

    #[test]
    fn oversized_and_negative_frames_are_rejected_before_allocation() {
        let d = FrameDecoder { max_frame: 100 };
        let mut b = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(matches!(d.decode(&mut b), Err(FrameError::TooLarge { .. })));
        assert!(b.capacity() < 1024);
        let mut b = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut b), Err(FrameError::Negative(-5)));
    }
}
