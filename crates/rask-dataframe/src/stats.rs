//! Row-group statistics: min/max per column from Parquet footers, and the test of whether a
//! filter may match a row group. Only simple predicates are understood (a column compared with
//! a literal, combined with `&` and `|`); anything else may match, so nothing is skipped
//! wrongly.

use std::cmp::Ordering;
use std::collections::HashMap;

use polars::prelude::{AnyValue, Expr, LiteralValue, Operator, Schema};
use polars_parquet::parquet::metadata::FileMetadata;
use polars_parquet::parquet::statistics::Statistics;

/// A bound value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bound {
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
}

impl Bound {
    fn cmp(&self, other: &Bound) -> Option<Ordering> {
        match (self, other) {
            (Bound::Int(a), Bound::Int(b)) => Some(a.cmp(b)),
            (Bound::Float(a), Bound::Float(b)) => a.partial_cmp(b),
            (Bound::Int(a), Bound::Float(b)) => (*a as f64).partial_cmp(b),
            (Bound::Float(a), Bound::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Bound::Bytes(a), Bound::Bytes(b)) => Some(a.as_slice().cmp(b.as_slice())),
            _ => None,
        }
    }
}

/// Min and max per column of one row group (columns without statistics are absent).
pub(crate) type RowGroupStats = HashMap<String, (Bound, Bound)>;

pub(crate) fn row_group_stats(metadata: &FileMetadata, schema: &Schema) -> Vec<RowGroupStats> {
    metadata
        .row_groups
        .iter()
        .map(|rg| {
            let mut out = HashMap::new();
            for name in schema.iter_names() {
                let Some(cols) = rg.columns_under_root_iter(name) else {
                    continue;
                };
                let cols: Vec<_> = cols.collect();
                if cols.len() != 1 {
                    continue;
                }
                let Some(Ok(stats)) = cols[0].statistics(&metadata.footer_buf) else {
                    continue;
                };
                let bounds = match stats {
                    Statistics::Int32(s) => s
                        .min_value
                        .zip(s.max_value)
                        .map(|(a, b)| (Bound::Int(a as i64), Bound::Int(b as i64))),
                    Statistics::Int64(s) => s
                        .min_value
                        .zip(s.max_value)
                        .map(|(a, b)| (Bound::Int(a), Bound::Int(b))),
                    Statistics::Double(s) => s
                        .min_value
                        .zip(s.max_value)
                        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
                        .map(|(a, b)| (Bound::Float(a), Bound::Float(b))),
                    Statistics::Float(s) => s
                        .min_value
                        .zip(s.max_value)
                        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
                        .map(|(a, b)| (Bound::Float(a as f64), Bound::Float(b as f64))),
                    Statistics::Binary(s) => s
                        .min_value
                        .zip(s.max_value)
                        .map(|(a, b)| (Bound::Bytes(a), Bound::Bytes(b))),
                    _ => None,
                };
                if let Some(b) = bounds {
                    out.insert(name.to_string(), b);
                }
            }
            out
        })
        .collect()
}

fn literal(lv: &LiteralValue) -> Option<Bound> {
    if !matches!(lv, LiteralValue::Dyn(_) | LiteralValue::Scalar(_)) {
        return None;
    }
    match lv.to_any_value()? {
        AnyValue::Int8(v) => Some(Bound::Int(v as i64)),
        AnyValue::Int16(v) => Some(Bound::Int(v as i64)),
        AnyValue::Int32(v) => Some(Bound::Int(v as i64)),
        AnyValue::Int64(v) => Some(Bound::Int(v)),
        AnyValue::UInt8(v) => Some(Bound::Int(v as i64)),
        AnyValue::UInt16(v) => Some(Bound::Int(v as i64)),
        AnyValue::UInt32(v) => Some(Bound::Int(v as i64)),
        AnyValue::Float32(v) => Some(Bound::Float(v as f64)),
        AnyValue::Float64(v) => Some(Bound::Float(v)),
        AnyValue::String(v) => Some(Bound::Bytes(v.as_bytes().to_vec())),
        AnyValue::StringOwned(v) => Some(Bound::Bytes(v.as_bytes().to_vec())),
        _ => None,
    }
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

/// False only when no row of a row group with these statistics can satisfy `expr`.
pub(crate) fn may_match(expr: &Expr, stats: &RowGroupStats) -> bool {
    let Expr::BinaryExpr { left, op, right } = expr else {
        return true;
    };
    match op {
        Operator::And | Operator::LogicalAnd => {
            return may_match(left, stats) && may_match(right, stats);
        }
        Operator::Or | Operator::LogicalOr => {
            return may_match(left, stats) || may_match(right, stats);
        }
        _ => {}
    }
    let (name, value, op) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(l)) => (c, l, *op),
        (Expr::Literal(l), Expr::Column(c)) => (c, l, flip(*op)),
        _ => return true,
    };
    let (Some((min, max)), Some(v)) = (stats.get(name.as_str()), literal(value)) else {
        return true;
    };
    let (Some(v_min), Some(v_max)) = (v.cmp(min), v.cmp(max)) else {
        return true;
    };
    use Ordering::*;
    match op {
        // Some x with min <= x <= max could equal v only when min <= v <= max.
        Operator::Eq => v_min != Less && v_max != Greater,
        Operator::Gt => v_max == Less,      // x > v needs max > v
        Operator::GtEq => v_max != Greater, // max >= v
        Operator::Lt => v_min == Greater,   // min < v
        Operator::LtEq => v_min != Less,    // min <= v
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{col, lit};

    fn stats(min: i64, max: i64) -> RowGroupStats {
        HashMap::from([("x".to_string(), (Bound::Int(min), Bound::Int(max)))])
    }

    #[test]
    fn comparisons_against_min_max() {
        let s = stats(10, 20);
        assert!(may_match(&col("x").eq(lit(10)), &s));
        assert!(may_match(&col("x").eq(lit(20)), &s));
        assert!(!may_match(&col("x").eq(lit(21)), &s));
        assert!(!may_match(&col("x").gt(lit(20)), &s));
        assert!(may_match(&col("x").gt(lit(19)), &s));
        assert!(may_match(&col("x").gt_eq(lit(20)), &s));
        assert!(!may_match(&col("x").lt(lit(10)), &s));
        assert!(may_match(&col("x").lt_eq(lit(10)), &s));
        assert!(
            !may_match(&lit(5).gt(col("x")), &s),
            "literal on the left flips"
        );
        assert!(!may_match(
            &col("x").gt(lit(30)).and(col("x").lt(lit(15))),
            &s
        ));
        assert!(may_match(
            &col("x").gt(lit(30)).or(col("x").lt(lit(15))),
            &s
        ));
        assert!(!may_match(
            &col("x").gt(lit(30)).or(col("x").lt(lit(5))),
            &s
        ));
        // Unknown columns and unsupported expressions may match.
        assert!(may_match(&col("y").eq(lit(1)), &s));
        assert!(may_match(&(col("x") + lit(1)).eq(lit(100)), &s));
        assert!(may_match(&col("x").gt(lit(2.5)), &s));
        assert!(!may_match(&col("x").gt(lit(20.5)), &s));
    }
}
