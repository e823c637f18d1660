"""Zero-shot retrieval beyond today's hybrid: each technique's contribution, measured alone.

    python benchmarks/retrieval_ablation.py ../shared/data/scifact --split train
        [--index results/scifact-index] [--json out.json]

The first row is `semsearch eval retrieval`'s default (hybrid search of the default index:
document units, long documents chunked, weighted fusion of the top 500 of each side, each
document scored by its best unit). Every other row re-ranks the same queries from the same
vectors and keyword index with one change (or the changes named), at document level:

- document-level fusion: each side's best unit per document, then fused (not per unit);
- document BM25: keyword scores of whole documents (FTS5, porter) instead of their best chunk;
  "title x2" weighs a title field twice;
- RM3: the keyword query expanded with the top terms of the first fused ranking's documents;
- Rocchio: the query vector moved towards the first ranking's top documents;
- z-score fusion instead of min-max;
- multi-granularity: a document's dense score is the mean of its best chunk's and its best
  sentence's cosine (each sentence of the corpus embedded alone too), or of those and its
  truncated whole-text vector;
- passages: the best of the document's 128-token passages (one sentence of overlap, the title
  embedded before each), alone or with the best sentence.

Sentence, passage and whole-document vectors are cached beside the index (``ablation-*.npy``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, fts5_query, report
from semsearch.evaluation import rank_documents, retrieval_metrics
from semsearch.index import IndexSettings
from semsearch.search import DEFAULT_ALPHA, SearchOptions
from semsearch.units import cut_units, sentence_spans

DEPTH = 500  # candidates per side, as the default's by-document search fetches for k = 100


class Signals:
    """Per query × document: the dense score of the best chunk, of the best sentence and of the
    truncated document; per query: document BM25 and best-chunk BM25."""

    def __init__(self, index, documents, queries: dict[str, str], cache: Path):
        self.query_ids = list(queries)
        self.texts = [queries[q] for q in self.query_ids]
        self.documents = [d.id for d in documents]
        position = {d: i for i, d in enumerate(self.documents)}
        encoder = index.encoder
        self.query_vectors = encoder.encode(self.texts)
        ids = index.vectors.ids()
        unit_documents = index.store.document_ids(ids.tolist())
        self.owner = np.array([position[unit_documents[int(u)]] for u in ids])
        self.unit_vectors = index.vectors.vectors(ids)
        self.chunk = self.best(self.query_vectors @ self.unit_vectors.T, self.owner)
        sentences, sentence_owner = [], []
        for number, document in enumerate(documents):
            for start, end in sentence_spans(document.text):
                sentences.append(document.text[start:end])
                sentence_owner.append(number)
        sentence_vectors = _cached(cache / "ablation-sentences.npy",
                                   lambda: encoder.encode(sentences, batch_size=64), len(sentences))
        self.sentence = self.best(self.query_vectors @ sentence_vectors.T,
                                   np.array(sentence_owner))
        self.document_vectors = _cached(
            cache / "ablation-documents.npy",
            lambda: encoder.encode([d.text for d in documents], batch_size=32), len(documents))
        self.truncated = self.query_vectors @ self.document_vectors.T
        self.chunk_keyword = []
        for text in self.texts:
            best: dict[int, float] = {}
            for score, unit_id in index.keyword_search(text, 1000):
                best.setdefault(position[unit_documents[unit_id]], score)
            self.chunk_keyword.append(best)
        self.fts = sqlite3.connect(":memory:")
        self.fts.execute("create virtual table d using fts5(title, body, tokenize='porter')")
        self.fts.executemany("insert into d(rowid, title, body) values (?, ?, ?)",
                             [(i, d.title, d.text) for i, d in enumerate(documents)])
        self.fts.execute("create virtual table v using fts5vocab(d, instance)")
        self.body_terms: dict[int, list[str]] = {}
        for rowid, term in self.fts.execute("select doc, term from v where col = 'body'"):
            self.body_terms.setdefault(rowid, []).append(term)
        settings = IndexSettings()
        passages, passage_owner = [], []
        for number, document in enumerate(documents):
            for unit in cut_units(document.text, None, "passage", encoder.token_counts,
                                  settings.passage_tokens, settings.overlap):
                passages.append(f"{document.title} {unit.text}")
                passage_owner.append(number)
        self.passage = self.best(self.query_vectors @ _cached(
            cache / "ablation-passages.npy", lambda: encoder.encode(passages), len(passages)).T,
            np.array(passage_owner))

    @staticmethod
    def best(scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
        best = np.full((scores.shape[0], owner.max() + 1), -1.0, np.float32)
        for column in range(scores.shape[1]):
            np.maximum(best[:, owner[column]], scores[:, column], out=best[:, owner[column]])
        return best

    def document_keyword(self, text: str, title_weight: float = 1.0) -> dict[int, float]:
        query = fts5_query(text)
        if not query:
            return {}
        return dict(self.fts.execute(
            f"select rowid, -bm25(d, {title_weight}, 1.0) from d where d match ?"
            f" order by bm25(d, {title_weight}, 1.0) limit 1000", [query]).fetchall())

    def expanded(self, text: str, first: list[int], terms: int = 10, weight: float = 0.5
                 ) -> dict[int, float]:
        """RM3-style: the query's own terms and the top ``terms`` (by frequency in ``first``'s
        documents) as an FTS5 query whose repeated terms weigh more (BM25 sums phrases)."""
        counts: dict[str, float] = {}
        for rowid in first:
            words = self.body_terms.get(rowid, [])
            for word in words:
                counts[word] = counts.get(word, 0) + 1 / len(words)
        common = sorted(counts, key=lambda t: -counts[t])[:terms]
        original = [w.strip('"') for w in fts5_query(text).split(" OR ") if w]
        repeats = max(1, round(weight / (1 - weight) * terms / max(len(original), 1)))
        query = " OR ".join(f'"{w}"' for w in original * repeats + common)
        return dict(self.fts.execute(
            "select rowid, -bm25(d) from d where d match ? order by bm25(d) limit 1000",
            [query]).fetchall()) if query else {}


def fuse(dense: np.ndarray, keyword: dict[int, float], alpha: float = DEFAULT_ALPHA,
         zscore: bool = False) -> list[int]:
    """Documents best first: the top DEPTH of each side, scored both ways and fused."""
    ranked_keyword = sorted(keyword, key=lambda d: -keyword[d])[:DEPTH]
    candidates = np.array(sorted(set(np.argsort(-dense)[:DEPTH].tolist()) | set(ranked_keyword)))
    dense_scores = dense[candidates]
    keyword_scores = np.array([keyword.get(int(d), 0.0) for d in candidates])
    if zscore:
        dense_part = (dense_scores - dense_scores.mean()) / (dense_scores.std() or 1.0)
        top = np.array([keyword[d] for d in ranked_keyword] or [0.0])
        keyword_scores = np.where(keyword_scores > 0, keyword_scores, top.min())
        keyword_part = (keyword_scores - top.mean()) / (top.std() or 1.0)
    else:
        spread = (dense_scores.max() - dense_scores.min()) or 1.0
        dense_part = (dense_scores - dense_scores.min()) / spread
        keyword_part = keyword_scores / (max(keyword.values(), default=0.0) or 1.0)
    fused = alpha * dense_part + (1 - alpha) * keyword_part
    return [int(candidates[i]) for i in np.lexsort((-dense_scores, -fused))[:100]]


def main() -> None:
    from semsearch.evaluation import read_beir

    args = beir_arguments(__doc__.splitlines()[0]).parse_args()
    index, queries, qrels = beir_index(args.folder, args.split, args.index)
    documents = read_beir(args.folder, args.split)[0]
    signals = Signals(index, documents, queries, Path(args.index))
    names = signals.documents
    rows = []

    def score(technique: str, rank: Callable[[int, str], list[int]]) -> None:
        rankings = {q: [names[d] for d in rank(n, signals.texts[n])]
                    for n, q in enumerate(signals.query_ids)}
        rows.append({"technique": technique, **retrieval_metrics(rankings, qrels)})
        print(rows[-1], flush=True)

    rows.append({"technique": "default hybrid (semsearch eval retrieval)", **retrieval_metrics(
        rank_documents(index, queries, SearchOptions(mode="hybrid")), qrels)})
    print(rows[-1], flush=True)
    chunk, sentence = signals.chunk, signals.sentence
    keyword = signals.chunk_keyword
    whole = [signals.document_keyword(text) for text in signals.texts]
    score("document-level fusion", lambda n, t: fuse(chunk[n], keyword[n]))
    score("  + document BM25", lambda n, t: fuse(chunk[n], whole[n]))
    titled = [signals.document_keyword(text, 2.0) for text in signals.texts]
    score("  + document BM25, title x2", lambda n, t: fuse(chunk[n], titled[n]))
    score("  + document BM25, z-score fusion", lambda n, t: fuse(chunk[n], whole[n], zscore=True))
    score("  + document BM25 + RM3 (top 10 documents, 20 terms)",
          lambda n, t: fuse(chunk[n], signals.expanded(t, fuse(chunk[n], whole[n])[:10], 20)))
    vectors = signals.query_vectors

    def rocchio(n: int, text: str) -> list[int]:
        moved = vectors[n] + 0.5 * signals.document_vectors[fuse(chunk[n], whole[n])[:3]].mean(0)
        moved /= np.linalg.norm(moved)
        best = signals.best(moved[None, :] @ signals.unit_vectors.T, signals.owner)[0]
        return fuse(best, whole[n])

    score("  + document BM25 + Rocchio (top 3 documents, weight 0.5)", rocchio)
    multi = (chunk + sentence) / 2
    score("dense alone: best chunk (the default's dense)",
          lambda n, t: list(np.argsort(-chunk[n])[:100]))
    score("dense alone: best sentence", lambda n, t: list(np.argsort(-sentence[n])[:100]))
    score("dense alone: multi-granularity (chunk + sentence)",
          lambda n, t: list(np.argsort(-multi[n])[:100]))
    score("multi-granularity, best-chunk BM25", lambda n, t: fuse(multi[n], keyword[n]))
    score("multi-granularity + document BM25", lambda n, t: fuse(multi[n], whole[n]))
    score("multi-granularity, best-chunk BM25, alpha 0.7",
          lambda n, t: fuse(multi[n], keyword[n], alpha=0.7))
    score("multi-granularity + document BM25, alpha 0.7",
          lambda n, t: fuse(multi[n], whole[n], alpha=0.7))
    three = (chunk + sentence + signals.truncated) / 3
    score("multi-granularity (chunk + sentence + truncated) + document BM25",
          lambda n, t: fuse(three[n], whole[n]))
    passage = signals.passage
    score("dense alone: best passage (128 tokens, title first)",
          lambda n, t: list(np.argsort(-passage[n])[:100]))
    score("best passage, best-chunk BM25", lambda n, t: fuse(passage[n], keyword[n]))
    score("best passage + document BM25", lambda n, t: fuse(passage[n], whole[n]))
    mixed = (passage + sentence) / 2
    score("dense alone: multi-granularity (passage + sentence)",
          lambda n, t: list(np.argsort(-mixed[n])[:100]))
    score("multi-granularity (passage + sentence) + document BM25",
          lambda n, t: fuse(mixed[n], whole[n]))
    report(f"Retrieval ablation on {args.folder} ({args.split}, {len(queries)} queries)", rows,
           args.json_path, vars(args))


def _cached(path: Path, make: Callable[[], np.ndarray], count: int) -> np.ndarray:
    if path.exists() and len(vectors := np.load(path)) == count:
        return vectors
    vectors = make()
    np.save(path, vectors)
    return vectors


if __name__ == "__main__":
    main()
