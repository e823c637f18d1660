"""Encoding throughput and quality: plain sentence-transformers vs each semsearch precision.

    python benchmarks/encode.py ../shared/data [--docs 500] [--precisions fp32 bf16]
        [--json out.json]

Everything in one run on the same texts: STSb test sentences (sentences/s, and Spearman x100 of
cosine against the gold scores) and SciFact abstracts, title + text (documents/s). Batch 32.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from scipy.stats import spearmanr

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.encoder import (
    PRECISIONS,
    cpu_has_fast_bf16,
    default_device,
    default_model_path,
    load_encoder,
    resolve_precision,
)
from semsearch.evaluation import read_sts


def measure(name: str, encode, first, second, gold, abstracts) -> dict:
    encode(first[:64])  # warm-up
    started = time.perf_counter()
    a, b = encode(first), encode(second)
    sentence_seconds = time.perf_counter() - started
    started = time.perf_counter()
    encode(abstracts)
    document_seconds = time.perf_counter() - started
    spearman = spearmanr((a * b).sum(axis=1), gold).statistic
    return {"encoder": name, "sentences/s": 2 * len(first) / sentence_seconds,
            "documents/s": len(abstracts) / document_seconds, "stsb spearman": 100 * spearman}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder holding stsb/ and scifact/")
    parser.add_argument("--docs", type=int, default=500, help="SciFact abstracts to encode")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=[p for p in PRECISIONS if p != "auto"])
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    data = Path(args.data)
    first, second, gold = read_sts(data / "stsb" / "sts-test.csv")
    with open(data / "scifact" / "corpus.jsonl") as handle:
        abstracts = [f"{d['title']} {d['text']}" for d in map(json.loads, handle)][:args.docs]

    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(default_model_path()), device="cpu")
    rows = [measure("plain sentence-transformers fp32",
                    lambda texts: plain.encode(texts, batch_size=32, normalize_embeddings=True),
                    first, second, gold, abstracts)]
    print(rows[-1], flush=True)

    for precision in args.precisions:
        encoder = load_encoder(precision=precision)
        rows.append(measure(f"semsearch {precision}", encoder.encode, first, second, gold,
                            abstracts))
        print(rows[-1], flush=True)
    for row in rows:
        row["speed-up (docs)"] = row["documents/s"] / rows[0]["documents/s"]
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
