"""Plain text (.txt, .rst, …), one document per file; and what every reader of text uses:
the encoding's codec, binary files told apart, newlines made ``\\n``."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from semsearch.errors import InputError
from semsearch.readers.document import (
    Document,
    Reader,
    ReadFunction,
    ReadOptions,
    Warn,
    capped_bytes,
    over_the_cap,
)
from semsearch.units import Block


@dataclass
class Converted:
    """What a format makes of one whole decoded file: its document's text, title (empty: its
    first line), metadata and structure (see Document)."""

    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    structure: str = "text"
    blocks: list[Block] | None = None


# A whole decoded file, its name (for warnings) and the read options → its document.
Convert = Callable[[str, str, ReadOptions, Warn], Converted]


def is_binary(data: bytes) -> bool:
    """A NUL byte in the first 8 kB: no text file holds one, nearly every binary file does."""
    return b"\x00" in data[:8192]


def codec(encoding: str) -> str:
    """The codec that reads ``encoding``: UTF-8 with or without a byte-order mark."""
    name = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        codecs.lookup(name)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    return name


def _decode(data: bytes, name: str, encoding: str) -> str:
    try:
        text = data.decode(codec(encoding))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid {encoding} (byte {exc.start}); pass --encoding to read it"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(handle: BinaryIO, name: str, options: ReadOptions) -> str | None:
    """The whole text of a file or stream, or None when it is over the cap (read up to one
    byte more, never further). Its bytes die here: the text alone stays while it is indexed."""
    data = capped_bytes(handle, options)
    return None if data is None else _decode(data, name, options.encoding)


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200]
    return ""


def one_document_per_file(convert: Convert) -> ReadFunction:
    """How a format whose file is one document is read: the whole file decoded, ``convert``ed
    to its title and text; a file with no text is skipped."""
    def read(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn
             ) -> Iterator[Document]:
        text = _read_text(handle, name, options)
        if text is None:
            warn(over_the_cap(name, options))
            return
        converted = convert(text, name, options, warn)
        if not converted.text.strip():
            warn(f"{name}: skipped, no text")
            return
        yield Document(id=doc_id, text=converted.text, source=doc_id,
                       title=converted.title or _first_line_title(converted.text),
                       metadata=converted.metadata, structure=converted.structure,
                       blocks=converted.blocks)

    return read


TEXT = Reader("text", (".txt", ".rst", ".text"),
              one_document_per_file(lambda text, name, options, warn: Converted(text)))
