"""``--where KEY=VALUE`` on list metadata (tags: [NLP, BERT]) matches the documents whose list
holds the value, inside every ranking: k hits whenever k units match, in every mode, single and
sharded, from Python, the CLI and HTTP."""

from __future__ import annotations

import json

import pytest

from semsearch.index import Index, IndexSettings
from semsearch.readers import Document
from semsearch.search import MODES, SearchOptions
from semsearch.shards import ShardedIndex

TOPICS = ["kettle", "planet", "violin"]


def documents() -> list[Document]:
    """60 one-sentence documents; every third is tagged NLP (20 of them), all hold the query's
    words, so an unfiltered search is free to rank any of them first."""
    found = []
    for number in range(60):
        tags = ["notes", *(["NLP"] if number % 3 == 0 else []), TOPICS[number % 3]]
        found.append(Document(id=f"d{number:02d}", source="test",
                              text=f"Note {number} about the red kettle and the tea.",
                              metadata={"tags": tags, "year": 2000 + number % 2}))
    return found


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, fake_model):
    folder = tmp_path_factory.mktemp("filters")
    flat = IndexSettings(faiss="Flat")
    single = Index.create(folder / "single", model=str(fake_model), settings=flat)
    single.add(documents())
    sharded = ShardedIndex.create(folder / "sharded", 3, model=str(fake_model), settings=flat)
    sharded.add(documents())
    return {"single": single, "sharded": sharded}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_a_list_matches_when_it_holds_the_value(indexes, kind, mode):
    index = indexes[kind]
    hits = index.search("red kettle tea", SearchOptions(k=5, mode=mode,
                                                        where={"tags": "NLP"}))[0]
    assert len(hits) == 5  # 20 units match: k of them come back, never fewer
    assert all("NLP" in hit.metadata["tags"] for hit in hits)
    every = index.search("red kettle tea", SearchOptions(k=50, mode=mode,
                                                         where={"tags": "NLP"}))[0]
    assert len(every) == 20 and {hit.document_id for hit in every} == {
        f"d{number:02d}" for number in range(0, 60, 3)}


@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_lists_and_scalars_filter_together_and_nothing_partial_matches(indexes, kind):
    index = indexes[kind]
    both = index.search("red kettle", SearchOptions(k=50, where={"tags": "NLP", "year": "2000"}))
    assert {hit.document_id for hit in both[0]} == {f"d{n:02d}" for n in range(0, 60, 6)}
    assert index.search("red kettle", SearchOptions(where={"tags": "NL"}))[0] == []  # no prefix
    assert index.search("red kettle", SearchOptions(where={"tags": '["notes"'}))[0] == []


def test_the_cli_and_http_filter_lists_alike(indexes, run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    index = indexes["single"]
    expected = [hit.to_dict() for hit in index.search(
        "red kettle", SearchOptions(k=7, where={"tags": "violin"}))[0]]
    assert len(expected) == 7 and all("violin" in hit["metadata"]["tags"] for hit in expected)
    printed = run("query", "red kettle", "-i", index.path, "-k", "7", "--where", "tags=violin",
                  "--json")
    assert json.loads(printed.stdout)[0]["hits"] == expected
    with TestClient(create_app(Index.open(index.path))) as client:
        answer = client.get("/search", params={"q": "red kettle", "k": 7,
                                                "where": "tags=violin"}).json()
    assert answer["hits"] == expected
