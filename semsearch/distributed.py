"""Sharded indexes on Ray (the optional extra ``semsearch[ray]``): an actor pool embeds the
chunks (one model per actor, a GPU each when the cluster has them), one actor per shard writes
it, and searches fan out to one reader actor per shard.

The same :class:`~semsearch.shards.ShardReader` / :class:`~semsearch.shards.ShardWriter` code
runs in the actors as in a single process; only where it runs changes. Shard folders must be
reachable under the same path from the driver and from every node (one machine, or a shared
filesystem): the driver reads each shard's content hashes to skip unchanged documents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from semsearch.encoder import Encoder, Runtime
from semsearch.errors import InputError
from semsearch.index import Index
from semsearch.shards import Runner, ShardReader, ShardWriter

try:
    import ray
except ImportError:  # pragma: no cover - the CLI says which extra to install
    raise InputError("--ray needs Ray: pip install 'semsearch[ray]'") from None

# Ray retries an embedding on a fresh actor when a worker dies; a shard writer is not restarted
# (its open transaction died with it): the run stops and a re-run resumes from the commits.
EMBED_RETRIES = 3


class Embedder:
    """One copy of the model; torch uses the cores Ray gave this actor."""

    def __init__(self, model: str, pooling: str, batch_size: int, threads: int,
                 precision: str | None, backend: str | None):
        import torch

        from semsearch.encoder import load_encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = load_encoder(model, pooling, precision=precision, backend=backend)
        self.batch_size = batch_size

    def embed(self, texts: list[str]):
        return self.encoder.encode(texts, self.batch_size)

    def pid(self) -> int:
        return os.getpid()


class RayRunner(Runner):
    """Runs shard readers, writers and encoders as Ray actors.

    ``address``: a running cluster (``ray://host:10001``, ``auto``) or None for a local Ray
    started here and stopped by :meth:`close`. ``workers``: embedding actors (default: one per
    GPU, else one per two CPUs of the cluster)."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        super().__init__()
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False,
                     runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1",
                                               "TRANSFORMERS_OFFLINE": "1"}})
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 1))
        self._workers = workers or self.gpus or max(1, self.cpus // 2)
        self._embedders: list = []
        self._writers: list = []
        self._actors: list = []  # every actor started here, ended by close()
        self._turn = 0

    @property
    def workers(self) -> int:
        return self._workers

    def readers(self, paths: list[Path], mmap: bool = False, model: str | None = None,
                pooling: str | None = None) -> list:
        actor: Any = ray.remote(num_cpus=0)(ShardReader)  # Ray's handles are typed loosely
        readers = [actor.remote(str(path), mmap, model, pooling) for path in paths]
        self._actors += readers
        try:
            ray.get([reader.ntotal.remote() for reader in readers])  # opening errors surface
        except ray.exceptions.RayActorError:
            # Ray passes a failed __init__ on as text (a remote traceback): open the shards
            # here to raise the library's own one-line error, if it is one.
            for path in paths:
                Index.open(path, model=model, pooling=pooling).store.close()
            raise
        return readers

    def writers(self, paths: list[Path], commit_seconds: float, timeout: float) -> list:
        actor: Any = ray.remote(num_cpus=0, max_restarts=0)(ShardWriter)
        writers = [actor.remote(str(path), commit_seconds, timeout) for path in paths]
        self._writers = writers
        self._actors += writers
        try:
            ray.get([writer.__ray_ready__.remote() for writer in writers])
        except ray.exceptions.RayActorError:
            for writer in writers:
                ray.kill(writer)
            for writer in super().writers(paths, commit_seconds, timeout):  # here: our own
                writer.abandon()                                            # one-line error
            raise
        return writers

    def call(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method).remote(*args)

    def get(self, pending: Any) -> Any:
        try:
            return ray.get(pending)
        except ray.exceptions.RayTaskError as exc:
            raise _unwrap(exc) from None
        except ray.exceptions.RayActorError as exc:
            raise InputError(f"a shard actor died ({exc.__class__.__name__}); run the same"
                             " command again: it resumes from each shard's last commit") from None

    def start_embedding(self, encoder: Encoder, batch_size: int, runtime: Runtime) -> None:
        for embedder in self._embedders:  # an earlier run's pool holds the CPUs a new one needs
            ray.kill(embedder)
        cpus = 1 if self.gpus else max(1, self.cpus // self._workers)
        actor: Any = ray.remote(max_restarts=EMBED_RETRIES, max_task_retries=EMBED_RETRIES,
                                num_gpus=1 if self.gpus else 0, num_cpus=cpus)(Embedder)
        # the user's --precision/--backend travel; "auto" resolves on each worker's own hardware
        self._embedders = [actor.remote(str(encoder.path), encoder.pooling, batch_size, cpus,
                                        runtime.precision, runtime.backend)
                           for _ in range(self._workers)]
        self._actors += self._embedders

    def embed(self, texts: list[str]):
        embedder = self._embedders[self._turn % len(self._embedders)]
        self._turn += 1
        return embedder.embed.remote(texts)

    def embedder_pids(self) -> list[int]:
        return ray.get([embedder.pid.remote() for embedder in self._embedders])

    def writer_pids(self) -> list[int]:
        """Process ids of the current run's shard writers (the kill tests use them)."""
        return ray.get([writer.pid.remote() for writer in self._writers])

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._embedders, self._writers = [], [], []
        if self._started:
            ray.shutdown()


def _unwrap(exc: Exception) -> Exception:
    """The library error raised inside an actor, as if it had been raised here."""
    while isinstance(cause := getattr(exc, "cause", None), Exception):  # died ← task ← ours
        exc = cause
    return exc


def ray_runner(address: str | None, workers: int | None = None) -> RayRunner:
    """``address`` "local" (or None) starts Ray on this machine."""
    return RayRunner(None if address in (None, "", "local") else address, workers)

