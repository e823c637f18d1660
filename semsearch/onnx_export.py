"""A model's ONNX export, made on first use and cached on disk, and the ONNX Runtime session
that runs it (what ``--backend onnx`` encodes with)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from semsearch.errors import ModelError
from semsearch.model_folder import model_fingerprint

if TYPE_CHECKING:  # loaded on first use: a query on torch never needs them
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer

CACHE_ENV = "SEMSEARCH_CACHE"
ONNX_FORMAT = 1  # bump when _export changes what it writes


def onnx_session(model: SentenceTransformer, path: Path, precision: str) -> InferenceSession:
    """An ONNX Runtime session on the model's export, on the CPU with torch's thread count."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("--backend onnx needs ONNX Runtime: pip install 'semsearch[onnx]'"
                         ) from None
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(onnx_file(model, path, precision)), options,
                                        providers=["CPUExecutionProvider"])


def onnx_file(model: SentenceTransformer, path: Path, precision: str) -> Path:
    """The model's ONNX export (int8: quantised from the fp32 one), made on first use and kept
    next to the model in ``onnx/`` (or under $SEMSEARCH_CACHE, default ~/.cache/semsearch,
    when the model folder is read-only). The name changes with the weights, the module stack
    and its settings, and the versions that trace it."""
    import torch
    import transformers

    stack = json.dumps([ONNX_FORMAT, torch.__version__, transformers.__version__,
                        [(type(m).__name__, getattr(m, "get_config_dict", dict)()) for m in model],
                        model.max_seq_length], sort_keys=True, default=str)
    digest = hashlib.sha256(stack.encode()).hexdigest()[:12]
    name = f"semsearch-{model_fingerprint(path)}-{digest}-{precision}.onnx"
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "semsearch")
    folders = [path / "onnx", cache / "onnx"]
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
