"""The HTTP API of `semsearch serve`, in-process (FastAPI's TestClient) on a real index."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="semsearch[serve] is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import XSS  # noqa: E402
from semsearch import Index  # noqa: E402
from semsearch.errors import InputError  # noqa: E402
from semsearch.search import SearchOptions  # noqa: E402
from semsearch.server import Reader, ServerError, create_app  # noqa: E402

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client(site_index):
    with TestClient(create_app(Index.open(site_index))) as client:
        yield client


@pytest.fixture
def writable(site_index, tmp_path):
    path = tmp_path / "writable"
    shutil.copytree(site_index, path)
    with TestClient(create_app(Index.open(path), allow_writes=True, token=TOKEN)) as client:
        yield client


def test_health_reports_model_and_counts(client):
    health = client.get("/health").json()
    assert health == {**health, "status": "ok", "model": "all-MiniLM-L6-v2", "documents": 4,
                      "unit": "sentence", "writes": False}
    assert health["units"] == health["vectors"] > 4


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_get_search_finds_the_expected_sentence(client, mode):
    body = client.get("/search", params={"q": "bake the loaf in an oven", "mode": mode,
                                         "k": 3, "context": 1}).json()
    top = body["hits"][0]
    assert body["query"] == "bake the loaf in an oven"
    assert top["document_id"] == "notes/bread.txt" and top["text"].startswith("Bake the loaf")
    assert [c["ordinal"] for c in top["context"]] == [top["ordinal"] - 1, top["ordinal"] + 1]
    assert (top["dense_score"] is None) == (mode == "keyword")
    assert len(body["hits"]) == (1 if mode == "keyword" else 3)  # only one has those words


def test_search_options_filter_group_and_floor(client):
    def ids(**params):
        return [h["document_id"] for h in
                client.get("/search", params={"q": "the red planet", **params}).json()["hits"]]

    assert set(ids(where="topic=animals")) == {"pets"}
    assert len(ids(by_document="true", k=10)) == 4  # one hit for each document
    assert ids(mode="dense", min_score=0.99) == []
    run = client.get("/clusters").json()["runs"][-1]["id"]
    clusters = client.get(f"/clusters/{run}").json()["cluster_list"]
    space = next(c["cluster"] for c in clusters
                 if any(r["document_id"] == "space" for r in c["representatives"]))
    assert "space" in ids(cluster=f"{run}:{space}", k=50)
    assert ids(cluster=str(space), k=50) == ids(cluster=f"{run}:{space}", k=50)


def test_post_search_batches_queries_with_the_same_answers(client):
    queries = ["the red planet", "cats sleeping", "golden crust"]
    batch = client.post("/search", json={"queries": queries, "k": 2, "mode": "dense"}).json()
    singles = [client.get("/search", params={"q": q, "k": 2, "mode": "dense"}).json()
               for q in queries]
    assert [r["query"] for r in batch["results"]] == queries
    assert [[h["unit_id"] for h in r["hits"]] for r in batch["results"]] == [
        [h["unit_id"] for h in s["hits"]] for s in singles]


def test_concurrent_requests_share_batches_and_get_their_own_answers(client):
    queries = ["the red planet", "cats sleeping", "golden crust", "dogs walking"] * 6

    def ask(query):
        return client.get("/search", params={"q": query, "k": 1, "mode": "hybrid"}).json()

    expected = {q: ask(q)["hits"][0]["unit_id"] for q in set(queries)}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, queries))
    assert [a["query"] for a in answers] == queries
    assert [a["hits"][0]["unit_id"] for a in answers] == [expected[q] for q in queries]


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "x", "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"q": "x", "mode": "fuzzy"}, "mode: Input should be"),
    ({"k": 3}, "q: Field required"),
    ({"q": "x", "where": "no-equals-sign"}, "--where expects key=value"),
    ({"q": "x", "where": "bad key=1"}, "invalid field name"),
    ({"q": "x", "cluster": "abc"}, "expects ID or RUN:ID"),
    ({"q": "x", "cluster": "99:0"}, "no cluster run 99"),
    ({"q": "x", "alpha": 2}, "alpha: Input should be less than or equal to 1"),
])
def test_bad_parameters_are_400_with_a_message(client, params, message):
    response = client.get("/search", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_bad_post_bodies_are_400(client):
    assert client.post("/search", json={"queries": []}).status_code == 400
    assert client.post("/search", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 400


def test_documents_by_id_including_ids_with_slashes(client):
    document = client.get("/documents/notes/bread.txt").json()
    assert document["title"] == "Baking bread" and document["metadata"] == {"topic": "food"}
    assert [u["ordinal"] for u in document["units"]] == [0, 1, 2]
    assert document["units"][1]["text"].startswith("Bake the loaf")
    missing = client.get("/documents/no/such/doc")
    assert missing.status_code == 404 and missing.json() == {"error": "no document 'no/such/doc'"}


def test_cluster_runs_and_their_map(client, site_index, tmp_path):
    runs = client.get("/clusters").json()["runs"]
    assert runs and runs[-1]["method"] == "kmeans"
    run = client.get(f"/clusters/{runs[-1]['id']}").json()
    assert sum(c["size"] for c in run["cluster_list"]) == run["items"]
    assert all(c["keywords"] and c["representatives"] for c in run["cluster_list"])
    assert client.get("/clusters/999").status_code == 404
    assert client.get("/clusters/x").status_code == 400
    if run["map"] is None:
        assert client.get(f"/clusters/{run['id']}/map.png").status_code == 404


def test_a_drawn_map_is_served(writable, tmp_path):
    pytest.importorskip("matplotlib")
    from semsearch.clustering import plot_map

    index = Index.open(tmp_path / "writable")
    run = index.store.cluster_run()
    plot_map(index, run, str(tmp_path / "map.png"))
    body = writable.get(f"/clusters/{run['id']}").json()
    assert body["map"] == f"/clusters/{run['id']}/map.png"
    image = writable.get(body["map"])
    assert image.headers["content-type"] == "image/png"
    assert image.content == (tmp_path / "map.png").read_bytes()


def test_writes_are_off_by_default(client):
    response = client.post("/documents", json={"documents": [{"id": "x", "text": "hello"}]},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403 and "--allow-writes" in response.json()["error"]
    assert client.delete("/documents/pets").status_code == 403
    assert client.get("/documents/pets").status_code == 200


def test_writes_need_the_bearer_token(writable):
    new = {"documents": [{"id": "tea", "text": "Green tea is brewed at 80 degrees.",
                          "metadata": {"topic": "drinks"}}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = writable.post("/documents", json=new, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    assert writable.delete("/documents/pets").status_code == 401
    assert writable.get("/health").json()["documents"] == 4


def test_authorised_writes_are_searchable_at_once(writable):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    new = {"documents": [{"id": "tea", "text": "Green tea is brewed at 80 degrees.",
                          "title": "Tea", "metadata": {"topic": "drinks"}}]}
    added = writable.post("/documents", json=new, headers=auth).json()
    assert added.pop("seconds") >= 0  # the summary `semsearch index --json` prints
    assert added == {"added": 1, "replaced": 0, "unchanged": 0, "empty": 0, "units": 1,
                     "truncated": 0, "warnings": []}
    assert writable.post("/documents", json=new, headers=auth).json()["unchanged"] == 1
    hits = writable.get("/search", params={"q": "brewing green tea", "k": 1}).json()["hits"]
    assert hits[0]["document_id"] == "tea" and hits[0]["metadata"] == {"topic": "drinks"}
    assert writable.delete("/documents/api", headers=auth).status_code == 404  # ids only,
    assert writable.get("/documents/tea").status_code == 200  # never the source "api"
    assert writable.delete("/documents/tea", headers=auth).json() == {"removed": 1}
    assert writable.delete("/documents/tea", headers=auth).status_code == 404
    hits = writable.get("/search", params={"q": "brewing green tea", "k": 5}).json()["hits"]
    assert "tea" not in {h["document_id"] for h in hits}
    assert writable.get("/health").json()["documents"] == 4
    assert Index.open(writable.app.state.served.reader.index.path).check()["consistent"]


def test_reads_during_writes_never_fail_or_see_half_a_write(writable):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    batches = [{"documents": [{"id": f"w{n}-{i}", "text": f"Note {n}.{i} about comets and"
                               f" tides. Comet tails point away from the Sun {n}."}
                              for i in range(5)]} for n in range(6)]

    def write():
        return [writable.post("/documents", json=batch, headers=auth).status_code
                for batch in batches]

    def read(number):
        found = writable.get("/search", params={"q": "comet tails", "k": 500,
                                                "mode": ("dense", "keyword", "hybrid")[number % 3]})
        hits = found.json()["hits"]
        # a document is there with both its units, or not at all
        counts = {}
        for hit in hits:
            counts[hit["document_id"]] = counts.get(hit["document_id"], 0) + 1
        return found.status_code, all(v == 2 for k, v in counts.items() if k.startswith("w"))

    with ThreadPoolExecutor(5) as pool:
        writer = pool.submit(write)
        reads = list(pool.map(read, range(60)))
    assert writer.result() == [200] * len(batches)
    assert reads == [(200, True)] * 60
    assert writable.get("/health").json()["documents"] == 4 + 30
    assert Index.open(writable.app.state.served.reader.index.path).check()["consistent"]


def test_writes_without_a_token_are_refused_at_start(site_index):
    with pytest.raises(InputError, match="--allow-writes needs a token"):
        create_app(Index.open(site_index), allow_writes=True, token=None)


def test_document_markup_comes_back_as_plain_json_text(client):
    hits = client.get("/search", params={"q": "zebrafish markup", "k": 1}).json()["hits"]
    assert XSS in hits[0]["text"] and hits[0]["title"] == "<b>Markup</b> title"


def test_page_schema_and_unknown_routes(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert "innerHTML" not in client.get("/static/app.js").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/health", "/documents/{document_id}", "/clusters",
            "/clusters/{run}", "/clusters/{run}/map.png", "/documents"} <= set(paths)
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json() == {"error": "no such page: /nowhere"}


def test_reader_skips_cancelled_requests_and_keeps_serving(site_index):
    reader = Reader(Index.open(site_index))
    gate = threading.Event()
    busy = reader.call(gate.wait, 30)  # holds the reader thread while requests queue up
    cancelled = reader.search(["the red planet"], SearchOptions(k=1))
    assert cancelled.cancel()  # its client went away
    failing = reader.search(["the red planet"], SearchOptions(cluster="99:0"))
    after = reader.search(["the red planet"], SearchOptions(k=1, mode="dense"))
    gate.set()
    assert busy.result(30) is True
    with pytest.raises(InputError, match="no cluster run 99"):
        failing.result(30)
    assert after.result(30)[0][0].document_id == "space"
    reader.stop()
    with pytest.raises(ServerError, match="stopping"):
        reader.search(["the red planet"], SearchOptions(k=1)).result(1)


def test_requests_must_name_the_served_host(site_index):
    app = create_app(Index.open(site_index), host="127.0.0.1")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200
        rebound = client.get("/health", headers={"host": "attacker.example"})
        assert rebound.status_code == 400


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_serve_binds_localhost_by_default_and_warns_otherwise(run, site_index, monkeypatch,
                                                              host, warned):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options))
    args = ["--backend", "torch", "serve", "--index", site_index, "--port", "8123"]
    result = run(*(args if host == "127.0.0.1" else [*args, "--host", host]))
    assert served["host"] == host and served["port"] == 8123
    assert ("anyone who can reach this machine" in result.stderr) == warned
    assert "(writes off)" in result.stderr
    assert "--allow-writes needs a token" in run(*args, "--allow-writes", expect=1).stderr


@pytest.mark.parametrize(("options", "expected"), [
    ([], "onnx fp32"),  # the default on a CPU
    (["--precision", "int8"], "onnx int8"),
    (["--precision", "bf16"], "torch bf16"),  # a precision ONNX Runtime cannot run: torch
    (["--backend", "torch"], "torch auto"),  # auto: bf16 on CPUs with bf16 units, else fp32
])
def test_serve_picks_onnx_runtime_unless_told_otherwise(run, site_index, monkeypatch, options,
                                                        expected):
    import uvicorn

    from semsearch.encoder import default_device, resolve_precision

    if default_device() != "cpu":
        pytest.skip("the default encoder differs on this machine")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    result = run(*options, "serve", "--index", site_index)
    expected = expected.replace("auto", resolve_precision("auto", "cpu"))
    assert f"encoder {expected})" in result.stderr
