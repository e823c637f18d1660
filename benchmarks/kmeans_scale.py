"""k-means at scale: N random unit vectors (default 1,000,000 × 384) into k clusters.

    python benchmarks/kmeans_scale.py [--n 1000000] [--dim 384] [--k 100]
        [--reduce umap|none] [--json out.json]

Times semsearch's cluster_vectors (canonical ordering, the UMAP reduction of a sample or none,
FAISS k-means with the default restarts, numbering by size, centroid distances) end to end.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.clustering import DEFAULT_REDUCTION, DEFAULT_RESTARTS, REDUCTIONS, cluster_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS)
    parser.add_argument("--reduce", choices=REDUCTIONS, default=DEFAULT_REDUCTION)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    vectors = np.random.default_rng(0).standard_normal((args.n, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    clustering = cluster_vectors(vectors, k=args.k, restarts=args.restarts,
                                 reduction=args.reduce)
    seconds = time.perf_counter() - started
    rows = [{"vectors": args.n, "dim": args.dim, "k": args.k, "restarts": args.restarts,
             "reduce": args.reduce,
             "clusters": clustering.n_clusters, "seconds": round(seconds, 1)}]
    report("kmeans at scale (random unit vectors)", rows, args.json_path)


if __name__ == "__main__":
    main()
