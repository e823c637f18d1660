"""Which files a folder gives: walked without recursion, hidden parts skipped, each real file
once, and symbolic links followed only inside the folders given (unless --follow-symlinks)."""

from __future__ import annotations

import errno
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from semsearch.readers.document import IGNORE_FILE, ReadOptions, Warn

if TYPE_CHECKING:
    import pathspec


def files_under(root: Path, roots: list[Path], suffixes: Collection[str], options: ReadOptions,
                warn: Warn) -> Iterator[Path]:
    """The files to read under ``root`` (a file given directly is itself), as real paths, each
    once, in the order of the paths they were found at: those matching ``options.glob``, else
    those with one of ``suffixes``. Hidden parts are skipped, so are files and folders that
    ``options.exclude`` or the folder's ``.semsearchignore`` name (gitignore syntax, relative
    to ``root``), and symbolic links that lead out of ``roots`` unless
    ``options.follow_symlinks``. Walked with an explicit stack: a folder nested 1,000 deep
    must not exhaust Python's (``rglob`` did)."""
    if not root.is_dir():
        if root.is_file():
            yield root.resolve()
        else:
            warn(f"{root}: skipped, not a regular file")
        return
    ignored = _ignored(root, options, warn)
    found: list[tuple[Path, Path]] = []  # (where it was found, real path)
    walked = {root.resolve()}
    stack = [(root, root.resolve())]
    while stack:
        folder, real_folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            warn(f"{folder}: skipped, cannot read ({exc.strerror})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if ignored and ignored.match_file(
                    path.relative_to(root).as_posix() + ("/" if entry.is_dir() else "")):
                continue
            real = (_link_target(path, roots, options, warn) if entry.is_symlink()
                    else real_folder / entry.name)
            if real is None:
                continue
            if real.is_dir():
                if real == real_folder or real in real_folder.parents:
                    warn(f"{path}: skipped, symbolic link loop")
                elif real not in walked:
                    walked.add(real)
                    stack.append((path, real))
            elif real.is_file() and (path.relative_to(root).match(options.glob)
                                     if options.glob else real.suffix.lower() in suffixes):
                found.append((path, real))
    seen: set[Path] = set()
    for _, real in sorted(found):
        if real not in seen:
            seen.add(real)
            yield real


def _ignored(root: Path, options: ReadOptions, warn: Warn) -> pathspec.GitIgnoreSpec | None:
    """What to leave out under ``root``: ``--exclude`` and the folder's ignore file."""
    import pathspec  # 40 ms: only when a folder is read

    patterns = list(options.exclude)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        try:
            patterns += ignore_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            warn(f"{ignore_file}: not read ({exc}); nothing under {root} is left out by it")
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def _link_target(link: Path, roots: list[Path], options: ReadOptions, warn: Warn) -> Path | None:
    """Where a symbolic link found in a folder leads, or None (with a warning) when it is
    broken, loops, or leads out of the folders given (unless ``--follow-symlinks``)."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except OSError as exc:
        problem = "symbolic link loop" if exc.errno == errno.ELOOP else "broken symbolic link"
        warn(f"{link}: skipped, {problem}")
        return None
    if not options.follow_symlinks and not any(target.is_relative_to(r) for r in roots):
        warn(f"{link}: skipped, symbolic link to outside the folders given (--follow-symlinks"
             " follows it)")
        return None
    return target
