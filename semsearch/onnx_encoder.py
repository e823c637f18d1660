"""The encoder without torch: a model's ONNX export (``onnx_export``) run by ONNX Runtime, its
tokens made by Hugging Face ``tokenizers`` from the tokenizer the export was traced with.

Nothing here imports torch, transformers or sentence-transformers, so a one-shot query starts
in a fraction of a second, and one short text embeds several times faster than on torch.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semsearch.encoding import Encoder, Features
from semsearch.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_INPUTS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def cpu_threads() -> int:
    """The cores this process may run on (what torch uses by default too)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class OnnxEncoder(Encoder):
    """The same vectors as torch fp32 (or ONNX Runtime's dynamic int8), on the CPU."""

    backend = "onnx"

    def __init__(self, path: Path, recipe_file: Path, precision: str = "fp32"):
        import onnxruntime
        from tokenizers import Tokenizer

        recipe = json.loads(recipe_file.read_text())
        folder = recipe_file.parent
        self.path, self.precision = path, precision
        self.pooling, self.dimension = recipe["pooling"], int(recipe["dimension"])
        self.max_seq_length = int(recipe["max_seq_length"])
        self.padding_side, self.prompt = recipe["padding_side"], recipe["prompt"]
        self._tokenizer_json = (folder / recipe["tokenizer"]).read_text(encoding="utf-8")
        self._tokenizer = Tokenizer.from_str(self._tokenizer_json)
        self._tokenizer.no_truncation()
        self._tokenizer.enable_truncation(self.max_seq_length,
                                          direction=recipe["truncation_side"])
        self._tokenizer.enable_padding(direction=self.padding_side, pad_id=recipe["pad_id"],
                                       pad_type_id=recipe["pad_type_id"],
                                       pad_token=recipe["pad_token"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(folder / recipe["onnx"][precision]), options,
                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            raise ModelError(f"cannot run the ONNX export {folder / recipe['onnx'][precision]}"
                             f" ({type(exc).__name__}); delete it and run `semsearch index"
                             " --prepare` again") from None
        self._inputs = [node.name for node in self.session.get_inputs()]

    @property
    def tokenizer_json(self) -> str:
        return self._tokenizer_json

    @cached_property
    def _counter(self) -> Tokenizer:
        """A copy that only counts: no padding, truncation left to each call's caller."""
        from tokenizers import Tokenizer

        counter = Tokenizer.from_str(self._tokenizer_json)
        counter.no_padding()
        counter.no_truncation()
        return counter

    def _token_ids(self, texts: list[str], at_most: int) -> list[list[int]]:
        encoded = self._counter.encode_batch(texts, add_special_tokens=False)
        return [encoding.ids[:at_most] for encoding in encoded]

    def _features(self, texts: list[str]) -> Features:
        if self.prompt:
            texts = [self.prompt + text for text in texts]
        encoded = self._tokenizer.encode_batch(texts)
        return {name: np.array([getattr(encoding, _INPUTS[name]) for encoding in encoded],
                               dtype=np.int64).reshape(len(encoded), -1)
                for name in _INPUTS if name in self._inputs or name == "attention_mask"}

    def _embed(self, features: Features) -> np.ndarray:
        return self.session.run(None, {name: features[name] for name in self._inputs})[0]
