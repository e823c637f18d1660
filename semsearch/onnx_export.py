"""A model's ONNX export, made where torch already runs (indexing, training, ``--backend onnx``)
and cached on disk: the graph (tokens → normalised sentence vector), the tokenizer it was
traced with, and a recipe that names both with the model's settings, so that a query can run
the model with ONNX Runtime and ``tokenizers`` alone (``onnx_encoder``)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from semsearch.errors import ModelError
from semsearch.model_folder import EXPORT_FOLDER, cache_folder, model_fingerprint

if TYPE_CHECKING:  # loaded on first use: a query never needs them
    from sentence_transformers import SentenceTransformer

ONNX_FORMAT = 1  # bump when _export changes what it writes
RECIPE_FORMAT = 1  # bump when the recipe's keys change
EXPORT_PRECISIONS = ("fp32", "int8")


def export_folders(path: Path) -> list[Path]:
    """Where a model's exports are kept: next to the model, else (a read-only model folder)
    under $SEMSEARCH_CACHE (default ~/.cache/semsearch)."""
    return [path / EXPORT_FOLDER, cache_folder() / "onnx"]


def recipe_name(fingerprint: str, pooling: str) -> str:
    return f"semsearch-{fingerprint}-{pooling}.recipe.json"


def find_recipe(path: Path, pooling: str, precision: str = "fp32",
                fingerprint: str | None = None) -> Path | None:
    """The recipe of the model's export with this pooling and precision, if one was made
    (torch-free: what a query looks for)."""
    name = recipe_name(fingerprint or model_fingerprint(path), pooling)
    for folder in export_folders(path):
        try:
            recipe = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if (recipe.get("format") == RECIPE_FORMAT and precision in recipe.get("onnx", {})
                and (folder / recipe["onnx"][precision]).is_file()
                and (folder / recipe["tokenizer"]).is_file()):
            return folder / name
    return None


def prepare_export(model: SentenceTransformer, path: Path, pooling: str,
                   precision: str = "fp32") -> Path:
    """Export the model (once) for the torch-free encoder and return its recipe. The recipe is
    written last, and atomically: one that exists names files that exist."""
    if precision not in EXPORT_PRECISIONS:
        raise ModelError(f"ONNX Runtime runs fp32 or int8, not {precision}")
    prompt = model.prompts.get(model.default_prompt_name) if model.default_prompt_name else None
    if prompt and not all(getattr(module, "include_prompt", True) for module in model):
        raise ModelError(f"{path} pools without its prompt's tokens, which its ONNX export"
                         " cannot tell apart; it runs on torch")
    fingerprint = model_fingerprint(path)
    if existing := find_recipe(path, pooling, precision, fingerprint):
        return existing
    exported = onnx_file(model, path, precision)
    folder = exported.parent
    try:
        before = json.loads((folder / recipe_name(fingerprint, pooling)).read_text())
    except (OSError, ValueError):
        before = {}
    files = {key: name for key, name in before.get("onnx", {}).items()
             if before.get("format") == RECIPE_FORMAT and (folder / name).is_file()}
    files[precision] = exported.name
    tokenizer = model.tokenizer
    tokenizer_file = exported.name.rsplit("-", 1)[0] + ".tokenizer.json"
    if not (folder / tokenizer_file).is_file():
        _write_atomically(folder / tokenizer_file, tokenizer.backend_tokenizer.to_str())
    dimension = model.get_embedding_dimension()
    _write_atomically(folder / recipe_name(fingerprint, pooling), json.dumps({
        "format": RECIPE_FORMAT, "model_fingerprint": fingerprint, "pooling": pooling,
        "dimension": dimension, "max_seq_length": model.max_seq_length, "prompt": prompt or "",
        "tokenizer": tokenizer_file, "pad_id": tokenizer.pad_token_id or 0,
        "pad_type_id": tokenizer.pad_token_type_id or 0, "pad_token": tokenizer.pad_token or "",
        "padding_side": tokenizer.padding_side, "truncation_side": tokenizer.truncation_side,
        "onnx": files,
    }, indent=1))
    return folder / recipe_name(fingerprint, pooling)


def _write_atomically(target: Path, text: str) -> None:
    handle, draft = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(draft, 0o644)  # mkstemp's 0600 would hide it from other users of the model
        os.replace(draft, target)
    finally:
        Path(draft).unlink(missing_ok=True)


def onnx_file(model: SentenceTransformer, path: Path, precision: str) -> Path:
    """The model's ONNX export (int8: quantised from the fp32 one), made on first use and kept
    in :func:`export_folders`. The name changes with the weights, the module stack and its
    settings, and the versions that trace it."""
    import torch
    import transformers

    stack = json.dumps([ONNX_FORMAT, torch.__version__, transformers.__version__,
                        [(type(m).__name__, getattr(m, "get_config_dict", dict)()) for m in model],
                        model.max_seq_length], sort_keys=True, default=str)
    digest = hashlib.sha256(stack.encode()).hexdigest()[:12]
    name = f"semsearch-{model_fingerprint(path)}-{digest}-{precision}.onnx"
    folders = export_folders(path)
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, draft = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".tmp")
        except OSError:
            continue
        os.close(handle)
        try:
            if precision == "int8":
                _quantize(onnx_file(model, path, "fp32"), Path(draft))
            else:
                _export(model, Path(draft))
            os.chmod(draft, 0o644)  # mkstemp's 0600 would hide it from other users of the model
            os.replace(draft, folder / name)  # published whole: a reader never sees half
            return folder / name
        except OSError:
            continue
        finally:
            Path(draft).unlink(missing_ok=True)
    raise ModelError(f"cannot write the ONNX export of {path} to {' or '.join(map(str, folders))}")


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights quantised per output channel, activations per batch at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it suggests a pre-processing step that changes nothing here
    try:
        quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _export(model: SentenceTransformer, target: Path) -> None:
    """Trace tokens → normalised sentence vector (transformer, pooling, any dense layers)."""
    import warnings

    import torch

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in model.tokenizer.model_input_names]

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    sample = model.tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(SentenceGraph().eval(), tuple(sample[n] for n in names), str(target),
                          input_names=names, output_names=["sentence_embedding"],
                          dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)
