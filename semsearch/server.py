"""`semsearch serve`: one warm process that keeps the model and the index loaded and answers a
JSON API and a search page.

Every read goes through one thread (:class:`Reader`) that owns the index's read connection:
searches waiting at the same time with the same options are embedded as one batch, so eight
clients cost little more than one. Writes (off unless asked for) use a second connection under
the index's writer lock, so a reader never sees half a write.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from semsearch import __version__
from semsearch.errors import (
    CorruptIndexError,
    IndexBusyError,
    IndexMismatchError,
    InputError,
    ModelError,
    SemsearchError,
    WriteError,
)
from semsearch.index import Index
from semsearch.ingest import Document
from semsearch.search import (
    DEFAULT_ALPHA,
    DEFAULT_FUSION,
    DEFAULT_MODE,
    DEFAULT_RRF_K,
    Fusion,
    parse_cluster,
    parse_where,
)
from semsearch.shards import open_index

STATIC = files("semsearch") / "static"
MAX_K = 1000
MAX_QUERIES = 256  # per POST /search
MAX_BATCH = 64  # queries embedded together by the reader thread
TOKEN_ENV = "SEMSEARCH_TOKEN"
# The page loads nothing from elsewhere and runs no inline script: a document that smuggled
# markup past the escaping still could not run it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
                               " base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATUS = {InputError: 400, IndexMismatchError: 400, IndexBusyError: 409, WriteError: 507,
          CorruptIndexError: 500, ModelError: 500}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

Mode = Literal["dense", "keyword", "hybrid"]
FusionMethod = Literal["rrf", "weighted"]


class Reader:
    """The one thread that reads the index; see the module docstring."""

    def __init__(self, index: Index):
        self.index = index
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="semsearch-reader", daemon=True)
        self._thread.start()

    def call(self, function: Callable, *args) -> Future:
        """Run ``function(*args)`` on the reader thread, inside one consistent snapshot."""
        return self._submit((None, function, args))

    def search(self, queries: list[str], options: dict) -> Future:
        return self._submit((json.dumps(options, sort_keys=True, default=repr), queries,
                             options))

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
            while len(tasks) < MAX_BATCH:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is None:
                    self._tasks.put(None)  # finish this batch, then stop
                    break
                tasks.append(task)
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
                _settle(future, self.index.search, queries, **options)
                continue
            try:
                results = self.index.search([q for queries, _, _ in group for q in queries],
                                            **group[0][1])
            except Exception:  # let each request fail (or not) on its own
                for queries, options, future in group:
                    _settle(future, self.index.search, queries, **options)
                continue
            start = 0
            for queries, _, future in group:
                future.set_result(results[start:start + len(queries)])
                start += len(queries)

    def _read(self, function: Callable, *args):
        with self.index.reading():
            return function(*args)


def _settle(future: Future, function: Callable, *args, **kwargs) -> None:
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _drain(tasks: queue.SimpleQueue) -> list:
    left = []
    while True:
        try:
            task = tasks.get_nowait()
        except queue.Empty:
            return left
        if task is not None and task[-1].set_running_or_notify_cancel():
            left.append(task)


class ServerError(SemsearchError):
    """The server cannot answer (it is stopping)."""


STATUS[ServerError] = 503


class SearchOptions(BaseModel):
    k: int = Field(10, ge=1, le=MAX_K, description="Hits per query.")
    mode: Mode = Field(DEFAULT_MODE, description="dense, keyword (BM25) or hybrid (both).")
    where: dict[str, str] = Field(default_factory=dict,
                                  description="Metadata that must match exactly.")
    by_document: bool = Field(False, description="One hit per document (its best unit).")
    cluster: str | None = Field(None, description="ID or RUN:ID of a stored cluster run.")
    min_score: float | None = Field(None, description="Floor on cosine (BM25 in keyword).")
    context: int = Field(0, ge=0, le=20, description="Neighbouring units on each side.")
    fusion: FusionMethod = DEFAULT_FUSION
    alpha: float = Field(DEFAULT_ALPHA, ge=0, le=1)
    rrf_k: float = Field(DEFAULT_RRF_K, gt=0)


class SearchBatch(SearchOptions):
    queries: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_QUERIES)


class NewDocument(BaseModel):
    id: str = Field(min_length=1)
    text: str
    title: str = ""
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class NewDocuments(BaseModel):
    documents: list[NewDocument] = Field(min_length=1, max_length=10_000)


def create_app(index: Index, *, allow_writes: bool = False, token: str | None = None,
               host: str | None = None) -> FastAPI:
    """The API and page over an open index (the CLI's `serve` runs it with uvicorn).

    ``host``, the address served on: requests must name it (or localhost) in their Host
    header, so a web page cannot reach a local server through DNS rebinding."""
    if allow_writes and not token:
        raise InputError(f"--allow-writes needs a token: --token or ${TOKEN_ENV}")
    writer = _Writer(index.path) if allow_writes else None
    reader = Reader(index)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(reader.stop)

    app = FastAPI(title="semsearch", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Semantic, keyword and hybrid search over a semsearch index.")
    app.state.reader = reader
    if host is not None and host not in ("0.0.0.0", "::"):
        app.add_middleware(TrustedHostMiddleware,
                           allowed_hosts=sorted({*LOCAL_HOSTS, "[::1]", host.strip("[]")}))

    async def read(function: Callable, *args):
        return await asyncio.wrap_future(reader.call(function, *args))

    async def run_search(queries: list[str], options: SearchOptions) -> list:
        cluster = None
        if options.cluster:
            cluster = await read(parse_cluster, options.cluster,
                                 lambda: index.store.cluster_run()["id"])
        hits = await asyncio.wrap_future(reader.search(queries, {
            "k": options.k, "mode": options.mode, "where": options.where,
            "by_document": options.by_document, "cluster": cluster,
            "min_score": options.min_score, "context": options.context,
            "fusion": Fusion(options.fusion, options.rrf_k, options.alpha)}))
        return [{"query": q, "hits": [hit.to_dict() for hit in found]}
                for q, found in zip(queries, hits, strict=True)]

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if writer is None:
            raise HTTPException(403, "writes are off; start the server with --allow-writes")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(),
                                                                    token.encode()):
            raise HTTPException(401, "a valid bearer token is needed to write",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(SemsearchError)
    async def semsearch_error(request: Request, exc: SemsearchError):
        status = next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'] if p not in ('query', 'body', 'path'))}:"
            f" {error['msg']}" for error in exc.errors())
        return JSONResponse({"error": problems or "bad request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else (
            f"no such page: {request.url.path}")
        return JSONResponse({"error": message}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server"
                                      " log"}, status_code=500)

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(PAGE_HEADERS)
        return response

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/health", summary="Model and index counts")
    async def health():
        manifest = await read(lambda: index.manifest)
        encoder = await read(lambda: index.encoder)  # loaded on the reader thread, if not yet
        return {"status": "ok", "index": str(index.path), "model": manifest["model"],
                "pooling": manifest["pooling"], "unit": manifest["unit"],
                "encoder": {"backend": encoder.backend, "device": encoder.device,
                            "precision": encoder.precision},
                "documents": manifest["documents"], "units": manifest["units"],
                "vectors": manifest["vectors"], "writes": writer is not None}

    @app.get("/search", summary="Search with one query")
    async def search_one(
        q: Annotated[str, Query(min_length=1, description="The query.")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        mode: Mode = DEFAULT_MODE,
        where: Annotated[list[str] | None, Query(description="KEY=VALUE, repeatable.")] = None,
        by_document: bool = False,
        cluster: Annotated[str | None, Query(description="ID or RUN:ID")] = None,
        min_score: float | None = None,
        context: Annotated[int, Query(ge=0, le=20)] = 0,
        fusion: FusionMethod = DEFAULT_FUSION,
        alpha: Annotated[float, Query(ge=0, le=1)] = DEFAULT_ALPHA,
        rrf_k: Annotated[float, Query(gt=0)] = DEFAULT_RRF_K,
    ):
        options = SearchOptions(k=k, mode=mode, where=parse_where(where or []),
                                by_document=by_document, cluster=cluster, min_score=min_score,
                                context=context, fusion=fusion, alpha=alpha, rrf_k=rrf_k)
        return JSONResponse((await run_search([q], options))[0])

    @app.post("/search", summary="Search with a batch of queries")
    async def search_many(batch: SearchBatch):
        return JSONResponse({"results": await run_search(batch.queries, batch)})

    @app.get("/documents/{document_id:path}", summary="A document with its units")
    async def document(document_id: str):
        found = await read(index.store.document, document_id)
        if found is None:
            raise HTTPException(404, f"no document {document_id!r}")
        return JSONResponse(found)

    @app.get("/clusters", summary="Stored cluster runs")
    async def cluster_runs():
        return {"runs": await read(index.store.cluster_runs)}

    @app.get("/clusters/{run}", summary="One cluster run: keywords, sizes, representatives")
    async def cluster_run(run: int):
        found = await read(_run_with_map, index, run)
        if found is None:
            raise HTTPException(404, f"no cluster run {run}")
        return JSONResponse(found)

    @app.get("/clusters/{run}/map.png", summary="The run's 2-D map, when one was drawn",
             response_class=Response)
    async def cluster_map(run: int):
        png = await read(index.store.cluster_map, run)
        if png is None:
            raise HTTPException(404, f"no map for run {run}; draw one with"
                                     f" `semsearch clusters {run} --plot map.png`")
        return Response(png, media_type="image/png")

    @app.post("/documents", summary="Add or replace documents (needs --allow-writes)",
              dependencies=[Depends(require_token)])
    def add_documents(body: NewDocuments):
        return writer.add([Document(id=d.id, text=d.text, source="api", title=d.title,
                                    metadata=d.metadata) for d in body.documents])

    @app.delete("/documents/{document_id:path}", dependencies=[Depends(require_token)],
                summary="Delete a document (needs --allow-writes)")
    def delete_document(document_id: str):
        removed = writer.remove(document_id)
        if not removed:
            raise HTTPException(404, f"no document {document_id!r}")
        return {"removed": removed}

    return app


def _run_with_map(index: Index, run_id: int) -> dict | None:
    if run_id not in {run["id"] for run in index.store.cluster_runs()}:
        return None
    run = index.store.cluster_run(run_id)
    run["map"] = f"/clusters/{run_id}/map.png" if index.store.cluster_map(run_id) else None
    return run


class _Writer:
    """Writes through their own connection, one at a time, under the index's writer lock (a
    CLI writer running at the same time is waited for, up to ``LOCK_WAIT`` seconds)."""

    LOCK_WAIT = 30.0

    def __init__(self, path: Path):
        self.index = open_index(path, verify=False)
        self.index.lock_timeout = self.LOCK_WAIT
        self._lock = threading.Lock()

    def add(self, documents: list[Document]) -> dict:
        with self._lock:
            result = self.index.add(documents)
        return {"added": result.added, "replaced": result.replaced, "unchanged": result.skipped,
                "empty": result.empty, "units": result.units}

    def remove(self, document_id: str) -> int:
        with self._lock:
            return self.index.remove([document_id], ids_only=True)
