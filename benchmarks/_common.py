"""Shared helpers for the benchmark scripts: a results table on stdout and optional JSON."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def report(title: str, rows: list[dict], json_path: str | None, extra: dict | None = None) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(_fmt(row[c]).ljust(widths[c]) for c in columns))
    if json_path:
        payload = {"benchmark": title, "machine": platform.processor() or platform.machine(),
                   "rows": rows, **(extra or {})}
        Path(json_path).write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {json_path}")


def fts5_query(text: str) -> str:
    """A query's words as an FTS5 query of quoted words (for the benchmarks that still compare
    against SQLite FTS5)."""
    from semsearch.bm25 import keyword_words

    return " OR ".join(f'"{word}"' for word in keyword_words(text))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def beir_arguments(description: str):
    """A parser for the scripts that run over a BEIR folder's corpus index."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--index", default="results/scifact-index",
                        help="index folder, built on first use and reused after")
    parser.add_argument("--json", dest="json_path")
    return parser


def beir_index(folder: str, split: str, index_dir: str, model: str | None = None,
               **settings):
    """The BEIR corpus in a semsearch index at ``index_dir`` (built once, then reused: unchanged
    documents are skipped), with the split's queries and judgements; ``settings``: index
    settings beyond document units (the defaults otherwise)."""
    from semsearch.evaluation import read_beir
    from semsearch.index import Index

    documents, queries, qrels = read_beir(folder, split)
    index = Index.open_or_create(index_dir, model=model, unit="document", **settings)
    index.add(documents)
    return index, queries, qrels
