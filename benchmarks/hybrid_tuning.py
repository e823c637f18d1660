"""Dense vs keyword vs hybrid retrieval on a BEIR folder, with a sweep of fusion settings.

    python benchmarks/hybrid_tuning.py ../shared/data/scifact --split train
        [--index benchmarks/results/scifact-index] [--json out.json]

Scores nDCG@10 / MRR@10 / Recall@100 of every mode, of keyword search under each FTS5
tokenizer and with or without English stop words in the query, and of hybrid search under
each fusion setting. Tune on train queries only.
"""

from __future__ import annotations

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, report
from semsearch.evaluation import rank_documents, retrieval_metrics
from semsearch.search import SearchOptions
from semsearch.store import FTS_TOKENIZER

TOKENIZERS = ["porter", "unicode61", "unicode61 remove_diacritics 2", "trigram"]
RRF_KS = [5, 10, 20, 40, 60, 100]
ALPHAS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def keyword_rankings(index, queries: dict[str, str], drop_stop_words: bool) -> dict:
    """Keyword-only document rankings (best unit per document), with or without stop words."""
    rankings = {}
    for query_id, text in queries.items():
        found = index.store.keyword_search(text, 1000, drop_stop_words=drop_stop_words)
        rows = index.store.hits([unit_id for _, unit_id in found]) if found else {}
        ranking = dict.fromkeys(rows[unit_id]["document_id"] for _, unit_id in found)
        rankings[query_id] = list(ranking)[:100]
    return rankings


def main() -> None:
    parser = beir_arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    index, queries, qrels = beir_index(args.folder, args.split, args.index)
    rows = []

    def score(setting: str, mode: str, **fusion) -> None:
        metrics = retrieval_metrics(rank_documents(index, queries,
                                                   SearchOptions(mode=mode, **fusion)), qrels)
        rows.append({"mode": mode, "setting": setting, **metrics})
        print(rows[-1], flush=True)

    score("", "dense")
    for tokenizer in TOKENIZERS:
        index.store.rebuild_fts(tokenizer)
        score(f"tokenize={tokenizer}", "keyword")
    index.store.rebuild_fts(FTS_TOKENIZER)
    for drop in (True, False):
        rows.append({"mode": "keyword", "setting": f"{FTS_TOKENIZER}, stop words"
                     f" {'dropped' if drop else 'kept'}",
                     **retrieval_metrics(keyword_rankings(index, queries, drop), qrels)})
        print(rows[-1], flush=True)
    for rrf_k in RRF_KS:
        score(f"rrf k={rrf_k}", "hybrid", fusion="rrf", rrf_k=rrf_k)
    for alpha in ALPHAS:
        score(f"weighted alpha={alpha}", "hybrid", fusion="weighted", alpha=alpha)
    report(f"Search modes on {args.folder} ({args.split}, {len(queries)} queries)", rows,
           args.json_path, vars(args))


if __name__ == "__main__":
    main()
