"""Markdown (.md, .markdown), one document per file: YAML front matter becomes the document's
metadata and title, and never unit text.

The front matter is blanked in place (every character but its newlines made a space), so the
document's text keeps the file's offsets: a unit's span still points at its place in the file.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

from semsearch.readers.document import Reader, Warn
from semsearch.readers.text import Converted, one_document_per_file

# A block of YAML between two `---` lines at the very start of the file (Jekyll, Hugo,
# Obsidian, Logseq); the closing line may also be `...`.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def _note(text: str, name: str, warn: Warn) -> Converted:
    found = _FRONT_MATTER.match(text)
    if found is None:
        return Converted(text)
    blanked = re.sub(r"[^\n]", " ", found.group(0)) + text[found.end():]
    metadata = _front_matter(found.group(1) or "", name, warn)
    title = metadata.get("title")
    return Converted(blanked, title.strip()[:200] if isinstance(title, str) else "", metadata)


def _front_matter(block: str, name: str, warn: Warn) -> dict[str, Any]:
    """The front matter's fields as JSON values (lists stay lists, dates become ISO strings);
    YAML that does not parse, or is not a mapping, is a warning and no metadata."""
    import yaml

    try:
        fields = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 2}" if mark is not None else ""  # +1: the opening ---
        problem = getattr(exc, "problem", None) or type(exc).__name__
        warn(f"{name}:{where}: front matter is not valid YAML ({problem}); the note is indexed"
             " without its metadata")
        return {}
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        warn(f"{name}: front matter is not a list of KEY: VALUE fields; the note is indexed"
             " without its metadata")
        return {}
    return {str(key): _json_value(value) for key, value in fields.items()}


def _json_value(value: Any) -> Any:
    """A YAML value as the store keeps metadata: JSON, with dates as ISO strings and anything
    JSON has no form for (a NaN, a set, a binary) as text."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


MARKDOWN = Reader("markdown", (".md", ".markdown"), one_document_per_file(_note))
