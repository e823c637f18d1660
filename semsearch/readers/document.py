"""What every reader shares: the Document it yields, the ReadOptions it reads with, the Reader
a format registers, and the cap on the size of one document."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

DEFAULT_MAX_DOCUMENT_MB = 24.0

Warn = Callable[[str], None]


@dataclass
class Document:
    id: str
    text: str
    source: str = ""
    title: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.title, self.text, self.metadata], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


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


def over_the_cap(where: str, options: ReadOptions, megabytes: float | None = None) -> str:
    """The warning for a document skipped for its size."""
    size = "" if megabytes is None else f"{megabytes:.1f} MB is "
    return f"{where}: skipped, {size}over --max-document-mb {options.max_document_mb:g}"
