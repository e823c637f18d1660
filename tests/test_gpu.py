"""The CUDA paths: fp16 encoding, FAISS search on a GPU copy of the index, GPU k-means.
Skipped (with the reason shown) on machines without a CUDA GPU, such as CI."""

import faiss
import numpy as np
import pytest

from semsearch.vectors import VectorIndex

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
needs_faiss_gpu = pytest.mark.skipif(faiss.get_num_gpus() == 0, reason="no GPU for FAISS")


@needs_cuda
def test_auto_precision_on_cuda_is_fp16_and_keeps_the_vectors(encoder):
    from semsearch.encoder import load_encoder

    gpu = load_encoder(device="cuda")
    assert gpu.precision == "fp16" and gpu.device.startswith("cuda")
    texts = ["A man is playing a guitar.", "Stocks fell sharply on Monday.", "Cats sleep a lot."]
    similarity = (gpu.encode(texts) * encoder.encode(texts)).sum(axis=1)
    assert similarity.min() > 0.99


@needs_faiss_gpu
@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat"])
def test_gpu_search_matches_cpu_and_saves_from_the_cpu_copy(tmp_path, factory):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.empty(64, factory)
    if not index.index.is_trained:
        index.index.train(vectors)
    index.add(np.arange(5000, dtype=np.int64), vectors)
    queries = vectors[:20]
    assert not index.on_gpu  # the copy is made by the first search
    on_gpu = index.search(queries, 10, effort=64)
    assert index.on_gpu  # the search ran on the GPU copy
    cpu = index.index.search(queries, 10, params=index.search_parameters(None, 64, 10))
    assert np.array_equal(on_gpu[1], cpu[1])
    index.save(tmp_path / "v.faiss")
    reloaded = VectorIndex.load(tmp_path / "v.faiss", factory)
    assert np.array_equal(reloaded.search(queries, 10, effort=64)[1], on_gpu[1])


@needs_faiss_gpu
def test_gpu_kmeans_finds_the_planted_groups():
    from semsearch.clustering import cluster_vectors

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 32))
    labels = rng.integers(0, 4, 2000)
    vectors = (centres[labels] + 0.1 * rng.standard_normal((2000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = cluster_vectors(vectors, k=4, restarts=2).labels
    assert len({tuple(sorted(set(found[labels == c]))) for c in range(4)}) == 4
