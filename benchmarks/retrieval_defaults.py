"""What each retrieval default adds: sentence vectors and document keywords, each switched off.

    python benchmarks/retrieval_defaults.py ../shared/data/scifact --split train
        [--index results/scifact-index] [--json out.json]

Four indexes of the same corpus (document units, long documents chunked), one per pair of the
two index settings that `semsearch index` and `semsearch eval retrieval` turn on by default:

- ``sentence_vectors``: each sentence of a multi-sentence unit is embedded too, and a unit's
  dense score is the mean of its own cosine and its best sentence's;
- ``document_keywords``: the keyword index holds whole documents (title and text), so BM25
  scores a document, not each of its chunks.

Each is scored in every search mode as `semsearch eval retrieval` scores it (each document by
its best unit, top 100). The indexes are kept beside ``--index`` (suffixes ``-no-sentences``,
``-unit-keywords``, ``-neither``) and reused; "index s" is the time to build one, where this
run built it.
"""

from __future__ import annotations

import time

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, report
from semsearch.evaluation import rank_documents, retrieval_metrics
from semsearch.search import MODES, SearchOptions

VARIANTS = {  # suffix: (sentence_vectors, document_keywords)
    "": (True, True), "-no-sentences": (False, True), "-unit-keywords": (True, False),
    "-neither": (False, False)}


def main() -> None:
    args = beir_arguments(__doc__.splitlines()[0]).parse_args()
    rows = []
    for suffix, (sentences, documents) in VARIANTS.items():
        started = time.perf_counter()
        index, queries, qrels = beir_index(args.folder, args.split, args.index + suffix,
                                           sentence_vectors=sentences,
                                           document_keywords=documents)
        built = time.perf_counter() - started
        for mode in MODES:
            metrics = retrieval_metrics(rank_documents(index, queries, SearchOptions(mode=mode)),
                                        qrels)
            rows.append({"sentence vectors": "yes" if sentences else "no",
                         "document keywords": "yes" if documents else "no", "mode": mode,
                         **metrics, "index s": round(built) if built > 5 else "reused"})
            print(rows[-1], flush=True)
        index.store.close()
    report(f"Retrieval defaults on {args.folder} ({args.split}, {len(queries)} queries)", rows,
           args.json_path, vars(args))


if __name__ == "__main__":
    main()
