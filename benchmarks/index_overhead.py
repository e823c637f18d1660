"""Time `semsearch index --unit sentence` against a plain sentence-transformers encode.

    python benchmarks/index_overhead.py ../shared/data/scifact [--limit N] [--json out.json]

Both embed exactly the same sentences with the same model and batch size in the same process;
overhead = (index time - plain encode time) / plain encode time: splitting, SQLite, FTS, FAISS.
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
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    documents = read_beir(args.folder, "train")[0][: args.limit]
    encoder = load_encoder()
    encoder.encode(["warm up the model"] * 64)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(Path(tmp) / "index", settings=IndexSettings(unit="sentence"))
        started = time.perf_counter()
        result = index.add(documents, batch_size=args.batch_size)
        index_seconds = time.perf_counter() - started
        sentences = [text for _, text in index.store.unit_texts(index.store.unit_ids())]
    started = time.perf_counter()
    encoder.model.encode(sentences, batch_size=args.batch_size, normalize_embeddings=True)
    encode_seconds = time.perf_counter() - started
    overhead = 100 * (index_seconds - encode_seconds) / encode_seconds
    rows = [
        {"step": "plain sentence-transformers encode", "seconds": round(encode_seconds, 2),
         "sentences/s": round(len(sentences) / encode_seconds, 1)},
        {"step": "semsearch index (split+encode+store+faiss)", "seconds": round(index_seconds, 2),
         "sentences/s": round(result.units / index_seconds, 1)},
    ]
    report(f"Indexing {len(documents)} documents, {len(sentences)} sentences: overhead"
           f" {overhead:.1f}% of the encode time", rows, args.json_path,
           {"overhead_percent": round(overhead, 2), "documents": len(documents),
            "sentences": len(sentences)})


if __name__ == "__main__":
    main()
