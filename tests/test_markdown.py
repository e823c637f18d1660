"""Markdown notes: YAML front matter becomes metadata and title, never unit text, and the text
keeps the file's offsets (issue 22, in part)."""

from __future__ import annotations

import json

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


def test_without_a_title_field_the_first_line_of_the_body_titles_the_note(tmp_path):
    path = tmp_path / "plain.md"
    path.write_text("---\ntags: [a, b]\n---\n\n# Residual connection\nSkip a layer.\n")
    [note] = read(path)
    assert note.title == "Residual connection" and note.metadata == {"tags": ["a", "b"]}


def test_a_note_without_front_matter_reads_as_before(tmp_path):
    text = "# Kettles\nDescale it monthly.\n\n---\n\nA rule above is not front matter.\n"
    path = tmp_path / "kettle.md"
    path.write_text(text)
    [note] = read(path)
    assert (note.title, note.text, note.metadata) == ("Kettles", text, {})
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
