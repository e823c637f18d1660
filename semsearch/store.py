"""The SQLite document store: documents, their units, a full-text index and the manifest."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

from semsearch.bm25 import FullTextStatistics, KeywordStatistics, bm25, keyword_query
from semsearch.errors import CorruptIndexError, InputError
from semsearch.readers import Document
from semsearch.units import Unit

FORMAT_VERSION = 1
# Chosen on SciFact train queries (benchmarks/hybrid_tuning.py): stemming beats plain unicode61.
FTS_TOKENIZER = "porter"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
# Salvage gives up on a damaged table after this many rowids in a row that cannot be read.
SALVAGE_GAP = 100_000
SALVAGE_COLUMNS = ("id", "source", "title", "text", "metadata", "structure")
# Added after format 1 without a new format number: a store without them gets them (empty)
# when first opened for writing, and is read as if they were empty until then.
_LATER_COLUMNS: dict[str, dict[str, type]] = {"documents": {"structure": str},
                                              "units": {"heading": str, "page": int}}


def _metadata_json(doc: Document) -> str:
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


class Store:
    """Documents and units in SQLite (WAL); unit ids are the vector ids in FAISS."""

    def __init__(self, path: Path):
        self.path = path
        # A copy on read-only media or in a folder we may not write is opened read-only: it can
        # still be searched; writes to it fail as writes to a read-only disk.
        self.read_only = not (os.access(path.parent, os.W_OK)
                              and (not path.exists() or os.access(path, os.W_OK)))
        try:
            self.db = sqlite_utils.Database(self._connect())
            if not self.read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError:  # disk full, I/O: the caller says what was being done
            raise
        except sqlite3.DatabaseError as exc:
            raise CorruptIndexError(f"{path} is not a semsearch store ({exc})") from None
        self._keyword_statistics = FullTextStatistics(self.db.conn, "units_fts", FTS_TOKENIZER)
        self._missing_columns = self._add_later_columns()

    def _add_later_columns(self) -> set[str]:
        """Give a store from an earlier version the columns added since; the names of those
        still missing (a read-only store), which reads take as empty."""
        missing: set[str] = set()
        for table, columns in _LATER_COLUMNS.items():
            try:
                if not self.db[table].exists():
                    continue
                have = {column.name for column in self.db[table].columns}
            except sqlite3.DatabaseError:  # damaged: `check` says so; reads take it as empty
                missing.update(f"{table}.{name}" for name in columns)
                continue
            for name, kind in columns.items():
                if name in have:
                    continue
                try:
                    if self.read_only:
                        raise sqlite3.OperationalError("read-only")
                    self.db.table(table).add_column(name, kind)
                except sqlite3.DatabaseError:
                    missing.add(f"{table}.{name}")
        return missing

    def has_column(self, table: str, name: str) -> bool:
        return f"{table}.{name}" not in self._missing_columns

    def _column(self, table_alias: str, table: str, name: str) -> str:
        """``alias.name``, or null where the store has no such column yet."""
        return f"{table_alias}.{name}" if self.has_column(table, name) else "null"

    def _connect(self) -> sqlite3.Connection:
        # Searches read the full-text index on a worker thread while the encoder runs.
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
        self.db.conn.close()

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
            self.db.table("units").enable_fts(["text"], tokenize=FTS_TOKENIZER,
                                              create_triggers=True)
            self.db.table("manifest").create({"key": str, "value": str}, pk="key")
            self.set_manifest({"format_version": FORMAT_VERSION, "created": _now(),
                               "next_unit_id": 0, **manifest})

    # ---- manifest ------------------------------------------------------------------------

    def manifest(self) -> dict:
        try:
            rows = self.db.execute("select key, value from manifest").fetchall()
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
            found.update(self.db.execute(
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
              "metadata": _metadata_json(doc), "structure": doc.structure,
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

    def delete_documents(self, ids: list[str]) -> np.ndarray:
        """Delete documents with their units (the FTS triggers follow); return the unit ids."""
        removed = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            removed += [row[0] for row in self.db.execute(
                f"select id from units where document_id in ({marks})", chunk)]
            self.db.execute(f"delete from units where document_id in ({marks})", chunk)
            if self.db["cluster_assignments"].exists():  # a run no longer lists them
                self.db.execute(
                    f"delete from cluster_assignments where document_id in ({marks})", chunk)
            self.db.execute(f"delete from documents where id in ({marks})", chunk)
        return np.array(removed, dtype=np.int64)

    # ---- reads ---------------------------------------------------------------------------

    def count(self, table: str) -> int:
        return self.db.execute(f"select count(*) from [{table}]").fetchone()[0]

    def readable_rows(self, table: str, columns: Iterable[str]) -> Iterator[tuple]:
        """The rows of a damaged table that can still be read, in rowid order: scanned in
        batches, and one rowid at a time past a page that cannot be read."""
        select = f"select rowid, {', '.join(columns)} from [{table}] where rowid"
        last, misses, stepping = 0, 0, 0
        while misses < SALVAGE_GAP:
            if not stepping:
                try:
                    rows = self.db.execute(f"{select} > ? order by rowid limit 256",
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
                row = self.db.execute(f"{select} = ?", [last]).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None:
                misses += 1
            else:
                misses = 0
                yield row[1:]

    def unit_ids(self) -> np.ndarray:
        return np.array([row[0] for row in self.db.execute("select id from units")], dtype=np.int64)

    def unit_texts(self, ids: Iterable[int]) -> Iterator[tuple[int, str]]:
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(
                f"select id, text from units where id in ({marks}) order by id", chunk)

    def units_with_titles(self, ids: Iterable[int]) -> Iterator[tuple[int, Unit, str]]:
        """(id, unit, its document's title) of each unit id, in id order: what is needed to
        embed it again as it was (``index.embedded_text``)."""
        ids = [int(i) for i in ids]
        heading = self._column("u", "units", "heading")
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for unit_id, text, unit_start, unit_end, unit_heading, title in self.db.execute(
                    f"select u.id, u.text, u.char_start, u.char_end, {heading}, d.title"
                    " from units u join documents d on d.id = u.document_id"
                    f" where u.id in ({marks}) order by u.id", chunk):
                yield unit_id, Unit(unit_start, unit_end, text, unit_heading or ""), title or ""

    def document_ids_for_sources(self, sources: list[str], ids_only: bool = False) -> list[str]:
        """The documents with these ids or (unless ``ids_only``) read from these sources."""
        marks = ",".join("?" * len(sources))
        by_source = "" if ids_only else f"source in ({marks}) or "
        return [row[0] for row in self.db.execute(
            f"select id from documents where {by_source}id in ({marks})",
            ([] if ids_only else sources) + sources)]

    def filtered_unit_ids(self, where: dict[str, str] | None = None,
                          cluster: tuple[int, int] | None = None) -> np.ndarray:
        """Units whose document metadata matches every ``key=value`` (compared as text) and,
        with ``cluster`` = (run, cluster), that belong to that cluster."""
        clause, params = self._scope_sql(where, cluster)
        sql = f"select u.id from units u join documents d on d.id = u.document_id where {clause}"
        return np.array([row[0] for row in self.db.execute(sql, params)], dtype=np.int64)

    def keyword_search(
        self, text: str, limit: int, *, where: dict[str, str] | None = None,
        cluster: tuple[int, int] | None = None, drop_stop_words: bool = True,
    ) -> list[tuple[float, int]]:
        """BM25 (higher is better) and unit id of the best keyword matches for ``text``, inside
        the ``where`` filter and ``cluster``."""
        query = keyword_query(text, drop_stop_words)
        if not query or limit < 1:
            return []
        sql = "select units_fts.rowid, -bm25(units_fts) from units_fts"
        clauses = ["units_fts match ?"]
        params: list[str | int] = [query]
        if where or cluster:
            sql += (" join units u on u.id = units_fts.rowid"
                    " join documents d on d.id = u.document_id")
            clause, scope_params = self._scope_sql(where, cluster)
            clauses.append(clause)
            params += scope_params
        # Ties go to the lower unit id, as in dense search (so shards merge exactly).
        sql += f" where {' and '.join(clauses)} order by rank, units_fts.rowid limit ?"
        return [(score, unit_id) for unit_id, score in self.db.execute(sql, [*params, limit])]

    # ---- BM25 with statistics from elsewhere (a sharded index's other shards) ----------------

    def keyword_statistics(self, text: str) -> KeywordStatistics:
        """(rows, tokens, rows holding each phrase) of ``text``'s keyword query here."""
        return self._keyword_statistics.of(text)

    def keyword_search_with(
        self, text: str, limit: int, statistics: KeywordStatistics, *,
        where: dict[str, str] | None = None, cluster: tuple[int, int] | None = None,
    ) -> list[tuple[float, int]]:
        """:meth:`keyword_search` scored with corpus-wide ``statistics`` (summed
        :meth:`keyword_statistics` of every shard), as FTS5's bm25() would score it."""
        frequencies = self._keyword_statistics.phrase_frequencies(text)
        candidates = set().union(*frequencies)
        if where or cluster:
            candidates &= set(self.filtered_unit_ids(where, cluster).tolist())
        if not candidates or limit < 1:
            return []
        sizes = self._keyword_statistics.sizes(sorted(candidates))
        return bm25(statistics, frequencies, sizes)[:limit]

    def document_ids(self, ids: list[int]) -> dict[int, str]:
        """The document of each unit id."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            found.update(self.db.execute(
                f"select id, document_id from units where id in ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return found

    def hits(self, ids: list[int]) -> dict[int, dict]:
        """Unit rows joined with their document, keyed by unit id."""
        marks = ",".join("?" * len(ids))
        cursor = self.db.execute(
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
        found = list(self.db["documents"].rows_where("id = ?", [document_id]))
        if not found:
            return None
        document = {**found[0], "metadata": json.loads(found[0]["metadata"] or "{}")}
        document["units"] = list(self.db["units"].rows_where(
            "document_id = ?", [document_id], order_by="ordinal",
            select="id, ordinal, text, char_start, char_end, "
                   f"{self._column('units', 'units', 'heading')} as heading, "
                   f"{self._column('units', 'units', 'page')} as page"))
        return document

    def neighbours(self, document_id: str, ordinal: int, radius: int) -> list[tuple[int, str]]:
        return self.db.execute(
            "select ordinal, text from units where document_id = ? and ordinal between ? and ?"
            " and ordinal != ? order by ordinal",
            [document_id, ordinal - radius, ordinal + radius, ordinal]).fetchall()

    def fts_ok(self) -> bool | None:
        """Whether the full-text index agrees with the units; None where it cannot be checked
        (FTS5's check is an INSERT, which a read-only store refuses)."""
        if self.read_only:
            return None
        try:
            self.db.execute("insert into units_fts(units_fts) values('integrity-check')")
            return True
        except sqlite3.DatabaseError:
            return False

    def optimize_fts(self) -> None:
        """Merge the full-text index's segments (drops what deleted rows left behind)."""
        self.db.execute("insert into units_fts(units_fts) values('optimize')")

    def vacuum(self) -> None:
        """Rewrite the database without free pages and empty the write-ahead log (no open
        transaction allowed)."""
        self.db.execute("vacuum")
        self.db.execute("pragma wal_checkpoint(truncate)")

    def rebuild_fts(self, tokenizer: str | None = None) -> None:
        """Rebuild the full-text index from the units; with ``tokenizer``, recreate it so."""
        if tokenizer is None:
            self.db.execute("insert into units_fts(units_fts) values('rebuild')")
        else:
            self.db.table("units").enable_fts(["text"], tokenize=tokenizer, create_triggers=True,
                                        replace=True)

    def _scope_sql(self, where: dict[str, str] | None,
                   cluster: tuple[int, int] | None) -> tuple[str, list[str | int]]:
        """SQL condition on units ``u`` and their documents ``d``."""
        clauses = ["1"]
        params: list[str | int] = []
        for key, value in (where or {}).items():
            if not _FIELD_NAME.match(key):
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
        if not self.db["cluster_runs"].exists():
            return []
        return [{**row, "parameters": json.loads(row["parameters"])}
                for row in self.db["cluster_runs"].rows_where(order_by="id")]

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
                    for row in self.db["clusters"].rows_where(
                        "run = ?", [run_id], order_by="cluster")]
        return {**runs[run_id], "cluster_list": clusters}

    def save_cluster_map(self, run_id: int, png: bytes, projection: str) -> None:
        """Keep a run's 2-D map inside the index (the search page shows it)."""
        self.db.table("cluster_maps").upsert(
            {"run": run_id, "projection": projection, "png": png, "created": _now()}, pk="run")

    def cluster_map(self, run_id: int) -> bytes | None:
        if not self.db["cluster_maps"].exists():
            return None
        row = self.db.execute("select png from cluster_maps where run = ?", [run_id]).fetchone()
        return row[0] if row else None

    def cluster_assignments(self, run_id: int) -> list[dict]:
        return list(self.db["cluster_assignments"].rows_where(
            "run = ?", [run_id], order_by="rowid"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

