"""Dense vs keyword vs hybrid retrieval on a BEIR folder, with a sweep of fusion settings.

    python benchmarks/hybrid_tuning.py ../shared/data/scifact --split train
        [--index benchmarks/results/scifact-index] [--json out.json]

Scores nDCG@10 / MRR@10 / Recall@100 of every mode and of hybrid search under each fusion
setting. Tune on train queries only. (Until the keyword index moved to tantivy this also
compared FTS5 tokenizers and stop words: Porter stemming and dropped stop words won, which the
keyword index keeps.)
"""

from __future__ import annotations

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, report
from semsearch.evaluation import rank_documents, retrieval_metrics
from semsearch.search import SearchOptions

RRF_KS = [5, 10, 20, 40, 60, 100]
ALPHAS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8]


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
    score("", "keyword")
    for rrf_k in RRF_KS:
        score(f"rrf k={rrf_k}", "hybrid", fusion="rrf", rrf_k=rrf_k)
    for alpha in ALPHAS:
        score(f"weighted alpha={alpha}", "hybrid", fusion="weighted", alpha=alpha)
    report(f"Search modes on {args.folder} ({args.split}, {len(queries)} queries)", rows,
           args.json_path, vars(args))


if __name__ == "__main__":
    main()
