"""Every error as JSON, ``{"error": "..."}``, with a status that says whose mistake it was: the
library's one-line message, never a traceback."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from semsearch.search import json_safe
from semsearch.server.threads import ServerError

STATUS: dict[type[SemsearchError], int] = {
    InputError: 400, IndexMismatchError: 400, IndexBusyError: 409, WriteError: 507,
    CorruptIndexError: 500, ModelError: 500, ServerError: 503}


class SafeJSONResponse(JSONResponse):
    """JSON with NaN and infinities (an index written before they were refused may hold some)
    as null, instead of a 500."""

    def render(self, content: Any) -> bytes:
        return super().render(json_safe(content))


def install_error_handlers(app: FastAPI) -> None:
    """Answer library errors, bad parameters, HTTP errors and anything unexpected as JSON."""

    @app.exception_handler(SemsearchError)
    async def semsearch_error(request: Request, exc: SemsearchError) -> JSONResponse:
        status = next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'] if p not in ('query', 'body', 'path'))}:"
            f" {error['msg']}" for error in exc.errors())
        return JSONResponse({"error": problems or "bad request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else (
            f"no such page: {request.url.path}")
        return JSONResponse({"error": message}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return JSONResponse({"error": str(damaged_store_error(exc))}, status_code=500)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server"
                                      " log"}, status_code=500)
