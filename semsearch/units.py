"""Splitting a text into units (sentences, passages, whole documents), as character spans.

Spans, not strings: the store keeps where each unit lies in its document's text.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator

import numpy as np

UNIT_KINDS = ("sentence", "passage", "document")
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
    assert max_tokens is not None, f"{unit} units need max_tokens"
    if unit == "document":
        whole = (sentences[0][0], sentences[-1][1])
        if max_tokens == sys.maxsize or token_counts([text[slice(*whole)]])[0] <= max_tokens:
            return [whole]
        overlap = 0
    tokens = token_counts([text[a:b] for a, b in sentences])
    return pack_spans(sentences, tokens, max_tokens, overlap)
