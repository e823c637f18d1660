"""Ingestion: files, folders and stdin in; documents and their units (with character spans) out."""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from semsearch.errors import InputError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text"}
RECORD_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
HTML_SUFFIXES = {".html", ".htm"}
RECORD_FORMATS = ("jsonl", "csv", "tsv")
STDIN_NAME = "<stdin>"
FORMATS = ("auto", "text", "jsonl", "csv", "tsv", "html")
UNIT_KINDS = ("sentence", "passage", "document")
DEFAULT_MAX_DOCUMENT_MB = 24.0
_READ_CHUNK = 2**20

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)
SPLIT_BLOCK = 2**20  # characters of one paragraph given to the sentence splitter at once

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


def _is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _codec(encoding: str) -> str:
    """The codec that reads ``encoding``: UTF-8 with or without a byte-order mark."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        codecs.lookup(codec)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    return codec


def _decode(data: bytes, name: str, encoding: str) -> str:
    codec = _codec(encoding)
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid {encoding} (byte {exc.start}); pass --encoding to read it"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200]
    return ""


def _html_document(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = "\n\n".join(line for line in lines if line)
    return title, text


def _max_size(options: ReadOptions) -> int:
    """The largest document read, in bytes (characters for a record, read as text)."""
    return int(options.max_document_mb * 2**20)


def _over_the_cap(where: str, options: ReadOptions, megabytes: float | None = None) -> str:
    size = "" if megabytes is None else f"{megabytes:.1f} MB is "
    return f"{where}: skipped, {size}over --max-document-mb {options.max_document_mb:g}"


def _lines(handle: BinaryIO, name: str, options: ReadOptions) -> Iterator[tuple[int, str | None]]:
    """(number, line) of a records file, decoded a chunk at a time, newlines made ``\n``; a
    line longer than the cap comes as None, without ever being held whole."""
    limit = _max_size(options)
    decoder = codecs.getincrementaldecoder(_codec(options.encoding))()
    number, consumed, carried = 0, 0, ""
    parts: list[str] = []  # the line read so far, while it is within the cap
    size = 0
    while True:
        chunk = handle.read(_READ_CHUNK)
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


def _jsonl_records(handle: BinaryIO, name: str, options: ReadOptions, warn: Warn
                   ) -> Iterator[tuple[int, dict]]:
    """The records of a JSONL file; a bad or oversized line is reported and skipped."""
    for number, line in _lines(handle, name, options):
        if line is None:
            warn(_over_the_cap(f"{name}:{number}", options))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            warn(f"{name}:{number}: skipped, not valid JSON ({exc.msg})")
            continue
        except RecursionError:
            warn(f"{name}:{number}: skipped, JSON nested too deeply")
            continue
        if not isinstance(record, dict):
            warn(f"{name}:{number}: skipped, not a JSON object")
            continue
        yield number, _finite(_storable(record), f"{name}:{number}", warn)


def _csv_records(handle: BinaryIO, name: str, fmt: str, options: ReadOptions
                 ) -> Iterator[tuple[int, dict]]:
    """The rows of a CSV/TSV file, or InputError for one that cannot be parsed or holds a row
    over the cap (``_records`` checks the whole file before any row is used)."""
    csv.field_size_limit(sys.maxsize)  # rows are bounded by the cap, counted below
    limit, row_size = _max_size(options), [0]

    def lines() -> Iterator[str]:
        for number, line in _lines(handle, name, options):
            row_size[0] += limit + 1 if line is None else len(line)
            if row_size[0] > limit:
                raise InputError(_over_the_cap(f"{name}:{number}", options)
                                 + " (a row; the whole file is skipped)")
            yield line

    reader = csv.DictReader(lines(), delimiter="\t" if fmt == "tsv" else ",")
    try:
        for number, row in enumerate(reader, start=2):
            row_size[0] = 0  # the reader reads no further than the row it returns
            yield number, {key: value for key, value in row.items() if key is not None}
    except csv.Error as exc:
        raise InputError(f"{name}:{reader.line_num}: skipped, not valid {fmt.upper()}"
                         f" ({exc})") from None


def _records(handle: BinaryIO, fmt: str, name: str, options: ReadOptions, warn: Warn
             ) -> Iterator[tuple[int, dict]]:
    """The records of a JSONL/CSV/TSV file, streamed: a first pass checks that the whole file
    decodes (and, for CSV, parses), so a file that cannot be read goes in not at all rather
    than in half (InputError); the second pass yields the records."""
    def read() -> Iterator[tuple[int, dict]]:
        handle.seek(0)
        if fmt == "jsonl":
            return _jsonl_records(handle, name, options, warn)
        return _csv_records(handle, name, fmt, options)

    handle.seek(0)
    for _ in _lines(handle, name, options) if fmt == "jsonl" else read():
        pass
    yield from read()


def _storable(record: dict) -> dict:
    """JSON escapes can spell lone surrogates, which no UTF-8 file or database can hold: they
    become U+FFFD."""
    dumped = json.dumps(record, ensure_ascii=False)
    try:
        dumped.encode("utf-8")
        return record
    except UnicodeEncodeError:
        return json.loads(dumped.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


def _finite(record: dict, where: str, warn: Warn) -> dict:
    """NaN and ±Infinity (Python's json reads them, JSON has none) become null anywhere in a
    record, with a warning: stored, they would make every later answer that holds them invalid
    JSON. Walked with a stack, as a record may nest as deep as json.loads allows."""
    stack: list[tuple[dict | list, str]] = [(record, "")]
    while stack:
        container, path = stack.pop()
        keyed = isinstance(container, dict)
        for key, value in list(container.items() if keyed else enumerate(container)):
            field_path = (f"{path}.{key}" if path else str(key)) if keyed else f"{path}[{key}]"
            if isinstance(value, float) and not math.isfinite(value):
                spelling = "NaN" if math.isnan(value) else ("Infinity" if value > 0
                                                            else "-Infinity")
                warn(f"{where}: field {field_path!r} is {spelling}; stored as null")
                container[key] = None
            elif isinstance(value, dict | list):
                stack.append((value, field_path))
    return record


def _record_documents(
    records: Iterable[tuple[int, dict]], source: str, name: str, options: ReadOptions, warn: Warn
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


def _format_of(path_name: str, requested: str) -> str:
    if requested != "auto":
        return requested
    suffix = Path(path_name).suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".csv", ".tsv"}:
        return suffix[1:]
    if suffix in HTML_SUFFIXES:
        return "html"
    return "text"


def _documents_of(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn,
                  size: int | None = None) -> Iterator[Document]:
    """The documents of one open file or stream; ``name`` says it in messages and gives its
    format. A records file is streamed; any other is one document, skipped when its ``size``
    (or what can be read, up to one byte more) is over the cap."""
    fmt = _format_of(name, options.format)
    if fmt not in RECORD_FORMATS and size is not None and size > _max_size(options):
        warn(_over_the_cap(name, options, size / 2**20))
        return
    if _is_binary(handle.read(8192)):
        warn(f"{name}: skipped, looks like a binary file")
        return
    if fmt in RECORD_FORMATS:
        records = _records(handle, fmt, name, options, warn)
        yield from _record_documents(records, doc_id, name, options, warn)
        return
    text = _read_text(handle, name, options)
    if text is None:
        warn(_over_the_cap(name, options))
        return
    title = ""
    if fmt == "html":
        title, text = _html_document(text)
    if not text.strip():
        warn(f"{name}: skipped, no text")
        return
    yield Document(id=doc_id, text=text, source=doc_id, title=title or _first_line_title(text))


def _read_text(handle: BinaryIO, name: str, options: ReadOptions) -> str | None:
    """The whole text of a file or stream, or None when it is over the cap (read up to one
    byte more, never further). Its bytes die here: the text alone stays while it is indexed."""
    limit = _max_size(options)
    handle.seek(0)
    data = handle.read(limit + 1)
    return None if len(data) > limit else _decode(data, name, options.encoding)


def _stdin_documents(stream: BinaryIO, options: ReadOptions, warn: Warn) -> Iterator[Document]:
    """Standard input: records are copied to a temporary file as they come (the id needs the
    digest of all of it, and the first pass a second read); a text is read up to the cap."""
    if _format_of(STDIN_NAME, options.format) not in RECORD_FORMATS:
        data = stream.read(_max_size(options) + 1)
        digest = hashlib.sha256(data).hexdigest()[:12]
        yield from _documents_of(io.BytesIO(data), STDIN_NAME, f"stdin:{digest}", options, warn)
        return
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as copy:
        while chunk := stream.read(_READ_CHUNK):
            digest.update(chunk)
            copy.write(chunk)
        copy.seek(0)
        yield from _documents_of(copy, STDIN_NAME, f"stdin:{digest.hexdigest()[:12]}", options,
                                 warn)


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


def _files(root: Path, roots: list[Path], options: ReadOptions, warn: Warn) -> Iterator[Path]:
    """The files to read under ``root`` (a file given directly is itself), as real paths, each
    once, in the order of the paths they were found at; hidden parts are skipped, and so are
    symbolic links that lead out of ``roots`` unless ``options.follow_symlinks``. Walked with
    an explicit stack: a folder nested 1,000 deep must not exhaust Python's (``rglob`` did)."""
    if not root.is_dir():
        if root.is_file():
            yield root.resolve()
        else:
            warn(f"{root}: skipped, not a regular file")
        return
    suffixes = TEXT_SUFFIXES | RECORD_SUFFIXES | HTML_SUFFIXES
    found: list[tuple[Path, Path]] = []  # (where it was found, real path)
    walked = {root.resolve()}
    stack = [(root, root.resolve())]
    while stack:
        folder, real_folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            warn(f"{folder}: skipped, cannot read ({exc.strerror})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            real = (_link_target(path, roots, options, warn) if entry.is_symlink()
                    else real_folder / entry.name)
            if real is None:
                continue
            if real.is_dir():
                if real == real_folder or real in real_folder.parents:
                    warn(f"{path}: skipped, symbolic link loop")
                elif real not in walked:
                    walked.add(real)
                    stack.append((path, real))
            elif real.is_file() and (path.relative_to(root).match(options.glob)
                                     if options.glob else real.suffix.lower() in suffixes):
                found.append((path, real))
    seen: set[Path] = set()
    for _, real in sorted(found):
        if real not in seen:
            seen.add(real)
            yield real


def _link_target(link: Path, roots: list[Path], options: ReadOptions, warn: Warn) -> Path | None:
    """Where a symbolic link found in a folder leads, or None (with a warning) when it is
    broken, loops, or leads out of the folders given (unless ``--follow-symlinks``)."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except OSError as exc:
        problem = "symbolic link loop" if exc.errno == errno.ELOOP else "broken symbolic link"
        warn(f"{link}: skipped, {problem}")
        return None
    if not options.follow_symlinks and not any(target.is_relative_to(r) for r in roots):
        warn(f"{link}: skipped, symbolic link to outside the folders given (--follow-symlinks"
             " follows it)")
        return None
    return target


def read_documents(
    inputs: Iterable[str], options: ReadOptions, warn: Warn, stdin: BinaryIO | None = None
) -> Iterator[Document]:
    """Documents from files, folders (recursively) and ``-`` (stdin); skipped files are warned.
    Memory stays bounded by the cap on one document, however large the inputs."""
    inputs = list(inputs)
    roots = [Path(item).expanduser().resolve() for item in inputs if item != "-"]
    for item in inputs:
        if item == "-":
            yield from _safe(_stdin_documents(stdin or sys.stdin.buffer, options, warn), warn)
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise InputError(f"{item}: no such file or folder")
        for file in _files(path, roots, options, warn):
            yield from _safe(_file_documents(file, options, warn), warn)


def _safe(documents: Iterator[Document], warn: Warn) -> Iterator[Document]:
    """A file that cannot be decoded is reported and skipped; the others still go in."""
    try:
        yield from documents
    except InputError as exc:
        warn(str(exc))


# ---- units -----------------------------------------------------------------------------------

Span = tuple[int, int]


def sentence_spans(text: str) -> list[Span]:
    """Sentence boundaries from a real splitter (Bling Fire), inside paragraph breaks. A long
    paragraph goes to the splitter in blocks (it needs ~20 bytes per byte given): a block ends
    at its last whitespace, else anywhere, and the sentences on either side of that cut are
    joined again, so a 20 MB word is still one sentence."""
    import blingfire

    spans: list[Span] = []
    start = 0
    for paragraph_end in [m.start() for m in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]:
        first_of_paragraph = len(spans)
        for block_start, block_end in _blocks(text, start, paragraph_end):
            block = text[block_start:block_end]
            offsets = _found_in(block, blingfire.text_to_sentences(block).split("\n"))
            if offsets is None:  # the splitter changed some characters: ask it where they were
                offsets = blingfire.text_to_sentences_and_offsets(block)[1]
            found = [(block_start + a, block_start + b) for a, b in offsets if block[a:b].strip()]
            if found and len(spans) > first_of_paragraph:  # the sentence our cut went through
                found[0] = (spans.pop()[0], found[0][1])
            spans.extend(found)
        start = paragraph_end
    return spans


def _blocks(text: str, start: int, end: int) -> Iterator[Span]:
    """``text[start:end]`` in pieces of at most SPLIT_BLOCK characters, each cut after the last
    whitespace that leaves one; blank pieces are left out."""
    while start < end:
        cut = end
        if end - start > SPLIT_BLOCK:
            last_space = _LAST_SPACE.match(text, start, start + SPLIT_BLOCK)
            cut = last_space.end() if last_space else start + SPLIT_BLOCK
        if text[start:cut].strip():
            yield start, cut
        start = cut


def _found_in(text: str, sentences: list[str]) -> list[Span] | None:
    """Where each sentence lies in ``text``, in order; None if one is not there verbatim.
    (Bling Fire's own offsets walk the text byte by byte in Python: 4x slower.)"""
    spans, cursor = [], 0
    for sentence in sentences:
        begin = text.find(sentence, cursor)
        if begin < 0 or text[cursor:begin].strip():
            return None
        cursor = begin + len(sentence)
        spans.append((begin, cursor))
    return spans


def pack_spans(spans: list[Span], tokens: np.ndarray, max_tokens: int, overlap: int) -> list[Span]:
    """Greedily pack consecutive sentences up to ``max_tokens``, repeating ``overlap`` sentences."""
    packed: list[Span] = []
    first = 0
    while first < len(spans):
        last, budget = first, int(tokens[first])
        while last + 1 < len(spans) and budget + tokens[last + 1] <= max_tokens:
            last += 1
            budget += int(tokens[last])
        packed.append((spans[first][0], spans[last][1]))
        if last + 1 >= len(spans):
            break
        first = max(last + 1 - overlap, first + 1)
    return packed


def unit_spans(
    text: str, unit: str, token_counts: Callable[[list[str]], np.ndarray],
    max_tokens: int | None, overlap: int,
) -> list[Span]:
    """Character spans of the units of one text (``sentence``, ``passage`` or ``document``)."""
    sentences = sentence_spans(text)
    if unit == "sentence" or not sentences:
        return sentences
    if unit == "document":
        whole = (sentences[0][0], sentences[-1][1])
        if max_tokens == sys.maxsize or token_counts([text[slice(*whole)]])[0] <= max_tokens:
            return [whole]
        overlap = 0
    tokens = token_counts([text[a:b] for a, b in sentences])
    return pack_spans(sentences, tokens, max_tokens, overlap)
