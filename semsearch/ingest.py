"""Ingestion: files, folders and stdin in; documents and their units (with character spans) out."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semsearch.errors import InputError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text"}
RECORD_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
HTML_SUFFIXES = {".html", ".htm"}
FORMATS = ("auto", "text", "jsonl", "csv", "tsv", "html")
UNIT_KINDS = ("sentence", "passage", "document")

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

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


def _is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _decode(data: bytes, name: str, encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid {encoding} (byte {exc.start}); pass --encoding to read it"
        ) from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
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


def _records(text: str, fmt: str, name: str, warn: Warn) -> list[tuple[int, dict]]:
    """All records of a JSONL/CSV/TSV file, or InputError for a file that cannot be parsed
    (then none of it goes in); a bad JSONL line is reported and skipped."""
    if fmt != "jsonl":
        csv.field_size_limit(sys.maxsize)
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",")
        try:
            return [(number, {key: value for key, value in row.items() if key is not None})
                    for number, row in enumerate(reader, start=2)]
        except csv.Error as exc:
            raise InputError(f"{name}:{reader.line_num}: skipped, not valid {fmt.upper()}"
                             f" ({exc})") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
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
        found.append((number, _storable(record)))
    return found


def _storable(record: dict) -> dict:
    """JSON escapes can spell lone surrogates, which no UTF-8 file or database can hold: they
    become U+FFFD."""
    dumped = json.dumps(record, ensure_ascii=False)
    try:
        dumped.encode("utf-8")
        return record
    except UnicodeEncodeError:
        return json.loads(dumped.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


def _record_documents(
    records: Iterable[tuple[int, dict]], source: str, name: str, options: ReadOptions, warn: Warn
) -> Iterator[Document]:
    for number, record in records:
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


def parse_bytes(
    data: bytes, source: str, doc_id: str, options: ReadOptions, warn: Warn
) -> Iterator[Document]:
    """Turn one file's bytes into documents; ``source`` names it in messages."""
    if _is_binary(data):
        warn(f"{source}: skipped, looks like a binary file")
        return
    text = _decode(data, source, options.encoding)
    fmt = _format_of(source, options.format)
    if fmt in {"jsonl", "csv", "tsv"}:
        records = _records(text, fmt, source, warn)
        if not records:
            warn(f"{source}: skipped, no records")
        yield from _record_documents(records, doc_id, source, options, warn)
        return
    title = ""
    if fmt == "html":
        title, text = _html_document(text)
    if not text.strip():
        warn(f"{source}: skipped, no text")
        return
    yield Document(id=doc_id, text=text, source=doc_id, title=title or _first_line_title(text))


def _files(path: Path, pattern: str | None) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    suffixes = TEXT_SUFFIXES | RECORD_SUFFIXES | HTML_SUFFIXES
    for file in sorted(path.rglob(pattern or "*")):
        relative = file.relative_to(path).parts
        if any(part.startswith(".") for part in relative) or not file.is_file():
            continue
        if pattern or file.suffix.lower() in suffixes:
            yield file


def read_documents(
    inputs: Iterable[str], options: ReadOptions, warn: Warn, stdin=None
) -> Iterator[Document]:
    """Documents from files, folders (recursively) and ``-`` (stdin); skipped files are warned."""
    for item in inputs:
        if item == "-":
            data = (stdin or sys.stdin.buffer).read()
            digest = hashlib.sha256(data).hexdigest()[:12]
            yield from _safe(parse_bytes(data, "<stdin>", f"stdin:{digest}", options, warn), warn)
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise InputError(f"{item}: no such file or folder")
        for file in _files(path, options.glob):
            try:
                data = file.read_bytes()
            except OSError as exc:
                warn(f"{file}: skipped, cannot read ({exc.strerror})")
                continue
            doc_id = str(file.resolve())
            yield from _safe(parse_bytes(data, doc_id, doc_id, options, warn), warn)


def _safe(documents: Iterator[Document], warn: Warn) -> Iterator[Document]:
    """A file that cannot be decoded is reported and skipped; the others still go in."""
    try:
        yield from documents
    except InputError as exc:
        warn(str(exc))


# ---- units -----------------------------------------------------------------------------------

Span = tuple[int, int]


def sentence_spans(text: str) -> list[Span]:
    """Sentence boundaries from a real splitter (Bling Fire), inside paragraph breaks."""
    import blingfire

    spans: list[Span] = []
    start = 0
    for paragraph_end in [m.start() for m in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]:
        paragraph = text[start:paragraph_end]
        if paragraph.strip():
            offsets = _found_in(paragraph, blingfire.text_to_sentences(paragraph).split("\n"))
            if offsets is None:  # the splitter changed some characters: ask it where they were
                offsets = blingfire.text_to_sentences_and_offsets(paragraph)[1]
            spans.extend((start + a, start + b) for a, b in offsets if paragraph[a:b].strip())
        start = paragraph_end
    return spans


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
