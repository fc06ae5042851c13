#!/usr/bin/env python3
"""Flights-like data from other writers: numpy draws, pyarrow (or polars) writes.

rask's own `rask datasets flights` writes through polars (Snappy, 256K-row row groups, plain
float columns). Users' files come from other writers, so the groupby query matrix also runs on
files that pyarrow writes with its defaults: dictionary-encoded columns (floats included),
version-2 data pages, one row group per 1Mi rows, Snappy; and CSV written by pyarrow's CSV
writer (strings quoted, an empty field for a null).

The columns and their distributions follow the polars-written data (same names and dtypes) so
every query of the matrix runs on both, but the values come from another generator (numpy's
PCG64 with a fixed seed), so the two data sets are not the same rows.

With `--writer polars` the same tables are written by polars (Python) instead: plain-encoded
floats, zstd, polars' row groups, unquoted CSV.

  flights_writers.py --dir DIR [--writer pyarrow|polars] [--rows-per-year 2000000]
                     [--years 1990-1999] [--format both]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

AIRPORTS = [
    ("ATL", 9.0), ("ORD", 14.0), ("DFW", 8.5), ("DEN", 11.0), ("LAX", 7.5), ("SFO", 12.5),
    ("JFK", 13.0), ("LAS", 6.0), ("SEA", 5.5), ("CLT", 7.0), ("PHX", 4.5), ("MIA", 10.0),
    ("IAH", 9.5), ("MCO", 8.0), ("EWR", 15.5), ("BOS", 11.5), ("MSP", 6.5), ("DTW", 7.8),
    ("PHL", 10.5), ("LGA", 14.5), ("BWI", 8.2), ("SLC", 3.5), ("SAN", 5.0), ("DCA", 9.2),
]
CARRIERS = ["AA", "DL", "UA", "WN", "US", "NW", "CO", "AS"]


def year_table(year: int, rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, year])
    n_air = len(AIRPORTS)
    names = np.array([a for a, _ in AIRPORTS], dtype=object)
    base = np.array([d for _, d in AIRPORTS])
    month = 1 + (np.arange(rows, dtype=np.int64) * 12 // max(rows, 1))
    day = rng.integers(1, 29, rows, dtype=np.int64)
    o = rng.integers(0, n_air, rows)
    d = rng.integers(0, n_air, rows)
    d = np.where(d == o, (d + 1) % n_air, d)
    crs = 600 + rng.integers(0, 1600, rows, dtype=np.int64)
    cancelled = (rng.integers(0, 50, rows) == 0).astype(np.int64)
    delay = np.maximum(np.round(base[o] + 22.0 * rng.standard_normal(rows)), -30.0)
    arr_delay = np.round(delay + 8.0 * rng.standard_normal(rows))
    dep_time = np.mod(crs + delay.astype(np.int64), 2400)
    mask = cancelled == 1
    carrier = np.array(CARRIERS, dtype=object)[rng.integers(0, len(CARRIERS), rows)]
    return pa.table(
        {
            "Year": pa.array(np.full(rows, year, dtype=np.int64)),
            "Month": pa.array(month),
            "DayofMonth": pa.array(day),
            "DayOfWeek": pa.array(1 + (day + month * 3) % 7),
            "DepTime": pa.array(dep_time, mask=mask),
            "CRSDepTime": pa.array(crs),
            "UniqueCarrier": pa.array(carrier, type=pa.string()),
            "FlightNum": pa.array(1 + rng.integers(0, 3000, rows, dtype=np.int64)),
            "ArrDelay": pa.array(arr_delay, mask=mask),
            "DepDelay": pa.array(delay, mask=mask),
            "Origin": pa.array(names[o], type=pa.string()),
            "Dest": pa.array(names[d], type=pa.string()),
            "Distance": pa.array(100 + rng.integers(0, 2600, rows, dtype=np.int64)),
            "Cancelled": pa.array(cancelled),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rows-per-year", type=int, default=2_000_000)
    ap.add_argument("--years", default="1990-1999")
    ap.add_argument("--format", choices=["parquet", "csv", "both"], default="both")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--writer", choices=["pyarrow", "polars"], default="pyarrow")
    a = ap.parse_args()
    first, last = (int(y) for y in a.years.split("-"))
    os.makedirs(a.dir, exist_ok=True)
    for year in range(first, last + 1):
        t = year_table(year, a.rows_per_year, a.seed)
        if a.writer == "polars":
            import polars as pl

            df = pl.from_arrow(t)
            if a.format in ("parquet", "both"):
                df.write_parquet(os.path.join(a.dir, f"{year}.parquet"))
            if a.format in ("csv", "both"):
                df.write_csv(os.path.join(a.dir, f"{year}.csv"))
            continue
        if a.format in ("parquet", "both"):
            # pyarrow's defaults: dictionary encoding for every column, v2 pages, 1Mi-row
            # row groups, Snappy.
            pq.write_table(t, os.path.join(a.dir, f"{year}.parquet"))
        if a.format in ("csv", "both"):
            pacsv.write_csv(t, os.path.join(a.dir, f"{year}.csv"))


if __name__ == "__main__":
    main()
