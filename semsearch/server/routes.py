"""The endpoints, one router per resource. Each handler parses, calls the library through the
server's threads (:mod:`semsearch.server.threads`) and answers; what they share lives in the
:class:`Served` object the app keeps in ``app.state.served``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response

from semsearch.encoder import Encoder
from semsearch.errors import InputError
from semsearch.readers import Document
from semsearch.search import Hit, SearchOptions
from semsearch.server.errors import SafeJSONResponse
from semsearch.server.limits import MAX_HIT_TEXTS, MAX_RESPONSE_BYTES, hit_texts
from semsearch.server.models import (
    NewDocuments,
    SearchBatch,
    SearchParameters,
    UniqueKeysRoute,
    search_options,
)
from semsearch.server.threads import ManifestReader, Reader, Writer
from semsearch.service import AnyIndex

STATIC = files("semsearch") / "static"


@dataclass
class Served:
    """What every handler reaches: the index, its threads and the loaded encoder."""

    index: AnyIndex
    reader: Reader
    counts: ManifestReader
    encoder: Encoder
    writer: Writer | None = None

    async def read(self, function: Callable, *args: Any) -> Any:
        """``function(*args)`` on the reader thread, in one consistent snapshot."""
        return await asyncio.wrap_future(self.reader.call(function, *args))


def served(request: Request) -> Served:
    return request.app.state.served


State = Annotated[Served, Depends(served)]
page = APIRouter(route_class=UniqueKeysRoute)
search = APIRouter(route_class=UniqueKeysRoute)
documents = APIRouter(route_class=UniqueKeysRoute)
clusters = APIRouter(route_class=UniqueKeysRoute)


@page.get("/", include_in_schema=False)
def search_page() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"))


@page.get("/health", summary="Model and index counts")
async def health(state: State) -> dict:
    manifest = await asyncio.to_thread(state.counts.manifest)
    encoder = state.encoder
    return {"status": "ok", "index": str(state.index.path), "model": manifest["model"],
            "pooling": manifest["pooling"], "unit": manifest["unit"],
            "encoder": {"backend": encoder.backend, "device": encoder.device,
                        "precision": encoder.precision},
            "documents": manifest["documents"], "units": manifest["units"],
            "vectors": manifest["vectors"], "writes": state.writer is not None}


@search.get("/search", summary="Search with one query")
async def search_one(state: State,
                     parameters: Annotated[SearchParameters, Query()]) -> Response:
    return await _search(state, [parameters.q], search_options(parameters), batch=False)


@search.post("/search", summary="Search with a batch of queries")
async def search_many(state: State, batch: SearchBatch) -> Response:
    return await _search(state, batch.queries, search_options(batch), batch=True)


async def _search(state: Served, queries: list[str], options: SearchOptions, *,
                  batch: bool) -> Response:
    texts = hit_texts(len(queries), options.k, options.context)
    if texts > MAX_HIT_TEXTS:
        raise InputError(f"this search may return {texts:,} texts (k × queries × (1 + 2 ×"
                         f" context)); the limit is {MAX_HIT_TEXTS:,}: ask for fewer hits,"
                         " queries or context")
    hits = await asyncio.wrap_future(state.reader.search(queries, options))
    # Rendered off the event loop, so /health and other requests go on meanwhile.
    return Response(await asyncio.to_thread(_render_answers, queries, hits, batch),
                    media_type="application/json")


def _render_answers(queries: list[str], hits: list[list[Hit]], batch: bool) -> bytes:
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


@documents.get("/documents/{document_id:path}", summary="A document with its units")
async def document(state: State, document_id: str) -> SafeJSONResponse:
    found = await state.read(state.index.store.document, document_id)
    if found is None:
        raise HTTPException(404, f"no document {document_id!r}")
    return SafeJSONResponse(found)


# Both writes need the token: the guard checks it before a body is read.
@documents.post("/documents", summary="Add or replace documents (needs --allow-writes)")
def add_documents(state: State, body: NewDocuments) -> dict:
    assert state.writer is not None  # the guard refuses writes while they are off
    return state.writer.add([Document(id=d.id, text=d.text, source="api", title=d.title,
                                      metadata=d.metadata) for d in body.documents]).to_dict()


@documents.delete("/documents/{document_id:path}",
                  summary="Delete a document (needs --allow-writes)")
def delete_document(state: State, document_id: str) -> dict:
    assert state.writer is not None
    removed = state.writer.remove(document_id)
    if not removed:
        raise HTTPException(404, f"no document {document_id!r}")
    return {"removed": removed}


@clusters.get("/clusters", summary="Stored cluster runs")
async def cluster_runs(state: State) -> dict:
    return {"runs": await state.read(state.index.store.cluster_runs)}


@clusters.get("/clusters/{run}", summary="One cluster run: keywords, sizes, representatives")
async def cluster_run(state: State, run: int) -> SafeJSONResponse:
    found = await state.read(_run_with_map, state.index, run)
    if found is None:
        raise HTTPException(404, f"no cluster run {run}")
    return SafeJSONResponse(found)


@clusters.get("/clusters/{run}/map.png", summary="The run's 2-D map, when one was drawn",
              response_class=Response)
async def cluster_map(state: State, run: int) -> Response:
    png = await state.read(state.index.store.cluster_map, run)
    if png is None:
        raise HTTPException(404, f"no map for run {run}; draw one with"
                                 f" `semsearch clusters {run} --plot map.png`")
    return Response(png, media_type="image/png")


ROUTERS = (page, search, documents, clusters)  # what the app serves, in this order


def _run_with_map(index: AnyIndex, run_id: int) -> dict | None:
    if run_id not in {run["id"] for run in index.store.cluster_runs()}:
        return None
    run = index.store.cluster_run(run_id)
    run["map"] = f"/clusters/{run_id}/map.png" if index.store.cluster_map(run_id) else None
    return run
