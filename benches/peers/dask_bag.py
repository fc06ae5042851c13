#!/usr/bin/env python3
"""dask.bag on the bag suite's workloads (benches/benches/bag.rs does the same in rask).

Reads the files the Rust bench writes (BAG_BENCH_DATA, default benches/data/bag):
  bag_word_count   words/*.txt: split lines into words, strip ASCII punctuation,
                   lowercase, frequencies, top 10.
  bag_json_mean    accounts/*.jsonl: json.loads, records named Alice, their
                   transactions' mean amount.
  bag_json_cities  accounts/*.jsonl: json.loads, address.city frequencies, top 3.
One partition per file on both sides. Prints one JSON line per (bench, scheduler)
with the median of --repeats runs (after one warm-up run) and the peak RSS of the
process tree (the worker processes included for the multiprocessing scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import string
import time

import dask
import dask.bag as db

PUNCT = string.punctuation


def words(line: str) -> list[str]:
    out = []
    for w in line.split():
        w = w.strip(PUNCT).lower()
        if w:
            out.append(w)
    return out


def word_count(data: str):
    b = db.read_text(os.path.join(data, "words", "*.txt"))
    return b.map(words).flatten().frequencies().topk(10, key=lambda p: (p[1], [-ord(c) for c in p[0]]))


def json_mean(data: str):
    recs = db.read_text(os.path.join(data, "accounts", "*.jsonl")).map(json.loads)
    return recs.filter(lambda r: r["name"] == "Alice").pluck("transactions").flatten().pluck("amount").mean()


def json_cities(data: str):
    recs = db.read_text(os.path.join(data, "accounts", "*.jsonl")).map(json.loads)
    return recs.pluck("address").pluck("city").frequencies().topk(3, key=lambda p: p[1])


BENCHES = {
    "bag_word_count": (word_count, "words", ".txt"),
    "bag_json_mean": (json_mean, "accounts", ".jsonl"),
    "bag_json_cities": (json_cities, "accounts", ".jsonl"),
}


def input_bytes(data: str, sub: str, ext: str) -> int:
    d = os.path.join(data, sub)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(ext))


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("BAG_BENCH_DATA", os.path.join(here, "..", "data", "bag")))
    ap.add_argument("--bench", default="all")
    ap.add_argument("--schedulers", default="processes,threads")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    benches = list(BENCHES) if a.bench == "all" else a.bench.split(",")
    for name in benches:
        build, sub, ext = BENCHES[name]
        n = input_bytes(a.data, sub, ext)
        for sched in a.schedulers.split(","):
            with dask.config.set(scheduler=sched):
                out = build(a.data).compute()  # warm-up: imports, page cache, pool start
                times = []
                for _ in range(a.repeats):
                    t = time.perf_counter()
                    out = build(a.data).compute()
                    times.append(time.perf_counter() - t)
            med = statistics.median(times)
            print(json.dumps({
                "bench": name,
                "n": n,
                "scheduler": sched,
                "impl": "dask",
                "median_s": med,
                "mb_per_s": n / 2**20 / med,
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "check": str(out)[:200],
            }), flush=True)


if __name__ == "__main__":
    main()
