"""Multi-granularity dense scores (sentence vectors beside passage and document units) and
document-level keyword scores (a document index's BM25 of whole documents)."""

import numpy as np
import pytest

from semsearch.bm25 import analyze, bm25, query_terms
from semsearch.index import Index, IndexSettings, settings_of
from semsearch.keywords import keyword_text
from semsearch.readers import Document
from semsearch.search import SearchOptions
from semsearch.units import unit_sentences

FILLER = ("The committee met on a grey morning to read the minutes of the last meeting, and"
          " every member agreed that the agenda was long but worth the time it took.")


def long_document(number: int, first: str, last: str) -> Document:
    """A document longer than the model's 256 tokens (so two chunks), ``first`` in its first
    sentence and ``last`` in its last."""
    body = " ".join([first, *[FILLER] * 9, last])
    return Document(id=f"long-{number}", text=body, title=f"Minutes {number}",
                    metadata={"kind": "minutes", "number": str(number)})


def documents() -> list[Document]:
    return [long_document(1, "Zebras graze near the river.", "Volcanoes erupt with lava."),
            long_document(2, "Violins need new strings.", "Tulips open in spring."),
            Document(id="short", text="Zebras and volcanoes share one sentence here.",
                     title="Short", metadata={"kind": "note", "number": "3"}),
            Document(id="two", text="Glaciers carve valleys. Deserts get little rain.",
                     title="Two", metadata={"kind": "note", "number": "4"})]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, fake_model):
    """The same documents as document units: today's default, and as an index built before
    sentence vectors and document keywords."""
    folder = tmp_path_factory.mktemp("granularity")
    new = Index.create(folder / "new", model=str(fake_model),
                       settings=IndexSettings(unit="document", faiss="Flat"))
    new.add(documents())
    old = Index.create(folder / "old", model=str(fake_model), settings=IndexSettings(
        unit="document", faiss="Flat", sentence_vectors=False, document_keywords=False))
    old.add(documents())
    return new, old


def test_long_documents_are_chunked_and_every_multi_sentence_unit_has_its_sentences(indexes):
    new, old = indexes
    units = new.store.db.execute("select id, document_id, text from units").fetchall()
    assert sum(document == "long-1" for _, document, _ in units) == 2  # chunked
    stored = new.store.sentence_vectors([unit_id for unit_id, _, _ in units])
    for unit_id, _, text in units:
        sentences = unit_sentences(text)
        assert len(stored.get(unit_id, [])) == len(sentences)  # "short" has none
    assert new.info()["sentences"] == sum(len(v) for v in stored.values()) > 0
    assert old.info()["sentences"] == 0


def test_a_unit_scores_the_mean_of_its_own_and_its_best_sentences_cosine(indexes):
    new, old = indexes
    query = "volcanoes erupt lava"
    vector = new.encoder.encode([query])[0]
    for index, granular in ((new, True), (old, False)):
        for hit in index.search(query, SearchOptions(mode="dense", k=6))[0]:
            own = float(index.vectors.scores(vector, np.array([hit.unit_id]))[0])
            sentences = unit_sentences(hit.text)
            expected = own
            if granular and sentences:
                expected = (own + float((new.encoder.encode(sentences) @ vector).max())) / 2
            assert hit.dense_score == pytest.approx(expected, abs=2e-3)  # float16 sentences
    # the chunk whose last sentence says it gains on the one that only shares the filler
    assert new.search(query, SearchOptions(mode="dense", k=1))[0][0].document_id == "long-1"


def test_document_keywords_score_whole_documents_under_their_first_unit(indexes):
    new, old = indexes
    query = "zebras volcanoes"  # the first chunk of long-1 says one, its second the other
    found = new.search(query, SearchOptions(mode="keyword", k=5))[0]
    assert {hit.document_id for hit in found} == {"long-1", "short"}
    first = dict(new.store.db.execute("select document_id, min(id) from units group by 1"))
    assert all(hit.unit_id == first[hit.document_id] for hit in found)
    terms = query_terms(query)
    whole = keyword_text("Minutes 1", [text for (text,) in new.store.db.execute(
        "select text from units where document_id = 'long-1' order by ordinal")])
    assert dict(new.store.document_terms([first["long-1"]])) == {first["long-1"]: analyze(whole)}
    statistics = new.keywords.statistics(terms)
    expected = bm25(statistics, terms, [(first["long-1"], analyze(whole))])[0][0]
    assert next(h.keyword_score for h in found if h.document_id == "long-1") == pytest.approx(
        expected, rel=1e-5)
    # per chunk (an index built before), each chunk of long-1 matches with its one word
    by_chunk = old.search(query, SearchOptions(mode="keyword", k=5))[0]
    assert sum(hit.document_id == "long-1" for hit in by_chunk) == 2


def test_hybrid_gives_every_unit_its_documents_keyword_score(indexes):
    new, _ = indexes
    found = new.search("zebras volcanoes", SearchOptions(mode="hybrid", k=10))[0]
    scores = {}
    for hit in found:
        scores.setdefault(hit.document_id, set()).add(hit.keyword_score)
    assert len(scores["long-1"]) == 1 and None not in scores["long-1"]
    assert sum(hit.document_id == "long-1" for hit in found) == 2


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_filters_and_clusters_hold_in_a_document_keyword_index(indexes, mode, run_json):
    new, _ = indexes
    found = new.search("zebras volcanoes", SearchOptions(mode=mode, k=10,
                                                         where={"kind": "minutes"}))[0]
    assert found and {hit.metadata["kind"] for hit in found} == {"minutes"}
    every = new.search("zebras volcanoes", SearchOptions(mode=mode, k=10,
                                                         where={"number": "1"}))[0]
    assert every and {hit.document_id for hit in every} == {"long-1"}


def test_replacing_and_removing_documents_takes_their_sentences_and_keywords(tmp_path,
                                                                              fake_model):
    index = Index.create(tmp_path / "index", model=str(fake_model),
                         settings=IndexSettings(unit="document"))
    index.add(documents())
    before = index.info()["sentences"]
    assert index.add(documents()).skipped == 4  # nothing changed: nothing written
    changed = long_document(1, "Zebras graze near the river.", "Nothing erupts any more.")
    index.add([changed])
    index.remove(["two"])
    orphans = index.store.db.execute(
        "select count(*) from sentence_vectors where unit_id not in (select id from units)"
    ).fetchone()[0]
    assert orphans == 0 and index.info()["sentences"] == before - 2
    assert index.store.db.execute("select count(*) from document_terms").fetchone()[0] == 3
    assert index.keywords.units == index.store.count("documents") == 3
    assert not index.search("volcanoes lava", SearchOptions(mode="keyword", where={
        "number": "1"}))[0]
    assert index.check()["consistent"]


def test_check_repair_rebuilds_a_document_keyword_index(tmp_path, fake_model):
    index = Index.create(tmp_path / "index", model=str(fake_model),
                         settings=IndexSettings(unit="document"))
    index.add(documents())
    expected = [h.to_dict() for h in index.search("zebras", SearchOptions(mode="keyword"))[0]]
    folder = index.path / index.manifest["keywords_folder"]
    for file in folder.iterdir():
        if file.suffix == ".idx":
            file.write_bytes(b"\0" * file.stat().st_size)
    again = Index.open(index.path)
    report = again.check()
    assert not report["keywords_ok"]
    assert again.check(repair=True)["repaired"]["keywords_rebuilt"]
    assert again.check()["consistent"]
    assert [h.to_dict() for h in again.search("zebras", SearchOptions(mode="keyword"))[0]] == (
        expected)


def test_an_index_from_before_reads_as_built_without_them():
    assert settings_of({"unit": "document"}).sentence_vectors is False
    assert settings_of({"unit": "document"}).document_keywords is False
    assert IndexSettings().sentence_vectors and IndexSettings().document_keywords


def test_cli_index_settings_and_info(run_json, tmp_path, fake_model):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(
        f'{{"id": "{d.id}", "title": "{d.title}", "text": "{d.text}"}}\n' for d in documents()))
    made = run_json("index", notes, "--index", tmp_path / "a", "--model", fake_model,
                    "--unit", "document")
    assert made["units"] == 6
    assert run_json("info", "--index", tmp_path / "a")["sentences"] > 0
    run_json("index", notes, "--index", tmp_path / "b", "--model", fake_model, "--unit",
             "document", "--no-sentence-vectors", "--unit-keywords")
    info = run_json("info", "--index", tmp_path / "b")
    assert info["sentences"] == 0
    hits = run_json("query", "zebras volcanoes", "--index", tmp_path / "b", "--mode", "keyword")
    assert sum(h["document_id"] == "long-1" for h in hits[0]["hits"]) == 2
