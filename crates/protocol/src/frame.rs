//! Framing: every Kafka request and response is an `int32` size followed by that many bytes.
//!
//! [`FrameDecoder`] checks the size against the configured limit *before* anything is allocated
//! (a hostile peer must not make the broker reserve gigabytes), and treats a partial frame as
//! "not yet", never as an error.

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
    /// Takes one complete frame body off the front of `buf`, if one is there.
    ///
    /// Returns `Ok(None)` when more bytes are needed; `reserve_hint` tells the caller how large
    /// the whole frame is once the prefix is known, so it can read it in few syscalls.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if buf.len() < FRAME_PREFIX {
            return Ok(None);
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
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
        if buf.len() < FRAME_PREFIX + size {
            buf.reserve(FRAME_PREFIX + size - buf.len());
            return Ok(None);
        }
        buf.advance(FRAME_PREFIX);
        Ok(Some(buf.split_to(size)))
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
    fn oversized_and_negative_frames_are_rejected_before_allocation() {
        let d = FrameDecoder { max_frame: 100 };
        let mut b = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(matches!(d.decode(&mut b), Err(FrameError::TooLarge { .. })));
        assert!(b.capacity() < 1024);
        let mut b = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut b), Err(FrameError::Negative(-5)));
    }
}
