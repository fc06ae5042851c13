#!/usr/bin/env python3
"""Dask distributed peer of rask's `cluster` benchmark suite (benches/compare.sh cluster).

A LocalCluster of 2 worker processes with 1 thread each, as rask's bench uses:

* ``cluster_inc_add`` -- N ``inc`` delayed tasks plus a pairwise tree of ``add``
  (2N - 1 tasks), computed on the cluster; build + submit + result are timed.
* ``cluster_roundtrip`` -- one ``client.submit(inc, i).result()``, median of many.
* ``cluster_transfer`` -- a 256 MB float64 NumPy block made on one worker, then
  read by a task pinned to the other worker; the time of that task's
  submit-to-result minus a trivial pinned task's, as GB/s.

Prints one JSON object per line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def build(n):
    import dask

    level = [dask.delayed(inc, pure=False)(i) for i in range(n)]
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            if j + 1 < len(level):
                nxt.append(dask.delayed(add, pure=False)(level[j], level[j + 1]))
            else:
                nxt.append(level[j])
        level = nxt
    return level[0]


def make_block(n):
    import numpy as np

    return np.arange(n, dtype=np.float64)


def first(x):
    return float(x[12345])


def ident(x):
    return x


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="10000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--roundtrips", type=int, default=200)
    a = ap.parse_args()

    import dask
    import distributed
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    meta = {"impl": "dask", "dask": dask.__version__, "distributed": distributed.__version__}

    for n in [int(x) for x in a.n.split(",")]:
        tasks = 2 * n - 1
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            total = build(n)
            got = client.compute(total).result()
            times.append(time.perf_counter() - t)
            assert got == sum(i + 1 for i in range(n)), got
            sys.stderr.write(f"dask cluster_inc_add n={n}: {times[-1]:.2f} s\n")
        med = statistics.median(times)
        print(json.dumps({"bench": "cluster_inc_add", "n": n, "scheduler": "cluster-2x1",
                          "tasks": tasks, "median_s": med, "us_per_task": med * 1e6 / tasks, **meta}))

    for i in range(20):
        client.submit(inc, i, pure=False).result()
    rtts = []
    for i in range(a.roundtrips):
        t = time.perf_counter()
        assert client.submit(inc, i, pure=False).result() == i + 1
        rtts.append(time.perf_counter() - t)
    rtts.sort()
    print(json.dumps({"bench": "cluster_roundtrip", "n": 1, "scheduler": "cluster-2x1",
                      "median_s": rtts[len(rtts) // 2], "p90_s": rtts[len(rtts) * 9 // 10], **meta}))

    workers = sorted(client.scheduler_info()["workers"])
    n = 32 * 1024 * 1024
    rates = []
    for _ in range(a.repeats):
        blk = client.submit(make_block, n, workers=[workers[0]], pure=False)
        distributed.wait(blk)
        t = time.perf_counter()
        client.submit(ident, 0.0, workers=[workers[1]], pure=False).result()
        base = time.perf_counter() - t
        t = time.perf_counter()
        v = client.submit(first, blk, workers=[workers[1]], pure=False).result()
        dt = time.perf_counter() - t - base
        assert v == 12345.0
        rates.append(n * 8 / max(dt, 1e-9) / 1e9)
        del blk
    rate = statistics.median(rates)
    print(json.dumps({"bench": "cluster_transfer", "n": n * 8, "scheduler": "cluster-2x1",
                      "median_s": n * 8 / rate / 1e9, "gb_per_s": rate, **meta}))
    client.close()
    cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
