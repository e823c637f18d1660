"""Markdown notes: YAML front matter becomes metadata and title, never unit text, and the text
keeps the file's offsets (issue 22, in part)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.readers import ReadOptions, read_documents

NOTE = """---
aliases: []
category: LANG
date modified: 2025-09-27
tags:
- deep_learning
- NLP
title: BERT in practice
---
### Overview
BERT reads a sentence in both directions at once. It was trained on masked words.
"""


def read(path, warnings: list[str] | None = None):
    kept = [] if warnings is None else warnings
    return list(read_documents([str(path)], ReadOptions(), kept.append))


def test_front_matter_is_metadata_and_title_and_never_text(tmp_path):
    path = tmp_path / "bert.md"
    path.write_text(NOTE)
    [note] = read(path)
    assert note.title == "BERT in practice"
    assert note.metadata == {"aliases": [], "category": "LANG", "date modified": "2025-09-27",
                             "tags": ["deep_learning", "NLP"], "title": "BERT in practice"}
    assert len(note.text) == len(NOTE)  # blanked in place: spans point into the file
    body = NOTE.index("### Overview")
    assert note.text[body:] == NOTE[body:]
    assert note.text[:body].strip() == "" and note.text[:body].count("\n") == 9
    assert "NLP" not in note.text and "aliases" not in note.text


def test_without_a_title_field_the_file_name_titles_the_note(tmp_path):
    path = tmp_path / "Residual connection.md"
    path.write_text("---\ntags: [a, b]\n---\n\n# Skip connections\nSkip a layer.\n")
    [note] = read(path)
    assert note.title == "Residual connection" and note.metadata == {"tags": ["a", "b"]}


def test_a_note_without_front_matter_reads_as_before(tmp_path):
    text = "# Kettles\nDescale it monthly.\n\n---\n\nA rule above is not front matter.\n"
    path = tmp_path / "kettle.md"
    path.write_text(text)
    [note] = read(path)
    assert (note.title, note.text, note.metadata) == ("kettle", text, {})
    unclosed = tmp_path / "unclosed.md"
    unclosed.write_text("---\ntitle: never closed\nBody.\n")
    [left] = read(unclosed)
    assert left.metadata == {} and left.text.startswith("---")


def test_bad_yaml_is_a_warning_naming_the_file_and_line_and_the_body_is_kept(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text("---\ntitle: ok\ntags: [unclosed\n---\nThe body still counts.\n")
    warnings: list[str] = []
    [note] = read(path, warnings)
    assert note.metadata == {} and "The body still counts." in note.text
    assert "---" not in note.text  # not valid YAML, but still front matter: never unit text
    assert len(warnings) == 1 and "broken.md: line" in warnings[0]
    assert "not valid YAML" in warnings[0]
    listed = tmp_path / "listed.md"
    listed.write_text("---\n- just\n- a list\n---\nBody.\n")
    warnings.clear()
    [note] = read(listed, warnings)
    assert note.metadata == {} and "not a list of KEY: VALUE fields" in warnings[0]


def test_yaml_values_become_json_values(tmp_path):
    path = tmp_path / "values.md"
    path.write_text("---\nwhen: 2024-05-01 10:30:00\nscore: .nan\nnested: {a: 1, b: [x, 2]}\n"
                    "flag: yes\n---\nText.\n")
    [note] = read(path)
    assert note.metadata == {"when": "2024-05-01T10:30:00", "score": "nan",
                             "nested": {"a": 1, "b": ["x", 2]}, "flag": True}
    json.dumps(note.metadata, allow_nan=False)  # storable as it is


def test_a_vault_is_filtered_by_its_front_matter_tags(tmp_path, run, fake_model):
    vault = tmp_path / "vault"
    vault.mkdir()
    for name, tags in (("bert", "[NLP, transformers]"), ("resnet", "[vision]"),
                       ("wordpiece", "[NLP]")):
        (vault / f"{name}.md").write_text(f"---\ntags: {tags}\n---\n# {name}\n"
                                          f"Notes about {name} and how networks read.\n")
    run("index", vault, "--index", "vault", "--model", fake_model)
    found = json.loads(run("query", "networks read", "--index", "vault", "--where", "tags=NLP",
                           "--json").stdout)[0]["hits"]
    assert {hit["title"] for hit in found} == {"bert", "wordpiece"}
    assert all("tags" not in hit["text"] for hit in found)


# ---- structure: heading paths, markup, lists, tables, code ------------------------------------

VAULT_NOTE = """---
tags: [NLP]
---
Tags: [[__Machine_Learning]] #MachineLearning

# Introduction
BERT is a **bidirectional** encoder; see [the paper](https://arxiv.org/abs/1810.04805).

## Setup
1. Install it with `pip install transformers`.
2.
3. Load [[BERT|the model]] and *fine-tune* it.

- [ ] read [[Attention is all you need]]
- bullet without a full stop
  - a nested bullet
> A quoted remark about ![diagram](fig.png) encoders.

<!-- a private comment -->
| Model | Parameters |
|-------|-----------:|
| BERT-base | 110M |
| BERT-large | 340M |

```python
from transformers import AutoModel
model = AutoModel.from_pretrained("bert-base-uncased")
```

## Limitations of BERT with Large Datasets
Long inputs are cut at 512 tokens &amp; memory grows fast. A second sentence #scaling here.
"""


def _units(doc, unit="sentence", max_tokens=None):
    import numpy as np

    from semsearch.readers import blocks_of
    from semsearch.units import cut_units

    def words(texts):
        return np.array([len(text.split()) for text in texts])

    return cut_units(doc.text, blocks_of(doc), unit, words, max_tokens, 1)


def _read_note(tmp_path, text=VAULT_NOTE, name="BERT.md", **options):
    path = tmp_path / name
    path.write_text(text)
    warnings: list[str] = []
    docs = list(read_documents([str(path)], ReadOptions(**options), warnings.append))
    assert not warnings
    return docs[0]


def _unit_saying(units, sentence):
    """The one unit whose text says ``sentence`` (whitespace aside)."""
    found = [unit for unit in units if sentence in " ".join(unit.text.split())]
    assert len(found) == 1, (sentence, [unit.text for unit in units])
    return found[0]


def test_units_keep_their_heading_path_and_say_plain_text(tmp_path):
    note = _read_note(tmp_path)
    units = _units(note)
    heading = {sentence: _unit_saying(units, sentence).heading for sentence in (
        "BERT is a bidirectional encoder; see the paper.",
        "Install it with pip install transformers.", "Load the model and fine-tune it.",
        "read Attention is all you need", "A quoted remark about encoders.",  # image dropped
        "Long inputs are cut at 512 tokens & memory grows fast.",
        "A second sentence scaling here.", "Tags: __Machine_Learning MachineLearning")}
    limits = "Introduction › Limitations of BERT with Large Datasets"
    assert heading == {
        "BERT is a bidirectional encoder; see the paper.": "Introduction",
        "Install it with pip install transformers.": "Introduction › Setup",
        "Load the model and fine-tune it.": "Introduction › Setup",
        "read Attention is all you need": "Introduction › Setup",
        "A quoted remark about encoders.": "Introduction › Setup",
        "Long inputs are cut at 512 tokens & memory grows fast.": limits,
        "A second sentence scaling here.": limits,
        "Tags: __Machine_Learning MachineLearning": ""}
    for unit in units:
        source = note.text[unit.start:unit.end]
        assert not any(mark in unit.text for mark in ("**", "](", "[[", "<!--", "`"))
        for word in unit.text.replace(";", " ").split():  # the span holds what the unit says
            if not word.endswith(":"):  # (a table row's column labels are the header's)
                assert word.strip(".,&") in source, (word, source)
        assert any(ch.isalnum() for ch in unit.text)  # never numbering or markup alone
    assert "private comment" not in " ".join(unit.text for unit in units)
    assert not any(unit.text.strip() in ("1.", "2.", "3.", "-") for unit in units)


def test_sentence_units_join_a_heading_to_its_text_and_pack_short_list_items(tmp_path):
    said = [unit.text for unit in _units(_read_note(tmp_path))]
    # A heading goes with what follows it; never a unit alone.
    assert "Introduction\n\nBERT is a bidirectional encoder; see the paper." in said
    assert not any(text in ("Introduction", "Setup") for text in said)
    # The list items of a section (one list or two) are packed; each keeps its own lines.
    assert ("Setup\n\nInstall it with pip install transformers.\n\nLoad the model and"
            " fine-tune it.\n\nread Attention is all you need\n\nbullet without a full stop"
            "\n\na nested bullet") in said
    # Table rows go together, each under its column headers.
    assert ("Model; Parameters\n\nModel: BERT-base; Parameters: 110M\n\n"
            "Model: BERT-large; Parameters: 340M") in said
    code = [text for text in said if "AutoModel" in text]  # a code block stays one unit
    assert code == ['from transformers import AutoModel\n'
                    'model = AutoModel.from_pretrained("bert-base-uncased")']
    without = [unit.text for unit in _units(_read_note(tmp_path, code=False))]
    assert not any("AutoModel" in text for text in without)
    assert any("a nested bullet" in text for text in without)


def test_a_long_list_is_packed_up_to_a_budget(tmp_path):
    from semsearch.units import PACKED_TOKENS

    items = [f"item {n} of a long shopping list" for n in range(40)]  # 7 "tokens" each
    units = _units(_read_note(tmp_path, "# Groceries\n" + "".join(f"- {item}\n" for item in items),
                              "Groceries.md"))
    packed = [unit.text.split("\n\n") for unit in units]
    assert [item for group in packed for item in group] == ["Groceries", *items]
    assert all(len(" ".join(group).split()) <= PACKED_TOKENS + 1 for group in packed)
    assert len(packed) == -(-40 // (PACKED_TOKENS // 7))


def test_passages_pack_units_of_one_section(tmp_path):
    passages = _units(_read_note(tmp_path), "passage", 30)
    assert {p.heading for p in passages} == {
        "", "Introduction", "Introduction › Setup",
        "Introduction › Limitations of BERT with Large Datasets"}
    setup = [p for p in passages if p.heading == "Introduction › Setup"]
    assert len(setup) < 8 and "Load the model" in setup[0].text


def test_inline_tags_and_wiki_links_become_metadata(tmp_path):
    note = _read_note(tmp_path)
    assert note.metadata["tags"] == ["NLP", "MachineLearning", "scaling"]
    assert note.metadata["links"] == ["__Machine_Learning", "BERT", "Attention is all you need"]
    assert note.title == "BERT"  # the file name, not the `Tags:` line


def test_title_from_heading_or_file_name(tmp_path):
    text = "---\ntitle: Given\n---\n# The *first* heading\nBody.\n"
    assert _read_note(tmp_path, text, "note.md").title == "Given"
    assert _read_note(tmp_path, text, "note.md", title_from="heading").title == "Given"
    assert _read_note(tmp_path, text, "note.md", title_from="filename").title == "note"
    untitled = "# The *first* heading\nBody.\n"
    assert _read_note(tmp_path, untitled, "n.md", title_from="heading").title == (
        "The first heading")


def test_a_stored_note_is_cut_again_the_same_way(tmp_path):
    from dataclasses import replace

    note = _read_note(tmp_path)
    again = replace(note, blocks=None)  # as `check --repair` reads it back from the store
    assert _units(again) == _units(note)


def test_heading_paths_and_markup_free_text_through_the_cli(tmp_path, run, fake_model):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "BERT.md").write_text(VAULT_NOTE)
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, vault)
    hits = json.loads(run("query", "-i", index, "--json", "--mode", "keyword",
                          "memory grows fast").output)[0]["hits"]
    assert hits[0]["heading"] == "Introduction › Limitations of BERT with Large Datasets"
    assert hits[0]["text"] == ("Limitations of BERT with Large Datasets\n\n"
                               "Long inputs are cut at 512 tokens & memory grows fast.")
    assert hits[0]["title"] == "BERT" and hits[0]["page"] is None
    source = (vault / "BERT.md").read_text()
    assert "memory grows fast" in source[hits[0]["char_start"]:hits[0]["char_end"]]
    shown = run("query", "-i", index, "--mode", "keyword", "memory grows fast").output
    assert "› Introduction ›" in shown and "Datasets" in shown
    assert not json.loads(run("query", "-i", index, "--json", "--mode", "keyword",
                              "private comment").output)[0]["hits"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([
    "# ", "## ", "- ", "1. ", "> ", "| a | b |\n|---|---|\n| ", "```\n", "**", "*", "`", "[[",
    "]]", "|", "#tag ", "[x](y)", "![i](p)", "<!-- ", " -->", "&amp;", "\\", "\n", "\n\n",
    "word ", "Sentence one. ", "é ", "---\n", "    ", "\t"]), max_size=40))
def test_any_markdown_gives_units_inside_the_text(pieces):
    from semsearch.readers.markdown import parse
    from semsearch.units import cut_units

    text = "".join(pieces)
    note = parse(text)
    for unit in cut_units(text, note.blocks, "sentence", lambda t: [1] * len(t), None, 0):
        assert 0 <= unit.start <= unit.end <= len(text)
        assert any(ch.isalnum() for ch in unit.text)


def test_an_index_from_before_headings_and_pages_is_still_read_and_written(
        tmp_path, run, fake_model, monkeypatch):
    import sqlite3

    index = tmp_path / "old"
    note = tmp_path / "note.md"
    note.write_text("# Kettles\nDescale the kettle monthly.\n")
    run("index", "-i", index, "--model", fake_model, note)
    with sqlite3.connect(index / "store.db") as db:  # as an earlier version wrote it
        for table, column in (("units", "heading"), ("units", "page"),
                              ("documents", "structure")):
            db.execute(f"alter table {table} drop column {column}")
    with monkeypatch.context() as patch:  # on read-only media: searched, the new fields empty
        patch.setattr("os.access", lambda *args, **kwargs: False)
        hits = json.loads(run("query", "-i", index, "--json", "--mode", "keyword",
                              "descale").output)[0]["hits"]
        assert hits[0]["heading"] is None and hits[0]["page"] is None
    with sqlite3.connect(index / "store.db") as db:
        assert "heading" not in {row[1] for row in db.execute("pragma table_info(units)")}
    second = tmp_path / "more.md"
    second.write_text("# Boards\n## Cleaning\nOil the board.\n")
    run("index", "-i", index, "--model", fake_model, second)  # the columns are added
    hits = json.loads(run("query", "-i", index, "--json", "--mode", "keyword",
                          "oil board").output)[0]["hits"]
    assert hits[0]["heading"] == "Boards › Cleaning"
    run("check", "-i", index)


def test_title_and_heading_path_are_embedded_with_each_unit_by_default(tmp_path, fake_model):
    from semsearch.index import Index, IndexSettings, settings_of

    note = _read_note(tmp_path)
    texts = {}
    for context in ("none", "title", "heading", None):
        settings = IndexSettings() if context is None else IndexSettings(context=context)
        index = Index.create(tmp_path / f"idx-{context}", model=fake_model, settings=settings)
        texts[context] = index.prepare([note]).texts
        index.store.db.close()
    said = "Introduction\n\nBERT is a bidirectional encoder; see the paper."
    assert said in texts["none"]
    assert f"BERT: {said}" in texts["title"]
    assert f"BERT › Introduction: {said}" in texts["heading"]
    assert texts[None] == texts["heading"]
    assert settings_of({}).context == "none"  # an index from before the setting: built without
