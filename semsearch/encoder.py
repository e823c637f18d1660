"""Which encoder runs a model, chosen by what the work needs and what the machine has.

A query or a small update runs on ONNX Runtime (``onnx_encoder``: no torch in the process, so a
one-shot query starts in a fraction of a second); bulk indexing and training run on torch
(``torch_encoder``: bf16 on CPUs with bf16 units, fp16 on CUDA). The export ONNX Runtime runs is
made once per model, by torch, the first time torch loads it (``onnx_export``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from semsearch.encoding import POOLING_MODES, Encoder, Features
from semsearch.errors import ModelError, shown_path
from semsearch.model_folder import own_pooling, resolve_model_path
from semsearch.onnx_encoder import OnnxEncoder
from semsearch.onnx_export import find_recipe, prepare_export

__all__ = ["BACKENDS", "POOLING_MODES", "PRECISIONS", "Encoder", "Runtime", "EncoderNote",
           "encoder_setup", "load_encoder", "prepare_fast_path"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("auto", "torch", "onnx")
# From this many tokens in one call, `auto` embeds on torch: where its start-up (3.6-4.1 s to
# import and load) is repaid by its bulk speed. Measured by benchmarks/encode.py and cold.py on
# 2 cores: ONNX Runtime fp32 7.5k tokens/s; torch bf16 (AMX) 24k, which pays off from 40-45k
# tokens; torch fp32 10k, from 110-120k.
TORCH_FROM_TOKENS = {"bf16": 40_000, "fp32": 100_000}
COUNT_BLOCK = 256  # texts counted at a time: a bulk call stops counting once it is over


class EncoderNote(UserWarning):
    """What a user should know about how the model runs: its export was made (once, seconds),
    or cannot be, so that every process loads torch."""


def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@cache
def cpu_has_fast_bf16() -> bool:
    """bf16 matrix units (AMX) or instructions (AVX512-BF16); without them bf16 is emulated and
    slower than fp32 (measured 6x slower on an AVX2-only AMD EPYC). Read from the CPU's flags
    (Linux), else asked of torch."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"amx_tile", "avx512_bf16"})
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def default_device() -> str:
    """cuda where torch sees a GPU; asked only where torch is loaded anyway."""
    from semsearch.torch_encoder import default_device as torch_device

    return torch_device()


def gpu_visible() -> bool:
    """An NVIDIA GPU this process may use, seen without loading torch (for `info`)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()


@dataclass(frozen=True)
class Runtime:
    """How this process runs the model, as the user chose it (None: the default, decided on this
    machine's hardware). A value passed from the command line to the library and on to Ray
    actors, where ``auto`` resolves on each worker's own hardware."""

    precision: str | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ModelError(f"unknown precision {self.precision!r}; choose from"
                             f" {', '.join(PRECISIONS)}")
        resolve_backend(self.backend)


def encoder_setup(runtime: Runtime | None = None) -> dict[str, str]:
    """Where and how this machine would run the encoder (shown by `semsearch info`), found out
    without loading torch."""
    runtime = runtime or Runtime()
    backend = resolve_backend(runtime.backend)
    device = "cuda" if backend != "onnx" and gpu_visible() else "cpu"
    if backend == "auto":
        bulk = resolve_precision(runtime.precision if runtime.precision != "int8" else None,
                                 device, "torch")
        small = "int8" if runtime.precision == "int8" else "fp32"
        return {"backend": "auto", "device": device, "precision": bulk,
                "queries": f"onnx {small} (cpu), torch {bulk} from {_torch_from(bulk)} tokens"}
    return {"backend": backend, "device": device,
            "precision": resolve_precision(runtime.precision, device, backend)}


def resolve_backend(backend: str | None) -> str:
    """``auto``, ``torch`` or ``onnx`` (None: auto)."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return backend


def resolve_precision(precision: str | None, device: str, backend: str = "torch") -> str:
    """``auto`` (or None) → the fastest precision known to keep quality on this hardware: on
    torch fp16 on CUDA, bf16 on CPUs with bf16 units, fp32 otherwise; fp32 on ONNX Runtime.
    int8 is ONNX Runtime's quantised model, on request only."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend == "onnx":
        if precision in ("bf16", "fp16"):
            raise ModelError(f"--backend onnx runs fp32 or int8, not {precision}")
        return "fp32" if precision == "auto" else precision
    if precision == "int8":
        raise ModelError("--precision int8 runs on ONNX Runtime: give --backend onnx or auto")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


class AdaptiveEncoder(Encoder):
    """ONNX Runtime for queries and small updates (tokens, counts and vectors), torch — loaded
    on first need — for calls of more tokens than its start-up repays (TORCH_FROM_TOKENS). Its
    backend and precision are what a query runs on."""

    backend = "onnx"

    def __init__(self, small: OnnxEncoder, bulk: Callable[[], Encoder], bulk_precision: str):
        self.small, self._bulk = small, bulk
        self.torch_from = _torch_from(bulk_precision)
        self.path, self.precision, self.pooling = small.path, small.precision, small.pooling
        self.dimension, self.max_seq_length = small.dimension, small.max_seq_length
        self.padding_side = small.padding_side

    @property
    def tokenizer_json(self) -> str:
        return self.small.tokenizer_json

    def _token_ids(self, texts: list[str], at_most: int) -> list[list[int]]:
        return self.small._token_ids(texts, at_most)

    def _features(self, texts: list[str]) -> Features:
        return self.small._features(texts)

    def _embed(self, features: Features) -> np.ndarray:
        return self.small._embed(features)

    def encode(self, texts: list[str], batch_size: int = 32,
               batch_tokens: int | None = None) -> np.ndarray:
        if self.is_bulk(texts):
            return self._bulk().encode(texts, batch_size, batch_tokens)
        return super().encode(texts, batch_size, batch_tokens)

    def is_bulk(self, texts: list[str]) -> bool:
        """Enough tokens that torch, loaded now, finishes sooner than ONNX Runtime would."""
        tokens = 0
        for start in range(0, len(texts), COUNT_BLOCK):
            tokens += int(self.small.token_counts(texts[start:start + COUNT_BLOCK]).sum())
            if tokens >= self.torch_from:
                return True
        return False


def _torch_from(bulk_precision: str) -> int:
    return TORCH_FROM_TOKENS["bf16" if bulk_precision in ("bf16", "fp16") else "fp32"]


def load_encoder(
    model: str | Path | None = None, pooling: str | None = None, device: str | None = None,
    precision: str | None = None, backend: str | None = None,
) -> Encoder:
    """Load once per process: the CLI, the tests and a server reuse the same weights.
    ``precision``, ``backend``: see :func:`resolve_precision` and :class:`Runtime` (training asks
    for torch, fp32). ``auto`` runs ONNX Runtime where the model's export exists and torch for
    bulk work; where it does not, torch, which makes the export for the next process."""
    backend = resolve_backend(backend)
    if pooling is not None and pooling not in POOLING_MODES:
        raise ModelError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING_MODES)}")
    path = resolve_model_path(model)
    if backend == "onnx":
        exported = _onnx_encoder(path, pooling, resolve_precision(precision, "cpu", "onnx"),
                                 export=True)
        assert exported is not None, "made when missing"
        return exported
    if backend == "torch" or precision in ("bf16", "fp16") or (
            device is not None and device != "cpu"):
        return _torch_encoder(path, pooling, device, precision)
    small_precision = resolve_precision(precision, "cpu", "onnx")
    bulk_precision = None if precision == "int8" else precision
    known = pooling or own_pooling(path)
    small = _onnx_encoder(path, known, small_precision, export=False) if known else None
    if small is not None:
        bulk_device = device or ("cuda" if gpu_visible() else "cpu")
        return AdaptiveEncoder(small, lambda: _torch_encoder(path, pooling, device,
                                                             bulk_precision),
                               resolve_precision(bulk_precision, bulk_device, "torch"))
    encoder = _torch_encoder(path, pooling, device, bulk_precision)
    _export_for_next_time(encoder)
    return encoder


def _torch_encoder(path: Path, pooling: str | None, device: str | None,
                   precision: str | None) -> Encoder:
    from semsearch.torch_encoder import default_device

    device = device or default_device()
    return _torch_cached(path, pooling, device, resolve_precision(precision, device, "torch"))


@lru_cache(maxsize=4)
def _torch_cached(path: Path, pooling: str | None, device: str, precision: str) -> Encoder:
    from semsearch.torch_encoder import TorchEncoder, build_model

    model = build_model(path, pooling, device)
    if precision != "fp32":
        import torch

        model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
    return TorchEncoder(path, model, precision)


def prepare_fast_path(model: str | Path | None, pooling: str) -> Path:
    """Make (once) the export the torch-free path runs for this model and pooling; the recipe
    file that names it. Raises ModelError where it cannot be written."""
    path = resolve_model_path(model)
    return find_recipe(path, pooling) or prepare_export(
        _fp32_model(_torch_encoder(path, pooling, "cpu", "fp32")), path, pooling)


def _export_for_next_time(encoder: Encoder) -> None:
    """Write the export the torch-free path runs, once, while torch is here anyway; where it
    cannot be written, say how to get the fast path."""
    from semsearch.torch_encoder import TorchEncoder

    assert isinstance(encoder, TorchEncoder)
    if find_recipe(encoder.path, encoder.pooling) is not None:
        return
    try:
        recipe = prepare_export(_fp32_model(encoder), encoder.path, encoder.pooling)
        warnings.warn(EncoderNote(f"exported the model to ONNX, once ({shown_path(recipe.parent)}):"
                                  " from now on queries run without torch"), stacklevel=3)
    except Exception as exc:  # a read-only cache, an exporter limit: torch still runs it
        warnings.warn(EncoderNote(
            f"queries load torch, seconds per process ({type(exc).__name__}: {exc}); where the"
            " cache was not writable, set $SEMSEARCH_CACHE to a folder that is and run"
            " `semsearch index --prepare` to make them fast"), stacklevel=3)


def _fp32_model(encoder: Encoder):  # noqa: ANN202 - a SentenceTransformer, typed in torch_encoder
    """The fp32 model the export is traced from (a bf16 one is loaded again in fp32)."""
    from semsearch.torch_encoder import TorchEncoder

    if encoder.precision != "fp32" or encoder.device != "cpu":
        encoder = _torch_cached(encoder.path, encoder.pooling, "cpu", "fp32")
    assert isinstance(encoder, TorchEncoder)
    return encoder.model


@lru_cache(maxsize=4)
def _onnx_cached(path: Path, recipe: Path, precision: str, stamp: int) -> OnnxEncoder:
    return OnnxEncoder(path, recipe, precision)


def _onnx_encoder(path: Path, pooling: str | None, precision: str,
                  export: bool) -> OnnxEncoder | None:
    """The torch-free encoder on the model's export; ``export``: make it (with torch) if
    missing, else None when it is missing."""
    pooling = pooling or own_pooling(path)
    recipe = find_recipe(path, pooling, precision) if pooling else None
    if recipe is None:
        if not export:
            return None
        torch_encoder = _torch_encoder(path, pooling, "cpu", "fp32")
        recipe = prepare_export(_fp32_model(torch_encoder), path, torch_encoder.pooling,
                                precision)
    return _onnx_cached(path, recipe, precision, recipe.stat().st_mtime_ns)
