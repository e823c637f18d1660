"""`semsearch serve`: one warm process that keeps the model and the index loaded and answers a
JSON API and a search page.

Every read goes through one thread (:class:`Reader`) that owns the index's read connection:
searches waiting at the same time with the same options are embedded as one batch, so eight
clients cost little more than one. Writes (off unless asked for) use a second connection under
the index's writer lock, so a reader never sees half a write.

Nobody needs a token to search, so every request is bounded before it costs anything (see the
``MAX_*`` limits): the Host header, the URL, the write token and the body's size are checked
before a body is read (:class:`_Guard`), a search's size before it runs, its answer's size while
it is rendered; and /health reads the counts through a connection of its own, never behind a
search.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import queue
import secrets
import socket
import sqlite3
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import asynccontextmanager, suppress
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semsearch import __version__
from semsearch.errors import (
    CorruptIndexError,
    IndexBusyError,
    IndexMismatchError,
    InputError,
    ModelError,
    SemsearchError,
    WriteError,
    damaged_store_error,
)
from semsearch.index import Index
from semsearch.ingest import Document
from semsearch.search import (
    DEFAULT_ALPHA,
    DEFAULT_FUSION,
    DEFAULT_MODE,
    DEFAULT_RRF_K,
    Fusion,
    json_safe,
    parse_cluster,
    parse_where,
)
from semsearch.shards import open_index

STATIC = files("semsearch") / "static"
MAX_K = 1000
MAX_QUERIES = 256  # per POST /search
MAX_BATCH = 64  # requests served together by the reader thread
TOKEN_ENV = "SEMSEARCH_TOKEN"
# Limits that no real use meets and that keep one request (without a token) far from exhausting
# the server; each error that enforces one names it.
# The encoder reads 256 tokens (~1,500 characters) of a query at most: this is twice that.
MAX_QUERY_CHARS = 4096
# Texts a search may return: k × queries × (1 + 2 × context). One query at the largest k and
# context (1000 hits, 20 units each side: 41,000) fits; 256 such queries built 729 MB.
MAX_HIT_TEXTS = 50_000
# A request body, except writes: a full batch (256 queries of 4,096 characters in any script,
# 3 MB of UTF-8) fits.
MAX_BODY_BYTES = 4 << 20
# POST /documents (with the token): a document at ingest's default 32 MB limit, twice over.
MAX_WRITE_BODY_BYTES = 64 << 20
# An answer's JSON: a full hit budget of sentence or passage units is 5-20 MB.
MAX_RESPONSE_BYTES = 64 << 20
# A URL: the longest query percent-encoded as 3-byte UTF-8 (37 KB) with filters fits.
MAX_URL_BYTES = 64 << 10
# For uvicorn (`semsearch serve` passes them): h11 parses request heads up to 16 KB and answers
# a longer one with a plain-text 400 and a reset connection; room for 2 MB lets the app answer
# a long URL with a JSON 414 (a head over 2 MB still gets uvicorn's 400).
UVICORN_LIMITS = {"h11_max_incomplete_event_size": 2 << 20}
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
WILDCARD_HOSTS = ("0.0.0.0", "::", "")

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


def hit_texts(queries: int, k: int, context: int) -> int:
    """The most texts a search may return: each hit's unit and its context on both sides."""
    return queries * k * (1 + 2 * context)


def _task_texts(task: tuple) -> int:
    key, queries, options, _ = task
    return 0 if key is None else hit_texts(len(queries), options.get("k", 10),
                                           options.get("context", 0))


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


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise HTTPException(400, f"key {key!r} is given twice in one JSON object; give each"
                                     " key once")
        seen.add(key)
    return dict(pairs)


class _UniqueKeysRequest(Request):
    """A JSON body with a key twice in one object is refused: the parser would silently keep the
    last (a ``where`` on one key twice would search for one of the two values)."""

    async def json(self) -> object:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_unique_keys)
        return self._json


class _UniqueKeysRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_UniqueKeysRequest(request.scope, request.receive))

        return strict


class SearchOptions(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # JSON has no NaN; Python's parser takes it

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
    queries: list[Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]] = Field(
        min_length=1, max_length=MAX_QUERIES)


class NewDocument(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # a stored NaN would break every answer

    id: str = Field(min_length=1)
    text: str
    title: str = ""
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _finite(cls, metadata: object) -> object:
        """Name the value, where the union's own errors would list every type it is not."""
        for key, value in metadata.items() if isinstance(metadata, dict) else ():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key!r} is {value}, which JSON cannot carry; give null or a"
                                 " string")
        return metadata


class NewDocuments(BaseModel):
    documents: list[NewDocument] = Field(min_length=1, max_length=10_000)


def create_app(index: Index, *, allow_writes: bool = False, token: str | None = None,
               host: str | None = None, allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The API and page over an open index (the CLI's `serve` runs it with uvicorn).

    ``host``, the address served on: when given, requests must name it, localhost, one of this
    machine's names or addresses or one of ``allowed_hosts`` in their Host header, so a web
    page cannot reach the server through DNS rebinding (on 0.0.0.0 or :: too)."""
    if allow_writes and not token:
        raise InputError(f"--allow-writes needs a token: --token or ${TOKEN_ENV}")
    if token is not None and not (token.isascii() and token.isprintable()):
        raise InputError("--token must be printable ASCII (an HTTP header carries no other)")
    writer = _Writer(index.path) if allow_writes else None
    encoder = index.encoder  # loaded now (before the reader thread starts), not mid-request
    counts = _ManifestReader(index.path)
    reader = Reader(index)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(reader.stop)

    app = FastAPI(title="semsearch", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, default_response_class=SafeJSONResponse,
                  description="Semantic, keyword and hybrid search over a semsearch index.")
    app.router.route_class = _UniqueKeysRoute
    app.state.reader = reader
    app.add_middleware(_Guard, hosts=None if host is None else _allowed_hosts(host, allowed_hosts),
                       token=token if writer is not None else None)

    async def read(function: Callable, *args):
        return await asyncio.wrap_future(reader.call(function, *args))

    async def run_search(queries: list[str], options: SearchOptions, *, batch: bool) -> Response:
        texts = hit_texts(len(queries), options.k, options.context)
        if texts > MAX_HIT_TEXTS:
            raise InputError(f"this search may return {texts:,} texts (k × queries × (1 + 2 ×"
                             f" context)); the limit is {MAX_HIT_TEXTS:,}: ask for fewer hits,"
                             " queries or context")
        cluster = None
        if options.cluster:
            cluster = await read(parse_cluster, options.cluster,
                                 lambda: index.store.cluster_run()["id"])
        hits = await asyncio.wrap_future(reader.search(queries, {
            "k": options.k, "mode": options.mode, "where": options.where,
            "by_document": options.by_document, "cluster": cluster,
            "min_score": options.min_score, "context": options.context,
            "fusion": Fusion(options.fusion, options.rrf_k, options.alpha)}))
        # Rendered off the event loop, so /health and other requests go on meanwhile.
        return Response(await asyncio.to_thread(_render_answers, queries, hits, batch),
                        media_type="application/json")

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
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return JSONResponse({"error": str(damaged_store_error(exc))}, status_code=500)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server"
                                      " log"}, status_code=500)

    @app.middleware("http")  # outside the guard: its refusals carry these headers too
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
        manifest = await asyncio.to_thread(counts.manifest)
        return {"status": "ok", "index": str(index.path), "model": manifest["model"],
                "pooling": manifest["pooling"], "unit": manifest["unit"],
                "encoder": {"backend": encoder.backend, "device": encoder.device,
                            "precision": encoder.precision},
                "documents": manifest["documents"], "units": manifest["units"],
                "vectors": manifest["vectors"], "writes": writer is not None}

    @app.get("/search", summary="Search with one query")
    async def search_one(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                description="The query.")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        mode: Mode = DEFAULT_MODE,
        where: Annotated[list[str] | None, Query(description="KEY=VALUE, repeatable.")] = None,
        by_document: bool = False,
        cluster: Annotated[str | None, Query(description="ID or RUN:ID")] = None,
        min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
        context: Annotated[int, Query(ge=0, le=20)] = 0,
        fusion: FusionMethod = DEFAULT_FUSION,
        alpha: Annotated[float, Query(ge=0, le=1, allow_inf_nan=False)] = DEFAULT_ALPHA,
        rrf_k: Annotated[float, Query(gt=0, allow_inf_nan=False)] = DEFAULT_RRF_K,
    ):
        options = SearchOptions(k=k, mode=mode, where=parse_where(where or []),
                                by_document=by_document, cluster=cluster, min_score=min_score,
                                context=context, fusion=fusion, alpha=alpha, rrf_k=rrf_k)
        return await run_search([q], options, batch=False)

    @app.post("/search", summary="Search with a batch of queries")
    async def search_many(batch: SearchBatch):
        return await run_search(batch.queries, batch, batch=True)

    @app.get("/documents/{document_id:path}", summary="A document with its units")
    async def document(document_id: str):
        found = await read(index.store.document, document_id)
        if found is None:
            raise HTTPException(404, f"no document {document_id!r}")
        return SafeJSONResponse(found)

    @app.get("/clusters", summary="Stored cluster runs")
    async def cluster_runs():
        return {"runs": await read(index.store.cluster_runs)}

    @app.get("/clusters/{run}", summary="One cluster run: keywords, sizes, representatives")
    async def cluster_run(run: int):
        found = await read(_run_with_map, index, run)
        if found is None:
            raise HTTPException(404, f"no cluster run {run}")
        return SafeJSONResponse(found)

    @app.get("/clusters/{run}/map.png", summary="The run's 2-D map, when one was drawn",
             response_class=Response)
    async def cluster_map(run: int):
        png = await read(index.store.cluster_map, run)
        if png is None:
            raise HTTPException(404, f"no map for run {run}; draw one with"
                                     f" `semsearch clusters {run} --plot map.png`")
        return Response(png, media_type="image/png")

    # Both writes need the token: _Guard checks it before a body is read.
    @app.post("/documents", summary="Add or replace documents (needs --allow-writes)")
    def add_documents(body: NewDocuments):
        return writer.add([Document(id=d.id, text=d.text, source="api", title=d.title,
                                    metadata=d.metadata) for d in body.documents])

    @app.delete("/documents/{document_id:path}",
                summary="Delete a document (needs --allow-writes)")
    def delete_document(document_id: str):
        removed = writer.remove(document_id)
        if not removed:
            raise HTTPException(404, f"no document {document_id!r}")
        return {"removed": removed}

    return app


class SafeJSONResponse(JSONResponse):
    """JSON with NaN and infinities (an index written before they were refused may hold some)
    as null, instead of a 500."""

    def render(self, content: Any) -> bytes:
        return super().render(json_safe(content))


def _render_answers(queries: list[str], hits: list[list], batch: bool) -> bytes:
    """The search answer's JSON, one query at a time: refused as soon as it passes
    MAX_RESPONSE_BYTES, so a refused answer never sits whole in memory."""
    pieces, size = [], 0
    for query, found in zip(queries, hits, strict=True):
        piece = json.dumps({"query": query, "hits": [hit.to_dict() for hit in found]},
                           ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        size += len(piece)
        if size > MAX_RESPONSE_BYTES:
            raise InputError(f"the answer would be over {MAX_RESPONSE_BYTES:,} bytes; ask for"
                             " fewer hits, queries or context")
        pieces.append(piece)
    return b'{"results":[' + b",".join(pieces) + b"]}" if batch else pieces[0]


class _Guard:
    """Refusals that need neither a route nor the body, made before the body is read: a Host
    this server does not answer to (``hosts``; None: any), a URL over MAX_URL_BYTES, a write
    while writes are off (``token`` None) or without the token, a body over its limit
    (declared in Content-Length, or counted as it arrives when chunked)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, token: str | None):
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        write = _is_write(scope)
        limit = MAX_WRITE_BODY_BYTES if write else MAX_BODY_BYTES
        refusal = (self._host_refusal(headers.get("host", "")) or _url_refusal(scope)
                   or (self._write_refusal(headers.get("authorization", "")) if write else None)
                   or _size_refusal(headers.get("content-length"), limit))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # an HTTPException: the app's handlers answer it with JSON
                raise StarletteHTTPException(413, _too_large(limit))
            return message

        await self.app(scope, receive_within_limit, send)

    def _host_refusal(self, header: str) -> JSONResponse | None:
        if self.hosts is None or _host_name(header) in self.hosts:
            return None
        return _refusal(400, f"Host {header!r} is not one this server answers to (a web page"
                             " reaching it through DNS rebinding would look like this); start"
                             " it with --allowed-host NAME to allow one")

    def _write_refusal(self, authorization: str) -> JSONResponse | None:
        if self.token is None:
            return _refusal(403, "writes are off; start the server with --allow-writes")
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.encode(),
                                                                 self.token.encode()):
            return None
        return _refusal(401, "a valid bearer token is needed to write",
                        {"WWW-Authenticate": "Bearer"})


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answered before the body was read. The connection stays open: uvicorn drops
    the body's bytes as they come (none reach the app), and a client that sends its whole body
    before it reads (http.client, requests, curl) gets this answer instead of a reset."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _is_write(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] not in ("GET", "HEAD") and (
        path == "/documents" or path.startswith("/documents/"))


def _url_refusal(scope: Scope) -> JSONResponse | None:
    size = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if size <= MAX_URL_BYTES:
        return None
    return _refusal(414, f"the URL is {size:,} bytes; the limit is {MAX_URL_BYTES:,} bytes"
                         " (send long queries with POST /search)")


def _size_refusal(content_length: str | None, limit: int) -> JSONResponse | None:
    if content_length is None or not content_length.isdigit() or int(content_length) <= limit:
        return None
    return _refusal(413, _too_large(limit))


def _too_large(limit: int) -> str:
    return (f"the request body is over the limit of {limit:,} bytes"
            + ("" if limit == MAX_WRITE_BODY_BYTES else
               f" ({MAX_QUERIES} queries of {MAX_QUERY_CHARS:,} characters fit)"))


def _host_name(header: str) -> str:
    """The name or address in a Host header (or an --allowed-host value): no port, no IPv6
    brackets, lower case, an address in its canonical form."""
    name = header.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        name = name.partition(":")[0]
    name = name.rstrip(".")
    with suppress(ValueError):
        return ipaddress.ip_address(name).compressed
    return name


def _allowed_hosts(host: str, extra: Iterable[str]) -> frozenset[str]:
    """Names a Host header may carry: localhost, the address served on, this machine's names
    and addresses (a wildcard address serves them all) and ``extra``."""
    names = {*LOCAL_HOSTS, *extra, *_machine_names()}
    if host not in WILDCARD_HOSTS:
        names.add(host)
    return frozenset(_host_name(name) for name in names)


def _machine_names() -> set[str]:
    """This machine's names and addresses, as far as the standard library finds them without
    new dependencies: its host name and FQDN, what they resolve to, and (on Linux) the address
    of every network interface."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        with suppress(OSError):
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
    if sys.platform.startswith("linux"):
        names.update(_linux_interface_addresses())
    return names


def _linux_interface_addresses() -> set[str]:
    import fcntl

    found = set()
    with suppress(OSError):  # the kernel lists IPv6 addresses as 32 hex digits
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(str(ipaddress.IPv6Address(int(line.split()[0], 16))))
    get_address = 0x8915  # SIOCGIFADDR: an interface's IPv4 address (nothing is sent)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, interface in socket.if_nameindex():
            with suppress(OSError):
                answer = fcntl.ioctl(probe.fileno(), get_address,
                                     struct.pack("256s", interface.encode()[:15]))
                found.add(socket.inet_ntoa(answer[20:24]))
    return found


def _run_with_map(index: Index, run_id: int) -> dict | None:
    if run_id not in {run["id"] for run in index.store.cluster_runs()}:
        return None
    run = index.store.cluster_run(run_id)
    run["map"] = f"/clusters/{run_id}/map.png" if index.store.cluster_map(run_id) else None
    return run


class _ManifestReader:
    """The manifest through a connection of its own: /health answers at once, even while the
    reader thread serves a long batch (a read never waits for a writer, in WAL mode)."""

    def __init__(self, path: Path):
        self.index = open_index(path, verify=False)
        self._lock = threading.Lock()  # one connection, one thread at a time

    def manifest(self) -> dict:
        with self._lock:
            return self.index.manifest


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
