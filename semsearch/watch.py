"""Keeping an index in step with the files it was read from: `semsearch index --watch`.

Each debounced batch of changes is read through the same readers, folder walk and exclusions as
a normal run (a file the walk would skip is skipped here too), added with the same library call
and committed, so other processes (`semsearch query`, `serve`) see it at once; the writer lock
is held per batch, not for as long as the watch runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from semsearch.errors import IndexBusyError, InputError, UsageError, WriteError, shown_path
from semsearch.readers import SUFFIXES, Document, ReadOptions, read_documents
from semsearch.readers.files import files_under
from semsearch.service import AnyIndex, remove_documents

DEBOUNCE_MS = 1600  # the longest a stream of changes is gathered into one batch
STEP_MS = 50  # a batch ends after this long without a change
TICK_MS = 200  # how often the loop wakes without changes: to start, and to retry a batch
RETRY_SECONDS = 2.0  # a batch that could not be written (index busy, disk full) waits this long

Report = Callable[[str], None]


def watch(index: AnyIndex, paths: list[str], options: ReadOptions, *, report: Report,
          warn: Report, first_pass: Callable[[], None] | None = None,
          stop: threading.Event | None = None, debounce_ms: int = DEBOUNCE_MS,
          batch_size: int = 32, commit_seconds: float = 60.0) -> None:
    """Watch ``paths`` (files and folders) and index every change until ``stop`` is set (or
    KeyboardInterrupt): a changed or added file's documents are replaced, a deleted file's (or
    folder's) removed; a rename is both. One line per change goes to ``report``, warnings
    (a file that cannot be read, ...) to ``warn``, and the watch goes on. ``first_pass`` runs
    once the watcher is up, so a change made while it runs is not missed."""
    import watchfiles  # 30 ms: only when watching

    if "-" in paths:
        raise UsageError("--watch watches files and folders, not - (stdin)")
    roots = [Path(path).expanduser().resolve() for path in paths]
    # A file given is watched through its folder: an editor's save-by-rename replaces the file
    # (and a watch on the file itself would end with it).
    folders = sorted({root if root.is_dir() else root.parent for root in roots})
    known: set[Path] = set()  # the files the index holds documents of, as far as we know
    pending: set[Path] = set()
    started, retry_at = False, 0.0
    for changes in watchfiles.watch(*folders, watch_filter=None, debounce=debounce_ms,
                                    step=STEP_MS, stop_event=stop, rust_timeout=TICK_MS,
                                    yield_on_timeout=True):
        if not started:  # the first tick (or change): the watcher is up, gathering changes
            if first_pass:
                first_pass()
            known = _walk(roots, roots, options)
            report(f"watching {' '.join(paths)} for changes; Ctrl+C stops")
            started = True
        pending |= {Path(path) for _, path in changes
                    if any(_under(Path(path), root) for root in roots)}
        if pending and time.monotonic() >= retry_at:
            try:
                _update(index, roots, pending, known, options, report, warn, batch_size,
                        commit_seconds)
                pending = set()
            except (IndexBusyError, WriteError) as exc:  # the changes stay pending
                warn(f"{exc} (trying again in {RETRY_SECONDS:g}s)")
                retry_at = time.monotonic() + RETRY_SECONDS


def _under(path: Path, root: Path) -> bool:
    """Whether a change at ``path`` concerns ``root`` (a file given, or a folder's tree)."""
    return path.is_relative_to(root) if root.is_dir() else path == root


def _walk(roots: list[Path], all_roots: list[Path], options: ReadOptions) -> set[Path]:
    """The files a normal run reads under ``roots``: the one folder walk decides what is left
    out. Its warnings are the first pass's, not repeated at every batch."""
    return {file for root in roots
            for file in files_under(root, all_roots, SUFFIXES, options, lambda message: None)}


def _update(index: AnyIndex, roots: list[Path], changed: set[Path], known: set[Path],
            options: ReadOptions, report: Report, warn: Report, batch_size: int,
            commit_seconds: float) -> None:
    """Apply one batch: remove the documents of files gone, then (re-)index the files the walk
    reads that changed or sit in a changed folder (whose files a watch may not report, as a
    folder moved in); ``known`` follows what was committed."""
    gone = [path for path in changed if not path.exists()]
    removed = sorted(file for file in known if any(file.is_relative_to(g) for g in gone))
    if removed:
        remove_documents(index, [str(file) for file in removed])
        known.difference_update(removed)
        for file in removed:
            report(f"removed {shown_path(file)}")
    folders = [path for path in changed if path.is_dir()]
    touched = [root for root in roots if any(_under(path, root) for path in changed)]
    files = sorted(file for file in _walk(touched, roots, options)
                   if file in changed or any(file.is_relative_to(f) for f in folders))
    if not files:
        return
    ids: dict[Path, list[str]] = {file: [] for file in files}
    index.add(_documents(files, ids, options, warn), batch_size=batch_size, warn=warn,
              commit_seconds=commit_seconds)
    known.update(files)
    for file in files:
        stored = [index.store.document(doc_id) for doc_id in ids[file]]
        if any(stored):
            units = sum(len(document["units"]) for document in stored if document)
            report(f"updated {shown_path(file)} ({units} unit{'s' * (units != 1)})")


def _documents(files: list[Path], ids: dict[Path, list[str]], options: ReadOptions,
               warn: Report) -> Iterator[Document]:
    """The documents of ``files`` as a normal run reads them, each one's ids noted in ``ids``;
    a file deleted since the walk is a warning, not the end of the batch."""
    for file in files:
        try:
            for document in read_documents([str(file)], options, warn):
                ids[file].append(document.id)
                yield document
        except InputError as exc:
            warn(str(exc))
