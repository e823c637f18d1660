"""PDF (.pdf), one document per file, read page by page with PDFium (pypdfium2).

The document's text is its pages' text joined by form feeds, so its blocks (one per page,
with the page number) can be made again from the stored text alone. PDFium gives lines as
they are laid out; they are made paragraphs again (a sentence must not be cut where a line
happens to end), and the running headers and footers every page repeats are left out (they
would be a unit on every page, the nearest hit to nothing in particular).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, BinaryIO

from semsearch.readers.document import (
    Document,
    Reader,
    ReadOptions,
    Warn,
    capped_bytes,
    over_the_cap,
)
from semsearch.units import Block

if TYPE_CHECKING:
    import pypdfium2

STRUCTURE = "pages"
PAGE_BREAK = "\f"
RUNNING_SHARE = 0.6  # a first or last line on this share of the pages (3 or more) is running
SHORT_LINE = 0.8  # a line under this share of a full one (90th percentile) may end a paragraph
# PDFium marks a hyphen it took off at a line end with U+FFFE (and joins the lines itself,
# whatever follows); it is put back, to be joined only before a lowercase letter.
_CLEAN = str.maketrans({"\ufffe": "-\n", "\t": " ", "\r": "\n"} | {
    chr(c): None for c in (*range(32), 127) if chr(c) not in "\t\n\r"})
_PAGE_NUMBER = re.compile(r"(page\s*)?[-–—\s]*\d+[-–—\s]*((of|/)\s*\d+)?", re.IGNORECASE)
_HYPHENATED = re.compile(r"[^\W\d_]-$")  # a letter, then a hyphen, at the end of a line
_SENTENCE_END = re.compile(r"[.!?:][\"'”’)\]]*$")
_OPENS_SECTION = re.compile(r"(?:\d+(?:\.\d+)*\.?\s+)?[A-Z]")  # "Results", "2.1 Setup"
_HEADING = re.compile(r"[\w)\]]$")  # how a heading ends (not a hyphen, comma, …)
# Titles that authoring tools write for the author: the PDF says nothing better than its text.
_JUNK_TITLE = re.compile(r"untitled\b.*|(microsoft \w+ - )?.*\.(docx?|odt|rtf|pptx?|tex|dvi|"
                         r"indd|pdf)|document\s*\d*|\W*", re.IGNORECASE)
_PDF_DATE = re.compile(r"(?:D:)?(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?"
                       r"(?:([Z+-])(\d\d)?'?(\d\d)?)?")


def blocks(text: str, structure: str) -> list[Block]:
    """One block per page (split at form feeds), numbered from 1."""
    found, start = [], 0
    for number, page in enumerate(text.split(PAGE_BREAK), start=1):
        if page.strip():
            found.append(Block(start, start + len(page), "text", "", number))
        start += len(page) + len(PAGE_BREAK)
    return found


def _read(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn
          ) -> Iterator[Document]:
    """One document per PDF. A file that cannot be read (encrypted, damaged, scanned with no
    text layer) is one warning and skipped, so the rest of a folder still goes in. An empty
    page stays an empty string between form feeds, so every later page keeps its number."""
    import pypdfium2 as pdfium

    data = capped_bytes(handle, options)
    if data is None:
        warn(over_the_cap(name, options))
        return
    try:
        pdf = pdfium.PdfDocument(data)
        try:
            info = pdf.get_metadata_dict()
            pages = [_page_lines(pdf[number]) for number in range(len(pdf))]
        finally:
            pdf.close()
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
            warn(f"{name}: skipped, the PDF is encrypted (needs a password)")
        else:
            reason = re.search(r"PDFium: ([^)]*)", str(exc))
            warn(f"{name}: skipped, not a readable PDF ({reason[1] if reason else exc})")
        return
    pages = _without_running_lines(pages)
    text = PAGE_BREAK.join(_paragraphs(lines) for lines in pages)
    if not text.replace(PAGE_BREAK, "").strip():
        warn(f"{name}: skipped, no text layer — scanned? (run OCR first)")
        return
    metadata: dict[str, Any] = {"pages": len(pages)}
    if author := info.get("Author", "").strip():
        metadata["author"] = author
    if created := _iso_date(info.get("CreationDate", "")):
        metadata["created"] = created
    title = info.get("Title", "").strip()
    if _JUNK_TITLE.fullmatch(title):
        first_line = next((line for line in pages[0] if line), "")
        title = first_line[:200] or PurePath(name).stem
    yield Document(id=doc_id, source=doc_id, text=text, title=title, metadata=metadata,
                   structure=STRUCTURE, blocks=blocks(text, STRUCTURE))


def _page_lines(page: pypdfium2.PdfPage) -> list[str]:
    """A page's lines of text, stripped, control characters out (a form feed would be a page
    break); a blank line is PDFium's paragraph break."""
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_range()
    finally:
        textpage.close()
        page.close()
    return [line.strip() for line in raw.replace("\r\n", "\n").translate(_CLEAN).split("\n")]


def _trimmed(lines: list[str]) -> list[str]:
    """``lines`` without the blank and page-number lines at either end."""
    start, end = 0, len(lines)
    while start < end and (not lines[start] or _PAGE_NUMBER.fullmatch(lines[start])):
        start += 1
    while end > start and (not lines[end - 1] or _PAGE_NUMBER.fullmatch(lines[end - 1])):
        end -= 1
    return lines[start:end]


def _running_key(line: str) -> str:
    """What a running header or footer says on every page: its line without the numbers."""
    return " ".join(re.sub(r"\d+", " ", line).lower().split())


def _without_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Every page without its page numbers, and, in a document of 3 pages or more, without a
    first or last line that (numbers aside) is a first or last line on most pages."""
    pages = [_trimmed(lines) for lines in pages]
    if len(pages) < 3:
        return pages
    ends = Counter(key for lines in pages if lines
                   for key in {_running_key(lines[0]), _running_key(lines[-1])})
    running = {key for key, count in ends.items() if key and count >= RUNNING_SHARE * len(pages)}
    kept = []
    for lines in pages:
        if lines and _running_key(lines[0]) in running:
            lines = lines[1:]
        if lines and _running_key(lines[-1]) in running:
            lines = lines[:-1]
        kept.append(_trimmed(lines))
    return kept


def _paragraphs(lines: list[str]) -> str:
    """A page's lines as paragraphs (split by blank lines): a line joins the one before with a
    space, or with nothing where that one ends in a hyphenated word this line ends. A line
    clearly shorter than most on the page ends its paragraph where it ends a sentence, or
    where it ends in a word and the next line starts with a capital or a section number (a
    heading, a title)."""
    lengths = sorted(len(line) for line in lines if line)
    short = SHORT_LINE * lengths[len(lengths) * 9 // 10] if lengths else 0  # vs a full line
    pieces: list[str] = []
    before = ""  # the line before; blank after a blank line
    for line in lines:
        if pieces and line:
            ends = _SENTENCE_END.search(before) or (
                _HEADING.search(before) and _OPENS_SECTION.match(line))
            if not before or len(before) < short and ends:
                pieces.append("\n\n")
            elif _HYPHENATED.search(before) and line[0].islower():
                pieces[-1] = pieces[-1][:-1]
            else:
                pieces.append(" ")
        if line:
            pieces.append(line)
        before = line
    return "".join(pieces)


def _iso_date(value: str) -> str | None:
    """A PDF date (``D:YYYYMMDDHHmmSS+HH'mm'``, all but the year optional) in ISO 8601; None
    where it says no real date."""
    found = _PDF_DATE.match(value.strip())
    if not found:
        return None
    year, month, day, hour, minute, second, sign, zone_hours, zone_minutes = found.groups()
    try:
        if hour is None:
            return date(int(year), int(month or 1), int(day or 1)).isoformat()
        offset = timedelta(hours=int(zone_hours or 0), minutes=int(zone_minutes or 0))
        zone = None if sign is None else timezone(-offset if sign == "-" else offset)
        return datetime(int(year), int(month or 1), int(day or 1), int(hour), int(minute or 0),
                        int(second or 0), tzinfo=zone).isoformat()
    except ValueError:
        return None


PDF = Reader("pdf", (".pdf",), _read, binary=True)
