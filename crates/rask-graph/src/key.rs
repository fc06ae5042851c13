//! Task keys: a name token plus a block index.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::Token;

/// The block index of a key: empty for a single task (a `Delayed`), `[i, j]` for chunk
/// `(i, j)` of a 2-D array, `[p]` for partition `p` of a frame.
pub type BlockIndex = SmallVec<[u32; 4]>;

/// The name of a task: a readable prefix (the op) and a token, such as `inc-3fa2...`.
///
/// All blocks of one layer share one name, so the name is reference-counted and cloning a key
/// never copies the string. The name's hash is computed once: graphs of millions of tasks hash
/// and compare keys constantly, and touching the string each time would miss the cache.
#[derive(Clone)]
pub struct KeyName {
    hash: u64,
    text: Arc<str>,
}

impl PartialEq for KeyName {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for KeyName {}

impl std::hash::Hash for KeyName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for KeyName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl KeyName {
    /// `prefix-<token hex>`.
    pub fn from_token(prefix: &str, token: Token) -> Self {
        // Format into a stack buffer: one allocation (the Arc) per name.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[((token.0 >> (124 - 4 * i)) & 0xf) as usize];
        }
        let hex = std::str::from_utf8(&buf).expect("hex digits are ASCII");
        let mut stack = [0u8; 96];
        let len = prefix.len() + 33;
        if len <= stack.len() {
            stack[..prefix.len()].copy_from_slice(prefix.as_bytes());
            stack[prefix.len()] = b'-';
            stack[prefix.len() + 1..len].copy_from_slice(hex.as_bytes());
            let text = std::str::from_utf8(&stack[..len]).expect("prefix and hex are UTF-8");
            return KeyName {
                hash: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
                text: Arc::from(text),
            };
        }
        KeyName::new(format!("{prefix}-{hex}"))
    }

    /// A name taken verbatim (for graphs written by hand).
    pub fn new(name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        KeyName {
            hash: xxhash_rust::xxh3::xxh3_64(name.as_bytes()),
            text: Arc::from(name),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The readable part of the name: everything before a trailing `-<32 hex digits>` token.
    pub fn prefix(&self) -> &str {
        let s: &str = &self.text;
        match s.rsplit_once('-') {
            Some((p, tok)) if tok.len() == 32 && tok.bytes().all(|b| b.is_ascii_hexdigit()) => p,
            _ => s,
        }
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The identity of a task's output: a name and a block index.
///
/// Keys are deterministic: the name comes from a [`Token`] of the op, its parameters and its
/// inputs' keys, so building the same expression twice gives the same keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    name: KeyName,
    index: BlockIndex,
}

impl Key {
    pub fn new(name: KeyName, index: impl IntoIterator<Item = u32>) -> Self {
        Key {
            name,
            index: index.into_iter().collect(),
        }
    }

    /// A key with an empty block index.
    pub fn single(name: KeyName) -> Self {
        Key {
            name,
            index: BlockIndex::new(),
        }
    }

    /// Parses nothing: builds a single key from a literal name (tests, hand-written graphs).
    pub fn named(name: impl AsRef<str>) -> Self {
        Key::single(KeyName::new(name))
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn key_name(&self) -> &KeyName {
        &self.name
    }

    pub fn index(&self) -> &[u32] {
        &self.index
    }

    /// The readable op prefix of the name (`inc` for `inc-3fa2...`).
    pub fn prefix(&self) -> &str {
        self.name.prefix()
    }
}

impl fmt::Display for Key {
    /// Dask's spelling: `name` for single keys, `('name', 0, 1)` for blocks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index.is_empty() {
            return f.write_str(self.name.as_str());
        }
        write!(f, "('{}'", self.name)?;
        for i in &self.index {
            write!(f, ", {i}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// On the wire a key is its name and its block index; the name's hash is recomputed on
/// arrival (it is never sent, so a peer cannot plant a wrong one).
impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.name.as_str())?;
        t.serialize_element(&self.index[..])?;
        t.end()
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, index): (std::borrow::Cow<'de, str>, Vec<u32>) =
            serde::Deserialize::deserialize(d)?;
        Ok(Key::new(KeyName::new(name), index))
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::named(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::tokenize;

    #[test]
    fn keys_round_trip_through_postcard() {
        let k = Key::new(KeyName::new("normal-00ff"), [3, 4]);
        let bytes = postcard::to_stdvec(&k).unwrap();
        let back: Key = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.to_string(), "('normal-00ff', 3, 4)");
        let single = Key::named("inc-1");
        let back: Key = postcard::from_bytes(&postcard::to_stdvec(&single).unwrap()).unwrap();
        assert_eq!(back, single);
    }

    #[test]
    fn display_matches_dask() {
        let name = KeyName::new("x");
        assert_eq!(Key::single(name.clone()).to_string(), "x");
        assert_eq!(Key::new(name, [0, 2]).to_string(), "('x', 0, 2)");
    }

    #[test]
    fn prefix_strips_token() {
        let t = tokenize("inc", |t| t.write_i64(1));
        let k = Key::single(KeyName::from_token("inc", t));
        assert_eq!(k.prefix(), "inc");
        assert_eq!(Key::named("sum-aggregate").prefix(), "sum-aggregate");
        let k = Key::single(KeyName::from_token("sum-aggregate", t));
        assert_eq!(k.prefix(), "sum-aggregate");
    }
}
