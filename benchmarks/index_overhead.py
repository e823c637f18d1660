"""Time `semsearch index --unit sentence` against encoding alone.

    python benchmarks/index_overhead.py ../shared/data/scifact [--limit N] [--rounds 1]
        [--json out.json]

All three embed exactly the same sentences with the same model, precision and batch size in the
same process: plain sentence-transformers `encode`, semsearch's own encoder alone (the pure
encode inside `index`), and `semsearch index`. Overhead = (index time - pure encode time) / pure
encode time: splitting, SQLite, FTS, FAISS. The machine's speed drifts by several per cent
over minutes, so ``--rounds N`` alternates index and encode N times and keeps each one's fastest.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.encoder import load_encoder
from semsearch.evaluation import read_beir
from semsearch.index import Index, IndexSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a BEIR folder (its corpus.jsonl is indexed)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="alternate index and encode N times")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    documents = read_beir(args.folder, "train")[0][: args.limit]
    encoder = load_encoder()
    encoder.encode(["warm up the model"] * 64)
    index_seconds = encode_seconds = float("inf")
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            index = Index.create(Path(tmp) / "index", settings=IndexSettings(unit="sentence"))
            started = time.perf_counter()
            index.add(documents, batch_size=args.batch_size)
            index_seconds = min(index_seconds, time.perf_counter() - started)
            sentences = [text for _, text in index.store.unit_texts(index.store.unit_ids())]
        started = time.perf_counter()
        encoder.encode(sentences, batch_size=args.batch_size)
        encode_seconds = min(encode_seconds, time.perf_counter() - started)
    started = time.perf_counter()
    encoder.model.encode(sentences, batch_size=args.batch_size, normalize_embeddings=True)
    plain_seconds = time.perf_counter() - started
    overhead = 100 * (index_seconds - encode_seconds) / encode_seconds
    rows = [{"step": step, "seconds": round(seconds, 2),
             "sentences/s": round(len(sentences) / seconds, 1)} for step, seconds in [
        ("plain sentence-transformers encode", plain_seconds),
        (f"semsearch encode alone ({encoder.precision})", encode_seconds),
        ("semsearch index (split+encode+store+faiss)", index_seconds)]]
    report(f"Indexing {len(documents)} documents, {len(sentences)} sentences: overhead"
           f" {overhead:.1f}% of the encode time", rows, args.json_path,
           {"overhead_percent": round(overhead, 2), "documents": len(documents),
            "sentences": len(sentences), "rounds": args.rounds})


if __name__ == "__main__":
    main()
