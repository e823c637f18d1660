"""A small, deterministic stand-in for the default model (as llm's ``embed-demo``), for the tests
of storage, crash safety, CLI plumbing and reliability.

It is a real sentence-transformers folder, which semsearch checks, fingerprints, loads and runs
as it does any model folder: a BERT with the default model's tokenizer and 256-token limit,
mean pooling and Normalize, but 128 dimensions and no transformer layers, so it loads in a
fraction of a second and embeds many times faster. A token's vector is its word piece's,
wherever it stands, so a text's vector is the normalised mean of its word pieces' vectors (a
bag of words): texts that share words are near each other, texts that share none are not.
It knows no synonyms: a test of "the nearest hit is the paraphrase" needs the real model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from semsearch.model_folder import default_model_path

SEED = 20240521
DIMENSION = 128  # random word vectors of 64 dimensions overlap too much for a bag of words
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "sentence_bert_config.json")


def build_fake_model(folder: Path) -> Path:
    """Write the fake model into ``folder`` (made if missing) and return it; the seed is fixed,
    so every run has the same weights, and the same vectors."""
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    source = default_model_path()
    reference = json.loads((source / "config.json").read_text())
    config = BertConfig(vocab_size=reference["vocab_size"], hidden_size=DIMENSION,
                        num_hidden_layers=0, num_attention_heads=2, intermediate_size=DIMENSION,
                        max_position_embeddings=reference["max_position_embeddings"])
    with torch.random.fork_rng(devices=[]):  # leaves the tests' own random state alone
        torch.manual_seed(SEED)
        model = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():
        embeddings = model.embeddings
        generator = torch.Generator().manual_seed(SEED)
        embeddings.word_embeddings.weight.normal_(0.0, 1.0, generator=generator)
        # What every text holds weighs nothing: [SEP], padding and punctuation are zero vectors
        # (after the layer norm too). [CLS] keeps one, so no text's vector is zero.
        embeddings.word_embeddings.weight[silent_tokens(source / "vocab.txt")] = 0.0
        embeddings.position_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    modules = [("0", "", "Transformer"), ("1", "1_Pooling", "Pooling"),
               ("2", "2_Normalize", "Normalize")]
    (folder / "modules.json").write_text(json.dumps(
        [{"idx": int(name), "name": name, "path": path,
          "type": f"sentence_transformers.models.{kind}"} for name, path, kind in modules],
        indent=2))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": DIMENSION, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
         "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    return folder


def silent_tokens(vocab: Path) -> list[int]:
    """The ids of [PAD], [SEP] and the word pieces that are punctuation only."""
    ids = []
    for number, token in enumerate(vocab.read_text(encoding="utf-8").splitlines()):
        piece = token.removeprefix("##")
        special = token.startswith("[") and token.endswith("]")
        if token in ("[PAD]", "[SEP]") or (
                piece and not special and not any(char.isalnum() for char in piece)):
            ids.append(number)
    return ids
