"""The keyword index: tantivy, in a folder beside the vector file, one folder per commit.

Why tantivy: SQLite FTS5 scores and sorts every unit that matches any query word, so its cost
grows with the corpus (106 ms a query at a million units here); tantivy's block-max WAND reads
only the postings that can still reach the top k (1.2 ms; docs/benchmarks.md).

Generations: tantivy never changes a segment file once written, so the next generation starts as
hard links to the current one's files; the writer adds segments and delete files there, and the
store's commit points the manifest at the new folder, as it does for the vector file
(:mod:`semsearch.index`); the old folder goes after. A crash before the commit leaves a folder no
manifest names, which the next writer removes.

Scores: tantivy only finds candidates; :func:`semsearch.bm25.bm25` scores them with the
statistics given (a sharded index's are corpus-wide). Each query term is boosted so that
tantivy's idf becomes the given one, which leaves tantivy's score off the true one only by its
average length and its one-byte lengths (which round down), so a true score is at most
``reach`` × tantivy's. The search reads deeper until the limit-th true score beats ``reach`` ×
the last candidate's: no unit left unread can then enter the top.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.bm25 import KeywordStatistics, analyze, analyzer, bm25
from semsearch.checksum import file_sha256
from semsearch.errors import CorruptIndexError, InputError

FOLDER_PREFIX = "keywords."
TOTALS_FILE = "semsearch.json"
ANALYZER_NAME = "semsearch_en"
# A metadata field's value is indexed as one term ``key<US>value``; tantivy's terms stop at 64 KB.
FIELD_SEPARATOR = "\x1f"
MAX_FIELD_TERM = 16_000
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
WRITER_HEAP = 100_000_000
_TANTIVY_LOCKS = frozenset({".tantivy-meta.lock", ".tantivy-writer.lock"})
_SLACK = 1.0001  # tantivy scores in float32
# Filters whose unit ids a generation keeps (Lucene keeps filters' bit sets the same way):
# collecting 100k ids from tantivy takes 25 ms, a dense search inside them 1 ms.
FILTER_CACHE = 8
# What ``cast(... as text)`` makes of each top-level value (each element of a list) in the
# store's SQL filter: computed by SQLite itself, so both filters agree on every JSON type.
_FIELD_TERMS_SQL = (
    "select key, cast(value as text) from json_each(:m) where type not in ('array', 'null')"
    " union all select j.key, cast(e.value as text) from json_each(:m) j, json_each(j.value) e"
    " where j.type = 'array' and e.type != 'null'")

# Units' (or documents') analysed tokens by id, from the store, for exact scoring.
UnitTokens = Callable[[Sequence[int]], Iterable[tuple[int, Sequence[str]]]]


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text", tokenizer_name=ANALYZER_NAME, index_option="freq")
    builder.add_text_field("fields", tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("id", fast=True, indexed=True)
    builder.add_unsigned_field("tokens", fast=True)
    return builder.build()


def _tantivy_index(folder: Path, create: bool = False) -> Any:
    import tantivy

    index = tantivy.Index(_schema(), path=str(folder)) if create else tantivy.Index.open(
        str(folder))
    index.register_tokenizer(ANALYZER_NAME, analyzer())
    return index


def field_terms(metadata_json: Iterable[str]) -> list[list[str]]:
    """The filter terms of each document's metadata (JSON text)."""
    connection = sqlite3.connect(":memory:")
    try:
        return [[f"{key}{FIELD_SEPARATOR}{value}"[:MAX_FIELD_TERM]
                 for key, value in connection.execute(_FIELD_TERMS_SQL, {"m": text or "{}"})]
                for text in metadata_json]
    finally:
        connection.close()


def keyword_text(title: str, texts: Iterable[str]) -> str:
    """What a document's keyword entry says (an index with document keywords): its title and
    its units' texts (their order does not matter to BM25)."""
    return "\n\n".join([title, *texts] if title else texts)


def filter_terms(where: dict[str, str] | None) -> list[str] | None:
    """The terms a ``--where`` filter asks for; None where a value is too long to be a term
    (then only the store's SQL can answer)."""
    terms = []
    for key, value in (where or {}).items():
        if not FIELD_NAME.match(key):
            raise InputError(f"--where: invalid field name {key!r}")
        term = f"{key}{FIELD_SEPARATOR}{value}"
        if len(term) >= MAX_FIELD_TERM:
            return None
        terms.append(term)
    return terms


def folder_sha256(folder: Path) -> str:
    """One checksum over a generation's files, names and contents (lock files aside)."""
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.name not in _TANTIVY_LOCKS:
            digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _explained(explanation: dict, description: str) -> float | None:
    """A value from tantivy's explanation of a score (a tree of value/description/details)."""
    if explanation.get("description", "").startswith(description):
        return float(explanation["value"])
    for child in explanation.get("details", []):
        found = _explained(child, description)
        if found is not None:
            return found
    return None


class KeywordIndex:
    """One committed generation, for reading."""

    def __init__(self, folder: Path | None = None, units: int = 0, tokens: int = 0):
        self.folder, self.units, self.tokens = folder, units, tokens
        self._index: Any = None
        self._searcher: Any = None
        self._tantivy_totals: tuple[int, float] | None = None
        self._copy: tempfile.TemporaryDirectory | None = None  # removed with this object
        self._filtered: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._filtered_lock = threading.Lock()
        self.has_deletes = folder is not None and any(
            file.suffix == ".del" for file in folder.iterdir())

    @classmethod
    def load(cls, folder: Path | None, sha256: str | None = None,
             private_copy: bool = False) -> KeywordIndex:
        """The generation in ``folder``; with ``private_copy`` (an index on read-only media),
        read from a copy in the temporary folder, as tantivy takes a lock file to open one."""
        if folder is None:
            return cls()
        try:
            if sha256 and folder_sha256(folder) != sha256:
                raise CorruptIndexError(f"{folder}: the keyword index does not match its"
                                        " checksum; run `semsearch check --repair`")
            totals = json.loads((folder / TOTALS_FILE).read_text())
            loaded = cls(folder, int(totals["units"]), int(totals["tokens"]))
            opened = folder
            if private_copy:
                loaded._copy = tempfile.TemporaryDirectory(prefix="semsearch-keywords-")
                opened = Path(loaded._copy.name) / folder.name
                shutil.copytree(folder, opened, ignore=shutil.ignore_patterns(*_TANTIVY_LOCKS))
            loaded._index = _tantivy_index(opened)
            loaded._index.reload()
            loaded._searcher = loaded._index.searcher()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptIndexError(f"{folder}: the keyword index cannot be read ({exc}); run"
                                    " `semsearch check --repair`") from None
        if loaded._searcher.num_docs != loaded.units:
            raise CorruptIndexError(f"{folder}: the keyword index holds"
                                    f" {loaded._searcher.num_docs} units, not {loaded.units};"
                                    " run `semsearch check --repair`")
        return loaded

    def _term(self, term: str) -> Any:
        import tantivy

        return tantivy.Query.term_query(self._index.schema, "text", term)

    def statistics(self, terms: Sequence[str]) -> KeywordStatistics:
        """This generation's statistics for ``terms`` (deleted units not counted)."""
        if self._searcher is None:
            return KeywordStatistics(0, 0, tuple(0 for _ in terms))
        if self.has_deletes:  # tantivy's document frequencies count them until a merge
            counts = [self._searcher.search(self._term(term), 1, count=True).count
                      for term in terms]
        else:
            counts = [self._searcher.doc_freq("text", term) for term in terms]
        return KeywordStatistics(self.units, self.tokens, tuple(counts))

    def _totals(self, texts: UnitTokens) -> tuple[int, float]:
        """The unit count and average length tantivy scores with (deleted units still in
        them until a merge), read from its explanation of one match."""
        if self._tantivy_totals is None:
            import tantivy

            hits = self._searcher.search(tantivy.Query.all_query(), 16, count=False).hits
            addresses = [address for _, address in hits]
            found = self._searcher.fast_field_values("id", addresses)
            tokens_of = dict(texts(found))
            totals = (self.units, self.tokens / max(self.units, 1))
            for address, unit_id in zip(addresses, found, strict=True):
                tokens = tokens_of.get(unit_id, ())
                if tokens:
                    explanation = json.loads(
                        self._term(tokens[0]).explain(self._searcher, address).to_json())
                    units = _explained(explanation, "N, total number of docs")
                    average = _explained(explanation, "avgdl")
                    if units is not None and average is not None:
                        totals = (int(units), average)
                    break
            self._tantivy_totals = totals
        return self._tantivy_totals

    def search(self, terms: Sequence[str], limit: int, texts: UnitTokens,
               statistics: KeywordStatistics | None = None, filters: Sequence[str] = (),
               ids: np.ndarray | None = None) -> list[tuple[float, int]]:
        """The ``limit`` best (BM25, unit id) for ``terms``, inside every filter term and
        ``ids``; ``texts`` gives units' tokens (from the store) for scoring."""
        import tantivy

        if not terms or limit < 1 or self._searcher is None or (ids is not None and not len(ids)):
            return []
        given = statistics or self.statistics(terms)
        searcher, schema, occur = self._searcher, self._index.schema, tantivy.Occur
        tantivy_units, tantivy_length = self._totals(texts)
        should = []
        for term, weight in zip(terms, given.idf(), strict=True):
            here = searcher.doc_freq("text", term)
            if here:
                own = math.log(1.0 + (tantivy_units - here + 0.5) / (here + 0.5))
                should.append((occur.Should, tantivy.Query.boost_query(self._term(term),
                                                                       weight / own)))
        if not should:
            return []
        query = tantivy.Query.boolean_query(should)
        scope = [tantivy.Query.term_query(schema, "fields", term) for term in filters]
        if ids is not None:
            scope.append(tantivy.Query.term_set_query(schema, "id", ids.tolist()))
        if scope:
            query = tantivy.Query.boolean_query(
                [(occur.Must, query)] + [(occur.Must, tantivy.Query.const_score_query(part, 0.0))
                                         for part in scope])
        reach = max(1.0, given.average_length / tantivy_length) * _SLACK
        fetch = max(2 * limit, 20)
        while True:
            hits = searcher.search(query, fetch, count=False).hits
            found = searcher.fast_field_values("id", [address for _, address in hits])
            scored = bm25(given, terms, texts(found))
            if len(hits) < fetch or (len(scored) >= limit
                                     and scored[limit - 1][0] > reach * hits[-1][0]):
                return scored[:limit]
            fetch *= 4

    def unit_ids(self, filters: Sequence[str] = ()) -> np.ndarray:
        """The unit ids held (for ``check``), or with ``filters`` those whose documents have
        every filter term (the subset a filtered dense search ranks), in order; the last
        ``FILTER_CACHE`` filters' ids are kept (read-only), as this generation never changes."""
        key = tuple(sorted(set(filters)))
        if key:
            with self._filtered_lock:
                if key in self._filtered:
                    self._filtered.move_to_end(key)
                    return self._filtered[key]
        ids = self._collect(key)
        if key:
            ids.flags.writeable = False
            with self._filtered_lock:
                self._filtered[key] = ids
                while len(self._filtered) > FILTER_CACHE:
                    self._filtered.popitem(last=False)
        return ids

    def _collect(self, filters: Sequence[str]) -> np.ndarray:
        import tantivy

        if self._searcher is None:
            return np.zeros(0, dtype=np.int64)
        query = tantivy.Query.all_query() if not filters else tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, tantivy.Query.const_score_query(
                tantivy.Query.term_query(self._index.schema, "fields", term), 0.0))
             for term in filters])
        hits = self._searcher.search(query, max(self.units, 1), count=False,
                                     order_by_field="id", order=tantivy.Order.Asc).hits
        return np.array([unit_id for unit_id, _ in hits], dtype=np.int64)

    def tokens_of(self, ids: list[int]) -> list[int]:
        """The lengths of those of ``ids`` this generation holds."""
        import tantivy

        if self._searcher is None or not ids:
            return []
        hits = self._searcher.search(
            tantivy.Query.term_set_query(self._index.schema, "id", ids), len(ids),
            count=False).hits
        return self._searcher.fast_field_values("tokens", [address for _, address in hits])


class KeywordDraft:
    """The next generation, written while a store transaction is open: committed with it, or
    discarded with it."""

    def __init__(self, root: Path, current: KeywordIndex, generation: int):
        self.name = f"{FOLDER_PREFIX}{generation}"
        self.folder = root / self.name
        self.current = current
        self.units, self.tokens = current.units, current.tokens
        self._added: dict[int, int] = {}  # unit id → tokens, for units added by this draft
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir()
        if current.folder is not None:
            for file in current.folder.iterdir():
                if file.name not in _TANTIVY_LOCKS and file.name != TOTALS_FILE:
                    os.link(file, self.folder / file.name)
        self._index = _tantivy_index(self.folder, create=True)
        self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)

    def add(self, ids: Sequence[int], texts: Sequence[str], fields: Sequence[Sequence[str]]
            ) -> None:
        """Units ``ids`` with their ``texts`` and their documents' filter ``fields``."""
        import tantivy

        for unit_id, text, unit_fields in zip(ids, texts, fields, strict=True):
            tokens = len(analyze(text))
            document = tantivy.Document()
            document.add_unsigned("id", int(unit_id))
            document.add_unsigned("tokens", tokens)
            document.add_text("text", text)
            for term in unit_fields:
                document.add_text("fields", term)
            self._writer.add_document(document)
            self._added[int(unit_id)] = tokens
            self.units += 1
            self.tokens += tokens

    def remove(self, ids: np.ndarray) -> None:
        import tantivy

        if not len(ids):
            return
        doomed = [int(i) for i in ids]
        self._writer.delete_documents_by_query(
            tantivy.Query.term_set_query(self._index.schema, "id", doomed))
        fresh = [i for i in doomed if i in self._added]
        lengths = [self._added.pop(i) for i in fresh]
        lengths += self.current.tokens_of(sorted(set(doomed) - set(fresh)))
        self.units -= len(lengths)
        self.tokens -= sum(lengths)

    def commit(self) -> str:
        """Make the generation durable; its checksum."""
        self._writer.commit()
        self._writer.wait_merging_threads()
        (self.folder / TOTALS_FILE).write_text(
            json.dumps({"units": self.units, "tokens": self.tokens}))
        for file in self.folder.iterdir():
            if file.name not in _TANTIVY_LOCKS:
                with file.open("rb") as handle:
                    os.fsync(handle.fileno())
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return folder_sha256(self.folder)

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # a writer that failed is dropped either way
            self._writer.rollback()
        shutil.rmtree(self.folder, ignore_errors=True)
