"""Word files and Jupyter notebooks: read as Markdown, so their units carry heading paths, tables
are read row by row, code is a unit of its own (or left out), and a damaged file is one
warning while the rest of the folder goes in."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from dataclasses import replace

import docx
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.readers import ReadOptions, blocks_of, read_documents
from semsearch.readers.markdown import HEADING_SEPARATOR
from semsearch.units import cut_units

SETUP = f"Intro{HEADING_SEPARATOR}Setup"


def write_word(path, title="Field guide"):
    word = docx.Document()
    word.core_properties.title = title
    word.core_properties.author = "Ada Lovelace"
    word.add_paragraph("Owls at night", style="Title")
    word.add_heading("Intro", 1)
    word.add_paragraph("Owls hunt after dark. They fly without a sound.")
    word.add_paragraph("")
    word.add_heading("Setup", 2)
    word.add_paragraph("Bring a lantern", style="List Bullet")
    word.add_paragraph("Count the owls", style="List Number")
    table = word.add_table(rows=3, cols=2)
    rows = [("Bird", "Call"), ("Barn owl", "screech | hiss"), ("Crow", "caw\ncaw")]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    word.add_paragraph("Write down what you saw.")
    word.save(path)
    return path


def write_notebook(path, metadata=None, cells=None):
    cells = cells if cells is not None else [
        {"cell_type": "markdown", "metadata": {},
         "source": ["# Analysis\n", "\n", "Notes on #birds and [[Owl census]].\n"]},
        {"cell_type": "markdown", "metadata": {}, "source": "## Loading\nWe load the tallies."},
        {"cell_type": "code", "execution_count": 1, "metadata": {},
         "source": ["import pandas\n", "counts = pandas.read_csv('owls.csv')"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["printedoutput\n"]},
                     {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                      "data": {"text/plain": ["resultoutput"]}}]},
        {"cell_type": "raw", "metadata": {}, "source": "rawcelltext"},
    ]
    metadata = metadata if metadata is not None else {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata,
                                "cells": cells}))
    return path


def read(path, warnings=None, **options):
    kept = [] if warnings is None else warnings
    return list(read_documents([str(path)], ReadOptions(**options), kept.append))


def units(doc):
    return cut_units(doc.text, blocks_of(doc), "sentence",
                     lambda texts: numpy.array([len(t.split()) for t in texts]), None, 0)


def assert_units_point_into_the_text(doc):
    for unit in units(doc):
        span = doc.text[unit.start:unit.end]
        cells = re.sub(r"(?:^|; )[^;:]*: ", " ", unit.text)  # (a row's headers are the table's)
        for word in re.findall(r"\w+", cells):
            assert word in span, (unit, span)
        assert not re.fullmatch(r"[\W\d]*", unit.text), unit  # no markup or numbering alone


def test_word_headings_paragraphs_lists_and_tables(tmp_path):
    [doc] = read(write_word(tmp_path / "guide.docx"))
    assert doc.title == "Field guide" and doc.structure == "markdown"
    assert doc.metadata["author"] == "Ada Lovelace"
    assert set(doc.metadata) == {"author", "created", "modified"}
    assert re.match(r"\d{4}-\d\d-\d\dT", doc.metadata["modified"])
    said = [(unit.heading, unit.text) for unit in units(doc)]
    assert said == [
        ("Owls at night", "Owls at night"),  # (a heading alone only where nothing follows)
        ("Intro", "Intro\n\nOwls hunt after dark."),  # a heading goes with what follows
        ("Intro", "They fly without a sound."),
        (SETUP, "Setup\n\nBring a lantern\n\nCount the owls\n\nBird; Call\n\n"  # short
                "Bird: Barn owl; Call: screech | hiss\n\nBird: Crow; Call: caw caw"),  # packed
        (SETUP, "Write down what you saw."),
    ]
    assert_units_point_into_the_text(doc)
    assert units(replace(doc, blocks=None)) == units(doc)  # cut again the same from the store


def test_word_titles(tmp_path):
    path = write_word(tmp_path / "guide.docx", title="")
    assert read(path)[0].title == "guide"
    assert read(path, title_from="heading")[0].title == "Owls at night"
    titled = write_word(tmp_path / "titled.docx")
    assert read(titled, title_from="filename")[0].title == "titled"


def test_word_without_core_properties_is_not_stamped_with_the_time_it_is_read(tmp_path):
    source = zipfile.ZipFile(write_word(tmp_path / "guide.docx"))
    with zipfile.ZipFile(tmp_path / "bare.docx", "w") as bare:
        for name in source.namelist():
            data = source.read(name)
            if name == "_rels/.rels":
                data = re.sub(rb'<Relationship [^>]*core.xml"/>', b"", data)
            if name != "docProps/core.xml":
                bare.writestr(name, data)
    first, again = read(tmp_path / "bare.docx"), read(tmp_path / "bare.docx")
    assert first[0].metadata == {} and first[0].title == "bare"
    assert first[0].content_hash == again[0].content_hash


@settings(max_examples=80, deadline=None)
@given(typed=st.lists(st.sampled_from([
    "#", "# ", "- ", "-", "1.", "2)", "+ ", "> ", "*", "**", "_", "`", "```", "~~~", "[", "]",
    "[[", "]]", "(x)", "<", ">", "<b>", "<!--", "&amp;", "&", "\\", "|", "=", "===", "---",
    "!", "#tag", "word", "Owls.", " ", "\t", "\n", "é"]), min_size=1, max_size=20).map("".join),
    style=st.sampled_from(["Normal", "Heading 2", "List Bullet", "Title"]))
def test_word_text_is_said_as_typed(tmp_path_factory, typed, style):
    words = " ".join(typed.split())
    word = docx.Document()
    word.add_paragraph(typed, style=style)
    path = tmp_path_factory.mktemp("typed") / "typed.docx"
    word.save(path)
    warnings = []
    docs = read(path, warnings)
    if not words:
        assert docs == [] and warnings == [f"{path}: skipped, no text"]
        return
    [block] = blocks_of(docs[0])
    assert block.plain == words
    assert not {"tags", "links"} & set(docs[0].metadata)  # no #tag, no [[link]] made up


def test_notebook_cells_as_markdown(tmp_path):
    [doc] = read(write_notebook(tmp_path / "census.ipynb"))
    assert doc.title == "census" and doc.structure == "markdown"
    assert doc.metadata == {"tags": ["birds"], "links": ["Owl census"]}
    assert "```python\nimport pandas" in doc.text
    for never in ("printedoutput", "resultoutput", "rawcelltext"):
        assert never not in doc.text
    loading = f"Analysis{HEADING_SEPARATOR}Loading"
    assert [(unit.heading, unit.text) for unit in units(doc)] == [
        ("Analysis", "Analysis\n\nNotes on birds and Owl census."),
        (loading, "Loading\n\nWe load the tallies."),
        (loading, "import pandas\ncounts = pandas.read_csv('owls.csv')"),
    ]
    assert_units_point_into_the_text(doc)
    assert units(replace(doc, blocks=None)) == units(doc)


def test_notebook_without_code(tmp_path):
    [doc] = read(write_notebook(tmp_path / "census.ipynb"), code=False)
    assert "pandas" not in doc.text and doc.structure == "markdown-without-code"
    assert [unit.text for unit in units(doc)][-1] == "Loading\n\nWe load the tallies."
    assert units(replace(doc, blocks=None)) == units(doc)


def test_notebook_titles_language_and_fences(tmp_path):
    code = "print('''\n```\nnot a fence\n```\n''')"
    path = write_notebook(tmp_path / "n.ipynb", {"title": "Given", "language_info": {"name": "R"}},
                          [{"cell_type": "markdown", "source": "# First"},
                           {"cell_type": "code", "source": code, "outputs": []}])
    [doc] = read(path)
    assert doc.title == "Given" and "````R\n" in doc.text
    assert units(doc)[-1].text == f"First\n\n{code}"  # one block: the backticks in it close nothing
    assert read(path, title_from="filename")[0].title == "n"
    untitled = write_notebook(tmp_path / "u.ipynb", {}, [{"cell_type": "markdown",
                                                          "source": "# First"}])
    assert read(untitled, title_from="heading")[0].title == "First"


def test_damaged_files_are_one_warning_each_and_the_rest_is_read(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    write_word(folder / "good.docx")
    write_notebook(folder / "good.ipynb")
    (folder / "truncated.docx").write_bytes((folder / "good.docx").read_bytes()[:2000])
    (folder / "text.docx").write_text("not a zip at all")
    (folder / "empty.docx").write_bytes(b"")
    docx.Document().save(folder / "blank.docx")
    (folder / "broken.ipynb").write_text('{"cells": [')
    (folder / "list.ipynb").write_text("[1, 2]")
    (folder / "nested.ipynb").write_text("[" * 100_000)
    write_notebook(folder / "nothing.ipynb", cells=[{"cell_type": "raw", "source": "x"}, 7])
    warnings = []
    docs = read(folder, warnings)
    assert sorted(doc.id.rsplit("/", 1)[1] for doc in docs) == ["good.docx", "good.ipynb"]
    said = dict(line.split(": ", 1) for line in warnings)
    assert len(said) == len(warnings) == 8
    assert said[str(folder / "blank.docx")] == "skipped, no text"
    assert said[str(folder / "nothing.ipynb")] == "skipped, no text"
    for name in ("truncated.docx", "text.docx", "empty.docx"):
        assert said[str(folder / name)].startswith("skipped, not a readable Word file (")
    for name in ("broken.ipynb", "list.ipynb", "nested.ipynb"):
        assert said[str(folder / name)].startswith("skipped, not a Jupyter notebook (")


def test_word_without_python_docx_is_a_warning(tmp_path, monkeypatch):
    path = write_word(tmp_path / "guide.docx")
    monkeypatch.setitem(sys.modules, "docx", None)  # (an import of it fails)
    warnings = []
    assert read(path, warnings) == []
    assert warnings == [f"{path}: skipped, reading .docx needs python-docx:"
                        " pip install 'semsearch[docx]'"]


@pytest.mark.parametrize("query, heading, title", [
    ("lantern", SETUP, "Field guide"),
    ("tallies", f"Analysis{HEADING_SEPARATOR}Loading", "census"),
])
def test_word_and_notebook_through_the_cli(tmp_path, run, fake_model, query, heading, title):
    folder = tmp_path / "folder"
    folder.mkdir()
    write_word(folder / "guide.docx")
    write_notebook(folder / "census.ipynb")
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, folder)
    [hit] = json.loads(run("query", "-i", index, "--json", "--mode", "keyword", query,
                           ).output)[0]["hits"][:1]
    assert hit["heading"] == heading and hit["title"] == title
