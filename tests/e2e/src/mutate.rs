//! A seeded mutator for Kafka request frames, for protocol-level fuzzing of a running broker.
//!
//! Takes valid frames (recorded from real clients by [`crate::proxy::RecordingProxy`]) and makes
//! wire bytes from them: bit flips, interesting bytes, length fields (int16/int32/varint) set to
//! lies, truncation, splices of two frames, repeated or deleted runs (repeated fields), a
//! different API version, and a size prefix that lies. The same seed and corpus always give the
//! same bytes, so a failure replays.

/// SplitMix64: tiny, fast, and stable across releases (unlike `rand`'s generators).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Values worth writing into a length or count field.
const INTERESTING_I32: [i32; 10] = [
    -1,
    0,
    1,
    2,
    0x7f,
    0x80,
    0xffff,
    0x0100_0000,
    i32::MAX,
    i32::MIN,
];
const INTERESTING_I16: [i16; 7] = [-1, 0, 1, 0x7f, 0xff, i16::MAX, i16::MIN];
const INTERESTING_U8: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];

/// Bytes of the fixed request header (key, version, correlation id): mutations mostly land after
/// it, where the decoders are.
const FIXED_HEADER: usize = 8;

/// Makes mutated wire frames (size prefix included) out of a corpus of valid frame bodies.
#[derive(Debug, Clone)]
pub struct Mutator {
    rng: Rng,
    corpus: Vec<Vec<u8>>,
}

impl Mutator {
    /// A mutator over `corpus` (frame bodies, no size prefix), seeded with `seed`.
    pub fn new(seed: u64, corpus: Vec<Vec<u8>>) -> Mutator {
        assert!(!corpus.is_empty(), "the mutator needs at least one frame");
        Mutator {
            rng: Rng::new(seed),
            corpus,
        }
    }

    /// One mutated frame as it goes on the wire: a size prefix (usually true) and the body.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let pick = self.rng.below(self.corpus.len());
        let mut body = self.corpus[pick].clone();
        // Mostly one mutation, so many frames stay decodable and reach the handlers.
        let rounds = match self.rng.below(20) {
            0..=10 => 1,
            11..=15 => 2,
            _ => 3 + self.rng.below(2),
        };
        for _ in 0..rounds {
            self.mutate(&mut body);
        }
        let true_len = body.len() as i64;
        let prefix: i64 = if self.rng.chance(88) {
            true_len
        } else {
            match self.rng.below(6) {
                0 => true_len + 1 + self.rng.below(64) as i64,
                1 => true_len - 1 - self.rng.below(8) as i64,
                2 => -1,
                3 => i64::from(i32::MAX),
                4 => i64::from(i32::MIN),
                _ => 0,
            }
        };
        let mut wire = Vec::with_capacity(4 + body.len());
        wire.extend_from_slice(
            &(prefix.clamp(i32::MIN.into(), i32::MAX.into()) as i32).to_be_bytes(),
        );
        wire.extend_from_slice(&body);
        wire
    }

    /// A position in `body`, after the fixed header most of the time.
    fn position(&mut self, len: usize) -> usize {
        if len > FIXED_HEADER && self.rng.chance(85) {
            FIXED_HEADER + self.rng.below(len - FIXED_HEADER)
        } else {
            self.rng.below(len.max(1))
        }
    }

    fn mutate(&mut self, body: &mut Vec<u8>) {
        if body.is_empty() {
            body.push(self.rng.next_u64() as u8);
            return;
        }
        let len = body.len();
        match self.rng.below(11) {
            // Bit flip.
            0 | 1 => {
                let at = self.position(len);
                body[at] ^= 1 << self.rng.below(8);
            }
            // An interesting byte (also a compact length or a varint's continuation bit).
            2 => {
                let at = self.position(len);
                body[at] = INTERESTING_U8[self.rng.below(INTERESTING_U8.len())];
            }
            // An int16 length (strings, legacy arrays) set to a lie.
            3 => {
                let at = self.position(len);
                let v = INTERESTING_I16[self.rng.below(INTERESTING_I16.len())];
                overwrite(body, at, &v.to_be_bytes());
            }
            // An int32 length or count (arrays, bytes, records) set to a lie.
            4 | 5 => {
                let at = self.position(len);
                let v = if self.rng.chance(30) {
                    // Near the truth: one more or fewer than the bytes that follow.
                    (len - at) as i32 + [-1, 1, 4][self.rng.below(3)]
                } else {
                    INTERESTING_I32[self.rng.below(INTERESTING_I32.len())]
                };
                overwrite(body, at, &v.to_be_bytes());
            }
            // Truncate.
            6 => body.truncate(self.rng.below(len)),
            // Splice: this frame's head and another frame's tail.
            7 => {
                let other = self.corpus[self.rng.below(self.corpus.len())].clone();
                let cut = self.position(len);
                let from = self.rng.below(other.len().max(1));
                body.truncate(cut);
                body.extend_from_slice(other.get(from..).unwrap_or_default());
            }
            // Repeat a run (a repeated field or array element).
            8 => {
                let a = self.position(len);
                let n = 1 + self.rng.below((len - a).min(64));
                let run = body[a..a + n].to_vec();
                let times = 1 + self.rng.below(4);
                for _ in 0..times {
                    body.splice(a + n..a + n, run.iter().copied());
                }
            }
            // Delete a run.
            9 => {
                let a = self.position(len);
                let n = 1 + self.rng.below((len - a).min(32));
                body.drain(a..a + n);
            }
            // Another version of the same API: this body read by another version's decoder.
            _ => {
                if len >= 4 {
                    let v = self.rng.below(16) as i16;
                    body[2..4].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

/// Writes `value` at `at`, clipped to the end of `body`.
fn overwrite(body: &mut [u8], at: usize, value: &[u8]) {
    let end = (at + value.len()).min(body.len());
    body[at..end].copy_from_slice(&value[..end - at]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_frames() {
        let corpus = vec![
            vec![0u8, 3, 0, 12, 0, 0, 0, 1, 0, 4, b't', b'e', b's', b't'],
            vec![1; 40],
        ];
        let mut a = Mutator::new(42, corpus.clone());
        let mut b = Mutator::new(42, corpus.clone());
        let mut c = Mutator::new(43, corpus);
        let fa: Vec<Vec<u8>> = (0..200).map(|_| a.next_frame()).collect();
        let fb: Vec<Vec<u8>> = (0..200).map(|_| b.next_frame()).collect();
        let fc: Vec<Vec<u8>> = (0..200).map(|_| c.next_frame()).collect();
        assert_eq!(fa, fb);
        assert_ne!(fa, fc);
        assert!(fa.iter().all(|f| f.len() >= 4));
    }
}
