"""What the readers of records files (JSONL, CSV, TSV) share: lines decoded a chunk at a time
under the cap, the two passes that keep a file that cannot be read out whole, and a record's
fields made a Document."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from semsearch.errors import InputError
from semsearch.readers.document import Document, ReadOptions, Warn, max_bytes
from semsearch.readers.text import codec

READ_CHUNK = 2**20  # bytes read at once from a records file or stream

# (number, record) of each record of a file, numbered as its messages name them.
Records = Iterator[tuple[int, dict]]


def lines(handle: BinaryIO, name: str, options: ReadOptions) -> Iterator[tuple[int, str | None]]:
    """(number, line) of a records file, decoded a chunk at a time, newlines made ``\\n``; a
    line longer than the cap comes as None, without ever being held whole."""
    limit = max_bytes(options)
    decoder = codecs.getincrementaldecoder(codec(options.encoding))()
    number, consumed, carried = 0, 0, ""
    parts: list[str] = []  # the line read so far, while it is within the cap
    size = 0
    while True:
        chunk = handle.read(READ_CHUNK)
        pending = len(decoder.getstate()[0])
        try:
            text = carried + decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not valid {options.encoding} (byte"
                             f" {consumed - pending + exc.start}); pass --encoding to read it"
                             ) from None
        consumed += len(chunk)
        carried = "\r" if chunk and text.endswith("\r") else ""  # its \n may come next
        *complete, rest = text[:len(text) - len(carried)].replace("\r\n", "\n").replace(
            "\r", "\n").split("\n")
        for piece in complete:
            number += 1
            yield number, None if size + len(piece) > limit else "".join(parts) + piece + "\n"
            parts, size = [], 0
        size += len(rest)
        if size <= limit:
            parts.append(rest)
        else:
            parts.clear()
        if not chunk:
            if size:
                yield number + 1, None if size > limit else "".join(parts)
            return


def read_records(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn, *,
                 check: Callable[[], Iterable[object]], records: Callable[[], Records]
                 ) -> Iterator[Document]:
    """The documents of a records file, streamed in two passes: ``check`` reads the whole file
    first (decodes it; parses it too where parsing can fail for the whole file), so a file
    that cannot be read goes in not at all rather than in half (InputError); then
    ``records`` yields its records."""
    handle.seek(0)
    for _ in check():
        pass
    handle.seek(0)
    yield from _record_documents(records(), doc_id, name, options, warn)


def _record_documents(records: Records, source: str, name: str, options: ReadOptions, warn: Warn
                      ) -> Iterator[Document]:
    found = False
    for number, record in records:
        found = True
        text = record.get(options.text_field)
        if not isinstance(text, str) or not text.strip():
            warn(f"{name}:{number}: skipped, no text in field {options.text_field!r}")
            continue
        id_field = options.id_field or next((f for f in ("id", "_id") if f in record), None)
        if options.id_field and record.get(id_field) in (None, ""):
            warn(f"{name}:{number}: skipped, no id in field {id_field!r}")
            continue
        doc_id = str(record[id_field]) if id_field else f"{source}#{number}"
        title = record.get(options.title_field)
        used = {options.text_field, id_field, options.title_field}
        metadata = {key: value for key, value in record.items() if key not in used}
        yield Document(
            id=doc_id, text=text.replace("\r\n", "\n"), source=source,
            title=str(title) if title is not None else "", metadata=metadata,
        )
    if not found:
        warn(f"{name}: skipped, no records")
