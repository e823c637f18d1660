"""JSON Lines (.jsonl, .ndjson): one document per JSON object; a bad line is reported and
skipped, the others still go in."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from semsearch.readers.document import Document, Reader, ReadOptions, Warn, over_the_cap
from semsearch.readers.records import Records, lines, read_records


def _read(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn
          ) -> Iterator[Document]:
    # Decoding is the whole check: a line that does not parse is skipped alone.
    return read_records(handle, name, doc_id, options, warn,
                        check=lambda: lines(handle, name, options),
                        records=lambda: _records(handle, name, options, warn))


def _records(handle: BinaryIO, name: str, options: ReadOptions, warn: Warn) -> Records:
    """The records of a JSONL file; a bad or oversized line is reported and skipped."""
    for number, line in lines(handle, name, options):
        if line is None:
            warn(over_the_cap(f"{name}:{number}", options))
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
        entries: Iterable[tuple[Any, Any]] = (container.items() if isinstance(container, dict)
                                              else enumerate(container))
        for key, value in list(entries):
            field_path = (f"{path}.{key}" if path else str(key)) if keyed else f"{path}[{key}]"
            if isinstance(value, float) and not math.isfinite(value):
                spelling = "NaN" if math.isnan(value) else ("Infinity" if value > 0
                                                            else "-Infinity")
                warn(f"{where}: field {field_path!r} is {spelling}; stored as null")
                container[key] = None
            elif isinstance(value, dict | list):
                stack.append((value, field_path))
    return record


JSONL = Reader("jsonl", (".jsonl", ".ndjson"), _read, streamed=True)
