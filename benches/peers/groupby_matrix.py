#!/usr/bin/env python3
"""The groupby query matrix (benches/benches/groupby.rs) in DuckDB, Polars streaming and Dask,
and the table that joins their figures with rask's.

Each cell (data, format, query, impl) runs in a fresh subprocess so its peak RSS is its own, and
prints one JSON line: bench, data, format, variant, impl, n, groups, median_s, check,
peak_rss_mb. `check` is the sum of every aggregated column over all groups, rounded to 3
decimals, the figure rask prints.

  groupby_matrix.py run --data DIR [--format parquet|csv|all] [--query NAME|all]
                        [--impl duckdb,polars_streaming,dask] [--repeats 3]
  groupby_matrix.py table FILE.jsonl [--markdown]
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

QUERIES = ["mean", "filter_two_keys", "thousands", "millions", "nunique", "with_columns"]
IMPLS = ["duckdb", "polars_streaming", "dask"]

SQL = {
    "mean": "SELECT Origin, avg(DepDelay) FROM {src} GROUP BY Origin",
    "filter_two_keys": "SELECT Origin, UniqueCarrier, avg(DepDelay), stddev_samp(ArrDelay), count(DepDelay) "
    "FROM {src} WHERE Cancelled = 0 AND Distance > 1000 GROUP BY Origin, UniqueCarrier",
    "thousands": "SELECT FlightNum, sum(ArrDelay), max(DepDelay) FROM {src} GROUP BY FlightNum",
    "millions": "SELECT FlightNum, Month, DayofMonth, avg(DepDelay) FROM {src} GROUP BY FlightNum, Month, DayofMonth",
    "nunique": "SELECT Origin, count(DISTINCT Dest) FROM {src} GROUP BY Origin",
    "with_columns": "SELECT UniqueCarrier, avg(Gain), max(Gain) FROM "
    "(SELECT UniqueCarrier, DepDelay - ArrDelay AS Gain FROM {src}) GROUP BY UniqueCarrier",
}
KEYS = {"filter_two_keys": 2, "millions": 3}


def polars_query(lf, q):
    import polars as pl

    c = pl.col
    if q == "mean":
        return lf.group_by("Origin").agg(c("DepDelay").mean())
    if q == "filter_two_keys":
        return (
            lf.filter((c("Cancelled") == 0) & (c("Distance") > 1000))
            .group_by("Origin", "UniqueCarrier")
            .agg(c("DepDelay").mean(), c("ArrDelay").std(), c("DepDelay").count().alias("n"))
        )
    if q == "thousands":
        return lf.group_by("FlightNum").agg(c("ArrDelay").sum(), c("DepDelay").max())
    if q == "millions":
        return lf.group_by("FlightNum", "Month", "DayofMonth").agg(c("DepDelay").mean())
    if q == "nunique":
        return lf.group_by("Origin").agg(c("Dest").n_unique())
    if q == "with_columns":
        return (
            lf.with_columns((c("DepDelay") - c("ArrDelay")).alias("Gain"))
            .group_by("UniqueCarrier")
            .agg(c("Gain").mean().alias("gain_mean"), c("Gain").max().alias("gain_max"))
        )
    raise SystemExit(f"unknown query {q}")


def dask_query(df, q):
    if q == "mean":
        return df.groupby("Origin").DepDelay.mean()
    if q == "filter_two_keys":
        d = df[(df.Cancelled == 0) & (df.Distance > 1000)]
        return d.groupby(["Origin", "UniqueCarrier"]).agg({"DepDelay": ["mean", "count"], "ArrDelay": "std"})
    if q == "thousands":
        return df.groupby("FlightNum").agg({"ArrDelay": "sum", "DepDelay": "max"})
    if q == "millions":
        return df.groupby(["FlightNum", "Month", "DayofMonth"]).DepDelay.mean(split_out=4)
    if q == "nunique":
        return df.groupby("Origin").Dest.nunique()
    if q == "with_columns":
        d = df.assign(Gain=df.DepDelay - df.ArrDelay)
        return d.groupby("UniqueCarrier").Gain.agg(["mean", "max"])
    raise SystemExit(f"unknown query {q}")


COLUMNS = {
    "mean": ["Origin", "DepDelay"],
    "filter_two_keys": ["Origin", "UniqueCarrier", "DepDelay", "ArrDelay", "Cancelled", "Distance"],
    "thousands": ["FlightNum", "ArrDelay", "DepDelay"],
    "millions": ["FlightNum", "Month", "DayofMonth", "DepDelay"],
    "nunique": ["Origin", "Dest"],
    "with_columns": ["UniqueCarrier", "DepDelay", "ArrDelay"],
}


def check_of(rows_values) -> float:
    total = 0.0
    for v in rows_values:
        if v is not None and v == v:
            total += float(v)
    return round(total, 3)


def cell(data: str, fmt: str, q: str, impl: str, repeats: int) -> dict:
    pattern = os.path.join(data, f"*.{fmt}")
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern}"
    keys = KEYS.get(q, 1)
    if impl == "duckdb":
        import duckdb

        con = duckdb.connect()
        reader = "read_parquet" if fmt == "parquet" else "read_csv"
        sql = SQL[q].format(src=f"{reader}('{pattern}')")

        def fn():
            rows = con.execute(sql).fetchall()
            return len(rows), [v for r in rows for v in r[keys:]]
    elif impl == "polars_streaming":
        import polars as pl

        def fn():
            lf = pl.scan_parquet(pattern) if fmt == "parquet" else pl.scan_csv(pattern)
            out = polars_query(lf, q).collect(engine="streaming")
            return out.height, [v for c in out.columns[keys:] for v in out[c].to_list()]
    elif impl == "dask":
        import dask
        import dask.dataframe as dd

        dask.config.set(scheduler="threads")

        def fn():
            if fmt == "parquet":
                df = dd.read_parquet(files, columns=COLUMNS[q])
            else:
                df = dd.read_csv(files, usecols=COLUMNS[q], dtype={"DepDelay": "float64", "ArrDelay": "float64"})
            out = dask_query(df, q).compute()
            if hasattr(out, "to_frame") and not hasattr(out, "columns"):
                out = out.to_frame()
            return len(out), [v for c in out.columns for v in out[c].tolist()]
    else:
        raise SystemExit(f"unknown impl {impl}")
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    import pyarrow.parquet as pq

    n = sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(glob.glob(os.path.join(data, "*.parquet"))))
    return {
        "bench": f"groupby_{q}",
        "data": os.path.basename(os.path.normpath(data)),
        "format": fmt,
        "variant": impl,
        "impl": impl,
        "n": n,
        "groups": out[0],
        "median_s": statistics.median(times),
        "check": check_of(out[1]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def table(path: str, markdown: bool) -> None:
    recs = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    recs = [r for r in recs if r.get("bench", "").startswith("groupby_") and "format" in r]
    cells = {}
    for r in recs:
        cells.setdefault((r["data"], r["format"], r["bench"][8:]), {})[r["variant"] if r["impl"] != "rask" else "rask" + ("" if r["variant"] == "threads" else f" {r['variant']}")] = r
    head = ["data", "format", "query", "rask s", "best peer", "peer s", "time ratio", "rask MB", "best peer MB", "RSS ratio", "others (s / MB)"]
    lines = []
    order = {q: i for i, q in enumerate(QUERIES)}
    for (data, fmt, q), by in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], order.get(kv[0][2], 99))):
        rask = by.get("rask")
        peers = {k: v for k, v in by.items() if not k.startswith("rask")}
        if not peers:
            continue
        best = min(peers.values(), key=lambda r: r["median_s"])
        best_mem = min(r["peak_rss_mb"] for r in peers.values())
        others = ", ".join(f"{k} {v['median_s']:.2f}/{v['peak_rss_mb']}" for k, v in sorted(peers.items()))
        checks = {k: v["check"] for k, v in by.items()}
        if len({round(c, 1) for c in checks.values()}) > 1:
            others += f" (checks differ: {checks})"
        if rask:
            row = [data, fmt, q, f"{rask['median_s']:.3f}", best["variant"], f"{best['median_s']:.3f}",
                   f"{rask['median_s'] / best['median_s']:.2f}x", str(rask["peak_rss_mb"]), str(best_mem),
                   f"{rask['peak_rss_mb'] / max(best_mem, 1):.2f}x", others]
        else:
            row = [data, fmt, q, "-", best["variant"], f"{best['median_s']:.3f}", "-", "-", str(best_mem), "-", others]
        lines.append(row)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in lines:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in lines:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--format", default="all")
    r.add_argument("--query", default="all")
    r.add_argument("--impl", default=",".join(IMPLS))
    r.add_argument("--repeats", type=int, default=int(os.environ.get("DF_BENCH_REPEATS", "3")))
    r.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    t = sub.add_parser("table")
    t.add_argument("file")
    t.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.cmd == "table":
        table(a.file, a.markdown)
        return
    if a.single:
        print(json.dumps(cell(a.data, a.format, a.query, a.impl, a.repeats)), flush=True)
        return
    fmts = ["parquet", "csv"] if a.format == "all" else a.format.split(",")
    queries = QUERIES if a.query == "all" else a.query.split(",")
    for fmt in fmts:
        for q in queries:
            for impl in a.impl.split(","):
                cmd = [sys.executable, __file__, "run", "--single", "--data", a.data, "--format", fmt,
                       "--query", q, "--impl", impl, "--repeats", str(a.repeats)]
                subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
