"""Sentence encoder: a BERT-style Transformer, a pooling layer and L2 normalisation.

Built with sentence-transformers from the default model, any local sentence-transformers
folder, or a plain Hugging Face BERT folder (then pooling comes from ``--pooling``); a folder
that would run its own code or unpickle weights is refused. Runs on torch (CPU or GPU, in the
precision the hardware is fastest at) or on ONNX Runtime (its export: ``onnx_export``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from semsearch.errors import ModelError
from semsearch.model_folder import resolve_model_path
from semsearch.onnx_export import onnx_session

if TYPE_CHECKING:  # loaded on first use: importing semsearch never loads torch
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer

POOLING_MODES = ("mean", "cls", "max", "attention")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("torch", "onnx")
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
# Module types a model folder may name: sentence-transformers' own and semsearch's own.
_TRUSTED_MODULE_PREFIX = "sentence_transformers."


def _check_model_folder(path: Path) -> bool:
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


def _pooling_of(model: SentenceTransformer) -> str | None:
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if isinstance(mode, str):
            return mode
    return None


def _build_model(path: Path, pooling: str | None, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers.utils import logging as hf_logging

    from semsearch.pooling import OWN_MODULES, AttentionPooling

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if pooling is not None and pooling not in POOLING_MODES:
        raise ModelError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING_MODES)}")
    is_st_folder = _check_model_folder(path)
    try:
        if is_st_folder:
            # Our own module types resolve to our classes, so no trust_remote_code is needed.
            model = SentenceTransformer._load_with_module_classes(
                str(path), OWN_MODULES, device=device, local_files_only=True)
            if pooling is None or pooling == _pooling_of(model):
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


def cpu_has_fast_bf16() -> bool:
    """bf16 matrix units (AMX) or instructions (AVX512-BF16); without them bf16 is emulated and
    slower than fp32 (measured 6x slower on an AVX2-only AMD EPYC)."""
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


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
    """Where and how this machine would run the encoder (shown by `semsearch info`)."""
    runtime = runtime or Runtime()
    backend = resolve_backend(runtime.backend)
    device = "cpu" if backend == "onnx" else default_device()
    return {"backend": backend, "device": device,
            "precision": resolve_precision(runtime.precision, device, backend)}


def resolve_backend(backend: str | None) -> str:
    """``torch`` or ``onnx`` (None: torch)."""
    backend = backend or "torch"
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return backend


def resolve_precision(precision: str | None, device: str, backend: str = "torch") -> str:
    """``auto`` (or None) → the fastest precision known to keep
    quality on this hardware: fp16 on CUDA, bf16 on CPUs with bf16 units, fp32 otherwise (and
    with ONNX Runtime). int8 is ONNX Runtime's quantised model, on request only."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend == "onnx":
        if precision in ("bf16", "fp16"):
            raise ModelError(f"--backend onnx runs fp32 or int8, not {precision}")
        return "fp32" if precision == "auto" else precision
    if precision == "int8":
        raise ModelError("--precision int8 needs --backend onnx (ONNX Runtime's quantised model)")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


@dataclass
class Encoder:
    """Turns texts into unit-length float32 vectors."""

    path: Path
    model: SentenceTransformer
    precision: str = "fp32"
    backend = "torch"

    @property
    def pooling(self) -> str:
        return _pooling_of(self.model) or "mean"

    @property
    def dimension(self) -> int:
        dimension = self.model.get_embedding_dimension()
        assert dimension is not None, "a text model (Transformer first) has a dimension"
        return int(dimension)

    @property
    def max_seq_length(self) -> int:
        length = self.model.max_seq_length
        assert length is not None, "a text model (Transformer first) has a length limit"
        return int(length)

    @property
    def tokenizer(self) -> Any:  # a Hugging Face tokenizer (sentence-transformers types it Any)
        return self.model.tokenizer

    @property
    def device(self) -> str:
        return str(self.model.device)

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """Token counts without special tokens (used to pack passages and spot truncation),
        counted up to the model's limit + 1: a longer text counts as limit + 1, which is all
        that packing and truncation need, and its work stays bounded however long it is."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        at_most = self.max_seq_length - 1
        encoded = self.tokenizer(
            self.bounded(texts), add_special_tokens=False, truncation=True, max_length=at_most,
            verbose=False,
        )["input_ids"]
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
        return _char_bound_of(self.tokenizer)

    @contextmanager
    def sharing_cpu(self) -> Iterator[None]:
        """Leave one CPU core to work running beside this thread's encoding (the BM25 query of
        a hybrid search): torch's threads would otherwise wait on each other for that core."""
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
        for block in range(0, len(texts), TOKENIZE_BLOCK):  # bounds the padded token tensors
            features = self._features(texts[block:block + TOKENIZE_BLOCK])
            mask = features.get("attention_mask")
            lengths = (mask.sum(dim=1).numpy() if mask is not None
                       else np.full(len(features["input_ids"]), features["input_ids"].shape[1]))
            order = np.argsort(-lengths, kind="stable")
            start = 0
            while start < len(order):
                longest = int(lengths[order[start]])
                chosen = order[start:start + max(1, budget // max(longest, 1))]
                vectors[block + chosen] = self._embed(self._batch(features, chosen, longest))
                start += len(chosen)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # in place
        return vectors

    def _batch(self, features: dict[str, Any], rows: np.ndarray, length: int
               ) -> dict[str, Any]:
        """The chosen rows of the tokenized texts, cut to their own longest length."""
        import torch

        padded = features["input_ids"].shape
        columns = (slice(padded[1] - length, None) if self.tokenizer.padding_side == "left"
                   else slice(0, length))
        picked = torch.from_numpy(rows)
        return {key: value[picked][:, columns]
                if isinstance(value, torch.Tensor) and value.shape[:2] == padded else value
                for key, value in features.items()}

    def _embed(self, features: dict[str, Any]) -> np.ndarray:
        # The model's own forward pass, without sentence-transformers' encode(), which walks
        # every module on each call (about 3 ms: a fifth of one short query on 2 cores).
        import torch
        from sentence_transformers.util import batch_to_device

        if self.model.training:
            self.model.eval()
        features = batch_to_device(features, self.model.device)
        with torch.inference_mode():
            return self.model(features)["sentence_embedding"].float().cpu().numpy()

    def _features(self, texts: list[str]) -> dict[str, Any]:
        """Tokens as the model's own first module makes them, with its default prompt."""
        model = self.model
        prompt = model.prompts.get(model.default_prompt_name) if (
            model.default_prompt_name) else None
        return model.preprocess(self.bounded(texts), prompt=prompt)


def _char_bound_of(tokenizer: Any) -> tuple[int, Callable[[str], str]]:
    """See :attr:`Encoder._char_bound` (read from the fast tokenizer's own settings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    setup = json.loads(backend.to_str()) if backend is not None else {}
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


@dataclass
class OnnxEncoder(Encoder):
    """The same model exported to ONNX and run by ONNX Runtime on the CPU: several times less
    overhead per call than torch for short texts (a query), the same vectors (fp32), or a
    quantised model (int8). The torch model stays for its tokenizer and settings."""

    session: InferenceSession | None = None
    backend = "onnx"

    @property
    def device(self) -> str:
        return "cpu"

    def _embed(self, features: dict[str, Any]) -> np.ndarray:
        session = self.session
        assert session is not None, "an OnnxEncoder is made with its session"
        return session.run(None, {node.name: features[node.name].numpy().astype(np.int64)
                                  for node in session.get_inputs()})[0]


def load_encoder(
    model: str | Path | None = None, pooling: str | None = None, device: str | None = None,
    precision: str | None = None, backend: str | None = None,
) -> Encoder:
    """Load once per process: the CLI, the tests and a server reuse the same weights.
    ``precision``, ``backend``: see :func:`resolve_precision` and :class:`Runtime` (training asks
    for torch, fp32)."""
    backend = resolve_backend(backend)
    device = "cpu" if backend == "onnx" else device or default_device()
    return _load_cached(resolve_model_path(model), pooling, device,
                        resolve_precision(precision, device, backend), backend)


@lru_cache(maxsize=4)
def _load_cached(path: Path, pooling: str | None, device: str, precision: str,
                 backend: str) -> Encoder:
    model = _build_model(path, pooling, device)
    if backend == "onnx":
        return OnnxEncoder(path=path, model=model, precision=precision,
                           session=onnx_session(model, path, precision))
    if precision != "fp32":
        import torch

        model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
    return Encoder(path=path, model=model, precision=precision)
