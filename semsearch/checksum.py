"""SHA-256 of a file, read in blocks: what a vector file's checksum and a model's fingerprint
are made of (``hashlib.file_digest`` does the same from Python 3.11 on only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
