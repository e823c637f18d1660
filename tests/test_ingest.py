import io

import numpy as np
import pytest

from semsearch.encoder import load_encoder
from semsearch.errors import InputError
from semsearch.readers import ReadOptions, read_documents
from semsearch.units import cut_units, pack_spans, sentence_spans


def read(paths, stdin=None, **options):
    warnings = []
    docs = list(read_documents([str(p) for p in paths], ReadOptions(**options), warnings.append,
                               stdin=stdin))
    return docs, warnings


def test_sentence_spans_point_into_the_text():
    text = "Dr. Smith went to Washington. He arrived at 5 p.m. on Monday!\n\nNew paragraph here"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "Dr. Smith went to Washington.", "He arrived at 5 p.m. on Monday!", "New paragraph here"]


@pytest.mark.parametrize("text", [
    "Café au lait. Ünïcödé ☃ text here!  Next\tone?\nLine two.",
    "This is\na sentence. And\r\nanother one.",  # the splitter rewrites these newlines
    "x\u2028y. z", "日本語の文。二つ目の文。", "Tabs\t\there.  Spaces   there.", "   "])
def test_sentence_spans_agree_with_the_splitters_own_offsets(text):
    import blingfire

    offsets = blingfire.text_to_sentences_and_offsets(text)[1] if text.strip() else []
    assert sentence_spans(text) == [(a, b) for a, b in offsets if text[a:b].strip()]


def test_pack_spans_respects_budget_and_overlap():
    spans = [(0, 10), (11, 20), (21, 30), (31, 40)]
    tokens = np.array([5, 5, 5, 5])
    assert pack_spans(spans, tokens, 10, overlap=0) == [(0, 20), (21, 40)]
    assert pack_spans(spans, tokens, 10, overlap=1) == [(0, 20), (11, 30), (21, 40)]
    assert pack_spans(spans, np.array([50, 5, 5, 5]), 10, 0) == [(0, 10), (11, 30), (31, 40)]


def test_document_units_are_chunked_to_the_model_limit(encoder):
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(200))
    units = cut_units(text, None, "document", encoder.token_counts, 254, 0)
    assert len(units) > 1
    assert all(encoder.token_counts([text[u.start:u.end]])[0] <= 254 for u in units)
    assert all(text[u.start:u.end] == u.text for u in units)
    short = cut_units("Short text. Two sentences.", None, "document", encoder.token_counts, 254, 0)
    assert [(u.start, u.end, u.text) for u in short] == [(0, 26, "Short text. Two sentences.")]


def test_batches_by_token_budget_give_the_same_vectors_as_sentence_transformers(monkeypatch):
    import semsearch.encoding

    # torch fp32: bf16 (auto on some CPUs) rounds by batch shape
    encoder = load_encoder(precision="fp32", backend="torch")
    texts = ["x", "A long sentence about rivers, mountains and the sea. " * 12, "", "Medium one.",
             "word " * 400] * 5  # short, long, empty and truncated texts, repeated
    plain = encoder.model.encode(texts, normalize_embeddings=True)
    for budget in (1, 300, 100_000):  # one text per batch, a few, all in one
        assert np.abs(encoder.encode(texts, batch_tokens=budget) - plain).max() < 1e-5
    monkeypatch.setattr(semsearch.encoding, "TOKENIZE_BLOCK", 7)  # blocks of 7, last one short
    assert np.abs(encoder.encode(texts) - plain).max() < 1e-5
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_formats(corpus):
    docs, warnings = read([corpus])
    by_name = {doc.id.rsplit("/", 1)[-1]: doc for doc in docs}
    assert set(by_name) == {"food.html", "pets.txt", "space.md"}
    assert by_name["food.html"].title == "Kitchen"
    assert "secret" not in by_name["food.html"].text
    assert "Bake the bread" in by_name["food.html"].text
    assert by_name["space.md"].title == "space"  # a note is named by its file
    assert not warnings
    docs, _ = read([corpus / "space.md"], title_from="heading")
    assert docs[0].title == "Space"


def test_jsonl_and_csv_records(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"id": 7, "text": "First record.", "lang": "en"}\nnot json\n{"text": ""}\n'
        '{"text": "No id here.", "title": "T"}\n')
    (tmp_path / "b.csv").write_text('key,body,lang\nk1,"Hello, world.",fr\n')
    docs, warnings = read([tmp_path / "a.jsonl"])
    assert [(d.id, d.metadata) for d in docs][0] == ("7", {"lang": "en"})
    assert docs[1].id.endswith("a.jsonl#4") and docs[1].title == "T"
    assert len(warnings) == 2 and "a.jsonl:2" in warnings[0]
    docs, _ = read([tmp_path / "b.csv"], text_field="body", id_field="key")
    assert [(d.id, d.text, d.metadata) for d in docs] == [("k1", "Hello, world.", {"lang": "fr"})]


def test_binary_and_misencoded_files_are_skipped_with_a_message(tmp_path):
    (tmp_path / "good.txt").write_text("Fine text.")
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin.txt").write_bytes("Caf\xe9 cr\xe8me.".encode("latin-1"))
    docs, warnings = read([tmp_path])
    assert [d.text for d in docs] == ["Fine text."]
    assert any("image.txt" in w and "binary" in w for w in warnings)
    assert any("latin.txt" in w and "--encoding" in w for w in warnings)
    docs, _ = read([tmp_path / "latin.txt"], encoding="latin-1")
    assert docs[0].text == "Café crème."


def test_stdin_bom_and_crlf():
    docs, _ = read(["-"], stdin=io.BytesIO("\ufeffLine one.\r\nLine two.".encode()))
    assert docs[0].text == "Line one.\nLine two." and docs[0].id.startswith("stdin:")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read([tmp_path / "nope"])
