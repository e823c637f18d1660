"""A 1M-unit index end to end: indexing split by work, bytes on disk, memory, open, queries,
remove and compact.

    python benchmarks/million.py ../shared/data/scifact [--units 1000000]
        [--index results/million-index] [--json out.json]

The documents are SciFact abstracts, then copies of them with about one bare word in ten
replaced by a corpus word (seeded), until their sentences reach --units; each has a metadata field
``group`` (its number mod 10) for the filtered queries. They go through ``Index.add`` — what
`semsearch index` runs — with the default settings (sentence units, ``--faiss auto``), so the
store, the keyword index and the FAISS index are real and full size. Embedding a million
sentences takes about an hour on 2 cores, so the vectors are real-derived instead (as
``ann.py``'s): each unit gets the embedding of a real SciFact sentence chosen by a hash of its
text, moved a random step seeded by the same hash; the embed time printed is the real
encoder's, extrapolated from --sample sentences.

Indexing time is split by wrapping the index's own steps: read (making the documents), cut
(sentence splitting and token counts), store (SQLite rows and commits), keyword (adding units
to the tantivy keyword index and committing its generation), vector (adding to FAISS and
writing its file). Queries
run in a fresh process (the memory a server would hold): open time, peak RSS, warm p50/p95 of
--queries SciFact train queries at k = 10 in each mode, with and without ``--where group=3`` (10% of
the documents), and the first query of three other filters (its unit ids are collected then
and kept for the next; the p95 column shows the slowest of the three). Then 1% of the documents
are removed and the index compacted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import percentile, report
from semsearch.index import Index
from semsearch.keywords import KeywordDraft
from semsearch.readers import Document
from semsearch.search import SearchOptions
from semsearch.units import cut_units, sentence_spans
from semsearch.vectors import VectorIndex

_WORD = re.compile(r"\w+")
MODES = ("dense", "keyword", "hybrid")


class Timer:
    """Seconds spent inside the wrapped callables, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
        return timed


class DerivedEncoder:
    """The real encoder for everything but the vectors of units: real-derived ones."""

    def __init__(self, inner, real: np.ndarray, timer: Timer):
        self.inner, self.real, self.timer = inner, real, timer

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        started = time.perf_counter()
        out = np.empty((len(texts), self.real.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            rng = np.random.default_rng(seed)
            vector = self.real[seed % len(self.real)] + rng.normal(0, 0.04, self.real.shape[1])
            out[row] = vector / np.linalg.norm(vector)
        self.timer.seconds["derive vectors"] += time.perf_counter() - started
        return out


def abstracts(folder: Path, token_counts) -> list[tuple[str, str, int]]:
    """(title, text, units) of each SciFact abstract: its sentence units as the index cuts them."""
    found = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            text = record.get("text") or ""
            units = len(cut_units(text, None, "sentence", token_counts, None, 0))
            found.append((record.get("title") or "", text, units))
    return found


def documents(base: list[tuple[str, str, int]], units: int, token_counts, timer: Timer):
    """Documents whose units add up to ``units`` (the last one may pass it): the abstracts,
    then varied copies, each counted as the index will cut it (timed apart: the benchmark's
    own work, not the index's)."""
    rng = random.Random(0)
    vocabulary = sorted({w for _, text, _ in base for w in _WORD.findall(text)})
    total = number = 0
    while total < units:
        title, text, sentences = base[number % len(base)]
        if number >= len(base):
            words = text.split(" ")
            for position in range(len(words)):
                # a bare word only: one carrying a full stop would merge two sentences
                if rng.random() < 0.1 and words[position].isalnum():
                    words[position] = rng.choice(vocabulary)
            text = " ".join(words)
            started = time.perf_counter()
            sentences = len(cut_units(text, None, "sentence", token_counts, None, 0))
            timer.seconds["count"] += time.perf_counter() - started
        yield Document(id=f"doc-{number}", text=text, title=title, source="million",
                       metadata={"group": str(number % 10)})
        total += sentences
        number += 1


def timed_iterator(iterable, timer: Timer, name: str):
    iterator = iter(iterable)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            timer.seconds[name] += time.perf_counter() - started
            return
        timer.seconds[name] += time.perf_counter() - started
        yield item


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over from the
    process that started it)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def query_phase(path: Path, folder: Path, count: int) -> dict:
    """In a fresh process: open, then warm latency per mode, with and without the filter."""
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for line in handle][:count]
    started = time.perf_counter()
    index = Index.open(path)
    index.search(queries[0], SearchOptions(mode="hybrid"))
    opened = time.perf_counter() - started
    found: dict = {"open s": opened}
    for where in ({}, {"group": "3"}):
        for mode in MODES:
            options = SearchOptions(mode=mode, k=10, where=where)
            for text in queries[:20]:  # warm-up
                index.search(text, options)
            times, short = [], 0
            for text in queries:
                begun = time.perf_counter()
                hits = index.search(text, options)[0]
                times.append((time.perf_counter() - begun) * 1000)
                short += len(hits) < 10
            found[f"{mode}{' where' if where else ''}"] = {
                "p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "short": short}
    # A filter's first query collects its unit ids from the keyword index (later ones reuse
    # them): three filters not used above (10% of the documents each) per mode.
    unused = iter(str(group) for group in range(10) if group != 3)
    for mode in MODES:
        times = []
        for text in queries[:3]:
            options = SearchOptions(mode=mode, k=10, where={"group": next(unused)})
            begun = time.perf_counter()
            index.search(text, options)
            times.append((time.perf_counter() - begun) * 1000)
        found[f"{mode} where, a filter's first query (3)"] = {
            "p50": percentile(times, 0.5), "p95": max(times), "short": 0}
    found["peak rss mb"] = peak_rss_mb()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a BEIR folder (SciFact)")
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5000,
                        help="real sentences embedded (the vectors the rest derive from)")
    parser.add_argument("--index", type=Path, default=Path("results/million-index"))
    parser.add_argument("--queries", type=int, default=200, help="SciFact train queries timed")
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if args.query_only:
        print(json.dumps(query_phase(args.index, args.folder, args.queries)))
        return
    shutil.rmtree(args.index, ignore_errors=True)
    args.index.parent.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    index = Index.create(args.index)
    base = abstracts(args.folder, index.encoder.token_counts)
    sample = [text[a:b] for _, text, _ in base for a, b in sentence_spans(text)][:args.sample]
    started = time.perf_counter()
    real = index.encoder.encode(sample)
    embed_rate = len(sample) / (time.perf_counter() - started)
    index.use_encoder(DerivedEncoder(index.encoder, real, timer))
    original_prepare, original_add = Index.prepare, VectorIndex.add
    original_save = VectorIndex.save
    original_keywords = KeywordDraft.add, KeywordDraft.commit
    Index.prepare = timer.wrap("cut", original_prepare)
    VectorIndex.add = timer.wrap("vector", original_add)
    VectorIndex.save = timer.wrap("vector", original_save)
    KeywordDraft.add = timer.wrap("keyword", original_keywords[0])
    KeywordDraft.commit = timer.wrap("keyword", original_keywords[1])
    store = index.store
    store.add_documents = timer.wrap("store", store.add_documents)
    store.commit = timer.wrap("store", store.commit)
    started = time.perf_counter()
    made = documents(base, args.units, index.encoder.token_counts, timer)
    result = index.add(timed_iterator(made, timer, "read"))
    timer.seconds["read"] -= timer.seconds["count"]
    total = time.perf_counter() - started
    Index.prepare, VectorIndex.add, VectorIndex.save = original_prepare, original_add, original_save
    KeywordDraft.add, KeywordDraft.commit = original_keywords
    indexing_rss = peak_rss_mb()
    units = index.manifest["units"]
    factory = index.vectors.factory
    index.store.close()  # checkpoints the write-ahead log into store.db
    opened = Index.open(args.index)
    files = opened.info()["files"]
    opened.store.close()
    answered = json.loads(subprocess.run(
        [sys.executable, __file__, str(args.folder), "--index", str(args.index), "--query-only",
         "--queries", str(args.queries)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    index = Index.open(args.index)
    doomed = [f"doc-{n}" for n in range(0, result.added, 100)]
    started = time.perf_counter()
    removed = index.remove(doomed, ids_only=True)
    remove_s = time.perf_counter() - started
    started = time.perf_counter()
    index.compact()
    compact_s = time.perf_counter() - started
    index.store.close()

    accounted = sum(timer.seconds[k] for k in ("read", "count", "cut", "derive vectors",
                                               "store", "keyword", "vector"))
    steps = [
        {"step": "read (make the documents)", "seconds": timer.seconds["read"]},
        {"step": "cut (sentences, token counts)", "seconds": timer.seconds["cut"]},
        {"step": f"embed (real encoder, extrapolated at {embed_rate:.0f} units/s)",
         "seconds": units / embed_rate},
        {"step": "  derive vectors (stands in for embed)",
         "seconds": timer.seconds["derive vectors"]},
        {"step": "store (SQLite rows + commits)", "seconds": timer.seconds["store"]},
        {"step": "keyword (tantivy: add units, commit the generation)",
         "seconds": timer.seconds["keyword"]},
        {"step": f"vector (FAISS {factory}: add, train, write)",
         "seconds": timer.seconds["vector"]},
        {"step": "other (the add loop)", "seconds": total - accounted},
        {"step": "total (with derived vectors, without counting)",
         "seconds": total - timer.seconds["count"]},
    ]
    for row in steps:
        row["seconds"] = round(row["seconds"], 1)
    sizes = [{"file": name, "MB": round(size / 1e6, 1), "bytes/unit": round(size / units, 1)}
             for name, size in sorted(files.items()) if size]
    latency = [{"mode": mode, "p50 ms": round(v["p50"], 2), "p95 ms": round(v["p95"], 2),
                "queries with < 10 hits": v["short"]}
               for mode, v in answered.items() if isinstance(v, dict)]
    other = [{"measure": "units", "value": f"{units:,}"},
             {"measure": "documents", "value": f"{result.added:,}"},
             {"measure": "peak RSS while indexing (MB)", "value": round(indexing_rss)},
             {"measure": "open + first query (s)", "value": round(answered["open s"], 2)},
             {"measure": "peak RSS while querying (MB)", "value": round(answered["peak rss mb"])},
             {"measure": f"remove {removed:,} documents (1%) (s)", "value": round(remove_s, 1)},
             {"measure": "compact (s)", "value": round(compact_s, 1)}]
    report(f"Indexing {units:,} units (2 cores)", steps, None)
    report("On disk", sizes, None)
    report(f"Warm queries, k = 10, one at a time (a fresh process, {args.queries} queries)",
           latency, None)
    report("Memory, open, remove, compact", other, args.json_path,
           {"steps": steps, "sizes": sizes, "latency": latency, "settings": vars(args) | {
               "folder": str(args.folder), "index": str(args.index)}})


if __name__ == "__main__":
    main()
