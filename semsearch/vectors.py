"""The FAISS vector index: built from a factory string, keyed by unit id, saved atomically."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import faiss
import numpy as np

from semsearch.errors import CorruptIndexError, InputError

AUTO = "auto"
EXACT_LIMIT = 100_000  # ``auto`` stays exact (Flat) below this many vectors
EXACT_SUBSET_LIMIT = 20_000  # filters matching fewer units are scored exactly
DEFAULT_NPROBE = 32


def auto_factory(count: int) -> str:
    if count < EXACT_LIMIT:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(count)))
    return f"IVF{nlist},SQ8"


def _min_training_vectors(factory: str, dimension: int) -> int:
    probe = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    if probe.is_trained:
        return 0
    try:
        return 39 * faiss.extract_index_ivf(probe).nlist
    except RuntimeError:
        return 10_000


def check_factory(factory: str, dimension: int) -> None:
    if factory == AUTO:
        return
    try:
        faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        raise InputError(
            f"--faiss {factory!r} is not a FAISS factory string (try Flat, HNSW32, IVF1024,SQ8)"
        ) from None


def target_factory(setting: str, built: str, count: int, dimension: int) -> str:
    """What the index should be now: trainable types wait (as Flat) for enough training data."""
    if setting == AUTO:
        return built if built != "Flat" else auto_factory(count)
    if count < _min_training_vectors(setting, dimension):
        return "Flat"
    return setting


class VectorIndex:
    """Inner product over unit-length vectors (= cosine), keyed by unit id."""

    def __init__(self, index: faiss.Index, factory: str):
        self.index = index
        self.factory = factory
        self._gpu_index = None

    @classmethod
    def empty(cls, dimension: int, factory: str = "Flat") -> VectorIndex:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
        if _ivf_of(index) is None:  # IVF keeps ids itself; IDMap2 would break its removals
            index = faiss.IndexIDMap2(index)
        return cls(index, factory)

    @classmethod
    def load(cls, path: Path, factory: str) -> VectorIndex:
        if not path.exists():
            raise CorruptIndexError(
                f"vector file {path} is missing; run `semsearch check --repair` to rebuild it")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            raise CorruptIndexError(
                f"vector file {path} is corrupt or truncated; run `semsearch check --repair`"
                " to rebuild it from the store") from None
        _enable_reconstruct(index)
        return cls(index, factory)

    def save(self, path: Path) -> None:
        """Write to a temporary file, fsync, then rename: a crash leaves the old file or the new."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @property
    def dimension(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def ids(self) -> np.ndarray:
        if hasattr(self.index, "id_map"):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = _ivf_of(self.index).invlists
        return np.concatenate([np.zeros(0, np.int64)] + [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(lists.nlist) if lists.list_size(i)])

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else (
            np.zeros((0, self.dimension), dtype=np.float32))

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Similarity of one query vector to the stored vectors of ``ids``."""
        return self.vectors(ids) @ query

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(vectors, ids.astype(np.int64))
            self._gpu_index = None

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        try:
            self.index.remove_ids(ids.astype(np.int64))
        except RuntimeError:  # e.g. HNSW cannot delete: rebuild from what stays
            keep = np.setdiff1d(self.ids(), ids)
            self.rebuild(self.factory, keep)
        self._gpu_index = None

    def rebuild(self, factory: str, keep: np.ndarray | None = None) -> None:
        """Move the vectors (all, or ``keep``) into a new index of type ``factory``."""
        ids = self.ids() if keep is None else keep
        vectors = self.vectors(ids)
        fresh = VectorIndex.empty(self.dimension, factory)
        if not fresh.index.is_trained:
            rng = np.random.default_rng(0)
            sample = vectors[rng.permutation(len(vectors))[:256 * 1024]]
            fresh.index.train(sample)
        _enable_reconstruct(fresh.index)
        fresh.add(ids, vectors)
        self.index, self.factory, self._gpu_index = fresh.index, factory, None

    def search(
        self, queries: np.ndarray, k: int, subset: np.ndarray | None = None,
        nprobe: int = DEFAULT_NPROBE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); ``subset`` restricts the search to those ids before ranking."""
        k = max(1, min(k, self.ntotal))
        if subset is not None:
            subset = np.intersect1d(subset, self.ids())
            if len(subset) <= EXACT_SUBSET_LIMIT:
                return _exact(queries, self.vectors(subset), subset, k)
            scores, ids = self._search(queries, k, faiss.IDSelectorBatch(subset), nprobe)
            if (ids >= 0).sum(axis=1).min() < min(k, len(subset)):  # an ANN index came up short
                return _exact(queries, self.vectors(subset), subset, k)
            return scores, ids
        return self._search(queries, k, None, nprobe)

    def _search(self, queries, k, selector, nprobe):
        ivf = _ivf_of(self.index)
        if ivf is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)
        else:
            params = None
        index = self.index if selector is not None else self._gpu_or_cpu()
        return index.search(queries, k, params=params)

    def _gpu_or_cpu(self):
        """A GPU copy for unfiltered search when a GPU is present and the type supports it."""
        if self._gpu_index is None:
            self._gpu_index = self.index
            if faiss.get_num_gpus() > 0:
                with contextlib.suppress(RuntimeError):
                    self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu_index


def _ivf_of(index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _enable_reconstruct(index) -> None:
    """IVF indexes need a direct map to look vectors up by id (for rebuilds and filters)."""
    ivf = _ivf_of(index)
    if ivf is not None and ivf.direct_map.type != faiss.DirectMap.Hashtable:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)


def _exact(queries, vectors, ids, k):
    scores = queries @ vectors.T
    k = min(k, len(ids))
    if k == 0:
        return (np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, axis=1), ids[top]
