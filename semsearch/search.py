"""Search: dense (vector), keyword (SQLite FTS5 BM25) or hybrid (both, fused) ranking of units.

Metadata filters apply *inside* every ranking, so k hits come back whenever k units match.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, Literal, Protocol, get_args, get_origin, get_type_hints

import numpy as np

from semsearch.errors import InputError


class SearchStore(Protocol):
    """What search reads from a store: one SQLite file, or the same calls spread over shards."""

    def unit_count(self) -> int: ...

    def hits(self, ids: list[int]) -> dict[int, dict]: ...

    def document_ids(self, ids: list[int]) -> dict[int, str]: ...

    def neighbours(self, document_id: str, ordinal: int,
                   radius: int) -> list[tuple[int, str]]: ...

    def cluster_run(self, run_id: int | None = None) -> dict: ...

    def has_sentence_vectors(self) -> bool: ...

    def sentence_vectors(self, ids: list[int]) -> dict[int, np.ndarray]: ...


class SearchVectors(Protocol):
    """What search asks of the vectors: how many, the top k of a query, and exact scores."""

    @property
    def ntotal(self) -> int: ...

    def top(self, query: np.ndarray, k: int, subset: np.ndarray | None = None,
            effort: int | None = None) -> list[tuple[float, int]]: ...

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray: ...


class QueryEncoder(Protocol):
    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...

    def sharing_cpu(self) -> AbstractContextManager: ...


class SearchSource(Protocol):
    """What :func:`search` needs of an index, single or sharded: it never imports either."""

    @property
    def store(self) -> SearchStore: ...

    @property
    def vectors(self) -> SearchVectors: ...

    @property
    def encoder(self) -> QueryEncoder: ...

    @property
    def keywords_by_document(self) -> bool: ...

    def keyword_search(self, text: str, limit: int, *, where: dict[str, str] | None = None,
                       cluster: tuple[int, int] | None = None) -> list[tuple[float, int]]: ...

    def filtered_unit_ids(self, where: dict[str, str] | None = None,
                          cluster: tuple[int, int] | None = None) -> np.ndarray: ...


Mode = Literal["dense", "keyword", "hybrid"]
FusionMethod = Literal["rrf", "weighted"]
MODES: tuple[str, ...] = get_args(Mode)
FUSIONS: tuple[str, ...] = get_args(FusionMethod)
# Defaults chosen on SciFact train queries with benchmarks/hybrid_tuning.py.
DEFAULT_MODE = "hybrid"
DEFAULT_FUSION = "weighted"
DEFAULT_RRF_K = 10
DEFAULT_ALPHA = 0.65
# Each ranking hands this many candidates (at least) to the fusion; dense candidates below the
# BM25 top this deep score 0 on keywords (reading 1000 deep gained 0.05 nDCG@10 on SciFact).
HYBRID_CANDIDATES = 100
# Bounds of one search, the same from every front end: far above any real use, and low enough
# that one request to a server without a token cannot exhaust it.
MAX_K = 1000
MAX_CONTEXT = 20
MAX_EFFORT = 1 << 16  # nprobe of the largest IVF the auto factory builds; efSearch as wide


def _option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            open_low: bool = False) -> Any:
    """A :class:`SearchOptions` field: its default, its help and its bounds, which every front
    end reads from here (see :func:`option_specs`)."""
    metadata = {"help": help, "low": low, "high": high, "open_low": open_low}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SearchOptions:
    """Every search option with its default and bounds: the single definition that the command
    line, the HTTP API and ``Index.search`` take (a test checks all three against it)."""

    k: int = _option(10, "Hits per query.", low=1, high=MAX_K)
    mode: Mode = _option(DEFAULT_MODE, "dense: embeddings; keyword: full-text BM25; hybrid:"
                                       " both, fused.")
    where: dict[str, str] = _option({}, "Only documents whose metadata KEY equals VALUE (a list:"
                                        " holds VALUE).")
    by_document: bool = _option(False, "One hit per document (its best unit).")
    cluster: str | None = _option(None, "Only units in cluster ID, or RUN:ID, of a stored"
                                        " `semsearch cluster` run (default run: the latest).")
    min_score: float | None = _option(None, "Drop hits below this cosine similarity (BM25"
                                            " score in keyword mode).")
    context: int = _option(0, "Neighbouring units returned on each side of a hit.", low=0,
                           high=MAX_CONTEXT)
    effort: int | None = _option(None, "nprobe (IVF) or efSearch (HNSW) for this search,"
                                       " instead of the one the index was tuned to (see index"
                                       " --recall).", low=1, high=MAX_EFFORT)
    fusion: FusionMethod = _option(DEFAULT_FUSION, "Hybrid mode: reciprocal-rank fusion or a"
                                                   " weighted sum of normalised dense and"
                                                   " keyword scores.")
    rrf_k: float = _option(DEFAULT_RRF_K, "rrf: a hit at rank r in either ranking adds"
                                          " 1/(rrf-k + r).", low=0, open_low=True)
    alpha: float = _option(DEFAULT_ALPHA, "weighted: weight of the dense score.", low=0, high=1)

    def __post_init__(self) -> None:
        for spec in option_specs():
            spec.check(getattr(self, spec.name))
        for key, value in self.where.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                raise InputError("--where takes text keys and values")
        if self.cluster is not None:
            cluster_reference(self.cluster)  # the form now, the run when searching


@dataclass(frozen=True)
class OptionSpec:
    """One search option as a front end needs it: its name, type, default, help and bounds."""

    name: str
    type: Any  # the Python type: int, float, bool, str, dict[str, str] or a Literal of choices
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    @property
    def flag(self) -> str:
        """The option as the command line spells it (and as errors name it)."""
        return "-k" if self.name == "k" else "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...] | None:
        return get_args(self.type) if get_origin(self.type) is Literal else None

    @property
    def optional(self) -> bool:
        return type(None) in get_args(self.type)

    def check(self, value: Any) -> None:
        """Refuse a value outside the option's choices or bounds, with a one-line error."""
        if value is None and self.optional:
            return
        if self.choices is not None:
            if value not in self.choices:
                raise InputError(f"{self.flag} must be one of {', '.join(self.choices)}")
            return
        number = {int, float} & {self.type, *get_args(self.type)}
        if not number:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                int in number and float not in number and not isinstance(value, int)):
            raise InputError(f"{self.flag} must be a{'n integer' if int in number else ' number'}")
        low, high = self.low, self.high
        if int in number:
            if low is not None and value < low:
                raise InputError(f"{self.flag} must be at least {low}")
            if high is not None and value > high:
                raise InputError(f"{self.flag} must be at most {high}")
            return
        within = math.isfinite(value) and (low is None or value > low or (
            value == low and not self.open_low)) and (high is None or value <= high)
        if not within:  # NaN is refused too: it compares false
            if low is not None and high is not None:
                raise InputError(f"{self.flag} must be between {low:g} and {high:g}")
            if low == 0 and self.open_low:
                raise InputError(f"{self.flag} must be a positive finite number")
            raise InputError(f"{self.flag} must be a finite number")


@lru_cache(maxsize=1)
def option_specs() -> tuple[OptionSpec, ...]:
    """The fields of :class:`SearchOptions`, in order, with their types resolved."""
    types = get_type_hints(SearchOptions)
    return tuple(OptionSpec(name=item.name, type=types[item.name],
                            default={} if item.default is MISSING else item.default,
                            **item.metadata) for item in fields(SearchOptions))


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
    heading: str | None = None  # the heading path of the unit (Markdown, Word, notebooks)
    page: int | None = None  # its page (PDF)
    dense_score: float | None = None
    keyword_score: float | None = None
    context: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The hit as JSON-ready values (a NaN stored in metadata comes back as None)."""
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity (at any depth) as None: JSON has no such numbers,
    and strict encoders and parsers (Starlette's, browsers' JSON.parse) refuse them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def parse_where(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lang=en", "year=2020"]`` → ``{"lang": "en", "year": "2020"}``; a key given twice
    is refused (a document has one value per key: keeping either would be a silent guess)."""
    where: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--where expects key=value, got {pair!r}")
        key = key.strip()
        if key in where:
            raise InputError(f"--where gives {key!r} twice ({where[key]!r} and {value!r});"
                             " a document has one value per key")
        where[key] = value
    return where


def cluster_reference(ref: str) -> tuple[int | None, int]:
    """``"3"`` (cluster 3 of the latest run: run None) or ``"2:3"`` (of run 2) → ``(run,
    cluster)``."""
    run, _, number = ref.strip().rpartition(":")
    if not number.lstrip("-").isdigit() or (run and not run.isdigit()):
        raise InputError(f"--cluster expects ID or RUN:ID, got {ref!r}")
    return (int(run) if run else None, int(number))


# A candidate: (ranking score, unit id, dense score or None, keyword score or None)
Candidate = tuple[float, int, "float | None", "float | None"]


def search(index: SearchSource, queries: list[str] | str,
           options: SearchOptions | None = None) -> list[list[Hit]]:
    """Top-k hits per query; ``by_document`` keeps each document's best unit; ``cluster``
    searches inside one cluster of a stored `semsearch cluster` run.

    ``min_score`` is a floor on the cosine similarity in dense and hybrid modes (a fused score
    has no fixed scale) and on the BM25 score in keyword mode. A query without any word falls
    back to dense ranking in hybrid mode and finds nothing in keyword mode."""
    if isinstance(queries, str):
        queries = [queries]
    options = options or SearchOptions()
    k, mode, where, effort = options.k, options.mode, options.where, options.effort
    cluster = None
    if options.cluster is not None:
        run, number = cluster_reference(options.cluster)
        cluster = (index.store.cluster_run()["id"] if run is None else run, number)
    # a keyword search filters inside the keyword index and leaves the vector file unread
    filtered = bool(where or cluster) and mode != "keyword"
    subset = index.filtered_unit_ids(where, cluster) if filtered else None
    if subset is not None:
        available = len(subset)
    else:
        available = index.store.unit_count() if mode == "keyword" else index.vectors.ntotal
    if not queries:
        return []
    if available == 0:
        return [[] for _ in queries]
    keyword = _KeywordRankings(index, queries, where, cluster) if mode != "dense" else None
    with ThreadPoolExecutor(max_workers=1) as pool:  # BM25 runs while the queries are embedded
        if keyword is not None:
            # fusion looks up dense candidates' keyword scores; keyword mode reads k deep
            # first (deeper only where by_document needs more)
            pending = pool.submit(keyword.read, HYBRID_CANDIDATES if mode == "hybrid" else k)
        embedded = None
        if mode != "keyword":
            with index.encoder.sharing_cpu() if keyword is not None else nullcontext():
                embedded = index.encoder.encode(list(queries))
        if keyword is not None:
            pending.result()
    floor = -np.inf if options.min_score is None else options.min_score
    results = []
    for number in range(len(queries)):
        query_vector = embedded[number] if embedded is not None else None

        def rank(fetch: int, number: int = number,
                 query_vector: np.ndarray | None = query_vector) -> list[Candidate]:
            if keyword is None:  # dense
                assert query_vector is not None
                return [(s, i, s, None) for s, i in _dense(index, query_vector, fetch, subset,
                                                           effort)]
            if query_vector is None:  # keyword
                return [(s, i, None, s) for s, i in keyword.ranking(number, fetch)[:fetch]]
            return _hybrid(index, query_vector, fetch, subset, effort, options,
                           keyword.ranking(number, fetch))

        score_of = 3 if mode == "keyword" else 2  # the score min_score is a floor on
        ranked = [c for c in _top(index, rank, k, available, options.by_document)
                  if (c[score_of] or 0.0) >= floor][:k]
        rows = index.store.hits([c[1] for c in ranked])
        hits: list[Hit] = []
        for score, unit_id, dense_score, keyword_score in ranked:
            row = rows[unit_id]
            hit = Hit(rank=len(hits) + 1, score=round(score, 6), unit_id=unit_id,
                      dense_score=_round(dense_score), keyword_score=_round(keyword_score), **row)
            if options.context:
                hit.context = [{"ordinal": o, "text": t} for o, t in index.store.neighbours(
                    row["document_id"], row["ordinal"], options.context)]
            hits.append(hit)
        results.append(hits)
    return results


class _KeywordRankings:
    """Each query's BM25 ranking, read ``depth`` deep up front (so fusion finds the keyword
    score of dense candidates without another query) and deeper only when a caller needs it."""

    def __init__(self, index: SearchSource, queries: list[str], where, cluster):
        self.index, self.queries, self.where, self.cluster = index, queries, where, cluster
        self.rankings: list[tuple[list[tuple[float, int]], int]] = []

    def read(self, depth: int) -> None:
        self.rankings = [(self._read(text, depth), depth) for text in self.queries]

    def ranking(self, number: int, fetch: int) -> list[tuple[float, int]]:
        found, depth = self.rankings[number]
        if fetch > depth and len(found) == depth:  # cut short at the old depth: read deeper
            found = self._read(self.queries[number], fetch)
            self.rankings[number] = (found, fetch)
        return found

    def _read(self, text: str, depth: int) -> list[tuple[float, int]]:
        return self.index.keyword_search(text, depth, where=self.where, cluster=self.cluster)


def _top(index: SearchSource, rank: Callable[[int], list[Candidate]], k: int, available: int,
         by_document: bool) -> list[Candidate]:
    """Fetch deeper until k (documents, with ``by_document``) are ranked or nothing is left."""
    fetch = min(k * (5 if by_document else 1), available)
    while True:
        ranked = rank(fetch)
        exhausted = len(ranked) < fetch  # the ranking had no more to give
        if by_document:
            ranked = _best_per_document(ranked, index.store.document_ids([c[1] for c in ranked]))
        if len(ranked) >= k or fetch >= available or exhausted:
            return ranked
        fetch = min(fetch * 4, available)


def _dense(index: SearchSource, query_vector: np.ndarray, fetch: int, subset: np.ndarray | None,
           effort: int | None) -> list[tuple[float, int]]:
    """The top ``fetch`` by dense score; with sentence vectors, the top HYBRID_CANDIDATES (at
    least) by the units' own cosine are scored again with their sentences'."""
    if not index.store.has_sentence_vectors():
        return index.vectors.top(query_vector, fetch, subset, effort)
    found = index.vectors.top(query_vector, max(fetch, HYBRID_CANDIDATES), subset, effort)
    scores = _with_sentences(index, query_vector, {i: s for s, i in found})
    return sorted(((s, i) for i, s in scores.items()), key=lambda pair: (-pair[0], pair[1]))[
        :fetch]


def _with_sentences(index: SearchSource, query_vector: np.ndarray,
                    scores: dict[int, float]) -> dict[int, float]:
    """Multi-granularity: a unit with sentence vectors scores the mean of its own cosine and
    its best sentence's (the best passage of a long unit counts as much as its whole)."""
    parts = index.store.sentence_vectors(list(scores))
    if not parts:
        return scores
    ids = list(parts)
    stacked = np.concatenate([parts[i] for i in ids]).astype(np.float32)
    starts = np.cumsum([0] + [len(parts[i]) for i in ids[:-1]])
    best = np.maximum.reduceat(stacked @ query_vector.astype(np.float32), starts)
    rescored = dict(scores)
    for unit_id, sentence in zip(ids, best.tolist(), strict=True):
        rescored[unit_id] = (scores[unit_id] + sentence) / 2
    return rescored


def _hybrid(index: SearchSource, query_vector: np.ndarray, fetch: int,
            subset: np.ndarray | None, effort: int | None, fusion: SearchOptions,
            keyword_ranking: list[tuple[float, int]]) -> list[Candidate]:
    """The top ``fetch`` of both rankings, each candidate scored both ways, then fused."""
    fetch = max(fetch, HYBRID_CANDIDATES)
    dense = index.vectors.top(query_vector, fetch, subset, effort)
    keyword = keyword_ranking[:fetch]
    keyword_scores = {i: s for s, i in keyword_ranking}  # deeper than the candidates
    dense_scores = {i: s for s, i in dense}
    missing = np.array([i for _, i in keyword if i not in dense_scores], dtype=np.int64)
    dense_scores.update(zip(missing.tolist(), index.vectors.scores(query_vector, missing).tolist(),
                            strict=True))
    if index.store.has_sentence_vectors():
        dense_scores = _with_sentences(index, query_vector, dense_scores)
        dense = sorted(((dense_scores[i], i) for _, i in dense),
                       key=lambda pair: (-pair[0], pair[1]))
    if index.keywords_by_document:  # a document's BM25 (under its first unit) is each unit's
        documents = index.store.document_ids(list(dense_scores.keys() | keyword_scores.keys()))
        by_document = {documents[i]: s for s, i in keyword_ranking}
        keyword_scores = {i: by_document[documents[i]] for i in dense_scores
                          if documents[i] in by_document}
    if fusion.fusion == "rrf":
        fused = dict.fromkeys(dense_scores, 0.0)
        for ranking in (dense, keyword):
            for position, (_, unit_id) in enumerate(ranking, start=1):
                fused[unit_id] += 1 / (fusion.rrf_k + position)
    else:
        dense_norm = _min_max(dense_scores)
        top_keyword = (keyword[0][0] if keyword else 0.0) or 1.0
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


def _best_per_document(ranked: list[Candidate], documents: dict[int, str]) -> list[Candidate]:
    seen: set[str] = set()
    best = []
    for candidate in ranked:  # already sorted: the first unit per document is its best
        document_id = documents[candidate[1]]
        if document_id not in seen:
            seen.add(document_id)
            best.append(candidate)
    return best
