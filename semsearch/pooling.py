"""Learned attention pooling: a sentence-transformers module that weights tokens by a learned score.

A linear layer scores each token; padding is masked; a softmax turns the scores into weights; the
sentence vector is the weighted sum of token embeddings. The layer starts at zero, so every real
token gets the same weight and an untrained layer *is* mean pooling: picking it never costs
zero-shot quality, and training can only move away from mean where that helps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sentence_transformers.base.modules import Module
from torch import nn


class AttentionPooling(Module):
    config_keys = ["embedding_dimension"]
    pooling_mode = "attention"

    def __init__(self, embedding_dimension: int):
        super().__init__()
        self.embedding_dimension = embedding_dimension
        self.scorer = nn.Linear(embedding_dimension, 1)
        nn.init.zeros_(self.scorer.weight)
        nn.init.zeros_(self.scorer.bias)

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        tokens = features["token_embeddings"]
        mask = features.get("attention_mask")
        if mask is None or mask.shape != tokens.shape[:-1]:
            mask = torch.ones(tokens.shape[:-1], device=tokens.device, dtype=torch.int64)
        scores = self.scorer(tokens).squeeze(-1).float()
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(tokens.dtype)
        features["sentence_embedding"] = torch.einsum("bt,btd->bd", weights, tokens)
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> AttentionPooling:
        folder = Path(model_name_or_path, subfolder)
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"{folder} has no model.safetensors for attention pooling")
        config = cls.load_config(str(folder), local_files_only=True)
        module = cls(**config)
        cls.load_torch_weights(str(folder), local_files_only=True, model=module)
        return module


# Module types a model folder may name that resolve to our own classes (never to folder code).
OWN_MODULES: dict[str, type[Module]] = {
    f"{AttentionPooling.__module__}.{AttentionPooling.__name__}": AttentionPooling,
}
