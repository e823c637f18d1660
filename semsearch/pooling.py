"""Learned attention pooling: a sentence-transformers module that weights tokens by a learned score.

A linear layer scores each token once per head; padding is masked; a softmax over the tokens turns
each head's scores into weights; each head pools its own slice of the dimensions, so different
dimensions can listen to different tokens. The layer starts at zero, so every real token gets the
same weight and an untrained layer *is* mean pooling: picking it never costs zero-shot quality,
and training can only move away from mean where that helps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sentence_transformers.base.modules import Module
from torch import nn


class AttentionPooling(Module):
    config_keys = ["embedding_dimension", "heads"]
    pooling_mode = "attention"

    def __init__(self, embedding_dimension: int, heads: int = 1):
        super().__init__()
        if embedding_dimension % heads:
            raise ValueError(f"{heads} heads do not divide {embedding_dimension} dimensions")
        self.embedding_dimension, self.heads = embedding_dimension, heads
        self.scorer = nn.Linear(embedding_dimension, heads)
        nn.init.zeros_(self.scorer.weight)
        nn.init.zeros_(self.scorer.bias)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        tokens = features["token_embeddings"]
        mask = features.get("attention_mask")
        if mask is None or mask.shape != tokens.shape[:-1]:
            mask = torch.ones(tokens.shape[:-1], device=tokens.device, dtype=torch.int64)
        scores = self.scorer(tokens).float()  # (batch, tokens, heads)
        scores = scores.masked_fill((mask == 0).unsqueeze(-1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1).to(tokens.dtype)
        # Each head weights the tokens for its own slice of the dimensions.
        sliced = tokens.unflatten(-1, (self.heads, -1))  # (batch, tokens, heads, dims / heads)
        pooled = torch.einsum("bth,bthd->bhd", weights, sliced)
        features["sentence_embedding"] = pooled.flatten(1)
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True,
             **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)

    @classmethod
    def load(
        cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
        cache_folder: str | None = None, revision: str | None = None,
        local_files_only: bool = False, init_defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AttentionPooling:
        """Load from a local folder only (``Module.load``'s hub options are accepted and
        ignored: nothing is downloaded)."""
        folder = Path(model_name_or_path, subfolder)
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"{folder} has no model.safetensors for attention pooling")
        config = cls.load_config(str(folder), local_files_only=True)
        module = cls(**({"heads": 1} | config))  # folders from before heads
        cls.load_torch_weights(str(folder), local_files_only=True, model=module)
        return module


# Module types a model folder may name that resolve to our own classes (never to folder code).
OWN_MODULES: dict[str, type[Module]] = {
    f"{AttentionPooling.__module__}.{AttentionPooling.__name__}": AttentionPooling,
}
