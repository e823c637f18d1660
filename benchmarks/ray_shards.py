"""A sharded index built on Ray against one unsharded index: do they return the same hits?

    python benchmarks/ray_shards.py ../shared/data/scifact [--shards 4] [--workers 2]
        [--work results/ray-shards] [--json out.json]

Indexes the BEIR corpus twice with the CLI, both with exact (Flat) vectors: once as one index,
once into N shards on a local Ray cluster with W embedding workers. Then every query of the
split is searched in dense, keyword and hybrid mode (and hybrid one hit per document) in both;
the sharded searches fan out to one Ray actor per shard. A mismatch is a query whose top-10
differs in unit ids or order; scores are compared exactly too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.evaluation import read_beir
from semsearch.search import SearchOptions

CASES = [("dense", {}), ("keyword", {}), ("hybrid", {}), ("hybrid", {"by_document": True})]


def build(corpus: Path, folder: Path, *options: str) -> dict:
    """``semsearch index`` in a fresh process, timed; a finished build is reused (with the
    figures it recorded)."""
    record = folder.with_name(folder.name + ".build.json")
    if folder.exists() and record.exists():
        return {**json.loads(record.read_text()), "reused": True}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "semsearch", "index", str(corpus), "--index", str(folder),
         "--faiss", "Flat", "--json", *options], check=True, capture_output=True, text=True)
    summary = {**json.loads(done.stdout), "wall_seconds": round(time.perf_counter() - started, 1),
               "options": list(options)}
    record.write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a BEIR folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="results/ray-shards")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    from semsearch.distributed import ray_runner
    from semsearch.index import Index
    from semsearch.shards import ShardedIndex

    work = Path(args.work)
    corpus = Path(args.folder) / "corpus.jsonl"
    single_build = build(corpus, work / "single")
    sharded_build = build(corpus, work / f"sharded-{args.shards}", "--shards", str(args.shards),
                          "--ray", "--workers", str(args.workers))
    queries = list(read_beir(args.folder, args.split)[1].values())
    runner = ray_runner("local")
    try:
        single = Index.open(work / "single")
        sharded = ShardedIndex.open(work / f"sharded-{args.shards}", runner=runner)
        rows = []
        for mode, options in CASES:
            started = time.perf_counter()
            expected = single.search(queries, SearchOptions(k=args.k, mode=mode, **options))
            single_seconds = time.perf_counter() - started
            started = time.perf_counter()
            found = sharded.search(queries, SearchOptions(k=args.k, mode=mode, **options))
            sharded_seconds = time.perf_counter() - started
            order = sum([h.unit_id for h in a] != [h.unit_id for h in b]
                        for a, b in zip(expected, found, strict=True))
            scores = sum([(h.score, h.dense_score, h.keyword_score) for h in a]
                         != [(h.score, h.dense_score, h.keyword_score) for h in b]
                         for a, b in zip(expected, found, strict=True))
            rows.append({"mode": mode + (" by document" if options else ""),
                         "queries": len(queries), "id/order mismatches": order,
                         "score mismatches": scores,
                         "single ms/query": round(1000 * single_seconds / len(queries), 1),
                         "sharded ms/query": round(1000 * sharded_seconds / len(queries), 1)})
        shard_sizes = sharded.info()["shards"]
    finally:
        runner.close()
    report(f"{args.shards} Ray shards vs one index: top-{args.k} of {len(queries)} {args.split}"
           f" queries", rows, args.json_path,
           {"single_build": single_build, "sharded_build": sharded_build,
            "shard_documents": shard_sizes})
    print(f"single build {single_build['wall_seconds']} s, sharded build on Ray"
          f" ({args.workers} workers) {sharded_build['wall_seconds']} s; documents per shard"
          f" {shard_sizes}")


if __name__ == "__main__":
    main()
