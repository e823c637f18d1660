import numpy as np
import pytest

from semsearch.vectors import VectorIndex


def clustered_vectors(count: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: the shape real embeddings have, unlike uniform noise."""
    centres = np.random.default_rng(0).standard_normal((40, dimension))
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, 40, count)] + 0.6 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(index: VectorIndex, queries: np.ndarray, stored: np.ndarray, ids: np.ndarray,
                 effort: int | None) -> float:
    truth = ids[np.argsort(-(queries @ stored.T), axis=1)[:, :10]]
    _, found = index.search(queries, 10, effort=effort)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def build(factory: str, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
    index = VectorIndex.empty(vectors.shape[1], factory)
    if not index.index.is_trained:
        index.index.train(vectors)
    index.add(ids, vectors)
    return index


@pytest.mark.parametrize("factory", ["IVF64,Flat", "HNSW8"])
def test_tune_reaches_the_recall_target_on_unseen_queries(factory):
    vectors = clustered_vectors(6000)
    ids = np.arange(6000, dtype=np.int64) * 7 + 3  # ids are not positions
    index = build(factory, vectors, ids)
    effort, measured = index.tune(0.95)
    assert measured >= 0.95 and effort == index.effort
    cheap = recall_at_10(index, clustered_vectors(300, seed=1), vectors, ids, effort=1)
    tuned = recall_at_10(index, clustered_vectors(300, seed=1), vectors, ids, effort=None)
    assert tuned >= 0.95 > cheap  # queries the tuning never saw, from the same distribution
    assert index.tune(0.5)[0] < effort  # a lower target buys a cheaper search


def test_exact_index_needs_no_tuning():
    vectors = clustered_vectors(500)
    index = build("Flat", vectors, np.arange(500, dtype=np.int64))
    assert index.tune(0.99) == (None, 1.0)


def test_memory_mapped_load_searches_alike(tmp_path):
    vectors = clustered_vectors(3000)
    ids = np.arange(3000, dtype=np.int64)
    index = build("IVF32,SQ8", vectors, ids)
    index.save(tmp_path / "v.faiss")
    mapped = VectorIndex.load(tmp_path / "v.faiss", "IVF32,SQ8", effort=8, mmap=True)
    loaded = VectorIndex.load(tmp_path / "v.faiss", "IVF32,SQ8", effort=8)
    queries = clustered_vectors(20, seed=2)
    assert np.array_equal(mapped.search(queries, 10)[1], loaded.search(queries, 10)[1])
    assert np.array_equal(mapped.vectors(ids[:5]), loaded.vectors(ids[:5]))
