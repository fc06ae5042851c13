#!/usr/bin/env python3
"""The DataFrame seed workload in Dask, Polars (eager and streaming) and DuckDB: mean DepDelay
per Origin over the yearly flights files, from Parquet and from CSV. Prints one JSON line per
measurement (bench, variant, n, median_s, check, impl, peak_rss_mb) in the shape
benches/peers/report.py joins with rask's `--bench dataframe` output. `check` is the sum of the
per-origin means rounded to 6 digits, the same figure rask prints, so results are comparable.

Each (format, impl) runs in a fresh subprocess so its peak RSS is its own.

  dataframe_peers.py --data DIR [--format parquet|csv|all] [--impl dask|polars|polars_streaming|duckdb|all]
                     [--repeats 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import time

IMPLS = ["dask", "polars", "polars_streaming", "duckdb"]


def run(fmt: str, impl: str, data: str, repeats: int) -> dict:
    pattern = os.path.join(data, f"*.{fmt}")
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern}"
    if impl == "dask":
        import dask
        import dask.dataframe as dd

        dask.config.set(scheduler="threads")

        def fn():
            if fmt == "parquet":
                df = dd.read_parquet(files, columns=["Origin", "DepDelay"])
            else:
                df = dd.read_csv(files, usecols=["Origin", "DepDelay"], dtype={"DepDelay": "float64"})
            return df.groupby("Origin").DepDelay.mean().compute().to_dict()
    elif impl in ("polars", "polars_streaming"):
        import polars as pl

        def fn():
            if impl == "polars":
                df = pl.read_parquet(pattern) if fmt == "parquet" else pl.read_csv(pattern)
                out = df.group_by("Origin").agg(pl.col("DepDelay").mean())
            else:
                lf = pl.scan_parquet(pattern) if fmt == "parquet" else pl.scan_csv(pattern)
                out = lf.group_by("Origin").agg(pl.col("DepDelay").mean()).collect(engine="streaming")
            return dict(zip(out["Origin"].to_list(), out["DepDelay"].to_list()))
    elif impl == "duckdb":
        import duckdb

        con = duckdb.connect()
        reader = "read_parquet" if fmt == "parquet" else "read_csv"

        def fn():
            rows = con.execute(f"SELECT Origin, avg(DepDelay) FROM {reader}('{pattern}') GROUP BY Origin").fetchall()
            return dict(rows)
    else:
        raise SystemExit(f"unknown impl {impl}")
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    check = round(sum(v for v in out.values() if v is not None), 6)
    import polars as pl

    n = pl.scan_parquet(os.path.join(data, "*.parquet")).select(pl.len()).collect().item()
    return {
        "bench": f"groupby_mean_{fmt}",
        "variant": impl,
        "n": n,
        "median_s": statistics.median(times),
        "check": check,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--format", default="all")
    ap.add_argument("--impl", default="all")
    ap.add_argument("--repeats", type=int, default=int(os.environ.get("DF_BENCH_REPEATS", "3")))
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.single:
        rec = run(a.format, a.impl, a.data, a.repeats)
        rec["impl"] = a.impl.split("_")[0]
        print(json.dumps(rec), flush=True)
        return
    fmts = ["parquet", "csv"] if a.format == "all" else [a.format]
    impls = IMPLS if a.impl == "all" else a.impl.split(",")
    for fmt in fmts:
        for impl in impls:
            cmd = [sys.executable, __file__, "--single", "--data", a.data, "--format", fmt, "--impl", impl, "--repeats", str(a.repeats)]
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
