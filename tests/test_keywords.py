"""The keyword index (tantivy, one folder per commit): its top k equals exact BM25 over every
unit, with its own statistics or a sharded index's; filters agree with the store's SQL on every
JSON type; generations never touch the files of the one before; damage is found and repaired;
an index from before it is upgraded by its next write."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3

import numpy as np
import pytest

from semsearch.bm25 import KeywordStatistics, analyze, bm25, query_terms
from semsearch.errors import IndexMismatchError
from semsearch.index import Index, IndexSettings
from semsearch.keywords import FOLDER_PREFIX, field_terms
from semsearch.readers import Document
from semsearch.search import SearchOptions

WORDS = ["heron", "river", "stone", "mill", "otter", "bread", "oven", "moon", "field", "tide",
         "running", "runs", "glacier", "violin", "market", "protein", "comet"]


def corpus(count: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    return [Document(id=f"d{n}", source="test",
                     text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))),
                     metadata={"group": str(n % 4), "tags": ["all", f"t{n % 3}"]})
            for n in range(count)]


@pytest.fixture
def index(tmp_path, fake_model):
    """Keyword entries per unit (a document index by document is tests/test_granularity.py's)."""
    built = Index.create(tmp_path / "idx", model=str(fake_model), settings=IndexSettings(
        unit="document", faiss="Flat", document_keywords=False))
    built.add(corpus(300))
    built.remove([f"d{n}" for n in range(0, 300, 7)], ids_only=True)  # deletes in the segments
    built.add(corpus(20, seed=1)[:10])  # replaces d0..d9 (d0 and d7 come back)
    return built


def exact(index: Index, text: str, limit: int, keep=lambda row: True) -> list[tuple[float, int]]:
    """BM25 of every unit, scored in full with statistics counted here: what the pruned search
    must return."""
    terms = query_terms(text)
    rows = list(index.store.keyword_rows())
    analysed = [analyze(unit_text) for _, unit_text, _ in rows]
    statistics = KeywordStatistics(len(rows), sum(map(len, analysed)), tuple(
        sum(term in tokens for tokens in analysed) for term in terms))
    kept = [(unit_id, tokens) for (unit_id, _, metadata), tokens in zip(rows, analysed,
                                                                       strict=True)
            if keep(json.loads(metadata))]
    return bm25(statistics, terms, kept)[:limit]


@pytest.mark.parametrize("text", ["heron river", "running otter moon", "comet", "the mill",
                                  "glacier violin market protein stone bread"])
def test_the_pruned_top_k_is_exact_bm25_over_every_unit(index, text):
    for limit in (1, 5, 40):
        found = index.keyword_search(text, limit)
        assert found == exact(index, text, limit)


def test_filters_keep_the_search_exact_and_complete(index):
    found = index.keyword_search("heron river otter", 30, where={"group": "2"})
    assert found == exact(index, "heron river otter", 30, lambda m: m["group"] == "2")
    tagged = index.keyword_search("heron river otter", 30, where={"tags": "t1"})
    assert tagged == exact(index, "heron river otter", 30, lambda m: "t1" in m["tags"])


def test_filtered_ids_are_the_stores_and_follow_every_write(index, tmp_path):
    where = {"group": "1"}
    first = index.filtered_unit_ids(where)
    assert np.array_equal(first, index.store.filtered_unit_ids(where))
    assert index.filtered_unit_ids(where) is first  # kept for this generation
    reader = Index.open(tmp_path / "idx")
    assert np.array_equal(reader.filtered_unit_ids(where), first)
    index.add([Document(id="new", source="test", text="heron", metadata={"group": "1"})])
    index.remove(["d1"], ids_only=True)
    for opened in (index, reader):  # the writer, and a reader of the new generation
        with opened.reading():
            assert np.array_equal(opened.filtered_unit_ids(where),
                                  index.store.filtered_unit_ids(where))
            hits = opened.search("heron", SearchOptions(mode="dense", k=500, where=where))[0]
        assert {hit.document_id for hit in hits} == {
            doc for doc, in index.store.conn.execute(
                "select id from documents where json_extract(metadata, '$.group') = '1'")}


def test_statistics_from_elsewhere_score_as_the_whole_corpus_would(index):
    terms = query_terms("heron moon")
    own = index.keywords.statistics(terms)
    wider = KeywordStatistics(own.units * 3, own.tokens * 2, tuple(n * 5 for n in
                                                                  own.frequencies))
    rows = [(unit_id, analyze(text)) for unit_id, text, _ in index.store.keyword_rows()]
    assert index.keyword_search("heron moon", 25, statistics=wider) == bm25(
        wider, terms, rows)[:25]


@pytest.mark.parametrize("value", ["text", 3, 2.5, 1e20, True, False, None, {"a": [1]},
                                   ["x", 4, None, True, [1, 2]]])
def test_filter_terms_are_what_the_stores_sql_compares(value):
    metadata = json.dumps({"key": value})
    connection = sqlite3.connect(":memory:")
    path = '$."key"'
    if isinstance(value, list):
        expected = {row[0] for row in connection.execute(
            "select cast(value as text) from json_each(?, ?)", [metadata, path])} - {None}
    else:
        expected = {connection.execute("select cast(json_extract(?, ?) as text)",
                                       [metadata, path]).fetchone()[0]} - {None}
    assert {term.split("\x1f", 1)[1] for term in field_terms([metadata])[0]} == expected


def test_each_commit_writes_a_new_generation_and_leaves_the_old_ones_files(index, tmp_path):
    before = index.manifest["keywords_folder"]
    old = {file.name: file.read_bytes() for file in (index.path / before).iterdir()}
    copy = tmp_path / "copy"
    shutil.copytree(index.path / before, copy)
    index.keyword_search("heron", 5)  # a reader holds the generation open
    index.add([Document(id="new", text="A heron by the mill race.", source="test")])
    after = index.manifest["keywords_folder"]
    assert after != before and not (index.path / before).exists()
    assert [p.name for p in index.path.glob(f"{FOLDER_PREFIX}*")] == [after]
    for name, content in old.items():  # hard links: the old generation's files never changed
        assert (copy / name).read_bytes() == content
    assert index.search("heron mill race", SearchOptions(k=1, mode="keyword"))[0][0].document_id \
        == "new"


def test_a_damaged_keyword_index_is_found_and_rebuilt(index, run, run_json):
    answer = index.keyword_search("heron river", 10)
    folder = index.path / index.manifest["keywords_folder"]
    victim = max((f for f in folder.iterdir() if f.suffix == ".idx"),
                 key=lambda f: f.stat().st_size)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    index.store.close()
    report = run_json("check", "-i", index.path, expect=1)
    assert not report["keywords_ok"] and "checksum" in report["keywords_error"]
    result = run("query", "-i", index.path, "heron", "--mode", "keyword", expect=1)
    assert "checksum" in result.stderr and result.stderr.count("\n") == 1
    repaired = run_json("check", "-i", index.path, "--repair")
    assert repaired["consistent"] and repaired["repaired"]["keywords_rebuilt"]
    assert Index.open(index.path).keyword_search("heron river", 10) == answer


def test_an_index_from_before_the_keyword_index_is_upgraded_by_its_next_write(index, run,
                                                                              run_json):
    answer = index.keyword_search("heron river", 10)
    with sqlite3.connect(index.path / "store.db") as connection:  # as an older index was
        connection.execute("delete from manifest where key like 'keywords_%'")
        connection.execute("create virtual table units_fts using fts5(text)")
    index.store.close()
    stale = Index.open(index.path)
    with pytest.raises(IndexMismatchError, match="check --repair"):
        stale.keyword_search("heron", 3)
    assert run_json("check", "-i", index.path, "--repair")["consistent"]
    upgraded = Index.open(index.path)
    assert upgraded.keyword_search("heron river", 10) == answer
    assert upgraded.store.conn.execute(
        "select count(*) from sqlite_master where name = 'units_fts'").fetchone()[0] == 0
    assert np.array_equal(upgraded.keywords.unit_ids(), np.sort(upgraded.store.unit_ids()))
