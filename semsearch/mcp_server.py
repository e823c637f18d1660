"""`semsearch mcp`: indexes as tools for AI agents and editors, over the Model Context Protocol.

One process keeps the model and every index it serves loaded, and answers an MCP client over
stdio (what agent clients launch) or streamable HTTP on 127.0.0.1, where `serve`'s Host-header
and bearer-token rules apply, by the same code (:mod:`semsearch.server.guard`). Each tool calls
the library as the command line and `serve` do, and the `search` tool's arguments are derived
from :class:`~semsearch.search.SearchOptions`: an option, its default and its bounds exist once.

Answers are sized for a model's context: at most MAX_HITS hits, every text cut at a marker, and
an answer past MAX_ANSWER_CHARS leaves its last items out and says so. A bad call is a tool error
with the library's one-line message; the server goes on answering.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin
from urllib.parse import quote, unquote, urlsplit

import anyio
import jsonschema
import mcp_types as types
from jsonschema.exceptions import best_match
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from semsearch import __version__
from semsearch.errors import InputError, SemsearchError, UsageError, damaged_store_error
from semsearch.index import resolve_index_path
from semsearch.readers import Document
from semsearch.search import OptionSpec, SearchOptions, json_safe, option_specs
from semsearch.service import (
    AnyIndex,
    add_documents,
    cluster_members,
    document_titles,
    remove_documents,
)

HOST = "127.0.0.1"  # --http listens here only
DEFAULT_PORT = 8765
SCHEME = "semsearch"  # resources: semsearch://INDEX/DOCUMENT_ID
MAX_HITS = 100  # k, for a model's context (the library allows more)
MAX_QUERY_CHARS = 4096  # as `serve` takes: twice what the encoder reads of a query
MAX_TEXT_CHARS = 1000  # a hit's or a cluster member's text
MAX_CONTEXT_CHARS = 300  # each neighbouring unit of a hit
MAX_ANSWER_CHARS = 200_000  # one answer's JSON; the items past it are left out
MAX_PAGE_CHARS = 20_000  # one page of get_document
MAX_RESOURCE_CHARS = 100_000  # a document read as a resource
RESOURCE_PAGE = 100  # documents per page of the resource list
MAX_WRITE_DOCUMENTS = 1000  # per add_documents or remove_documents call
WRITE_WAIT = 30.0  # seconds a write waits for another writer (a running `index`), as `serve`'s

log = logging.getLogger("semsearch.mcp")
T = TypeVar("T")

INSTRUCTIONS = (
    "Search the user's own documents (notes, papers, files) that semsearch has indexed on this"
    " machine. Start with `search` (natural-language queries; hybrid semantic and keyword"
    " ranking); read a hit's whole document with `get_document` or its `resource` URI."
    " `list_indexes` names the indexes served; `list_clusters` and `cluster_members` show the"
    " topics of an index that has been clustered.")


@dataclass
class Served:
    """One served index under its tool name. Calls on it take turns (one SQLite connection);
    calls on different indexes run side by side."""

    name: str
    index: AnyIndex
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, work: Callable[[AnyIndex], T]) -> T:
        """``work(index)`` in one snapshot of the index: what one commit left."""
        with self.lock, self.index.reading():
            return work(self.index)

    def write(self, work: Callable[[AnyIndex], T]) -> T:
        """``work(index)`` alone on the index (a write takes the index's writer lock itself)."""
        with self.lock:
            return work(self.index)


@dataclass(frozen=True)
class Tool:
    """A tool as the client sees it (its name, description and argument schema) and the
    function that answers it, which takes the validated arguments."""

    name: str
    description: str
    properties: dict[str, Any]
    answer: Callable[[dict[str, Any]], dict[str, Any]]
    required: tuple[str, ...] = ()
    per_index: bool = True  # takes an `index` argument
    writes: bool = False

    def schema(self, index_property: dict[str, Any]) -> dict[str, Any]:
        properties = {**self.properties, **({"index": index_property} if self.per_index else {})}
        return {"type": "object", "properties": properties, "required": list(self.required),
                "additionalProperties": False}


def served_names(given: Iterable[str]) -> dict[str, str]:
    """The tool name of each ``--index`` given (its folder's name: a name under indexes/ as
    given), to what was given; two that would share a name are refused."""
    names: dict[str, str] = {}
    for value in given:
        name = Path(os.path.abspath(resolve_index_path(value))).name
        if name in names:
            raise UsageError(f"--index {names[name]} and --index {value} would both be served as"
                             f" {name!r}; serve folders with different names")
        names[name] = value
    return names


def resource_uri(index: str, document_id: str) -> str:
    return f"{SCHEME}://{quote(index, safe='')}/{quote(document_id, safe='')}"


def cut(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} […{len(text) - limit:,} more characters; get_document reads them]"


def option_schema(spec: OptionSpec) -> dict[str, Any]:
    """One search option as JSON Schema: its type, choices, bounds, default and help, read from
    the library's definition (k capped at MAX_HITS)."""
    kind = next(t for t in get_args(spec.type) if t is not type(None)) if spec.optional else (
        spec.type)
    schema: dict[str, Any] = {"description": spec.help}
    if spec.choices:
        schema.update(type="string", enum=list(spec.choices))
    elif get_origin(kind) is dict:
        schema.update(type="object", additionalProperties={"type": "string"},
                      description=f"{spec.help} Given as an object of KEY: VALUE.")
    else:
        schema["type"] = {bool: "boolean", int: "integer", float: "number", str: "string"}[kind]
    if spec.low is not None:
        schema["exclusiveMinimum" if spec.open_low else "minimum"] = spec.low
    high = min(spec.high, MAX_HITS) if spec.name == "k" and spec.high else spec.high
    if high is not None:
        schema["maximum"] = high
    if spec.optional:
        schema["type"] = [schema["type"], "null"]
    if spec.default not in (None, {}):
        schema["default"] = spec.default
    return schema


class Catalogue:
    """The served indexes and the tools and resources over them: what the MCP handlers call
    (on worker threads: a search never holds up the transport)."""

    def __init__(self, indexes: Mapping[str, AnyIndex], *, allow_writes: bool = False,
                 token: str | None = None):
        if not indexes:
            raise InputError("give an index to serve")
        self.served = [Served(name, index) for name, index in indexes.items()]
        self.allow_writes, self.token = allow_writes, token
        for served in self.served:
            served.index.lock_timeout = WRITE_WAIT
        self.tools = {tool.name: tool for tool in self._tools()
                      if allow_writes or not tool.writes}
        self.validators = {name: jsonschema.Draft202012Validator(self.schema(tool))
                           for name, tool in self.tools.items()}

    # ---- the tools -----------------------------------------------------------------------

    def _tools(self) -> list[Tool]:
        offset = {"type": "integer", "minimum": 0, "default": 0}
        return [
            Tool("search", (
                "Search an index of the user's documents for the passages that best match a"
                " query. The default hybrid mode fuses semantic similarity with keyword (BM25)"
                " matching, so paraphrases and exact rare terms are both found; `dense` is"
                " semantic only, `keyword` exact words only. Each hit has the document's id,"
                " title and source path, the unit's heading path or page, its text (cut at"
                f" {MAX_TEXT_CHARS:,} characters) with its neighbours when `context` > 0, the"
                " scores, and a `resource` URI. Filter with `where` (metadata equals) or"
                " `cluster`; `by_document` gives one hit per document. Read a whole document"
                " with get_document and a hit's document_id."),
                {"query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                           "description": "What to look for, in words."},
                 **{spec.name: option_schema(spec) for spec in option_specs()}},
                self._search, required=("query",)),
            Tool("get_document", (
                "Read one document of an index by its id (a search hit's document_id): its"
                f" title, source, metadata and text, {MAX_PAGE_CHARS:,} characters per call."
                " With view='units' it comes as its units (sentences, passages or chunks, as"
                " the index cuts it) with their heading paths and pages instead. When"
                " next_offset is not null there is more: call again with offset=next_offset."),
                {"id": {"type": "string", "minLength": 1, "description": "The document's id."},
                 "view": {"type": "string", "enum": ["text", "units"], "default": "text",
                          "description": "text: the document's text; units: its units."},
                 "offset": {**offset, "description": "Where to start: a character of the text"
                                                     " (view=text) or a unit (view=units)."}},
                self._get_document, required=("id",)),
            Tool("list_indexes", (
                "List the indexes this server searches: their names (the `index` argument of"
                " the other tools; the first is the default), document and unit counts, the"
                " unit they are cut into (sentence, passage or document), the model, and"
                " whether writes are on."), {}, self._list_indexes, per_index=False),
            Tool("index_info", (
                "Everything about one index: counts, model, pooling, dimension, FAISS index"
                " type and recall of approximate search, size on disk and files, and the"
                " encoder this server runs queries on."), {}, self._index_info),
            Tool("list_clusters", (
                "The topics of an index, from a stored `semsearch cluster` run (default: the"
                " latest): each cluster's number, size, keywords and the texts nearest its"
                " centre, and the list of stored runs. Pass a cluster number to cluster_members"
                " to see what is in it, or as search's `cluster` to search inside it."),
                {"run": {"type": "integer", "minimum": 1,
                         "description": "The run's id. Default: the latest run."}},
                self._list_clusters),
            Tool("cluster_members", (
                "What is in one cluster: its units (or, for a run over documents, its"
                " documents), each with the document's id, title and source and the text, a page"
                " at a time. `cluster` is ID (of the latest run) or RUN:ID, as list_clusters"
                " shows them; when next_offset is not null, call again with"
                " offset=next_offset."),
                {"cluster": {"type": "string", "minLength": 1,
                             "description": "ID or RUN:ID (-1: the outliers)."},
                 "offset": {**offset, "description": "The first member to return."},
                 "limit": {"type": "integer", "minimum": 1, "maximum": MAX_HITS, "default": 20,
                           "description": "Members per page."}},
                self._cluster_members, required=("cluster",)),
            Tool("add_documents", (
                "Add documents to the index, or replace those with the same id (unchanged ones"
                " are skipped). Each needs an id and its text, and may have a title and"
                " metadata (text, number, boolean or null values) that search's `where` filters"
                " on. They are found by the next search."),
                {"documents": {
                    "type": "array", "minItems": 1, "maxItems": MAX_WRITE_DOCUMENTS,
                    "items": {"type": "object", "required": ["id", "text"],
                              "additionalProperties": False, "properties": {
                                  "id": {"type": "string", "minLength": 1},
                                  "text": {"type": "string"},
                                  "title": {"type": "string"},
                                  "metadata": {"type": "object", "additionalProperties": {
                                      "type": ["string", "number", "boolean", "null"]}}}}}},
                self._add_documents, required=("documents",), writes=True),
            Tool("remove_documents", (
                "Delete documents from the index by id, with their vectors; says how many were"
                " deleted."),
                {"ids": {"type": "array", "minItems": 1, "maxItems": MAX_WRITE_DOCUMENTS,
                         "items": {"type": "string", "minLength": 1},
                         "description": "The ids of the documents to delete."}},
                self._remove_documents, required=("ids",), writes=True),
        ]

    def schema(self, tool: Tool) -> dict[str, Any]:
        names = [served.name for served in self.served]
        return tool.schema({"type": "string", "minLength": 1,
                            "description": f"The index: {', '.join(names)}. Default:"
                                           f" {names[0]}."})

    def _served(self, arguments: dict[str, Any]) -> Served:
        name = arguments.get("index") or self.served[0].name
        for served in self.served:
            if served.name == name:
                return served
        raise InputError(f"no index {name!r} is served here (served:"
                         f" {', '.join(s.name for s in self.served)}); start semsearch mcp with"
                         f" --index {name} to serve it")

    def _search(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        query = arguments["query"]
        options = SearchOptions(**{spec.name: arguments[spec.name] for spec in option_specs()
                                   if spec.name in arguments})
        hits = served.read(lambda index: index.search([query], options)[0])
        found = []
        for hit in hits:
            row = hit.to_dict()
            row["text"] = cut(row["text"], MAX_TEXT_CHARS)
            row["context"] = [{**c, "text": cut(c["text"], MAX_CONTEXT_CHARS)}
                              for c in row["context"]]
            row["resource"] = resource_uri(served.name, hit.document_id)
            found.append(row)
        return bounded({"index": served.name, "query": query}, "hits", found,
                       "ask for fewer hits (k) or less context")

    def _get_document(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        document_id, view = arguments["id"], arguments.get("view", "text")
        offset = arguments.get("offset", 0)
        document = served.read(lambda index: index.store.document(document_id))
        if document is None:
            raise InputError(f"no document {document_id!r} in index {served.name}")
        text, units = document["text"], document["units"]
        answer: dict[str, Any] = {
            "index": served.name, "id": document["id"], "title": document["title"],
            "source": document["source"], "metadata": document["metadata"],
            "resource": resource_uri(served.name, document["id"]), "characters": len(text),
            "unit_count": len(units), "view": view, "offset": offset}
        held = len(text) if view == "text" else len(units)
        if offset and offset >= held:
            raise InputError(f"offset {offset} is past the end: the document has {held:,}"
                             f" {'characters' if view == 'text' else 'units'}")
        if view == "text":
            end = offset + MAX_PAGE_CHARS
            answer["text"] = text[offset:end]
            answer["next_offset"] = end if end < len(text) else None
            return answer
        page: list[dict[str, Any]] = []
        used = 0
        for unit in units[offset:]:
            if page and used + len(unit["text"]) > MAX_PAGE_CHARS:
                break
            page.append({"ordinal": unit["ordinal"], "heading": unit["heading"],
                         "page": unit["page"], "text": cut(unit["text"], MAX_PAGE_CHARS)})
            used += len(unit["text"])
        end = offset + len(page)
        answer.update(units=page, next_offset=end if end < len(units) else None)
        return answer

    def _list_indexes(self, arguments: dict[str, Any]) -> dict[str, Any]:
        rows = []
        for served in self.served:
            manifest = served.read(lambda index: index.manifest)
            rows.append({"name": served.name, "path": os.path.abspath(served.index.path),
                         "documents": manifest["documents"], "units": manifest["units"],
                         "unit": manifest["unit"], "model": manifest["model"],
                         "writes": self.allow_writes})
        return {"indexes": rows, "default": self.served[0].name}

    def _index_info(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        encoder = served.index.encoder  # what runs the queries, as `info` cannot know
        return {"name": served.name, **served.read(lambda index: index.info()),
                "queries_run_on": {"backend": encoder.backend, "device": encoder.device,
                                   "precision": encoder.precision}}

    def _list_clusters(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        runs, run = served.read(lambda index: (index.store.cluster_runs(),
                                               index.store.cluster_run(arguments.get("run"))))
        clusters = [{"cluster": c["cluster"], "size": c["size"], "keywords": c["keywords"],
                     "nearest": [cut(item["text"], MAX_CONTEXT_CHARS)
                                 for item in c["representatives"]]}
                    for c in run["cluster_list"]]
        answer = {"index": served.name, "runs": runs, "run": run["id"], "method": run["method"],
                  "target": run["target"], "outliers": run["outliers"]}
        return bounded(answer, "clusters", clusters, "see one with cluster_members")

    def _cluster_members(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        found = served.read(lambda index: cluster_members(
            index, arguments["cluster"], offset=arguments.get("offset", 0),
            limit=arguments.get("limit", 20)))
        for member in found["members"]:
            member["text"] = cut(member["text"], MAX_TEXT_CHARS)
            member["resource"] = resource_uri(served.name, member["document_id"])
        return {"index": served.name, **found}

    def _add_documents(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        documents = [Document(id=d["id"], text=d["text"], source="mcp", title=d.get("title", ""),
                              metadata=d.get("metadata", {})) for d in arguments["documents"]]
        result = served.write(lambda index: add_documents(index, documents))
        return {"index": served.name, **result.to_dict()}

    def _remove_documents(self, arguments: dict[str, Any]) -> dict[str, Any]:
        served = self._served(arguments)
        ids = arguments["ids"]
        removed = served.write(lambda index: remove_documents(index, ids, paths=False))
        return {"index": served.name, "removed": removed}

    # ---- calls from the client -----------------------------------------------------------

    def call(self, name: str, arguments: dict[str, Any],
             headers: Mapping[str, str] | None) -> dict[str, Any]:
        """A tool's answer, or a SemsearchError with what was wrong; ``headers``: the HTTP
        request's (None over stdio, where the client started this process)."""
        tool = self.tools.get(name)
        if tool is None:
            writes = " (writes are off; start semsearch mcp with --allow-writes)" if name in (
                "add_documents", "remove_documents") else ""
            raise InputError(f"no tool {name!r}{writes}; tools: {', '.join(self.tools)}")
        problem = best_match(self.validators[name].iter_errors(arguments))
        if problem is not None:
            where = ".".join(str(part) for part in problem.absolute_path) or "arguments"
            raise InputError(f"{name}: {where}: {_short(problem.message)}")
        if tool.writes and headers is not None:
            from semsearch.server.guard import write_refusal

            refused = write_refusal(headers.get("authorization", ""), self.token)
            if refused is not None:
                raise InputError(refused[1])
        return json_safe(tool.answer(dict(arguments)))

    def resources(self, cursor: str | None) -> types.ListResourcesResult:
        """One page of the documents of every index, as resources; the cursor is
        ``INDEX_NUMBER:OFFSET``."""
        position, offset = _cursor(cursor)
        found: list[types.Resource] = []
        while position < len(self.served) and len(found) < RESOURCE_PAGE:
            served, wanted = self.served[position], RESOURCE_PAGE - len(found)
            rows = served.read(partial(document_titles, offset=offset, limit=wanted))
            found += [types.Resource(uri=resource_uri(served.name, document_id), name=document_id,
                                     title=title or None, mime_type="text/plain",
                                     description=f"A document of index {served.name}")
                      for document_id, title in rows]
            if len(rows) < wanted:
                position, offset = position + 1, 0
            else:
                offset += len(rows)
        more = position < len(self.served)
        return types.ListResourcesResult(resources=found,
                                         next_cursor=f"{position}:{offset}" if more else None)

    def read_resource(self, uri: str) -> types.ReadResourceResult:
        parts = urlsplit(uri)
        name, document_id = unquote(parts.netloc), unquote(parts.path[1:])
        if parts.scheme != SCHEME or not name or not document_id:
            raise InputError(f"not a semsearch resource: {uri!r} (they read"
                             f" {SCHEME}://INDEX/DOCUMENT_ID)")
        served = self._served({"index": name})
        document = served.read(lambda index: index.store.document(document_id))
        if document is None:
            raise InputError(f"no document {document_id!r} in index {served.name}")
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="text/plain", text=cut(document["text"], MAX_RESOURCE_CHARS))])


def bounded(answer: dict[str, Any], key: str, items: list[dict[str, Any]], advice: str
            ) -> dict[str, Any]:
    """``answer`` with ``items`` under ``key``, as many as keep its JSON within
    MAX_ANSWER_CHARS (at least one); the rest are counted in ``left_out``."""
    size = len(json.dumps(answer, ensure_ascii=False))
    kept: list[dict[str, Any]] = []
    for item in items:
        size += len(json.dumps(item, ensure_ascii=False, default=str)) + 2
        if kept and size > MAX_ANSWER_CHARS:
            break
        kept.append(item)
    answer[key] = kept
    if len(kept) < len(items):
        answer["left_out"] = (f"{len(items) - len(kept)} more {key}, left out to keep this"
                              f" answer under {MAX_ANSWER_CHARS:,} characters; {advice}")
    return answer


def _short(message: str, limit: int = 300) -> str:
    """A schema error's message on one line and bounded (it quotes the value it refused)."""
    message = " ".join(message.split())
    return message if len(message) <= limit else f"{message[:limit]}…"


def _cursor(cursor: str | None) -> tuple[int, int]:
    if cursor is None:
        return 0, 0
    position, _, offset = cursor.partition(":")
    if not (position.isdigit() and offset.isdigit()):
        raise InputError(f"not a cursor of this server: {cursor!r}")
    return int(position), int(offset)


def _failure(exc: Exception) -> str:
    """What went wrong, in one line: the library's message, or a pointer to the log."""
    if isinstance(exc, SemsearchError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return str(damaged_store_error(exc))
    log.error("a call failed", exc_info=exc)
    return f"internal error ({type(exc).__name__}); see the server log"


def create_server(catalogue: Catalogue) -> Server[Any]:
    """The MCP server (the SDK's low-level one: every schema is ours) over a catalogue."""

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(
            name=tool.name, description=tool.description, input_schema=catalogue.schema(tool),
            annotations=types.ToolAnnotations(read_only_hint=not tool.writes,
                                              destructive_hint=tool.name == "remove_documents",
                                              open_world_hint=False))
            for tool in catalogue.tools.values()])

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        headers = ctx.request.headers if ctx.request is not None else None
        try:
            answer = await anyio.to_thread.run_sync(catalogue.call, params.name,
                                                    params.arguments or {}, headers)
        except Exception as exc:  # a tool error, never a dead server
            return types.CallToolResult(content=[types.TextContent(type="text",
                                                                   text=_failure(exc))],
                                        is_error=True)
        text = json.dumps(answer, ensure_ascii=False, allow_nan=False)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=answer)

    async def list_resources(ctx: ServerRequestContext[Any, Any],
                             params: types.PaginatedRequestParams | None
                             ) -> types.ListResourcesResult:
        return await _answer_resource(catalogue.resources, params.cursor if params else None)

    async def list_templates(ctx: ServerRequestContext[Any, Any],
                             params: types.PaginatedRequestParams | None
                             ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            name="document", uri_template=f"{SCHEME}://{{index}}/{{document_id}}",
            mime_type="text/plain",
            description="A document of a served index by its id (percent-encoded), as a search"
                        f" hit's `resource` names it; its text, cut at"
                        f" {MAX_RESOURCE_CHARS:,} characters.")])

    async def read_resource(ctx: ServerRequestContext[Any, Any],
                            params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await _answer_resource(catalogue.read_resource, params.uri)

    return Server("semsearch", version=__version__, title="semsearch",
                  description="Semantic, keyword and hybrid search over local document indexes",
                  instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_resources=list_resources, on_list_resource_templates=list_templates,
                  on_read_resource=read_resource)


async def _answer_resource(work: Callable[[Any], T], argument: Any) -> T:
    """A resource request answered on a worker thread; a failure is a JSON-RPC error with its
    one-line message."""
    try:
        return await anyio.to_thread.run_sync(work, argument)
    except Exception as exc:
        code = types.INVALID_PARAMS if isinstance(exc, InputError) else types.INTERNAL_ERROR
        raise MCPError(code=code, message=_failure(exc)) from None


def run_stdio(server: Server[Any]) -> None:
    """Answer the client on stdin and stdout until it closes them (anything else the process
    prints goes to stderr: the SDK moves stdout's descriptor there while it serves)."""
    from mcp.server.stdio import stdio_server

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)


def run_http(server: Server[Any], port: int, allowed_hosts: Iterable[str] = ()) -> None:
    """Streamable HTTP at http://127.0.0.1:PORT/mcp, behind `serve`'s guard: a Host header this
    machine does not answer to is refused (DNS rebinding), as are oversized URLs and bodies."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from semsearch.server.guard import Guard, answered_hosts
    from semsearch.server.limits import UVICORN_LIMITS

    # The guard checks Host (with --allowed-host and this machine's names, which the SDK's own
    # check would refuse); the SDK still requires JSON bodies.
    app = server.streamable_http_app(transport_security=TransportSecuritySettings(
        enable_dns_rebinding_protection=False), host=HOST)
    guarded = Guard(app, hosts=answered_hosts(HOST, allowed_hosts), token=None)
    uvicorn.run(guarded, host=HOST, port=port, log_level="warning",
                h11_max_incomplete_event_size=UVICORN_LIMITS["h11_max_incomplete_event_size"])

