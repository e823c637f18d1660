"""An index: one directory holding the SQLite store and the FAISS vectors, kept in step.

Crash safety comes from ordering: each save writes a *new* vectors file (temporary name, fsync,
rename) and a new keyword-index folder, then commits the SQLite transaction that changed the
units and points the manifest at both, then deletes the old ones. A crash before the commit
leaves the old store, vectors and keywords; after it, the new ones. Writers take an exclusive
lock file; readers never wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semsearch.bm25 import KeywordStatistics, analyze, query_terms
from semsearch.encoder import (
    Encoder,
    Runtime,
    encoder_setup,
    load_encoder,
)
from semsearch.errors import (
    CorruptIndexError,
    IndexBusyError,
    IndexExistsError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    WriteError,
)
from semsearch.keywords import (
    FOLDER_PREFIX,
    KeywordDraft,
    KeywordIndex,
    field_terms,
    filter_terms,
    keyword_text,
)
from semsearch.model_folder import model_fingerprint, model_name, resolve_model_path
from semsearch.readers import Document, blocks_of
from semsearch.search import Hit, SearchOptions, search
from semsearch.store import FORMAT_VERSION, SALVAGE_COLUMNS, Store, metadata_json
from semsearch.units import UNIT_CONTEXTS, UNIT_KINDS, Unit, cut_units, unit_sentences
from semsearch.vectors import (
    AUTO,
    DEFAULT_RECALL,
    VectorIndex,
    check_factory,
    target_factory,
)

STORE_FILE = "store.db"
LOCK_FILE = "write.lock"
DOCS_PER_CHUNK = 1024
LOW_DISK_BYTES = 1 << 20


def indexes_home() -> Path:
    return Path(os.environ.get("SEMSEARCH_INDEXES", "indexes"))


def resolve_index_path(name_or_path: str | os.PathLike | None) -> Path:
    """A bare name lives under ``indexes/``; anything with a slash, or an existing index, is a
    path."""
    value = str(name_or_path or "default")
    path = Path(value).expanduser()
    if "/" in value or os.sep in value or (path / STORE_FILE).exists():
        return path
    return indexes_home() / value


@dataclass
class IndexSettings:
    """What an index is built with; fixed when it is created."""

    unit: str = "sentence"
    faiss: str = AUTO
    passage_tokens: int = 128
    overlap: int = 1
    chunk: bool = True  # split documents longer than the model's limit (else truncate)
    # What is embedded with each unit's text (UNIT_CONTEXTS): nothing, its document's title,
    # or the title and the unit's heading path (the default: measured better on a notes vault
    # and on SciFact, docs/benchmarks.md).
    context: str = "heading"
    # Passage and document units: each of a unit's sentences is embedded too, and a unit's dense
    # score is the mean of its own cosine and its best sentence's (multi-granularity: +2.8
    # nDCG@10 dense on SciFact, docs/benchmarks.md).
    sentence_vectors: bool = True
    # Document units: BM25 of each whole document (title and text), not of each of its chunks.
    document_keywords: bool = True


# Settings an index made before they existed was built without (not today's default).
_BUILT_BEFORE = {"context": "none", "sentence_vectors": False, "document_keywords": False}


def settings_of(manifest: dict) -> IndexSettings:
    """The settings an index was built with (an index from before a setting has its default)."""
    defaults = {**asdict(IndexSettings()), **_BUILT_BEFORE}
    return IndexSettings(**{key: manifest.get(key, value) for key, value in defaults.items()})


def embedded_text(unit: Unit, title: str, context: str) -> str:
    """What is embedded for a unit: its text, after its title (and heading path) by ``context``."""
    where = [title] if context != "none" and title else []
    if context == "heading" and unit.heading:
        where.append(unit.heading)
    return f"{' › '.join(where)}: {unit.text}" if where else unit.text


@dataclass
class AddResult:
    """What an add did: the one summary the command line, the HTTP API and Python report."""

    added: int = 0
    replaced: int = 0
    skipped: int = 0  # unchanged (same content hash): not embedded again
    empty: int = 0  # no text to embed: skipped with a warning
    units: int = 0
    truncated: int = 0  # units longer than the model reads
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"added": self.added, "replaced": self.replaced, "unchanged": self.skipped,
                "empty": self.empty, "units": self.units, "truncated": self.truncated,
                "seconds": round(self.seconds, 2), "warnings": self.warnings}

    def count(self, prepared: PreparedChunk) -> None:
        """Add up one written chunk."""
        self.replaced += len(prepared.replaced)
        self.added += len(prepared.fresh) - len(prepared.replaced)
        self.skipped += prepared.skipped
        self.empty += prepared.empty
        self.truncated += prepared.truncated
        self.units += sum(len(units) for units in prepared.units)


@dataclass
class PreparedChunk:
    """A chunk of documents ready to embed: the new or changed ones with their units."""

    fresh: list[Document] = field(default_factory=list)
    units: list[list[Unit]] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # ids of changed documents
    skipped: int = 0
    empty: int = 0
    truncated: int = 0
    context: str = "none"  # the index's setting: what is embedded with each unit
    sentences: list[list[str]] = field(default_factory=list)  # each unit's, with sentence_vectors

    @property
    def texts(self) -> list[str]:
        """What is embedded for each unit, in order."""
        return [embedded_text(unit, doc.title, self.context)
                for doc, units in zip(self.fresh, self.units, strict=True) for unit in units]

    @property
    def embedded(self) -> list[list[str]]:
        """Per unit, in order: its text as embedded, then each of its sentences (if any)."""
        sentences = self.sentences or [[] for _ in self.texts]
        return [[text, *own] for text, own in zip(self.texts, sentences, strict=True)]


def document_chunks(documents: Iterable[Document]) -> Iterator[list[Document]]:
    """Chunks of documents with unique ids (the last version of a repeated id wins); each
    chunk is embedded as one piece, so its vectors do not depend on who embeds it."""
    for chunk in _chunks(documents, DOCS_PER_CHUNK):
        yield list({doc.id: doc for doc in chunk}.values())


def check_settings(path: Path, manifest: dict, given: dict) -> None:
    """Refuse settings that differ from those an existing index was built with: they are fixed
    when it is created."""
    built = asdict(settings_of(manifest))
    clash = {key: value for key, value in given.items() if built[key] != value}
    if clash:
        raise IndexMismatchError(f"{path} was built with {built}; {clash} would need a new index")


class ChunkTarget(Protocol):
    """Where :func:`add_chunks` sends each chunk: one index, or the shards of a sharded one."""

    depth: int  # chunks that may be embedded and written while the next is prepared

    def prepare(self, chunk: list[Document], warn: Callable[[str], None] | None
                ) -> dict[int, PreparedChunk]:
        """The chunk's documents that need embedding, by the part (shard) that holds them."""
        ...

    def embed(self, texts: list[str]) -> Any: ...

    def write(self, parts: dict[int, PreparedChunk], ids: dict[int, list[int]],
              rows: dict[int, list[int]], embeddings: Any) -> Any:
        """Store each part's units under ``ids``, their vectors the ``rows`` of
        ``embeddings``; returns what :meth:`settle` waits for."""
        ...

    def settle(self, pending: Any) -> None: ...

    def sync(self) -> None:
        """Make what was written visible to :meth:`prepare` (a document seen twice)."""
        ...


def add_chunks(target: ChunkTarget, documents: Iterable[Document], next_id: int,
               progress: Callable[[int], None] | None = None,
               warn: Callable[[str], None] | None = None) -> AddResult:
    """The one add loop of every index: chunk → prepare → number → embed → write. Unit ids are
    numbered in input order, whatever part a document goes to, so a sharded index numbers its
    units exactly as one index would."""
    result = AddResult()
    started = time.monotonic()
    in_flight: deque[tuple[Any, int]] = deque()  # (pending write, documents) per chunk
    seen: set[str] = set()

    def finish_oldest() -> None:
        pending, count = in_flight.popleft()
        target.settle(pending)
        if progress:
            progress(count)

    for chunk in document_chunks(documents):
        if not seen.isdisjoint(doc.id for doc in chunk):  # a document seen before: its first
            while in_flight:                             # version must be written before we
                finish_oldest()                          # compare
            target.sync()
        seen.update(doc.id for doc in chunk)
        parts = target.prepare(chunk, warn)
        for prepared in parts.values():
            result.count(prepared)
        position = {doc.id: number for number, doc in enumerate(chunk)}
        units = sorted((position[doc.id], part, len(doc_units)) for part, prepared in parts.items()
                       for doc, doc_units in zip(prepared.fresh, prepared.units, strict=True))
        texts_of = {part: iter(prepared.embedded) for part, prepared in parts.items()}
        ids: dict[int, list[int]] = {part: [] for part in parts}
        rows: dict[int, list[int]] = {part: [] for part in parts}  # each unit's first row
        texts: list[str] = []
        for _, part, count in units:
            for _ in range(count):
                ids[part].append(next_id)
                rows[part].append(len(texts))
                texts.extend(next(texts_of[part]))  # the unit, then its sentences
                next_id += 1
        in_flight.append((target.write(parts, ids, rows, target.embed(texts)), len(chunk)))
        while len(in_flight) > target.depth:
            finish_oldest()
    while in_flight:
        finish_oldest()
    result.seconds = time.monotonic() - started
    return result


class ChunkWriter:
    """Writes prepared chunks into one index (inside its :meth:`Index.writing`), committing
    every ``commit_seconds``: an interrupted run keeps what was committed, a re-run skips it."""

    def __init__(self, index: Index, commit_seconds: float = 60.0):
        self.index = index
        self.commit_seconds = commit_seconds
        self._last_commit = time.monotonic()

    def write(self, prepared: PreparedChunk, ids: list[int], embeddings: np.ndarray,
              rows: list[int]) -> None:
        """Store ``prepared``'s units under ``ids``: unit n's vector is row ``rows[n]`` of
        ``embeddings``, its sentences' the rows after it."""
        sentences = prepared.sentences or [[] for _ in ids]
        self.index.write(prepared, ids, np.ascontiguousarray(embeddings[rows]),
                         [embeddings[row + 1:row + 1 + len(own)]
                          for row, own in zip(rows, sentences, strict=True)])
        if time.monotonic() - self._last_commit >= self.commit_seconds:
            self.checkpoint()

    def checkpoint(self) -> None:
        self.index.checkpoint()
        self._last_commit = time.monotonic()


class _OneIndex:
    """One index as the :class:`ChunkTarget` of its own adds: embedded and written in turn."""

    depth = 0

    def __init__(self, index: Index, writer: ChunkWriter, batch_size: int):
        self.index, self.writer, self.batch_size = index, writer, batch_size

    def prepare(self, chunk: list[Document], warn: Callable[[str], None] | None
                ) -> dict[int, PreparedChunk]:
        return {0: self.index.prepare(chunk, warn)}

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.index.encoder.encode(texts, self.batch_size)

    def write(self, parts: dict[int, PreparedChunk], ids: dict[int, list[int]],
              rows: dict[int, list[int]], embeddings: np.ndarray) -> None:
        self.writer.write(parts[0], ids[0], embeddings, rows[0])

    def settle(self, pending: None) -> None:
        pass

    def sync(self) -> None:
        pass  # one transaction: prepare already sees what it wrote


def recall_shortfall(info: dict) -> str | None:
    """A warning when tuning widened the search as far as it goes and still measured less than
    the recall target: searches are then less complete than asked for."""
    measured, target = info.get("measured_recall"), info["recall_target"]
    if measured is None or measured >= target:
        return None
    return (f"{info['index']}: approximate search ({info['faiss_built']}) reaches recall@10"
            f" {measured:.2f}, under the {target:.2f} asked for, even at its widest; pass"
            " --faiss Flat for exact search, or a larger --effort per query")


def _low_disk(path: Path) -> str:
    """Why SQLite said "disk I/O error" when it could not grow a file: the disk is all but full."""
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
    except OSError:
        return ""
    return f" (the disk has {free:,} B free)" if free < LOW_DISK_BYTES else ""


def _cause(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _first_problem(quick_check: str) -> str:
    """SQLite's list of damage, one line per problem, as one line."""
    problems = [line for line in quick_check.splitlines() if line and not line.startswith("***")]
    more = f" and {len(problems) - 1}{'+' if len(problems) >= 100 else ''} more problems" if (
        len(problems) > 1) else ""  # SQLite stops listing at 100
    return f"{problems[0] if problems else quick_check}{more}"


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Index:
    """The Python API under the CLI: ``Index.open(path).add(docs)``, ``.search(...)``."""

    def __init__(self, path: Path, store: Store, encoder: Encoder | None = None,
                 mmap: bool = False, runtime: Runtime | None = None):
        self.path = path
        self.store = store
        self.runtime = runtime or Runtime()  # how this process runs the index's model
        self._encoder = encoder
        self._vectors: VectorIndex | None = None
        self._vectors_file: str | None = None  # the manifest's file that _vectors came from
        self._verify_vectors = False  # on first load: checksum and counts against the store
        self._keywords: KeywordIndex | None = None
        self._keywords_folder: str | None = None  # the manifest's folder _keywords came from
        self._draft: KeywordDraft | None = None  # the keyword generation being written
        self._changed = False
        self._mmap = mmap
        self._writing = False
        self.lock_timeout = 0.0  # seconds a write waits for another writer to finish

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike, *, model: str | None = None, pooling: str | None = None,
        settings: IndexSettings | None = None, runtime: Runtime | None = None,
    ) -> Index:
        path = Path(path)
        runtime = runtime or Runtime()
        settings = settings or IndexSettings()
        if settings.unit not in UNIT_KINDS:
            raise InputError(f"unknown unit {settings.unit!r}; choose from {', '.join(UNIT_KINDS)}")
        if settings.context not in UNIT_CONTEXTS:
            raise InputError(f"unknown context {settings.context!r}; choose from"
                             f" {', '.join(UNIT_CONTEXTS)}")
        if (path / STORE_FILE).exists():
            raise IndexExistsError(f"an index already exists at {path}")
        encoder = load_encoder(model, pooling, precision=runtime.precision,
                               backend=runtime.backend)
        check_factory(settings.faiss, encoder.dimension)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create index folder {path}: {exc.strerror}") from None
        # Built under a private name and published complete (a hard link fails if another
        # process got there first), so a reader never opens a store without its schema.
        draft = path / f"{STORE_FILE}.{os.getpid()}.new"
        try:
            store = Store(draft)
            try:
                store.create_schema({
                    "model": model_name(encoder.path),
                    "model_fingerprint": model_fingerprint(encoder.path),
                    "pooling": encoder.pooling, "dimension": encoder.dimension,
                    "metric": "inner_product", "max_seq_length": encoder.max_seq_length,
                    **asdict(settings), "faiss_built": "Flat", "vectors_file": None,
                    "vectors_generation": 0, "vectors": 0, "units": 0, "documents": 0,
                    "keywords_folder": None, "keywords_generation": 0, "keywords_sha256": None,
                })
            finally:
                store.close()
            os.link(draft, path / STORE_FILE)
        except FileExistsError:
            raise IndexExistsError(f"an index already exists at {path}") from None
        except (sqlite3.OperationalError, OSError) as exc:
            raise WriteError(f"cannot create an index at {path}: {_cause(exc)}{_low_disk(path)};"
                             " nothing was"
                             " written (free some space or choose another --index)") from None
        finally:
            for leftover in (draft, *(Path(f"{draft}{end}") for end in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
        # Embeds with what the runtime picks for this model now that its pooling is known
        # (`auto`: ONNX Runtime for small adds, made possible by the export torch just wrote).
        return cls(path, Store(path / STORE_FILE), runtime=runtime)

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, model: str | None = None, pooling: str | None = None,
        verify: bool = True, mmap: bool = False, runtime: Runtime | None = None,
    ) -> Index:
        """Open an existing index; ``model``/``pooling``, when given, must match what built it.

        ``mmap`` maps the vector file instead of reading it into memory (for searching only)."""
        path = Path(path)
        if not (path / STORE_FILE).exists():
            raise IndexNotFoundError(
                f"no index at {path}; create one with `semsearch index --index {path} FILES`")
        try:
            store = Store(path / STORE_FILE)
        except sqlite3.OperationalError as exc:
            raise WriteError(f"cannot open {path}: {exc}{_low_disk(path)}") from None
        index = cls(path, store, mmap=mmap, runtime=runtime)
        manifest = index.manifest
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise IndexMismatchError(
                f"{path} was written by a newer semsearch (format {manifest['format_version']});"
                " upgrade semsearch to read it")
        if model is not None:
            fingerprint = model_fingerprint(resolve_model_path(model))
            if fingerprint != manifest["model_fingerprint"]:
                raise IndexMismatchError(
                    f"{path} was built with model {manifest['model']}, not {model}; query it with"
                    " the same model or index into a new --index")
        if pooling is not None and pooling != manifest["pooling"]:
            raise IndexMismatchError(
                f"{path} was built with {manifest['pooling']} pooling, not {pooling}")
        # The vector file is checked where it is first needed: a keyword query never loads FAISS
        # (a quarter of a second, 250 MB with faiss-gpu).
        index._verify_vectors = verify
        return index

    @classmethod
    def open_or_create(
        cls, path: str | os.PathLike, *, model: str | None = None, pooling: str | None = None,
        runtime: Runtime | None = None, **settings: Any,
    ) -> Index:
        """Open the index at ``path``, or create it; ``settings`` given (not None) must match."""
        given = {key: value for key, value in settings.items() if value is not None}
        if not (Path(path) / STORE_FILE).exists():
            try:
                return cls.create(path, model=model, pooling=pooling,
                                  settings=IndexSettings(**given), runtime=runtime)
            except IndexExistsError:  # another run created it a moment ago: join it
                pass
        index = cls.open(path, model=model, pooling=pooling, runtime=runtime)
        check_settings(Path(path), index.manifest, given)
        return index

    @property
    def manifest(self) -> dict:
        return self.store.manifest()

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            manifest = self.manifest
            encoder = load_encoder(manifest["model"], manifest["pooling"],
                                   precision=self.runtime.precision, backend=self.runtime.backend)
            if model_fingerprint(encoder.path) != manifest["model_fingerprint"]:
                raise IndexMismatchError(
                    f"the model at {encoder.path} has changed since {self.path} was built;"
                    " rebuild the index or restore the model")
            self._encoder = encoder
        return self._encoder

    def use_encoder(self, encoder: Encoder) -> None:
        """Embed with an encoder already loaded for the same model (a sharded index lends its
        own to each shard) instead of loading another."""
        if model_fingerprint(encoder.path) != self.manifest["model_fingerprint"]:
            raise IndexMismatchError(f"{self.path} was built with model {self.manifest['model']},"
                                     f" not {model_name(encoder.path)}")
        self._encoder = encoder

    @property
    def vectors(self) -> VectorIndex:
        return self._vectors if self._vectors is not None else self._reload_vectors()

    @property
    def keywords(self) -> KeywordIndex:
        """The committed keyword index (checked against its checksum and the store's units
        when it is loaded)."""
        manifest = self.manifest
        if "keywords_generation" not in manifest:
            raise IndexMismatchError(
                f"{self.path} was made by an older semsearch, without a keyword index; run"
                f" `semsearch check --repair --index {self.path}` once to build it")
        folder = manifest["keywords_folder"]
        if self._keywords is None or self._keywords_folder != folder:
            keywords = KeywordIndex.load(self.path / folder if folder else None,
                                         manifest.get("keywords_sha256"),
                                         private_copy=self.store.read_only)
            kind = "documents" if self.keywords_by_document else "units"
            units = self.store.count(kind)
            if keywords.units != units:
                raise CorruptIndexError(
                    f"{self.path}: the store has {units} {kind} but the keyword index holds"
                    f" {keywords.units}; run `semsearch check --repair --index {self.path}`")
            self._keywords, self._keywords_folder = keywords, folder
        return self._keywords

    def keyword_statistics(self, text: str) -> KeywordStatistics:
        """This index's keyword statistics for ``text`` (a sharded index adds up its shards')."""
        return self.keywords.statistics(query_terms(text))

    def filtered_unit_ids(self, where: dict[str, str] | None = None,
                          cluster: tuple[int, int] | None = None) -> np.ndarray:
        """The units inside the ``where`` filter (from the keyword index's field terms, not a
        scan of every document's metadata) and ``cluster``, in id order."""
        filters = filter_terms(where)
        if filters is None or self.keywords_by_document:  # a value too long to be a term, or
            return self.store.filtered_unit_ids(where, cluster)  # terms on first units only
        ids = self.keywords.unit_ids(filters) if filters else None
        if cluster is not None:
            members = self.store.filtered_unit_ids(None, cluster)
            ids = members if ids is None else np.intersect1d(ids, members)
        return ids if ids is not None else self.store.unit_ids()

    def keyword_search(self, text: str, limit: int, *, where: dict[str, str] | None = None,
                       cluster: tuple[int, int] | None = None,
                       statistics: KeywordStatistics | None = None) -> list[tuple[float, int]]:
        """BM25 (higher is better) and unit id of the best keyword matches for ``text``, inside
        the ``where`` filter and ``cluster``; scored with ``statistics`` where given."""
        filters = filter_terms(where)
        ids = None
        by_document = self.keywords_by_document
        if filters is None or cluster is not None:  # a value too long to be a term; clusters
            scope = self.store.first_unit_ids if by_document else self.store.filtered_unit_ids
            ids = scope(where if filters is None else None, cluster)
        tokens = self.store.document_terms if by_document else self._unit_tokens
        return self.keywords.search(query_terms(text), limit, tokens, statistics, filters or (),
                                    ids)

    def _unit_tokens(self, ids: Iterable[int]) -> Iterator[tuple[int, list[str]]]:
        return ((unit_id, analyze(text)) for unit_id, text in self.store.unit_texts(ids))

    def _reload_vectors(self) -> VectorIndex:
        """The committed vector file; the first load of an opened index also checks it against
        the store."""
        self._vectors = self._load_vectors(check_counts=self._verify_vectors)
        self._verify_vectors = False
        return self._vectors

    def _load_vectors(self, check_counts: bool = False) -> VectorIndex:
        for attempt in range(3):  # a writer may swap the file between our manifest read and load
            with self.store.atomic():  # manifest and unit count as of one moment
                manifest = self.manifest
                units = self.store.count("units") if check_counts else None
            if manifest["vectors_file"] is None:
                vectors = VectorIndex.empty(manifest["dimension"])
            else:
                try:
                    vectors = VectorIndex.load(
                        self.path / manifest["vectors_file"], manifest["faiss_built"],
                        manifest.get("search_effort"), mmap=self._mmap and not self._writing,
                        sha256=manifest.get("vectors_sha256"))
                except CorruptIndexError:
                    if attempt == 2 or self.manifest["vectors_file"] == manifest["vectors_file"]:
                        raise
                    continue
            self._vectors_file = manifest["vectors_file"]
            if check_counts and (vectors.ntotal != units
                                 or vectors.dimension != manifest["dimension"]):
                raise CorruptIndexError(
                    f"{self.path}: the store has {units} units but the vector file holds"
                    f" {vectors.ntotal} vectors; run `semsearch check --repair --index"
                    f" {self.path}`")
            return vectors
        raise AssertionError("unreachable")

    # ---- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 0.0):
        """The exclusive writer lock (a lock file): a second writer waits ``timeout`` seconds,
        then gets a clear error. Readers never take it."""
        import fcntl

        try:
            handle = (self.path / LOCK_FILE).open("a")
        except OSError as exc:
            raise InputError(f"cannot write to {self.path}: {exc.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise IndexBusyError(
                        f"another process is writing to {self.path}; wait for it to finish"
                        " (or give --timeout SECONDS)") from None
                time.sleep(0.2)
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            handle.close()

    @contextlib.contextmanager
    def writing(self, timeout: float | None = None):
        """The writer lock plus one open transaction; rolled back on any error."""
        with self.locked(self.lock_timeout if timeout is None else timeout):
            try:
                self._vectors = None  # reload what the last writer committed
                self._remove_orphans()
                self._changed = False
                self._draft = None
                self.store.begin()
                if "keywords_generation" not in self.manifest:  # made before the keyword index
                    self._rebuild_keywords()
                    self.store.drop_fts()
                yield
                self._commit()
            except (sqlite3.OperationalError, OSError) as exc:  # disk full, read-only, I/O
                self._abandon()
                raise WriteError(
                    f"cannot write to {self.path}: {exc}{_low_disk(self.path)}; the index keeps"
                    " what was committed before (run the same command again once this is"
                    " fixed)") from None
            except BaseException:
                self._abandon()
                raise

    def _abandon(self) -> None:
        """Drop the open transaction, the in-memory vectors and the keyword draft it changed."""
        with contextlib.suppress(sqlite3.Error):
            self.store.rollback()
        self._vectors = None
        if self._draft is not None:
            self._draft.discard()
            self._draft = None

    def _keyword_draft(self) -> KeywordDraft:
        """The next keyword generation, started on first use in a transaction."""
        if self._draft is None:
            self._draft = KeywordDraft(self.path, self.keywords,
                                       self.manifest["keywords_generation"] + 1)
        return self._draft

    def _rebuild_keywords(self) -> None:
        """Build the keyword index anew from the store (inside :meth:`writing`)."""
        if self._draft is not None:
            self._draft.discard()
        self._draft = KeywordDraft(self.path, KeywordIndex(),
                                   self.manifest.get("keywords_generation", 0) + 1)
        for chunk in _chunks(self.store.keyword_rows(self.keywords_by_document), 4096):
            self._draft.add([row[0] for row in chunk], [row[1] for row in chunk],
                            field_terms(row[2] for row in chunk))
        self._changed = True

    def _remove_orphans(self) -> None:
        """Vector files left by a run that died before its commit."""
        manifest = self.manifest
        for file in self.path.glob("vectors.*.faiss*"):
            if file.name != manifest["vectors_file"]:
                file.unlink(missing_ok=True)
        for folder in self.path.glob(f"{FOLDER_PREFIX}*"):
            if folder.name != manifest.get("keywords_folder"):
                shutil.rmtree(folder, ignore_errors=True)

    def _commit(self) -> None:
        if not self._changed:
            self.store.commit()
            return
        self._changed = False
        manifest = self.manifest
        vectors = self.vectors
        target = target_factory(manifest["faiss"], vectors.factory, vectors.ntotal,
                                vectors.dimension)
        if target != vectors.factory:
            vectors.rebuild(target)
        effort, recall = vectors.tune(manifest.get("recall", DEFAULT_RECALL))
        generation = manifest["vectors_generation"] + 1
        name = f"vectors.{generation}.faiss"
        try:
            checksum = vectors.save(self.path / name)
        except (OSError, RuntimeError) as exc:
            (self.path / (name + ".tmp")).unlink(missing_ok=True)
            raise WriteError(f"cannot write vectors to {self.path}: {exc}") from None
        keywords: dict[str, Any] = {}
        draft, self._draft = self._draft, None
        if draft is not None:
            try:
                keywords = {"keywords_folder": draft.name, "keywords_sha256": draft.commit(),
                            "keywords_generation": int(draft.name.removeprefix(FOLDER_PREFIX))}
            except (OSError, ValueError) as exc:
                draft.discard()
                (self.path / name).unlink(missing_ok=True)
                raise WriteError(f"cannot write the keyword index to {self.path}: {exc}") from None
        try:
            self.store.set_manifest({
                **keywords, "vectors_file": name, "vectors_generation": generation,
                "faiss_built": vectors.factory, "search_effort": effort,
                "measured_recall": round(recall, 4), "vectors_sha256": checksum,
                "vectors": vectors.ntotal, "units": self.store.count("units"),
                "documents": self.store.count("documents"),
                "sentences": self.store.sentence_vector_count(),
            })
            self.store.commit()
        except BaseException:  # the store kept the old files: the new ones are nobody's
            (self.path / name).unlink(missing_ok=True)
            if draft is not None:
                draft.discard()
            raise
        if manifest["vectors_file"]:
            (self.path / manifest["vectors_file"]).unlink(missing_ok=True)
        if keywords and manifest.get("keywords_folder"):
            shutil.rmtree(self.path / manifest["keywords_folder"], ignore_errors=True)

    def add(
        self, documents: Iterable[Document], *, batch_size: int = 32,
        progress: Callable[[int], None] | None = None, commit_seconds: float = 60.0,
        warn: Callable[[str], None] | None = None,
    ) -> AddResult:
        """Add or replace documents; unchanged ones (same content hash) are skipped.

        Work is committed every ``commit_seconds``, so an interrupted run keeps what it did and
        a re-run carries on where it stopped. ``progress`` is called with each chunk's doc count.
        """
        with self.writing():
            target = _OneIndex(self, ChunkWriter(self, commit_seconds), batch_size)
            return add_chunks(target, documents, self.manifest["next_unit_id"], progress, warn)

    def prepare(self, chunk: list[Document], warn: Callable[[str], None] | None = None
                ) -> PreparedChunk:
        """Which documents of ``chunk`` (unique ids) need embedding, and their units."""
        manifest = self.manifest
        encoder = self.encoder
        limit = encoder.max_seq_length - 2
        budget = {"passage": min(manifest["passage_tokens"], limit),
                  "document": limit if manifest["chunk"] else sys.maxsize}.get(manifest["unit"])
        known = self.store.content_hashes([doc.id for doc in chunk])
        settings = settings_of(manifest)
        prepared = PreparedChunk(context=settings.context)
        for doc in chunk:
            if known.get(doc.id) == doc.content_hash:
                prepared.skipped += 1
                continue
            units = cut_units(doc.text, blocks_of(doc), manifest["unit"], encoder.token_counts,
                              budget, manifest["overlap"])
            if not units:
                prepared.empty += 1
                if warn:
                    warn(f"{doc.id}: skipped, no text")
                continue
            prepared.fresh.append(doc)
            prepared.units.append(units)
            if doc.id in known:
                prepared.replaced.append(doc.id)
        prepared.truncated = encoder.count_truncated(prepared.texts)
        if self.has_sentence_vectors(settings):
            prepared.sentences = [unit_sentences(unit.text) for units in prepared.units
                                  for unit in units]
        return prepared

    @staticmethod
    def has_sentence_vectors(settings: IndexSettings) -> bool:
        """Whether units get sentence vectors: sentence units are one sentence already."""
        return settings.sentence_vectors and settings.unit != "sentence"

    @cached_property
    def keywords_by_document(self) -> bool:
        """Whether the keyword index holds whole documents (under their first unit's id): a
        setting fixed when the index was created, so read once."""
        settings = settings_of(self.manifest)
        return settings.document_keywords and settings.unit == "document"

    def write(self, prepared: PreparedChunk, ids: list[int], embeddings: np.ndarray,
              sentence_embeddings: list[np.ndarray] | None = None) -> None:
        """Store a prepared chunk whose units take ``ids`` (inside :meth:`writing`), with each
        unit's sentence vectors where it has them."""
        vectors, keywords = self.vectors, self._keyword_draft()  # checked against the store
        removed = self.store.delete_documents(prepared.replaced)  # before it changes
        vectors.remove(removed)
        self.store.add_documents(prepared.fresh, prepared.units, ids)
        self.store.add_sentence_vectors(
            [(unit_id, own) for unit_id, own in zip(ids, sentence_embeddings or [], strict=True)
             if len(own)])
        vectors.add(np.array(ids, dtype=np.int64), embeddings)
        keywords.remove(removed)
        fields = field_terms(metadata_json(doc) for doc in prepared.fresh)
        if self.keywords_by_document:  # one entry per document, under its first unit's id
            firsts = [ids[first] for first in
                      np.cumsum([0, *(len(units) for units in prepared.units)])[:-1]]
            texts = [keyword_text(doc.title, [unit.text for unit in units])
                     for doc, units in zip(prepared.fresh, prepared.units, strict=True)]
            keywords.add(firsts, texts, fields)
            self.store.add_document_terms([(first, analyze(text))
                                           for first, text in zip(firsts, texts, strict=True)])
        else:
            keywords.add(ids, [unit.text for units in prepared.units for unit in units],
                         [terms for terms, units in zip(fields, prepared.units, strict=True)
                          for _ in units])
        self._changed = self._changed or bool(prepared.fresh)
        next_id = max(self.manifest["next_unit_id"], max(ids, default=-1) + 1)
        self.store.set_manifest({"next_unit_id": next_id})

    def checkpoint(self) -> None:
        """Commit what was written so far and go on writing (inside :meth:`writing`)."""
        self._commit()
        self.store.begin()

    def remove(self, ids_or_sources: list[str], ids_only: bool = False) -> int:
        """Delete documents (by id, or by the file they came from, unless ``ids_only``) with
        their vectors."""
        with self.writing():
            doc_ids = self.store.document_ids_for_sources(ids_or_sources, ids_only) if (
                ids_or_sources) else []
            vectors, keywords = self.vectors, self._keyword_draft()
            removed = self.store.delete_documents(doc_ids)
            vectors.remove(removed)
            keywords.remove(removed)
            self._changed = bool(doc_ids)
        return len(doc_ids)

    # ---- checking ------------------------------------------------------------------------

    def check(self, repair: bool = False, batch_size: int = 32) -> dict:
        """Compare store, keyword index and vectors; with ``repair``, re-embed what is missing,
        rebuild the keyword index, or rebuild a damaged store from the documents that can still
        be read."""
        report: dict = {"index": str(self.path)}
        try:
            vectors = self._load_vectors()
            report["vectors_file"] = "ok"
        except CorruptIndexError as exc:
            vectors = None
            report.update(vectors_file="damaged", vectors_error=str(exc))
        try:
            quick_check = self.store.conn.execute("pragma quick_check").fetchone()[0]
            stored = self.store.unit_ids()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, I/O: not damage we can judge
                raise
            quick_check = str(exc)
        if quick_check != "ok":
            report.update(self._damage(_first_problem(quick_check), vectors))
            if repair:
                report["repaired"] = self._salvage(batch_size)
                report.update(consistent=True, store_ok=True, keywords_ok=True,
                              vectors_file="rebuilt")
            return report
        report.update(store_ok=True, **self._check_keywords(stored))
        held = vectors.ids() if vectors is not None else np.zeros(0, dtype=np.int64)
        missing, extra = np.setdiff1d(stored, held), np.setdiff1d(held, stored)
        report.update(units=len(stored), vectors=len(held), missing=len(missing), extra=len(extra))
        report["consistent"] = bool(
            report["keywords_ok"] and vectors is not None and not len(missing)
            and not len(extra))
        if repair and not report["consistent"]:
            with self.writing():
                if vectors is None:
                    vectors = VectorIndex.empty(self.manifest["dimension"])
                    report["vectors_file"] = "rebuilt"
                self._vectors = vectors
                self._changed = True
                vectors.remove(extra)
                context = settings_of(self.manifest).context
                for chunk in _chunks(self.store.units_with_titles(missing), 4096):
                    ids = np.array([unit_id for unit_id, _, _ in chunk], dtype=np.int64)
                    texts = [embedded_text(unit, title, context) for _, unit, title in chunk]
                    vectors.add(ids, self.encoder.encode(texts, batch_size=batch_size))
                if not report["keywords_ok"]:
                    self._rebuild_keywords()
            report["repaired"] = {"reembedded": len(missing), "removed": len(extra),
                                  "keywords_rebuilt": not report["keywords_ok"]}
            report["consistent"] = True
        return report

    def _check_keywords(self, stored: np.ndarray) -> dict:
        """Whether the keyword index loads (checksum, counts) and holds exactly the units."""
        self._keywords = None  # load it afresh, checked
        try:
            held = self.keywords.unit_ids()
        except (CorruptIndexError, IndexMismatchError) as exc:
            return {"keywords_ok": False, "keywords_error": str(exc)}
        if self.keywords_by_document:
            stored = self.store.first_unit_ids()
        if not np.array_equal(held, np.sort(stored)):
            return {"keywords_ok": False,
                    "keywords_error": "the keyword index and the store hold different units"}
        return {"keywords_ok": True}

    def _readable_documents(self) -> tuple[list[Document], int]:
        """The documents a damaged store still holds; where a document's row is lost but its
        units are not, its text is put back together from them (title, source and metadata
        are lost)."""
        documents = []
        columns = [c for c in SALVAGE_COLUMNS if self.store.has_column("documents", c)]
        for row in self.store.readable_rows("documents", columns):
            doc_id, source, title, text, metadata, structure = (*row, None)[:6]
            try:
                parsed = json.loads(metadata) if metadata else {}
            except ValueError:
                parsed = {}
            documents.append(Document(id=doc_id, text=text or "", source=source or "",
                                      title=title or "", metadata=parsed,
                                      structure=structure or "text"))
        found = {doc.id for doc in documents}
        pieces: dict[str, list[tuple[int, str]]] = {}
        for doc_id, text, start in self.store.readable_rows(
                "units", ("document_id", "text", "char_start")):
            if doc_id not in found and text:
                pieces.setdefault(doc_id, []).append((start or 0, text))
        for doc_id, units in pieces.items():
            text = ""
            for start, unit in sorted(units):  # gaps between units become spaces
                text = text[:start].ljust(start) + unit
            documents.append(Document(id=doc_id, text=text, source=doc_id))
        return documents, len(pieces)

    def _damage(self, problem: str, vectors: VectorIndex | None) -> dict:
        """What ``check`` says of a store SQLite cannot read in full: the damage and what a
        repair can rebuild from."""
        try:
            documents: int | None = self.manifest["documents"]
        except CorruptIndexError:
            documents = None
        return {"store_ok": False, "store_error": problem, "keywords_ok": False,
                "consistent": False,
                "documents": documents, "readable_documents": len(self._readable_documents()[0]),
                "vectors": vectors.ntotal if vectors is not None else 0}

    def _salvage(self, batch_size: int) -> dict:
        """Rebuild the index from the documents a damaged store still gives up, beside it, then
        swap it in; the damaged store is kept (as ``store.db.damaged-TIME``), never deleted."""
        try:
            manifest = self.manifest
        except CorruptIndexError:
            raise CorruptIndexError(
                f"cannot repair {self.path}: its manifest cannot be read; rebuild the index from"
                " your files into a new --index") from None
        with self.locked(self.lock_timeout):
            documents, from_units = self._readable_documents()
            if not documents:
                raise CorruptIndexError(
                    f"cannot repair {self.path}: no document in its store can be read; rebuild"
                    " the index from your files into a new --index")
            draft = self.path / f"repair.{os.getpid()}"
            shutil.rmtree(draft, ignore_errors=True)
            fresh = None
            try:
                fresh = Index.create(draft, model=manifest["model"], pooling=manifest["pooling"],
                                     settings=settings_of(manifest),
                                     runtime=self.runtime)
                kept = {key: manifest[key] for key in ("recall", "vectors_generation",
                                                       "keywords_generation")
                        if key in manifest}  # the new files' names follow the old ones'
                kept.setdefault("keywords_generation", 0)
                fresh.store.set_manifest(kept)
                added = fresh.add(documents, batch_size=batch_size)
                vectors_file = fresh.manifest["vectors_file"]
                keywords_folder = fresh.manifest["keywords_folder"]
                fresh.store.close()
                self.store.close()  # the last connection out folds the log in, where it can
                damaged = f"{STORE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
                os.link(self.path / STORE_FILE, self.path / damaged)
                if (self.path / f"{STORE_FILE}-wal").exists():
                    os.replace(self.path / f"{STORE_FILE}-wal", self.path / f"{damaged}-wal")
                (self.path / f"{STORE_FILE}-shm").unlink(missing_ok=True)
                if vectors_file:
                    os.replace(draft / vectors_file, self.path / vectors_file)
                if keywords_folder:
                    os.replace(draft / keywords_folder, self.path / keywords_folder)
                os.replace(draft / STORE_FILE, self.path / STORE_FILE)
            except OSError as exc:
                raise WriteError(f"cannot repair {self.path}: {exc}; the damaged store is"
                                 " untouched") from None
            finally:
                if fresh is not None:
                    fresh.store.close()
                shutil.rmtree(draft, ignore_errors=True)
                self.store.close()
                self.store = Store(self.path / STORE_FILE)  # the new one, or still the old one
                self._vectors = None
            self._remove_orphans()
        lost = manifest["documents"] - len(documents) if "documents" in manifest else None
        return {"salvaged_documents": len(documents), "from_units": from_units,
                "lost_documents": lost,
                "reembedded": added.units, "damaged_store_kept": damaged}

    def compact(self) -> dict[str, int]:
        """Give back the space deleted documents left: rebuild the vector file from the vectors
        that stay, rebuild the keyword index from the units that stay, then VACUUM the store."""
        before = self.size_on_disk()
        with self.writing():
            self.vectors.rebuild(self.vectors.factory)
            self._rebuild_keywords()
            self._changed = True
        with self.locked(self.lock_timeout):
            try:
                self.store.vacuum()
            except (sqlite3.OperationalError, OSError) as exc:  # VACUUM needs room for a copy
                raise WriteError(
                    f"cannot compact {self.path}: {exc}; the index is intact (the vector file"
                    " and keyword index were rebuilt, the store keeps its free pages until there"
                    " is room)"
                ) from None
        return {"bytes_before": before, "bytes_after": self.size_on_disk()}

    def size_on_disk(self) -> int:
        return sum(self._file_sizes().values())

    def _file_sizes(self) -> dict[str, int]:
        """Bytes of each file in the folder (a keyword-index folder counts as one file)."""
        return {entry.name: (entry.stat().st_size if entry.is_file() else sum(
                    file.stat().st_size for file in entry.iterdir() if file.is_file()))
                for entry in sorted(self.path.iterdir())}

    def tune(self, recall: float) -> tuple[int | None, float]:
        """Aim approximate search at a new recall@10 target: measure the nprobe / efSearch that
        reaches it (nothing is re-embedded) and keep it with the index."""
        if not 0 < recall <= 1:
            raise InputError("--recall must be in (0, 1]")
        with self.writing():
            effort, measured = self.vectors.tune(recall)
            self.store.set_manifest({"recall": recall, "search_effort": effort,
                                     "measured_recall": round(measured, 4)})
        return effort, measured

    # ---- reading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, vectors: bool = True, keywords: bool = False):
        """One read transaction: the store as of one commit and the vector file (and with
        ``keywords`` the keyword index) of that same commit, whatever writers do meanwhile (in
        WAL mode they never block readers); without ``vectors`` (a keyword search), the vector
        file is left unread."""
        if self.store.conn.in_transaction:  # inside our own write: already consistent
            yield
            return
        for attempt in range(3):
            self.store.begin()
            try:
                if keywords:
                    self.keywords  # noqa: B018 - loads the generation this snapshot names
                if vectors and (self._vectors is None
                                or self._vectors_file != self.manifest["vectors_file"]):
                    self._reload_vectors()
                break
            except CorruptIndexError:  # the file went away under a newer commit: start again
                self.store.rollback()
                if attempt == 2:
                    raise
            except BaseException:  # never leave the snapshot open: later reads would reuse it
                self.store.rollback()
                raise
        try:
            yield
        finally:
            self.store.rollback()  # nothing was written

    def search(self, queries: list[str] | str,
               options: SearchOptions | None = None) -> list[list[Hit]]:
        """Nearest units (or documents) for each query; see :func:`semsearch.search.search`."""
        options = options or SearchOptions()
        with self.reading(vectors=options.mode != "keyword", keywords=options.mode != "dense"):
            return search(self, queries, options)

    def info(self) -> dict:
        manifest = self.manifest
        files = self._file_sizes()
        return {
            "index": str(self.path), "documents": manifest["documents"],
            "units": manifest["units"], "vectors": manifest["vectors"],
            "sentences": manifest.get("sentences", 0), "unit": manifest["unit"],
            "model": manifest["model"], "model_fingerprint": manifest["model_fingerprint"],
            "pooling": manifest["pooling"], "dimension": manifest["dimension"],
            "metric": manifest["metric"], "faiss": manifest["faiss"],
            "faiss_built": manifest["faiss_built"],
            "recall_target": manifest.get("recall", DEFAULT_RECALL),
            "search_effort": manifest.get("search_effort"),
            "measured_recall": manifest.get("measured_recall"), "bytes": sum(files.values()),
            "files": files,
            "created": manifest["created"], "encoder": encoder_setup(self.runtime),
        }
