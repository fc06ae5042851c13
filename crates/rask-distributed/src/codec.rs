//! Frames: how a batch of messages and the values they carry become bytes, and back.
//!
//! ```text
//! frame   := body_len: u64 LE | body
//! body    := version: u16 LE | header_len: u32 LE | header | n_values: u32 LE
//!            | n_values x value_len: u64 LE | value bytes, back to back
//! header  := postcard(Vec<M>)   (each WireValue's bytes left out)
//! ```
//!
//! Values are visited in [`CarriesValues`] order on both sides. Encoding hands back the parts
//! to write (the value bytes are the caller's own `Bytes`, never copied); decoding slices the
//! received body (no copy either). Every length is checked against the body before use, so a
//! truncated or hostile frame is an error, never a panic or a huge allocation.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{CarriesValues, PROTOCOL_VERSION};

/// The default largest frame a connection accepts (a message batch plus its values).
pub const DEFAULT_MAX_FRAME: u64 = 4 << 30;

/// Why a frame could not be decoded (or encoded). The connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The frame announces more bytes than the connection accepts.
    Oversized { len: u64, max: u64 },
    /// The sender speaks another protocol version.
    Version { theirs: u16, ours: u16 },
    /// The frame ends before what it announces.
    Truncated(&'static str),
    /// The header is not a valid message batch, or the value count does not match.
    Malformed(String),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Oversized { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
            CodecError::Version { theirs, ours } => write!(
                f,
                "protocol version {theirs} from the other side, this side speaks {ours}"
            ),
            CodecError::Truncated(what) => write!(f, "frame truncated in its {what}"),
            CodecError::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// An encoded frame: write `parts` in order. The first part holds the length prefix, the
/// header and the value table; the others are the values' own bytes.
pub struct EncodedFrame {
    pub parts: Vec<Bytes>,
}

impl EncodedFrame {
    /// Total bytes on the wire, length prefix included.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The frame as one buffer (tests, and fake comms that want one `Bytes`).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len());
        for p in &self.parts {
            b.extend_from_slice(p);
        }
        b.freeze()
    }
}

/// Encodes a batch. Takes the messages mutably only to visit their values; they are left as
/// they were.
pub fn encode<M: Serialize + CarriesValues>(msgs: &mut [M]) -> Result<EncodedFrame, CodecError> {
    let header = postcard::to_stdvec(&*msgs).map_err(|e| CodecError::Malformed(e.to_string()))?;
    let mut values: Vec<(Bytes, Bytes)> = Vec::new();
    for m in msgs.iter_mut() {
        m.for_each_value(&mut |v| values.push((v.head.clone(), v.data.clone())));
    }
    let table = 4 + 8 * values.len();
    let body_len =
        2 + 4 + header.len() + table + values.iter().map(|(h, d)| h.len() + d.len()).sum::<usize>();
    let mut head = BytesMut::with_capacity(8 + 2 + 4 + header.len() + table);
    head.put_u64_le(body_len as u64);
    head.put_u16_le(PROTOCOL_VERSION);
    let header_len = u32::try_from(header.len())
        .map_err(|_| CodecError::Malformed("message header over 4 GiB".into()))?;
    head.put_u32_le(header_len);
    head.extend_from_slice(&header);
    head.put_u32_le(values.len() as u32);
    for (h, d) in &values {
        head.put_u64_le((h.len() + d.len()) as u64);
    }
    let mut parts = Vec::with_capacity(1 + values.len());
    parts.push(head.freeze());
    for (h, d) in values {
        parts.extend([h, d].into_iter().filter(|b| !b.is_empty()));
    }
    Ok(EncodedFrame { parts })
}

/// What [`read_head`] gives: the messages (each value's bytes still to be read) and the
/// length of every value, in [`CarriesValues`] order. Exactly the sum of the lengths is left
/// to read from the frame.
pub struct FrameHead<M> {
    pub msgs: Vec<M>,
    pub value_lens: Vec<u64>,
}

/// Reads a frame's length prefix, header and value table from a blocking reader, leaving the
/// values themselves unread: the caller reads each straight into its final memory (a large
/// block is then never staged in a frame buffer). `Ok(None)`: the other side closed cleanly
/// before the frame. Every length is checked against the frame before use.
pub fn read_head<M: DeserializeOwned + CarriesValues>(
    r: &mut impl std::io::Read,
    max: u64,
) -> Result<Option<FrameHead<M>>, std::io::Error> {
    use std::io::{Error, ErrorKind};
    let bad = |e: CodecError| Error::new(ErrorKind::InvalidData, e.to_string());
    let mut prefix = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(bad(CodecError::Truncated("length prefix"))),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut left = body_len(prefix, max).map_err(bad)?;
    let mut take = |n: u64, what: &'static str| -> Result<Vec<u8>, Error> {
        if n > left {
            return Err(bad(CodecError::Truncated(what)));
        }
        left -= n;
        let mut b = vec![0u8; n as usize];
        r.read_exact(&mut b).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                bad(CodecError::Truncated(what))
            } else {
                e
            }
        })?;
        Ok(b)
    };
    let version = u16::from_le_bytes(take(2, "version")?[..].try_into().expect("2 bytes"));
    if version != PROTOCOL_VERSION {
        return Err(bad(CodecError::Version {
            theirs: version,
            ours: PROTOCOL_VERSION,
        }));
    }
    let header_len = u32::from_le_bytes(take(4, "header length")?[..].try_into().expect("4"));
    let header = take(header_len as u64, "header")?;
    let n_values = u32::from_le_bytes(take(4, "value count")?[..].try_into().expect("4")) as u64;
    let table = take(
        n_values
            .checked_mul(8)
            .ok_or(bad(CodecError::Truncated("value table")))?,
        "value table",
    )?;
    let value_lens: Vec<u64> = table
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let total = value_lens
        .iter()
        .try_fold(0u64, |a, &b| a.checked_add(b))
        .ok_or(bad(CodecError::Truncated("values")))?;
    if total != left {
        return Err(bad(CodecError::Malformed(format!(
            "the value table announces {total} bytes, the frame holds {left}"
        ))));
    }
    let mut msgs: Vec<M> =
        postcard::from_bytes(&header).map_err(|e| bad(CodecError::Malformed(e.to_string())))?;
    let mut n_visited = 0u64;
    for m in msgs.iter_mut() {
        m.for_each_value(&mut |_| n_visited += 1);
    }
    if n_visited != n_values {
        return Err(bad(CodecError::Malformed(
            "the value table does not match the messages".into(),
        )));
    }
    Ok(Some(FrameHead { msgs, value_lens }))
}

/// Reads the body length from a frame's first 8 bytes, refusing one over `max`.
pub fn body_len(prefix: [u8; 8], max: u64) -> Result<u64, CodecError> {
    let len = u64::from_le_bytes(prefix);
    if len > max {
        return Err(CodecError::Oversized { len, max });
    }
    Ok(len)
}

struct Reader {
    body: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.body.len())
            .ok_or(CodecError::Truncated(what))?;
        let out = self.body.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b[..].try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b[..].try_into().expect("8 bytes")))
    }
}

/// Decodes a frame body (the bytes after the length prefix).
pub fn decode<M: DeserializeOwned + CarriesValues>(body: Bytes) -> Result<Vec<M>, CodecError> {
    let mut r = Reader { body, pos: 0 };
    let version = r.u16("version")?;
    if version != PROTOCOL_VERSION {
        return Err(CodecError::Version {
            theirs: version,
            ours: PROTOCOL_VERSION,
        });
    }
    let header_len = r.u32("header length")? as usize;
    let header = r.take(header_len, "header")?;
    let n_values = r.u32("value count")? as usize;
    // Each value needs 8 bytes of table: a count the body cannot hold is refused before
    // anything is allocated for it.
    if n_values > (r.body.len() - r.pos) / 8 {
        return Err(CodecError::Truncated("value table"));
    }
    let mut lens = Vec::with_capacity(n_values);
    for _ in 0..n_values {
        lens.push(r.u64("value table")?);
    }
    let mut values = Vec::with_capacity(n_values);
    for len in lens {
        let len = usize::try_from(len).map_err(|_| CodecError::Truncated("values"))?;
        values.push(r.take(len, "values")?);
    }
    if r.pos != r.body.len() {
        return Err(CodecError::Malformed(format!(
            "{} bytes after the last value",
            r.body.len() - r.pos
        )));
    }
    let mut msgs: Vec<M> =
        postcard::from_bytes(&header).map_err(|e| CodecError::Malformed(e.to_string()))?;
    let mut values = values.into_iter();
    let mut short = false;
    for m in msgs.iter_mut() {
        m.for_each_value(&mut |v| match values.next() {
            Some(data) => v.data = data,
            None => short = true,
        });
    }
    if short || values.next().is_some() {
        return Err(CodecError::Malformed(
            "the value table does not match the messages".into(),
        ));
    }
    Ok(msgs)
}

/// Encodes and decodes a batch in memory: what the fake comms of the state-machine tests do
/// with every message, so the codec is exercised by every test.
pub fn round_trip<M: Serialize + DeserializeOwned + CarriesValues>(
    mut msgs: Vec<M>,
) -> Result<Vec<M>, CodecError> {
    let frame = encode(&mut msgs)?.to_bytes();
    let len = body_len(frame[..8].try_into().expect("8-byte prefix"), u64::MAX)?;
    debug_assert_eq!(len as usize, frame.len() - 8);
    decode(frame.slice(8..))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rask_graph::Key;

    use super::*;
    use crate::protocol::*;

    fn sample() -> Vec<ToWorker> {
        vec![
            ToWorker::ComputeTask {
                key: Key::named("inc-1"),
                op: Arc::new(WireOp {
                    name: "my::inc".into(),
                    params: vec![1, 2, 3],
                }),
                deps: vec![DepLocation {
                    key: Key::named("x"),
                    who_has: vec!["127.0.0.1:9000".into()],
                    nbytes: 8,
                }],
                args: vec![0, 0],
                priority: Priority {
                    user: -1,
                    generation: 2,
                    order: 3,
                },
                inline_result: true,
                projected_nbytes: Some(8),
                attempt: 3,
            },
            ToWorker::PutData {
                values: vec![
                    (Key::named("a"), WireValue::new("i64", vec![1u8; 8])),
                    (Key::named("b"), WireValue::new("empty", Vec::<u8>::new())),
                    (Key::named("c"), WireValue::new("big", vec![7u8; 100_000])),
                ],
            },
            ToWorker::FreeKeys {
                keys: vec![Key::named("x")],
            },
        ]
    }

    #[test]
    fn batches_round_trip_with_values_as_raw_frames() {
        let msgs = sample();
        let mut enc = msgs.clone();
        let frame = encode(&mut enc).unwrap();
        // The big value is its own part, not copied into the header.
        assert!(frame.parts.iter().any(|p| p.len() == 100_000));
        assert!(frame.parts[0].len() < 1000);
        assert_eq!(round_trip(msgs.clone()).unwrap(), msgs);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let frame = encode(&mut sample()).unwrap().to_bytes();
        let body = frame.slice(8..);
        for cut in 0..body.len().min(400) {
            assert!(
                decode::<ToWorker>(body.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        assert!(decode::<ToWorker>(body.slice(..body.len() - 1)).is_err());
    }

    #[test]
    fn a_split_value_is_one_value_on_the_wire_and_read_head_leaves_the_values_to_read() {
        let mut msgs = vec![PeerResponse::Data {
            values: vec![
                (
                    Key::named("a"),
                    WireValue::split(
                        "t",
                        Bytes::from_static(b"HEAD"),
                        Bytes::from(vec![9u8; 5000]),
                    ),
                ),
                (Key::named("b"), WireValue::new("u", vec![1u8, 2, 3])),
            ],
            missing: vec![Key::named("c")],
        }];
        let frame = encode(&mut msgs).unwrap().to_bytes();
        // The in-memory decoder sees the head and body as one value.
        let back: Vec<PeerResponse> = decode(frame.slice(8..)).unwrap();
        let PeerResponse::Data { values, missing } = &back[0] else {
            panic!("data")
        };
        assert_eq!(values[0].1.data.len(), 5004);
        assert!(values[0].1.head.is_empty());
        assert_eq!(&values[0].1.data[..4], b"HEAD");
        assert_eq!(missing, &vec![Key::named("c")]);
        // The streaming reader stops at the values and says how long each is.
        let mut r = &frame[..];
        let head = read_head::<PeerResponse>(&mut r, u64::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(head.value_lens, vec![5004, 3]);
        assert_eq!(r.len(), 5007);
        assert_eq!(&r[..4], b"HEAD");
        // Every truncation of the head is an error, never a panic; an empty input is a clean
        // close.
        assert!(
            read_head::<PeerResponse>(&mut &frame[..0], u64::MAX)
                .unwrap()
                .is_none()
        );
        let head_len = frame.len() - 5007;
        for cut in 1..head_len {
            assert!(
                read_head::<PeerResponse>(&mut &frame[..cut], u64::MAX).is_err(),
                "cut at {cut}"
            );
        }
        // A frame over the limit is refused before anything is read.
        assert!(read_head::<PeerResponse>(&mut &frame[..], 100).is_err());
    }

    #[test]
    fn hostile_lengths_and_versions_are_refused() {
        assert!(matches!(
            body_len((10u64 << 30).to_le_bytes(), DEFAULT_MAX_FRAME),
            Err(CodecError::Oversized { .. })
        ));
        let frame = encode(&mut sample()).unwrap().to_bytes();
        let mut body = frame.slice(8..).to_vec();
        body[0] = 99;
        assert!(matches!(
            decode::<ToWorker>(Bytes::from(body)),
            Err(CodecError::Version { theirs: 99, .. })
        ));
        // A value count far beyond the body.
        let mut b = BytesMut::new();
        b.put_u16_le(PROTOCOL_VERSION);
        let header = postcard::to_stdvec(&Vec::<ToWorker>::new()).unwrap();
        b.put_u32_le(header.len() as u32);
        b.extend_from_slice(&header);
        b.put_u32_le(u32::MAX);
        assert!(decode::<ToWorker>(b.freeze()).is_err());
    }

    #[test]
    fn a_value_table_that_disagrees_with_the_messages_is_refused() {
        // Encode a PutData batch, then decode it as if it had one value fewer.
        let mut msgs = vec![ToWorker::PutData {
            values: vec![(Key::named("a"), WireValue::new("t", vec![1u8, 2]))],
        }];
        let frame = encode(&mut msgs).unwrap().to_bytes();
        let body = frame.slice(8..);
        // Same header, value count 0, no values.
        let header_len = u32::from_le_bytes(body[2..6].try_into().unwrap()) as usize;
        let mut b = BytesMut::new();
        b.extend_from_slice(&body[..6 + header_len]);
        b.put_u32_le(0);
        assert!(matches!(
            decode::<ToWorker>(b.freeze()),
            Err(CodecError::Malformed(_))
        ));
    }
}
