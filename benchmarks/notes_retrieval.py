"""Finding the right note in a Markdown vault: plain-text reading vs the Markdown reader, with
and without the note's title and heading path embedded with each unit.

    python benchmarks/notes_retrieval.py VAULT_DIR [--queries benchmarks/data/notes_queries.jsonl]
        [--unit sentence] [--variants before,markdown,...] [--misses] [--json out.json]

Why: a note's title lives in its file name and its topic in its headings, not in its sentences;
"how do I install X" has the same answer words in every package's Installation note. Each
variant indexes the vault (from ``benchmarks/notes_vault.py``) into a temporary index:

- before: ``--format text``, as Markdown was read before the Markdown reader (title = the
  first line, front matter and markup in the units);
- markdown: the Markdown reader (front matter → metadata, file name → title, markup stripped,
  heading paths), context "none";
- markdown+title / markdown+heading: the same, with the note's title (and the unit's heading
  path) embedded with each unit (``IndexSettings.context``); markdown+heading is the default.

Each labelled query (``{"query", "note", "kind"?}``) has one right note; by-document hits are
scored MRR@10 and Recall@10 in every search mode, over all queries and over those labelled
``"kind": "title"`` (the ones only the note's title or heading tells apart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch import service
from semsearch.readers import ReadOptions
from semsearch.search import MODES, SearchOptions

DEFAULT_QUERIES = Path(__file__).parent / "data" / "notes_queries.jsonl"
VARIANTS = {
    "before": ("text", "none"),
    "markdown": ("auto", "none"),
    "markdown+title": ("auto", "title"),
    "markdown+heading": ("auto", "heading"),
}
K = 10


def read_queries(path: Path, vault: Path) -> list[dict]:
    """The labelled queries whose note is in the vault (a missing one is warned about)."""
    queries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    present = [q for q in queries if (vault / q["note"]).is_file()]
    for query in queries:
        if query not in present:
            print(f"warning: labelled note not in the vault, query left out: {query['note']}",
                  file=sys.stderr)
    return present


def ranks(index, queries: list[dict], vault: Path, mode: str) -> list[int | None]:
    """The rank (1-based, within K) of each query's note in the by-document hits, or None."""
    options = SearchOptions(k=K, mode=mode, by_document=True)
    found = []
    for query, hits in zip(queries, index.search([q["query"] for q in queries], options),
                           strict=True):
        notes = [Path(hit.document_id).resolve().relative_to(vault).as_posix() for hit in hits]
        found.append(notes.index(query["note"]) + 1 if query["note"] in notes else None)
    return found


def scores(found: list[int | None]) -> tuple[float, float]:
    """MRR@K and Recall@K (one right note per query)."""
    if not found:
        return float("nan"), float("nan")
    return (sum(1 / rank for rank in found if rank) / len(found),
            sum(1 for rank in found if rank) / len(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault")
    parser.add_argument("--queries", default=str(DEFAULT_QUERIES))
    parser.add_argument("--unit", default="sentence", choices=["sentence", "passage"],
                        help="the index's unit (IndexSettings.unit)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--misses", action="store_true",
                        help="print each query a variant's hybrid search ranks worst")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    vault = Path(args.vault).resolve()
    queries = read_queries(Path(args.queries), vault)
    if not queries:
        sys.exit("no labelled query has its note in the vault")
    titled = [n for n, q in enumerate(queries) if q.get("kind") == "title"]
    rows, index_info = [], {}
    for variant in args.variants.split(","):
        form, context = VARIANTS[variant]
        with tempfile.TemporaryDirectory(prefix="notes-retrieval-") as folder:
            index = service.open_or_create(Path(folder) / "index", model=args.model,
                                           settings={"unit": args.unit, "context": context})
            started = time.perf_counter()
            added = service.index_files(index, [str(vault)], ReadOptions(format=form))
            seconds = time.perf_counter() - started
            index_info[variant] = {"documents": added.added, "units": added.units,
                                   "index_s": round(seconds, 1)}
            print(f"{variant}: {added.added} notes, {added.units} units in {seconds:.1f} s",
                  flush=True)
            for mode in MODES:
                found = ranks(index, queries, vault, mode)
                mrr, recall = scores(found)
                title_mrr, title_recall = scores([found[n] for n in titled])
                rows.append({"variant": variant, "mode": mode, "MRR@10": mrr, "R@10": recall,
                             "title MRR@10": title_mrr, "title R@10": title_recall,
                             "units": added.units, "index s": round(seconds, 1)})
                if args.misses and mode == "hybrid":
                    for query, rank in zip(queries, found, strict=True):
                        if rank is None or rank > 3:
                            print(f"  miss ({rank}): {query['query']!r} → {query['note']}")
    load = [round(value, 2) for value in os.getloadavg()]
    print(f"\nload average (1, 5, 15 min) at the end: {load} (index times only depend on it)")
    report(f"Notes retrieval on {args.vault} ({len(queries)} queries, {len(titled)} needing the"
           f" title; unit={args.unit}; by-document MRR@10 / Recall@10)", rows, args.json_path,
           {**vars(args), "index": index_info, "load_average": load})


if __name__ == "__main__":
    main()
