"""Hostile input: generated files of every format go through ingestion, and generated filters
go through search; nothing may escape as an exception — bad files are reported and skipped.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semsearch.errors import InputError
from semsearch.readers import ReadOptions, read_documents
from semsearch.search import SearchOptions
from semsearch.units import sentence_spans

EXTENSIONS = ["txt", "md", "html", "jsonl", "csv", "tsv", "pdf", "docx", "ipynb"]
FUZZ = settings(max_examples=600, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
records = st.dictionaries(st.sampled_from(["text", "id", "title", "_id", "tag", ""]), json_values,
                          max_size=5)
nasty_text = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["\x00", "\ufeff", "\r\n", "\r", "\u2028", "<script>", "\"", ",", "\t", "\ud800"]),
    max_size=12).map("".join)


def encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8 on purpose


file_bytes = st.one_of(
    st.binary(max_size=2000),
    nasty_text.map(encoded),
    st.lists(records, max_size=5).map(
        lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    st.lists(json_values, max_size=5).map(
        lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    st.lists(st.lists(nasty_text, max_size=4), max_size=5).map(
        lambda rows: encoded("\n".join(",".join(row) for row in rows))),
    st.sampled_from([b"", b"\xef\xbb\xbf", b"[" * 100_000, b'{"text": ' * 50_000,
                     b"text\n" + b"a" * 9000 + b"\x00,b", b'\xef\xbb\xbf{"text": "bom"}\r\n',
                     b"<html><script>alert(1)</script><p>x</p>", b"\xff\xfe\x00t\x00x"]),
)


def ingest(tmp_path, name: str, data: bytes) -> tuple[list, list[str]]:
    path = tmp_path / name
    path.write_bytes(data)
    warnings: list[str] = []
    documents = list(read_documents([str(path)], ReadOptions(), warnings.append))
    return documents, warnings


@FUZZ
@given(data=file_bytes, extension=st.sampled_from(EXTENSIONS))
def test_any_file_is_ingested_or_reported(tmp_path, data, extension):
    documents, warnings = ingest(tmp_path, f"fuzz.{extension}", data)
    for document in documents:
        assert isinstance(document.text, str) and document.text.strip()
        document.text.encode("utf-8")  # storable: no lone surrogates left
        document.title.encode("utf-8")
        json.dumps(document.metadata, ensure_ascii=False).encode("utf-8")
        assert all(0 <= a < b <= len(document.text) for a, b in sentence_spans(document.text))
    assert documents or warnings  # a file that gives nothing says why


def test_deep_nesting_is_reported_and_the_next_line_still_read(tmp_path):
    documents, warnings = ingest(tmp_path, "deep.jsonl",
                                 b"[" * 100_000 + b"\n" + b'{"text": "ok"}')
    assert any("deep.jsonl:1" in w and "nested" in w for w in warnings)
    assert [d.text for d in documents] == ["ok"]


@pytest.mark.parametrize("megabytes", [5, pytest.param(50, marks=pytest.mark.slow)])
def test_a_huge_single_line_is_indexed(run_json, tmp_path, megabytes, fake_model):
    (tmp_path / "huge.txt").write_bytes(b"endless " * (megabytes * 2**20 // 8))
    result = run_json("index", "-i", "huge", "--model", fake_model, "--unit", "document",
                      "--no-chunk", tmp_path / "huge.txt")
    assert result["added"] == 1 and result["truncated"] == 1
    assert run_json("check", "-i", "huge")["consistent"]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, fake_model):
    from semsearch.index import Index

    index = Index.create(tmp_path_factory.mktemp("fuzz") / "index", model=str(fake_model))
    from semsearch.readers import Document

    index.add([Document(id=f"d{i}", text=f"Item {i} is a red kettle.", source="fuzz",
                        metadata={"colour": ["red", "blue"][i % 2], "o'k": "1"})
               for i in range(20)])
    return index


@FUZZ
@given(key=st.text(max_size=20) | st.sampled_from(["colour", "o'k", "a.b", "x\"]", "1=1 --"]),
       value=st.text(max_size=20) | st.sampled_from(["red", "' or 1=1 --", "%", "\\"]),
       mode=st.sampled_from(["dense", "keyword", "hybrid"]))
def test_any_where_filter_is_safe(small_index, key, value, mode):
    try:
        hits = small_index.search("red kettle",
                                  SearchOptions(k=5, mode=mode, where={key: value}))[0]
    except InputError as error:
        assert "invalid field name" in str(error)
        return
    expected = {"colour": {"red", "blue"}, "o'k": {"1"}}.get(key, set())
    assert (value in expected) == bool(hits)  # SQL metacharacters match nothing extra
    assert all(str(hit.metadata.get(key)) == value for hit in hits)
