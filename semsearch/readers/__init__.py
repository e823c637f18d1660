"""Reading: files, folders and stdin in; documents out, one module per format.

A format is a Reader (its ``--format`` name, its suffixes, how an open file becomes documents)
in a module of its own; listing it in READERS below is all it takes to read it.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from semsearch.errors import InputError
from semsearch.readers import markdown, pdf
from semsearch.readers.csv import CSV, TSV
from semsearch.readers.document import (
    DEFAULT_MAX_DOCUMENT_MB,
    TITLE_SOURCES,
    Document,
    Reader,
    ReadOptions,
    Warn,
    max_bytes,
    over_the_cap,
)
from semsearch.readers.docx import DOCX
from semsearch.readers.files import files_under
from semsearch.readers.html import HTML
from semsearch.readers.jsonl import JSONL
from semsearch.readers.markdown import MARKDOWN
from semsearch.readers.notebook import NOTEBOOK
from semsearch.readers.pdf import PDF
from semsearch.readers.records import READ_CHUNK
from semsearch.readers.text import TEXT, is_binary
from semsearch.units import Block

__all__ = ["DEFAULT_MAX_DOCUMENT_MB", "FORMATS", "READERS", "SUFFIXES", "TITLE_SOURCES", "Document",
           "ReadOptions", "Reader", "Warn", "blocks_of", "read_documents"]

# In the order --format lists them.
READERS: dict[str, Reader] = {reader.format: reader
                              for reader in (TEXT, MARKDOWN, PDF, DOCX, NOTEBOOK, JSONL, CSV, TSV,
                                             HTML)}
FORMATS = ("auto", *READERS)
_BY_SUFFIX = {suffix: reader for reader in READERS.values() for suffix in reader.suffixes}
SUFFIXES = frozenset(_BY_SUFFIX)  # what a folder walk reads
STDIN_NAME = "<stdin>"
# How a stored document's text is cut into blocks again, by its structure (plain text: None,
# its paragraphs).
STRUCTURES: dict[str, Callable[[str, str], list[Block]]] = {
    markdown.STRUCTURE: markdown.blocks,
    markdown.STRUCTURE_WITHOUT_CODE: markdown.blocks,
    pdf.STRUCTURE: pdf.blocks,
}


def blocks_of(document: Document) -> list[Block] | None:
    """The blocks units are cut in: the reader's, else made again from the text (a stored
    document being re-indexed); None for plain text."""
    if document.blocks is not None or document.structure == "text":
        return document.blocks
    if document.structure not in STRUCTURES:
        raise InputError(f"{document.id}: unknown structure {document.structure!r}")
    return STRUCTURES[document.structure](document.text, document.structure)


def read_documents(
    inputs: Iterable[str], options: ReadOptions, warn: Warn, stdin: BinaryIO | None = None
) -> Iterator[Document]:
    """Documents from files, folders (recursively) and ``-`` (stdin); skipped files are warned.
    Memory stays bounded by the cap on one document, however large the inputs."""
    if options.format not in FORMATS:
        raise InputError(f"unknown format {options.format!r}; choose from {', '.join(FORMATS)}")
    inputs = list(inputs)
    roots = [Path(item).expanduser().resolve() for item in inputs if item != "-"]
    for item in inputs:
        if item == "-":
            yield from _safe(_stdin_documents(stdin or sys.stdin.buffer, options, warn), warn)
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise InputError(f"{item}: no such file or folder")
        for file in files_under(path, roots, _BY_SUFFIX, options, warn):
            yield from _safe(_file_documents(file, options, warn), warn)


def _reader_of(name: str, options: ReadOptions) -> Reader:
    """The reader ``--format`` names, else the one the suffix of ``name`` names, else text."""
    if options.format != "auto":
        return READERS[options.format]
    return _BY_SUFFIX.get(Path(name).suffix.lower(), TEXT)


def _documents_of(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn,
                  size: int | None = None) -> Iterator[Document]:
    """The documents of one open file or stream; ``name`` says it in messages and gives its
    format. A records file is streamed; any other is one document, skipped when its ``size``
    (or what can be read, up to one byte more) is over the cap."""
    reader = _reader_of(name, options)
    if not reader.streamed and size is not None and size > max_bytes(options):
        warn(over_the_cap(name, options, size / 2**20))
        return
    if not reader.binary and is_binary(handle.read(8192)):
        warn(f"{name}: skipped, looks like a binary file")
        return
    yield from reader.read(handle, name, doc_id, options, warn)


def _stdin_documents(stream: BinaryIO, options: ReadOptions, warn: Warn) -> Iterator[Document]:
    """Standard input: records are copied to a temporary file as they come (the id needs the
    digest of all of it, and the first pass a second read); a text is read up to the cap."""
    if not _reader_of(STDIN_NAME, options).streamed:
        data = stream.read(max_bytes(options) + 1)
        digest = hashlib.sha256(data).hexdigest()[:12]
        yield from _documents_of(io.BytesIO(data), STDIN_NAME, f"stdin:{digest}", options, warn)
        return
    copy_digest = hashlib.sha256()
    with tempfile.TemporaryFile() as copy:
        while chunk := stream.read(READ_CHUNK):
            copy_digest.update(chunk)
            copy.write(chunk)
        copy.seek(0)
        yield from _documents_of(copy, STDIN_NAME, f"stdin:{copy_digest.hexdigest()[:12]}",
                                 options, warn)


def _file_documents(path: Path, options: ReadOptions, warn: Warn) -> Iterator[Document]:
    """The documents of one regular file (a real path: its name says the format)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        warn(f"{path}: skipped, cannot read ({exc.strerror})")
        return
    with handle:
        yield from _documents_of(handle, str(path), str(path), options, warn,
                                 size=os.fstat(handle.fileno()).st_size)


def _safe(documents: Iterator[Document], warn: Warn) -> Iterator[Document]:
    """A file that cannot be decoded is reported and skipped; the others still go in."""
    try:
        yield from documents
    except InputError as exc:
        warn(str(exc))
