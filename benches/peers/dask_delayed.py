#!/usr/bin/env python3
"""Dask peer of rask's `delayed` benchmark suite (benches/compare.sh delayed).

Workloads (identical in shape to the Rust bench):

* ``delayed_inc_add`` -- N independent ``inc(i)`` delayed tasks, reduced by a
  pairwise tree of ``add`` built level by level (add(a0,a1), add(a2,a3), ...,
  an odd last element is carried up unchanged), so N + (N - 1) tasks in all.
  Timed part: ``dask.compute(total, scheduler=S)``; building the delayed graph
  is excluded from it and reported separately as ``build_s``.
* ``graph_build_order`` -- builds the same graph, materializes the task dict
  (``dict(total.__dask_graph__())``) and runs ``dask.order.order`` on it; the
  whole of that is timed. (Dask's own optimize pass, a cull that ``compute``
  runs, is not included: the figure is a lower bound on Dask's time from user
  code to the first task.)
* ``delayed_build`` -- building the delayed graph alone, as rask's bench
  reports it: the median of the build times measured by the runs above for
  that N (emitted last, one record per N).

Prints one JSON object per line on stdout, in the same shape as the Rust bench
(``bench``, ``n``, ``scheduler``, ``tasks``, ``median_s``, ``us_per_task``) plus
``impl: "dask"``, versions and memory figures. Progress goes to stderr.

By default every (bench, n, scheduler) measurement runs in a fresh Python
process, so that ``peak_rss_mb`` (ru_maxrss) belongs to that workload alone and
one measurement's garbage does not slow the next; ``--no-isolate`` runs them all
in this process instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

BENCHES = ("delayed_inc_add", "graph_build_order")


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        return r / (1024 * 1024)
    return r / 1024


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None


def build_graph(n: int):
    """The delayed inc/add tree; returns (total, task_count)."""
    from dask import delayed

    dinc = delayed(inc, pure=True)
    dadd = delayed(add, pure=True)
    level = [dinc(i) for i in range(n)]
    tasks = len(level)
    while len(level) > 1:
        nxt = [dadd(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        tasks += len(nxt)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0], tasks


def expected_total(n: int) -> int:
    # sum(i + 1 for i in range(n))
    return n * (n + 1) // 2


def common_fields() -> dict:
    import dask

    return {
        "impl": "dask",
        "dask_version": dask.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def bench_inc_add(n: int, scheduler: str, repeats: int, base_rss: float | None) -> dict:
    import dask

    t0 = time.perf_counter()
    total, tasks = build_graph(n)
    build_s = time.perf_counter() - t0
    assert tasks == 2 * n - 1, (tasks, n)

    want = expected_total(n)
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        (got,) = dask.compute(total, scheduler=scheduler)
        times.append(time.perf_counter() - t0)
        if got != want:
            raise SystemExit(f"delayed_inc_add n={n} scheduler={scheduler}: got {got}, want {want}")

    med = statistics.median(times)
    rec = {
        "bench": "delayed_inc_add",
        "n": n,
        "scheduler": scheduler,
        "tasks": tasks,
        "median_s": med,
        "us_per_task": med / tasks * 1e6,
        "min_s": min(times),
        "times_s": times,
        "repeats": repeats,
        "build_s": build_s,
        "build_us_per_task": build_s / tasks * 1e6,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "base_rss_mb": base_rss,
    }
    if scheduler in ("threads", "threading"):
        # dask's threaded scheduler defaults to a pool of CPU_COUNT workers.
        from dask.system import CPU_COUNT

        rec["workers"] = CPU_COUNT
    rec.update(common_fields())
    return rec


def bench_build_order(n: int, repeats: int, base_rss: float | None) -> dict:
    from dask.order import order

    times, builds, mats, orders = [], [], [], []
    tasks = 0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        total, _ = build_graph(n)
        t1 = time.perf_counter()
        dsk = dict(total.__dask_graph__())
        t2 = time.perf_counter()
        o = order(dsk)
        t3 = time.perf_counter()
        tasks = len(dsk)
        if tasks != 2 * n - 1 or len(o) != tasks:
            raise SystemExit(f"graph_build_order n={n}: {tasks} tasks, {len(o)} ordered, want {2 * n - 1}")
        times.append(t3 - t0)
        builds.append(t1 - t0)
        mats.append(t2 - t1)
        orders.append(t3 - t2)
        del total, dsk, o

    med = statistics.median(times)
    rec = {
        "bench": "graph_build_order",
        "n": n,
        "tasks": tasks,
        "median_s": med,
        "us_per_task": med / tasks * 1e6,
        "min_s": min(times),
        "times_s": times,
        "repeats": repeats,
        "build_s": statistics.median(builds),
        "build_times_s": builds,
        "materialize_s": statistics.median(mats),
        "order_s": statistics.median(orders),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "base_rss_mb": base_rss,
    }
    rec.update(common_fields())
    return rec


def run_one(bench: str, n: int, scheduler: str | None, repeats: int) -> dict:
    import dask  # noqa: F401  (import before measuring the baseline RSS)
    import dask.order  # noqa: F401

    base = current_rss_mb()
    base = round(base, 1) if base is not None else None
    if bench == "delayed_inc_add":
        return bench_inc_add(n, scheduler, repeats, base)
    return bench_build_order(n, repeats, base)


def parse_ns(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        part = part.strip().replace("_", "")
        if part:
            out.append(int(float(part)))  # accepts 1e6 too
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"bad N list: {s!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default="all", choices=BENCHES + ("all",))
    p.add_argument("--n", type=parse_ns, default=[100_000],
                   help="N, or a comma-separated list (default 100000)")
    p.add_argument("--order-n", type=parse_ns, default=None,
                   help="N list for graph_build_order when --bench all "
                        "(default: 100000,1000000, as rask's bench)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of delayed_inc_add (default 3)")
    p.add_argument("--order-repeats", type=int, default=None,
                   help="repeats of graph_build_order (default: --repeats when --bench "
                        "graph_build_order, else 1)")
    p.add_argument("--schedulers", default="sync,threads",
                   help="comma-separated dask schedulers (default sync,threads)")
    p.add_argument("--no-isolate", action="store_true",
                   help="run every measurement in this process (peak RSS then accumulates)")
    p.add_argument("--one", nargs=3, metavar=("BENCH", "N", "SCHED"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.one:  # child process of the isolated mode
        bench, n, sched = a.one[0], int(a.one[1]), (None if a.one[2] == "-" else a.one[2])
        print(json.dumps(run_one(bench, n, sched, a.repeats)), flush=True)
        return 0

    schedulers = [s.strip() for s in a.schedulers.split(",") if s.strip()]
    jobs = []  # (bench, n, scheduler, repeats)
    if a.bench in ("delayed_inc_add", "all"):
        jobs += [("delayed_inc_add", n, s, a.repeats) for n in a.n for s in schedulers]
    if a.bench == "graph_build_order":
        reps = a.order_repeats or a.repeats
        jobs += [("graph_build_order", n, None, reps) for n in (a.order_n or a.n)]
    elif a.bench == "all":
        reps = a.order_repeats or 1
        jobs += [("graph_build_order", n, None, reps) for n in (a.order_n or [100_000, 1_000_000])]

    builds: dict[int, list[float]] = {}  # n -> build times seen, for delayed_build
    for bench, n, sched, reps in jobs:
        label = f"{bench} n={n}" + (f" scheduler={sched}" if sched else "") + f" repeats={reps}"
        print(f"[dask] {label} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if a.no_isolate:
            line = json.dumps(run_one(bench, n, sched, reps))
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--repeats", str(reps),
                   "--one", bench, str(n), sched or "-"]
            res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if res.returncode != 0:
                print(f"[dask] {label} failed (exit {res.returncode})", file=sys.stderr)
                return res.returncode
            line = res.stdout.strip().splitlines()[-1]
        rec = json.loads(line)
        print(f"[dask]   median {rec['median_s']:.3f} s, {rec['us_per_task']:.2f} us/task, "
              f"peak RSS {rec['peak_rss_mb']:.0f} MB ({time.perf_counter() - t0:.1f} s wall)",
              file=sys.stderr, flush=True)
        print(line, flush=True)
        builds.setdefault(n, []).extend(rec.get("build_times_s") or [rec["build_s"]])

    for n, times in builds.items():
        med = statistics.median(times)
        rec = {"bench": "delayed_build", "n": n, "tasks": 2 * n - 1, "median_s": med,
               "us_per_task": med / (2 * n - 1) * 1e6, "min_s": min(times), "times_s": times,
               "repeats": len(times)}
        rec.update(common_fields())
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
