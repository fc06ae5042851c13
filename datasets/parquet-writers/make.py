"""Writes the Parquet files of other writers that rask's page decoding is tested on.

pyarrow lays pages out differently from polars: it dictionary-encodes float columns, can
write version-2 data pages, and falls back from dictionary to PLAIN pages in the middle of a
column chunk once the dictionary grows past its limit. Deterministic: rerunning rewrites the
same files. Run with the benchmark virtualenv's pyarrow:

    benches/.venv/bin/python datasets/parquet-writers/make.py
"""

import os

import pyarrow as pa
import pyarrow.parquet as pq

N = 3000
ORIGINS = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"]


def table() -> pa.Table:
    def opt(i: int, m: int) -> bool:
        return i % m != 1

    return pa.table(
        {
            "Origin": pa.array(
                [ORIGINS[(i * 5 + i // 3) % 7] if i % 31 != 7 else None for i in range(N)],
                pa.string(),
            ),
            "FPlain": pa.array(
                [i * 0.37 - 250.0 if opt(i, 9) else None for i in range(N)], pa.float64()
            ),
            "FFew": pa.array(
                [(i % 13) - 4.5 if opt(i, 7) else None for i in range(N)], pa.float64()
            ),
            "IPlain": pa.array(
                [(i * 7_919_993) % 1_000_000_007 - 500_000_000 if opt(i, 5) else None for i in range(N)],
                pa.int64(),
            ),
            "IDict": pa.array([(i % 11) - 3 if opt(i, 6) else None for i in range(N)], pa.int64()),
            "I32": pa.array(
                [(i * 31 % 1000) - 400 if opt(i, 4) else None for i in range(N)], pa.int32()
            ),
        }
    )


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    t = table()
    # Version-2 data pages, every column dictionary-encoded, small pages.
    pq.write_table(
        t,
        os.path.join(here, "pyarrow-v2-dictionary.parquet"),
        data_page_version="2.0",
        use_dictionary=True,
        compression="snappy",
        row_group_size=1000,
        data_page_size=1024,
    )
    # Version-1 pages; a dictionary limit so small that the many-valued columns fall back to
    # PLAIN pages after the first ones (the key's seven strings stay dictionary-encoded).
    pq.write_table(
        t,
        os.path.join(here, "pyarrow-v1-fallback.parquet"),
        data_page_version="1.0",
        use_dictionary=True,
        dictionary_pagesize_limit=256,
        compression="zstd",
        row_group_size=1000,
        data_page_size=512,
    )


if __name__ == "__main__":
    main()
