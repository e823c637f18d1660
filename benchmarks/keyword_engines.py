"""Keyword search engines at 100k to 10M units: SQLite FTS5 (today's) against tantivy.

    python benchmarks/keyword_engines.py ../shared/data/scifact [--sizes 100000,1000000]
        [--fts5-sizes 100000,1000000] [--work results/keyword-engines] [--json out.json]

Units are SciFact sentences (corpus.jsonl cut by semsearch's sentence splitter), repeated with
variation up to each size: copy c > 0 of a sentence has about one word in ten replaced by a
word drawn (seeded) from the corpus's own vocabulary, so terms keep their real frequencies
and no two copies score alike. Both engines index the same units with the same analysis as
semsearch's keyword index: Porter-family stemming, English stop words dropped from the query,
every word literal (FTS5: `porter` tokenizer and our quoted OR query, ordered by rank then
rowid as `semsearch` asks; tantivy: a lowercase, English-stemming analyzer and a boolean OR of
term queries, top k by block-max WAND). Warm latency of 200 SciFact train queries, k = 100
(what hybrid search reads), one at a time; bytes on disk per unit; build time. Indexes are
kept under --work and reused. Needs `pip install tantivy`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import time
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import fts5_query, percentile, report
from semsearch.units import sentence_spans

QUERIES = 200
LIMIT = 100
_WORD = re.compile(r"\w+")


def sentences(folder: Path) -> list[str]:
    found = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            text = " ".join(part for part in (record.get("title"), record.get("text")) if part)
            found += [text[a:b] for a, b in sentence_spans(text)]
    return found


def units(base: list[str], count: int) -> list[str]:
    """``count`` units: the sentences, then varied copies of them (seeded)."""
    rng = random.Random(0)
    vocabulary = sorted({w for s in base for w in _WORD.findall(s)})
    out = list(base[:count])
    while len(out) < count:
        words = base[len(out) % len(base)].split()
        for position in range(len(words)):
            if rng.random() < 0.1:
                words[position] = rng.choice(vocabulary)
        out.append(" ".join(words))
    return out


def build_fts5(path: Path, texts: list[str]) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    # contentless, as semsearch's table keeps no copy of the text (it reads the units table)
    connection.execute("create virtual table units_fts using fts5(text, content='',"
                       " tokenize='porter')")
    connection.executemany("insert into units_fts(rowid, text) values (?, ?)",
                           enumerate(texts, start=1))
    connection.commit()
    connection.execute("insert into units_fts(units_fts) values ('optimize')")
    connection.commit()
    connection.close()
    return time.perf_counter() - started


def fts5_searcher(path: Path):
    connection = sqlite3.connect(path)
    sql = ("select rowid, -bm25(units_fts) from units_fts where units_fts match ?"
           " order by rank, rowid limit ?")

    def search(text: str) -> list[tuple[int, float]]:
        query = fts5_query(text)
        return connection.execute(sql, [query, LIMIT]).fetchall() if query else []
    return search


def _tantivy_schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text", tokenizer_name="semsearch_en", index_option="freq")
    builder.add_unsigned_field("id", fast=True, indexed=True)
    return builder.build()


def _analyzer():
    import tantivy

    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.stemmer("english")).build())


def _open_tantivy(path: Path):
    import tantivy

    index = tantivy.Index(_tantivy_schema(), path=str(path))
    index.register_tokenizer("semsearch_en", _analyzer())
    return index


def build_tantivy(path: Path, texts: list[str]) -> float:
    import tantivy

    started = time.perf_counter()
    path.mkdir(parents=True)
    index = _open_tantivy(path)
    writer = index.writer(heap_size=256_000_000, num_threads=2)
    for unit_id, text in enumerate(texts, start=1):
        document = tantivy.Document()
        document.add_unsigned("id", unit_id)
        document.add_text("text", text)
        writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()
    return time.perf_counter() - started


def tantivy_searcher(path: Path):
    import tantivy

    index = _open_tantivy(path)
    index.reload()
    searcher = index.searcher()
    schema = index.schema
    analyzer = _analyzer()

    def search(text: str) -> list[tuple[int, float]]:
        words = [w.strip('"') for w in fts5_query(text).split(" OR ") if w]
        terms = list(dict.fromkeys(t for w in words for t in analyzer.analyze(w)))
        if not terms:
            return []
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", t)) for t in terms])
        hits = searcher.search(query, LIMIT, count=False).hits
        ids = searcher.fast_field_values("id", [address for _, address in hits])
        return [(unit_id, score) for (score, _), unit_id in zip(hits, ids, strict=True)]
    return search


ENGINES = {"fts5": (build_fts5, fts5_searcher), "tantivy": (build_tantivy, tantivy_searcher)}


def size_on_disk(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a BEIR folder (SciFact)")
    parser.add_argument("--sizes", default="100000,1000000", help="unit counts for tantivy")
    parser.add_argument("--fts5-sizes", default="100000,1000000", help="unit counts for FTS5")
    parser.add_argument("--work", type=Path, default=Path("results/keyword-engines"))
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    base = sentences(args.folder)
    with open(args.folder / "queries.jsonl", encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for line in handle][:QUERIES]
    wanted = {"tantivy": [int(s) for s in args.sizes.split(",")],
              "fts5": [int(s) for s in args.fts5_sizes.split(",")]}
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    reference: dict[int, list[set[int]]] = {}
    for size in sorted({s for sizes in wanted.values() for s in sizes}):
        texts = None
        for engine, (build, open_searcher) in ENGINES.items():
            if size not in wanted[engine]:
                continue
            path = args.work / f"{engine}-{size}" / ("index.db" if engine == "fts5" else "index")
            built = None
            if not (path.parent / "done").exists():
                shutil.rmtree(path.parent, ignore_errors=True)
                path.parent.mkdir(parents=True)
                texts = texts or units(base, size)
                built = build(path, texts)
                (path.parent / "done").write_text(str(built))
            else:
                built = float((path.parent / "done").read_text())
            search = open_searcher(path)
            tops = [{unit_id for unit_id, _ in search(text)[:10]} for text in queries]  # warm-up
            first = reference.setdefault(size, tops)
            shared = [len(a & b) / max(len(a), 1) for a, b in zip(tops, first, strict=True)]
            overlap = "" if first is tops else round(sum(shared) / len(shared), 3)
            times = []
            for text in queries:
                started = time.perf_counter()
                search(text)
                times.append((time.perf_counter() - started) * 1000)
            rows.append({"units": f"{size:,}", "engine": engine,
                         "p50 ms": round(percentile(times, 0.5), 2),
                         "p95 ms": round(percentile(times, 0.95), 2),
                         "bytes/unit": round(size_on_disk(path) / size, 1),
                         "build s": round(built, 1),
                         "top-10 shared with fts5": overlap})
            print(rows[-1], flush=True)
    report(f"Keyword engines, {QUERIES} SciFact queries, k = {LIMIT}, warm, one at a time",
           rows, args.json_path, {"sizes": wanted})


if __name__ == "__main__":
    main()
