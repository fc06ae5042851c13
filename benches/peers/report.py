#!/usr/bin/env python3
"""Collect and join benchmark JSON lines from rask and its peers (stdlib only).

Used by benches/compare.sh:

  report.py collect --impl rask --out FILE.jsonl   < bench output
      Keeps the lines of stdin that are JSON objects with a "bench" field, adds
      "impl" to those that lack it, and appends them to FILE. Every other line
      (cargo/criterion chatter, progress) is echoed to stderr and ignored.
      --summary echoes a one-line summary of each record to stderr as well.

  report.py meta --suite NAME --out FILE.jsonl
      Appends one {"meta": ...} record (date, git commit, rustc, python, CPU).

  report.py table FILE.jsonl [FILE2.jsonl ...] [--format text|markdown]
      Joins the records on (bench, n, scheduler[, variant]) and prints one row
      per key: rask's median time, each peer's median time and the ratio
      peer/rask (> 1 means rask is faster), then us/task for rask and the peers.
      A later record with the same key and impl replaces an earlier one.

Record shape (what the Rust benches and the peer scripts print):
  {"bench": str, "n": int, "scheduler": str (optional), "variant": str
   (optional), "tasks": int (optional), "median_s": float, "us_per_task":
   float (optional; derived from median_s / tasks), "peak_rss_mb": float
   (optional), "impl": "rask" | "dask" | ... (added by `collect` if missing)}
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys

BASELINE = "rask"

# Scheduler spellings that mean the same thing on both sides.
SCHED_ALIASES = {
    "synchronous": "sync",
    "single-threaded": "sync",
    "single_threaded": "sync",
    "threaded": "threads",
    "threading": "threads",
    "thread": "threads",
    "threadpool": "threads",
    "thread-pool": "threads",
    "multiprocessing": "processes",
    "process": "processes",
}

SCHED_ORDER = {"": 0, "sync": 1, "threads": 2, "processes": 3}


def parse_record(line: str):
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    return rec


def cmd_collect(a) -> int:
    n = 0
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "a") as out:
        for line in sys.stdin:
            rec = parse_record(line)
            if rec is None or "bench" not in rec:
                sys.stderr.write(line)
                sys.stderr.flush()
                continue
            rec.setdefault("impl", a.impl)
            out.write(json.dumps(rec) + "\n")
            out.flush()
            n += 1
            if a.summary:
                sys.stderr.write(f"[{rec['impl']}] {summary(rec)}\n")
                sys.stderr.flush()
    if n == 0 and not a.allow_empty:
        sys.stderr.write(f"report.py collect: no benchmark records from {a.impl}\n")
        return 1
    return 0


def summary(rec: dict) -> str:
    parts = [str(rec.get("bench"))]
    if rec.get("n") is not None:
        parts.append(f"n={rec['n']}")
    if isinstance(rec.get("rss_bytes"), (int, float)):
        parts.append(f"peak RSS {rec['rss_bytes'] / 2**20:.0f} MB")
    if rec.get("scheduler"):
        parts.append(f"scheduler={rec['scheduler']}")
    if rec.get("variant"):
        parts.append(f"variant={rec['variant']}")
    med = rec.get("median_s")
    if isinstance(med, (int, float)):
        parts.append(f"median {med:.4g} s")
    upt = us_per_task(rec)
    if upt is not None:
        parts.append(f"{upt:.3g} us/task")
    return " ".join(parts)


def _run(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cmd_meta(a) -> int:
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    meta = {
        "suite": a.suite,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _run(["git", "-C", root, "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"])),
        "rustc": _run(["rustc", "-V"]),
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "a") as out:
        out.write(json.dumps({"meta": meta}) + "\n")
    return 0


def us_per_task(rec: dict):
    v = rec.get("us_per_task")
    if isinstance(v, (int, float)):
        return float(v)
    med, tasks = rec.get("median_s"), rec.get("tasks")
    if isinstance(med, (int, float)) and isinstance(tasks, (int, float)) and tasks > 0:
        return med / tasks * 1e6
    return None


def norm_sched(s) -> str:
    if not s:
        return ""
    s = str(s).strip().lower()
    return SCHED_ALIASES.get(s, s)


def load(paths):
    """-> (rows: {key: {impl: rec}}, key order, impl order, metas, extras)

    Records without a median_s (e.g. rask's whole-process {"bench":
    "delayed_peak_rss", "rss_bytes": ...}) are not table rows: they go to extras.
    """
    rows, keys, impls, metas, extras = {}, [], [], [], []
    for path in paths:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                rec = parse_record(line)
                if rec is None:
                    if line.strip():
                        sys.stderr.write(f"{path}:{lineno}: not a JSON object, skipped\n")
                    continue
                if "meta" in rec:
                    metas.append(rec["meta"])
                    continue
                if "bench" not in rec:
                    continue
                impl = str(rec.get("impl") or BASELINE)
                if not isinstance(rec.get("median_s"), (int, float)):
                    extras.append((impl, rec))
                    continue
                key = (str(rec["bench"]), rec.get("n"), norm_sched(rec.get("scheduler")),
                       str(rec.get("variant") or ""))
                if key not in rows:
                    rows[key] = {}
                    keys.append(key)
                rows[key][impl] = rec
                if impl not in impls:
                    impls.append(impl)
    return rows, keys, impls, metas, extras


def fmt_s(v) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def fmt_us(v) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(peer, base) -> str:
    if not isinstance(peer, (int, float)) or not isinstance(base, (int, float)) or base <= 0:
        return "-"
    r = peer / base
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def cmd_table(a) -> int:
    rows, keys, impls, metas, extras = load(a.files)
    if not keys:
        sys.stderr.write("report.py table: no benchmark records\n")
        return 1
    peers = [i for i in impls if i != BASELINE]
    bench_first = {}
    for k in keys:
        bench_first.setdefault(k[0], len(bench_first))
    keys.sort(key=lambda k: (bench_first[k[0]], k[3], k[1] if isinstance(k[1], (int, float)) else 0,
                             SCHED_ORDER.get(k[2], 99), k[2]))

    show_variant = any(k[3] for k in keys)
    head = ["bench", "n"] + (["variant"] if show_variant else []) + ["scheduler", "tasks",
                                                                     f"{BASELINE} s"]
    for p in peers:
        head += [f"{p} s", f"{p}/{BASELINE}"]
    head += [f"{BASELINE} us/task"] + [f"{p} us/task" for p in peers]
    # Peak-RSS columns for the impls that report it per measurement.
    rss_impls = [i for i in [BASELINE] + peers
                 if any("peak_rss_mb" in row.get(i, {}) for row in rows.values())]
    head += [f"{i} MB" for i in rss_impls]

    body, notes = [], []
    for k in keys:
        row = rows[k]
        base = row.get(BASELINE, {})
        tasks = base.get("tasks")
        for p in peers:
            pt = row.get(p, {}).get("tasks")
            if tasks is None:
                tasks = pt
            elif pt is not None and pt != tasks:
                notes.append(f"{k[0]} n={k[1]}{' ' + k[2] if k[2] else ''}: task counts differ "
                             f"({BASELINE} {tasks}, {p} {pt})")
        cells = [k[0], str(k[1])] + ([k[3] or "-"] if show_variant else []) + \
                [k[2] or "-", str(tasks) if tasks is not None else "-", fmt_s(base.get("median_s"))]
        for p in peers:
            med = row.get(p, {}).get("median_s")
            cells += [fmt_s(med), fmt_ratio(med, base.get("median_s"))]
        cells += [fmt_us(us_per_task(base)) if base else "-"]
        cells += [fmt_us(us_per_task(row[p])) if p in row else "-" for p in peers]
        for impl in rss_impls:
            mb = row.get(impl, {}).get("peak_rss_mb")
            cells.append(f"{mb:.0f}" if isinstance(mb, (int, float)) else "-")
        body.append(cells)

    if a.format == "markdown":
        print("| " + " | ".join(head) + " |")
        text_cols = {"bench", "variant", "scheduler"}
        print("|" + "|".join("---" if h in text_cols else "---:" for h in head) + "|")
        for cells in body:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(head)]
        left = 2 + (1 if show_variant else 0) + 1  # bench, n, [variant], scheduler
        def line(cells):
            return "  ".join(c.ljust(w) if i < left and i != 1 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        print(line(head))
        print("  ".join("-" * w for w in widths))
        for cells in body:
            print(line(cells))

    if peers:
        print(f"\n{'/'.join(peers)}/{BASELINE} = peer median time / {BASELINE} median time "
              f"(> 1: {BASELINE} is faster). Times are medians in seconds.")
    if rss_impls:
        print(f"{' / '.join(i + ' MB' for i in rss_impls)}: peak RSS of the process that ran "
              "that measurement.")
    for impl, rec in extras:
        if isinstance(rec.get("rss_bytes"), (int, float)):
            print(f"{impl} peak RSS of the whole bench process ({rec['bench']}): "
                  f"{rec['rss_bytes'] / 2**20:.0f} MB")
    for m in metas[-1:]:
        bits = [m.get("date"), m.get("git_commit") and f"commit {m['git_commit']}"
                + (" (dirty)" if m.get("git_dirty") else ""), m.get("cpu"),
                m.get("cpus") and f"{m['cpus']} cpus", m.get("rustc")]
        print("run: " + ", ".join(str(b) for b in bits if b))
    for r in (rows[k].get(p) for k in keys for p in peers):
        if r and r.get("dask_version"):
            print(f"dask {r['dask_version']}, python {r.get('python')}")
            break
    for n in notes:
        print("warning: " + n)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Join rask and peer benchmark JSON lines.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="filter JSON records from stdin into a .jsonl file")
    c.add_argument("--impl", required=True, help="impl name for records lacking one")
    c.add_argument("--out", required=True)
    c.add_argument("--allow-empty", action="store_true")
    c.add_argument("--summary", action="store_true", help="echo a one-line summary of each record")
    m = sub.add_parser("meta", help="append a run-metadata record")
    m.add_argument("--suite", required=True)
    m.add_argument("--out", required=True)
    t = sub.add_parser("table", help="print the side-by-side table")
    t.add_argument("files", nargs="+")
    t.add_argument("--format", choices=("text", "markdown"), default="text")
    a = p.parse_args(argv)
    return {"collect": cmd_collect, "meta": cmd_meta, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
