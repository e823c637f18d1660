"""Keyword search over FTS5: user text as a query that is only ever words, and BM25 scored
with statistics from elsewhere.

FTS5's bm25() only knows its own table's row count, token count and phrase frequencies, so a
shard alone would rank with its own statistics. FullTextStatistics reads those numbers from
FTS5's own tables and :func:`bm25` scores with them summed over shards, reproducing bm25() bit
for bit (same formula, same operation order, same phrases).
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Iterator

from semsearch.stopwords import ENGLISH_STOP_WORDS

# Enough words for any real query; bounds the cost of pasting a whole page into the box.
MAX_KEYWORD_TERMS = 64
_WORD = re.compile(r"\w+")
_PHRASE = re.compile(r'"([^"]*)"')
_K1, _B = 1.2, 0.75  # FTS5's bm25() defaults

# (rows, tokens, rows holding each phrase of the query), as FTS5 counts them.
KeywordStatistics = tuple[int, int, list[int]]


def keyword_query(text: str, drop_stop_words: bool = True) -> str:
    """User text as an FTS5 query that can only mean "any of these words".

    Every word is quoted, so FTS5 operators (AND, OR, NOT, NEAR, ``*``, ``^``, ``:``, parentheses,
    quotes) in the text are plain words or dropped punctuation, never syntax. English stop words
    are dropped unless nothing else is left: they add next to nothing to BM25 but make nearly
    every unit a match, which makes the query several times slower. Empty when the text has no
    words (emoji, punctuation only).
    """
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    if drop_stop_words:
        words = [word for word in words if word not in ENGLISH_STOP_WORDS] or words
    return " OR ".join(f'"{word}"' for word in words[:MAX_KEYWORD_TERMS])


def bm25(statistics: KeywordStatistics, frequencies: list[dict[int, int]],
         sizes: Iterable[tuple[int, int]]) -> list[tuple[float, int]]:
    """(score, unit id) of each unit of ``sizes`` (unit id, length in tokens), best first and
    ties to the lower unit id (as in dense search, so shards merge exactly), scored as bm25()
    would with corpus-wide ``statistics`` and this table's phrase ``frequencies``."""
    rows, tokens, hits = statistics
    idf = [math.log((rows - n + 0.5) / (n + 0.5)) for n in hits]
    idf = [value if value > 0.0 else 1e-6 for value in idf]
    average_length = float(tokens) / float(rows)
    scored = []
    for unit_id, size in sizes:
        length = float(size)
        score = 0.0
        for weight, found in zip(idf, frequencies, strict=True):
            tf = float(found.get(unit_id, 0))
            score += weight * ((tf * (_K1 + 1.0))
                               / (tf + _K1 * (1 - _B + _B * length / average_length)))
        scored.append((score, unit_id))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return scored


class FullTextStatistics:
    """What bm25() knows about one FTS5 table, read from FTS5's own tables: its totals, each
    row's length and each query phrase's occurrences. ``tokenizer`` must be the table's, so a
    query's phrases split into the same terms."""

    def __init__(self, connection: sqlite3.Connection, table: str, tokenizer: str) -> None:
        self.connection = connection
        self.table = table
        self.tokenizer = tokenizer
        self._last_frequencies: tuple = (None, None)

    def of(self, text: str) -> KeywordStatistics:
        """(rows, tokens, rows holding each phrase) of ``text``'s keyword query here."""
        rows, tokens = self._totals()
        return rows, tokens, [len(found) for found in self.phrase_frequencies(text)]

    def phrase_frequencies(self, text: str) -> list[dict[int, int]]:
        """For each phrase of ``text``'s keyword query: unit id → occurrences of the phrase.
        A sharded search asks twice (statistics, then scores): the second time is free while
        nothing was committed in between."""
        def state() -> tuple:  # taken after reading: the reading itself writes to temp tables
            return (text, self.connection.execute("pragma data_version").fetchone()[0],
                    self.connection.total_changes)

        if self._last_frequencies[0] != state():
            frequencies = self._read_phrase_frequencies(text)
            self._last_frequencies = (state(), frequencies)
        return self._last_frequencies[1]

    def sizes(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        """(unit id, length in tokens) as FTS5 counts them."""
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for unit_id, size in self.connection.execute(
                    f"select id, sz from {self.table}_docsize where id in ({marks})", chunk):
                yield unit_id, _varints(size)[0]

    def _totals(self) -> tuple[int, int]:
        """Rows and tokens of the table, as FTS5 keeps them for bm25()."""
        block = self.connection.execute(
            f"select block from {self.table}_data where id = 1").fetchone()
        values = (_varints(block[0]) if block else []) + [0, 0]  # empty: no totals written yet
        return values[0], values[1]

    def _read_phrase_frequencies(self, text: str) -> list[dict[int, int]]:
        phrases = _PHRASE.findall(keyword_query(text))
        if not phrases:
            return []
        execute = self.connection.execute
        execute("create virtual table if not exists temp.semsearch_query"
                f" using fts5(text, tokenize='{self.tokenizer}')")
        execute("create virtual table if not exists temp.semsearch_query_terms"
                " using fts5vocab(temp, semsearch_query, instance)")
        execute("create virtual table if not exists temp.semsearch_terms"
                f" using fts5vocab(main, {self.table}, instance)")
        execute("delete from temp.semsearch_query")
        self.connection.executemany("insert into temp.semsearch_query(rowid, text) values (?, ?)",
                                    list(enumerate(phrases)))
        terms: list[list[str]] = [[] for _ in phrases]
        for phrase, term in execute(
                "select doc, term from temp.semsearch_query_terms order by doc, offset"):
            terms[phrase].append(term)
        frequencies = []
        for phrase_terms in terms:  # a phrase: its terms at consecutive offsets of one unit
            positions = [set(execute(
                "select doc, offset from temp.semsearch_terms where term = ?", [term]).fetchall())
                for term in phrase_terms]
            found: dict[int, int] = {}
            for unit_id, offset in positions[0] if positions else ():
                if all((unit_id, offset + j) in positions[j] for j in range(1, len(positions))):
                    found[unit_id] = found.get(unit_id, 0) + 1
            frequencies.append(found)
        return frequencies


def _varints(blob: bytes) -> list[int]:
    """SQLite's variable-length integers (FTS5 stores its sizes and totals in them)."""
    values, position = [], 0
    while position < len(blob):
        value = 0
        for byte_number in range(9):
            byte = blob[position]
            position += 1
            if byte_number == 8:  # the ninth byte carries 8 bits
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        values.append(value)
    return values
