"""Readers query an index while `semsearch index` builds it: how many queries were served and
how many failed (the answer must be none).

    python benchmarks/concurrency.py ../../shared/data/scifact [--readers 2] [--pause 0.1]
        [--json out.json]

The writer indexes the BEIR corpus (one JSONL record per document, `--unit document`,
`--commit-every 5`, so readers see many commits). Each reader is its own process: it opens the
index once it exists and queries it (hybrid, k = 10) in a loop, pausing between queries; every
exception is an error. Readers stop when the writer exits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

READER = """
import json, os, sys, time
from semsearch import Index, SearchOptions
from semsearch.errors import IndexNotFoundError
path, stop, pause, queries = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
served = errors = 0
index = None
while not os.path.exists(stop):
    try:
        index = index or Index.open(path)
        hits = index.search(queries[served % len(queries)], SearchOptions(k=10, mode="hybrid"))[0]
        served += 1
    except IndexNotFoundError:
        pass  # the writer has not created it yet
    except Exception as exc:
        errors += 1
        print(repr(exc), file=sys.stderr, flush=True)
    time.sleep(pause)
print(json.dumps({"served": served, "errors": errors}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a BEIR folder (corpus.jsonl, queries.jsonl)")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between queries")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    folder = Path(args.folder)
    with open(folder / "queries.jsonl") as handle:
        queries = [json.loads(line)["text"] for line in handle][:50]
    semsearch = str(Path(sys.executable).parent / "semsearch")
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index, stop = Path(tmp) / "corpus.jsonl", Path(tmp) / "index", Path(tmp) / "stop"
        with open(folder / "corpus.jsonl") as source, open(corpus, "w") as target:
            for line in source:
                record = json.loads(line)
                target.write(json.dumps({"id": record["_id"], "title": record.get("title", ""),
                                         "text": record["text"]}) + "\n")
        readers = [subprocess.Popen([sys.executable, "-c", READER, str(index), str(stop),
                                     str(args.pause), *queries], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
                   for _ in range(args.readers)]
        started = time.monotonic()
        writer = subprocess.run([semsearch, "index", "-i", str(index), "--unit", "document",
                                 "--commit-every", "5", "--json", str(corpus)],
                                capture_output=True, text=True)
        seconds = time.monotonic() - started
        stop.touch()
        outputs = [reader.communicate() for reader in readers]
    results = [json.loads(out) for out, _ in outputs]
    for _, err in outputs:
        if err.strip():
            print(err.strip()[-2000:], file=sys.stderr)
    summary = json.loads(writer.stdout) if writer.returncode == 0 else {"error": writer.stderr}
    rows = [{"reader": number + 1, **result} for number, result in enumerate(results)]
    rows.append({"reader": "all", "served": sum(r["served"] for r in results),
                 "errors": sum(r["errors"] for r in results)})
    report(f"Queries during `semsearch index` of {folder.name} ({summary.get('added')} documents,"
           f" {summary.get('units')} units, {seconds:.0f} s, writer exit {writer.returncode})",
           rows, args.json_path, {**vars(args), "writer": summary, "seconds": seconds})


if __name__ == "__main__":
    main()
