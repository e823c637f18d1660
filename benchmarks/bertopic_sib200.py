"""BERTopic on the same SIB-200 vectors as clustering_sib200.py, side by side with semsearch.

Runs in its own environment (BERTopic is not a semsearch dependency):

    python3 -m venv /tmp/bertopic && /tmp/bertopic/bin/pip install torch==2.13.0 bertopic
    /tmp/bertopic/bin/python benchmarks/bertopic_sib200.py results/sib200.npz
        [--semsearch results/clustering_sib200.json] [--seeds 3] [--json out.json]

BERTopic's defaults (UMAP 5-d, HDBSCAN min size 10, c-TF-IDF) with UMAP seeded; outliers stay
topic -1 and count as one label in the V-measure, as BERTopic reports them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from bertopic import BERTopic  # noqa: E402
from sklearn.metrics import v_measure_score  # noqa: E402
from umap import UMAP  # noqa: E402

from _common import report  # noqa: E402


def run(texts, vectors, labels, seed: int, nr_topics):
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                      random_state=seed)
    model = BERTopic(umap_model=umap_model, nr_topics=nr_topics)
    topics, _ = model.fit_transform(texts, embeddings=vectors)
    words = {t: [w for w, _ in model.get_topic(t)[:6]] for t in sorted(set(topics)) if t != -1}
    return v_measure_score(labels, topics), topics, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", help=".npz written by clustering_sib200.py --embeddings")
    parser.add_argument("--semsearch", help="clustering_sib200.py --json output, to show beside")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    data = np.load(args.embeddings)
    texts, vectors, labels = list(data["texts"]), data["vectors"], list(data["labels"])
    rows, label_sets = [], {}
    for name, nr_topics in (("BERTopic defaults", None), ("BERTopic nr_topics=8", 8)):
        scores, clusters, outliers, seconds = [], [], [], []
        for seed in range(args.seeds):
            started = time.perf_counter()
            score, topics, words = run(texts, vectors, labels, seed, nr_topics)
            seconds.append(time.perf_counter() - started)
            scores.append(score)
            clusters.append(len(set(topics) - {-1}))
            outliers.append(sum(1 for t in topics if t == -1))
            if seed == 0:
                label_sets[name] = words
        rows.append({"method": name, "v_measure": round(statistics.fmean(scores), 4),
                     "v_sd": round(statistics.pstdev(scores), 4),
                     "clusters": statistics.fmean(clusters),
                     "outliers": statistics.fmean(outliers),
                     "seconds per run": round(statistics.fmean(seconds), 2)})
        print(rows[-1], flush=True)
    for name, words in label_sets.items():
        print(f"\n{name} (seed 0) topics:")
        for topic, top in words.items():
            print(f"  {topic:>3}  {' '.join(top)}")
    if args.semsearch:
        ours = json.loads(Path(args.semsearch).read_text())["rows"]
        rows = [{key: row[key] for key in rows[0]} for row in ours] + rows
    report(f"SIB-200 clustering, the same vectors: semsearch and BERTopic ({args.seeds} seeds"
           " for BERTopic)", rows, args.json_path, {"bertopic_labels": label_sets})


if __name__ == "__main__":
    main()
