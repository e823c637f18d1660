"""The FAISS vector index: built from a factory string, keyed by unit id, saved atomically."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semsearch.checksum import file_sha256
from semsearch.errors import CorruptIndexError, InputError

if TYPE_CHECKING:  # loaded on first use: keyword search and `info` never need it
    import faiss

AUTO = "auto"
EXACT_LIMIT = 100_000  # ``auto`` stays exact (Flat) below this many vectors
EXACT_SUBSET_LIMIT = 20_000  # filters matching fewer units are scored exactly
FEW_QUERIES = 20  # below this many queries, FAISS searches on one thread (its BLAS threshold)
# Search effort (IVF nprobe, HNSW efSearch) until an index is tuned to a recall target.
# Exact search reads this many candidates beyond those asked for, so that a last-bit rounding
# difference in FAISS's scores cannot change which candidates make the cut.
RESCORE_MARGIN = 16
DEFAULT_NPROBE = 32
DEFAULT_EF_SEARCH = 64
DEFAULT_RECALL = 0.95
TUNING_QUERIES = 200
# Compressed codes (SQ8) cost about half a point of recall@10 against the float vectors at 1M
# (benchmarks/ann.py), which tuning on the stored codes cannot see: aim this much higher.
COMPRESSION_MARGIN = 0.02
REBUILD_SLICE = 65_536  # vectors moved at a time when an index is rebuilt
# Scores from compressed codes and from the decoded vectors differ in the last float digits.
TIE_TOLERANCE = 1e-4
EFFORTS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096)


def auto_factory(count: int) -> str:
    if count < EXACT_LIMIT:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(count)))
    return f"IVF{nlist},SQ8"


def _min_training_vectors(factory: str, dimension: int) -> int:
    import faiss
    probe = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    if probe.is_trained:
        return 0
    try:
        return 39 * faiss.extract_index_ivf(probe).nlist
    except RuntimeError:
        return 10_000


def check_factory(factory: str, dimension: int) -> None:
    import faiss
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

    def __init__(self, index: faiss.Index, factory: str, effort: int | None = None):
        self.index = index
        self.factory = factory
        self.effort = effort  # nprobe (IVF) or efSearch (HNSW) chosen by :meth:`tune`
        self._gpu_index = None
        self._held: np.ndarray | None = None  # id → whether it is held, built on first need

    @classmethod
    def empty(cls, dimension: int, factory: str = "Flat") -> VectorIndex:
        import faiss
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
        if _ivf_of(index) is None:  # IVF keeps ids itself; IDMap2 would break its removals
            index = faiss.IndexIDMap2(index)
        _enable_reconstruct(index)
        return cls(index, factory)

    @classmethod
    def load(cls, path: Path, factory: str, effort: int | None = None,
             mmap: bool = False, sha256: str | None = None) -> VectorIndex:
        """``mmap`` maps the file read-only instead of reading it: for indexes larger than RAM.
        The ``sha256`` check streams the file either way (about 0.1 s per 150 MB here), so a
        file swapped in from another index is an error, never silently wrong hits."""
        import faiss
        if not path.exists():
            raise CorruptIndexError(
                f"vector file {path} is missing; run `semsearch check --repair` to rebuild it")
        if sha256 and file_sha256(path) != sha256:
            raise CorruptIndexError(
                f"vector file {path} does not match its checksum (damaged on disk); run"
                " `semsearch check --repair` to rebuild it from the store")
        try:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            index = faiss.read_index(str(path), flags)
        except RuntimeError:
            raise CorruptIndexError(
                f"vector file {path} is corrupt or truncated; run `semsearch check --repair`"
                " to rebuild it from the store") from None
        _enable_reconstruct(index)
        return cls(index, factory, effort)

    def save(self, path: Path) -> str:
        """Write to a temporary file, fsync, read it back, then rename: a crash leaves the old
        file or the new, and a short write (a full disk) raises instead of being committed.
        FAISS's own ``write_index`` only prints "close error" when the disk fills up, so the
        bytes go through Python's file I/O, which raises on every failed write. Returns the
        file's SHA-256, which loading checks."""
        import faiss
        tmp = path.with_name(path.name + ".tmp")
        digest, written = hashlib.sha256(), [0]

        try:
            with tmp.open("wb") as handle:
                def write(chunk: bytes) -> None:
                    handle.write(chunk)
                    digest.update(chunk)
                    written[0] += len(chunk)

                faiss.write_index(self.index, faiss.PyCallbackIOWriter(write))
                handle.flush()
                os.fsync(handle.fileno())
            checksum = digest.hexdigest()
            if tmp.stat().st_size != written[0] or file_sha256(tmp) != checksum:
                raise OSError(f"{tmp.name} reads back different from what was written")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return checksum

    @property
    def dimension(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def ids(self) -> np.ndarray:
        import faiss
        if hasattr(self.index, "id_map"):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = _ivf_of(self.index).invlists
        return np.concatenate([np.zeros(0, np.int64)] + [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(lists.nlist) if lists.list_size(i)])

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Similarity of one query vector to the stored vectors of ``ids``, in float64 and
        rounded once: the same bits whichever other vectors are scored with it."""
        return (self.vectors(ids).astype(np.float64) @ query.astype(np.float64)).astype(
            np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(vectors, ids.astype(np.int64))
            self._gpu_index = self._held = None

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        try:
            self.index.remove_ids(ids.astype(np.int64))
        except RuntimeError:  # e.g. HNSW cannot delete: rebuild from what stays
            keep = np.setdiff1d(self.ids(), ids)
            self.rebuild(self.factory, keep)
        self._gpu_index = self._held = None

    def rebuild(self, factory: str, keep: np.ndarray | None = None) -> None:
        """Move the vectors (all, or ``keep``) into a new index of type ``factory``."""
        ids = self.ids() if keep is None else keep
        fresh = VectorIndex.empty(self.dimension, factory)
        if not fresh.index.is_trained:
            rng = np.random.default_rng(0)
            fresh.index.train(self.vectors(ids[rng.permutation(len(ids))[:256 * 1024]]))
        for start in range(0, len(ids), REBUILD_SLICE):  # never a second copy of them all
            fresh.add(ids[start:start + REBUILD_SLICE],
                      self.vectors(ids[start:start + REBUILD_SLICE]))
        self.index, self.factory, self._gpu_index, self._held = fresh.index, factory, None, None
        self.effort = None

    def held(self, ids: np.ndarray) -> np.ndarray:
        """Those of ``ids`` (any order, repeats allowed) that this file holds, sorted and
        unique: by a lookup table, not a set intersection with every id (half a second at a
        million) nor a sort (numpy's unique takes 15 ms for 100k ids)."""
        return np.flatnonzero(self._held_mask(ids))

    def _held_mask(self, ids: np.ndarray) -> np.ndarray:
        """True at each of ``ids`` this file holds, over the whole id range."""
        if self._held is None:
            held = self.ids()
            self._held = np.zeros(int(held.max(initial=-1)) + 1, dtype=bool)
            self._held[held] = True
        ids, mask = np.asarray(ids), np.zeros(len(self._held), dtype=bool)
        mask[ids[(ids >= 0) & (ids < len(self._held))]] = True
        return mask & self._held

    @property
    def approximate(self) -> bool:
        return _effort_kind(self.index) is not None

    @property
    def on_gpu(self) -> bool:
        """Whether unfiltered searches run on a GPU copy of the index. The copy is made by the
        first such search, where FAISS sees a GPU and can hold this index type there; a write
        drops it (the next search makes it again)."""
        return self._gpu_index is not None and self._gpu_index is not self.index

    def tune(self, recall: float = DEFAULT_RECALL, k: int = 10, queries: int = TUNING_QUERIES,
             seed: int = 0) -> tuple[int | None, float]:
        """Choose the smallest search effort (nprobe or efSearch) whose recall@k reaches
        ``recall``; returns it with the recall measured (1.0 for exact types).

        Each query is the normalised mean of three stored vectors picked at random: it lies
        between topics, about as far from its nearest stored vector as a typed question is
        (a stored vector itself would be far easier, and tune far too low). On SciFact-derived
        vectors this errs on the safe side: real queries get a higher recall than the target.
        "Exact" is brute force over the vectors as the index stores them, so the loss from
        compressing vectors (SQ8, PQ) is not seen here: compressed indexes aim
        ``COMPRESSION_MARGIN`` higher."""
        if not self.approximate or self.ntotal <= k:
            self.effort = None
            return None, 1.0
        ids = self.ids()
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(ids), size=(3, min(queries, len(ids))))
        sample = _normalized(np.sum([self.vectors(ids[row]) for row in picks], axis=0))
        kth_best = self._exact_kth_scores(sample, ids, k)
        if _code_size(self.index) < 4 * self.dimension:
            recall = min(recall + COMPRESSION_MARGIN, 1.0)
        best = (EFFORTS[-1], 0.0)
        # efSearch below the k asked for is raised to it: start where it means what it says
        floor = k if _effort_kind(self.index) == "efSearch" else 1
        nlist = _ivf_of(self.index).nlist if _effort_kind(self.index) == "nprobe" else None
        for effort in (e for e in EFFORTS if e >= floor):
            scores, _ = self.search(sample, k, effort=effort)
            # a hit as close as the k-th true neighbour is one: with duplicate vectors, which
            # of the tied ids comes back is arbitrary (counting ids, 50 copies of each vector
            # measured 0.21 at a full scan)
            best = (effort, float(np.mean(scores >= kth_best[:, None] - TIE_TOLERANCE)))
            if best[1] >= recall or (nlist is not None and effort >= nlist):
                break
        self.effort = best[0]
        return best

    def _exact_kth_scores(self, sample: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        """Brute force: the k-th best score per query, reading the vectors in slices."""
        best = np.full((len(sample), k), -np.inf, dtype=np.float32)
        for start in range(0, len(ids), 65_536):
            merged = np.hstack([best, sample @ self.vectors(ids[start:start + 65_536]).T])
            best = -np.partition(-merged, k - 1, axis=1)[:, :k]
        return best.min(axis=1)

    def search(
        self, queries: np.ndarray, k: int, subset: np.ndarray | None = None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); ``subset`` restricts the search to those ids before ranking;
        ``effort`` overrides the tuned nprobe / efSearch."""
        import faiss
        k = max(1, min(k, self.ntotal))
        if subset is not None:
            mask = self._held_mask(subset)
            subset = np.flatnonzero(mask)
            if len(subset) <= EXACT_SUBSET_LIMIT:
                return _exact(queries, self.vectors(subset), subset, k)
            # a bitmap: built in microseconds, where IDSelectorBatch's hash set of 100k ids
            # takes 7 ms and its lookups slow the search 30-fold
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            scores, ids = self._search(queries, k, selector, effort)
            if (ids >= 0).sum(axis=1).min() < min(k, len(subset)):  # an ANN index came up short
                return _exact(queries, self.vectors(subset), subset, k)
            return scores, ids
        return self._search(queries, k, None, effort)

    def top(self, query: np.ndarray, k: int, subset: np.ndarray | None = None,
            effort: int | None = None) -> list[tuple[float, int]]:
        """One query's top-k (score, id), ties to the lower id. Exact indexes score their
        candidates again with :meth:`scores`: FAISS's kernels round the last bit differently
        by where a vector sits in the file, and a sharded index must rank exactly as one index
        holding the same vectors would."""
        exact = not self.approximate
        scores, ids = self.search(query[None, :], k + RESCORE_MARGIN * exact, subset, effort)
        ids = ids[0][ids[0] >= 0]
        scores = self.scores(query, ids) if exact else scores[0][:len(ids)]
        order = np.lexsort((ids, -scores))[:k]
        return [(float(scores[i]), int(ids[i])) for i in order]

    def _search(self, queries, k, selector, effort):
        index = self.index if selector is not None else self._gpu_or_cpu()
        with _threads(1 if len(queries) < FEW_QUERIES else None):
            return index.search(queries, k, params=self.search_parameters(selector, effort, k))

    def search_parameters(self, selector=None, effort: int | None = None, k: int = 10):
        """FAISS search parameters: the id selector and nprobe / efSearch (given, tuned or
        default)."""
        import faiss
        effort = effort or self.effort
        kind = _effort_kind(self.index)
        if kind == "nprobe":
            return faiss.SearchParametersIVF(sel=selector, nprobe=effort or DEFAULT_NPROBE)
        if kind == "efSearch":
            return faiss.SearchParametersHNSW(sel=selector,
                                              efSearch=max(k, effort or DEFAULT_EF_SEARCH))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _gpu_or_cpu(self):
        """A GPU copy for unfiltered search when a GPU is present and the type supports it."""
        import faiss
        if self._gpu_index is None:
            self._gpu_index = self.index
            if faiss.get_num_gpus() > 0:
                with contextlib.suppress(RuntimeError):
                    self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu_index


@contextlib.contextmanager
def _threads(count: int | None):
    """FAISS spreads work over queries, so a few queries gain nothing from more threads; and
    its idle OpenMP threads spin for a while after each call, taking the cores from the encoder
    of the next query (a single dense query: 16 ms with 2 threads, 9.8 ms with 1, 2 cores).
    The setting is per calling thread."""
    import faiss
    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _ivf_of(index):
    import faiss
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _normalized(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _code_size(index) -> int:
    """Bytes stored per vector (4 × dimension when uncompressed)."""
    import faiss
    ivf = _ivf_of(index)
    if ivf is not None:
        return ivf.code_size
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    storage = getattr(inner, "storage", None)
    return faiss.downcast_index(storage).code_size if storage is not None else 4 * index.d


def _effort_kind(index) -> str | None:
    """Which knob trades speed for recall in this index type, if any (None: exact)."""
    import faiss
    if _ivf_of(index) is not None:
        return "nprobe"
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    return "efSearch" if isinstance(inner, faiss.IndexHNSW) else None


def _enable_reconstruct(index) -> None:
    """IVF indexes need a direct map to look vectors up by id (for rebuilds and filters)."""
    import faiss
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
