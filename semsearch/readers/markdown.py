"""Markdown (.md, .markdown): a note or a page, read by its structure with markdown-it-py.

- YAML front matter becomes the document's metadata (and its ``title`` field the title). It
  is blanked in place (every character but its newlines made a space), so the document's text
  keeps the file's offsets and a unit's span still points at its place in the file.
- Every paragraph, list item, table row and code block is a block of its own, with its heading
  path (``Introduction › Setup``); units never cross them, and what is embedded and keyword-
  indexed is the plain text, without markup: emphasis, code ticks, ``[text](url)`` → text,
  ``[[Note|alias]]`` → alias, images and HTML dropped.
- Obsidian's inline ``#tags`` join the ``tags`` metadata, wiki-link targets make ``links``.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semsearch.readers.document import Reader, ReadOptions, Warn
from semsearch.readers.text import Converted, one_document_per_file
from semsearch.units import Block

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token

STRUCTURE = "markdown"
STRUCTURE_WITHOUT_CODE = "markdown-without-code"
HEADING_SEPARATOR = " › "

# A block of YAML between two `---` lines at the very start of the file (Jekyll, Hugo,
# Obsidian, Logseq); the closing line may also be `...`.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_WIKI_LINK = re.compile(r"!?\[\[([^\[\]\n|]+?)(?:\|([^\[\]\n]*))?\]\]")
# An Obsidian tag: `#` after a space (or at the start), then letters, digits, _ - /, not
# digits alone (`#1` is not a tag).
_TAG = re.compile(r"#([\w/-]*[^\W\d][\w/-]*)")
# What opens a paragraph in a list item or a quote before its text: `>`s, a bullet or number,
# a task's box (the lines are the parser's; this only finds where the words begin).
_CONTAINER_MARKER = re.compile(r"(?:[ \t]*>)*[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?"
                               r"(?:\[[ xX]\][ \t]+)?")
_MARKUP_CHARACTER = re.compile(r"[\\`*_\[\]<>#&!|~]")
_LINE_START_MARKUP = re.compile(r"^(\s*\d*)([-+=]|(?<=\d)[.)])")
_TASK_BOX = re.compile(r"\[[ xX]\][ \t]+")
_HEADING_MARKER = re.compile(r"#{0,6}[ \t]*")
_ALIGN_WINDOW = 64  # how far ahead in the source a piece of plain text is looked for


def _note(text: str, name: str, options: ReadOptions, warn: Warn) -> Converted:
    found = _FRONT_MATTER.match(text)
    metadata: dict[str, Any] = {}
    if found is not None:
        text = re.sub(r"[^\n]", " ", found.group(0)) + text[found.end():]
        metadata = _front_matter(found.group(1) or "", name, warn)
    note = parse(text, code=options.code)
    if note.tags:
        metadata["tags"] = _merged(metadata.get("tags"), note.tags)
    if note.links:
        metadata["links"] = _merged(metadata.get("links"), note.links)
    return Converted(text, title(metadata, note, name, options.title_from), metadata,
                     structure=STRUCTURE if options.code else STRUCTURE_WITHOUT_CODE,
                     blocks=note.blocks)


def title(metadata: dict[str, Any], note: Note, name: str, title_from: str) -> str:
    """The front matter's title, the first heading or the file name (by ``title_from``), with
    the others in that order behind it; never markup."""
    stem = "" if name.startswith("<") else Path(name).stem  # (not <stdin>)
    given = metadata.get("title")
    front = given.strip() if isinstance(given, str) else ""
    order = {"front-matter": (front, stem, note.first_heading),
             "heading": (front, note.first_heading, stem),
             "filename": (stem, front, note.first_heading)}[title_from]
    return next((title for title in order if title), "")[:200]


def _merged(given: Any, found: list[str]) -> list[Any]:
    """A front-matter list (or single value) with what the text adds, each once, in order."""
    values = given if isinstance(given, list) else [] if given in (None, "") else [given]
    return list(dict.fromkeys([*values, *found]))


def escape(line: str) -> str:
    """A line of plain text (a web page's, a Word file's) as Markdown that says it as it is:
    punctuation that would be markup escaped, as a leading list number or bullet is."""
    line = _MARKUP_CHARACTER.sub(r"\\\g<0>", line)
    return _LINE_START_MARKUP.sub(r"\g<1>\\\g<2>", line)


# ---- the structure ----------------------------------------------------------------------------


class Note:
    """What the Markdown says: its blocks, its inline tags and link targets, first heading."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self.first_heading = ""


def blocks(text: str, structure: str) -> list[Block]:
    """The blocks of a Markdown document's text (as stored: front matter already blank)."""
    return parse(text, code=structure != STRUCTURE_WITHOUT_CODE).blocks


def parse(text: str, code: bool = True) -> Note:
    note = Note()
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    tokens = _parser().parse(text)
    headings: list[tuple[int, str]] = []
    in_list = in_quote = 0
    row: list[tuple[Token, bool]] = []  # the cells of the table row being read (token, header)
    header: list[str] = []

    def lines(first: int, end: int) -> tuple[int, int]:
        """Offsets of lines [first, end) with the whitespace around them left out."""
        start = line_starts[first]
        stop = line_starts[end] - 1 if end < len(line_starts) else len(text)
        while start < stop and text[start].isspace():
            start += 1
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        return start, stop

    def path() -> str:
        return HEADING_SEPARATOR.join(title for _, title in headings)

    for number, token in enumerate(tokens):
        if token.type == "heading_open":
            level = int(token.tag[1:])
            inline = tokens[number + 1]
            start, end = lines(*_map(inline))
            plain, anchors = _plain(inline, text, start, end, note)
            headings[:] = [h for h in headings if h[0] < level] + [(level, " ".join(plain.split()))]
            note.first_heading = note.first_heading or headings[-1][1]
            # A heading is a unit too (its words are found), under its own path.
            start = _HEADING_MARKER.match(text, start, end).end()  # type: ignore[union-attr]
            note.blocks.append(Block(start, end, "heading", path(), None, plain, tuple(anchors)))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            in_list += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            in_list -= 1
        elif token.type in ("blockquote_open", "blockquote_close"):
            in_quote += 1 if token.type == "blockquote_open" else -1
        elif token.type == "inline" and tokens[number - 1].type == "paragraph_open":
            start, end = lines(*_map(token))
            plain, anchors = _plain(token, text, start, end, note)
            if in_list or in_quote:  # the paragraph starts after the item's marker, the `>`
                start = _CONTAINER_MARKER.match(text, start, end).end()  # type: ignore[union-attr]
            if in_list and (box := _TASK_BOX.match(plain)):  # a task's `[ ]` says nothing
                plain = plain[box.end():]
                anchors = [(max(at - box.end(), 0), source) for at, source in anchors]
            note.blocks.append(Block(start, end, "list" if in_list else "text", path(), None,
                                     plain, tuple(anchors)))
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and tokens[number - 1].type in ("th_open", "td_open"):
            row.append((token, tokens[number - 1].type == "th_open"))
        elif token.type == "tr_close" and row:
            start, end = lines(*_map(row[0][0]))
            cells = [_plain(cell, text, start, end, note) for cell, _ in row]
            if all(is_header for _, is_header in row):
                header = [" ".join(plain.split()) for plain, _ in cells]
            note.blocks.append(_row_block(start, end, cells, header, row[0][1], path()))
        elif token.type in ("fence", "code_block") and code and token.content.strip():
            first, end = _map(token)
            if token.type == "fence":  # the lines between the fences (an open one runs on)
                closed = end - 1 > first and text[line_starts[end - 1]:].lstrip().startswith(
                    token.markup)
                first, end = first + 1, end - 1 if closed else end
            start, stop = lines(first, end)
            if stop > start:
                note.blocks.append(Block(start, stop, "code", path()))
    return note


def _map(token: Token) -> tuple[int, int]:
    assert token.map is not None, f"a {token.type} token has its lines"
    return token.map[0], token.map[1]


def _row_block(start: int, end: int, cells: list[tuple[str, list[tuple[int, int]]]],
               header: list[str], is_header: bool, heading: str) -> Block:
    """One table row: its cells, each under its column's header (``Name: value; …``)."""
    plain, anchors = "", []
    for column, (cell, cell_anchors) in enumerate(cells):
        label = header[column] if not is_header and column < len(header) else ""
        plain += ("; " if plain else "") + (f"{label}: " if label else "")
        anchors += [(len(plain) + at, source) for at, source in cell_anchors]
        plain += cell
    return Block(start, end, "table", heading, None, plain, tuple(anchors))


def _plain(inline: Token, text: str, start: int, end: int, note: Note
           ) -> tuple[str, list[tuple[int, int]]]:
    """The plain text of an inline token and its anchors into ``text[start:end]``, where its
    source lies; its tags and link targets go to ``note``."""
    plain, anchors, cursor = "", [], start
    for piece, found_in_source in _pieces(inline, note):
        if found_in_source:
            for at, source in _align(piece, text, cursor, end):
                anchors.append((len(plain) + at, source))
                cursor = source + len(piece) - at
        plain += piece
    return plain, anchors


def _pieces(inline: Token, note: Note) -> Iterator[tuple[str, bool]]:
    """The plain text an inline token says, piece by piece: (text, whether it is in the source
    as it is said)."""
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            yield child.content, True
        elif child.type in ("softbreak", "hardbreak"):
            yield " ", False
        elif child.type == "wikilink":
            note.links.append(child.meta["target"])
            if child.content:  # (an embed, ![[…]], says nothing)
                yield child.content, True
        elif child.type == "hashtag":
            note.tags.append(child.content)
            yield child.content, True
        # emphasis, links' opening and closing, images and inline HTML say nothing


def _align(piece: str, text: str, cursor: int, end: int) -> Iterator[tuple[int, int]]:
    """Anchors of ``piece`` (offset in it, offset in ``text``) at or after ``cursor``: one
    where it is verbatim, else a run at a time (an entity, an escape changed characters)."""
    found = text.find(piece, cursor, min(end, cursor + len(piece) + _ALIGN_WINDOW))
    if found >= 0 or not piece:
        yield 0, found if found >= 0 else cursor
        return
    at, run = 0, False
    while at < len(piece) and cursor < end:
        found = text.find(piece[at], cursor, min(end, cursor + _ALIGN_WINDOW))
        if found < 0:
            at, run = at + 1, False
            continue
        if not run or found != cursor:
            yield at, found
        at, cursor, run = at + 1, found + 1, True


# ---- the parser: CommonMark with tables, strikethrough, wiki links and tags --------------------


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    parser.inline.ruler.before("link", "wikilink", _wiki_link)
    parser.inline.ruler.after("text", "hashtag", _hashtag)
    return parser


def _wiki_link(state: StateInline, silent: bool) -> bool:
    """``[[Note]]``, ``[[Note#Heading|alias]]`` and embeds ``![[image.png]]``."""
    found = _WIKI_LINK.match(state.src, state.pos)
    if found is None:
        return False
    if not silent:
        target, alias = found.group(1).strip(), found.group(2)
        token = state.push("wikilink", "", 0)
        page = target.split("#")[0].strip() or target
        token.meta = {"target": page}
        embed = found.group(0).startswith("!")
        token.content = "" if embed else (alias.strip() if alias and alias.strip() else page)
    state.pos = found.end()
    return True


def _hashtag(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "#" or (state.pos > 0 and not state.src[state.pos - 1].isspace()):
        return False
    found = _TAG.match(state.src, state.pos)
    if found is None:
        return False
    if not silent:
        state.push("hashtag", "", 0).content = found.group(1)
    state.pos = found.end()
    return True


# ---- front matter -----------------------------------------------------------------------------


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
