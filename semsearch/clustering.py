"""Clustering: group unit or document vectors, name each group by its words, keep the run.

k-means runs on FAISS, by default on a UMAP reduction of the vectors to 10 dimensions (as
BERTopic reduces before it clusters): on every labelled corpus measured it beats k-means on the
vectors themselves by more than a standard deviation (SIB-200: 0.55 against 0.46 for plain
scikit-learn k-means and 0.50 for 20 spherical restarts; docs/benchmarks.md). Agglomerative
and HDBSCAN come from scikit-learn and community detection from sentence-transformers. Labels
are c-TF-IDF keywords (each cluster's text as one document, as BERTopic does) plus the units
nearest the centroid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from semsearch.errors import InputError

if TYPE_CHECKING:
    from semsearch.index import Index


class ClusterDataset(Protocol):
    """Items held in several parts that each count, sample and assign their own (the dataset
    idea of faiss's ``contrib/clustering.py``): all that :func:`cluster_dataset` needs of them,
    so the clustering never knows where or how the parts are stored."""

    def count(self, by_document: bool) -> int: ...

    def sample(self, by_document: bool, fraction: float, seed: int) -> np.ndarray: ...

    def assign(self, by_document: bool, centroids: np.ndarray) -> list[dict]:
        """Per part: ``sizes`` per cluster, word ``counts`` per cluster and the ``nearest``
        (distance, item) pairs per cluster; each part keeps its labels for :meth:`save`."""
        ...

    def save(self, run: dict, clusters: list[dict], renumber: np.ndarray) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What to record of the parts with the run's parameters."""
        ...

    def cluster_runs(self) -> list[dict]: ...

    def cluster_run(self, run_id: int | None = None) -> dict: ...


METHODS = ("kmeans", "agglomerative", "hdbscan", "community")
# Methods that need all pairwise distances (memory and time grow with n²) stop here.
PAIRWISE_LIMIT = 20_000
DEFAULT_RESTARTS = 20
KMEANS_ITERATIONS = 50
REDUCTIONS = ("umap", "none")
DEFAULT_REDUCTION = "umap"
UMAP_COMPONENTS = 10
UMAP_NEIGHBORS = 15
# UMAP fits on at most this many items (seeded sample); the rest join their nearest centroid.
UMAP_FIT_LIMIT = 20_000
# Below this many items UMAP's neighbourhood graph says little: k-means runs on the vectors.
UMAP_MIN_ITEMS = 100
# --k auto, for k in this range: on the UMAP reduction, the largest eigengap of its neighbour
# graph (steadier across seeds than Davies-Bouldin or silhouette there, which split SIB-200's 7
# topics into 22-30 on some seeds); on the vectors, silhouette (cosine) of k-means on a sample.
AUTO_K_RANGE = (2, 30)
SILHOUETTE_SAMPLE = 4_000
DEFAULT_THRESHOLD = {"agglomerative": 0.25, "community": 0.75}  # cosine similarity
DEFAULT_MIN_SIZE = {"hdbscan": 5, "community": 3}
PARTS_SAMPLE = 100_000  # items drawn from all parts to train the centroids of a dataset


@dataclass
class Clustering:
    labels: np.ndarray  # cluster per item; -1 marks an outlier
    centroids: np.ndarray  # one normalised row per cluster, cluster i at row i
    distances: np.ndarray  # cosine distance of each item to its centroid (nan for outliers)
    parameters: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.centroids)

    @property
    def outliers(self) -> int:
        return int((self.labels == -1).sum())


def cluster_vectors(
    vectors: np.ndarray, method: str = "kmeans", *, k: int | None = None, seed: int = 0,
    restarts: int = DEFAULT_RESTARTS, threshold: float | None = None,
    min_size: int | None = None, reduce_outliers: bool = False,
    reduction: str = DEFAULT_REDUCTION,
) -> Clustering:
    """Cluster normalised vectors. ``k=None`` lets k-means choose k and makes agglomerative
    cut at ``threshold``; ``reduction`` is what k-means runs on. Results depend on the set of
    vectors and the seed only: rows are put in a canonical order first, and clusters are
    numbered by size; centroids and distances are always in the vectors' own space."""
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}")
    if reduction not in REDUCTIONS:
        raise InputError(f"--reduce must be one of {', '.join(REDUCTIONS)}")
    n = len(vectors)
    if n < 2:
        raise InputError(f"clustering needs at least 2 items, got {n}")
    if k is not None and not 1 <= k <= n:
        raise InputError(f"-k must be between 1 and the number of items ({n})")
    if method != "kmeans" and n > PAIRWISE_LIMIT:
        raise InputError(f"{method} compares every pair of items and {n:,} items is over its"
                         f" limit of {PAIRWISE_LIMIT:,}; use --method kmeans")
    order = canonical_order(vectors)
    data = np.ascontiguousarray(vectors[order], dtype=np.float32)
    parameters: dict = {"method": method, "seed": seed}
    if method == "kmeans" and reduction == "umap" and n >= UMAP_MIN_ITEMS:
        if k is None:
            parameters["k_chosen_by"] = "eigengap"
        labels, k = _umap_kmeans(data, k, seed, restarts)
        parameters.update(k=k, restarts=restarts, reduction="umap",
                          umap={"components": UMAP_COMPONENTS, "neighbors": UMAP_NEIGHBORS,
                                "fitted_on": min(n, UMAP_FIT_LIMIT)})
    elif method == "kmeans":
        if k is None:
            k = choose_k(data, seed=seed)
            parameters["k_chosen_by"] = "silhouette"
        labels = _kmeans(data, k, seed, restarts)
        parameters.update(k=k, restarts=restarts, reduction="none")
    elif method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        threshold = DEFAULT_THRESHOLD[method] if threshold is None else threshold
        model = AgglomerativeClustering(
            n_clusters=k, distance_threshold=None if k else 1 - threshold, metric="cosine",
            linkage="average")
        labels = model.fit_predict(data)
        parameters.update({"k": k} if k else {"threshold": threshold})
    elif method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        min_size = DEFAULT_MIN_SIZE[method] if min_size is None else min_size
        # On unit vectors euclidean distance orders pairs as cosine does, and allows trees.
        labels = HDBSCAN(min_cluster_size=max(2, min_size), copy=True).fit_predict(data)
        parameters.update(min_size=min_size)
    else:
        from sentence_transformers.util import community_detection

        threshold = DEFAULT_THRESHOLD[method] if threshold is None else threshold
        min_size = DEFAULT_MIN_SIZE[method] if min_size is None else min_size
        labels = np.full(n, -1)
        for number, members in enumerate(community_detection(
                data, threshold=threshold, min_community_size=min_size)):
            labels[members] = number
        parameters.update(threshold=threshold, min_size=min_size)
    labels = _by_size(np.asarray(labels))
    centroids = _centroids(data, labels)
    if reduce_outliers and (labels == -1).any() and len(centroids):
        outliers = labels == -1
        labels[outliers] = np.argmax(data[outliers] @ centroids.T, axis=1)
        centroids = _centroids(data, labels)
        parameters["reduce_outliers"] = True
    distances = np.full(n, np.nan, dtype=np.float32)
    member = labels >= 0
    distances[member] = 1 - np.einsum("ij,ij->i", data[member], centroids[labels[member]])
    restore = np.empty_like(order)
    restore[order] = np.arange(n)
    return Clustering(labels=labels[restore], centroids=centroids, distances=distances[restore],
                      parameters=parameters)


def canonical_order(vectors: np.ndarray) -> np.ndarray:
    """An order of the rows that depends on their values only, not on how they came in: by
    their projections on two fixed random directions (distinct rows tie with probability 0)."""
    directions = np.random.default_rng(20261127).standard_normal((vectors.shape[1], 2))
    keys = vectors.astype(np.float64) @ directions
    return np.lexsort((keys[:, 1], keys[:, 0]))


def _kmeans(data: np.ndarray, k: int, seed: int, restarts: int, spherical: bool = True
            ) -> np.ndarray:
    import faiss

    kmeans = faiss.Kmeans(data.shape[1], k, niter=KMEANS_ITERATIONS, nredo=max(1, restarts),
                          seed=seed, spherical=spherical, gpu=faiss.get_num_gpus() > 0,
                          min_points_per_centroid=1)
    kmeans.train(data)
    return kmeans.index.search(data, 1)[1][:, 0]


def _umap_kmeans(data: np.ndarray, k: int | None, seed: int, restarts: int
                 ) -> tuple[np.ndarray, int]:
    """k-means on a seeded UMAP reduction of (a sample of) the rows; rows outside the sample
    join the nearest centroid of the sample's clusters in the original space."""
    try:
        import umap
    except ImportError:
        raise InputError("--reduce umap needs umap-learn: pip install umap-learn, or use"
                         " --reduce none") from None
    fitted = np.arange(len(data))
    if len(data) > UMAP_FIT_LIMIT:
        fitted = np.sort(np.random.default_rng(seed).permutation(len(data))[:UMAP_FIT_LIMIT])
    reducer = umap.UMAP(n_components=UMAP_COMPONENTS, n_neighbors=UMAP_NEIGHBORS, min_dist=0.0,
                        metric="cosine", random_state=seed, n_jobs=1)
    reduced = np.ascontiguousarray(reducer.fit_transform(data[fitted]), dtype=np.float32)
    if k is None:
        k = eigengap_k(reducer.graph_)
    k = min(k, len(fitted))
    sample_labels = _kmeans(reduced, k, seed, restarts, spherical=False)
    if len(fitted) == len(data):
        return sample_labels, k
    centroids = _centroids(data[fitted], sample_labels)
    return np.argmax(data @ centroids.T, axis=1), k


def choose_k(data: np.ndarray, *, seed: int = 0, k_range: tuple[int, int] = AUTO_K_RANGE
             ) -> int:
    """The k whose spherical k-means clustering of a sample has the highest cosine silhouette."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sample = data[np.sort(rng.permutation(len(data))[:SILHOUETTE_SAMPLE])]
    candidates = range(k_range[0], min(k_range[1], len(sample) - 1) + 1)
    if not candidates:
        return 1
    scores: dict[int, float] = {}
    for k in candidates:
        labels = _kmeans(sample, k, seed, restarts=3)
        if len(set(labels.tolist())) > 1:
            scores[k] = silhouette_score(sample, labels, metric="cosine")
    return max(scores, key=lambda k: scores[k]) if scores else 1


def eigengap_k(graph, k_range: tuple[int, int] = AUTO_K_RANGE) -> int:
    """The number of groups a neighbour graph's spectrum shows: the k after which the
    normalised Laplacian's eigenvalues jump most (k well-separated groups give k near-zero
    eigenvalues). Deterministic: Lanczos starts from a fixed vector."""
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    weights = sparse.csr_matrix((graph + graph.T) / 2, dtype=np.float64)
    degree = np.asarray(weights.sum(axis=1)).ravel()
    scale = sparse.diags(1 / np.sqrt(np.maximum(degree, 1e-12)))
    count = min(k_range[1] + 1, weights.shape[0] - 2)
    if count <= k_range[0]:
        return min(k_range[0], weights.shape[0])
    # The Laplacian's smallest eigenvalues are 1 - the largest of the normalised adjacency.
    largest = eigsh(scale @ weights @ scale, k=count, which="LA", return_eigenvectors=False,
                    v0=np.ones(weights.shape[0]))
    eigenvalues = 1 - np.sort(largest)[::-1]
    return max(range(k_range[0], count), key=lambda k: eigenvalues[k] - eigenvalues[k - 1])


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, … from the largest (ties: the earliest member); -1 stays."""
    found, first, sizes = np.unique(labels[labels >= 0], return_index=True, return_counts=True)
    ranked = found[np.lexsort((first, -sizes))]
    mapping = np.full(int(labels.max()) + 2 if len(labels) else 1, -1, dtype=np.int64)
    mapping[ranked] = np.arange(len(ranked))
    return mapping[labels]  # label -1 reads the last slot, which stays -1


def _centroids(data: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from scipy import sparse

    member = np.flatnonzero(labels >= 0)
    count = int(labels.max()) + 1 if len(labels) else 0
    onehot = sparse.csr_matrix((np.ones(len(member), np.float32), (labels[member], member)),
                               shape=(count, len(data)))
    sums = np.asarray(onehot @ data, dtype=np.float32)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def cluster_keywords(texts: list[str], labels: np.ndarray, top: int = 6) -> dict[int, list[str]]:
    """Each cluster's most distinctive words by class-based TF-IDF, English stop words removed:
    term frequency within the cluster × log(1 + average cluster length / corpus frequency)."""
    return keywords_from_counts(word_counts(texts, labels), top)


def word_counts(texts: list[str], labels: np.ndarray) -> dict[int, Counter]:
    """Each cluster's word counts (parts count their own; the sums give the keywords)."""
    from sklearn.feature_extraction.text import CountVectorizer

    analyze = CountVectorizer(stop_words="english",
                              token_pattern=r"(?u)\b[^\W\d_][\w-]+\b").build_analyzer()
    counts: dict[int, Counter] = {int(c): Counter() for c in set(labels.tolist()) if c >= 0}
    for text, label in zip(texts, labels.tolist(), strict=True):
        if label >= 0:
            counts[label].update(analyze(text))
    return counts


def keywords_from_counts(counts: dict[int, Counter], top: int = 6) -> dict[int, list[str]]:
    clusters = sorted(counts)
    words = sorted(set().union(*counts.values()))
    if not words:  # nothing but stop words and numbers
        return {c: [] for c in clusters}
    column = {word: j for j, word in enumerate(words)}
    matrix = np.zeros((len(clusters), len(words)))
    for row, c in enumerate(clusters):
        for word, count in counts[c].items():
            matrix[row, column[word]] = count
    frequency = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    average_length = matrix.sum() / max(len(clusters), 1)
    weights = frequency * np.log1p(average_length / np.maximum(matrix.sum(axis=0), 1))
    return {c: [words[j] for j in np.argsort(-row, kind="stable")[:top] if row[j] > 0]
            for c, row in zip(clusters, weights, strict=True)}


def representatives(clustering: Clustering, n: int = 3) -> dict[int, list[int]]:
    """Positions of the ``n`` items nearest each cluster's centroid."""
    result = {}
    for c in range(clustering.n_clusters):
        members = np.flatnonzero(clustering.labels == c)
        result[c] = members[np.argsort(clustering.distances[members], kind="stable")[:n]].tolist()
    return result


def cluster_index(
    index: Index, *, method: str = "kmeans", by_document: bool = False, k: int | None = None,
    seed: int = 0, restarts: int = DEFAULT_RESTARTS, threshold: float | None = None,
    min_size: int | None = None, reduce_outliers: bool = False, keywords: int = 6,
    reduction: str = DEFAULT_REDUCTION,
) -> dict:
    """Cluster an index's units (or documents: the normalised mean of their units), label the
    clusters and store the run; returns the stored run."""
    items, vectors, texts = cluster_items(index, by_document)
    clustering = cluster_vectors(vectors, method, k=k, seed=seed, restarts=restarts,
                                 threshold=threshold, min_size=min_size,
                                 reduce_outliers=reduce_outliers, reduction=reduction)
    words = cluster_keywords(texts, clustering.labels, top=keywords)
    nearest = representatives(clustering)
    sizes = np.bincount(clustering.labels[clustering.labels >= 0],
                        minlength=clustering.n_clusters)
    clusters = [{"cluster": c, "size": int(sizes[c]), "keywords": words.get(c, []),
                 "representatives": [{**items[i], "text": texts[i][:300]} for i in nearest[c]]}
                for c in range(clustering.n_clusters)]
    assignments = ({**item, "cluster": int(label),
                    "distance": None if np.isnan(distance) else float(distance)}
                   for item, label, distance in zip(items, clustering.labels,
                                                    clustering.distances, strict=True))
    run = {"method": method, "target": "document" if by_document else "unit",
           "parameters": clustering.parameters, "clusters": clustering.n_clusters,
           "outliers": clustering.outliers, "items": len(items)}
    with index.writing():
        run_id = index.store.save_cluster_run(run, clusters, assignments)
    return index.store.cluster_run(run_id)


def cluster_items(index: Index, by_document: bool) -> tuple[list[dict], np.ndarray, list[str]]:
    """What gets clustered: each unit, or each document (the normalised mean of its units),
    with its vector and text."""
    rows = index.store.conn.execute("select id, document_id, text from units order by id")
    unit_ids, document_ids, texts = map(list, zip(*rows.fetchall(), strict=True)) if (
        index.store.count("units")) else ([], [], [])
    vectors = index.vectors.vectors(np.array(unit_ids, dtype=np.int64))
    if not by_document:
        return ([{"unit_id": u, "document_id": d}
                 for u, d in zip(unit_ids, document_ids, strict=True)], vectors, texts)
    names, position = np.unique(np.array(document_ids, dtype=object), return_inverse=True)
    sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, position, vectors)
    joined: dict[str, list[str]] = {}
    for document_id, text in zip(document_ids, texts, strict=True):
        joined.setdefault(document_id, []).append(text)
    return ([{"unit_id": None, "document_id": name} for name in names.tolist()],
            sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12),
            [" ".join(joined[name]) for name in names.tolist()])


def cluster_dataset(
    dataset: ClusterDataset, *, by_document: bool = False, k: int | None = None, seed: int = 0,
    restarts: int = DEFAULT_RESTARTS, sample: int = PARTS_SAMPLE, keywords: int = 6,
    reduction: str = DEFAULT_REDUCTION,
) -> dict:
    """k-means over items held in parts: centroids trained on a sample drawn from every part,
    then each part assigns its own items; keywords come from summed word counts and the run is
    stored in every part under one id."""
    fraction = min(1.0, sample / max(dataset.count(by_document), 1))
    data = dataset.sample(by_document, fraction, seed)
    if not len(data):
        raise InputError("the index is empty: nothing to cluster")
    trained = cluster_vectors(data, "kmeans", k=k, seed=seed, restarts=restarts,
                              reduction=reduction)
    parts = dataset.assign(by_document, trained.centroids)
    sizes = np.sum([part["sizes"] for part in parts], axis=0)
    order = np.lexsort((np.arange(len(sizes)), -sizes))  # renumbered by size, as one index
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    counts: dict[int, Counter] = {int(renumber[c]): Counter() for c in range(len(sizes))}
    nearest: dict[int, list] = {c: [] for c in counts}
    for part in parts:
        for c, found in part["counts"].items():
            counts[int(renumber[c])].update(found)
        for c, found in part["nearest"].items():
            nearest[int(renumber[c])] += found
    words = keywords_from_counts(counts, keywords)
    clusters = [{"cluster": c, "size": int(sizes[order[c]]), "keywords": words.get(c, []),
                 "representatives": [item for _, item in sorted(
                     nearest[c], key=lambda pair: (pair[0], pair[1]["document_id"]))[:3]]}
                for c in range(len(sizes))]
    parameters = {**trained.parameters, "sample": len(data), **dataset.describe()}
    run_id = 1 + max((r["id"] for r in dataset.cluster_runs()), default=0)
    run = {"id": run_id,
           "method": "kmeans", "target": "document" if by_document else "unit",
           "parameters": parameters, "clusters": len(sizes), "outliers": 0,
           "items": int(sizes.sum())}
    dataset.save(run, clusters, renumber)
    return dataset.cluster_run(run_id)


def run_items(index: Index, run: dict) -> tuple[list[dict], np.ndarray]:
    """A stored run's items (still in the index) with their vectors, in stored order."""
    items = index.store.cluster_assignments(run["id"])
    if run["target"] == "unit":
        return items, index.vectors.vectors(np.array([i["unit_id"] for i in items], np.int64))
    rows = index.store.conn.execute("select id, document_id from units order by id").fetchall()
    units: dict[str, list[int]] = {}
    for unit_id, document_id in rows:
        units.setdefault(document_id, []).append(unit_id)
    vectors = np.vstack([index.vectors.vectors(np.array(units[i["document_id"]], np.int64))
                         .mean(axis=0) for i in items]) if items else np.zeros((0, 1), np.float32)
    return items, vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def export_csv(index: Index, run: dict, path: str) -> int:
    """Every item of a run with its cluster, distance, the cluster's keywords and its text."""
    import csv

    keywords = {c["cluster"]: " ".join(c["keywords"]) for c in run["cluster_list"]}
    items = index.store.cluster_assignments(run["id"])
    texts = dict(index.store.unit_texts(i["unit_id"] for i in items)) if (
        run["target"] == "unit") else {}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cluster", "keywords", "distance", "document_id", "unit_id", "text"])
        for item in items:
            writer.writerow([item["cluster"], keywords.get(item["cluster"], ""),
                             item["distance"], item["document_id"], item["unit_id"],
                             texts.get(item["unit_id"], "")])
    return len(items)


# UMAP draws the map between these sizes: below, PCA shows as much and starts instantly (UMAP's
# first call compiles for ~20 s); above, UMAP's neighbour graph gets slow.
UMAP_RANGE = (500, 50_000)


def plot_map(index: Index, run: dict, path: str, seed: int = 0) -> str:
    """A 2-D map of a run (UMAP when installed and the run is small enough, else PCA), one
    colour per cluster, outliers grey, each cluster named by its top keywords at its centre.
    A copy is kept in the index for `semsearch serve`. Returns the projection used."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'semsearch[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items, vectors = run_items(index, run)
    labels = np.array([i["cluster"] for i in items])
    points, projection = _project(vectors, seed)
    figure, axes = plt.subplots(figsize=(12, 9), dpi=150)
    size = float(np.clip(30_000 / max(len(points), 1), 2, 40))
    outliers = labels == -1
    x, y = points[outliers].T
    axes.scatter(x, y, s=size / 2, c="#c8c8c8", linewidths=0)
    colours = plt.get_cmap("tab10" if run["clusters"] <= 10 else "tab20")
    for cluster in run["cluster_list"]:
        members = labels == cluster["cluster"]
        if not members.any():
            continue
        x, y = points[members].T
        axes.scatter(x, y, s=size, color=colours(cluster["cluster"] % 20), linewidths=0,
                     alpha=0.7)
        x, y = np.median(points[members], axis=0)
        axes.annotate(f"{cluster['cluster']}: {' '.join(cluster['keywords'][:3])}", (x, y),
                      ha="center", va="center", fontsize=8, weight="bold",
                      bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8,
                            "ec": colours(cluster["cluster"] % 20)})
    axes.set_title(f"{index.path.name}: run {run['id']}, {run['method']} over"
                   f" {run['items']:,} {run['target']}s, {run['clusters']} clusters"
                   f" ({projection.upper()} projection)")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    with index.writing():
        index.store.save_cluster_map(run["id"], Path(path).read_bytes(), projection)
    return projection


def _project(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    if UMAP_RANGE[0] <= len(vectors) <= UMAP_RANGE[1]:
        try:
            import umap
        except ImportError:
            pass
        else:
            reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed,
                                n_neighbors=15, min_dist=0.1, n_jobs=1)
            return reducer.fit_transform(vectors), "umap"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(vectors), "pca"
