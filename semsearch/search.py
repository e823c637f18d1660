"""Search: embed the queries, rank units inside the (filtered) vector index, attach their text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from semsearch.errors import InputError
from semsearch.vectors import DEFAULT_NPROBE

if TYPE_CHECKING:
    from semsearch.index import Index


@dataclass
class Hit:
    rank: int
    score: float
    unit_id: int
    document_id: str
    title: str
    source: str
    ordinal: int
    char_start: int
    char_end: int
    text: str
    metadata: dict
    context: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_where(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lang=en", "year=2020"]`` → ``{"lang": "en", "year": "2020"}``."""
    where = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--where expects key=value, got {pair!r}")
        where[key.strip()] = value
    return where


def search(
    index: Index, queries: list[str] | str, *, k: int = 10, where: dict | None = None,
    by_document: bool = False, min_score: float | None = None, context: int = 0,
    nprobe: int = DEFAULT_NPROBE,
) -> list[list[Hit]]:
    """Top-k hits per query. ``where`` filters on document metadata *inside* the vector search,
    so k hits come back whenever k units match; ``by_document`` keeps each document's best unit."""
    if isinstance(queries, str):
        queries = [queries]
    if k < 1:
        raise InputError("-k must be at least 1")
    subset = index.store.filtered_unit_ids(where) if where else None
    vectors = index.vectors
    available = vectors.ntotal if subset is None else len(subset)
    if not queries:
        return []
    if available == 0:
        return [[] for _ in queries]
    embedded = index.encoder.encode(list(queries))
    results = []
    for query_vector in embedded:
        fetch = min(k * (5 if by_document else 1), available)
        while True:
            scores, ids = vectors.search(query_vector[None, :], fetch, subset, nprobe)
            ranked = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            rows = index.store.hits([i for _, i in ranked])
            if by_document:
                ranked = _best_per_document(ranked, rows)
            if len(ranked) >= k or fetch >= available:
                break
            fetch = min(fetch * 4, available)
        hits = []
        for score, unit_id in ranked[:k]:
            if min_score is not None and score < min_score:
                break
            row = rows[unit_id]
            hit = Hit(rank=len(hits) + 1, score=round(score, 6), unit_id=unit_id, **row)
            if context:
                hit.context = [{"ordinal": o, "text": t} for o, t in
                               index.store.neighbours(row["document_id"], row["ordinal"], context)]
            hits.append(hit)
        results.append(hits)
    return results


def _best_per_document(ranked: list[tuple[float, int]], rows: dict[int, dict]):
    seen: set[str] = set()
    best = []
    for score, unit_id in ranked:  # already sorted by score: the first unit per document is its max
        document_id = rows[unit_id]["document_id"]
        if document_id not in seen:
            seen.add(document_id)
            best.append((score, unit_id))
    return best
