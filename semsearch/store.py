"""The SQLite document store: documents, their units, metadata, cluster runs and the manifest.

Reads are plain SQL on a :mod:`sqlite3` connection; sqlite-utils (slow to import) is loaded only
by the first write that needs it, so a one-shot query or ``info`` never imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semsearch.errors import CorruptIndexError, InputError
from semsearch.keywords import FIELD_NAME, keyword_text
from semsearch.readers import Document
from semsearch.units import Unit

if TYPE_CHECKING:
    import sqlite_utils

FORMAT_VERSION = 1
# Salvage gives up on a damaged table after this many rowids in a row that cannot be read.
SALVAGE_GAP = 100_000
SALVAGE_COLUMNS = ("id", "source", "title", "text", "metadata", "structure")
# Added after format 1 without a new format number: a store without them gets them (empty)
# when first opened for writing, and is read as if they were empty until then.
_LATER_COLUMNS: dict[str, dict[str, str]] = {"documents": {"structure": "TEXT"},
                                             "units": {"heading": "TEXT", "page": "INTEGER"}}


def metadata_json(doc: Document) -> str:
    """The last guard on what readers normalise: NaN or Infinity stored would make every later
    JSON answer that holds it invalid."""
    try:
        return json.dumps(doc.metadata, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise InputError(f"{doc.id}: metadata holds NaN or Infinity, which JSON cannot carry;"
                         " give null or a string instead") from None
    except TypeError as exc:
        raise InputError(f"{doc.id}: metadata is not JSON ({exc})") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _quote(identifier: str) -> str:
    """A table or column name as SQL (as sqlite-utils quotes it)."""
    return '"{}"'.format(identifier.replace('"', '""'))


class Store:
    """Documents and units in SQLite (WAL); unit ids are the vector ids in FAISS."""

    def __init__(self, path: Path):
        self.path = path
        # A copy on read-only media or in a folder we may not write is opened read-only: it can
        # still be searched; writes to it fail as writes to a read-only disk.
        self.read_only = not (os.access(path.parent, os.W_OK)
                              and (not path.exists() or os.access(path, os.W_OK)))
        try:
            self.conn = self._connect()
            # As sqlite-utils sets it on the connections it wraps (self.db), for every write.
            self.conn.execute("PRAGMA recursive_triggers=on")
            if not self.read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError:  # disk full, I/O: the caller says what was being done
            raise
        except sqlite3.DatabaseError as exc:
            raise CorruptIndexError(f"{path} is not a semsearch store ({exc})") from None
        self._missing_columns = self._add_later_columns()

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The same connection wrapped by sqlite-utils, for the writes that use it (imported
        here, on first use: reads never need it)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # ---- plain SQL ---------------------------------------------------------------------------

    def _execute(self, sql: str, parameters: Sequence = ()) -> sqlite3.Cursor:
        """``conn.execute``, committing a write that opened its own transaction and rolling back
        one that failed doing so, as sqlite-utils' ``Database.execute`` does: outside a
        transaction a write is committed at once."""
        was_in_transaction = self.conn.in_transaction
        try:
            cursor = self.conn.execute(sql, parameters)
        except Exception:
            if not was_in_transaction and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        if not was_in_transaction and self.conn.in_transaction and cursor.description is None:
            self.conn.execute("COMMIT")
        return cursor

    def _table_exists(self, name: str) -> bool:
        return self.conn.execute("select 1 from sqlite_master where type = 'table' and name = ?",
                                 [name]).fetchone() is not None

    def _columns(self, table: str) -> list[str]:
        return [row[1] for row in self.conn.execute(f"pragma table_info({_quote(table)})")]

    def _rows(self, table: str, where: str | None = None, parameters: Sequence = (),
              order_by: str | None = None, select: str = "*") -> list[dict[str, Any]]:
        """Rows of ``table`` as dicts (none when there is no such table yet)."""
        if not self._table_exists(table):
            return []
        sql = f"select {select} from {_quote(table)}"
        if where is not None:
            sql += f" where {where}"
        if order_by is not None:
            sql += f" order by {order_by}"
        cursor = self.conn.execute(sql, parameters)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor]

    # ---- transactions (as sqlite-utils' ``Database`` has them, without importing it) -----------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction around the block; inside another one, a savepoint."""
        if self.conn.in_transaction:
            savepoint = f"semsearch_{secrets.token_hex(16)}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:  # an error may have ended the whole transaction
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            else:
                self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
        else:
            self.conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.rollback()
                raise
            else:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.rollback()
                    raise

    def begin(self) -> None:
        """Open a transaction (an error if one is open), ended by :meth:`commit` or
        :meth:`rollback`."""
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _add_later_columns(self) -> set[str]:
        """Give a store from an earlier version the columns added since; the names of those
        still missing (a read-only store), which reads take as empty."""
        missing: set[str] = set()
        for table, columns in _LATER_COLUMNS.items():
            try:
                if not self._table_exists(table):
                    continue
                have = set(self._columns(table))
            except sqlite3.DatabaseError:  # damaged: `check` says so; reads take it as empty
                missing.update(f"{table}.{name}" for name in columns)
                continue
            for name, kind in columns.items():
                if name in have:
                    continue
                try:
                    if self.read_only:
                        raise sqlite3.OperationalError("read-only")
                    self._execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {kind}")
                except sqlite3.DatabaseError:
                    missing.add(f"{table}.{name}")
        return missing

    def has_column(self, table: str, name: str) -> bool:
        return f"{table}.{name}" not in self._missing_columns

    def _column(self, table_alias: str, table: str, name: str) -> str:
        """``alias.name``, or null where the store has no such column yet."""
        return f"{table_alias}.{name}" if self.has_column(table, name) else "null"

    def _connect(self) -> sqlite3.Connection:
        # Searches read unit texts on a worker thread while the encoder runs.
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        uri = Path(os.path.abspath(self.path)).as_uri()
        try:  # read-only, still seeing a writer that has the folder open (its -shm file)
            connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30,
                                         check_same_thread=False)
            connection.execute("select count(*) from sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError:  # no -shm file and no way to make one: nobody writes
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)

    def close(self) -> None:
        """Close the connection (the last one out folds the write-ahead log into the file)."""
        self.conn.close()

    def create_schema(self, manifest: dict) -> None:
        with self.db.atomic():
            self.db.table("documents").create(
                {"id": str, "source": str, "title": str, "text": str, "metadata": str,
                 "content_hash": str, "created": str, "updated": str, "structure": str},
                pk="id",
            )
            self.db.table("units").create(
                {"id": int, "document_id": str, "ordinal": int, "text": str,
                 "char_start": int, "char_end": int, "heading": str, "page": int},
                pk="id", foreign_keys=[("document_id", "documents", "id")],
            )
            self.db.table("units").create_index(["document_id", "ordinal"], unique=True)
            self._create_unit_extras()
            self.db.table("manifest").create({"key": str, "value": str}, pk="key")
            self.set_manifest({"format_version": FORMAT_VERSION, "created": _now(),
                               "next_unit_id": 0, **manifest})

    # ---- manifest ------------------------------------------------------------------------

    def manifest(self) -> dict:
        try:
            rows = self.conn.execute("select key, value from manifest").fetchall()
        except sqlite3.DatabaseError as exc:
            raise CorruptIndexError(f"{self.path} is not a semsearch store ({exc})") from None
        return {key: json.loads(value) for key, value in rows}

    def set_manifest(self, values: dict) -> None:
        self.db.table("manifest").upsert_all(
            [{"key": key, "value": json.dumps(value)} for key, value in values.items()], pk="key"
        )

    # ---- writes (callers wrap them in ``db.atomic()``) --------------------------------------

    def content_hashes(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.conn.execute(
                f"select id, content_hash from documents where id in ({marks})", chunk
            ).fetchall())
        return found

    def add_documents(
        self, documents: list[Document], units: list[list[Unit]], unit_ids: list[int]
    ) -> None:
        """Insert documents and their units, which take ``unit_ids`` in order."""
        now = _now()
        self.db.table("documents").insert_all(
            ({"id": doc.id, "source": doc.source, "title": doc.title, "text": doc.text,
              "metadata": metadata_json(doc), "structure": doc.structure,
              "content_hash": doc.content_hash, "created": now, "updated": now}
             for doc in documents),
            batch_size=200,
        )
        next_id = iter(unit_ids)
        rows = [{"id": next(next_id), "document_id": doc.id, "ordinal": ordinal,
                 "text": unit.text, "char_start": unit.start, "char_end": unit.end,
                 "heading": unit.heading or None, "page": unit.page}
                for doc, doc_units in zip(documents, units, strict=True)
                for ordinal, unit in enumerate(doc_units)]
        self.db.table("units").insert_all(rows, batch_size=1000)

    def _create_unit_extras(self) -> None:
        """Each multi-sentence unit's sentence vectors (float16 rows, one blob) and, in an index
        with document keywords, each document's analysed keyword tokens (under its first unit:
        scoring a candidate then needs no analysis): in the store, so they are written and
        deleted in the transaction of their unit."""
        self._execute("create table if not exists sentence_vectors (unit_id integer primary key"
                      " references units(id), vectors blob not null)")
        self._execute("create table if not exists document_terms (unit_id integer primary key"
                      " references units(id), terms text not null)")

    def add_document_terms(self, rows: list[tuple[int, list[str]]]) -> None:
        """Each first unit id with its document's analysed keyword tokens."""
        if rows:
            self._create_unit_extras()
            self.conn.executemany("insert into document_terms (unit_id, terms) values (?, ?)",
                                  [(int(unit_id), " ".join(tokens)) for unit_id, tokens in rows])

    def add_sentence_vectors(self, rows: list[tuple[int, np.ndarray]]) -> None:
        if not rows:
            return
        self._create_unit_extras()  # a store made before they were kept
        self.conn.executemany("insert into sentence_vectors (unit_id, vectors) values (?, ?)",
                              [(int(unit_id), np.asarray(vectors, np.float16).tobytes())
                               for unit_id, vectors in rows])

    def delete_documents(self, ids: list[str]) -> np.ndarray:
        """Delete documents with their units (the FTS triggers follow); return the unit ids."""
        removed = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            removed += [row[0] for row in self.conn.execute(
                f"select id from units where document_id in ({marks})", chunk)]
            for table in ("sentence_vectors", "document_terms"):
                if self._table_exists(table):
                    self._execute(f"delete from {table} where unit_id in (select id from"
                                  f" units where document_id in ({marks}))", chunk)
            self._execute(f"delete from units where document_id in ({marks})", chunk)
            if self._table_exists("cluster_assignments"):  # a run no longer lists them
                self._execute(
                    f"delete from cluster_assignments where document_id in ({marks})", chunk)
            self._execute(f"delete from documents where id in ({marks})", chunk)
        return np.array(removed, dtype=np.int64)

    # ---- reads ---------------------------------------------------------------------------

    def count(self, table: str) -> int:
        return self.conn.execute(f"select count(*) from [{table}]").fetchone()[0]

    def unit_count(self) -> int:
        """The units as of the last commit, from the manifest: ``count(*)`` reads the whole
        table (6 ms at a million units, on every keyword query)."""
        row = self.conn.execute("select value from manifest where key = 'units'").fetchone()
        return int(json.loads(row[0])) if row else self.count("units")

    def readable_rows(self, table: str, columns: Iterable[str]) -> Iterator[tuple]:
        """The rows of a damaged table that can still be read, in rowid order: scanned in
        batches, and one rowid at a time past a page that cannot be read."""
        select = f"select rowid, {', '.join(columns)} from [{table}] where rowid"
        last, misses, stepping = 0, 0, 0
        while misses < SALVAGE_GAP:
            if not stepping:
                try:
                    rows = self.conn.execute(f"{select} > ? order by rowid limit 256",
                                             [last]).fetchall()
                except sqlite3.DatabaseError:
                    stepping = 256  # rowids to take one by one before scanning again
                    continue
                if not rows:
                    return
                yield from (row[1:] for row in rows)
                last, misses = rows[-1][0], 0
                continue
            last, stepping = last + 1, stepping - 1
            try:
                row = self.conn.execute(f"{select} = ?", [last]).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None:
                misses += 1
            else:
                misses = 0
                yield row[1:]

    def unit_ids(self) -> np.ndarray:
        return np.array([row[0] for row in self.conn.execute("select id from units")],
                        dtype=np.int64)

    def unit_texts(self, ids: Iterable[int]) -> Iterator[tuple[int, str]]:
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.conn.execute(
                f"select id, text from units where id in ({marks}) order by id", chunk)

    def keyword_rows(self, by_document: bool = False) -> Iterator[tuple[int, str, str]]:
        """(unit id, text, its document's metadata as JSON) of every unit, in id order: what
        the keyword index is rebuilt from; ``by_document``: of every document, under its first
        unit's id (:func:`~semsearch.keywords.keyword_text`)."""
        if not by_document:
            yield from self.conn.execute(
                "select u.id, u.text, d.metadata from units u join documents d"
                " on d.id = u.document_id order by u.id")
            return
        for unit_id, title, texts, metadata in self.conn.execute(
                "select f.id, d.title, group_concat(u.text, char(10) || char(10)), d.metadata"
                " from units f join documents d on d.id = f.document_id join units u"
                " on u.document_id = f.document_id where f.ordinal = 0 group by f.id"
                " order by f.id"):
            yield unit_id, keyword_text(title or "", [texts]), metadata

    def document_terms(self, ids: Iterable[int]) -> Iterator[tuple[int, list[str]]]:
        """The analysed keyword tokens of the document of each first-unit id."""
        ids = [int(i) for i in ids]
        if not self._table_exists("document_terms"):
            return
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for unit_id, terms in self.conn.execute(
                    "select unit_id, terms from document_terms where unit_id in"
                    f" ({','.join('?' * len(chunk))}) order by unit_id", chunk):
                yield unit_id, terms.split(" ") if terms else []

    def first_unit_ids(self, where: dict[str, str] | None = None,
                       cluster: tuple[int, int] | None = None) -> np.ndarray:
        """The first unit of each document with a unit inside ``where`` and ``cluster`` (the
        ids a keyword index by document holds), in id order."""
        clause, params = self._scope_sql(where, cluster)
        inside = "" if clause == "1" else (
            " and f.document_id in (select u.document_id from units u join documents d"
            f" on d.id = u.document_id where {clause})")
        return np.array([row[0] for row in self.conn.execute(
            f"select f.id from units f where f.ordinal = 0{inside} order by f.id", params)],
            dtype=np.int64)

    def has_sentence_vectors(self) -> bool:
        """Whether the last commit left any sentence vectors (from the manifest: cheap)."""
        row = self.conn.execute(
            "select value from manifest where key = 'sentences'").fetchone()
        return bool(row and json.loads(row[0]))

    def sentence_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        """The sentence vectors (float16 rows) of those ``ids`` that have them."""
        if not ids or not self._table_exists("sentence_vectors"):
            return {}
        dimension = self._dimension
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            for unit_id, blob in self.conn.execute(
                    "select unit_id, vectors from sentence_vectors where unit_id in"
                    f" ({','.join('?' * len(chunk))})", chunk):
                found[unit_id] = np.frombuffer(blob, np.float16).reshape(-1, dimension)
        return found

    @cached_property
    def _dimension(self) -> int:
        return int(self.manifest()["dimension"])

    def sentence_vector_count(self) -> int:
        if not self._table_exists("sentence_vectors"):
            return 0
        total = self.conn.execute("select sum(length(vectors)) from sentence_vectors").fetchone()
        return (total[0] or 0) // (2 * self._dimension)  # float16

    def units_with_titles(self, ids: Iterable[int]) -> Iterator[tuple[int, Unit, str]]:
        """(id, unit, its document's title) of each unit id, in id order: what is needed to
        embed it again as it was (``index.embedded_text``)."""
        ids = [int(i) for i in ids]
        heading = self._column("u", "units", "heading")
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for unit_id, text, unit_start, unit_end, unit_heading, title in self.conn.execute(
                    f"select u.id, u.text, u.char_start, u.char_end, {heading}, d.title"
                    " from units u join documents d on d.id = u.document_id"
                    f" where u.id in ({marks}) order by u.id", chunk):
                yield unit_id, Unit(unit_start, unit_end, text, unit_heading or ""), title or ""

    def document_ids_for_sources(self, sources: list[str], ids_only: bool = False) -> list[str]:
        """The documents with these ids or (unless ``ids_only``) read from these sources."""
        marks = ",".join("?" * len(sources))
        by_source = "" if ids_only else f"source in ({marks}) or "
        return [row[0] for row in self.conn.execute(
            f"select id from documents where {by_source}id in ({marks})",
            ([] if ids_only else sources) + sources)]

    def filtered_unit_ids(self, where: dict[str, str] | None = None,
                          cluster: tuple[int, int] | None = None) -> np.ndarray:
        """Units whose document metadata matches every ``key=value`` (compared as text) and,
        with ``cluster`` = (run, cluster), that belong to that cluster; in id order."""
        clause, params = self._scope_sql(where, cluster)
        sql = (f"select u.id from units u join documents d on d.id = u.document_id where {clause}"
               " order by u.id")
        return np.array([row[0] for row in self.conn.execute(sql, params)], dtype=np.int64)

    def document_ids(self, ids: list[int]) -> dict[int, str]:
        """The document of each unit id."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            found.update(self.conn.execute(
                f"select id, document_id from units where id in ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return found

    def hits(self, ids: list[int]) -> dict[int, dict]:
        """Unit rows joined with their document, keyed by unit id."""
        marks = ",".join("?" * len(ids))
        cursor = self.conn.execute(
            "select u.id, u.document_id, u.ordinal, u.text, u.char_start, u.char_end,"
            f" {self._column('u', 'units', 'heading')} as heading,"
            f" {self._column('u', 'units', 'page')} as page,"
            " d.title, d.source, d.metadata from units u join documents d on d.id = u.document_id"
            f" where u.id in ({marks})", [int(i) for i in ids])
        columns = [c[0] for c in cursor.description]
        rows = {}
        for values in cursor:
            row = dict(zip(columns, values, strict=True))
            row["metadata"] = json.loads(row["metadata"] or "{}")
            rows[row.pop("id")] = row
        return rows

    def document(self, document_id: str) -> dict | None:
        """A document with its units in order, or None."""
        found = self._rows("documents", "id = ?", [document_id])
        if not found:
            return None
        document = {**found[0], "metadata": json.loads(found[0]["metadata"] or "{}")}
        document["units"] = self._rows(
            "units", "document_id = ?", [document_id], order_by="ordinal",
            select="id, ordinal, text, char_start, char_end, "
                   f"{self._column('units', 'units', 'heading')} as heading, "
                   f"{self._column('units', 'units', 'page')} as page")
        return document

    def document_titles(self, offset: int, limit: int) -> list[tuple[str, str]]:
        """``(id, title)`` of ``limit`` documents from the ``offset``-th, in the order stored."""
        return [tuple(row) for row in self._execute(
            "select id, title from documents order by rowid limit ? offset ?", [limit, offset])]

    def neighbours(self, document_id: str, ordinal: int, radius: int) -> list[tuple[int, str]]:
        return self.conn.execute(
            "select ordinal, text from units where document_id = ? and ordinal between ? and ?"
            " and ordinal != ? order by ordinal",
            [document_id, ordinal - radius, ordinal + radius, ordinal]).fetchall()

    def drop_fts(self) -> None:
        """Drop the FTS5 table an index made before the keyword index kept (and its triggers)."""
        for trigger in ("units_ai", "units_ad", "units_au"):  # as sqlite-utils names them
            self._execute(f"drop trigger if exists {trigger}")
        self._execute("drop table if exists units_fts")

    def vacuum(self) -> None:
        """Rewrite the database without free pages and empty the write-ahead log (no open
        transaction allowed)."""
        self._execute("vacuum")
        self._execute("pragma wal_checkpoint(truncate)")

    def _scope_sql(self, where: dict[str, str] | None,
                   cluster: tuple[int, int] | None) -> tuple[str, list[str | int]]:
        """SQL condition on units ``u`` and their documents ``d``."""
        clauses = ["1"]
        params: list[str | int] = []
        for key, value in (where or {}).items():
            if not FIELD_NAME.match(key):
                raise InputError(f"--where: invalid field name {key!r}")
            # A list (tags: [NLP, BERT]) matches when it holds the value; a scalar when it is it.
            clauses.append(
                "(case json_type(d.metadata, ?) when 'array' then exists(select 1 from"
                " json_each(d.metadata, ?) where cast(value as text) = ?)"
                " else cast(json_extract(d.metadata, ?) as text) = ? end)")
            path = f'$."{key}"'
            params += [path, path, value, path, value]
        if cluster is not None:
            self.cluster_run(cluster[0])  # a clear error for an unknown run
            clauses.append(
                "(u.id in (select unit_id from cluster_assignments where run = ? and cluster = ?)"
                " or u.document_id in (select document_id from cluster_assignments"
                " where run = ? and cluster = ? and unit_id is null))")
            params += [*cluster, *cluster]
        return " and ".join(clauses), params

    # ---- cluster runs ----------------------------------------------------------------------

    def save_cluster_run(self, run: dict, clusters: list[dict],
                         assignments: Iterable[dict]) -> int:
        """Store one clustering (its parameters, its clusters, every item's cluster)."""
        self.db.table("cluster_runs").create(
            {"id": int, "method": str, "target": str, "parameters": str, "clusters": int,
             "outliers": int, "items": int, "created": str}, pk="id", if_not_exists=True)
        self.db.table("clusters").create(
            {"run": int, "cluster": int, "size": int, "keywords": str, "representatives": str},
            pk=("run", "cluster"), if_not_exists=True)
        self.db.table("cluster_assignments").create(
            {"run": int, "unit_id": int, "document_id": str, "cluster": int, "distance": float},
            if_not_exists=True)
        self.db.table("cluster_assignments").create_index(["run", "cluster"], if_not_exists=True)
        run_id = self.db.table("cluster_runs").insert(
            {**run, "parameters": json.dumps(run["parameters"]), "created": _now()}).last_pk
        assert isinstance(run_id, int), "an insert into a table keyed by integer id"
        self.db.table("clusters").insert_all(
            {**c, "run": run_id, "keywords": json.dumps(c["keywords"]),
             "representatives": json.dumps(c["representatives"])} for c in clusters)
        self.db.table("cluster_assignments").insert_all(
            ({**a, "run": run_id} for a in assignments), batch_size=5000)
        return run_id

    def cluster_runs(self) -> list[dict]:
        return [{**row, "parameters": json.loads(row["parameters"])}
                for row in self._rows("cluster_runs", order_by="id")]

    def cluster_run(self, run_id: int | None = None) -> dict:
        """One stored run (the latest when ``run_id`` is None) with its clusters."""
        runs = {run["id"]: run for run in self.cluster_runs()}
        if not runs:
            raise InputError("this index has no cluster runs yet; run `semsearch cluster`")
        if run_id is None:
            run_id = max(runs)
        if run_id not in runs:
            raise InputError(f"no cluster run {run_id}; runs: {', '.join(map(str, runs))}")
        clusters = [{**row, "keywords": json.loads(row["keywords"]),
                     "representatives": json.loads(row["representatives"])}
                    for row in self._rows("clusters", "run = ?", [run_id], order_by="cluster")]
        return {**runs[run_id], "cluster_list": clusters}

    def save_cluster_map(self, run_id: int, png: bytes, projection: str) -> None:
        """Keep a run's 2-D map inside the index (the search page shows it)."""
        self.db.table("cluster_maps").upsert(
            {"run": run_id, "projection": projection, "png": png, "created": _now()}, pk="run")

    def cluster_map(self, run_id: int) -> bytes | None:
        if not self._table_exists("cluster_maps"):
            return None
        row = self.conn.execute("select png from cluster_maps where run = ?", [run_id]).fetchone()
        return row[0] if row else None

    def cluster_assignments(self, run_id: int) -> list[dict]:
        return self._rows("cluster_assignments", "run = ?", [run_id], order_by="rowid")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

