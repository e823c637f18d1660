"""Evaluation: STS (Spearman of cosine vs gold) and BEIR retrieval (nDCG@10, MRR@10, R@100)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from semsearch.encoder import Runtime, load_encoder
from semsearch.errors import InputError
from semsearch.index import Index, IndexSettings
from semsearch.readers import Document
from semsearch.search import DEFAULT_MODE, Mode, SearchOptions


def held_out(query_id: str, fraction: float) -> bool:
    """A stable, seed-free split of query ids: the same ids are held out on every machine."""
    bucket = int(hashlib.sha256(str(query_id).encode()).hexdigest()[:8], 16) % 10_000
    return bucket < fraction * 10_000


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """STS Benchmark layout: tab-separated, score in column 5, sentences in columns 6 and 7."""
    first, second, scores = [], [], []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.reader(handle, delimiter="\t",
                                                    quoting=csv.QUOTE_NONE), start=1):
                if len(row) < 7:
                    raise InputError(f"{path}:{number}: expected at least 7 tab-separated columns")
                scores.append(float(row[4]))
                first.append(row[5])
                second.append(row[6])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read STS file {path}: {exc}") from None
    if not scores:
        raise InputError(f"{path} holds no sentence pairs")
    return first, second, scores


def evaluate_sts(
    path: str | Path, *, model: str | None = None, pooling: str | None = None,
    batch_size: int = 32, runtime: Runtime | None = None,
) -> dict:
    from scipy.stats import pearsonr, spearmanr

    first, second, scores = read_sts(path)
    runtime = runtime or Runtime()
    encoder = load_encoder(model, pooling, precision=runtime.precision, backend=runtime.backend)
    # Through the encoder itself, so every backend and precision is measured as it searches.
    vectors = encoder.encode(first + second, batch_size=batch_size)
    cosines = (vectors[:len(first)] * vectors[len(first):]).sum(axis=1)
    metrics = {"spearman": float(spearmanr(cosines, scores).statistic),
               "pearson": float(pearsonr(cosines, scores).statistic)}
    return {"file": str(path), "pairs": len(scores), "model": str(encoder.path),
            "pooling": encoder.pooling,
            "spearman": round(100 * metrics["spearman"], 2),
            "pearson": round(100 * metrics["pearson"], 2)}


def read_beir(folder: str | Path, split: str) -> tuple[list[Document], dict[str, str], dict]:
    """BEIR layout: corpus.jsonl, queries.jsonl and qrels/<split>.tsv; title and text are joined
    with a space, as BEIR does for sentence-transformers models."""
    folder = Path(folder)
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    try:
        with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t"):
                if len(row) >= 3 and row[2].lstrip("-").isdigit():
                    qrels[row[0]][row[1]] = int(row[2])
        corpus = _read_jsonl(folder / "corpus.jsonl")
        queries = {str(q["_id"]): q["text"] for q in _read_jsonl(folder / "queries.jsonl")
                   if str(q["_id"]) in qrels}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read BEIR folder {folder} (split {split}): {exc}") from None
    documents = [
        Document(id=str(doc["_id"]), title=doc.get("title") or "",
                 text=" ".join(part for part in (doc.get("title"), doc.get("text")) if part))
        for doc in corpus
    ]
    return documents, queries, dict(qrels)


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def retrieval_metrics(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """Mean nDCG@10 (gain = relevance), MRR@10 and Recall@100 over the judged queries, ×100."""
    ndcg, mrr, recall = [], [], []
    for query_id, ranking in rankings.items():
        relevant = {doc: rel for doc, rel in qrels[query_id].items() if rel > 0}
        dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in
                  enumerate(ranking[:10]))
        ideal = sum(rel / math.log2(rank + 2) for rank, rel in
                    enumerate(sorted(relevant.values(), reverse=True)[:10]))
        ndcg.append(dcg / ideal if ideal else 0.0)
        mrr.append(next((1 / (rank + 1) for rank, doc in enumerate(ranking[:10])
                         if doc in relevant), 0.0))
        recall.append(len(set(ranking[:100]) & relevant.keys()) / len(relevant) if relevant else 0)
    count = max(len(rankings), 1)
    return {"ndcg@10": round(100 * sum(ndcg) / count, 2),
            "mrr@10": round(100 * sum(mrr) / count, 2),
            "recall@100": round(100 * sum(recall) / count, 2), "queries": len(rankings)}


def rank_documents(index: Index, queries: dict[str, str],
                   options: SearchOptions | None = None) -> dict[str, list[str]]:
    """Document ids per query id, best first (each document scored by its best unit): the
    top 100 (what Recall@100 reads) in ``options``' mode and fusion."""
    query_ids = list(queries)
    options = replace(options or SearchOptions(mode="dense"), k=100, by_document=True)
    results = index.search([queries[q] for q in query_ids], options)
    return {q: [hit.document_id for hit in hits]
            for q, hits in zip(query_ids, results, strict=True)}


def evaluate_retrieval(
    folder: str | Path, *, split: str = "test", modes: Sequence[str] = (DEFAULT_MODE,),
    fusion: SearchOptions | None = None, model: str | None = None, pooling: str | None = None,
    unit: str = "document", chunk: bool = True, sentence_vectors: bool = True,
    document_keywords: bool = True, batch_size: int = 32, hold_out: float = 0.0,
    progress: Callable[[int], None] | None = None, runtime: Runtime | None = None,
) -> dict:
    """Index the corpus into a temporary index (the same path as ``semsearch index``) and score
    every judged query in each search mode (one index serves them all); ``fusion``: how hybrid
    mode fuses (the default's otherwise)."""
    fusion = fusion or SearchOptions()
    documents, queries, qrels = read_beir(folder, split)
    if hold_out:  # only the queries `semsearch train --hold-out` never trained on
        queries = {q: text for q, text in queries.items() if held_out(q, hold_out)}
    if not queries:
        raise InputError(f"{folder}: no queries have judgements in qrels/{split}.tsv")
    with tempfile.TemporaryDirectory(prefix="semsearch-eval-") as tmp:
        index = Index.create(Path(tmp) / "index", model=model, pooling=pooling,
                             settings=IndexSettings(unit=unit, chunk=chunk,
                                                    sentence_vectors=sentence_vectors,
                                                    document_keywords=document_keywords),
                             runtime=runtime)
        index.add(documents, batch_size=batch_size, progress=progress)
        results = [{"mode": mode, **retrieval_metrics(
            rank_documents(index, queries, replace(fusion, mode=cast(Mode, mode))), qrels)}
            for mode in modes]
        manifest = index.manifest
        index.store.close()
    return {"folder": str(folder), "split": split, "documents": len(documents),
            "queries": len(queries), "model": manifest["model"], "pooling": manifest["pooling"],
            "unit": unit, "chunk": chunk, "sentence_vectors": sentence_vectors,
            "document_keywords": document_keywords, "hold_out": hold_out,
            "fusion": {"method": fusion.fusion, "rrf_k": fusion.rrf_k, "alpha": fusion.alpha},
            "results": results}


def read_labelled(paths: Sequence[str | Path], text_field: str = "text",
                  label_field: str = "label") -> tuple[list[str], list[str]]:
    """Texts and their labels from CSV, TSV or JSONL files (records without either are skipped
    with a warning, as `semsearch index` does)."""
    from semsearch.readers import ReadOptions, read_documents

    def warn(message: str) -> None:
        raise InputError(message)

    texts, labels = [], []
    for document in read_documents([str(p) for p in paths], ReadOptions(text_field=text_field),
                                   warn):
        label = document.metadata.get(label_field)
        if label in (None, ""):
            raise InputError(f"{document.source}: a record has no {label_field!r} field")
        texts.append(document.text)
        labels.append(str(label))
    if len(set(labels)) < 2:
        raise InputError(f"{', '.join(map(str, paths))}: need at least two distinct labels in"
                         f" field {label_field!r}")
    return texts, labels


def evaluate_clustering(
    paths: Sequence[str | Path], *, text_field: str = "text", label_field: str = "label",
    method: str = "kmeans", k: int | None = None, seeds: int = 10, model: str | None = None,
    pooling: str | None = None, batch_size: int = 32, runtime: Runtime | None = None,
    **options: Any,
) -> dict:
    """V-measure, NMI and ARI (×1, mean and standard deviation over seeds) of clustering the
    embedded texts against their labels; k-means uses k = number of labels unless given."""
    texts, labels = read_labelled(paths, text_field, label_field)
    runtime = runtime or Runtime()
    vectors = load_encoder(model, pooling, precision=runtime.precision,
                           backend=runtime.backend).encode(texts, batch_size=batch_size)
    if method == "kmeans" and k is None:
        k = len(set(labels))
    return {"files": [str(p) for p in paths], "items": len(texts), "labels": len(set(labels)),
            "method": method, "k": k, "seeds": seeds, "parameters": options,
            **score_clustering(vectors, labels, method=method, k=k, seeds=seeds, **options)}


def score_clustering(vectors, labels: list[str], *, method: str = "kmeans", k: int | None = None,
                     seeds: int = 10, **options) -> dict:
    """Mean and standard deviation over seeds of V-measure, NMI, ARI, clusters and outliers."""
    import numpy as np
    from sklearn import metrics

    from semsearch.clustering import cluster_vectors

    runs = []
    for seed in range(seeds):
        clustering = cluster_vectors(vectors, method, k=k, seed=seed, **options)
        runs.append({"v_measure": metrics.v_measure_score(labels, clustering.labels),
                     "nmi": metrics.normalized_mutual_info_score(labels, clustering.labels),
                     "ari": metrics.adjusted_rand_score(labels, clustering.labels),
                     "clusters": clustering.n_clusters, "outliers": clustering.outliers})
    return {name: {"mean": round(float(np.mean(values)), 4),
                   "std": round(float(np.std(values)), 4)}
            for name in runs[0] for values in [[run[name] for run in runs]]}
