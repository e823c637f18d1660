import csv
import json

import numpy as np
import pytest

from conftest import DATA
from semsearch.clustering import PAIRWISE_LIMIT, cluster_keywords, cluster_vectors, eigengap_k
from semsearch.errors import InputError

TOPICS = DATA / "topics-mini.jsonl"


@pytest.fixture(scope="module")
def topic_vectors(encoder):
    records = [json.loads(line) for line in TOPICS.read_text().splitlines()]
    return (encoder.encode([r["text"] for r in records]), [r["text"] for r in records],
            [r["topic"] for r in records])


def test_kmeans_finds_the_topics_and_ignores_input_order(topic_vectors):
    vectors, _, topics = topic_vectors
    first = cluster_vectors(vectors, k=3, seed=7)
    assert first.n_clusters == 3 and first.outliers == 0
    # one cluster per topic: items that share a topic share a cluster
    assert len({(t, c) for t, c in zip(topics, first.labels.tolist(), strict=True)}) == 3
    shuffle = np.random.default_rng(1).permutation(len(vectors))
    shuffled = cluster_vectors(vectors[shuffle], k=3, seed=7)
    assert shuffled.labels.tolist() == first.labels[shuffle].tolist()
    np.testing.assert_allclose(shuffled.distances, first.distances[shuffle], atol=1e-6)


def test_k_auto_and_the_other_methods(topic_vectors):
    vectors, _, _ = topic_vectors
    assert 2 <= cluster_vectors(vectors, k=None).n_clusters <= 6
    assert cluster_vectors(vectors, "agglomerative", k=3).n_clusters == 3
    groups = cluster_vectors(vectors, "community", threshold=0.3, min_size=3)
    assert groups.n_clusters >= 1 and groups.outliers < len(vectors)


def test_hdbscan_counts_outliers_and_can_reassign_them():
    rng = np.random.default_rng(0)
    centres = np.eye(16, dtype=np.float32)[:2]
    blobs = np.vstack([c + 0.02 * rng.standard_normal((20, 16)) for c in centres])
    noise = rng.standard_normal((6, 16))
    vectors = np.vstack([blobs, noise]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = cluster_vectors(vectors, "hdbscan", min_size=5)
    assert found.n_clusters == 2
    assert found.outliers == int((found.labels == -1).sum()) > 0
    assert np.isnan(found.distances[found.labels == -1]).all()
    reduced = cluster_vectors(vectors, "hdbscan", min_size=5, reduce_outliers=True)
    assert reduced.outliers == 0 and reduced.n_clusters == 2


def test_pairwise_methods_refuse_big_inputs_and_point_to_kmeans():
    vectors = np.zeros((PAIRWISE_LIMIT + 1, 2), dtype=np.float32)
    with pytest.raises(InputError, match="use --method kmeans"):
        cluster_vectors(vectors, "agglomerative")


def test_ctfidf_keywords_name_two_obvious_topics():
    texts = ["The striker scored a goal.", "The goalkeeper saved the goal.", "A goal in the match.",
             "The oven bakes bread.", "Fresh bread from the oven.", "Bread dough rises."]
    keywords = cluster_keywords(texts, np.array([0, 0, 0, 1, 1, 1]), top=2)
    assert keywords[0][0] == "goal" and keywords[1][0] == "bread"
    assert "oven" in keywords[1] and not {"the", "a", "from"} & {*keywords[0], *keywords[1]}


def test_cluster_run_is_stored_listed_exported_and_searchable(run, run_json, tmp_path):
    run_json("index", "-i", "topics", TOPICS)
    made = run_json("cluster", "-i", "topics", "-k", "3", "--export", tmp_path / "c.csv",
                    "--plot", tmp_path / "map.png")
    assert made["id"] == 1 and made["clusters"] == 3 and made["items"] == 24
    assert sum(c["size"] for c in made["cluster_list"]) == 24
    assert all(len(c["representatives"]) == 3 and c["keywords"] for c in made["cluster_list"])
    shown = run_json("clusters", "1", "-i", "topics")
    assert {k: v for k, v in shown.items() if k not in ("plot", "export")} == {
        k: v for k, v in made.items() if k not in ("plot", "export")}
    assert [r["id"] for r in run_json("clusters", "-i", "topics")] == [1]
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(rows) == 24 and made["export"]["rows"] == 24
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    # every hit of a cluster-restricted query comes from that cluster
    football = next(c["cluster"] for c in made["cluster_list"] if "goal" in c["keywords"])
    members = {r["unit_id"] for r in rows if int(r["cluster"]) == football}
    for mode in ("dense", "keyword", "hybrid"):
        hits = run_json("query", "-i", "topics", "bread oven telescope goal", "--mode", mode,
                        "--cluster", f"1:{football}", "-k", "24")[0]["hits"]
        assert hits and {str(h["unit_id"]) for h in hits} <= members
    table = run("clusters", "-i", "topics").stdout
    assert "run 1" in table and "kmeans over 24 units: 3 clusters" in table
    assert "no cluster run 9" in run("query", "-i", "topics", "x", "--cluster", "9:0",
                                     expect=1).stderr


def test_document_runs_and_removed_documents(run_json, fake_model):
    run_json("index", "-i", "topics", "--model", fake_model, TOPICS)
    made = run_json("cluster", "-i", "topics", "--by-document", "-k", "3")
    assert made["target"] == "document" and made["items"] == 24
    run_json("remove", "-i", "topics", "football-0")
    hits = run_json("query", "-i", "topics", "striker goal", "--cluster", "0", "-k", "30")
    assert "football-0" not in {h["document_id"] for h in hits[0]["hits"]}


def test_eval_clustering_scores_labelled_texts(run, run_json, tmp_path):
    result = run_json("eval", "clustering", TOPICS, "--label-field", "topic", "--seeds", "3")
    assert result["items"] == 24 and result["labels"] == 3 and result["k"] == 3
    assert result["v_measure"]["mean"] > 0.9
    assert "V-measure" in run("eval", "clustering", TOPICS, "--label-field", "topic",
                              "--seeds", "2").stdout
    assert "a record has no 'colour' field" in run(
        "eval", "clustering", TOPICS, "--label-field", "colour", expect=1).stderr
    (tmp_path / "one.csv").write_text("text,topic\nCats purr.,pets\nDogs bark.,pets\n")
    assert "need at least two distinct labels" in run(
        "eval", "clustering", tmp_path / "one.csv", "--label-field", "topic", expect=1).stderr


def blobs(per_group: int = 60, groups: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, 384))
    truth = np.repeat(np.arange(groups), per_group)
    points = centres[truth] + 0.9 * rng.standard_normal((len(truth), 384))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), truth


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=True))
    return len(pairs) == len(set(truth.tolist())) == len(set(labels.tolist()))


def test_kmeans_on_the_umap_reduction_by_default(monkeypatch):
    import semsearch.clustering as clustering

    vectors, truth = blobs()
    first = cluster_vectors(vectors, k=3, seed=2)
    assert first.parameters["reduction"] == "umap" and same_partition(first.labels, truth)
    assert first.centroids.shape == (3, 384)  # centroids and distances stay in vector space
    shuffle = np.random.default_rng(1).permutation(len(vectors))
    assert cluster_vectors(vectors[shuffle], k=3, seed=2).labels.tolist() == (
        first.labels[shuffle].tolist())
    chosen = cluster_vectors(vectors, k=None, seed=2)
    assert chosen.n_clusters == 3 and chosen.parameters["k_chosen_by"] == "eigengap"
    assert cluster_vectors(vectors, k=3, reduction="none").parameters["reduction"] == "none"
    few = cluster_vectors(vectors[:40], k=2)  # too few items to reduce
    assert few.parameters["reduction"] == "none"
    monkeypatch.setattr(clustering, "UMAP_FIT_LIMIT", 120)
    sampled = cluster_vectors(vectors, k=3, seed=2)
    assert sampled.parameters["umap"]["fitted_on"] == 120
    assert same_partition(sampled.labels, truth)
    with pytest.raises(InputError, match="--reduce must be one of"):
        cluster_vectors(vectors, reduction="pca")


def test_the_eigengap_counts_the_groups_of_a_neighbour_graph():
    from scipy import sparse

    rng = np.random.default_rng(0)
    for groups in (2, 5, 9):
        size = 30
        weights = np.zeros((groups * size, groups * size))
        for g in range(groups):  # dense inside each group
            block = slice(g * size, (g + 1) * size)
            weights[block, block] = rng.uniform(0.5, 1.0, (size, size))
        weights += rng.uniform(0, 0.01, weights.shape)  # and faint links between all
        np.fill_diagonal(weights, 0)
        assert eigengap_k(sparse.csr_matrix(weights)) == groups
        assert eigengap_k(sparse.csr_matrix(weights)) == groups  # deterministic
