"""Per-query latency of each search mode on a BEIR corpus index (warm, one query at a time).

    python benchmarks/search_latency.py ../shared/data/scifact --split train
        [--index results/scifact-index] [--queries 300] [--json out.json]

Every query is searched alone (k=10), as a user at the prompt would: the time includes embedding
the query (dense, hybrid), the FTS5 query (keyword, hybrid), fusion and reading the hits. The
modes take turns query by query (in a rotating order), so drift in machine load hits all alike.
"""

from __future__ import annotations

import statistics
import time

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, percentile, report
from semsearch.search import MODES, SearchOptions


def main() -> None:
    parser = beir_arguments(__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300, help="how many queries to time")
    args = parser.parse_args()
    index, queries, _ = beir_index(args.folder, args.split, args.index)
    texts = list(queries.values())[:args.queries]
    for mode in MODES:  # warm-up: model weights, SQLite pages, FAISS memory
        index.search(texts[:20], SearchOptions(mode=mode))
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    for number, text in enumerate(texts):
        for mode in MODES[number % len(MODES):] + MODES[:number % len(MODES)]:
            started = time.perf_counter()
            index.search(text, SearchOptions(k=10, mode=mode))
            timings[mode].append(1000 * (time.perf_counter() - started))
    rows = [{"mode": mode, "queries": len(texts), "p50 ms": statistics.median(found),
             "p95 ms": percentile(found, 0.95), "mean ms": statistics.fmean(found)}
            for mode, found in timings.items()]
    by_mode = {row["mode"]: row for row in rows}
    extra = round(by_mode["hybrid"]["p50 ms"] - by_mode["dense"]["p50 ms"], 2)
    report(f"Search latency on {args.index} ({index.vectors.ntotal} vectors);"
           f" hybrid adds {extra:+.2f} ms p50 over dense", rows, args.json_path,
           {**vars(args), "hybrid_minus_dense_p50_ms": extra})


if __name__ == "__main__":
    main()
