#!/usr/bin/env bash
# Side-by-side benchmarks: rask against its Python peers (Dask, later polars,
# duckdb, ...) on the same workloads, in one run.
#
# usage: benches/compare.sh [SUITE] [--rask-only | --peers-only]
#        benches/compare.sh --report FILE.jsonl [--markdown]
#
# Suites: delayed (default), array, cluster, groupby (the query matrix: six groupby shapes over
# Parquet and CSV from pyarrow and polars, see suite_groupby), dataframe (DF_BENCH_ROWS rows per year, default 2000000;
# DF_BENCH_DATA to use another folder of flights files), bag (word count and JSON lines: rask's
# Bag, a plain single-threaded Rust loop, dask.bag with processes and threads; BAG_BENCH_DATA,
# BAG_BENCH_WORDS_MB, BAG_BENCH_ACCOUNTS, see benches/benches/bag.rs).
#
# Environment:
#   RASK_BENCH_N        N values for the rask bench (default 100000,1000000);
#                       passed to the Rust bench in its environment, as is
#                       RASK_BENCH_REPEATS (the bench's default: 5).
#   DASK_BENCH_N        N values for Dask's delayed_inc_add (default 100000:
#                       Dask at 1M takes many minutes).
#   DASK_ORDER_N        N values for Dask's graph_build_order (default
#                       100000,1000000; about 5 minutes at 1M).
#   DASK_BENCH_REPEATS  repeats per Dask measurement (default 3; graph_build_order 1).
#   DASK_SCHEDULERS     Dask schedulers (default sync,threads).
#   PYTHON              interpreter used to create benches/.venv (default python3;
#                       the pins in peers/requirements.txt were checked on 3.11).
#
# With the defaults the Dask side takes about 10 minutes on a 2-core machine
# (delayed_inc_add at 100k: ~4 min; graph_build_order at 1M: ~5 min).
#
# The peers live in benches/.venv (created on first run, reinstalled only when
# peers/requirements.txt changes). All JSON records, rask's and the peers', go
# to benches/results/<suite>-<date>.jsonl, then a joined table is printed.
#
# Adding a suite (array, dataframe, ...): write benches/peers/<peer script>
# printing one JSON object per line ({"bench", "n", ["scheduler"|"variant"],
# "tasks", "median_s", "us_per_task", "impl"}), add a suite_<name> function
# below calling run_rask <cargo bench name> and run_peer <impl> <script> [args],
# and list it in the case at the bottom.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCHES="$ROOT/benches"
PEERS="$BENCHES/peers"
VENV="$BENCHES/.venv"
REQ="$PEERS/requirements.txt"
VPY="$VENV/bin/python"
REPORT="$PEERS/report.py"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

log() { printf '==> %s\n' "$*" >&2; }

ensure_venv() {
    local py="${PYTHON:-python3}" want have
    if [ ! -x "$VPY" ] || ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
        log "creating $VENV with $("$py" --version 2>&1)"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    want="$( (cat "$REQ"; "$VPY" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
    have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
    if [ "$want" != "$have" ]; then
        log "installing peers from ${REQ#"$ROOT"/} (quiet; takes a minute)"
        "$VPY" -m pip install --quiet --disable-pip-version-check -r "$REQ"
        cp "$REQ" "$VENV/requirements.txt"
        printf '%s\n' "$want" >"$VENV/.requirements.sha256"
    fi
}

# run_rask BENCH [ENV=VALUE ...] -- cargo bench's JSON lines into $OUT.
run_rask() {
    local bench="$1"; shift
    log "rask: cargo bench -p rask-benches --bench $bench -- --json ($*)"
    (cd "$ROOT" && env "$@" cargo bench -p rask-benches --bench "$bench" -- --json) \
        | "$VPY" "$REPORT" collect --impl rask --summary --out "$OUT"
}

# run_peer IMPL SCRIPT [ARGS...] -- a peer script's JSON lines into $OUT.
run_peer() {
    local impl="$1" script="$2"; shift 2
    log "$impl: peers/$script $*"
    (cd "$ROOT" && "$VPY" "$PEERS/$script" "$@") \
        | "$VPY" "$REPORT" collect --impl "$impl" --out "$OUT"
}

suite_delayed() {
    if [ "$DO_RASK" = 1 ]; then
        run_rask delayed RASK_BENCH_N="${RASK_BENCH_N:-100000,1000000}"
    fi
    if [ "$DO_PEERS" = 1 ]; then
        run_peer dask dask_delayed.py --bench all \
            --n "${DASK_BENCH_N:-100000}" \
            --order-n "${DASK_ORDER_N:-100000,1000000}" \
            --repeats "${DASK_BENCH_REPEATS:-3}" \
            --schedulers "${DASK_SCHEDULERS:-sync,threads}"
    fi
}

SUITE=""
DO_RASK=1
DO_PEERS=1
REPORT_FILE=""
FORMAT=text
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --rask-only) DO_PEERS=0 ;;
        --peers-only|--dask-only) DO_RASK=0 ;;
        --report) REPORT_FILE="${2:?--report needs a file}"; shift ;;
        --markdown) FORMAT=markdown ;;
        -*) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [ -z "$SUITE" ] || { echo "compare.sh: one suite at a time" >&2; exit 2; }
           SUITE="$1" ;;
    esac
    shift
done
SUITE="${SUITE:-delayed}"

if [ -n "$REPORT_FILE" ]; then
    exec "${PYTHON:-python3}" "$REPORT" table --format "$FORMAT" "$REPORT_FILE"
fi

suite_array() {
    if [ "$DO_RASK" = 1 ]; then
        run_rask array RASK_BENCH_REPEATS="${RASK_BENCH_REPEATS:-5}"
    fi
    if [ "$DO_PEERS" = 1 ]; then
        run_peer dask dask_array.py --impl dask --repeats "${DASK_BENCH_REPEATS:-3}"
        run_peer numpy dask_array.py --impl numpy --repeats "${DASK_BENCH_REPEATS:-3}"
    fi
}

# The flights data of the dataframe suite: 10 yearly files, DF_BENCH_ROWS rows per year
# (default 2M, so 20M rows, ~1 GB of CSV), as CSV and Parquet, written once by the rask CLI.
ensure_flights() {
    local rows="${DF_BENCH_ROWS:-2000000}" dir="${DF_BENCH_DATA:-$BENCHES/data/flights}"
    if [ "$(cat "$dir/.rows" 2>/dev/null || true)" != "$rows" ]; then
        log "writing the flights data ($rows rows per year) into ${dir#"$ROOT"/}"
        rm -rf "$dir"
        # The bench profile: the same compiled polars as `cargo bench`, built once.
        (cd "$ROOT" && cargo run -q --profile bench -p rask-cli -- datasets flights \
            --dir "$dir" --rows-per-year "$rows" --format both)
        echo "$rows" >"$dir/.rows"
    fi
    DF_DIR="$dir"
}

suite_dataframe() {
    ensure_flights
    if [ "$DO_RASK" = 1 ]; then
        run_rask dataframe DF_BENCH_DATA="$DF_DIR" DF_BENCH_REPEATS="${DF_BENCH_REPEATS:-3}"
    fi
    if [ "$DO_PEERS" = 1 ]; then
        local r="${DF_BENCH_REPEATS:-3}"
        run_peer dask dataframe_peers.py --data "$DF_DIR" --impl dask --repeats "$r"
        run_peer polars dataframe_peers.py --data "$DF_DIR" --impl polars,polars_streaming --repeats "$r"
        run_peer duckdb dataframe_peers.py --data "$DF_DIR" --impl duckdb --repeats "$r"
    fi
}

# A local cluster of 2 worker processes x 1 thread: 200k tasks (Dask: DASK_CLUSTER_N, default
# 10000 inc, so 20k tasks: at ~2.5 ms a task, 200k would take over 8 minutes), the
# submit + result round trip, a 256 MB block between workers, scheduler bytes per task.
suite_cluster() {
    if [ "$DO_RASK" = 1 ]; then
        run_rask cluster RASK_CLUSTER_N="${RASK_CLUSTER_N:-10000,100000}" RASK_BENCH_REPEATS="${RASK_BENCH_REPEATS:-3}"
    fi
    if [ "$DO_PEERS" = 1 ]; then
        run_peer dask dask_distributed.py --n "${DASK_CLUSTER_N:-10000}" --repeats "${DASK_BENCH_REPEATS:-3}"
    fi
}

# Word count over BAG_BENCH_WORDS_MB (default 128) MB of text and the JSON-lines accounts
# (BAG_BENCH_ACCOUNTS records, default 400000): the Rust bench writes the data first (once),
# then dask.bag reads the same files. The Rust loop's rows are impl `rust_loop`.
suite_bag() {
    local dir="${BAG_BENCH_DATA:-$BENCHES/data/bag}"
    if [ "$DO_RASK" = 1 ]; then
        run_rask bag BAG_BENCH_DATA="$dir" RASK_BENCH_REPEATS="${RASK_BENCH_REPEATS:-3}"
    fi
    if [ "$DO_PEERS" = 1 ]; then
        [ -d "$dir/words" ] || { echo "compare.sh: no bag data in $dir (run the rask side first)" >&2; exit 2; }
        run_peer dask dask_bag.py --data "$dir" --repeats "${DASK_BENCH_REPEATS:-3}" \
            --schedulers "${DASK_SCHEDULERS:-processes,threads}"
    fi
}

# The groupby query matrix (benches/benches/groupby.rs): six query shapes, Parquet and CSV,
# over flights files from two writers other than rask (pyarrow's defaults, and polars), 2M
# rows per year (GROUPBY_BENCH_ROWS), against DuckDB, Polars streaming and Dask
# (GROUPBY_PEERS, default all three). The joined matrix is printed by groupby_matrix.py.
ensure_writer_data() {
    local writer="$1" rows="${GROUPBY_BENCH_ROWS:-2000000}" dir="$BENCHES/data/flights-$1"
    if [ "$(cat "$dir/.rows" 2>/dev/null || true)" != "$rows" ]; then
        log "writing flights data with $writer ($rows rows per year) into ${dir#"$ROOT"/}"
        rm -rf "$dir"
        "$VPY" "$PEERS/flights_writers.py" --dir "$dir" --writer "$writer" --rows-per-year "$rows"
        echo "$rows" >"$dir/.rows"
    fi
}
suite_groupby() {
    local r="${DF_BENCH_REPEATS:-3}" writer dir
    for writer in pyarrow polars; do
        ensure_writer_data "$writer"
        dir="$BENCHES/data/flights-$writer"
        if [ "$DO_RASK" = 1 ]; then
            log "rask: cargo bench -p rask-benches --bench groupby -- --json --data $dir"
            (cd "$ROOT" && DF_BENCH_REPEATS="$r" cargo bench -p rask-benches --bench groupby -- --json --data "$dir") >>"$OUT"
        fi
        if [ "$DO_PEERS" = 1 ]; then
            log "peers: groupby_matrix.py run --data $dir"
            "$VPY" "$PEERS/groupby_matrix.py" run --data "$dir" --repeats "$r" \
                --impl "${GROUPBY_PEERS:-duckdb,polars_streaming,dask}" >>"$OUT"
        fi
    done
    log "results: ${OUT#"$ROOT"/}"
    "$VPY" "$PEERS/groupby_matrix.py" table "$OUT" $([ "$FORMAT" = markdown ] && echo --markdown)
    exit 0
}

case "$SUITE" in
    delayed) ;;
    groupby) ;;
    bag) ;;
    array) ;;
    dataframe) ;;
    cluster) ;;
    *) echo "compare.sh: unknown suite '$SUITE' (known: delayed, array, dataframe, groupby, cluster, bag)" >&2; exit 2 ;;
esac

ensure_venv
mkdir -p "$BENCHES/results"
OUT="$BENCHES/results/$SUITE-$(date +%Y%m%d-%H%M%S).jsonl"
"$VPY" "$REPORT" meta --suite "$SUITE" --out "$OUT"

"suite_$SUITE"

log "results: ${OUT#"$ROOT"/}"
echo
"$VPY" "$REPORT" table --format "$FORMAT" "$OUT"
