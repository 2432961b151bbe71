//! Kafka's wire primitives for the records of its internal topics (`__consumer_offsets`,
//! `__share_group_state`): the classic (non-flexible) encodings (int16-length strings, int32-length
//! bytes) and the flexible ones (unsigned varints, compact strings and arrays, tagged fields).
//! This crate's `__share_group_state` records and gregor-group's `__consumer_offsets` records
//! (classic, consumer group and share group) both use them; each maps [`WireError`] into its own
//! decode error.

use bytes::{BufMut, Bytes};

/// Why bytes could not be read. Never a panic: the bytes come from peers or from disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end before the named field.
    #[error("unexpected end of input while reading {0}")]
    Truncated(&'static str),
    /// An unsigned varint longer than 64 bits.
    #[error("varint too long for {0}")]
    VarintTooLong(&'static str),
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// A null (negative length) where a value is required.
    #[error("null where a value is required: {0}")]
    UnexpectedNull(&'static str),
}

/// A length as Kafka's int32, saturating (no real record comes near it).
pub fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// An int16-length string. Kafka strings are int16-length; longer ones cannot be represented,
/// so truncate at a char boundary rather than write a corrupt length. Group ids and topics are
/// far below this.
pub fn put_string(b: &mut impl BufMut, s: &str) {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_i16(end as i16);
    b.put_slice(&s.as_bytes()[..end]);
}

/// An int16-length nullable string (-1 is null).
pub fn put_nullable_string(b: &mut impl BufMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

/// int32-length bytes.
pub fn put_bytes(b: &mut impl BufMut, bytes: &[u8]) {
    b.put_i32(len_i32(bytes.len()));
    b.put_slice(bytes);
}

pub fn put_uvarint(b: &mut impl BufMut, v: usize) {
    let mut v = v as u64;
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A compact string (length + 1 as an unsigned varint).
pub fn put_compact_string(b: &mut impl BufMut, s: &str) {
    put_uvarint(b, s.len() + 1);
    b.put_slice(s.as_bytes());
}

/// A compact nullable string (0 is null).
pub fn put_compact_nullable_string(b: &mut impl BufMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_string(b, s),
        None => put_uvarint(b, 0),
    }
}

/// A bounds-checked big-endian reader of the classic and flexible encodings over bytes from
/// the log or a peer: every read can fail, none panics.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn i8(&mut self, what: &'static str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A UUID's 16 bytes (callers wrap them in their own id type).
    pub fn uuid(&mut self, what: &'static str) -> Result<[u8; 16], WireError> {
        self.array(what)
    }

    pub fn uvarint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>(what)?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::VarintTooLong(what))
    }

    /// A compact array or string length (N+1 on the wire); null (0) reads as empty.
    pub fn compact_len(&mut self, what: &'static str) -> Result<usize, WireError> {
        let n = self.uvarint(what)?;
        let n = usize::try_from(n.saturating_sub(1)).map_err(|_| WireError::Truncated(what))?;
        // Every element takes at least one byte: refuse lengths the input cannot hold.
        if n > self.buf.len() {
            return Err(WireError::Truncated(what));
        }
        Ok(n)
    }

    pub fn compact_nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, WireError> {
        let n = self.uvarint(what)?;
        if n == 0 {
            return Ok(None);
        }
        let len = usize::try_from(n - 1).map_err(|_| WireError::Truncated(what))?;
        let raw = self.take(len, what)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_string()))
            .map_err(|_| WireError::InvalidUtf8(what))
    }

    pub fn compact_string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.compact_nullable_string(what)?
            .ok_or(WireError::UnexpectedNull(what))
    }

    /// An int16-length nullable string (a negative length is null).
    pub fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, WireError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize, what)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_string()))
            .map_err(|_| WireError::InvalidUtf8(what))
    }

    pub fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.nullable_string(what)?
            .ok_or(WireError::UnexpectedNull(what))
    }

    /// int32-length bytes; null reads as empty.
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, WireError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, what)?))
    }

    /// Skips a tagged-field section (fields this version does not know).
    pub fn skip_tagged_fields(&mut self) -> Result<(), WireError> {
        let n = self.uvarint("tagged fields")?;
        for _ in 0..n {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            let size = usize::try_from(size).map_err(|_| WireError::Truncated("tagged field"))?;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn strings_round_trip_and_truncate_at_a_char_boundary() {
        let mut b = BytesMut::new();
        put_string(&mut b, "héllo");
        put_nullable_string(&mut b, None);
        put_compact_string(&mut b, "x");
        put_compact_nullable_string(&mut b, None);
        put_bytes(&mut b, &[1, 2]);
        let mut r = Reader::new(&b);
        assert_eq!(r.string("s"), Ok("héllo".to_string()));
        assert_eq!(r.nullable_string("n"), Ok(None));
        assert_eq!(r.compact_string("c"), Ok("x".to_string()));
        assert_eq!(r.compact_nullable_string("cn"), Ok(None));
        assert_eq!(r.bytes("b"), Ok(Bytes::from_static(&[1, 2])));
        assert_eq!(r.i8("end"), Err(WireError::Truncated("end")));

        // 32766 ASCII bytes then a 2-byte char: the cut falls inside it, so it is left out.
        let long = format!("{}é", "a".repeat(i16::MAX as usize - 1));
        let mut b = BytesMut::new();
        put_string(&mut b, &long);
        let s = Reader::new(&b).string("long").map(|s| s.len());
        assert_eq!(s, Ok(i16::MAX as usize - 1));
    }

    #[test]
    fn varints_and_nulls() {
        for v in [0usize, 1, 127, 128, 300, 1 << 40] {
            let mut b = BytesMut::new();
            put_uvarint(&mut b, v);
            assert_eq!(Reader::new(&b).uvarint("v"), Ok(v as u64));
        }
        // Eleven continuation bytes: too long for 64 bits.
        assert_eq!(
            Reader::new(&[0xff; 11]).uvarint("v"),
            Err(WireError::VarintTooLong("v"))
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff]).string("s"),
            Err(WireError::UnexpectedNull("s"))
        );
        // A compact length larger than what is left is refused.
        assert_eq!(
            Reader::new(&[5, 0]).compact_len("a"),
            Err(WireError::Truncated("a"))
        );
    }
}
