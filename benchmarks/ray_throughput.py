"""Embedding throughput of `semsearch index` on Ray with 1 and 2 workers, against the
single-process path, on the same documents.

    python benchmarks/ray_throughput.py ../shared/data/scifact [--limit 2048] [--shards 4]
        [--json out.json]

Each run is a fresh `semsearch index` process building a new index of the first LIMIT
documents (sentence units, Flat vectors; 2,048 documents are two chunks of 1,024, so two
workers each get one). `seconds` is the indexing as the command reports it: after the driver
loaded the model and, with Ray, started the cluster, but including the start of the Ray
workers (each loads its own model); `wall` is the whole process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

SETUPS = [("single process, one index", []),
          ("Ray, 1 worker, 4 shards", ["--shards", "{s}", "--ray", "--workers", "1"]),
          ("Ray, 2 workers, 4 shards", ["--shards", "{s}", "--ray", "--workers", "2"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a BEIR folder (its corpus.jsonl)")
    parser.add_argument("--limit", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with open(Path(args.folder) / "corpus.jsonl") as source:
            corpus.write_text("".join(itertools.islice(source, args.limit)))
        for number, (name, options) in enumerate(SETUPS):
            options = [o.format(s=args.shards) for o in options]
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "semsearch", "index", str(corpus), "--index",
                 str(Path(tmp) / f"index-{number}"), "--faiss", "Flat", "--json", *options],
                check=True, capture_output=True, text=True)
            wall = time.perf_counter() - started
            summary = json.loads(done.stdout)
            rows.append({"setup": name, "units": summary["units"],
                         "seconds": summary["seconds"], "wall": round(wall, 1),
                         "units/s": round(summary["units"] / summary["seconds"], 1)})
    base = rows[0]["units/s"]
    for row in rows:
        row["vs single"] = round(row["units/s"] / base, 3)
    report(f"Indexing {args.limit} documents ({rows[0]['units']} sentences) on 2 cores", rows,
           args.json_path)


if __name__ == "__main__":
    main()
