"""Every clustering method on SIB-200 English (7 topics, 1,004 sentences), default model.

    python benchmarks/clustering_sib200.py ../shared/data/sib200 [--seeds 10]
        [--embeddings results/sib200.npz] [--json out.json]

V-measure, NMI and ARI against the topic labels (mean ± sd over seeds), clusters and outliers.
``--embeddings`` saves the vectors, texts and labels for benchmarks/bertopic_sib200.py, which
runs BERTopic on the very same vectors in its own environment.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.clustering import cluster_keywords, cluster_vectors
from semsearch.encoder import load_encoder
from semsearch.evaluation import read_labelled, score_clustering

SETTINGS = [  # (name, method, seeded, options); kmeans k is the number of labels
    ("kmeans, 1 run (plain k-means)", "kmeans", True, {"restarts": 1}),
    ("kmeans, 20 restarts (default)", "kmeans", True, {}),
    ("kmeans, k auto (silhouette)", "kmeans", True, {"k": None}),
    ("agglomerative, k = labels", "agglomerative", False, {"k": 7}),
    ("agglomerative, threshold 0.25 (default)", "agglomerative", False, {}),
    ("hdbscan, min size 5 (default)", "hdbscan", False, {}),
    ("hdbscan, min size 15, outliers reduced", "hdbscan", False,
     {"min_size": 15, "reduce_outliers": True}),
    ("community, threshold 0.75 (default)", "community", False, {}),
    ("community, threshold 0.5", "community", False, {"threshold": 0.5}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with train.tsv, dev.tsv, test.tsv")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--embeddings", help="save vectors, texts and labels to this .npz")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    files = [Path(args.folder) / f"{split}.tsv" for split in ("train", "dev", "test")]
    texts, labels = read_labelled(files, "text", "category")
    vectors = load_encoder().encode(texts)
    if args.embeddings:
        np.savez(args.embeddings, vectors=vectors, texts=np.array(texts),
                 labels=np.array(labels))
    k = len(set(labels))
    rows = []
    for name, method, seeded, options in SETTINGS:
        options = {"k": k if method == "kmeans" else None, **options}
        started = time.perf_counter()
        scores = score_clustering(vectors, labels, method=method,
                                  seeds=args.seeds if seeded else 1, **options)
        rows.append({"method": name, "v_measure": scores["v_measure"]["mean"],
                     "v_sd": scores["v_measure"]["std"], "nmi": scores["nmi"]["mean"],
                     "ari": scores["ari"]["mean"], "clusters": scores["clusters"]["mean"],
                     "outliers": scores["outliers"]["mean"],
                     "seconds per run": round((time.perf_counter() - started)
                                              / (args.seeds if seeded else 1), 2)})
        print(rows[-1], flush=True)
    default = cluster_vectors(vectors, k=k, seed=0)
    words = cluster_keywords(texts, default.labels)
    topics = {c: Counter(np.array(labels)[default.labels == c].tolist()).most_common(1)[0][0]
              for c in range(default.n_clusters)}
    print("\nkmeans (default, seed 0) labels: cluster, size, majority topic, c-TF-IDF keywords")
    for c in range(default.n_clusters):
        print(f"  {c}  {(default.labels == c).sum():>4}  {topics[c]:<20} {' '.join(words[c])}")
    report(f"SIB-200 English clustering ({len(texts)} sentences, {k} topics,"
           f" {args.seeds} seeds where seeded)", rows, args.json_path,
           {"kmeans_labels": {c: {"majority_topic": topics[c], "keywords": words[c]}
                              for c in range(default.n_clusters)}})


if __name__ == "__main__":
    main()
