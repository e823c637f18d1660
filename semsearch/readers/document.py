"""What every reader shares: the Document it yields, the ReadOptions it reads with, the Reader
a format registers, and the cap on the size of one document."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from semsearch.units import Block

DEFAULT_MAX_DOCUMENT_MB = 24.0

Warn = Callable[[str], None]


@dataclass
class Document:
    id: str
    text: str
    source: str = ""
    title: str = ""
    metadata: dict = field(default_factory=dict)
    # How the text is cut into blocks (semsearch.readers.STRUCTURES): "text" is paragraphs;
    # "markdown" follows the Markdown's headings, lists, tables and code; "pages" splits pages
    # at form feeds. Stored with the document, so its units can be cut again from it alone.
    structure: str = "text"
    # The blocks, where the reader has them already (else they are made from the text).
    blocks: list[Block] | None = field(default=None, compare=False, repr=False)

    @property
    def content_hash(self) -> str:
        fields = [self.title, self.text, self.metadata]
        if self.structure != "text":  # (so the hash of a plain text is what it always was)
            fields.append(self.structure)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass
class ReadOptions:
    text_field: str = "text"
    id_field: str | None = None
    title_field: str = "title"
    encoding: str = "utf-8"
    format: str = "auto"
    glob: str | None = None
    max_document_mb: float = DEFAULT_MAX_DOCUMENT_MB
    follow_symlinks: bool = False
    # gitignore patterns of files and folders to leave out, inside the folders given (added to
    # what each folder's IGNORE_FILE says)
    exclude: tuple[str, ...] = ()
    # Where a note's title comes from (TITLE_SOURCES): its front matter's title field, else
    # its file name ("front-matter"); its first heading ("heading"); its file name alone.
    title_from: str = "front-matter"
    code: bool = True  # index fenced code blocks (each one unit); False leaves them out


TITLE_SOURCES = ("front-matter", "heading", "filename")


IGNORE_FILE = ".semsearchignore"


# (open file, its name in messages, the document id it gives, options, warn) → its documents.
ReadFunction = Callable[[BinaryIO, str, str, ReadOptions, Warn], Iterator[Document]]


@dataclass(frozen=True)
class Reader:
    """One input format: its ``--format`` name, the suffixes that choose it in a folder, and
    how an open file becomes documents. A ``streamed`` format (records) is read a record at a
    time, each under the cap, however large the file; any other file is one document, skipped
    whole when over the cap. A ``binary`` format is not skipped for holding NUL bytes."""

    format: str
    suffixes: tuple[str, ...]
    read: ReadFunction
    streamed: bool = False
    binary: bool = False


def max_bytes(options: ReadOptions) -> int:
    """The largest document read, in bytes (characters for a record, read as text)."""
    return int(options.max_document_mb * 2**20)


def capped_bytes(handle: BinaryIO, options: ReadOptions) -> bytes | None:
    """The whole of a file or stream, or None when it is over the cap (read up to one byte
    more, never further: standard input comes with no size to check first)."""
    limit = max_bytes(options)
    handle.seek(0)
    data = handle.read(limit + 1)
    return None if len(data) > limit else data


def over_the_cap(where: str, options: ReadOptions, megabytes: float | None = None) -> str:
    """The warning for a document skipped for its size."""
    size = "" if megabytes is None else f"{megabytes:.1f} MB is "
    return f"{where}: skipped, {size}over --max-document-mb {options.max_document_mb:g}"
