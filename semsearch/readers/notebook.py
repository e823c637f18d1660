"""Jupyter notebooks (.ipynb), one document per file, written out as Markdown: Markdown cells
as they are, code cells as fenced code in the notebook's language, raw cells and outputs
dropped (outputs are what the code printed, not what was written: tracebacks, numbers, images
in base64).

The file is read as plain JSON (no nbformat): its cells and a few fields of its metadata are
all that is used.
"""

from __future__ import annotations

import json
import re
from typing import Any

from semsearch.errors import InputError
from semsearch.readers import markdown
from semsearch.readers.document import Reader, ReadOptions, Warn
from semsearch.readers.text import Converted, one_document_per_file

# A language name that can follow a fence as its info word (python, R, c++, julia, …).
_LANGUAGE = re.compile(r"[\w+#.-]+")
_BACKTICKS = re.compile(r"`+")


def _notebook(text: str, name: str, options: ReadOptions, warn: Warn) -> Converted:
    """The notebook's cells as one Markdown note: its title and the tags and links its
    Markdown cells give are a note's (see markdown._note)."""
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as exc:  # (RecursionError: JSON nested too deep)
        raise InputError(f"{name}: skipped, not a Jupyter notebook (invalid JSON: {exc})"
                         ) from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise InputError(f"{name}: skipped, not a Jupyter notebook (no list of cells)")
    given = notebook.get("metadata")
    metadata: dict[str, Any] = given if isinstance(given, dict) else {}
    language = _language(metadata)
    parts = []
    for cell in cells:
        kind = cell.get("cell_type") if isinstance(cell, dict) else None
        source = _source(cell).rstrip() if kind in ("markdown", "code") else ""
        if not source.strip():
            continue
        if kind == "markdown":
            parts.append(source)
        elif options.code:  # a fence longer than any run of backticks in the code
            fence = "`" * max([3, *(len(run) + 1 for run in _BACKTICKS.findall(source))])
            parts.append(f"{fence}{language}\n{source}\n{fence}")
    text = "\n\n".join(parts)
    note = markdown.parse(text, code=options.code)
    fields: dict[str, Any] = {}
    if note.tags:
        fields["tags"] = list(dict.fromkeys(note.tags))
    if note.links:
        fields["links"] = list(dict.fromkeys(note.links))
    structure = markdown.STRUCTURE if options.code else markdown.STRUCTURE_WITHOUT_CODE
    return Converted(text, markdown.title(metadata, note, name, options.title_from), fields,
                     structure=structure, blocks=note.blocks)


def _language(metadata: dict[str, Any]) -> str:
    """The notebook's language, from its kernel or language info; "" where it says none."""
    for section, key in (("kernelspec", "language"), ("language_info", "name")):
        fields = metadata.get(section)
        value = fields.get(key) if isinstance(fields, dict) else None
        if isinstance(value, str) and _LANGUAGE.fullmatch(value):
            return value
    return ""


def _source(cell: dict[str, Any]) -> str:
    """A cell's source, which nbformat writes as a list of lines (each with its newline) or as
    one string; newlines made ``\\n`` (JSON keeps a ``\\r`` the file's decoding did not see)."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(line for line in source if isinstance(line, str))
    return source.replace("\r\n", "\n").replace("\r", "\n") if isinstance(source, str) else ""


NOTEBOOK = Reader("notebook", (".ipynb",), one_document_per_file(_notebook))
