"""What every encoder does the same way, whatever runs the model: cut texts to what the model
can see, count tokens, and embed in batches sorted by length. A backend (``torch_encoder``,
``onnx_encoder``) supplies the tokens and the forward pass; nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

POOLING_MODES = ("mean", "cls", "max", "attention")
# A batch holds up to batch_size × this many padded tokens (see Encoder.encode); on a GPU
# batch_size is at least GPU_BATCH_SIZE, which keeps it busy.
TOKENS_PER_TEXT = 128
GPU_BATCH_SIZE = 128
TOKENIZE_BLOCK = 16_384  # texts tokenized (and sorted by length) together
# Characters per token assumed when a tokenizer is not BERT's WordPiece (whose own bound is
# derived from its settings, see Encoder._char_bound).
CHARS_PER_TOKEN = 100
# Characters that BERT's normaliser drops (controls) or turns into a space (whitespace): a run
# of them yields no token, so it can shrink to one space (or to nothing, when it has no space).
_BLANK_RUN = re.compile("[\t\n\r \x00-\x1f\x7f-\x9f\u00a0\u1680\u2000-\u200a\u202f\u205f"
                        "\u3000]{2,}")
_SPACES = re.compile("[\t\n\r \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# Letters and digits other than CJK ideographs (which BERT splits one per token): each
# normalises to at least one character of the same word, so a run longer than WordPiece's
# word limit is one [UNK] token however long it is.
_WORD_CHARS = (r"[^\W_" "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
               "\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f]")

Features = dict[str, Any]  # token arrays (texts × padded tokens) and what else the model takes


class Encoder:
    """Turns texts into unit-length float32 vectors."""

    path: Path
    precision: str
    backend: str
    pooling: str
    dimension: int
    max_seq_length: int
    padding_side: str = "right"

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def tokenizer_json(self) -> str:
        """The fast tokenizer's settings (Hugging Face ``tokenizer.json``), or "" if unknown."""
        raise NotImplementedError

    def _token_ids(self, texts: list[str], at_most: int) -> list[list[int]]:
        """Token ids without special tokens, at most ``at_most`` per text."""
        raise NotImplementedError

    def _features(self, texts: list[str]) -> Features:
        """The model's inputs for the texts (already bounded), padded to the longest."""
        raise NotImplementedError

    def _embed(self, features: Features) -> np.ndarray:
        raise NotImplementedError

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """Token counts without special tokens (used to pack passages and spot truncation),
        counted up to the model's limit + 1: a longer text counts as limit + 1, which is all
        that packing and truncation need, and its work stays bounded however long it is."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoded = self._token_ids(self.bounded(texts), self.max_seq_length - 1)
        return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(texts))

    def count_truncated(self, texts: list[str]) -> int:
        # A word-piece is at least one character, so short texts cannot overflow:
        # only the long ones are tokenized a second time.
        limit = self.max_seq_length - 2
        long_texts = [text for text in texts if len(text) > limit]
        return int((self.token_counts(long_texts) > limit).sum())

    def bounded(self, texts: list[str]) -> list[str]:
        """The texts cut to a length whose tokens start exactly like the whole text's, for
        at least ``max_seq_length`` + 1 tokens: what the model sees (and its vector) is
        unchanged, and tokenizing a 20 MB unit costs what tokenizing 26 kB does."""
        return [self._bounded(text) for text in texts]

    def _bounded(self, text: str) -> str:
        per_token, shrink = self._char_bound
        keep = (self.max_seq_length + 3) * per_token
        if len(text) <= keep:
            return text
        # Shrinking a prefix changes at most its last run (up to ``per_token`` characters);
        # read more of the text until what is left after it reaches ``keep``.
        window = 2 * keep
        while True:
            head = shrink(text[:window])
            if len(head) >= keep + per_token or window >= len(text):
                return head[:keep]
            window *= 4

    @cached_property
    def _char_bound(self) -> tuple[int, Callable[[str], str]]:
        """Most characters one token can stand for, and a rewrite that keeps every token.
        With BERT's WordPiece (clean text on): a word of more than ``max_input_chars_per_word``
        is one [UNK], and blank runs give no token, so after cutting long words and blank runs
        a token spans at most the word limit + 2 characters. Other tokenizers: nothing is
        rewritten and CHARS_PER_TOKEN is assumed."""
        return char_bound_of(self.tokenizer_json)

    @contextmanager
    def sharing_cpu(self) -> Iterator[None]:
        """Leave a CPU core to work running beside this thread's encoding (the BM25 query of a
        hybrid search), where the backend's threads would otherwise wait on each other."""
        yield

    def encode(self, texts: list[str], batch_size: int = 32,
               batch_tokens: int | None = None) -> np.ndarray:
        """Unit-length vectors. The texts are tokenized once, sorted by token count and cut into
        batches of at most ``batch_tokens`` padded tokens (default ``batch_size`` ×
        TOKENS_PER_TEXT): many short texts or a few long ones per batch, so the cores stay busy
        for both and hardly any padding is computed."""
        if self.device.startswith("cuda"):
            batch_size = max(batch_size, GPU_BATCH_SIZE)
        budget = batch_tokens or batch_size * TOKENS_PER_TEXT
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for block in range(0, len(texts), TOKENIZE_BLOCK):  # bounds the padded token arrays
            features = self._features(self.bounded(texts[block:block + TOKENIZE_BLOCK]))
            ids, mask = features["input_ids"], features.get("attention_mask")
            lengths = mask.sum(axis=1) if mask is not None else np.full(len(ids), ids.shape[1])
            order = np.argsort(-lengths, kind="stable")
            start = 0
            while start < len(order):
                longest = int(lengths[order[start]])
                chosen = order[start:start + max(1, budget // max(longest, 1))]
                vectors[block + chosen] = self._embed(self._batch(features, chosen, longest))
                start += len(chosen)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # in place
        return vectors

    def _batch(self, features: Features, rows: np.ndarray, length: int) -> Features:
        """The chosen rows of the tokenized texts, cut to their own longest length."""
        padded = features["input_ids"].shape
        columns = (slice(padded[1] - length, None) if self.padding_side == "left"
                   else slice(0, length))
        return {key: np.ascontiguousarray(value[rows][:, columns])
                if isinstance(value, np.ndarray) and value.shape[:2] == padded else value
                for key, value in features.items()}


def char_bound_of(tokenizer_json: str) -> tuple[int, Callable[[str], str]]:
    """See :attr:`Encoder._char_bound` (read from the fast tokenizer's own settings)."""
    setup = json.loads(tokenizer_json) if tokenizer_json else {}
    normalizer, model = setup.get("normalizer") or {}, setup.get("model") or {}
    is_wordpiece_bert = (normalizer.get("type") == "BertNormalizer" and normalizer.get(
        "clean_text") and (setup.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
        and model.get("type") == "WordPiece")
    if not is_wordpiece_bert:
        return CHARS_PER_TOKEN, lambda text: text
    word_limit = int(model["max_input_chars_per_word"])
    long_word = re.compile(f"({_WORD_CHARS}{{{word_limit + 1}}}){_WORD_CHARS}+")

    def shrink(text: str) -> str:
        text = _BLANK_RUN.sub(lambda run: " " if _SPACES.search(run[0]) else "", text)
        return long_word.sub(r"\1", text)

    return word_limit + 2, shrink
