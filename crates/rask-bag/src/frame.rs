//! `Bag::to_dataframe`: records into rask's partitioned `DataFrame`.

use rask_dataframe::polars::prelude::{Column, DataFrame as PlFrame, DataType, PlSmallStr, Schema};
use rask_dataframe::{DataFrame, Partition};
use rask_error::{RaskError, Result};
use rask_graph::{Layer, Value};
use serde::Serialize;
use serde_json::Value as J;

use crate::BagData;
use crate::bag::{Bag, derived_token};

/// Builds one column of `dtype` from the field values of a partition (`None`: missing).
fn column(name: &str, dtype: &DataType, vals: &[Option<&J>], part: usize) -> Result<Column> {
    let bad = |k: usize, v: &J| {
        RaskError::invalid_argument(
            "schema",
            format!(
                "to_dataframe: column `{name}` is {dtype}, but item {k} of partition {part} has {v}"
            ),
        )
    };
    let name = PlSmallStr::from(name);
    macro_rules! build {
        ($t:ty, $conv:expr) => {{
            let mut out: Vec<Option<$t>> = Vec::with_capacity(vals.len());
            for (k, v) in vals.iter().enumerate() {
                out.push(match v {
                    None | Some(J::Null) => None,
                    Some(v) => Some($conv(v).ok_or_else(|| bad(k, v))?),
                });
            }
            Column::new(name, out)
        }};
    }
    Ok(match dtype {
        DataType::Int64 => build!(i64, |v: &J| v.as_i64()),
        DataType::Int32 => build!(i32, |v: &J| v.as_i64().and_then(|x| i32::try_from(x).ok())),
        DataType::UInt64 => build!(u64, |v: &J| v.as_u64()),
        DataType::UInt32 => build!(u32, |v: &J| v.as_u64().and_then(|x| u32::try_from(x).ok())),
        DataType::Float64 => build!(f64, |v: &J| v.as_f64()),
        DataType::Float32 => build!(f32, |v: &J| v.as_f64().map(|x| x as f32)),
        DataType::Boolean => build!(bool, |v: &J| v.as_bool()),
        DataType::String => build!(String, |v: &J| v.as_str().map(str::to_string)),
        other => {
            return Err(RaskError::invalid_argument(
                "schema",
                format!(
                    "to_dataframe: column `{name}` has dtype {other}; supported: Int64, Int32, \
                     UInt64, UInt32, Float64, Float32, Boolean, String"
                ),
            ));
        }
    })
}

/// A polars frame of `schema` from serialized items: objects by field name, arrays (and
/// tuples) by position, a bare value as the only column.
fn to_frame(items: &[J], schema: &Schema, part: usize) -> Result<PlFrame> {
    let mut cols = Vec::with_capacity(schema.len());
    for (c, (name, dtype)) in schema.iter().enumerate() {
        let vals: Vec<Option<&J>> = items
            .iter()
            .map(|it| match it {
                J::Object(m) => m.get(name.as_str()),
                J::Array(a) => a.get(c),
                other if schema.len() == 1 => Some(other),
                _ => None,
            })
            .collect();
        cols.push(column(name.as_str(), dtype, &vals, part)?);
    }
    PlFrame::new_infer_height(cols).map_err(RaskError::external)
}

impl<T: BagData + Serialize> Bag<T> {
    /// A rask [`DataFrame`] with one partition per bag partition (Dask's
    /// `Bag.to_dataframe(meta=)`): records become rows through serde, fields by name for
    /// structs and maps, by position for tuples and lists. Missing fields and `null`s are
    /// nulls; a value of another type than its column's is an error naming the column, the
    /// item and the partition.
    pub fn to_dataframe(&self, schema: Schema) -> Result<DataFrame> {
        let token = derived_token("rask.bag.to_dataframe", self.token(), |t| {
            t.write_str(&format!("{schema:?}"))
        });
        let s2 = schema.clone();
        let (tasks, keys) = self.per_partition_layer(
            "bag-to-frame",
            token,
            move |i, items| {
                let mut rows = Vec::new();
                for r in items {
                    rows.push(serde_json::to_value(r?).map_err(RaskError::external)?);
                }
                Ok(Partition(to_frame(&rows, &s2, i)?))
            },
            Value::new::<Partition>,
        );
        let layer = Layer::new(tasks, self.inner.layers.clone());
        DataFrame::from_delayed_parts(
            keys.into_iter().map(|k| (layer.clone(), k)).collect(),
            schema,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_tuples_and_mismatches() {
        let schema = Schema::from_iter([
            ("a".into(), DataType::Int64),
            ("b".into(), DataType::String),
        ]);
        let rows = vec![
            serde_json::json!({"a": 1, "b": "x"}),
            serde_json::json!({"a": null}),
            serde_json::json!([3, "z"]),
        ];
        let df = to_frame(&rows, &schema, 0).unwrap();
        assert_eq!(df.height(), 3);
        let a: Vec<Option<i64>> = df.column("a").unwrap().i64().unwrap().iter().collect();
        assert_eq!(a, [Some(1), None, Some(3)]);
        let err = to_frame(&[serde_json::json!({"a": "no"})], &schema, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a`") && err.contains("partition 4"), "{err}");
    }
}
