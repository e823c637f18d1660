"""The torch-free query path gives the torch path's vectors and hits.

    python benchmarks/torch_free_parity.py ../shared/data [--index results/scifact-index]
        [--json out.json]

Vectors: every STSb test sentence embedded by torch (fp32) and by ONNX Runtime + tokenizers (the
export a query runs): the largest absolute difference of any coordinate (target <= 1e-5). Hits:
every SciFact train query searched in the corpus index (document units, chunked) through both,
in dense and hybrid mode: how many queries get the same top-10 ids in the same order (target:
all of them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import beir_index, report
from semsearch.encoder import Runtime, load_encoder
from semsearch.evaluation import read_sts
from semsearch.index import Index
from semsearch.search import SearchOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the folder holding stsb/ and scifact/")
    parser.add_argument("--index", default="results/scifact-index")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    first, second, _ = read_sts(Path(args.data) / "stsb" / "sts-test.csv")
    sentences = sorted(set(first + second))
    torch_vectors = load_encoder(backend="torch", precision="fp32").encode(sentences)
    onnx_vectors = load_encoder(backend="onnx").encode(sentences)
    difference = float(np.abs(torch_vectors - onnx_vectors).max())
    rows = [{"check": f"STSb test sentences ({len(sentences)}): max |torch - onnx|",
             "value": f"{difference:.2e}", "target": "<= 1e-05",
             "met": difference <= 1e-5}]
    _, queries, _ = beir_index(str(Path(args.data) / "scifact"), "train", args.index)
    texts = list(queries.values())
    opened_by = {backend: Index.open(args.index, runtime=Runtime("fp32", backend))
             for backend in ("torch", "onnx")}
    for mode in ("dense", "hybrid"):
        options = SearchOptions(k=10, mode=mode)
        hits = {backend: [[hit.unit_id for hit in found] for found in
                          opened.search(texts, options)] for backend, opened in opened_by.items()}
        same = sum(a == b for a, b in zip(hits["torch"], hits["onnx"], strict=True))
        rows.append({"check": f"SciFact train queries, {mode}: same top-10 ids and order",
                     "value": f"{same} / {len(texts)}", "target": "all",
                     "met": same == len(texts)})
    report("Torch-free query path against torch (fp32)", rows, args.json_path)


if __name__ == "__main__":
    main()
