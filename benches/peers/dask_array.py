#!/usr/bin/env python3
"""The array seed workloads in Dask (threaded scheduler) and NumPy, printing one JSON line per
measurement in the shape benches/peers/report.py joins with rask's `--bench array` output.

Each (case, impl) runs in a fresh subprocess so peak RSS figures are its own.

  dask_array.py [--case linspace_sum|normal_mean|out_of_core_sum|all] [--impl dask|numpy|all]
                [--n 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def run_case(case: str, impl: str, n: int, repeats: int) -> dict:
    import numpy as np

    if case == "linspace_sum":
        if impl == "dask":
            import dask.array as da

            fn = lambda: da.linspace(1, 10, 1_000_000, chunks=1000).sum().compute(scheduler="threads")
        else:
            fn = lambda: np.linspace(1, 10, 1_000_000).sum()
        t, out = timed(fn, repeats)
        assert abs(out - 5.5e6) < 1e-3, out
        return {"bench": "linspace_sum", "n": 1_000_000, "median_s": t}
    if case == "normal_mean":
        if impl == "dask":
            import dask.array as da

            def fn():
                x = da.random.default_rng(42).normal(10, 0.1, size=(n, n), chunks=(1000, 1000))
                return x.mean(axis=0)[::100].compute(scheduler="threads")
        else:

            def fn():
                x = np.random.default_rng(42).normal(10, 0.1, size=(n, n))
                return x.mean(axis=0)[::100]

        t, out = timed(fn, repeats)
        assert len(out) == -(-n // 100)
        return {"bench": "normal_mean", "n": n, "median_s": t}
    if case == "out_of_core_sum":
        if impl == "dask":
            import dask.array as da

            fn = lambda: da.random.default_rng(7).uniform(0, 1, size=(8000, 8000), chunks=(1000, 1000)).sum().compute(
                scheduler="threads"
            )
        else:
            fn = lambda: np.random.default_rng(7).uniform(0, 1, size=(8000, 8000)).sum()
        t, out = timed(fn, 1)
        assert abs(out / 64e6 - 0.5) < 1e-3
        return {"bench": "out_of_core_sum", "n": 8000, "median_s": t}
    raise SystemExit(f"unknown case {case}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="all")
    p.add_argument("--impl", default="all")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        rec = run_case(a.case, a.impl, a.n, a.repeats)
        rss = peak_rss_bytes()
        rec.update({"impl": a.impl, "peak_rss_bytes": rss, "peak_rss_mb": rss / 1e6})
        print(json.dumps(rec), flush=True)
        return
    cases = ["linspace_sum", "normal_mean", "out_of_core_sum"] if a.case == "all" else [a.case]
    impls = ["dask", "numpy"] if a.impl == "all" else [a.impl]
    for case in cases:
        for impl in impls:
            repeats = a.repeats if case != "normal_mean" else min(a.repeats, 2)
            cmd = [sys.executable, __file__, "--child", "--case", case, "--impl", impl, "--n", str(a.n), "--repeats", str(repeats)]
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
