"""Word (.docx), one document per file (python-docx), written out as Markdown: headings give
the heading path, tables are read row by row.

The body is walked in order, paragraphs and tables together, and Word's text is escaped as it
goes in (a leading ``#``, ``-`` or ``1.`` is what was typed, not markup): so the one Markdown
structure code makes the blocks, and makes them again from the stored text alone.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from semsearch.readers import markdown
from semsearch.readers.document import (
    Document,
    Reader,
    ReadOptions,
    Warn,
    capped_bytes,
    over_the_cap,
)

if TYPE_CHECKING:
    from docx.document import Document as WordDocument
    from docx.opc.coreprops import CoreProperties
    from docx.table import Table
    from docx.text.paragraph import Paragraph

_HEADING_STYLE = re.compile(r"Heading ([1-9])")
# Word's bullet and numbering buttons give "List Paragraph"; its built-in list styles the rest.
_LIST_STYLES = ("List Bullet", "List Number", "List Paragraph")


def _read(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn
          ) -> Iterator[Document]:
    """One document per Word file. A damaged one is one warning and skipped, so the rest of a
    folder still goes in."""
    try:
        import docx
    except ImportError:
        warn(f"{name}: skipped, reading .docx needs python-docx: pip install 'semsearch[docx]'")
        return
    data = capped_bytes(handle, options)
    if data is None:
        warn(over_the_cap(name, options))
        return
    stream = io.BytesIO(data)
    try:
        word = docx.Document(stream)
        text = "\n\n".join(filter(None, map(_markdown, word.iter_inner_content())))
        core = _core_properties(word)
    except Exception as exc:
        # A damaged file fails wherever python-docx meets the damage, in zipfile, zlib, lxml or
        # its own lookups (BadZipFile, KeyError, ValueError, XMLSyntaxError, …): all give the
        # one answer. (It names the stream where it says the file is another Office file's.)
        reason = " ".join(str(exc).replace(f"'{stream}'", "").split()) or type(exc).__name__
        warn(f"{name}: skipped, not a readable Word file ({reason})")
        return
    if not text.strip():
        warn(f"{name}: skipped, no text")
        return
    # Word text is escaped, so it holds no code: one structure whatever options.code says
    # (another would only change the content hash, and re-embed the file for nothing).
    note = markdown.parse(text)
    metadata: dict[str, Any] = {}
    if core is not None and core.author.strip():
        metadata["author"] = core.author.strip()
    for field in ("created", "modified"):
        if core is not None and (when := getattr(core, field)) is not None:
            metadata[field] = when.isoformat()
    given = {"title": core.title} if core is not None else {}
    yield Document(id=doc_id, source=doc_id, text=text, metadata=metadata,
                   title=markdown.title(given, note, name, options.title_from),
                   structure=markdown.STRUCTURE, blocks=note.blocks)


def _core_properties(word: WordDocument) -> CoreProperties | None:
    """The file's core properties (title, author, dates); None where it has none, as asking
    python-docx would make some up, stamped now, and the file would look changed at every read."""
    from docx.opc.constants import RELATIONSHIP_TYPE

    try:
        word.part.package.part_related_by(RELATIONSHIP_TYPE.CORE_PROPERTIES)
    except KeyError:
        return None
    return word.core_properties


def _markdown(block: Paragraph | Table) -> str:
    """A paragraph or table of the body as Markdown; "" for an empty one."""
    from docx.table import Table

    if isinstance(block, Table):
        return _table(block)
    words = _words(block.text)
    if not words:
        return ""
    style = (block.style.name if block.style is not None else None) or ""
    heading = _HEADING_STYLE.fullmatch(style)
    if heading or style == "Title":  # (Markdown has six levels of heading, Word nine)
        return "#" * (min(int(heading[1]), 6) if heading else 1) + " " + markdown.escape(words)
    if style.startswith(_LIST_STYLES):
        return "- " + markdown.escape(words)
    return markdown.escape(words)


def _table(table: Table) -> str:
    """A Word table as a Markdown pipe table, its first row the header (each row a unit, its
    cells under their column's header); "" where no cell says anything. Rows are padded to
    the widest, as Markdown drops the cells past the header's."""
    rows = [[markdown.escape(_words(cell.text)) for cell in row.cells] for row in table.rows]
    if not any(any(row) for row in rows):
        return ""
    width = max(map(len, rows))
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def _words(text: str) -> str:
    """Text on one line: a line break or tab in Word would end a heading, item or cell."""
    return " ".join(text.split())


DOCX = Reader("docx", (".docx",), _read, binary=True)
