"""`semsearch serve`: one warm process that keeps the model and the index loaded and answers a
JSON API and a search page.

The parts: :mod:`~semsearch.server.limits` (what one request may cost),
:mod:`~semsearch.server.guard` (refusals made before a body is read),
:mod:`~semsearch.server.models` (parameters and bodies, derived from the library's
``SearchOptions``), :mod:`~semsearch.server.threads` (the reader thread that batches searches,
the writer, the /health counts), :mod:`~semsearch.server.routes` (one router per resource) and
:mod:`~semsearch.server.errors` (every error as one line of JSON).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from semsearch import __version__
from semsearch.server.errors import SafeJSONResponse, install_error_handlers
from semsearch.server.guard import Guard, answered_hosts, write_token
from semsearch.server.limits import (
    LOCAL_HOSTS,
    MAX_BODY_BYTES,
    MAX_HIT_TEXTS,
    MAX_QUERY_CHARS,
    MAX_URL_BYTES,
    PAGE_HEADERS,
    UVICORN_LIMITS,
)
from semsearch.server.routes import ROUTERS, STATIC, Served
from semsearch.server.threads import ManifestReader, Reader, ServerError, Writer
from semsearch.service import AnyIndex

__all__ = ["LOCAL_HOSTS", "MAX_BODY_BYTES", "MAX_HIT_TEXTS", "MAX_QUERY_CHARS", "MAX_URL_BYTES",
           "UVICORN_LIMITS", "Reader", "ServerError", "create_app"]


def create_app(index: AnyIndex, *, allow_writes: bool = False, token: str | None = None,
               host: str | None = None, allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The API and page over an open index (the CLI's `serve` runs it with uvicorn).

    ``host``, the address served on: when given, requests must name it, localhost, one of this
    machine's names or addresses or one of ``allowed_hosts`` in their Host header, so a web
    page cannot reach the server through DNS rebinding (on 0.0.0.0 or :: too)."""
    token = write_token(allow_writes, token)
    # Writes embed as searches do: the same backend and precision, so their vectors match.
    writer = Writer(index.path, index.runtime) if allow_writes else None
    state = Served(index=index, writer=writer,
                   encoder=index.encoder,  # loaded now (before the reader thread), not mid-request
                   counts=ManifestReader(index.path), reader=Reader(index))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(state.reader.stop)

    app = FastAPI(title="semsearch", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, default_response_class=SafeJSONResponse,
                  description="Semantic, keyword and hybrid search over a semsearch index.")
    app.state.served = state
    app.add_middleware(Guard, hosts=None if host is None else answered_hosts(host, allowed_hosts),
                       token=token)
    install_error_handlers(app)

    @app.middleware("http")  # outside the guard: its refusals carry these headers too
    async def page_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers.update(PAGE_HEADERS)
        return response

    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app

