"""The encoder on torch: a sentence-transformers model (CPU or GPU, in the precision the hardware
is fastest at), what indexing and training run on.

Built from the default model, any local sentence-transformers folder, or a plain Hugging Face
BERT folder (then pooling comes from ``--pooling``); a folder that would run its own code or
unpickle weights is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from semsearch.encoding import POOLING_MODES, Encoder, Features
from semsearch.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer

# Module types a model folder may name: sentence-transformers' own and semsearch's own.
_TRUSTED_MODULE_PREFIX = "sentence_transformers."


def check_model_folder(path: Path) -> bool:
    """Refuse folders that would run custom code or unpickle weights; True if it is an ST folder."""
    if not any(path.glob("*.safetensors")):
        raise ModelError(
            f"{path} has no .safetensors weights; semsearch does not load pickled weights"
        )
    modules_file = path / "modules.json"
    if not modules_file.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is neither a sentence-transformers nor a BERT model folder")
        return False
    from semsearch.pooling import OWN_MODULES

    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "")
        if not kind.startswith(_TRUSTED_MODULE_PREFIX) and kind not in OWN_MODULES:
            raise ModelError(
                f"{path} names a custom module {module.get('type')!r}; semsearch never runs code"
                " from a model folder"
            )
    return True


def pooling_of(model: SentenceTransformer) -> str | None:
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if isinstance(mode, str):
            return mode
    return None


def build_model(path: Path, pooling: str | None, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers.utils import logging as hf_logging

    from semsearch.pooling import OWN_MODULES, AttentionPooling

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if pooling is not None and pooling not in POOLING_MODES:
        raise ModelError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING_MODES)}")
    is_st_folder = check_model_folder(path)
    try:
        if is_st_folder:
            # Our own module types resolve to our classes, so no trust_remote_code is needed.
            model = SentenceTransformer._load_with_module_classes(
                str(path), OWN_MODULES, device=device, local_files_only=True)
            if pooling is None or pooling == pooling_of(model):
                if not isinstance(model[-1], Normalize):
                    model.append(Normalize())
                return model
            # A text model's first module is its Transformer (torch types it plain Module).
            transformer = cast("Transformer", model[0])
        else:
            transformer = Transformer(str(path))
        dimension = transformer.get_embedding_dimension()
        pool = (AttentionPooling(dimension, _attention_heads(transformer)) if pooling == "attention"
                else Pooling(dimension, pooling or "mean"))
        modules = [transformer, pool, Normalize()]
        return SentenceTransformer(modules=modules, device=device)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {path}: {exc}") from exc


def _attention_heads(transformer: Transformer) -> int:
    """One pooling head per attention head of the transformer (MiniLM: 12 of 32 dimensions)."""
    config = getattr(transformer.auto_model, "config", None)
    heads = getattr(config, "num_attention_heads", 1)
    return heads if transformer.get_embedding_dimension() % heads == 0 else 1


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchEncoder(Encoder):
    """The model's own forward pass on torch, without sentence-transformers' encode(), which
    walks every module on each call (about 3 ms: a fifth of one short query on 2 cores)."""

    backend = "torch"

    def __init__(self, path: Path, model: SentenceTransformer, precision: str = "fp32"):
        self.path, self.model, self.precision = path, model, precision
        self.pooling = pooling_of(model) or "mean"
        dimension, length = model.get_embedding_dimension(), model.max_seq_length
        assert dimension is not None and length is not None, "a text model (Transformer first)"
        self.dimension, self.max_seq_length = int(dimension), int(length)
        self.padding_side = self.tokenizer.padding_side

    @property
    def tokenizer(self) -> Any:  # a Hugging Face tokenizer (sentence-transformers types it Any)
        return self.model.tokenizer

    @property
    def device(self) -> str:
        return str(self.model.device)

    @cached_property
    def tokenizer_json(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        return backend.to_str() if backend is not None else ""

    def _token_ids(self, texts: list[str], at_most: int) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, truncation=True,
                              max_length=at_most, verbose=False)["input_ids"]

    @contextmanager
    def sharing_cpu(self) -> Iterator[None]:
        import torch

        threads = torch.get_num_threads()
        if self.device != "cpu" or threads < 2:
            yield
            return
        torch.set_num_threads(threads - 1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _features(self, texts: list[str]) -> Features:
        """Tokens as the model's own first module makes them, with its default prompt."""
        import torch

        model = self.model
        prompt = model.prompts.get(model.default_prompt_name) if (
            model.default_prompt_name) else None
        return {key: value.numpy() if isinstance(value, torch.Tensor) else value
                for key, value in model.preprocess(texts, prompt=prompt).items()}

    def _embed(self, features: Features) -> np.ndarray:
        import torch
        from sentence_transformers.util import batch_to_device

        if self.model.training:
            self.model.eval()
        tensors = {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                   for key, value in features.items()}
        with torch.inference_mode():
            embedded = self.model(batch_to_device(tensors, self.model.device))
            return embedded["sentence_embedding"].float().cpu().numpy()
