"""PDF files: one document each, its pages' text joined by form feeds so every unit knows its
page; lines made paragraphs again, running headers and footers left out, and a file that
cannot be read one warning, never the end of the folder."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from semsearch.readers import ReadOptions, blocks_of, read_documents
from semsearch.readers.pdf import PAGE_BREAK, _iso_date
from semsearch.units import cut_units

HEADER = "The Kettle Society - Annual Report"
# One page's lines, as laid out: a word hyphenated across a line end, a real hyphen mid-line,
# a short last line ending the first paragraph.
LINES = [
    "Search engines rank documents by how well they match a query, and modern",
    "systems use dense vectors to find passages that share meaning with the",
    "question even when they share no words; this is called semantic retrie-",
    "val, and it works well for long well-known collections of many notes.",
    "It is quick.",
    "A second paragraph starts here and runs on for a while, long enough to",
    "fill a line, before it ends.",
]
PARAGRAPHS = ("Search engines rank documents by how well they match a query, and modern systems"
              " use dense vectors to find passages that share meaning with the question even"
              " when they share no words; this is called semantic retrieval, and it works well"
              " for long well-known collections of many notes. It is quick.\n\n"
              "A second paragraph starts here and runs on for a while, long enough to fill a"
              " line, before it ends.")
TOPICS = [["Descaling keeps a kettle quick to boil.", "Vinegar does it cheaply."], [],
          ["Zebras descale their kettles every spring.", "Nobody knows why."],
          ["Owls prefer green tea after dark.", "They take it without milk."]]


class Report(FPDF):
    """Pages with a running header and a "Page N of M" footer."""

    def header(self) -> None:
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, HEADER, new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")


def write_pdf(path, pages, pdf=None, title=None, author=None, created=None, passwords=None):
    """A PDF at ``path``, one page per list of lines, one cell per line."""
    pdf = pdf or FPDF()
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    if created:
        pdf.set_creation_date(created)
    if passwords:
        pdf.set_encryption(**passwords)
    for lines in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        for line in lines:
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def report(path):
    """Four pages (the second empty) under a running header and footer."""
    return write_pdf(path, TOPICS, Report())


def image_only(path, tmp_path):
    picture = tmp_path / "scan.png"
    Image.new("RGB", (60, 40), "gray").save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), 10, 10, 120)
    pdf.rect(10, 150, 50, 30)
    pdf.output(str(path))
    return path


def read(path, warnings: list[str] | None = None):
    kept = [] if warnings is None else warnings
    return list(read_documents([str(path)], ReadOptions(), kept.append))


def units(doc):
    return cut_units(doc.text, blocks_of(doc), "sentence",
                     lambda texts: np.array([len(t.split()) for t in texts]), None, 0)


def test_pages_keep_their_numbers_and_lose_the_running_header_and_footer(tmp_path):
    [doc] = read(report(tmp_path / "report.pdf"))
    pages = doc.text.split(PAGE_BREAK)
    assert pages == [" ".join(lines) for lines in TOPICS]  # the second page empty, still there
    assert doc.structure == "pages" and doc.metadata["pages"] == 4
    found = units(doc)
    assert [(u.text, u.page) for u in found if "Zebras" in u.text] == [
        ("Zebras descale their kettles every spring.", 3)]
    assert {u.page for u in found} == {1, 3, 4}
    for unit in found:
        assert doc.text[unit.start:unit.end] == unit.text
        assert unit.page == doc.text.count(PAGE_BREAK, 0, unit.start) + 1
    stored = type(doc)(id=doc.id, text=doc.text, structure=doc.structure)  # read back
    assert units(stored) == found


def test_lines_become_paragraphs_and_hyphenated_words_are_joined(tmp_path):
    [doc] = read(write_pdf(tmp_path / "retrieval.pdf", [LINES]))
    assert doc.text == PARAGRAPHS
    assert "retrieval" in doc.text and "well-known" in doc.text
    assert [u.text for u in units(doc)][-2:] == [
        "It is quick.", "A second paragraph starts here and runs on for a while, long enough to"
        " fill a line, before it ends."]


def test_the_title_is_the_pdfs_own_else_the_first_line_else_the_file_name(tmp_path):
    created = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
    [titled] = read(write_pdf(tmp_path / "a.pdf", [LINES], title="Semantic search, briefly",
                              author="Ada Lovelace", created=created))
    assert titled.title == "Semantic search, briefly"
    assert titled.metadata == {"pages": 1, "author": "Ada Lovelace",
                               "created": "2024-05-01T10:30:00+00:00"}
    [plain] = read(write_pdf(tmp_path / "b.pdf", [LINES]))
    assert plain.title == LINES[0] and "author" not in plain.metadata
    [junk] = read(write_pdf(tmp_path / "c.pdf", [LINES], title="Microsoft Word - notes.docx"))
    assert junk.title == LINES[0]


def test_pdf_dates_become_iso_dates():
    assert _iso_date("D:20240501103000+02'00'") == "2024-05-01T10:30:00+02:00"
    assert _iso_date("D:20240501103000Z") == "2024-05-01T10:30:00+00:00"
    assert _iso_date("D:20240501") == "2024-05-01"
    assert _iso_date("D:20241340") is None and _iso_date("yesterday") is None


def bad_pdfs(folder, tmp_path):
    """Every kind of PDF that cannot be read, and the warning each one gives."""
    write_pdf(folder / "locked.pdf", [LINES], passwords={"owner_password": "owner",
                                                        "user_password": "secret"})
    whole = write_pdf(tmp_path / "whole.pdf", [LINES] * 3).read_bytes()
    (folder / "truncated.pdf").write_bytes(whole[:len(whole) // 2])
    (folder / "corrupt.pdf").write_bytes(random.Random(0).randbytes(5000))
    image_only(folder / "scan.pdf", tmp_path)
    return {"locked.pdf": "skipped, the PDF is encrypted (needs a password)",
            "truncated.pdf": "skipped, not a readable PDF (",
            "corrupt.pdf": "skipped, not a readable PDF (",
            "scan.pdf": "skipped, no text layer — scanned? (run OCR first)"}


@pytest.mark.parametrize("name", ["locked.pdf", "truncated.pdf", "corrupt.pdf", "scan.pdf"])
def test_a_pdf_that_cannot_be_read_is_one_warning(tmp_path, name):
    folder = tmp_path / "bad"
    folder.mkdir()
    expected = bad_pdfs(folder, tmp_path)[name]
    warnings: list[str] = []
    assert read(folder / name, warnings) == []
    assert len(warnings) == 1 and warnings[0].startswith(f"{folder / name}: {expected}")


def test_a_pdf_locked_only_against_editing_is_read(tmp_path):
    [doc] = read(write_pdf(tmp_path / "owner.pdf", [LINES],
                           passwords={"owner_password": "owner"}))
    assert doc.text == PARAGRAPHS


def test_a_folder_of_pdfs_keeps_the_good_ones_and_warns_once_for_each_bad_one(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    report(folder / "report.pdf")
    write_pdf(folder / "retrieval.pdf", [LINES])
    expected = bad_pdfs(folder, tmp_path)
    warnings: list[str] = []
    docs = read(folder, warnings)
    assert sorted(doc.id for doc in docs) == [str((folder / name).resolve())
                                              for name in ("report.pdf", "retrieval.pdf")]
    assert len(warnings) == len(expected)
    for name, message in expected.items():
        [said] = [w for w in warnings if w.startswith(str(folder / name) + ":")]
        assert message in said


def test_a_hit_in_a_pdf_says_its_page(tmp_path, run, fake_model):
    folder = tmp_path / "papers"
    folder.mkdir()
    report(folder / "report.pdf")
    write_pdf(folder / "retrieval.pdf", [LINES])
    summary = json.loads(run("index", folder, "--index", "pdfs", "--model", fake_model,
                             "--json").stdout)
    assert summary["added"] == 2
    [answer] = json.loads(run("query", "zebras descale kettles in spring", "--index", "pdfs",
                              "--mode", "keyword", "--json").stdout)
    top = answer["hits"][0]
    assert top["page"] == 3 and "Zebras descale" in top["text"]
    assert top["title"] == "Descaling keeps a kettle quick to boil."
