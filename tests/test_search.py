import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA
from semsearch.bm25 import MAX_KEYWORD_TERMS, query_terms
from semsearch.index import Index
from semsearch.readers import Document
from semsearch.search import MODES, SearchOptions

WORD = re.compile(r"\w+")
KETTLE = ("Our shop opens at nine and closes at six; deliveries arrive on Tuesdays, and the order"
          " code for the blue kettle is QX7R2, which customers often ask about.")


def parts_documents() -> list[Document]:
    """Short notes on parts with codes close to QX7R2, one long text that holds QX7R2, and
    sentences on other topics around them."""
    notes = [Document(id=f"part{i}", text=f"Part QX7R{i} fits the older kettle.")
             for i in range(3, 9)]
    others = [Document(id=r["id"], text=r["text"])
              for r in map(json.loads, (DATA / "topics-mini.jsonl").read_text().splitlines())]
    return [*notes, Document(id="shop", text=KETTLE), *others]


@pytest.fixture(scope="module")
def parts_index(tmp_path_factory, encoder):
    """The parts with the default model: that dense search misses the rare code is its doing."""
    index = Index.create(tmp_path_factory.mktemp("parts") / "index")
    index.add(parts_documents())
    return index


@pytest.fixture(scope="module")
def fake_parts_index(tmp_path_factory, fake_model):
    """The parts with the fake model, for what does not hang on the model: query parsing,
    fallbacks, both scores on every hit, the score floor."""
    index = Index.create(tmp_path_factory.mktemp("fake-parts") / "index", model=str(fake_model))
    index.add(parts_documents())
    return index


def ids(hits):
    return [hit.document_id for hit in hits]


def test_rare_exact_term_missed_by_dense_is_found_by_hybrid(parts_index):
    assert "shop" not in ids(parts_index.search("QX7R2", SearchOptions(k=5, mode="dense"))[0])
    assert ids(parts_index.search("QX7R2", SearchOptions(k=5, mode="keyword"))[0]) == ["shop"]
    for fusion in ("weighted", "rrf"):
        hybrid = parts_index.search("QX7R2", SearchOptions(k=5, mode="hybrid", fusion=fusion))[0]
        assert ids(hybrid)[0] == "shop"
        assert hybrid[0].keyword_score > 0 and hybrid[0].dense_score is not None


def test_hybrid_scores_every_hit_both_ways(fake_parts_index):
    hits = fake_parts_index.search("older kettle part", SearchOptions(k=5, mode="hybrid"))[0]
    assert len(hits) == 5
    assert all(h.dense_score is not None and h.keyword_score is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_query_without_words_falls_back_to_dense(fake_parts_index):
    dense = fake_parts_index.search("🫖 ?!", SearchOptions(k=4, mode="dense"))[0]
    hybrid = fake_parts_index.search("🫖 ?!", SearchOptions(k=4, mode="hybrid"))[0]
    assert ids(hybrid) == ids(dense)
    assert fake_parts_index.search("🫖 ?!", SearchOptions(mode="keyword"))[0] == []


@pytest.mark.parametrize("text", [
    '"unbalanced', 'kettle*', 'NEAR(kettle part)', 'kettle AND OR NOT part', '(kettle',
    'text:kettle', '^kettle', '-kettle', 'kettle + part', "it's", "a" * 5000, "NOT",
])
def test_query_operators_are_plain_words(fake_parts_index, text):
    plain = " ".join(WORD.findall(text))  # the words alone, without any syntax around them
    keyword = SearchOptions(mode="keyword")
    assert [(hit.unit_id, hit.score) for hit in fake_parts_index.search(text, keyword)[0]] == [
        (hit.unit_id, hit.score) for hit in fake_parts_index.search(plain, keyword)[0]]
    assert len(fake_parts_index.search(text, SearchOptions(k=4, mode="hybrid"))[0]) == 4


def test_query_terms_are_stemmed_words_and_capped_in_number():
    assert query_terms('NEAR("a" b*) OR c:d', drop_stop_words=False) == [
        "near", "a", "b", "or", "c", "d"]
    assert query_terms("the telomeres OF a cell") == ["telomer", "cell"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]
    assert query_terms("Running runs") == ["run"]
    assert query_terms("🙂 ... !!") == []
    assert len(query_terms(" ".join(f"w{i}" for i in range(1000)))) == MAX_KEYWORD_TERMS


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=200) | st.lists(st.sampled_from(
    ['"', "*", "NEAR", "AND", "OR", "NOT", "(", ")", ":", "^", "+", "-", "kettle", "QX7R2", "🙂",
     "{", "}", "'", "\\"]), min_size=1).map(" ".join))
def test_any_text_is_a_safe_query(fake_parts_index, text):
    keyword = fake_parts_index.search(text, SearchOptions(k=3, mode="keyword"))[0]
    plain = fake_parts_index.search(" ".join(WORD.findall(text)),
                                    SearchOptions(k=3, mode="keyword"))[0]
    assert [hit.unit_id for hit in keyword] == [hit.unit_id for hit in plain]
    hybrid = fake_parts_index.search(text, SearchOptions(k=3, mode="hybrid"))[0]
    assert len(hybrid) == 3  # falls back to dense where no word matches: never short
    assert [hit.score for hit in hybrid] == sorted((hit.score for hit in hybrid), reverse=True)


@pytest.mark.parametrize("mode", MODES)
def test_filters_and_deletes_are_honoured_in_every_mode(run_json, tmp_path, mode, fake_model):
    records = [{"id": f"cat{i}", "text": f"My cat number {i} loves to sleep at the bank.",
                "lang": "en"} for i in range(30)]
    records += [{"id": f"bank{i}", "text": f"Interest rates at bank {i} went up.", "lang": "fr"}
                for i in range(6)]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    run_json("index", "-i", "mixed", "--model", fake_model, path)

    def query(text, *args):
        return run_json("query", "-i", "mixed", text, "--mode", mode, *args)[0]["hits"]

    hits = query("sleepy cat bank", "-k", "5", "--where", "lang=fr")
    assert len(hits) == 5 and all(h["metadata"]["lang"] == "fr" for h in hits)
    assert query("sleepy cat bank", "--where", "lang=de") == []
    by_document = query("bank", "-k", "4", "--by-document")
    assert len({h["document_id"] for h in by_document}) == len(by_document) == 4
    assert run_json("remove", "-i", "mixed", "bank3")["removed"] == 1
    assert "bank3" not in {h["document_id"] for h in query("bank 3 interest", "-k", "36")}
    records[0]["text"] = "Zebras graze on the savannah."
    path.write_text("\n".join(json.dumps(r) for r in records))
    run_json("index", "-i", "mixed", path)
    texts = [h["text"] for h in query("cat number 0 sleep zebras", "-k", "40")]
    assert "My cat number 0 loves to sleep at the bank." not in texts
    assert "Zebras graze on the savannah." in texts


def test_min_score_floors_the_cosine_in_hybrid_and_bm25_in_keyword(fake_parts_index):
    hybrid = fake_parts_index.search("kettle", SearchOptions(k=7, mode="hybrid",
                                                             min_score=0.3))[0]
    assert hybrid and all(h.dense_score >= 0.3 for h in hybrid)
    keyword = fake_parts_index.search("kettle", SearchOptions(k=7, mode="keyword",
                                                              min_score=0.0))[0]
    assert keyword and all(h.keyword_score >= 0 for h in keyword)
