"""The library's front door: what the command line, the HTTP server and Python callers do with
indexes, written once.

Every front end parses its input, calls one of these and prints what comes back, so a rule (a
sharded index is opened through its layout file, a path given to ``remove`` means that file's
documents, an index run that finds no documents is an error, ...) holds the same way from the
shell, over HTTP and from Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from semsearch.clustering import (
    DEFAULT_REDUCTION,
    DEFAULT_RESTARTS,
    cluster_dataset,
    cluster_index,
    export_csv,
    plot_map,
)
from semsearch.encoder import Runtime, prepare_fast_path
from semsearch.errors import InputError, SemsearchError, UsageError
from semsearch.index import (
    STORE_FILE,
    AddResult,
    Index,
    indexes_home,
    recall_shortfall,
    resolve_index_path,
)
from semsearch.readers import Document, ReadOptions, read_documents
from semsearch.search import SearchOptions, cluster_reference
from semsearch.shards import Runner, ShardedIndex, is_sharded

AnyIndex = Index | ShardedIndex


RunnerFactory = Callable[[], Runner]


def open_index(name_or_path: str | os.PathLike | None, *, runner: RunnerFactory | None = None,
               verify: bool = True, mmap: bool = False, model: str | None = None,
               runtime: Runtime | None = None, timeout: float = 0.0) -> AnyIndex:
    """The index named (under ``indexes/``) or at a folder, sharded or not; ``model``, when
    given, must be the one that built it. ``runner`` makes where a sharded index's shards run
    (called only for one); ``timeout``: seconds a write waits for another writer."""
    path = resolve_index_path(name_or_path)
    if is_sharded(path):
        index: AnyIndex = ShardedIndex.open(path, runner=runner() if runner else None,
                                            verify=verify, mmap=mmap, model=model,
                                            runtime=runtime)
    elif runner is not None:
        raise UsageError("--ray works on sharded indexes: add --shards N")
    else:
        index = Index.open(path, verify=verify, mmap=mmap, model=model, runtime=runtime)
    index.lock_timeout = timeout
    return index


def open_or_create(name_or_path: str | os.PathLike | None, *, shards: int | None = None,
                   model: str | None = None, pooling: str | None = None,
                   settings: dict[str, Any] | None = None, runner: RunnerFactory | None = None,
                   runtime: Runtime | None = None, timeout: float = 0.0) -> AnyIndex:
    """Open the index, or create it (sharded when ``shards`` is given); ``settings`` (the
    :class:`~semsearch.index.IndexSettings` fields; None: the index's own) must match an
    existing index."""
    path = resolve_index_path(name_or_path)
    settings = settings or {}
    if shards or is_sharded(path):
        index: AnyIndex = ShardedIndex.open_or_create(
            path, shards, model=model, pooling=pooling, runner=runner() if runner else None,
            runtime=runtime, **settings)
    elif runner is not None:
        raise UsageError("--ray works on sharded indexes: add --shards N")
    else:
        index = Index.open_or_create(path, model=model, pooling=pooling, runtime=runtime,
                                     **settings)
    index.lock_timeout = timeout
    return index


def index_files(
    index: AnyIndex, paths: Iterable[str], options: ReadOptions | None = None, *,
    batch_size: int = 32, commit_seconds: float = 60.0, recall: float | None = None,
    progress: Callable[[int], None] | None = None, warn: Callable[[str], None] | None = None,
) -> AddResult:
    """Read files, folders or ``-`` (stdin) into the index, as `semsearch index` does: an error
    when nothing was found to index, the approximate search re-aimed when ``recall`` changes
    it, and every warning both passed to ``warn`` as it happens and kept in the result."""
    paths = list(paths)
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    documents = read_documents(paths, options or ReadOptions(), note)
    result = index.add(documents, batch_size=batch_size, progress=progress, warn=note,
                       commit_seconds=commit_seconds)
    if not (result.added or result.replaced or result.skipped):
        raise InputError(f"no documents found in {' '.join(paths)}; nothing was indexed")
    if recall is not None and recall != index.info()["recall_target"]:
        index.tune(recall)
    if shortfall := recall_shortfall(index.info()):
        note(shortfall)
    if result.truncated:
        note(f"{result.truncated} units were longer than {index.encoder.max_seq_length} tokens"
             " and were truncated (try --unit sentence or passage)")
    result.warnings = warnings
    return result


def add_documents(index: AnyIndex, documents: Iterable[Document]) -> AddResult:
    """Add or replace documents given as values (the HTTP API's writes), warnings kept."""
    warnings: list[str] = []
    result = index.add(documents, warn=warnings.append)
    result.warnings = warnings
    return result


def remove_documents(index: AnyIndex, references: Iterable[str], *,
                     paths: bool = True) -> int:
    """Delete documents by id or, with ``paths``, by the existing file they were read from (a
    reference naming a file means that file's documents); returns how many were deleted."""
    if not paths:
        return index.remove(list(references), ids_only=True)
    return index.remove([str(Path(reference).resolve()) if Path(reference).exists() else reference
                         for reference in references])


def prepare_queries(index: AnyIndex) -> Path:
    """Make the export that lets queries on this index run without torch (see
    :func:`semsearch.encoder.prepare_fast_path`); the recipe file naming it."""
    manifest = index.manifest
    return prepare_fast_path(manifest["model"], manifest["pooling"])


def open_for_serving(name_or_path: str | os.PathLike | None, *,
                     runtime: Runtime | None = None, mmap: bool = False,
                     runner: RunnerFactory | None = None) -> AnyIndex:
    """An index ready to answer at once: its model and vectors loaded and warmed by a search
    (queries run on ONNX Runtime unless a backend or precision that needs torch is asked for;
    see :func:`semsearch.encoder.load_encoder`)."""
    index = open_index(name_or_path, runtime=runtime, mmap=mmap, runner=runner)
    index.encoder  # noqa: B018  (loaded now, not at the first request)
    index.search("warm up", SearchOptions(k=1))  # the vectors and the first batch, loaded
    return index


def list_indexes(home: Path | None = None) -> list[dict]:
    """Every index under ``home`` (``indexes/`` or $SEMSEARCH_INDEXES) with its counts; one
    that cannot be opened is listed with its error instead of hiding the others."""
    home = home or indexes_home()
    rows = []
    for folder in sorted(home.iterdir()) if home.is_dir() else []:
        if (folder / STORE_FILE).exists() or is_sharded(folder):
            try:
                data = open_index(folder, verify=False).info()
            except SemsearchError as exc:
                data = {"error": str(exc)}
            rows.append({"name": folder.name, **data})
    return rows


def document_titles(index: AnyIndex, offset: int, limit: int) -> list[tuple[str, str]]:
    """``(id, title)`` of ``limit`` documents from the ``offset``-th, in the order they were
    stored (a sharded index: shard by shard): one page of a listing that no reader need hold
    whole, as the MCP server lists documents as resources."""
    shards = [index] if isinstance(index, Index) else [
        Index.open(path, verify=False) for path in index.shard_paths]
    rows: list[tuple[str, str]] = []
    for shard in shards:
        try:
            held = shard.manifest["documents"]
            if len(rows) < limit and offset < held:
                rows += shard.store.document_titles(offset, limit - len(rows))
            offset = max(0, offset - held)
        finally:
            if shard is not index:
                shard.store.close()
    return rows


def cluster_members(index: AnyIndex, reference: str, *, offset: int = 0,
                    limit: int = 20) -> dict:
    """The items of one cluster of a stored run (``reference``: ``ID`` of the latest run, or
    ``RUN:ID``), a page at a time in index order: units with their text, or, for a run over
    documents, each document with its first unit's text."""
    run_id, number = cluster_reference(reference)
    run = index.store.cluster_run(run_id)
    known = {c["cluster"]: c for c in run["cluster_list"]}
    if number not in known and not (number == -1 and run["outliers"]):
        raise InputError(f"run {run['id']} has no cluster {number}; its clusters are 0 to"
                         f" {run['clusters'] - 1}"
                         + (" and -1 (the outliers)" if run["outliers"] else ""))
    unit_ids = sorted(index.store.filtered_unit_ids(None, (run["id"], number)).tolist())
    if run["target"] == "document":  # each document once, by its first unit in the cluster
        documents = index.store.document_ids(unit_ids)
        first: dict[str, int] = {}
        for unit_id in unit_ids:
            first.setdefault(documents[unit_id], unit_id)
        unit_ids = list(first.values())
    page = unit_ids[offset:offset + limit]
    rows = index.store.hits(page)
    members = [{"unit_id": unit_id, **rows[unit_id]} for unit_id in page]
    if run["target"] == "document":
        members = [{key: member[key] for key in ("document_id", "title", "source", "metadata",
                                                  "text")} for member in members]
    cluster_row = known.get(number, {})
    return {"run": run["id"], "cluster": number, "target": run["target"],
            "keywords": cluster_row.get("keywords", []), "size": len(unit_ids),
            "offset": offset, "members": members,
            "next_offset": offset + len(page) if offset + len(page) < len(unit_ids) else None}


def cluster(index: AnyIndex, *, method: str = "kmeans", by_document: bool = False,
            k: int | None = None, seed: int = 0, restarts: int = DEFAULT_RESTARTS,
            threshold: float | None = None, min_size: int | None = None,
            reduce_outliers: bool = False, reduction: str = DEFAULT_REDUCTION) -> dict:
    """Cluster an index and store the run; a sharded index is clustered with k-means over a
    sample of every shard (the other methods compare all pairs, which shards cannot)."""
    if isinstance(index, ShardedIndex):
        if method != "kmeans":
            raise InputError("a sharded index is clustered with kmeans (centroids from a"
                             " sample of every shard)")
        return cluster_dataset(index.cluster_data(), by_document=by_document, k=k, seed=seed,
                               restarts=restarts, reduction=reduction)
    return cluster_index(index, method=method, by_document=by_document, k=k, seed=seed,
                         restarts=restarts, threshold=threshold, min_size=min_size,
                         reduce_outliers=reduce_outliers, reduction=reduction)


def draw_run(index: AnyIndex, run: dict, *, plot: str | None = None,
             export: str | None = None) -> dict:
    """A stored run with, when asked for, its 2-D map drawn to ``plot`` (a PNG) and its items
    written to ``export`` (a CSV)."""
    if not (plot or export):
        return run
    if isinstance(index, ShardedIndex):
        raise InputError("--plot and --export read one index; open a shard folder for them")
    if plot:
        run["plot"] = {"path": plot, "projection": plot_map(index, run, plot)}
    if export:
        run["export"] = {"path": export, "rows": export_csv(index, run, export)}
    return run

