"""A sharded index: N ordinary indexes under one folder, searched as one.

Documents go to a shard by a stable hash of their id, so re-indexing or deleting a document
touches exactly one shard. Unit ids are numbered across all shards in input order, exactly as one
index would number them; every shard ranks its own units and the merge puts the shards' lists in
one order (score, then lower id). Dense scores of exact (Flat) shards are computed per vector and
BM25 uses statistics summed over all shards, so a sharded index returns what one unsharded index
holding the same documents returns: same ids, same order, same scores.

Shards are reached through a :class:`Runner`: in this process, or on Ray actors
(:mod:`semsearch.distributed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.encoder import Encoder, Runtime, load_encoder
from semsearch.errors import IndexExistsError, IndexMismatchError, IndexNotFoundError, InputError
from semsearch.index import (
    STORE_FILE,
    AddResult,
    ChunkWriter,
    Index,
    IndexSettings,
    PreparedChunk,
    add_chunks,
    check_settings,
)
from semsearch.readers import Document
from semsearch.search import Hit, SearchOptions, search

SHARDS_FILE = "shards.json"
SHARDS_FORMAT = 1


def is_sharded(path: str | os.PathLike) -> bool:
    return (Path(path) / SHARDS_FILE).exists()


def shard_of(document_id: str, shards: int) -> int:
    """A document's shard: the same on every machine and Python run (unlike ``hash()``)."""
    digest = hashlib.blake2b(document_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % shards


class ShardReader:
    """One shard's side of a sharded search: plain data in, plain data out (it may run in a
    Ray actor on another machine)."""

    def __init__(self, path: str | os.PathLike, mmap: bool = False, model: str | None = None,
                 pooling: str | None = None):
        self.index = Index.open(path, model=model, pooling=pooling, mmap=mmap)
        self._lock = threading.Lock()  # one connection: a search reads BM25 on a second thread

    def call(self, method: str, *args, **kwargs):
        """Run one read in its own snapshot of the shard."""
        with self._lock, self.index.reading():
            return getattr(self, method)(*args, **kwargs)

    def ntotal(self) -> int:
        return self.index.vectors.ntotal

    def approximate(self) -> bool:
        return self.index.vectors.approximate

    def unit_count(self) -> int:
        return self.index.store.unit_count()

    def filtered_unit_ids(self, where, cluster) -> np.ndarray:
        return self.index.filtered_unit_ids(where, cluster)

    def top(self, query: np.ndarray, k: int, subset, effort) -> list[tuple[float, int]]:
        if subset is not None:
            subset = self.index.vectors.held(subset)
            if not len(subset):
                return []
        return self.index.vectors.top(query, k, subset, effort)

    def scores(self, query: np.ndarray, ids: np.ndarray) -> dict[int, float]:
        held = self.index.vectors.held(ids)
        return dict(zip(held.tolist(), self.index.vectors.scores(query, held).tolist(),
                        strict=True))

    def keyword_statistics(self, text: str):
        return self.index.keyword_statistics(text)

    def keyword_search(self, text, limit, statistics, where, cluster):
        return self.index.keyword_search(text, limit, where=where, cluster=cluster,
                                         statistics=statistics)

    def hits(self, ids: list[int]) -> dict[int, dict]:
        return self.index.store.hits(ids)

    def document_ids(self, ids: list[int]) -> dict[int, str]:
        return self.index.store.document_ids(ids)

    def has_sentence_vectors(self) -> bool:
        return self.index.store.has_sentence_vectors()

    def sentence_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        return self.index.store.sentence_vectors(ids)

    def neighbours(self, document_id: str, ordinal: int, radius: int):
        return self.index.store.neighbours(document_id, ordinal, radius)

    def document(self, document_id: str):
        return self.index.store.document(document_id)

    def manifest(self) -> dict:
        return self.index.manifest

    # ---- k-means across shards (see semsearch.clustering.cluster_dataset) -----------------

    def cluster_count(self, by_document: bool) -> int:
        return self.index.store.count("documents" if by_document else "units")

    def cluster_sample(self, by_document: bool, fraction: float, seed: int) -> np.ndarray:
        from semsearch.clustering import cluster_items

        vectors = cluster_items(self.index, by_document)[1]
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.permutation(len(vectors))[:round(len(vectors) * fraction)])
        return vectors[chosen]

    def cluster_assign(self, by_document: bool, centroids: np.ndarray) -> dict:
        """Each item to its nearest centroid (kept here until :meth:`cluster_save`); returns
        the sizes, word counts and nearest items per cluster."""
        from semsearch.clustering import cluster_items, word_counts

        items, vectors, texts = cluster_items(self.index, by_document)
        similarity = vectors @ centroids.T
        labels = similarity.argmax(axis=1) if len(vectors) else np.zeros(0, np.int64)
        distances = 1 - similarity[np.arange(len(labels)), labels]
        self._assigned = (items, labels, distances)
        nearest = {}
        for c in range(len(centroids)):
            members = np.flatnonzero(labels == c)
            best = members[np.argsort(distances[members], kind="stable")[:3]]
            nearest[c] = [(float(distances[i]), {**items[i], "text": texts[i][:300]})
                          for i in best]
        return {"sizes": np.bincount(labels, minlength=len(centroids)),
                "counts": word_counts(texts, labels), "nearest": nearest}

    def cluster_save(self, run: dict, clusters: list[dict], renumber: np.ndarray) -> None:
        items, labels, distances = self._assigned
        with self.index.writing():
            self.index.store.save_cluster_run(run, clusters, (
                {**item, "cluster": int(renumber[label]), "distance": float(distance)}
                for item, label, distance in zip(items, labels, distances, strict=True)))

    def cluster_runs(self) -> list[dict]:
        return self.index.store.cluster_runs()

    def cluster_run(self, run_id: int | None) -> dict:
        return self.index.store.cluster_run(run_id)

    def cluster_map(self, run_id: int) -> bytes | None:
        return self.index.store.cluster_map(run_id)


class ShardWriter(ChunkWriter):
    """Writes one shard for the length of an indexing run (see
    :class:`~semsearch.index.ChunkWriter`), here or in a Ray actor."""

    def __init__(self, path: str | os.PathLike, commit_seconds: float = 60.0,
                 timeout: float = 0.0):
        index = Index.open(path)
        index.lock_timeout = timeout
        self._session = contextlib.ExitStack()
        self._session.enter_context(index.writing())
        super().__init__(index, commit_seconds)

    def write(self, prepared: PreparedChunk, ids: list[int], embeddings: np.ndarray,
              rows: list[int]) -> None:
        try:
            super().write(prepared, ids, embeddings, rows)
        except BaseException as exc:
            self.abandon(exc)
            raise

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Commit and let go of the shard."""
        self._session.close()

    def abandon(self, exc: BaseException | None = None) -> None:
        """Roll back what was not committed and let go of the shard."""
        with contextlib.suppress(BaseException):
            self._session.__exit__(type(exc or RuntimeError()), exc or RuntimeError(), None)


class Runner:
    """Runs shard readers, shard writers and the encoder in this process."""

    def __init__(self):
        self._encoder = None

    def readers(self, paths: list[Path], mmap: bool = False, model: str | None = None,
                pooling: str | None = None) -> list:
        return [ShardReader(path, mmap, model, pooling) for path in paths]

    def writers(self, paths: list[Path], commit_seconds: float, timeout: float) -> list:
        writers = []
        try:
            for path in paths:
                writers.append(ShardWriter(path, commit_seconds, timeout))
        except BaseException:
            for writer in writers:
                writer.abandon()
            raise
        return writers

    def call(self, actor, method: str, *args):
        """Start ``method`` on ``actor``; :meth:`get` gives its result."""
        return getattr(actor, method)(*args)

    def get(self, pending):
        return pending

    def map(self, actors: list, method: str, *args) -> list:
        """``method(*args)`` on every actor (a read in its own snapshot), results in order."""
        return self.get([self.call(actor, "call", method, *args) for actor in actors])

    def start_embedding(self, encoder: Encoder, batch_size: int, runtime: Runtime) -> None:
        """Get encoders ready for :meth:`embed` (here: the one the caller loaded, which
        ``runtime`` made)."""
        self._encoder = encoder
        self._batch_size = batch_size

    def embed(self, texts: list[str]):
        """Start embedding one chunk's texts (as one piece: the same batches as one index)."""
        return self._encoder.encode(texts, self._batch_size)

    @property
    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass


class _Store:
    """The store calls of :func:`semsearch.search.search`, spread over the shards."""

    def __init__(self, sharded: ShardedIndex):
        self.sharded = sharded

    def _map(self, method, *args) -> list:
        return self.sharded.runner.map(self.sharded.readers, method, *args)

    def _one(self, document_id: str, method: str, *args):
        reader = self.sharded.readers[shard_of(document_id, len(self.sharded.readers))]
        return self.sharded.runner.get(self.sharded.runner.call(reader, "call", method, *args))

    def unit_count(self) -> int:
        return sum(self._map("unit_count"))

    def filtered_unit_ids(self, where=None, cluster=None) -> np.ndarray:
        return np.sort(np.concatenate(self._map("filtered_unit_ids", where, cluster)))

    def hits(self, ids: list[int]) -> dict[int, dict]:
        return _union(self._map("hits", ids))

    def document_ids(self, ids: list[int]) -> dict[int, str]:
        return _union(self._map("document_ids", ids))

    def has_sentence_vectors(self) -> bool:
        return any(self._map("has_sentence_vectors"))

    def sentence_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        return _union(self._map("sentence_vectors", ids))

    def neighbours(self, document_id: str, ordinal: int, radius: int):
        return self._one(document_id, "neighbours", document_id, ordinal, radius)

    def document(self, document_id: str):
        return self._one(document_id, "document", document_id)

    def _first(self, method: str, *args):
        """Cluster runs are stored in every shard alike: the first shard answers."""
        runner = self.sharded.runner
        return runner.get(runner.call(self.sharded.readers[0], "call", method, *args))

    def cluster_runs(self) -> list[dict]:
        return self._first("cluster_runs")

    def cluster_run(self, run_id: int | None = None) -> dict:
        return self._first("cluster_run", run_id)

    def cluster_map(self, run_id: int) -> bytes | None:
        return self._first("cluster_map", run_id)


class _Vectors:
    """The vector calls of :func:`semsearch.search.search`, spread over the shards."""

    def __init__(self, sharded: ShardedIndex):
        self.sharded = sharded

    def _map(self, method, *args) -> list:
        return self.sharded.runner.map(self.sharded.readers, method, *args)

    @property
    def ntotal(self) -> int:
        return sum(self._map("ntotal"))

    @property
    def approximate(self) -> bool:
        return any(self._map("approximate"))

    def top(self, query: np.ndarray, k: int, subset=None, effort=None):
        found = self._map("top", query, k, subset, effort)
        return sorted((pair for pairs in found for pair in pairs),
                      key=lambda pair: (-pair[0], pair[1]))[:k]

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        found = _union(self._map("scores", query, ids))
        return np.array([found[int(i)] for i in ids], dtype=np.float32)


class _Shards:
    """The shards as the :class:`~semsearch.index.ChunkTarget` of an add: each chunk's
    documents prepared by their shard, embedded by the runner, written by the shard's writer."""

    def __init__(self, runner: Runner, shards: list[Index], writers: list):
        self.runner, self.shards, self.writers = runner, shards, writers
        self.depth = 2 * runner.workers

    def prepare(self, chunk: list[Document], warn: Callable[[str], None] | None
                ) -> dict[int, PreparedChunk]:
        parts = {}
        for number, shard in enumerate(self.shards):
            mine = [doc for doc in chunk if shard_of(doc.id, len(self.shards)) == number]
            if mine:
                parts[number] = shard.prepare(mine, warn)
        return parts

    def embed(self, texts: list[str]) -> Any:
        return self.runner.embed(texts)

    def write(self, parts: dict[int, PreparedChunk], ids: dict[int, list[int]],
              rows: dict[int, list[int]], embeddings: Any) -> list:
        return [self.runner.call(self.writers[number], "write", parts[number], ids[number],
                                 embeddings, rows[number])
                for number in parts if ids[number] or parts[number].replaced]

    def settle(self, pending: list) -> None:
        self.runner.get(pending)

    def sync(self) -> None:  # the shards read content hashes through their own connections
        self.runner.get([self.runner.call(writer, "checkpoint") for writer in self.writers])


class _ClusterData:
    """The shards as one :class:`~semsearch.clustering.ClusterDataset`: each shard's reader
    counts, samples, assigns and saves its own items."""

    def __init__(self, sharded: ShardedIndex):
        self.runner, self.readers, self.store = sharded.runner, sharded.readers, sharded.store

    def count(self, by_document: bool) -> int:
        return sum(self.runner.map(self.readers, "cluster_count", by_document))

    def sample(self, by_document: bool, fraction: float, seed: int) -> np.ndarray:
        return np.vstack(self.runner.map(self.readers, "cluster_sample", by_document, fraction,
                                         seed))

    def assign(self, by_document: bool, centroids: np.ndarray) -> list[dict]:
        return self.runner.map(self.readers, "cluster_assign", by_document, centroids)

    def save(self, run: dict, clusters: list[dict], renumber: np.ndarray) -> None:
        self.runner.get([self.runner.call(reader, "cluster_save", run, clusters, renumber)
                         for reader in self.readers])

    def describe(self) -> dict[str, int]:
        return {"shards": len(self.readers)}

    def cluster_runs(self) -> list[dict]:
        return self.store.cluster_runs()

    def cluster_run(self, run_id: int | None = None) -> dict:
        return self.store.cluster_run(run_id)


def _union(dicts: Iterable[dict]) -> dict:
    merged: dict = {}
    for part in dicts:
        merged.update(part)
    return merged


class ShardedIndex:
    """``ShardedIndex.open(path).search(...)`` as :class:`~semsearch.index.Index`; ``add``
    spreads documents over the shards and embeds them with the runner's encoders."""

    def __init__(self, path: Path, runner: Runner | None = None, mmap: bool = False,
                 model: str | None = None, pooling: str | None = None,
                 runtime: Runtime | None = None):
        self.path = path
        self.runtime = runtime or Runtime()
        self.runner = runner or Runner()  # actors elsewhere find the shards by absolute path
        layout = json.loads((path / SHARDS_FILE).read_text())
        if layout.get("format_version", 0) > SHARDS_FORMAT:
            raise IndexMismatchError(f"{path} was written by a newer semsearch; upgrade it")
        self.shard_paths = [path.resolve() / name for name in layout["shards"]]
        self._reader_options = (mmap, model, pooling)
        self._readers: list | None = None
        self.store = _Store(self)
        self.vectors = _Vectors(self)
        self._encoder = None
        self.lock_timeout = 0.0

    @classmethod
    def create(cls, path: str | os.PathLike, shards: int, *, model: str | None = None,
               pooling: str | None = None, settings: IndexSettings | None = None,
               runner: Runner | None = None, runtime: Runtime | None = None) -> ShardedIndex:
        """Create ``shards`` empty indexes, then the layout file that makes them one index
        (a run that dies before it can simply be repeated)."""
        path = Path(path)
        if shards < 1:
            raise InputError("--shards must be at least 1")
        if (path / STORE_FILE).exists() or is_sharded(path):
            raise IndexExistsError(f"an index already exists at {path}")
        names = [f"shard-{number:03d}" for number in range(shards)]
        for name in names:  # a run creating the same index at the same moment joins in
            try:
                shard = Index.create(path / name, model=model, pooling=pooling,
                                     settings=settings, runtime=runtime)
            except IndexExistsError:
                shard = Index.open(path / name, model=model, pooling=pooling, verify=False)
            shard.store.close()
        layout = path / f"{SHARDS_FILE}.{os.getpid()}.tmp"
        layout.write_text(json.dumps({"format_version": SHARDS_FORMAT, "shards": names,
                                      "hash": "blake2b-64 of the document id, modulo shards"},
                                     indent=2))
        os.replace(layout, path / SHARDS_FILE)
        return cls(path, runner, runtime=runtime)

    @classmethod
    def open(cls, path: str | os.PathLike, *, model: str | None = None,
             pooling: str | None = None, mmap: bool = False, verify: bool = True,
             runner: Runner | None = None, runtime: Runtime | None = None) -> ShardedIndex:
        """Open every shard (a reader each, checked as :meth:`Index.open` checks an index;
        without ``verify``, when first read)."""
        path = Path(path)
        if not is_sharded(path):
            raise IndexNotFoundError(f"no sharded index at {path}")
        index = cls(path, runner, mmap, model, pooling, runtime)
        if verify:
            index.readers  # noqa: B018  (opens and checks the shards now)
        return index

    @property
    def readers(self) -> list:
        if self._readers is None:
            self._readers = self.runner.readers(self.shard_paths, *self._reader_options)
        return self._readers

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, shards: int | None = None, *,
                       model: str | None = None, pooling: str | None = None,
                       runner: Runner | None = None, runtime: Runtime | None = None,
                       **settings: Any) -> ShardedIndex:
        path = Path(path)
        given = {key: value for key, value in settings.items() if value is not None}
        if not is_sharded(path):
            try:
                return cls.create(path, shards or 1, model=model, pooling=pooling,
                                  settings=IndexSettings(**given), runner=runner,
                                  runtime=runtime)
            except IndexExistsError:  # another run created it a moment ago: join it
                if not is_sharded(path):
                    raise
        index = cls.open(path, runner=runner, verify=False, runtime=runtime)  # readers: later
        for shard_path in index.shard_paths:  # the model and pooling checks of Index.open
            Index.open(shard_path, model=model, pooling=pooling, verify=False).store.close()
        if shards is not None and shards != len(index.shard_paths):
            raise IndexMismatchError(
                f"{path} has {len(index.shard_paths)} shards, not {shards}; re-sharding is not"
                " supported: index into a new folder with --shards {shards}")
        check_settings(path, index.manifest, given)
        return index

    @property
    def manifest(self) -> dict:
        """Model and settings (the same in every shard) with counts over all shards (read here:
        the driver sees the shard folders)."""
        manifests = self._each_shard(lambda shard: shard.manifest)
        return {**manifests[0], **{key: sum(m[key] for m in manifests)
                                   for key in ("documents", "units", "vectors")}}

    @contextlib.contextmanager
    def reading(self):
        """Each shard read runs in its own snapshot of its shard (shards commit separately)."""
        yield

    @property
    def encoder(self):
        if self._encoder is None:
            manifest = self.manifest
            self._encoder = load_encoder(manifest["model"], manifest["pooling"],
                                         precision=self.runtime.precision,
                                         backend=self.runtime.backend)
        return self._encoder

    # ---- writing -------------------------------------------------------------------------

    def add(
        self, documents: Iterable[Document], *, batch_size: int = 32,
        progress: Callable[[int], None] | None = None, commit_seconds: float = 60.0,
        warn: Callable[[str], None] | None = None,
    ) -> AddResult:
        """Add or replace documents, each in its shard, through the add loop of one index
        (:func:`~semsearch.index.add_chunks`): chunks are prepared here, embedded by the
        runner's encoders (several chunks at once) and written by one writer per shard."""
        shards = [Index.open(path, verify=False) for path in self.shard_paths]
        try:
            for shard in shards:  # the tokenizer for the unit spans
                shard.use_encoder(self.encoder)
            self.runner.start_embedding(self.encoder, batch_size, self.runtime)
            writers = self.runner.writers(self.shard_paths, commit_seconds, self.lock_timeout)
            target = _Shards(self.runner, shards, writers)
            try:
                result = add_chunks(target, documents,
                                    max(shard.manifest["next_unit_id"] for shard in shards),
                                    progress, warn)
                self.runner.get([self.runner.call(writer, "close") for writer in writers])
            except BaseException:
                for writer in writers:
                    with contextlib.suppress(BaseException):
                        self.runner.get(self.runner.call(writer, "abandon"))
                raise
        finally:
            for shard in shards:
                shard.store.close()
        return result

    def _each_shard(self, work: Callable[[Index], object]) -> list:
        """``work`` on each shard, opened here as an ordinary index."""
        results = []
        for path in self.shard_paths:
            shard = Index.open(path, verify=False, runtime=self.runtime)
            shard.lock_timeout = self.lock_timeout
            try:
                results.append(work(shard))
            finally:
                shard.store.close()
        return results

    def remove(self, ids_or_sources: list[str], ids_only: bool = False) -> int:
        return sum(self._each_shard(lambda shard: shard.remove(ids_or_sources, ids_only)))

    def check(self, repair: bool = False, batch_size: int = 32) -> dict:
        """:meth:`Index.check` on every shard, added up (``shards`` has each report)."""
        reports = self._each_shard(lambda shard: shard.check(repair, batch_size))
        summary = {"index": str(self.path),
                   **{key: all(r[key] for r in reports) for key in ("store_ok", "consistent")},
                   "keywords_ok": all(r["keywords_ok"] for r in reports),
                   **{key: sum(r.get(key) or 0 for r in reports)
                      for key in ("units", "vectors", "missing", "extra")},
                   **{key: sum(r.get(key) or 0 for r in reports)  # shards with a damaged store
                      for key in ("documents", "readable_documents")
                      if any(key in r for r in reports)},
                   "vectors_file": next((r["vectors_file"] for r in reports
                                         if r["vectors_file"] != "ok"), "ok"),
                   "shards": reports}
        if any("repaired" in r for r in reports):
            summary["repaired"] = [r.get("repaired") for r in reports]
        return summary

    def compact(self) -> dict[str, int]:
        sizes = self._each_shard(lambda shard: shard.compact())
        return {key: sum(size[key] for size in sizes) for key in ("bytes_before", "bytes_after")}

    def tune(self, recall: float) -> tuple[int | None, float]:
        """:meth:`Index.tune` on every shard; the lowest measured recall."""
        tuned = self._each_shard(lambda shard: shard.tune(recall))
        return tuned[0][0], min(measured for _, measured in tuned)

    # ---- reading -------------------------------------------------------------------------

    def cluster_data(self) -> _ClusterData:
        """The shards' items, for :func:`semsearch.clustering.cluster_dataset`."""
        return _ClusterData(self)

    def filtered_unit_ids(self, where: dict[str, str] | None = None,
                          cluster: tuple[int, int] | None = None) -> np.ndarray:
        return self.store.filtered_unit_ids(where, cluster)

    @cached_property
    def keywords_by_document(self) -> bool:
        """As every shard's (a setting fixed when they were created)."""
        shard = Index.open(self.shard_paths[0], verify=False)
        try:
            return shard.keywords_by_document
        finally:
            shard.store.close()

    def keyword_search(self, text: str, limit: int, *, where: dict[str, str] | None = None,
                       cluster: tuple[int, int] | None = None) -> list[tuple[float, int]]:
        """Every shard's best matches scored with statistics summed over all shards, merged."""
        runner = self.runner
        first, *others = runner.map(self.readers, "keyword_statistics", text)
        statistics = sum(others, start=first)
        if not statistics.units:
            return []
        found = runner.map(self.readers, "keyword_search", text, limit, statistics, where,
                           cluster)
        return sorted((pair for pairs in found for pair in pairs),
                      key=lambda pair: (-pair[0], pair[1]))[:limit]

    def search(self, queries: list[str] | str,
               options: SearchOptions | None = None) -> list[list[Hit]]:
        """Nearest units across all shards; see :func:`semsearch.search.search`."""
        return search(self, queries, options)

    def info(self) -> dict:
        infos = self._each_shard(lambda shard: shard.info())
        summary = dict(infos[0])
        summary["index"] = str(self.path)
        for key in ("documents", "units", "vectors", "sentences", "bytes"):
            summary[key] = sum(info[key] for info in infos)
        summary.pop("files")
        recalls = [info["measured_recall"] for info in infos if info["measured_recall"] is not None]
        summary["measured_recall"] = min(recalls, default=None)  # the weakest shard's
        summary["shards"] = {Path(info["index"]).name: info["documents"] for info in infos}
        return summary
