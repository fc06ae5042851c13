//! What DataFrame tasks send to other processes: op parameters and partition values.
//!
//! - Partitions (and the lists of pieces a split task makes) travel, and spill, as polars IPC
//!   (the Arrow IPC file format), one length-prefixed IPC file per frame.
//! - Op parameters are postcard, like every rask op; the polars parts inside them
//!   (expressions, dtypes, schemas, join arguments) are polars' own compact serde form
//!   (`polars_utils::pl_serialize`), carried as bytes.
//! - Readers send what one partition needs: the file (URL, size, modification time, ETag),
//!   its byte range or row groups, the schema and options, and the storage options (so a
//!   worker reaches the same bucket with the same credentials), plus the pushdown.
//! - A `map_partitions` closure cannot leave its process: encoding a task that runs one is
//!   an error naming the op and the step.

use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;

use polars::polars_utils::pl_serialize;
use polars::prelude::{
    DataFrame as PlFrame, DataType, Expr, IpcReader, IpcWriter, Schema, SchemaRef, SerReader,
    SerWriter,
};
use rask_error::{RaskError, Result};
use rask_io::StoreOptions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Partition;
use crate::source::Pushdown;
use crate::step::Step;

/// serde `with` module: a polars value (an expression, a dtype, join arguments) as the bytes
/// of polars' compact serialization.
pub(crate) mod pl {
    use super::*;

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        v: &T,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let bytes = pl_serialize::serialize_to_bytes::<T, false>(v)
            .map_err(|e| serde::ser::Error::custom(format!("polars serialization: {e}")))?;
        bytes.serialize(s)
    }

    pub(crate) fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<T, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        let mut r = Cursor::new(&bytes[..]);
        let v = pl_serialize::deserialize_from_reader::<T, _, false>(&mut r)
            .map_err(|e| serde::de::Error::custom(format!("polars deserialization: {e}")))?;
        if (r.position() as usize) != bytes.len() {
            return Err(serde::de::Error::custom(
                "polars deserialization: bytes left over",
            ));
        }
        Ok(v)
    }
}

/// serde `with` module for a [`SchemaRef`] (polars' form of the schema behind the `Arc`).
pub(crate) mod schema_ref {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        v: &SchemaRef,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        pl::serialize::<Schema, S>(v, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<SchemaRef, D::Error> {
        pl::deserialize::<Schema, D>(d).map(Arc::new)
    }
}

/// serde `with` module for an optional [`SchemaRef`].
pub(crate) mod opt_schema_ref {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<SchemaRef>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let v: Option<&Schema> = v.as_deref();
        pl::serialize(&v, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<SchemaRef>, D::Error> {
        pl::deserialize::<Option<Schema>, D>(d).map(|s| s.map(Arc::new))
    }
}

/// serde `with` module: a polars frame as a length-prefixed IPC file.
pub(crate) mod frame {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        v: &PlFrame,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        write_frame(v, &mut bytes).map_err(serde::ser::Error::custom)?;
        bytes.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<PlFrame, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        let mut r = &bytes[..];
        let df = read_frame(&mut r).map_err(serde::de::Error::custom)?;
        if !r.is_empty() {
            return Err(serde::de::Error::custom("frame: bytes left over"));
        }
        Ok(df)
    }
}

// ---------------------------------------------------------------- frames as IPC

/// A frame with no columns has no IPC form (no schema to write): its height alone is sent.
const FRAME_IPC: u8 = 0;
const FRAME_NO_COLUMNS: u8 = 1;

/// Writes `df` as a tag byte, a little-endian `u64` length and a polars IPC file.
pub(crate) fn write_frame(df: &PlFrame, w: &mut dyn Write) -> io::Result<()> {
    if df.width() == 0 {
        w.write_all(&[FRAME_NO_COLUMNS])?;
        return w.write_all(&(df.height() as u64).to_le_bytes());
    }
    let mut buf = Vec::with_capacity(df.estimated_size().min(1 << 24) + 1024);
    let mut df = df.clone();
    IpcWriter::new(&mut buf)
        .finish(&mut df)
        .map_err(|e| io::Error::other(format!("writing a partition as IPC: {e}")))?;
    w.write_all(&[FRAME_IPC])?;
    w.write_all(&(buf.len() as u64).to_le_bytes())?;
    w.write_all(&buf)
}

fn read_u64(r: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a frame written by [`write_frame`]. Lengths are not trusted: bytes are read as they
/// arrive, and a short input is an `UnexpectedEof`.
pub(crate) fn read_frame(r: &mut dyn Read) -> io::Result<PlFrame> {
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    match tag[0] {
        FRAME_NO_COLUMNS => {
            let h = read_u64(r)?;
            let h = usize::try_from(h)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame height"))?;
            Ok(PlFrame::empty_with_height(h))
        }
        FRAME_IPC => {
            let len = read_u64(r)?;
            let mut buf = Vec::with_capacity(len.min(1 << 20) as usize);
            r.take(len).read_to_end(&mut buf)?;
            if (buf.len() as u64) != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("IPC frame of {len} bytes cut at {}", buf.len()),
                ));
            }
            IpcReader::new(Cursor::new(buf)).finish().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reading a partition from IPC: {e}"),
                )
            })
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown frame encoding {other}"),
        )),
    }
}

/// The pieces a split task cuts a partition into (hash, range or row splits); each dependent
/// takes one. Travels as a count and one length-prefixed IPC frame per piece.
#[derive(Clone, Debug)]
pub struct Pieces(pub Arc<Vec<PlFrame>>);

impl rask_graph::Data for Pieces {
    fn nbytes(&self) -> usize {
        self.0.iter().map(|p| p.estimated_size()).sum()
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&(self.0.len() as u64).to_le_bytes())?;
        for p in self.0.iter() {
            write_frame(p, w)?;
        }
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let n = read_u64(r)?;
        // Each piece takes at least 9 bytes: growing as pieces arrive bounds the allocation.
        let mut out = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            out.push(read_frame(r)?);
        }
        Ok(Pieces(Arc::new(out)))
    }
}

rask_graph::register_value!(Partition);
rask_graph::register_value!(Pieces);

// ---------------------------------------------------------------- params helpers

/// Encodes op parameters, reporting a failure (an expression polars cannot serialize) as a
/// serialization error naming the op.
pub(crate) fn encode<T: Serialize>(op: &str, params: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(params).map_err(|e| RaskError::Serialization {
        what: format!("op `{op}`"),
        message: e.to_string(),
    })
}

/// Decodes op parameters, naming the op on failure (never a panic on bad bytes).
pub(crate) fn decode<T: DeserializeOwned>(op: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| RaskError::Serialization {
        what: format!("parameters of op `{op}`"),
        message: e.to_string(),
    })
}

/// [`StoreOptions`] on the wire (a worker opens the same store with the same options),
/// without the secrets: the secret key and session token stay in this process
/// ([`rask_graph::secrets`]) under ids the wire form names, and reach workers by the
/// cluster's own encrypted channel, never inside a graph.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireStore {
    endpoint: Option<String>,
    region: Option<String>,
    /// Not a secret (AWS's "access key ID" identifies the key, as a user name would).
    access_key_id: Option<String>,
    secret_access_key_ref: Option<String>,
    session_token_ref: Option<String>,
    allow_http: bool,
    skip_signature: bool,
    max_retries: Option<u64>,
    retry_timeout: Option<std::time::Duration>,
    connect_timeout: Option<std::time::Duration>,
}

impl WireStore {
    pub(crate) fn of(o: &StoreOptions) -> WireStore {
        // The id names the store and the key, so two stores' secrets never mix.
        let id = |what: &str| {
            format!(
                "store:{what}:{}:{}",
                o.endpoint.as_deref().unwrap_or("default"),
                o.access_key_id.as_deref().unwrap_or("")
            )
        };
        let keep = |what: &str, secret: &Option<String>| {
            secret.as_ref().map(|v| {
                let id = id(what);
                rask_graph::secrets::remember(id.clone(), v.clone());
                id
            })
        };
        WireStore {
            endpoint: o.endpoint.clone(),
            region: o.region.clone(),
            access_key_id: o.access_key_id.clone(),
            secret_access_key_ref: keep("secret_access_key", &o.secret_access_key),
            session_token_ref: keep("session_token", &o.session_token),
            allow_http: o.allow_http,
            skip_signature: o.skip_signature,
            max_retries: o.max_retries.map(|n| n as u64),
            retry_timeout: o.retry_timeout,
            connect_timeout: o.connect_timeout,
        }
    }

    pub(crate) fn options(self) -> StoreOptions {
        // A secret this process was not given is left unset: the store then takes it from
        // the environment (`AWS_SECRET_ACCESS_KEY`, ...), as workers configured that way
        // expect, and a missing one fails at the first request naming the bucket.
        let find = |r: &Option<String>| r.as_deref().and_then(rask_graph::secrets::lookup);
        StoreOptions {
            endpoint: self.endpoint,
            region: self.region,
            access_key_id: self.access_key_id,
            secret_access_key: find(&self.secret_access_key_ref),
            session_token: find(&self.session_token_ref),
            allow_http: self.allow_http,
            skip_signature: self.skip_signature,
            max_retries: self.max_retries.map(|n| n as usize),
            retry_timeout: self.retry_timeout,
            connect_timeout: self.connect_timeout,
        }
    }
}

/// A [`Pushdown`] on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct WirePushdown {
    columns: Option<Vec<String>>,
    #[serde(with = "pl")]
    filters: Vec<Expr>,
    limit: Option<u64>,
}

impl WirePushdown {
    pub(crate) fn of(p: &Pushdown) -> WirePushdown {
        WirePushdown {
            columns: p.columns.clone(),
            filters: p.filters.clone(),
            limit: p.limit.map(|n| n as u64),
        }
    }
    pub(crate) fn pushdown(self) -> Pushdown {
        Pushdown {
            columns: self.columns,
            filters: self.filters,
            limit: self.limit.map(|n| n as usize),
        }
    }
}

/// A [`Step`] on the wire (every step but a closure).
#[derive(Serialize, Deserialize)]
pub(crate) enum WireStep {
    Select(#[serde(with = "pl")] Vec<Expr>),
    WithColumns(#[serde(with = "pl")] Vec<Expr>),
    Filter(#[serde(with = "pl")] Expr),
    Rename {
        existing: Vec<String>,
        new: Vec<String>,
    },
    Drop(Vec<String>),
    Cast(#[serde(with = "pl")] Vec<(String, DataType)>),
    FillNull(#[serde(with = "pl")] Expr),
    DropNulls(Option<Vec<String>>),
    GroupAgg {
        #[serde(with = "pl")]
        keys: Vec<Expr>,
        #[serde(with = "pl")]
        aggs: Vec<Expr>,
        fused: Option<crate::fused::FusedAgg>,
        #[serde(with = "pl")]
        combines: Vec<Expr>,
    },
    Head(u64),
    SortBy {
        #[serde(with = "pl")]
        by: Vec<Expr>,
        descending: Vec<bool>,
    },
    Builtin {
        func: crate::ops::Builtin,
        #[serde(with = "schema_ref")]
        schema: SchemaRef,
    },
}

/// The steps on the wire, or an error naming `op` and the first step that cannot leave this
/// process.
pub(crate) fn wire_steps(op: &str, steps: &[Step]) -> Result<Vec<WireStep>> {
    steps
        .iter()
        .map(|s| {
            Ok(match s {
                Step::Select(e) => WireStep::Select(e.clone()),
                Step::WithColumns(e) => WireStep::WithColumns(e.clone()),
                Step::Filter(e) => WireStep::Filter(e.clone()),
                Step::Rename { existing, new } => WireStep::Rename {
                    existing: existing.clone(),
                    new: new.clone(),
                },
                Step::Drop(c) => WireStep::Drop(c.clone()),
                Step::Cast(c) => WireStep::Cast(c.clone()),
                Step::FillNull(e) => WireStep::FillNull(e.clone()),
                Step::DropNulls(s) => WireStep::DropNulls(s.clone()),
                Step::GroupAgg {
                    keys,
                    aggs,
                    fused,
                    combines,
                } => WireStep::GroupAgg {
                    keys: keys.clone(),
                    aggs: aggs.clone(),
                    fused: fused.as_deref().cloned(),
                    combines: combines.clone(),
                },
                Step::Head(n) => WireStep::Head(*n as u64),
                Step::SortBy { by, descending } => WireStep::SortBy {
                    by: by.clone(),
                    descending: descending.clone(),
                },
                Step::Builtin { func, schema } => WireStep::Builtin {
                    func: func.clone(),
                    schema: schema.clone(),
                },
                Step::Map { name, .. } => {
                    return Err(RaskError::Serialization {
                        what: format!("op `{op}`"),
                        message: format!(
                            "its step `{name}` runs a local closure, which cannot be sent to \
                             another process (compute this frame locally, or express the step \
                             with polars expressions)"
                        ),
                    });
                }
            })
        })
        .collect()
}

/// The steps decoded for op `op`; a malformed fused partial is an error naming the op.
pub(crate) fn steps_of(op: &str, wire: Vec<WireStep>) -> Result<Arc<[Step]>> {
    for s in &wire {
        if let WireStep::GroupAgg {
            fused: Some(agg), ..
        } = s
        {
            agg.validate().map_err(|message| RaskError::Serialization {
                what: format!("parameters of op `{op}`"),
                message,
            })?;
        }
    }
    Ok(wire
        .into_iter()
        .map(|s| match s {
            WireStep::Select(e) => Step::Select(e),
            WireStep::WithColumns(e) => Step::WithColumns(e),
            WireStep::Filter(e) => Step::Filter(e),
            WireStep::Rename { existing, new } => Step::Rename { existing, new },
            WireStep::Drop(c) => Step::Drop(c),
            WireStep::Cast(c) => Step::Cast(c),
            WireStep::FillNull(e) => Step::FillNull(e),
            WireStep::DropNulls(s) => Step::DropNulls(s),
            WireStep::GroupAgg {
                keys,
                aggs,
                fused,
                combines,
            } => Step::GroupAgg {
                keys,
                aggs,
                fused: fused.map(Arc::new),
                combines,
            },
            WireStep::Head(n) => Step::Head(n as usize),
            WireStep::SortBy { by, descending } => Step::SortBy { by, descending },
            WireStep::Builtin { func, schema } => Step::Builtin { func, schema },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use polars::prelude::{DataType, Schema};

    use super::*;
    use crate::fused::{FusedAgg, FusedCol, FusedKind};

    fn agg(cols: Vec<FusedCol>) -> FusedAgg {
        let mut schema = Schema::default();
        schema.insert("k".into(), DataType::String);
        for c in &cols {
            schema.insert(c.name.as_str().into(), DataType::Float64);
        }
        FusedAgg {
            key: "k".into(),
            cols,
            schema: Arc::new(schema),
        }
    }

    fn col(
        column: Option<&str>,
        kind: FusedKind,
        name: &str,
        counts_of: Option<usize>,
    ) -> FusedCol {
        FusedCol {
            column: column.map(str::to_string),
            kind,
            name: name.into(),
            counts_of,
        }
    }

    #[test]
    fn malformed_fused_partials_are_errors_naming_the_op() {
        let good = agg(vec![
            col(Some("x"), FusedKind::SumF64, "s", None),
            col(Some("x"), FusedKind::Count, "n", Some(0)),
            col(None, FusedKind::Size, "len", None),
        ]);
        assert!(good.validate().is_ok());
        let step = |a: FusedAgg| WireStep::GroupAgg {
            keys: vec![],
            aggs: vec![],
            fused: Some(a),
            combines: vec![],
        };
        assert!(steps_of("op", vec![step(good)]).is_ok());
        for bad in [
            // A shared count pointing past itself, at a non-sum, or with no column.
            agg(vec![col(Some("x"), FusedKind::Count, "n", Some(3))]),
            agg(vec![
                col(Some("x"), FusedKind::MinF64, "m", None),
                col(Some("x"), FusedKind::Count, "n", Some(0)),
            ]),
            agg(vec![col(None, FusedKind::SumF64, "s", None)]),
        ] {
            let err = steps_of("rask.dataframe.read_csv", vec![step(bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("rask.dataframe.read_csv"), "{err}");
        }
        // Names that differ from the schema.
        let mut renamed = agg(vec![col(Some("x"), FusedKind::SumF64, "s", None)]);
        renamed.cols[0].name = "t".into();
        assert!(renamed.validate().is_err());
    }

    #[test]
    fn frames_round_trip_and_cut_frames_are_errors() {
        let df = polars::prelude::df!("a" => [1i64, 2, 3], "b" => ["x", "y", "z"]).unwrap();
        for frame in [df.clone(), PlFrame::empty_with_height(4), df.slice(1, 1)] {
            let mut bytes = Vec::new();
            write_frame(&frame, &mut bytes).unwrap();
            let back = read_frame(&mut &bytes[..]).unwrap();
            assert!(back.equals_missing(&frame));
            assert_eq!(back.height(), frame.height());
            for cut in 0..bytes.len() {
                assert!(read_frame(&mut &bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}
