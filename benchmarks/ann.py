"""Vector index types at 100k and 1M vectors: build time, memory, latency and recall@10.

    python benchmarks/ann.py --sizes 100000 1000000 [--real results/scifact_vectors.npz]
        [--types Flat HNSW32 IVF1024,SQ8 IVF1024,PQ48] [--hnswlib] [--json out.json]

Vectors: with ``--real`` (an .npz holding ``vectors`` and ``queries``, e.g. from
``benchmarks/ann.py --export-scifact results/scifact-index``) each synthetic vector is a real
embedding moved a random step as long as the distance to its nearest real neighbour — a corpus
of near-paraphrases with the shape of real embeddings — and the queries are the real query
embeddings. Without it, uniform random unit vectors (the hardest case: no structure at all).
Recall@10 is against exact search over the original float vectors, so it includes the loss
from compressing vectors (SQ8, PQ). Each index is tuned with ``VectorIndex.tune`` to the
``--recall`` target first, exactly as ``semsearch index --recall`` does. Latency: one query at a
time, warm, on every core the process has; memory: the size of the serialised index.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import semsearch  # noqa: F401  (offline environment: before faiss is imported)

# isort: split
import faiss

from _common import report
from semsearch.vectors import VectorIndex

TYPES = ["Flat", "HNSW32", "IVF1024,SQ8", "IVF4096,SQ8", "OPQ48_192,IVF1024,PQ48"]
TRAINING_SAMPLE = 100_000


def export_scifact(index_dir: str, queries_file: str, out: str) -> None:
    """Real vectors (the units of a SciFact index) and real query embeddings, for --real."""
    import json

    from semsearch.index import Index

    index = Index.open(index_dir)
    vectors = index.vectors.vectors(index.vectors.ids())
    with open(queries_file) as handle:
        texts = [json.loads(line)["text"] for line in handle]
    np.savez(out, vectors=vectors, queries=index.encoder.encode(texts))
    print(f"wrote {out}: {len(vectors)} vectors, {len(texts)} queries")


def synthetic(size: int, real: str | None, queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dimension = 384
    if real is None:
        data = rng.standard_normal((size, dimension), dtype=np.float32)
        asked = rng.standard_normal((queries, dimension), dtype=np.float32)
    else:
        loaded = np.load(real)
        base, asked = loaded["vectors"], loaded["queries"][:queries]
        flat = faiss.IndexFlatIP(base.shape[1])
        flat.add(base)
        nearest = flat.search(base, 2)[0][:, 1]  # the closest other real vector
        steps = np.sqrt(np.maximum(2 - 2 * nearest, 0)).astype(np.float32)
        data = np.empty((size, base.shape[1]), dtype=np.float32)
        for start in range(0, size, 100_000):
            picks = rng.integers(0, len(base), min(100_000, size - start))
            noise = rng.standard_normal((len(picks), base.shape[1]), dtype=np.float32)
            noise *= (steps[picks] / np.linalg.norm(noise, axis=1))[:, None]
            data[start:start + len(picks)] = base[picks] + noise
    faiss.normalize_L2(data)
    faiss.normalize_L2(asked)
    return data, np.ascontiguousarray(asked, dtype=np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1]
                          for a, b in zip(found, truth, strict=True)]))


def latencies(search, queries: np.ndarray) -> list[float]:
    timings = []
    for query in queries:
        started = time.perf_counter()
        search(query[None, :])
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def row(size, kind, build_s, nbytes, effort, timings, found, truth):
    return {"vectors": size, "index": kind, "build s": round(build_s, 1),
            "memory MB": round(nbytes / 2**20, 1), "effort": effort,
            "p50 ms": statistics.median(timings),
            "p95 ms": sorted(timings)[int(0.95 * (len(timings) - 1))],
            "recall@10": recall(found, truth)}


def bench_faiss(kind: str, data, queries, truth, target: float) -> dict:
    ids = np.arange(len(data), dtype=np.int64)
    started = time.perf_counter()
    index = VectorIndex.empty(data.shape[1], kind)
    if not index.index.is_trained:
        sample = data[np.random.default_rng(1).permutation(len(data))[:TRAINING_SAMPLE]]
        index.index.train(sample)
    index.add(ids, data)
    effort, _ = index.tune(target)
    build = time.perf_counter() - started
    nbytes = faiss.serialize_index(index.index).nbytes
    _, found = index.search(queries, 10)
    timings = latencies(lambda q: index.search(q, 10), queries)
    return row(len(data), kind, build, nbytes, effort, timings, found, truth)


def bench_hnswlib(data, queries, truth, target: float) -> dict | None:
    try:
        import hnswlib
    except ImportError:
        print("hnswlib is not installed (pip install hnswlib): its row is left out")
        return None
    started = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=32, ef_construction=200)
    index.add_items(data, np.arange(len(data)))
    build = time.perf_counter() - started
    for ef in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512):
        index.set_ef(ef)
        found = index.knn_query(queries, k=10)[0]
        if recall(found, truth) >= target:
            break
    nbytes = len(data) * (data.shape[1] * 4 + 2 * 32 * 4 + 16)  # vectors + level-0 links
    timings = latencies(lambda q: index.knn_query(q, k=10), queries)
    return row(len(data), "hnswlib M=32", build, nbytes, ef, timings, found, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--types", nargs="+", default=TYPES)
    parser.add_argument("--real", help=".npz with real vectors and queries (see above)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--recall", type=float, default=0.95, help="tuning target")
    parser.add_argument("--hnswlib", action="store_true", help="add hnswlib as a reference")
    parser.add_argument("--export-scifact", metavar="INDEX_DIR",
                        help="write --real data from a SciFact index and stop")
    parser.add_argument("--scifact-queries", default="../../shared/data/scifact/queries.jsonl")
    parser.add_argument("--out", default="results/scifact_vectors.npz")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if args.export_scifact:
        export_scifact(args.export_scifact, args.scifact_queries, args.out)
        return
    rows = []
    for size in args.sizes:
        data, queries = synthetic(size, args.real, args.queries)
        exact = faiss.IndexFlatIP(data.shape[1])
        exact.add(data)
        truth = exact.search(queries, 10)[1]
        del exact
        for kind in args.types:
            rows.append(bench_faiss(kind, data, queries, truth, args.recall))
            print(rows[-1], flush=True)
        if args.hnswlib and (found := bench_hnswlib(data, queries, truth, args.recall)):
            rows.append(found)
            print(rows[-1], flush=True)
    source = "real-derived (SciFact)" if args.real else "random unit"
    report(f"ANN search over {source} vectors, 384-d, {os.cpu_count()} cores, recall target"
           f" {args.recall}", rows, args.json_path, vars(args))


if __name__ == "__main__":
    main()
