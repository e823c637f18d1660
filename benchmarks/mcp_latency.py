"""Warm `search` tool calls over stdio, and `semsearch mcp`'s start-up time to its first answer.

    python benchmarks/mcp_latency.py ../shared/data/scifact --split train
        [--index results/scifact-index] [--queries 300] [--starts 5] [--json out.json]

An agent client starts `semsearch mcp` once and calls its tools one at a time, so what counts is
one `search` call (hybrid, k=10) as the client sees it (JSON-RPC over the pipe, the argument
checks, the search, the answer's JSON) and, for the first answer, the whole start: Python, the
imports, the model and the index loaded and warmed, the initialize handshake. The server is the
installed command, driven by the MCP SDK's own client; `Index.search` on the same queries in this
process shows what the protocol adds. Targets (2 cores): p50 of a call <= 30 ms, first answer
<= 1.5 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, percentile, report
from semsearch.evaluation import read_beir
from semsearch.index import Index
from semsearch.search import SearchOptions

SEMSEARCH = str(Path(sys.executable).parent / "semsearch")  # the installed command
OPTIONS = {"k": 10, "mode": "hybrid"}


def server(index: str, log: IO[str]) -> AbstractAsyncContextManager:
    """`semsearch mcp --index INDEX` as an agent client starts it, its stderr in ``log``."""
    return stdio_client(StdioServerParameters(command=SEMSEARCH, args=["mcp", "--index", index],
                                              env=dict(os.environ)), errlog=log)


async def start(index: str, query: str, log: IO[str]) -> tuple[float, float]:
    """Seconds from spawning the server to its initialize answer and to its first search hits."""
    started = time.perf_counter()
    async with Client(server(index, log), mode="legacy") as client:
        initialized = time.perf_counter() - started
        result = await client.call_tool("search", {"query": query, **OPTIONS})
        assert not result.is_error and result.structured_content["hits"], result.content
        return initialized, time.perf_counter() - started


async def calls(index: str, queries: list[str], log: IO[str]) -> list[float]:
    """Milliseconds of each `search` call in one warm session, one query at a time."""
    async with Client(server(index, log), mode="legacy") as client:
        for text in queries[:20]:  # warm-up: SQLite pages, FAISS memory, the SDK's paths
            await client.call_tool("search", {"query": text, **OPTIONS})
        timings = []
        for text in queries:
            started = time.perf_counter()
            result = await client.call_tool("search", {"query": text, **OPTIONS})
            timings.append(1000 * (time.perf_counter() - started))
            assert not result.is_error, result.content
        return timings


def in_process(index_dir: str, queries: list[str]) -> list[float]:
    index = Index.open(index_dir)
    index.search(queries[:20], SearchOptions(**OPTIONS))
    timings = []
    for text in queries:
        started = time.perf_counter()
        index.search(text, SearchOptions(**OPTIONS))
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def row(measure: str, target: str, values: list[float]) -> dict:
    return {"measure": measure, "runs": len(values), "p50 ms": statistics.median(values),
            "p95 ms": percentile(values, 0.95), "mean ms": statistics.fmean(values),
            "target": target}


def main() -> None:
    parser = beir_arguments(__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300, help="search calls to time")
    parser.add_argument("--starts", type=int, default=5, help="fresh servers to time")
    args = parser.parse_args()
    if not Path(args.index).exists():
        beir_index(args.folder, args.split, args.index)[0].store.close()
    _, queries, _ = read_beir(args.folder, args.split)
    texts = list(queries.values())[:args.queries]
    # Byte-compiled first, as `pip install` leaves an installed package.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(semsearch.__file__).parent)],
                   check=True)
    with tempfile.TemporaryFile("w+") as log:
        starts = [anyio.run(start, args.index, text, log) for text in texts[:args.starts]]
        timings = anyio.run(calls, args.index, texts, log)
        log.seek(0)
        banner = next(line.strip() for line in log if line.startswith("serving "))
    rows = [row("search tool call over stdio (hybrid, k=10)", "<= 30", timings),
            row("Index.search in this process (hybrid, k=10)", "", in_process(args.index, texts)),
            row("start-up to the initialize answer", "", [1000 * s for s, _ in starts]),
            row("start-up to the first search answer", "<= 1500", [1000 * f for _, f in starts])]
    cores = len(os.sched_getaffinity(0))
    print(banner)
    report(f"semsearch mcp on {args.index} ({cores} cores)", rows, args.json_path,
           {**vars(args), "server": banner})


if __name__ == "__main__":
    main()
