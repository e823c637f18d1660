"""`semsearch mcp` driven by the MCP SDK's own client, as an agent drives it: over stdio (the
server a subprocess, as agent clients start it) and over streamable HTTP, on a real index made
with the fake model. Every tool is called, its hits checked against ``Index.search`` with the
same options, and bad calls must come back as tool errors while the server goes on answering."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from conftest import free_port, wait_until_serving

mcp = pytest.importorskip("mcp", reason="the MCP SDK is not installed (semsearch[mcp])")
import httpx2  # noqa: E402  (installed with mcp)
from anyio.from_thread import BlockingPortal, start_blocking_portal  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from semsearch.index import Index  # noqa: E402
from semsearch.mcp_server import (  # noqa: E402
    MAX_CONTEXT_CHARS,
    MAX_HITS,
    MAX_PAGE_CHARS,
    MAX_TEXT_CHARS,
    Catalogue,
    cut,
)
from semsearch.readers import Document, ReadOptions  # noqa: E402
from semsearch.search import SearchOptions, option_specs  # noqa: E402
from semsearch.service import (  # noqa: E402
    add_documents,
    cluster,
    document_titles,
    index_files,
    open_or_create,
    prepare_queries,
)

TOKEN = "test-token"
READ_TOOLS = ["search", "get_document", "list_indexes", "index_info", "list_clusters",
              "cluster_members"]
WRITE_TOOLS = ["add_documents", "remove_documents"]
HEAVY = {"torch", "transformers", "sentence_transformers", "sklearn", "scipy", "umap", "numba"}
LONG_SENTENCE = " ".join(f"lighthouse{n % 7} keeper{n % 5} log" for n in range(120))
LONG_DOCUMENT = "\n\n".join(f"Paragraph {n} is about the tides of the northern sea and the"
                            " lighthouse keepers who watch them through every winter storm."
                            for n in range(260))
NOTES = {
    "bread.md": "---\ntopic: food\n---\n# Baking\n\n## Dough\n\nFlour, water and yeast make"
                " dough. Knead it for ten minutes.\n\n## Oven\n\nBake the loaf in a hot oven"
                " until the crust is golden.\n",
    "space.md": "---\ntopic: space\n---\n# The night sky\n\nThe Moon orbits the Earth every"
                " month. Mars is called the red planet. Comets have tails of gas and dust.\n",
    "pets.md": "---\ntopic: animals\n---\n# Pets\n\nCats sleep for most of the day. Dogs need a"
               " walk every morning. Parrots can learn to repeat words.\n",
    "lighthouse.md": f"---\ntopic: sea\n---\n# Lighthouse\n\n{LONG_SENTENCE}\n",
    "tides.md": f"---\ntopic: sea\n---\n{LONG_DOCUMENT}\n",
}
# Per search option: a value unlike its default (as tests/test_options.py has them).
OPTION_CASES = {"k": {"k": 3}, "mode": {"mode": "keyword"}, "where": {"where": {"topic": "food"}},
                "by_document": {"by_document": True}, "cluster": {"cluster": "0"},
                "min_score": {"min_score": 0.2}, "context": {"context": 1},
                "effort": {"effort": 2}, "fusion": {"fusion": "rrf"},
                "rrf_k": {"fusion": "rrf", "rrf_k": 1.0}, "alpha": {"alpha": 0.3}}


@pytest.fixture(scope="module")
def notes_index(tmp_path_factory, fake_model) -> Path:
    """Markdown notes (headings, metadata, a long sentence, a long document) in an index made
    with the fake model, clustered, with the export that lets queries run without torch."""
    folder = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    path = tmp_path_factory.mktemp("mcp") / "notes"
    index = Index.create(path, model=str(fake_model))
    index_files(index, [str(folder)], ReadOptions())
    cluster(index, k=2, reduction="none")
    prepare_queries(index)
    index.store.close()
    return path


@pytest.fixture(scope="module")
def reference(notes_index) -> Index:
    """The same index opened here, for the hits `Index.search` gives."""
    return Index.open(notes_index)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    """An event loop on a thread, so that synchronous tests drive the async SDK client."""
    with start_blocking_portal() as portal:
        yield portal


class Session:
    """An MCP client session, called from synchronous tests."""

    def __init__(self, portal: BlockingPortal, client: Client, log: Path | None = None):
        self.portal, self.client, self.log = portal, client, log

    def call(self, name: str, arguments: dict):
        return self.portal.call(self.client.call_tool, name, arguments)

    def answer(self, name: str, **arguments) -> dict:
        result = self.call(name, arguments)
        assert not result.is_error, result.content[0].text
        assert json.loads(result.content[0].text) == result.structured_content
        return result.structured_content

    def error(self, name: str, **arguments) -> str:
        result = self.call(name, arguments)
        assert result.is_error, result.structured_content
        [content] = result.content
        assert "\n" not in content.text and "Traceback" not in content.text
        return content.text

    def search(self, query: str, **options) -> list[dict]:
        """The hits, without the resource URI (which `Index.search` has no part in)."""
        return [{key: value for key, value in hit.items() if key != "resource"}
                for hit in self.answer("search", query=query, **options)["hits"]]


@contextmanager
def session(portal: BlockingPortal, transport, mode: str = "auto",
            log: Path | None = None) -> Iterator[Session]:
    with portal.wrap_async_context_manager(Client(transport, mode=mode)) as client:
        yield Session(portal, client, log)


def stdio_server(path: Path, log: Path, *options: str):
    """`python -m semsearch mcp` as a subprocess on stdio, its imports and errors in ``log``."""
    parameters = StdioServerParameters(
        command=sys.executable, args=["-X", "importtime", "-m", "semsearch", "mcp", "--index",
                                      str(path), *options], env=dict(os.environ))
    return stdio_client(parameters, errlog=log.open("w"))


@pytest.fixture(scope="module")
def stdio(portal, notes_index, tmp_path_factory) -> Iterator[Session]:
    """The read-only server over stdio, connected with the initialize handshake that agent
    clients use today."""
    log = tmp_path_factory.mktemp("stdio") / "server.log"
    with session(portal, stdio_server(notes_index, log), mode="legacy", log=log) as connected:
        yield connected


def document_ids(reference: Index) -> list[str]:
    return [document_id for document_id, _ in document_titles(reference, 0, 100)]


def expected_hits(reference: Index, query: str, **options) -> list[dict]:
    """`Index.search`'s hits with the server's bounds: texts cut, each with its marker."""
    hits = [hit.to_dict() for hit in reference.search([query], SearchOptions(**options))[0]]
    for hit in hits:
        hit["text"] = cut(hit["text"], MAX_TEXT_CHARS)
        hit["context"] = [{**c, "text": cut(c["text"], MAX_CONTEXT_CHARS)} for c in hit["context"]]
    return hits


def test_initialise_and_list_tools_resources_and_templates(stdio, reference):
    assert stdio.client.server_info.name == "semsearch"
    tools = {tool.name: tool for tool in stdio.portal.call(stdio.client.list_tools).tools}
    assert list(tools) == READ_TOOLS  # no write tool without --allow-writes
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80
        assert tool.input_schema["type"] == "object" and tool.annotations.read_only_hint
    search = tools["search"].input_schema
    assert set(search["properties"]) == {"query", "index"} | {s.name for s in option_specs()}
    assert search["properties"]["k"]["maximum"] == MAX_HITS
    assert search["properties"]["mode"]["enum"] == ["dense", "keyword", "hybrid"]
    resources = stdio.portal.call(stdio.client.list_resources)
    assert [r.name for r in resources.resources] == document_ids(reference)
    assert resources.next_cursor is None
    assert all(r.uri.startswith("semsearch://notes/") for r in resources.resources)
    [template] = stdio.portal.call(stdio.client.list_resource_templates).resource_templates
    assert template.uri_template == "semsearch://{index}/{document_id}"


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_each_search_option_gives_the_hits_of_index_search(stdio, reference, name):
    options = OPTION_CASES[name]
    expected = expected_hits(reference, "bake the bread in the oven", **options)
    assert expected, options
    assert stdio.search("bake the bread in the oven", **options) == expected


def test_every_search_option_has_a_case():
    assert set(OPTION_CASES) == {spec.name for spec in option_specs()}


@pytest.mark.parametrize("options", [
    {"query": "red planet"}, {"query": "moon", "mode": "dense", "k": 100},
    {"query": 'bread" OR * NEAR(', "mode": "keyword"},  # FTS5 syntax is words, not operators
    {"query": "dough", "where": {"topic": "' OR '1'='1"}},  # a hostile value matches nothing
    {"query": "dough", "where": {"topic": "food"}, "context": 2, "by_document": True}])
def test_hits_match_index_search_for_hostile_queries_and_filters_too(stdio, reference, options):
    query = options.pop("query")
    assert stdio.search(query, **options) == expected_hits(reference, query, **options)


def test_a_long_text_is_cut_with_a_marker(stdio, reference):
    options = {"k": 1, "mode": "keyword"}
    [hit] = stdio.answer("search", query="lighthouse3 keeper2 log", **options)["hits"]
    [[full]] = reference.search(["lighthouse3 keeper2 log"], SearchOptions(**options))
    assert LONG_SENTENCE in full.text and len(full.text) > MAX_TEXT_CHARS
    assert hit["text"] == (f"{full.text[:MAX_TEXT_CHARS]} […{len(full.text) - MAX_TEXT_CHARS:,}"
                           " more characters; get_document reads them]")


def test_get_document_pages_through_a_long_text_and_its_units(stdio, reference):
    document_id = next(i for i in document_ids(reference) if i.endswith("tides.md"))
    pages, offset = [], 0
    while offset is not None:
        page = stdio.answer("get_document", id=document_id, offset=offset)
        assert len(page["text"]) <= MAX_PAGE_CHARS
        pages.append(page["text"])
        offset = page["next_offset"]
    stored = reference.store.document(document_id)
    assert len(pages) > 1 and "".join(pages) == stored["text"]
    assert page["metadata"] == {"topic": "sea"} and page["characters"] == len(stored["text"])
    units, offset = [], 0
    while offset is not None:
        page = stdio.answer("get_document", id=document_id, view="units", offset=offset)
        units += page["units"]
        offset = page["next_offset"]
    assert [u["text"] for u in units] == [u["text"] for u in stored["units"]]
    bread = next(i for i in document_ids(reference) if i.endswith("bread.md"))
    headings = [u["heading"] for u in stdio.answer("get_document", id=bread,
                                                   view="units")["units"]]
    assert "Baking › Oven" in headings


def test_a_hit_opens_as_a_resource(stdio, reference):
    [hit] = stdio.answer("search", query="red planet", k=1)["hits"]
    [content] = stdio.portal.call(stdio.client.read_resource, hit["resource"]).contents
    assert content.text == reference.store.document(hit["document_id"])["text"]
    with pytest.raises(MCPError, match="no document 'nowhere' in index notes"):
        stdio.portal.call(stdio.client.read_resource, "semsearch://notes/nowhere")
    with pytest.raises(MCPError, match="not a semsearch resource"):
        stdio.portal.call(stdio.client.read_resource, "file:///etc/passwd")
    assert stdio.answer("list_indexes")["default"] == "notes"  # still answering


def test_list_indexes_and_index_info(stdio, reference):
    [row] = stdio.answer("list_indexes")["indexes"]
    manifest = reference.manifest
    assert row["name"] == "notes" and row["writes"] is False
    assert (row["documents"], row["units"]) == (manifest["documents"], manifest["units"])
    info = stdio.answer("index_info", index="notes")
    assert info.pop("queries_run_on") == {"backend": "onnx", "device": "cpu",
                                          "precision": reference.encoder.precision}
    assert info == {"name": "notes", **reference.info()}


def test_clusters_and_their_members(stdio, reference):
    listed = stdio.answer("list_clusters")
    assert [run["id"] for run in listed["runs"]] == [1] and listed["run"] == 1
    assert [c["cluster"] for c in listed["clusters"]] == [0, 1]
    members, offset = [], 0
    while offset is not None:
        page = stdio.answer("cluster_members", cluster="1:0", offset=offset, limit=7)
        assert len(page["members"]) <= 7
        members += page["members"]
        offset = page["next_offset"]
    assert len(members) == page["size"] == listed["clusters"][0]["size"]
    inside = {m["unit_id"] for m in members}
    hits = stdio.answer("search", query="the sea", cluster="0", k=MAX_HITS)["hits"]
    assert hits and {hit["unit_id"] for hit in hits} <= inside


BAD_CALLS = [
    ("search", {"query": "bread", "k": MAX_HITS + 1}, "search: k: 101 is greater than the"
                                                      " maximum of 100"),
    ("search", {"query": "bread", "k": "ten"}, "k: 'ten' is not of type 'integer'"),
    ("search", {"query": "bread", "mode": "fuzzy"}, "mode: 'fuzzy' is not one of"),
    ("search", {"query": "bread", "colour": "red"}, "('colour' was unexpected)"),
    ("search", {}, "'query' is a required property"),
    ("search", {"query": ""}, "query: '' should be non-empty"),
    ("search", {"query": "bread", "where": {"topic": 1}}, "where.topic: 1 is not of type"),
    ("search", {"query": "bread", "where": {'x") or 1=1 --': "y"}}, "invalid field name"),
    ("search", {"query": "bread", "cluster": "one"}, "expects ID or RUN:ID, got 'one'"),
    ("search", {"query": "bread", "cluster": "7:0"}, "no cluster run 7"),
    ("search", {"query": "bread", "alpha": 2}, "alpha: 2 is greater than the maximum of 1"),
    ("search", {"query": "bread", "rrf_k": 0}, "rrf_k: 0 is less than or equal to the minimum"),
    ("search", {"query": "bread", "index": "elsewhere"}, "no index 'elsewhere' is served"),
    ("get_document", {"id": "missing"}, "no document 'missing' in index notes"),
    ("list_clusters", {"run": 99}, "no cluster run 99"),
    ("cluster_members", {"cluster": "9"}, "run 1 has no cluster 9"),
    ("cluster_members", {"cluster": "a:b"}, "expects ID or RUN:ID"),
    ("no_such_tool", {}, "no tool 'no_such_tool'"),
    ("add_documents", {"documents": [{"id": "x", "text": "y"}]}, "--allow-writes"),
    ("remove_documents", {"ids": ["x"]}, "--allow-writes"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), BAD_CALLS)
def test_a_bad_call_is_a_tool_error_and_the_server_goes_on(stdio, tool, arguments, message):
    assert message in stdio.error(tool, **arguments)
    assert stdio.search("red planet", k=1)  # still answering


def test_the_server_runs_without_torch(stdio):
    stdio.answer("search", query="golden crust", k=2)
    lines = stdio.log.read_text().splitlines()
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines
                if line.startswith("import time:")}
    assert "onnxruntime" in imported and "mcp" in imported
    assert not imported & HEAVY, sorted(imported & HEAVY)
    assert any(line.startswith("serving notes (") and "writes off" in line for line in lines)


def test_with_allow_writes_an_added_document_is_found_by_the_next_search(
        portal, notes_index, tmp_path):
    path = tmp_path / "notes"
    shutil.copytree(notes_index, path)
    with session(portal, stdio_server(path, tmp_path / "server.log", "--allow-writes")) as s:
        tools = [tool.name for tool in portal.call(s.client.list_tools).tools]
        assert tools == READ_TOOLS + WRITE_TOOLS
        assert not s.search("quokka", mode="keyword")
        quokka = {"id": "wildlife/quokka", "title": "Quokkas", "metadata": {"island": "Rottnest"},
                  "text": "The quokka is a small marsupial that lives on Rottnest Island."}
        added = s.answer("add_documents", documents=[quokka])
        assert (added["added"], added["units"]) == (1, 1)
        [hit] = s.search("quokka marsupial", k=1, where={"island": "Rottnest"})
        assert hit["document_id"] == "wildlife/quokka" and hit["title"] == "Quokkas"
        assert s.answer("add_documents", documents=[quokka])["unchanged"] == 1
        empty_id = s.error("add_documents", documents=[{"id": "", "text": "x"}])
        assert "documents.0.id: '' should be non-empty" in empty_id
        assert s.answer("remove_documents", ids=["wildlife/quokka"])["removed"] == 1
        assert not [h for h in s.search("quokka marsupial") if "quokka" in h["document_id"]]


@pytest.fixture(scope="module")
def http_url(notes_index, tmp_path_factory) -> Iterator[str]:
    """`semsearch mcp --http --allow-writes` on a copy of the index, stopped at the end."""
    path = tmp_path_factory.mktemp("http") / "notes"
    shutil.copytree(notes_index, path)
    port = free_port()
    log = path.parent / "server.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "semsearch", "mcp", "--index", str(path), "--http", "--port",
             str(port), "--allow-writes"], stdin=subprocess.DEVNULL, stderr=errors,
            env={**os.environ, "SEMSEARCH_TOKEN": TOKEN})
    wait_until_serving(
        process, lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close(),
        lambda: f"semsearch mcp --http did not start: {log.read_text()[-2000:]}")
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(timeout=30)


@asynccontextmanager
async def http_transport(url: str, token: str | None):
    """The SDK's streamable HTTP transport, with a bearer token when one is given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, streamable_http_client(
            url, http_client=http) as streams:
        yield streams


def test_http_answers_the_same_tools_and_hits(portal, http_url, reference):
    with session(portal, http_transport(http_url, None)) as s:
        tools = [tool.name for tool in portal.call(s.client.list_tools).tools]
        assert tools == READ_TOOLS + WRITE_TOOLS
        assert s.search("red planet", k=3) == expected_hits(reference, "red planet", k=3)
        assert "k: 101 is greater" in s.error("search", query="x", k=101)
        [hit] = s.answer("search", query="red planet", k=1)["hits"]
        [content] = portal.call(s.client.read_resource, hit["resource"]).contents
        assert "red planet" in content.text


@pytest.mark.parametrize("token", [None, "wrong"])
def test_http_refuses_writes_without_the_token(portal, http_url, token):
    with session(portal, http_transport(http_url, token)) as s:
        message = s.error("add_documents", documents=[{"id": "x", "text": "never written"}])
        assert message == "a valid bearer token is needed to write"
        assert "bearer token" in s.error("remove_documents", ids=["x"])
        assert not s.search("never written", mode="keyword")


def test_http_writes_with_the_token_are_found_by_the_next_search(portal, http_url):
    with session(portal, http_transport(http_url, TOKEN)) as s:
        s.answer("add_documents", documents=[{"id": "numbat", "text": "A numbat eats termites."}])
        assert [h["document_id"] for h in s.search("numbat termites", k=1)] == ["numbat"]
        assert s.answer("remove_documents", ids=["numbat"])["removed"] == 1
    with session(portal, http_transport(http_url, None)) as s:  # another client sees it gone
        assert not s.search("numbat", mode="keyword")


def test_http_refuses_a_host_this_machine_does_not_answer_to(http_url):
    request = urllib.request.Request(http_url, data=b"{}", method="POST", headers={
        "Host": "rebound.example", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "--allowed-host" in json.loads(refused.value.read())["error"]


def test_the_command_refuses_what_cannot_work(run, monkeypatch, tmp_path):
    monkeypatch.delenv("SEMSEARCH_TOKEN", raising=False)
    assert "--port and --allowed-host go with --http" in run("mcp", "--port", "9000",
                                                             expect=2).stderr
    assert "--allow-writes needs a token" in run("mcp", "--http", "--allow-writes",
                                                 expect=1).stderr
    assert "would both be served as 'notes'" in run(
        "mcp", "-i", tmp_path / "a" / "notes", "-i", tmp_path / "b" / "notes", expect=2).stderr
    assert "no index at" in run("mcp", "-i", tmp_path / "missing", expect=1).stderr


def test_a_sharded_index_is_served_and_listed_page_by_page(tmp_path, fake_model):
    """The tools and the resource list over a sharded index, in this process (no transport):
    documents are listed shard by shard, each once, whatever the page size."""
    index = open_or_create(tmp_path / "sharded", shards=3, model=str(fake_model))
    add_documents(index, [Document(id=f"note-{n}", title=f"Note {n}", text=f"Note {n} is about"
                                   f" {'tides' if n % 2 else 'bread'} and item{n}.")
                          for n in range(11)])
    pages = [document_titles(index, offset, 4) for offset in range(0, 12, 4)]
    assert [len(page) for page in pages] == [4, 4, 3]
    assert sorted(title for page in pages for _, title in page) == sorted(
        f"Note {n}" for n in range(11))
    catalogue = Catalogue({"sharded": index})
    listed = catalogue.resources(None)
    assert listed.next_cursor is None
    assert sorted(r.name for r in listed.resources) == sorted(f"note-{n}" for n in range(11))
    hits = catalogue.call("search", {"query": "item7 tides", "k": 3}, None)["hits"]
    assert hits[0]["document_id"] == "note-7"
    assert [h["unit_id"] for h in hits] == [
        h.unit_id for h in index.search(["item7 tides"], SearchOptions(k=3))[0]]
    document = catalogue.call("get_document", {"id": "note-7"}, None)
    assert document["text"] == "Note 7 is about tides and item7."
