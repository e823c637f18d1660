"""Encoding throughput and quality: plain sentence-transformers vs each semsearch backend.

    python benchmarks/encode.py ../shared/data [--docs 500]
        [--setups torch:fp32 torch:bf16 onnx:fp32 onnx:int8 torch:fp32:1024] [--json out.json]

Everything in one run on the same texts: STSb test sentences (sentences/s, and Spearman x100 of
cosine against the gold scores), SciFact abstracts, title + text (documents/s), batch 32 (for
semsearch: batches of 32 × 128 padded tokens, or the token budget a setup's third field gives);
and one query at a time (median ms over 200 SciFact queries), as a server embeds them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from scipy.stats import spearmanr

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.encoder import (
    cpu_has_fast_bf16,
    default_device,
    load_encoder,
    resolve_precision,
)
from semsearch.evaluation import read_sts
from semsearch.model_folder import default_model_path


def measure(name: str, encode, first, second, gold, abstracts, queries) -> dict:
    encode(first[:64])  # warm-up
    started = time.perf_counter()
    a, b = encode(first), encode(second)
    sentence_seconds = time.perf_counter() - started
    started = time.perf_counter()
    encode(abstracts)
    document_seconds = time.perf_counter() - started
    spearman = spearmanr((a * b).sum(axis=1), gold).statistic
    alone = []
    for query in queries:
        started = time.perf_counter()
        encode([query])
        alone.append(1000 * (time.perf_counter() - started))
    return {"encoder": name, "sentences/s": 2 * len(first) / sentence_seconds,
            "documents/s": len(abstracts) / document_seconds,
            "query ms": statistics.median(alone), "stsb spearman": 100 * spearman}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder holding stsb/ and scifact/")
    parser.add_argument("--docs", type=int, default=500, help="SciFact abstracts to encode")
    parser.add_argument("--setups", nargs="+", metavar="BACKEND:PRECISION[:TOKENS]",
                        default=["torch:fp32", "torch:bf16", "onnx:fp32", "onnx:int8"])
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    data = Path(args.data)
    first, second, gold = read_sts(data / "stsb" / "sts-test.csv")
    with open(data / "scifact" / "corpus.jsonl") as handle:
        abstracts = [f"{d['title']} {d['text']}" for d in map(json.loads, handle)][:args.docs]
    with open(data / "scifact" / "queries.jsonl") as handle:
        queries = [q["text"] for q in map(json.loads, handle)][:200]

    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(default_model_path()), device="cpu")
    rows = [measure("plain sentence-transformers fp32",
                    lambda texts: plain.encode(texts, batch_size=32, normalize_embeddings=True),
                    first, second, gold, abstracts, queries)]
    print(rows[-1], flush=True)

    for setup in args.setups:
        backend, precision, tokens = (setup.split(":") + ["", ""])[:3]
        encoder = load_encoder(precision=precision or "auto", backend=backend)
        budget = int(tokens) if tokens else None
        rows.append(measure(
            f"semsearch {backend} {encoder.precision}" + (f" {budget} tokens" if budget else ""),
            lambda texts, encoder=encoder, budget=budget: encoder.encode(texts,
                                                                        batch_tokens=budget),
            first, second, gold, abstracts, queries))
        print(rows[-1], flush=True)
    for row in rows:
        row["speed-up (docs)"] = row["documents/s"] / rows[0]["documents/s"]
        row["speed-up (query)"] = rows[0]["query ms"] / row["query ms"]
    auto = resolve_precision("auto", default_device())
    report(f"Encoding on {os.cpu_count()} cores, {default_device()}; bf16 units:"
           f" {cpu_has_fast_bf16()}; auto = {auto}", rows, args.json_path,
           {**vars(args), "auto": auto, "fast_bf16": cpu_has_fast_bf16(),
            "cpu": _cpu_name()})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
