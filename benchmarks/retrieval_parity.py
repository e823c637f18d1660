"""nDCG@10 of `semsearch eval retrieval` vs plain sentence-transformers + exact search.

    python benchmarks/retrieval_parity.py ../shared/data/scifact --split train [--json out.json]

All use the same model and the same texts (title + " " + abstract); the baseline is
sentence-transformers' own InformationRetrievalEvaluator (exact cosine search), which truncates
long documents as `--no-chunk` does. The default splits them into chunks scored by the best.
"""

from __future__ import annotations

import argparse
import time

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.encoder import load_encoder
from semsearch.evaluation import evaluate_retrieval, read_beir


def plain_sentence_transformers(folder: str, split: str) -> dict:
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    documents, queries, qrels = read_beir(folder, split)
    relevant = {q: {d for d, rel in docs.items() if rel > 0} for q, docs in qrels.items()}
    evaluator = InformationRetrievalEvaluator(
        queries=queries, corpus={doc.id: doc.text for doc in documents},
        relevant_docs={q: relevant[q] for q in queries}, ndcg_at_k=[10], mrr_at_k=[10],
        accuracy_at_k=[1], precision_recall_at_k=[100], map_at_k=[10], batch_size=32,
        name="plain", write_csv=False,
    )
    metrics = evaluator(load_encoder().model)
    return {"ndcg@10": round(100 * metrics["plain_cosine_ndcg@10"], 2),
            "mrr@10": round(100 * metrics["plain_cosine_mrr@10"], 2),
            "recall@100": round(100 * metrics["plain_cosine_recall@100"], 2)}


def dense(result: dict) -> dict:
    return result["results"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = []
    for name, run in [
        ("sentence-transformers + exact", lambda: plain_sentence_transformers(args.folder,
                                                                              args.split)),
        ("semsearch eval retrieval --no-chunk",
         lambda: dense(evaluate_retrieval(args.folder, split=args.split, modes=["dense"],
                                          chunk=False))),
        ("semsearch eval retrieval --mode dense (chunked)",
         lambda: dense(evaluate_retrieval(args.folder, split=args.split, modes=["dense"]))),
    ]:
        started = time.perf_counter()
        metrics = run()
        rows.append({"system": name, "ndcg@10": metrics["ndcg@10"], "mrr@10": metrics["mrr@10"],
                     "recall@100": metrics["recall@100"],
                     "seconds": round(time.perf_counter() - started, 1)})
    difference = round(rows[1]["ndcg@10"] - rows[0]["ndcg@10"], 2)
    report(f"Retrieval on {args.folder} ({args.split}); --no-chunk vs plain: {difference:+.2f}",
           rows, args.json_path, {"ndcg_difference": difference})


if __name__ == "__main__":
    main()
