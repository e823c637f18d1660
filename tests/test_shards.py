"""Sharded indexes: the same hits as one index, documents in exactly one shard, clustering
across shards, and (with Ray installed) distributed indexing that survives killed workers.

The indexes use the fake model (tests/fake_model.py): a sharded index must give exactly what one
index holding the same vectors gives, whatever the model."""

import json
import os
import signal

import numpy as np
import pytest

from semsearch.index import Index, IndexSettings
from semsearch.readers import Document
from semsearch.search import SearchOptions
from semsearch.shards import ShardedIndex, shard_of

TOPICS = {
    "cooking": ["Knead the dough and let the bread rise overnight.",
                "Simmer the tomato sauce with garlic and basil.",
                "Roast the vegetables with olive oil."],
    "space": ["The Moon orbits the Earth every month.", "Mars is called the red planet.",
              "Astronauts live on the space station."],
    "health": ["Vaccines train the immune system.", "Sleep helps the body recover.",
               "Walking every day lowers blood pressure."],
    "computing": ["The compiler turns source code into machine code.",
                  "A database index speeds up queries.", "Unit tests catch regressions early."],
}


def make_documents(count: int) -> list[Document]:
    """Documents whose sentences repeat across documents (exact ties in dense and BM25
    scores, which must break the same way sharded or not) plus one unique sentence each."""
    documents = []
    for number in range(count):
        topic = sorted(TOPICS)[number % len(TOPICS)]
        pool = TOPICS[topic]
        text = (f"{pool[number % 3]} {pool[(number + 1) % 3]} Note {number} mentions"
                f" item{number % 7} and {topic}.")
        documents.append(Document(id=f"doc-{number}", text=text, title=f"{topic} {number}",
                                  metadata={"topic": topic, "even": str(number % 2 == 0)}))
    return documents


def write_jsonl(path, documents):
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text, "title": d.title,
                                        **d.metadata}) + "\n" for d in documents))
    return path


QUERIES = ["bread and garlic", "planets and the moon", "immune system", "database queries",
           "item3 computing", "sleep", "how do compilers work?", "zzz unknownword"]
CASES = [{"mode": "dense"}, {"mode": "keyword"}, {"mode": "hybrid"},
         {"mode": "hybrid", "by_document": True}, {"mode": "dense", "where": {"topic": "space"}},
         {"mode": "keyword", "where": {"even": "True"}},
         {"mode": "hybrid", "fusion": None, "where": {"topic": "health"}, "by_document": True}]


def hits(index, **options):
    options = {key: value for key, value in options.items() if value is not None}
    return [[hit.to_dict() for hit in found] for found in index.search(QUERIES,
                                                                    SearchOptions(k=5, **options))]


@pytest.fixture(scope="module")
def built(tmp_path_factory, fake_model):
    """The same 60 documents in one index and in a 3-shard index (Flat vectors)."""
    folder = tmp_path_factory.mktemp("shards")
    documents = make_documents(60)
    flat = IndexSettings(faiss="Flat")
    single = Index.create(folder / "single", model=str(fake_model), settings=flat)
    single.add(documents)
    sharded = ShardedIndex.create(folder / "sharded", 3, model=str(fake_model), settings=flat)
    sharded.add(documents)
    return single, sharded, documents


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_sharded_search_equals_one_index(built, case):
    single, sharded, _ = built
    expected = hits(single, **case)
    assert any(expected), "the case must find something"
    assert hits(sharded, **case) == expected  # same unit ids, order, scores, texts


@pytest.fixture(scope="module")
def built_documents(tmp_path_factory, fake_model):
    """The same documents as document units (sentence vectors, document keywords)."""
    folder = tmp_path_factory.mktemp("document-shards")
    documents = make_documents(60)
    settings = IndexSettings(faiss="Flat", unit="document")
    single = Index.create(folder / "single", model=str(fake_model), settings=settings)
    single.add(documents)
    sharded = ShardedIndex.create(folder / "sharded", 3, model=str(fake_model), settings=settings)
    sharded.add(documents)
    return single, sharded


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_sharded_document_search_equals_one_index(built_documents, case):
    single, sharded = built_documents
    assert single.info()["sentences"] == sharded.info()["sentences"] > 0
    expected = hits(single, **case)
    assert any(expected), "the case must find something"
    assert hits(sharded, **case) == expected


def test_empty_shards_search_like_the_rest(tmp_path, fake_model):
    documents = make_documents(2)
    single = Index.create(tmp_path / "single", model=str(fake_model))
    sharded = ShardedIndex.create(tmp_path / "sharded", 8, model=str(fake_model))
    for index in (single, sharded):
        index.add(documents)
    assert sorted(sharded.info()["shards"].values()).count(0) >= 6
    for mode in ("dense", "keyword", "hybrid"):
        assert hits(sharded, mode=mode) == hits(single, mode=mode)


def test_each_document_lives_in_exactly_one_shard(built):
    _, sharded, documents = built
    counts = sharded.info()["shards"]
    assert sum(counts.values()) == len(documents) and all(counts.values())
    for path in sharded.shard_paths:
        shard = Index.open(path)
        ids = {row[0] for row in shard.store.db.execute("select id from documents")}
        number = int(path.name.split("-")[1])
        assert ids and all(shard_of(i, 3) == number for i in ids)


def test_cli_sharded_index_reindex_remove_and_refusals(run, run_json, tmp_path, fake_model):
    documents = make_documents(24)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    index = tmp_path / "sharded"
    summary = run_json("index", source, "--index", index, "--shards", "3", "--model", fake_model)
    assert summary["added"] == 24
    info = run_json("info", "--index", index)
    assert info["documents"] == 24 and sum(info["shards"].values()) == 24

    # Changing one document re-embeds it in its shard only.
    generations = {p.name: Index.open(p).manifest["vectors_generation"]
                   for p in sorted(index.glob("shard-*"))}
    documents[5] = Document(id="doc-5", text="Quantum computers use qubits.", title="changed",
                            metadata={"topic": "computing", "even": "False"})
    write_jsonl(source, documents)
    summary = run_json("index", source, "--index", index)
    assert (summary["replaced"], summary["unchanged"]) == (1, 23)
    changed = {p.name for p in sorted(index.glob("shard-*"))
               if Index.open(p).manifest["vectors_generation"] != generations[p.name]}
    assert changed == {f"shard-{shard_of('doc-5', 3):03d}"}
    top = run_json("query", "qubits", "--index", index, "-k", "1")[0]["hits"][0]
    assert top["document_id"] == "doc-5"

    assert run_json("remove", "doc-5", "--index", index) == {"removed": 1}
    top = run_json("query", "qubits", "--index", index, "-k", "3", "--mode", "keyword")
    assert top[0]["hits"] == []

    report = run_json("check", "--index", index)
    assert report["consistent"] and report["units"] == report["vectors"] > 0
    assert len(report["shards"]) == 3
    sizes = run_json("compact", "--index", index)
    assert sizes["bytes_after"] <= sizes["bytes_before"]
    assert run_json("check", "--index", index)["consistent"]

    refused = run("index", source, "--index", index, "--shards", "2", expect=1)
    assert "has 3 shards" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    refused = run("index", source, "--index", tmp_path / "plain", "--ray", "local", expect=2)
    assert "--shards" in refused.stderr


def test_cluster_across_shards(run_json, built, tmp_path):
    _, sharded, documents = built
    run = run_json("cluster", "--index", sharded.path, "-k", "4")
    assert run["clusters"] == 4 and run["items"] == sum(
        len(Index.open(p).store.unit_ids()) for p in sharded.shard_paths)
    sizes = [c["size"] for c in run["cluster_list"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == run["items"]
    assert all(c["keywords"] and c["representatives"] for c in run["cluster_list"])
    # Every shard stored the run under the same id; a cluster is searchable across shards.
    for path in sharded.shard_paths:
        assert Index.open(path).store.cluster_run()["id"] == run["id"]
    found = run_json("query", "bread", "--index", sharded.path, "--cluster", "0", "-k", "50")
    members = {h["unit_id"] for h in found[0]["hits"]}
    assert 0 < len(members) <= run["cluster_list"][0]["size"]
    assert run_json("clusters", "--index", sharded.path)[-1]["id"] == run["id"]


def test_serve_a_sharded_index(built):
    pytest.importorskip("fastapi", reason="semsearch[serve] is not installed")
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    single, sharded, _ = built
    with TestClient(create_app(ShardedIndex.open(sharded.path))) as client:
        health = client.get("/health").json()
        assert (health["documents"], health["units"]) == (60, single.manifest["units"])
        body = client.get("/search", params={"q": "immune system", "k": 5}).json()
        expected = single.search("immune system", SearchOptions(k=5))[0]
        assert [(h["unit_id"], h["score"]) for h in body["hits"]] == [
            (h.unit_id, h.score) for h in expected]
        document = client.get("/documents/doc-7").json()
        assert document["id"] == "doc-7" and len(document["units"]) == 3
        assert client.get("/documents/nope").status_code == 404
        runs = client.get("/clusters").json()["runs"]
        assert runs and client.get(f"/clusters/{runs[-1]['id']}").status_code == 200


# ---- Ray ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for this module's tests."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'semsearch[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def snapshot(sharded: ShardedIndex) -> dict:
    """What an index holds, by document and unit position (not by unit id)."""
    units, vectors = {}, {}
    for path in sharded.shard_paths:
        shard = Index.open(path)
        for unit_id, document_id, ordinal, text in shard.store.db.execute(
                "select id, document_id, ordinal, text from units"):
            units[(document_id, ordinal)] = text
            vectors[(document_id, ordinal)] = shard.vectors.vectors(np.array([unit_id]))[0]
        shard.store.close()
    return {"units": units, "vectors": vectors}


def assert_same(left: dict, right: dict) -> None:
    assert left["units"] == right["units"]
    for key, vector in left["vectors"].items():
        np.testing.assert_allclose(vector, right["vectors"][key], atol=1e-5)


def ranked(hit: dict) -> tuple:
    """A hit without where its document came from (a file here, objects there)."""
    return tuple(hit[key] for key in ("unit_id", "score", "dense_score", "keyword_score",
                                      "document_id", "ordinal", "text"))


def test_ray_cli_index_and_query_equal_one_index(run_json, built, tmp_path, local_ray):
    single, _, documents = built
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    index = tmp_path / "on-ray"
    summary = run_json("index", source, "--index", index, "--faiss", "Flat", "--shards", "4",
                       "--ray", "--workers", "2", "--model", single.manifest["model"])
    assert summary["added"] == 60
    for case in ({"mode": "dense"}, {"mode": "keyword"}, {"mode": "hybrid"}):
        found = run_json("query", *QUERIES, "--index", index, "-k", "5", "--ray", "--mode",
                         case["mode"])
        assert [[ranked(h) for h in q["hits"]] for q in found] == [
            [ranked(h) for h in q] for q in hits(single, **case)]


def test_killed_workers_then_rerun_give_the_uninterrupted_index(tmp_path, local_ray,
                                                                fake_model):
    """An embedding worker killed mid-run is replaced and its chunk retried; a shard writer
    killed mid-run stops the run with a clear error, and a re-run completes the same index."""
    from semsearch.distributed import RayRunner
    from semsearch.encoder import Runtime
    from semsearch.errors import SemsearchError

    fp32 = Runtime(precision="fp32")  # on the workers too: bf16 rounds by batch shape
    documents = make_documents(2100)  # three chunks
    model = str(fake_model)
    reference = ShardedIndex.create(tmp_path / "reference", 3, model=model, runtime=fp32)
    reference.add(documents)

    def killing(runner, target, at):
        for number, document in enumerate(documents):
            if number == at:
                os.kill(target(runner), signal.SIGKILL)
            yield document

    runner = RayRunner(workers=2)
    sharded = ShardedIndex.create(tmp_path / "embedder-killed", 3, model=model, runner=runner,
                                  runtime=fp32)
    result = sharded.add(killing(runner, lambda r: r.embedder_pids()[0], 1100),
                         commit_seconds=0)
    assert result.added == len(documents)
    assert_same(snapshot(sharded), snapshot(reference))
    runner.close()  # its actors hold the CPUs the next pool needs (else until Ray's next GC)

    runner = RayRunner(workers=2)
    sharded = ShardedIndex.create(tmp_path / "writer-killed", 3, model=model, runner=runner,
                                  runtime=fp32)
    with pytest.raises(SemsearchError, match="run the same command again"):
        sharded.add(killing(runner, lambda r: r.writer_pids()[1], 2060), commit_seconds=0)
    assert ShardedIndex.open(sharded.path).info()["documents"] < len(documents)
    rerun = sharded.add(documents)
    assert rerun.skipped > 0 and rerun.added + rerun.skipped == len(documents)
    assert_same(snapshot(sharded), snapshot(reference))
    # repeated sentences tie; their vectors agree to 1e-5, not bit for bit (each run batches
    # them differently), so compare what ranks where by text and score, not by document
    ranking = [[[(h["text"], round(h["score"], 4)) for h in found]
                for found in hits(index, mode="hybrid")] for index in (sharded, reference)]
    assert ranking[0] == ranking[1]
    runner.close()
