"""The threads behind the API: every read goes through one thread (:class:`Reader`) that owns
the index's read connection, so searches waiting at the same time with the same options are
embedded as one batch and eight clients cost little more than one. Writes (off unless asked for)
use a connection of their own under the index's writer lock (:class:`Writer`), so a reader never
sees half a write; /health reads the counts through a third (:class:`ManifestReader`), never
behind a search.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path

from semsearch.encoder import Runtime
from semsearch.errors import SemsearchError
from semsearch.index import AddResult
from semsearch.readers import Document
from semsearch.search import SearchOptions
from semsearch.server.limits import MAX_BATCH, MAX_HIT_TEXTS, hit_texts
from semsearch.service import AnyIndex, add_documents, open_index, remove_documents


class ServerError(SemsearchError):
    """The server cannot answer (it is stopping)."""


class Reader:
    """The one thread that reads the index; see the module docstring."""

    def __init__(self, index: AnyIndex):
        self.index = index
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="semsearch-reader", daemon=True)
        self._thread.start()

    def call(self, function: Callable, *args) -> Future:
        """Run ``function(*args)`` on the reader thread, inside one consistent snapshot."""
        return self._submit((None, function, args))

    def search(self, queries: list[str], options: SearchOptions) -> Future:
        """Hits for ``queries``; requests with equal options waiting together are one batch."""
        return self._submit((json.dumps(asdict(options), sort_keys=True), queries, options))

    def _submit(self, task: tuple) -> Future:
        future: Future = Future()
        if not self._thread.is_alive():
            future.set_exception(ServerError("the server is stopping"))
        else:
            self._tasks.put((*task, future))
        return future

    def stop(self) -> None:
        self._tasks.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            tasks = [task]
            texts = _task_texts(task)
            # Bounded in requests and in texts: a batch never holds much more than the hits one
            # request may ask for (MAX_HIT_TEXTS), however many clients wait.
            while len(tasks) < MAX_BATCH and texts < MAX_HIT_TEXTS:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is None:
                    self._tasks.put(None)  # finish this batch, then stop
                    break
                tasks.append(task)
                texts += _task_texts(task)
            # A request cancelled meanwhile (its client went away) is skipped.
            tasks = [task for task in tasks if task[-1].set_running_or_notify_cancel()]
            try:
                self._serve(tasks)
            except BaseException as exc:  # never leave a request waiting, never stop serving
                for *_, future in tasks:
                    if not future.done():
                        future.set_exception(exc)
        for *_, future in _drain(self._tasks):
            future.set_exception(ServerError("the server is stopping"))

    def _serve(self, tasks: list) -> None:
        searches: dict[str, list] = {}
        for key, payload, options, future in tasks:
            if key is None:
                _settle(future, self._read, payload, *options)
            else:
                searches.setdefault(key, []).append((payload, options, future))
        for group in searches.values():
            if len(group) == 1:
                queries, options, future = group[0]
                _settle(future, self.index.search, queries, options)
                continue
            try:
                results = self.index.search([q for queries, _, _ in group for q in queries],
                                            group[0][1])
            except Exception:  # let each request fail (or not) on its own
                for queries, options, future in group:
                    _settle(future, self.index.search, queries, options)
                continue
            start = 0
            for queries, _, future in group:
                future.set_result(results[start:start + len(queries)])
                start += len(queries)

    def _read(self, function: Callable, *args):
        with self.index.reading():
            return function(*args)


def _task_texts(task: tuple) -> int:
    key, queries, options, _ = task
    return 0 if key is None else hit_texts(len(queries), options.k, options.context)


def _settle(future: Future, function: Callable, *args, **kwargs) -> None:
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _drain(tasks: queue.SimpleQueue) -> list[tuple]:
    left: list[tuple] = []
    while True:
        try:
            task = tasks.get_nowait()
        except queue.Empty:
            return left
        if task is not None and task[-1].set_running_or_notify_cancel():
            left.append(task)


class ManifestReader:
    """The manifest through a connection of its own: /health answers at once, even while the
    reader thread serves a long batch (a read never waits for a writer, in WAL mode)."""

    def __init__(self, path: Path):
        self.index = open_index(path, verify=False)
        self._lock = threading.Lock()  # one connection, one thread at a time

    def manifest(self) -> dict:
        with self._lock:
            return self.index.manifest


class Writer:
    """Writes through their own connection, one at a time, under the index's writer lock (a
    CLI writer running at the same time is waited for, up to ``LOCK_WAIT`` seconds)."""

    LOCK_WAIT = 30.0

    def __init__(self, path: Path, runtime: Runtime):
        self.index = open_index(path, verify=False, timeout=self.LOCK_WAIT, runtime=runtime)
        self._lock = threading.Lock()

    def add(self, documents: list[Document]) -> AddResult:
        with self._lock:
            return add_documents(self.index, documents)

    def remove(self, document_id: str) -> int:
        with self._lock:
            return remove_documents(self.index, [document_id], paths=False)
