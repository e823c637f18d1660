"""Search: dense (vector), keyword (SQLite FTS5 BM25) or hybrid (both, fused) ranking of units.

Metadata filters apply *inside* every ranking, so k hits come back whenever k units match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from semsearch.errors import InputError
from semsearch.vectors import DEFAULT_NPROBE

if TYPE_CHECKING:
    from semsearch.index import Index

MODES = ("dense", "keyword", "hybrid")
FUSIONS = ("rrf", "weighted")
# Defaults chosen on SciFact train queries with benchmarks/hybrid_tuning.py.
DEFAULT_MODE = "hybrid"
DEFAULT_FUSION = "rrf"
DEFAULT_RRF_K = 60
DEFAULT_ALPHA = 0.5
# Each ranking hands this many candidates (at least) to the fusion.
HYBRID_CANDIDATES = 100


@dataclass
class Hit:
    rank: int
    score: float  # the mode's ranking score: cosine (dense), BM25 (keyword) or fused (hybrid)
    unit_id: int
    document_id: str
    title: str
    source: str
    ordinal: int
    char_start: int
    char_end: int
    text: str
    metadata: dict
    dense_score: float | None = None
    keyword_score: float | None = None
    context: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Fusion:
    """How hybrid mode merges the two rankings: reciprocal ranks or normalised scores."""

    method: str = DEFAULT_FUSION
    rrf_k: float = DEFAULT_RRF_K
    alpha: float = DEFAULT_ALPHA  # weight of the dense score in ``weighted``

    def __post_init__(self):
        if self.method not in FUSIONS:
            raise InputError(f"--fusion must be one of {', '.join(FUSIONS)}")
        if not 0 <= self.alpha <= 1:
            raise InputError("--alpha must be between 0 and 1")
        if self.rrf_k <= 0:
            raise InputError("--rrf-k must be positive")


def parse_where(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lang=en", "year=2020"]`` → ``{"lang": "en", "year": "2020"}``."""
    where = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--where expects key=value, got {pair!r}")
        where[key.strip()] = value
    return where


# A candidate: (ranking score, unit id, dense score or None, keyword score or None)
Candidate = tuple[float, int, "float | None", "float | None"]


def search(
    index: Index, queries: list[str] | str, *, k: int = 10, mode: str = DEFAULT_MODE,
    fusion: Fusion | None = None, where: dict | None = None, by_document: bool = False,
    min_score: float | None = None, context: int = 0, nprobe: int = DEFAULT_NPROBE,
) -> list[list[Hit]]:
    """Top-k hits per query; ``by_document`` keeps each document's best unit.

    ``min_score`` is a floor on the cosine similarity in dense and hybrid modes (a fused score
    has no fixed scale) and on the BM25 score in keyword mode. A query without any word falls
    back to dense ranking in hybrid mode and finds nothing in keyword mode."""
    if isinstance(queries, str):
        queries = [queries]
    if k < 1:
        raise InputError("-k must be at least 1")
    if mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}")
    fusion = fusion or Fusion()
    subset = index.store.filtered_unit_ids(where) if where else None
    available = index.vectors.ntotal if subset is None else len(subset)
    if not queries:
        return []
    if available == 0:
        return [[] for _ in queries]
    embedded = index.encoder.encode(list(queries)) if mode != "keyword" else [None] * len(queries)
    results = []
    for text, query_vector in zip(queries, embedded, strict=True):
        def rank(fetch: int, text=text, query_vector=query_vector) -> list[Candidate]:
            if mode == "dense":
                return [(s, i, s, None) for s, i in _dense(index, query_vector, fetch, subset,
                                                           nprobe)]
            if mode == "keyword":
                return [(s, i, None, s) for s, i in
                        index.store.keyword_search(text, fetch, where=where)]
            return _hybrid(index, text, query_vector, fetch, subset, where, nprobe, fusion)

        ranked, rows = _top(index, rank, k, available, by_document)
        floor = min_score if min_score is not None else -np.inf
        hits = []
        for score, unit_id, dense_score, keyword_score in ranked:
            if (keyword_score if mode == "keyword" else dense_score) < floor:
                continue
            row = rows[unit_id]
            hit = Hit(rank=len(hits) + 1, score=round(score, 6), unit_id=unit_id,
                      dense_score=_round(dense_score), keyword_score=_round(keyword_score), **row)
            if context:
                hit.context = [{"ordinal": o, "text": t} for o, t in
                               index.store.neighbours(row["document_id"], row["ordinal"], context)]
            hits.append(hit)
            if len(hits) == k:
                break
        results.append(hits)
    return results


def _top(index: Index, rank: Callable[[int], list[Candidate]], k: int, available: int,
         by_document: bool) -> tuple[list[Candidate], dict[int, dict]]:
    """Fetch deeper until k (documents, with ``by_document``) are ranked or nothing is left."""
    fetch = min(k * (5 if by_document else 1), available)
    while True:
        ranked = rank(fetch)
        exhausted = len(ranked) < fetch  # the ranking had no more to give
        rows = index.store.hits([c[1] for c in ranked])
        if by_document:
            ranked = _best_per_document(ranked, rows)
        if len(ranked) >= k or fetch >= available or exhausted:
            return ranked, rows
        fetch = min(fetch * 4, available)


def _dense(index: Index, query_vector: np.ndarray, fetch: int, subset, nprobe: int):
    scores, ids = index.vectors.search(query_vector[None, :], fetch, subset, nprobe)
    return [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def _hybrid(index: Index, text: str, query_vector: np.ndarray, fetch: int, subset, where,
            nprobe: int, fusion: Fusion) -> list[Candidate]:
    """Both rankings to depth ``fetch``, each candidate scored by both, then fused."""
    fetch = max(fetch, HYBRID_CANDIDATES)
    dense = _dense(index, query_vector, fetch, subset, nprobe)
    keyword = index.store.keyword_search(text, fetch, where=where)
    dense_scores = {i: s for s, i in dense}
    keyword_scores = {i: s for s, i in keyword}
    missing = np.array([i for i in keyword_scores if i not in dense_scores], dtype=np.int64)
    dense_scores.update(zip(missing.tolist(), index.vectors.scores(query_vector, missing).tolist(),
                            strict=True))
    unmatched = [i for i in dense_scores if i not in keyword_scores]
    keyword_scores.update((i, s) for s, i in index.store.keyword_search(
        text, len(unmatched), unit_ids=unmatched))
    if fusion.method == "rrf":
        fused = dict.fromkeys(dense_scores, 0.0)
        for ranking in (dense, keyword):
            for position, (_, unit_id) in enumerate(ranking, start=1):
                fused[unit_id] += 1 / (fusion.rrf_k + position)
    else:
        dense_norm = _min_max(dense_scores)
        top_keyword = max(keyword_scores.values(), default=0.0) or 1.0
        fused = {i: fusion.alpha * dense_norm[i]
                 + (1 - fusion.alpha) * keyword_scores.get(i, 0.0) / top_keyword
                 for i in dense_scores}
    order = sorted(fused, key=lambda i: (-fused[i], -dense_scores[i]))
    return [(fused[i], i, dense_scores[i], keyword_scores.get(i)) for i in order]


def _min_max(scores: dict[int, float]) -> dict[int, float]:
    low, high = min(scores.values(), default=0.0), max(scores.values(), default=0.0)
    spread = high - low or 1.0
    return {i: (s - low) / spread for i, s in scores.items()}


def _round(score: float | None) -> float | None:
    return None if score is None else round(float(score), 6)


def _best_per_document(ranked: list[Candidate], rows: dict[int, dict]) -> list[Candidate]:
    seen: set[str] = set()
    best = []
    for candidate in ranked:  # already sorted: the first unit per document is its best
        document_id = rows[candidate[1]]["document_id"]
        if document_id not in seen:
            seen.add(document_id)
            best.append(candidate)
    return best
