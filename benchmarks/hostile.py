"""Hostile input, replayed: every case of the hostile probe (issue 20) against the real CLI and a
real `semsearch serve` on 127.0.0.1, with each case's outcome and peak memory.

    python benchmarks/hostile.py [--cases NAME,...] [--sweep] [--json out.json]

Outcomes: "clear error" (a non-zero exit with one line on stderr, or a 4xx JSON answer) and
"handled" (it worked, with a warning where one is due) are the good ones; the table exists to
catch "TRACEBACK", "SILENT CORRUPTION" (exit 0 with an index that `check` finds inconsistent,
or wrong hits without an error), "OVER MEMORY" (peak RSS above 1 GB for one input or request;
for the server, growth over its resting RSS) and "UNEXPECTED" (anything else). For server cases
`health ms` is the slowest `/health` answer while the hostile request ran (target: 100 ms).

Everything runs in a temporary folder and, for the disk-full cases, in small tmpfs mounts
(Linux, root); the server listens on 127.0.0.1 only, except the one case that checks the Host
header on 0.0.0.0, which still sends its requests to 127.0.0.1. Every request loop is bounded.
`--sweep` runs the disk-full case at a free-space level every 4 KB across the last 128 KB of a
save (33 levels) instead of five.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import report

SAMPLE = Path(__file__).resolve().parent.parent / "semsearch" / "sample"
MEMORY_LIMIT_MB = 1024
HEALTH_TARGET_MS = 100
TOKEN = "hostile-probe-token"
BREAD = "how long should dough rise before baking"  # the sample's answer: the rising sentence


@dataclass
class Ran:
    rc: int
    stdout: str
    stderr: str
    peak_mb: float


def semsearch(*args: str, stdin: bytes | Callable[[], Iterator[bytes]] | None = None,
              cwd: Path | None = None, timeout: float = 600) -> Ran:
    """One CLI process; its own peak RSS from wait4 (not the largest of all children)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", *map(str, args)], cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    output: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n, s=s: output.__setitem__(n, s.read()))
               for n, s in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    if stdin is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            for block in (stdin() if callable(stdin) else [stdin]):
                process.stdin.write(block)
            process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    return Ran(process.returncode, output["out"].decode(errors="replace"),
               output["err"].decode(errors="replace"), usage.ru_maxrss / 1024)


def outcome(ran: Ran, ok_if_zero: Callable[[], bool] = lambda: True,
            error_ok: Callable[[], bool] = lambda: True) -> str:
    """Judge one CLI run: one-line error or success, never a traceback or a silent wrong."""
    if "Traceback" in ran.stderr:
        return "TRACEBACK"
    if ran.peak_mb > MEMORY_LIMIT_MB:
        return "OVER MEMORY"
    if ran.rc == 0:
        return "handled" if ok_if_zero() else "SILENT CORRUPTION"
    errors = [line for line in ran.stderr.splitlines() if line.startswith("Error")]
    if len(errors) == 1 and error_ok():
        return "clear error"
    return "UNEXPECTED"


def consistent(index: Path) -> bool:
    ran = semsearch("check", "-i", index, "--json")
    return ran.rc == 0 and json.loads(ran.stdout)["consistent"]


def top_text(index: Path, query: str, *options: str) -> str | None:
    ran = semsearch("query", "-i", index, query, "-k", "1", "--mode", "dense", "--json",
                    *options)
    if ran.rc != 0:
        return None
    hits = json.loads(ran.stdout)[0]["hits"]
    return hits[0]["text"] if hits else ""


def strict_json(text: str) -> bool:
    def refuse(constant: str):
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
        return True
    except ValueError:
        return False


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(folder.iterdir()) if file.is_file()
            and not file.name.endswith(("-wal", "-shm", ".lock"))}


# ---- tmpfs ------------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(parent: Path, megabytes: int) -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(dir=parent, prefix="tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)],
                   check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        mount.rmdir()


def leave_free(mount: Path, free_bytes: int) -> None:
    """Fill the mount so that ``free_bytes`` stay free (to the page)."""
    stats = os.statvfs(mount)
    available = stats.f_bavail * stats.f_frsize
    with (mount / "filler").open("ab") as handle:
        handle.write(b"\0" * max(0, available - free_bytes))


def can_mount(parent: Path) -> bool:
    try:
        with tmpfs(parent, 1):
            return True
    except (subprocess.CalledProcessError, OSError):
        return False


# ---- the server -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`semsearch serve` in a subprocess; requests go to 127.0.0.1 only."""

    def __init__(self, index: Path, *options: str):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "semsearch", "serve", "--index", str(index), "--port",
             str(self.port), "--no-access-log", *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"semsearch serve failed: {self.process.stderr.read().decode()}")
            try:
                if self.request("GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit("semsearch serve did not start")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 120) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def rss_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    def reset_peak(self) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def hostile(self, send: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes, float, float]:
        """Send one hostile request while another thread asks /health every 20 ms; returns
        (status, body, slowest /health in ms, RSS growth in MB)."""
        self.reset_peak()
        resting = self.rss_mb("VmRSS")
        slowest, done = [0.0], threading.Event()

        def probe() -> None:
            for _ in range(20_000):  # bounded: 20,000 probes at most
                if done.is_set():
                    return
                started = time.perf_counter()
                with contextlib.suppress(OSError):
                    self.request("GET", "/health", timeout=120)
                slowest[0] = max(slowest[0], 1000 * (time.perf_counter() - started))
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            status, body = send()
        except OSError as exc:
            status, body = 0, str(exc).encode()
        finally:
            done.set()
            prober.join()
        return status, body, slowest[0], self.rss_mb("VmHWM") - resting

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def raw_request(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Bytes as sent, for requests http.client will not make (a 1 MB request line)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        with contextlib.suppress(OSError):
            connection.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def server_outcome(status: int, body: bytes, health_ms: float, growth_mb: float,
                   expected: set[int]) -> str:
    if growth_mb > MEMORY_LIMIT_MB:
        return "OVER MEMORY"
    if status in expected and (status < 400 or _json_error(body)):
        return "clear error" if status >= 400 else "handled"
    if status >= 500 or status == 0:
        return "TRACEBACK" if b"Traceback" in body else "UNEXPECTED"
    return "UNEXPECTED"


def _json_error(body: bytes) -> bool:
    try:
        return "error" in json.loads(body)
    except ValueError:
        return False


# ---- the cases --------------------------------------------------------------------------------

class Cases:
    def __init__(self, work: Path, sweep: bool):
        self.work = work
        self.sweep = sweep
        self.rows: list[dict] = []
        self.base = work / "base"
        built = semsearch("index", "-i", self.base, SAMPLE)
        if built.rc != 0:
            raise SystemExit(f"could not build the sample index: {built.stderr}")
        self.bread = top_text(self.base, BREAD)

    def add(self, case: str, result: str, detail: str, peak_mb: float | None = None,
            health_ms: float | None = None) -> None:
        row = {"case": case, "outcome": result,
               "peak MB": "-" if peak_mb is None else round(peak_mb),
               "health ms": "-" if health_ms is None else round(health_ms),
               "detail": detail[:160]}
        self.rows.append(row)
        print(f"  {case}: {result} ({detail[:160]})", flush=True)

    def copy(self, name: str, into: Path | None = None) -> Path:
        target = (into or self.work) / name
        shutil.copytree(self.base, target)
        return target

    @staticmethod
    def last_line(ran: Ran) -> str:
        lines = [line for line in ran.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ran.stdout.strip().splitlines()[-1] if ran.stdout else ""

    # 1. a full disk during the save, with a reader holding the index open
    def disk_full(self) -> None:
        if not can_mount(self.work):
            self.add("disk full during save", "skipped", "cannot mount tmpfs here (needs root)")
            return
        note = self.work / "new-note.txt"
        note.write_text("Rye bread keeps for a week wrapped in a linen cloth.")
        with tmpfs(self.work, 64) as mount:  # how many bytes does a good run use at the peak?
            probe = self.copy("probe", mount)
            vectors = max(f.stat().st_size for f in probe.glob("vectors.*.faiss"))
            shutil.rmtree(probe)
        # free space from the vector file + 128 KB (room to spare) down to the vector file
        # alone: the save runs out of disk within its last 128 KB
        levels = range(0, (128 << 10) + 1, 4096) if self.sweep else range(0, (128 << 10) + 1,
                                                                          32 << 10)
        silent, errors, fine, broken = 0, 0, 0, 0
        peak = 0.0
        for short in levels:
            with tmpfs(self.work, 64) as mount:
                index = self.copy("index", mount)
                before = tree_bytes(index)
                holder = sqlite3.connect(index / "store.db")  # a reader, as `serve` would be
                holder.execute("select count(*) from units").fetchone()
                leave_free(mount, vectors + (128 << 10) - short)
                ran = semsearch("index", "-i", index, note)
                peak = max(peak, ran.peak_mb)
                (mount / "filler").unlink()
                ok = consistent(index)
                holder.close()
                if "Traceback" in ran.stderr:
                    broken += 1
                elif ran.rc == 0:
                    found = top_text(index, "how long does rye bread keep") or ""
                    if ok and "Rye bread" in found:
                        fine += 1
                    else:
                        silent += 1
                elif ok and tree_bytes(index) == before and ran.stderr.count("Error") == 1:
                    errors += 1
                else:
                    silent += 1
        result = "SILENT CORRUPTION" if silent else "TRACEBACK" if broken else (
            "clear error" if errors else "handled")
        self.add("disk full during save", result,
                 f"{len(levels)} free-space levels, {vectors:,} B vector file + 0-128 KB:"
                 f" {fine} indexed, {errors} one-line errors (index unchanged), {silent} silent"
                 f" corruptions, {broken} tracebacks", peak)
        self.disk_full_compact_and_create(mount_size=8)

    def disk_full_compact_and_create(self, mount_size: int) -> None:
        vectors = max(f.stat().st_size for f in self.base.glob("vectors.*.faiss"))
        # from 4 KB (no room to open the store) through the vector file's rebuild to VACUUM,
        # which needs room for a copy of the store, every 8 KB up to the vector file + 96 KB
        counts = {"compacted": 0, "one-line errors (index unchanged)": 0, "silent": 0,
                  "tracebacks": 0}
        peak, last = 0.0, ""
        for free in (4096, *range(vectors, vectors + (96 << 10) + 1, 8192)):
            with tmpfs(self.work, mount_size) as mount:
                index = self.copy("compact", mount)
                semsearch("remove", "-i", index, SAMPLE / "health.txt")
                before = semsearch("query", "-i", index, BREAD, "--json").stdout
                leave_free(mount, free)
                ran = semsearch("compact", "-i", index)
                (mount / "filler").unlink()
                ok = consistent(index) and semsearch(
                    "query", "-i", index, BREAD, "--json").stdout == before
                judged = outcome(ran, ok_if_zero=lambda ok=ok: ok, error_ok=lambda ok=ok: ok)
                key = {"handled": "compacted", "clear error": "one-line errors (index"
                       " unchanged)", "TRACEBACK": "tracebacks"}.get(judged, "silent")
                counts[key] += 1
                peak = max(peak, ran.peak_mb)
                if ran.rc:
                    last = self.last_line(ran)
        result = "SILENT CORRUPTION" if counts["silent"] else "TRACEBACK" if counts[
            "tracebacks"] else "clear error"
        self.add("compact on a filling disk", result,
                 ", ".join(f"{n} {what}" for what, n in counts.items()), peak)
        self.add("compact on a filling disk (an error)", result, last, peak)
        with tmpfs(self.work, mount_size) as mount:
            leave_free(mount, 8192)
            ran = semsearch("index", "-i", mount / "fresh", SAMPLE)
            left = sorted(p.name for p in (mount / "fresh").glob("*")) if (
                mount / "fresh").exists() else []
            self.add("create an index on a full disk", outcome(
                ran, error_ok=lambda: not any(name.endswith(".new") for name in left)),
                f"{self.last_line(ran)} (left: {', '.join(left) or 'nothing'})", ran.peak_mb)

    # 2. a vector file swapped in from another index, or negated, with and without --mmap
    def swapped_vectors(self) -> None:
        import faiss
        import numpy as np

        other = self.work / "other"
        semsearch("index", "-i", other, SAMPLE / "computing.md", SAMPLE / "health.txt")
        for damage in ("swapped", "negated"):
            index = self.copy(f"{damage}-vectors")
            target = next(index.glob("vectors.*.faiss"))
            if damage == "swapped":
                shutil.copyfile(next(other.glob("vectors.*.faiss")), target)
            else:
                stored = faiss.read_index(str(target))
                inner = faiss.downcast_index(stored.index)
                codes = faiss.vector_to_array(inner.codes).view(np.float32)
                faiss.copy_array_to_vector((-codes).view(np.uint8), inner.codes)
                faiss.write_index(stored, str(target))
            for mmap in ((), ("--mmap",)):
                ran = semsearch("query", "-i", index, BREAD, "-k", "1", "--mode", "dense",
                                "--json", *mmap)
                right = ran.rc == 0 and self.bread in ran.stdout
                self.add(f"{damage} vector file{' --mmap' if mmap else ''}",
                         outcome(ran, ok_if_zero=lambda right=right: right),
                         self.last_line(ran), ran.peak_mb)

    # 3. NaN and Infinity through every input path
    def non_finite(self) -> None:
        records = self.work / "nan.jsonl"
        records.write_text('{"id": "n1", "text": "Oat porridge is a warm breakfast.",'
                           ' "score": NaN, "nested": {"x": -Infinity}}\n')
        index = self.copy("nan")
        ran = semsearch("index", "-i", index, records)
        shown = semsearch("query", "-i", index, "warm breakfast", "--json")
        self.add("NaN/Infinity in JSONL metadata", outcome(
            ran, ok_if_zero=lambda: "NaN" in ran.stderr and strict_json(shown.stdout)),
            self.last_line(ran), ran.peak_mb)
        for options in (("--fusion", "rrf", "--rrf-k", "nan"), ("--min-score", "nan"),
                        ("--alpha", "nan"), ("--rrf-k", "inf")):
            ran = semsearch("query", "-i", self.base, "bread", "--json", *options)
            self.add(f"query {' '.join(options)}", outcome(
                ran, ok_if_zero=lambda ran=ran: strict_json(ran.stdout)), self.last_line(ran),
                ran.peak_mb)

    # 4. memory: long units, huge files, endless stdin
    def memory(self) -> None:
        word = self.work / "one-word.txt"
        word.write_bytes(b"a" * (20 << 20))
        cell = self.work / "cell.csv"
        cell.write_bytes(b"id,text\nc1," + b"lorem ipsum " * ((10 << 20) // 12) + b"\n")
        huge = self.work / "huge.txt"
        with huge.open("wb") as handle:
            handle.truncate(200 << 20)
            handle.seek(0)
            handle.write(b"A very large file. " * 1000)
        for name, path in (("20 MB one-word file", word), ("10 MB CSV cell", cell),
                           ("200 MB file", huge)):
            index = self.copy(f"mem-{path.stem}")
            ran = semsearch("index", "-i", index, path)
            ok = consistent(index)
            self.add(name, outcome(ran, ok_if_zero=lambda ok=ok: ok), self.last_line(ran),
                     ran.peak_mb)

        def endless() -> Iterator[bytes]:  # `yes | semsearch index -`, bounded at 2 GB
            block = b"y\n" * (1 << 19)
            for _ in range(2048):
                yield block

        index = self.copy("stdin")
        ran = semsearch("index", "-i", index, "-", stdin=endless, timeout=300)
        self.add("endless stdin (yes | index -)", outcome(ran, ok_if_zero=lambda: consistent(
            index)), self.last_line(ran), ran.peak_mb)

    # 6, 7. a damaged store
    def zeroed_page(self) -> None:
        index = self.copy("zeroed")
        more = self.work / "more.jsonl"
        more.write_text("\n".join(json.dumps({"id": f"m{i}", "text": f"Note {i} on moss and"
                                              f" lichen growing on stone walls."})
                                  for i in range(300)))
        semsearch("index", "-i", index, more)
        store = index / "store.db"
        with sqlite3.connect(store) as db:
            db.execute("pragma wal_checkpoint(truncate)")
        data = bytearray(store.read_bytes())
        middle = (len(data) // 4096 // 2) * 4096
        data[middle:middle + 4096] = bytes(4096)
        store.write_bytes(bytes(data))
        for options in ((), ("--repair",)):
            ran = semsearch("check", "-i", index, *options)
            lines = [line for line in (ran.stdout + ran.stderr).splitlines() if line.strip()]
            result = "TRACEBACK" if "Traceback" in ran.stderr else (
                "handled" if ran.rc == 0 and consistent(index) else
                "clear error" if ran.rc != 0 and 0 < len(lines) <= 2 else "UNEXPECTED")
            self.add(f"check {' '.join(options)} on a zeroed store page".replace("  ", " "),
                     result, " | ".join(lines), ran.peak_mb)

    # 8, 9 and the smaller folder cases
    def folders(self) -> None:
        deep = folder = self.work / "deep"
        deep.mkdir()
        for _ in range(1000):  # made and removed a level at a time: pathlib and shutil recurse
            folder = folder / "d"
            folder.mkdir()
        (folder / "bottom.txt").write_text("The deepest note is about cave diving.")
        index = self.work / "deep-index"
        ran = semsearch("index", "-i", index, deep, cwd=self.work)
        self.add("folder 1,000 levels deep", outcome(
            ran, ok_if_zero=lambda: "cave diving" in (top_text(index, "cave diving") or "")),
            self.last_line(ran), ran.peak_mb)
        (folder / "bottom.txt").unlink()
        while folder != self.work:
            folder.rmdir()
            folder = folder.parent

        vault = self.work / "vault"
        vault.mkdir()
        (vault / "note.txt").write_text("Tomatoes need full sun and regular watering.")
        secret = self.work / "secret.txt"
        secret.write_text("The launch code is swordfish.")
        (vault / "passwd.txt").symlink_to(secret)
        (vault / "loop").symlink_to(vault / "loop")
        locked = vault / "locked"
        locked.mkdir()
        (locked / "hidden.txt").write_text("Locked away.")
        locked.chmod(0)
        (vault / "pipe").mkdir()
        os.mkfifo(vault / "pipe" / "queue.txt")
        index = self.work / "vault-index"
        ran = semsearch("index", "-i", index, vault)
        leaked = "swordfish" in (top_text(index, "launch code") or "")
        self.add("symlink out of the folder", outcome(
            ran, ok_if_zero=lambda: not leaked and "passwd.txt" in ran.stderr),
            f"leaked: {leaked}; " + " | ".join(
                line for line in ran.stderr.splitlines() if "warning" in line)[:90], ran.peak_mb)
        locked.chmod(0o755)
        ran = semsearch("index", "-i", self.work / "fifo-index", vault / "pipe" / "queue.txt",
                        timeout=60)
        self.add("a FIFO given directly", outcome(
            ran, error_ok=lambda: "regular file" in ran.stderr), self.last_line(ran),
            ran.peak_mb)

    def read_only_copy(self) -> None:
        """The index seen through a read-only bind mount (root ignores file permissions)."""
        index, view = self.copy("readonly"), self.work / "readonly-view"
        view.mkdir()
        made = subprocess.run(["mount", "--bind", "-o", "ro", str(index), str(view)],
                              capture_output=True)
        if made.returncode:
            self.add("search a read-only copy", "skipped", "needs permission to bind-mount")
            return
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True)
        try:
            found = top_text(view, BREAD)
            ran = semsearch("query", "-i", view, BREAD, "-k", "1")
            self.add("search a read-only copy", outcome(
                ran, ok_if_zero=lambda: found == self.bread), self.last_line(ran), ran.peak_mb)
            note = self.work / "readonly-note.txt"
            note.write_text("A new note for a read-only index.")
            ran = semsearch("index", "-i", view, note)
            self.add("index into a read-only copy", outcome(ran, ok_if_zero=lambda: False),
                     self.last_line(ran), ran.peak_mb)
        finally:
            subprocess.run(["umount", "-l", str(view)], capture_output=True)

    def concurrent_create(self) -> None:
        target = self.work / "race"
        processes = [subprocess.Popen(
            [sys.executable, "-m", "semsearch", "index", "-i", str(target), str(SAMPLE / name),
             "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name in ("cooking.txt", "astronomy.md")]
        codes = [process.wait(300) for process in processes]
        stderr = " | ".join(process.stderr.read().decode().strip() for process in processes)
        both = "Bread" in (top_text(target, "bread flour") or "") and "Moon" in (
            top_text(target, "the moon") or "")
        self.add("two runs create one new index", "handled" if codes == [0, 0] and both and
                 consistent(target) else "UNEXPECTED", f"exit codes {codes}; {stderr}"[:110])

    def repair_message(self) -> None:
        index = self.copy("repair")
        vectors = next(index.glob("vectors.*.faiss"))
        vectors.write_bytes(vectors.read_bytes()[:1000])
        ran = semsearch("check", "-i", index, "--repair")
        told_again = "check --repair" in ran.stdout
        self.add("check --repair output", outcome(
            ran, ok_if_zero=lambda: not told_again and consistent(index)),
            ran.stdout.strip()[-110:], ran.peak_mb)

    # 5, 10 and the smaller server cases
    def server(self) -> None:
        index = self.copy("served")
        server = Server(index, "--allow-writes", "--token", TOKEN)
        try:
            self.add("server at rest", "handled", "RSS after start-up and warm-up",
                     server.rss_mb("VmRSS"))
            big_batch = json.dumps({"queries": [f"bread number {i}" for i in range(256)],
                                    "k": 1000, "context": 20}).encode()
            long_query = json.dumps({"queries": ["bread " * 3_500_000]}).encode()
            nan_document = (b'{"documents": [{"id": "x", "text": "Rye keeps a week.",'
                            b' "metadata": {"x": NaN}}]}')
            cases = [
                ("POST /search 256 queries k=1000 context=20", {200, 400},
                 lambda: server.request("POST", "/search", big_batch,
                                        {"Content-Type": "application/json"})),
                ("POST /search with a 21 MB query", {400, 413},
                 lambda: server.request("POST", "/search", long_query,
                                        {"Content-Type": "application/json"})),
                ("GET /search with a 1 MB URL", {400, 414}, lambda: _status_of(raw_request(
                    server.port, b"GET /search?q=" + b"a" * (1 << 20) + b" HTTP/1.1\r\n"
                    b"Host: 127.0.0.1\r\n\r\n"))),
                ("POST /documents 300 MB without a token", {401, 413},
                 lambda: _stream_body(server.port, "/documents", 300 << 20)),
                ("POST /documents with NaN metadata", {400},
                 lambda: server.request("POST", "/documents", nan_document,
                                        {"Content-Type": "application/json",
                                         "Authorization": f"Bearer {TOKEN}"})),
                ("GET /search?where= twice on one key", {400},
                 lambda: server.request("GET", "/search?q=bread&where=a%3D1&where=a%3D2")),
                ("Host: attacker.example (rebinding)", {400},
                 lambda: server.request("GET", "/health", headers={"Host": "attacker.example"})),
            ]
            for name, expected, send in cases:
                status, body, health, growth = server.hostile(send)
                self.add(name, server_outcome(status, body, health, growth, expected),
                         f"{status} {body[:90].decode(errors='replace')}", growth, health)
        finally:
            server.stop()
        wide = Server(index, "--host", "0.0.0.0")
        try:
            status, body = wide.request("GET", "/health", headers={"Host": "attacker.example"})
            self.add("serve --host 0.0.0.0, Host: attacker.example",
                     server_outcome(status, body, 0, 0, {400}),
                     f"{status} {body[:90].decode(errors='replace')}")
        finally:
            wide.stop()
        ran = semsearch("serve", "-i", index, "--allow-writes", "--token", "pässwörd",
                        "--port", str(free_port()), timeout=120)
        self.add("serve --token with non-ASCII", outcome(ran, ok_if_zero=lambda: False),
                 self.last_line(ran), ran.peak_mb)


def _status_of(response: bytes) -> tuple[int, bytes]:
    if not response:
        return 0, b"connection closed without an answer"
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _stream_body(port: int, path: str, size: int) -> tuple[int, bytes]:
    """POST ``size`` bytes (as far as the server reads them) without a token."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type:"
                           f" application/json\r\nContent-Length: {size}\r\n\r\n".encode())
        block, sent = b"[" + b" " * 65535, 0
        with contextlib.suppress(OSError):
            while sent < size:
                connection.sendall(block)
                sent += len(block)
        return _status_of(_read_response(connection))


def _read_response(connection: socket.socket) -> bytes:
    """One HTTP response: its head, then as many bytes as its Content-Length says (the server
    may keep the connection open after it)."""
    answer = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(body) < length and (chunk := connection.recv(65536)):
            body += chunk
        answer = head + b"\r\n\r\n" + body
    return answer


CASES = ("disk_full", "swapped_vectors", "non_finite", "memory", "zeroed_page", "folders",
         "read_only_copy", "concurrent_create", "repair_message", "server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--sweep", action="store_true",
                        help="disk full at every 4 KB over the last 128 KB of a save")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semsearch-hostile-") as work:
        cases = Cases(Path(work), args.sweep)
        for name in args.cases.split(","):
            print(f"{name} ...", flush=True)
            getattr(cases, name)()
    rows = cases.rows
    bad = [row for row in rows if row["outcome"].isupper()]
    report(f"hostile input: {len(rows)} cases, {len(bad)} failures", rows, args.json_path)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
