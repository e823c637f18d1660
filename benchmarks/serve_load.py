"""Load on `semsearch serve` over loopback: N concurrent clients for a fixed time.

    python benchmarks/serve_load.py ../shared/data/scifact [--index results/scifact-index]
        [--clients 8] [--seconds 30] [--modes dense,hybrid] [--backend torch|onnx]
        [--precision auto|fp32|int8] [--json out.json]

Starts `semsearch serve` on 127.0.0.1 (a free port), warms it up, then lets each client send
GET /search?q=...&k=10 (SciFact train queries, each client from its own offset) on a kept-alive
connection, one request after another, for --seconds; then one client alone, as long.
Every non-200 answer or failed request counts as an error. The server is stopped at the end.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import beir_arguments, beir_index, percentile, report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: str, port: int, encoder: list[str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "semsearch", *encoder, "serve", "--index",
                                index, "--port", str(port), "--no-access-log"])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("semsearch serve did not start")


def load(port: int, queries: list[str], mode: str, clients: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        position = number * len(queries) // clients
        while time.monotonic() < stop:
            query = queries[position % len(queries)]
            position += 1
            path = "/search?" + urllib.parse.urlencode({"q": query, "k": 10, "mode": mode})
            started = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                ok = response.status == 200 and len(json.loads(body)["hits"]) == 10
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            latencies[number].append(1000 * (time.perf_counter() - started))
            errors[number] += not ok

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = [value for found in latencies for value in found]
    return {"mode": mode, "clients": clients, "seconds": round(elapsed, 1),
            "requests": len(every), "errors": sum(errors),
            "req/s": len(every) / elapsed, "p50 ms": statistics.median(every),
            "p95 ms": percentile(every, 0.95), "p99 ms": percentile(every, 0.99)}


def main() -> None:
    parser = beir_arguments(__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--modes", default="dense", help="comma-separated search modes")
    parser.add_argument("--backend", help="the server's encoder backend (default: serve's)")
    parser.add_argument("--precision", help="the server's encoder precision (default: serve's)")
    args = parser.parse_args()
    if Path(args.index, "store.db").exists():
        from semsearch.evaluation import read_beir

        queries = list(read_beir(args.folder, args.split)[1].values())
    else:
        queries = list(beir_index(args.folder, args.split, args.index)[1].values())
    port = free_port()
    encoder = [f"--{name}={value}" for name, value in
               (("backend", args.backend), ("precision", args.precision)) if value]
    server = start_server(args.index, port, encoder)
    rows = []
    try:
        for mode in args.modes.split(","):
            load(port, queries[:40], mode, 2, 3)  # warm-up: pages, allocator, batch shapes
            for clients in (args.clients, 1):
                rows.append({"encoder": " ".join(encoder) or "serve's default",
                             **load(port, queries, mode, clients, args.seconds)})
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(f"semsearch serve under load on {args.index} (loopback, k=10)", rows,
           args.json_path, vars(args))


if __name__ == "__main__":
    main()
