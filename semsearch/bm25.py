"""Keyword analysis and BM25: user text as a list of terms that are only ever words, and scores
computed here, in float64, with whatever statistics the caller gives.

The keyword index (:mod:`semsearch.keywords`) finds candidates; every score a search returns is
this module's, from the index's own statistics or a sharded index's corpus-wide ones, so one
index and the same documents split over shards rank and score alike.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from semsearch.stopwords import ENGLISH_STOP_WORDS

# Enough words for any real query; bounds the cost of pasting a whole page into the box.
MAX_KEYWORD_TERMS = 64
# Tokens longer than this are dropped (base64, hashes, URLs run together): as Lucene does.
MAX_TOKEN_LENGTH = 40
K1, B = 1.2, 0.75  # BM25's usual constants (Lucene's, tantivy's, FTS5's)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class KeywordStatistics:
    """What BM25 needs of a corpus for one query: units, their tokens, and how many units
    hold each query term. Shards' statistics add up to the whole index's."""

    units: int
    tokens: int
    frequencies: tuple[int, ...]

    def __add__(self, other: KeywordStatistics) -> KeywordStatistics:
        return KeywordStatistics(self.units + other.units, self.tokens + other.tokens,
                                 tuple(a + b for a, b in zip(self.frequencies, other.frequencies,
                                                             strict=True)))

    @property
    def average_length(self) -> float:
        return self.tokens / self.units if self.units else 0.0

    def idf(self) -> list[float]:
        """Lucene's idf, never negative (FTS5's can be, for terms in most units)."""
        return [math.log(1.0 + (self.units - n + 0.5) / (n + 0.5)) for n in self.frequencies]


@cache
def analyzer() -> Any:
    """Words of letters and digits, tokens over 40 characters dropped, lower case, English
    (Porter 2) stemming: the same analysis the keyword index applies to every unit."""
    import tantivy

    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(MAX_TOKEN_LENGTH))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.stemmer("english")).build())


def analyze(text: str) -> list[str]:
    return analyzer().analyze(text)


def keyword_words(text: str, drop_stop_words: bool = True) -> list[str]:
    """The distinct words of ``text``, lower case, English stop words dropped unless nothing
    else is left (they add next to nothing to BM25 but make nearly every unit a match). No
    character is syntax: operators, quotes and punctuation are plain words or dropped."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    if drop_stop_words:
        words = [word for word in words if word not in ENGLISH_STOP_WORDS] or words
    return words[:MAX_KEYWORD_TERMS]


def query_terms(text: str, drop_stop_words: bool = True) -> list[str]:
    """The index terms a query looks up: its words, analysed as units are; empty when the text
    has no words (emoji, punctuation only)."""
    terms = dict.fromkeys(term for word in keyword_words(text, drop_stop_words)
                          for term in analyze(word))
    return list(terms)[:MAX_KEYWORD_TERMS]


def bm25(statistics: KeywordStatistics, terms: Sequence[str],
         analysed: Iterable[tuple[int, Sequence[str]]]) -> list[tuple[float, int]]:
    """(score, unit id) of each unit of ``analysed`` (its tokens, :func:`analyze`'s), best
    first, ties to the lower unit id (as in dense search, so shards merge exactly); a unit
    without any query term is left out."""
    weights = dict(zip(terms, statistics.idf(), strict=True))
    average_length = statistics.average_length or 1.0
    scored = []
    for unit_id, tokens in analysed:
        counts = Counter(token for token in tokens if token in weights)
        if not counts:
            continue
        norm = K1 * (1.0 - B + B * len(tokens) / average_length)
        score = sum(weights[term] * counts[term] * (K1 + 1.0) / (counts[term] + norm)
                    for term in terms if term in counts)
        scored.append((score, unit_id))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return scored
