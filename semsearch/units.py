"""Splitting a text into units (sentences, passages, whole documents), as character spans.

Spans, not strings: the store keeps where each unit lies in its document's text.
"""

from __future__ import annotations

import bisect
import itertools
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

UNIT_KINDS = ("sentence", "passage", "document")
# What may be embedded with a unit's text (IndexSettings.context).
UNIT_CONTEXTS = ("none", "title", "heading")
# In sentence units, consecutive list items and table rows of one section are packed up to
# this many tokens (about a long sentence): one item alone says too little to be found by.
PACKED_TOKENS = 64
_SHORT_KINDS = ("list", "table")
SPLIT_BLOCK = 2**20  # characters of one paragraph given to the sentence splitter at once
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)

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


def unit_sentences(text: str) -> list[str]:
    """The sentences of a unit of more than one, each embedded alone beside the unit (an index's
    ``sentence_vectors``): a long unit's vector blurs what its one relevant sentence says."""
    sentences = [text[a:b] for a, b in sentence_spans(text) if _WORDY.search(text, a, b)]
    return sentences if len(sentences) > 1 else []


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


def cut_units(
    text: str, blocks: list[Block] | None, unit: str,
    token_counts: Callable[[list[str]], np.ndarray], max_tokens: int | None, overlap: int,
) -> list[Unit]:
    """The units of one document (``sentence``, ``passage`` or ``document``), cut inside its
    ``blocks`` (None: the whole text is one). A unit with no letter or digit (a list number, a
    rule, markup alone) is left out. Passages pack sentences of one section (heading and page);
    sentences are one each, but a heading goes with what follows it and short list items and
    table rows go together (:func:`_sentence_groups`)."""
    pieces = _pieces(text, blocks if blocks is not None else [Block(0, len(text))])
    if not pieces:
        return []
    if unit == "sentence":
        return [_unit(group) for group in _sentence_groups(pieces, token_counts)]
    assert max_tokens is not None, f"{unit} units need max_tokens"
    if unit == "document":
        whole = _unit(pieces)
        if max_tokens == sys.maxsize or token_counts([whole.text])[0] <= max_tokens:
            return [whole]
        sections, overlap = [pieces], 0
    else:
        sections = [list(group) for _, group in
                    itertools.groupby(pieces, key=lambda p: (p.block.heading, p.block.page))]
    units = []
    for section in sections:
        tokens = token_counts([piece.text for piece in section])
        runs = pack_spans([(i, i + 1) for i in range(len(section))], tokens, max_tokens, overlap)
        units += [_unit(section[first:last]) for first, last in runs]
    return units


def _sentence_groups(pieces: list[_Piece], token_counts: Callable[[list[str]], np.ndarray]
                     ) -> Iterator[list[_Piece]]:
    """Sentence units: a heading joined to the piece after it in its section, and consecutive
    list items and table rows of a section packed up to PACKED_TOKENS (measured on a notes
    vault: benchmarks/notes_retrieval.py)."""
    short = [n for n, piece in enumerate(pieces) if piece.block.kind in _SHORT_KINDS]
    counts = np.asarray(token_counts([pieces[n].text for n in short]) if short else [], np.int64)
    tokens = dict(zip(short, counts.tolist(), strict=True))
    group: list[_Piece] = []
    budget = 0
    for number, piece in enumerate(pieces):
        if group:
            last = group[-1].block
            same_section = (last.heading, last.page) == (piece.block.heading, piece.block.page)
            packs = (number in tokens and last.kind in (*_SHORT_KINDS, "heading")
                     and budget + tokens[number] <= PACKED_TOKENS)
            if not (same_section and (last.kind == "heading" or packs)):
                yield group
                group, budget = [], 0
        group.append(piece)
        budget += tokens.get(number, 0)
    yield group


@dataclass(frozen=True)
class Block:
    """A stretch of a document's text that no unit crosses (a paragraph, a list item, a table
    row, a code block, a page), with where it sits: its heading path and page. Where the text
    is markup, ``plain`` is what it says (what is embedded and keyword-indexed) and
    ``anchors`` align the two: (offset in plain, offset in the text) where each run of plain
    characters taken from the text begins; so a unit's span still points into the text."""

    start: int
    end: int
    kind: str = "text"  # text: cut into sentences; heading, list, table, code: one piece each
    heading: str = ""
    page: int | None = None
    plain: str | None = None
    anchors: tuple[tuple[int, int], ...] = ()

    def source_offset(self, offset: int) -> int:
        """Where the character at ``offset`` of the plain text comes from in the text."""
        if self.plain is None:
            return self.start + offset
        at = bisect.bisect_right(self.anchors, (offset, sys.maxsize)) - 1
        if at < 0:
            return self.start
        plain_at, text_at = self.anchors[at]
        return min(text_at + offset - plain_at, self.end)


class Unit(NamedTuple):
    """One unit: its span in the document's text, the text it says, its heading path and page."""

    start: int
    end: int
    text: str
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True)
class _Piece:
    block: Block
    plain: str  # the block's whole plain text
    first: int  # the piece's span in it
    last: int

    @property
    def text(self) -> str:
        return self.plain[self.first:self.last]


_WORDY = re.compile(r"[^\W_]")  # a letter or a digit


def _pieces(text: str, blocks: list[Block]) -> list[_Piece]:
    """Sentences of the prose blocks and the whole of every other block, in order."""
    pieces = []
    for block in blocks:
        plain = text[block.start:block.end] if block.plain is None else block.plain
        if block.kind == "text":
            spans = sentence_spans(plain)
        else:
            stripped = plain.strip()
            spans = [(plain.find(stripped), plain.find(stripped) + len(stripped))] if (
                stripped) else []
        pieces += [_Piece(block, plain, a, b) for a, b in spans if _WORDY.search(plain, a, b)]
    return pieces


def _unit(pieces: list[_Piece]) -> Unit:
    """The unit made of consecutive ``pieces``: from the first one's start to the last one's
    end in the text (a block's own bounds where a piece starts or ends it, so markup around
    its ends is inside), saying their plain text."""
    head, tail = pieces[0], pieces[-1]
    markup = head.block.plain is not None
    start = head.block.start if markup and not head.plain[:head.first].strip() else (
        head.block.source_offset(head.first))
    markup = tail.block.plain is not None
    end = tail.block.end if markup and not tail.plain[tail.last:].strip() else (
        tail.block.source_offset(tail.last - 1) + 1)
    said = [group[0].plain[group[0].first:group[-1].last] for group in (
        list(run) for _, run in itertools.groupby(pieces, key=lambda p: id(p.block)))]
    return Unit(start, max(end, start), "\n\n".join(said), head.block.heading, head.block.page)
