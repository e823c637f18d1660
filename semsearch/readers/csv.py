"""CSV and TSV (.csv, .tsv): one document per row, its fields named by the header. A file
that cannot be parsed, or holds a row over the cap, is skipped whole."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from functools import partial
from typing import BinaryIO

from semsearch.errors import InputError
from semsearch.readers.document import (
    Document,
    Reader,
    ReadOptions,
    Warn,
    max_bytes,
    over_the_cap,
)
from semsearch.readers.records import Records, lines, read_records


def _rows(handle: BinaryIO, name: str, fmt: str, options: ReadOptions) -> Records:
    """The rows of a CSV/TSV file, or InputError for one that cannot be parsed or holds a row
    over the cap (``read_records`` reads them all once before any row is used)."""
    csv.field_size_limit(sys.maxsize)  # rows are bounded by the cap, counted below
    limit, row_size = max_bytes(options), [0]

    def row_lines() -> Iterator[str]:
        for number, line in lines(handle, name, options):
            row_size[0] += limit + 1 if line is None else len(line)
            if line is None or row_size[0] > limit:
                raise InputError(over_the_cap(f"{name}:{number}", options)
                                 + " (a row; the whole file is skipped)")
            yield line

    reader = csv.DictReader(row_lines(), delimiter="\t" if fmt == "tsv" else ",")
    try:
        for number, row in enumerate(reader, start=2):
            row_size[0] = 0  # the reader reads no further than the row it returns
            yield number, {key: value for key, value in row.items() if key is not None}
    except csv.Error as exc:
        raise InputError(f"{name}:{reader.line_num}: skipped, not valid {fmt.upper()}"
                         f" ({exc})") from None


def _delimited(fmt: str) -> Reader:
    def read(handle: BinaryIO, name: str, doc_id: str, options: ReadOptions, warn: Warn
             ) -> Iterator[Document]:
        rows = partial(_rows, handle, name, fmt, options)  # parsing is the check
        return read_records(handle, name, doc_id, options, warn, check=rows, records=rows)

    return Reader(fmt, (f".{fmt}",), read, streamed=True)


CSV = _delimited("csv")
TSV = _delimited("tsv")
