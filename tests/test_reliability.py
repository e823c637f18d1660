"""Crash safety and concurrency, with real processes: `semsearch index` killed with SIGKILL at
random moments and at the edges of every save/commit, readers querying while a writer works.

The short version runs by default; `pytest -m slow tests/test_reliability.py` runs the long one.
Every index here is built with the fake model (tests/fake_model.py): what is tested is what the
files hold, not how good the hits are.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semsearch.index import Index
from semsearch.search import SearchOptions

SEMSEARCH = str(Path(sys.executable).parent / "semsearch")
# Runs `semsearch` with one function wrapped so that its N-th call SIGKILLs the process just
# before or just after it runs: the edges of each vector-file save, keyword-index commit (and
# the removal of the generation it replaces) and SQLite commit.
KILLER = """
import os, shutil, signal, sys
import semsearch
import semsearch.cli, semsearch.keywords, semsearch.vectors, sqlite_utils
from pathlib import Path

target, when, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
owner, name = {
    "save": (semsearch.vectors.VectorIndex, "save"),
    "rename": (os, "replace"),
    "commit": (sqlite_utils.Database, "commit"),
    "unlink": (Path, "unlink"),
    "keywords": (semsearch.keywords.KeywordDraft, "commit"),
    "rmtree": (shutil, "rmtree"),
}[target]
original, calls = getattr(owner, name), [0]

def wrapper(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if calls[0] == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, wrapper)
semsearch.cli.cli(sys.argv[4:])
"""
EDGES = [(target, when, nth) for target in ("save", "rename", "commit", "unlink",
                                                      "keywords", "rmtree")
         for when in ("before", "after") for nth in (1, 2)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """1,100 one-line documents: two chunks of work, so two commits with --commit-every 0."""
    folder = tmp_path_factory.mktemp("crash")
    topics = ["rivers", "engines", "violins", "glaciers", "markets", "proteins", "comets"]
    lines = [json.dumps({"id": f"doc{i}", "text": f"Note {i} is about {topics[i % 7]} and the"
                         f" number {i * 13 % 997}.", "group": str(i % 5)}) for i in range(1100)]
    (folder / "notes.jsonl").write_text("\n".join(lines))
    return folder / "notes.jsonl"


def index_command(index: Path, corpus: Path, model: Path) -> list[str]:
    return ["index", "-i", str(index), "--model", str(model), "--commit-every", "0", str(corpus)]


def run_semsearch(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([SEMSEARCH, *args], capture_output=True, text=True, **kwargs)


def start_index_run(path: Path, corpus: Path, model: Path) -> tuple[subprocess.Popen, float]:
    """Start `semsearch index` and wait until its store exists (or it ended): the run, and
    when its work began. Random kills land after that, not in Python's start-up."""
    process = subprocess.Popen([SEMSEARCH, *index_command(path, corpus, model)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (path / "store.db").exists() and process.poll() is None:
        time.sleep(0.002)
    return process, time.monotonic()


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory, fake_model):
    """The index built without interruption, and how long its work took (from the creation of
    its store to its end)."""
    path = tmp_path_factory.mktemp("reference") / "index"
    process, started = start_index_run(path, corpus, fake_model)
    assert process.wait() == 0
    return path, time.monotonic() - started


def snapshot(path: Path) -> dict:
    index = Index.open(path)
    ids = np.sort(index.vectors.ids())
    documents = index.store.db.execute(
        "select id, content_hash from documents order by id").fetchall()
    units = index.store.db.execute("select id, document_id, text from units order by id").fetchall()
    hits = [[(h.unit_id, round(h.score, 4)) for h in found] for found in index.search(
        ["violins and glaciers", "number 42", "markets"],
        SearchOptions(k=10, mode="hybrid", where={"group": "3"}))]
    words = [[(h.unit_id, round(h.score, 4)) for h in found] for found in index.search(
        ["rivers number", "violins 42"], SearchOptions(k=20, mode="keyword"))]
    return {"documents": documents, "units": units, "ids": ids,
            "vectors": index.vectors.vectors(ids), "hits": hits,
            "keyword_ids": index.keywords.unit_ids(), "keyword_hits": words}


def same_index(path: Path, expected: dict) -> bool:
    found = snapshot(path)
    return (found["documents"] == expected["documents"] and found["units"] == expected["units"]
            and np.array_equal(found["ids"], expected["ids"])
            and np.allclose(found["vectors"], expected["vectors"], atol=1e-4)
            and found["hits"] == expected["hits"]
            and np.array_equal(found["keyword_ids"], expected["keyword_ids"])
            and found["keyword_hits"] == expected["keyword_hits"])


def recover_and_finish(path: Path, corpus: Path, model: Path, run) -> bool:
    """After a kill: check (repairing if needed), then re-run the same index command. Returns
    whether a repair was needed."""
    if not (path / "store.db").exists():  # killed before the index existed
        repaired = False
    else:
        report = json.loads(run("check", "-i", path, "--json", expect=None).stdout)
        repaired = not report["consistent"]
        if repaired:
            assert json.loads(run("check", "-i", path, "--repair", "--json").stdout)[
                "consistent"]
    run(*index_command(path, corpus, model), "--json")
    return repaired


def kill_points(random_kills: int, edges: list) -> list:
    rng = random.Random(7)
    return [("random", rng.random(), None) for _ in range(random_kills)] + list(edges)


def run_kill_test(points, corpus, reference, tmp_path, run, model) -> dict:
    reference_path, duration = reference
    expected = snapshot(reference_path)
    tally = {"kill points": 0, "killed": 0, "repaired": 0, "lost or duplicated": 0,
             "different": 0}
    for number, (kind, detail, nth) in enumerate(points):
        path = tmp_path / f"killed{number}"
        if kind == "random":
            process, started = start_index_run(path, corpus, model)
            time.sleep(max(0.0, started + detail * duration - time.monotonic()))
            process.send_signal(signal.SIGKILL)
            code = process.wait()
        else:
            code = subprocess.run([sys.executable, "-c", KILLER, kind, detail, str(nth),
                                   *index_command(path, corpus, model)],
                                  capture_output=True).returncode
        tally["kill points"] += 1
        tally["killed"] += code == -signal.SIGKILL
        tally["repaired"] += recover_and_finish(path, corpus, model, run)
        found = snapshot(path)
        ids = [doc for doc, _ in found["documents"]]
        tally["lost or duplicated"] += len(ids) != len(set(ids)) or ids != [
            doc for doc, _ in expected["documents"]]
        tally["different"] += not same_index(path, expected)
    print(tally)
    return tally


def test_killed_index_runs_recover_to_the_same_index(corpus, reference, tmp_path, run,
                                                     fake_model):
    points = kill_points(2, [("save", "after", 1), ("commit", "before", 2),
                             ("unlink", "after", 1), ("keywords", "after", 1),
                             ("rmtree", "before", 1)])
    tally = run_kill_test(points, corpus, reference, tmp_path, run, fake_model)
    assert tally["killed"] >= 5  # the fault points always fire
    assert tally["lost or duplicated"] == 0 and tally["different"] == 0


@pytest.mark.slow
def test_killed_index_runs_recover_to_the_same_index_long(corpus, reference, tmp_path, run,
                                                          fake_model):
    tally = run_kill_test(kill_points(20, EDGES), corpus, reference, tmp_path, run, fake_model)
    assert tally["killed"] >= len(EDGES)
    assert tally["lost or duplicated"] == 0 and tally["different"] == 0


def test_readers_never_fail_while_a_writer_indexes(corpus, tmp_path, fake_model):
    """Query processes run while a writer creates the index, then while another run replaces
    every document; every query answers, from the old index or the new one."""
    path = tmp_path / "busy"
    changed = tmp_path / "changed.jsonl"
    changed.write_text("\n".join(
        json.dumps({"id": f"doc{i}", "text": f"Changed note {i} on tides and {i % 11} owls."})
        for i in range(1100)))
    reader = """
import json, os, sys, time
from semsearch import Index, SearchOptions
from semsearch.errors import IndexNotFoundError
path, stop_file = sys.argv[1], sys.argv[2]
served = errors = 0
while not os.path.exists(stop_file):
    try:
        index = Index.open(path)
        hits = index.search("owls and tides", SearchOptions(k=5, mode="hybrid"))[0]
        assert len(hits) == min(5, index.vectors.ntotal)  # empty until the first commit
        served += 1
    except IndexNotFoundError:
        time.sleep(0.01)  # not created yet: leave the writer's start-up the CPU
    except Exception as exc:
        errors += 1
        print(repr(exc), file=sys.stderr)
print(json.dumps({"served": served, "errors": errors}))
"""
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", reader, str(path), str(stop)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    writers = [run_semsearch(index_command(path, data, fake_model))
               for data in (corpus, changed)]
    stop.touch()
    outputs = [r.communicate() for r in readers]
    results = [json.loads(out) for out, _ in outputs]
    assert all(writer.returncode == 0 for writer in writers), [w.stderr for w in writers]
    assert sum(r["errors"] for r in results) == 0, [err for _, err in outputs]
    assert all(r["served"] > 0 for r in results)
    print({"queries served": sum(r["served"] for r in results), "errors": 0})


def test_second_writer_waits_or_fails_clearly(corpus, tmp_path, run, run_json, fake_model):
    """Another process holds the write lock; the commands run here meet it as a second
    process would (the lock is on the open file, not on the process)."""
    path = tmp_path / "locked"
    run(*index_command(path, corpus, fake_model))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from semsearch import Index\n"
        "index = Index.open(sys.argv[1])\n"
        "with index.locked():\n"
        "    print('locked', flush=True); time.sleep(float(sys.argv[2]))"), str(path), "4"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    refused = run("remove", "-i", path, "doc1", expect=1)
    assert "another process is writing" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert holder.poll() is None  # refused while the lock was held, not after
    waited = run("remove", "-i", path, "doc1", "--timeout", "30")
    assert "removed 1 document" in waited.stdout
    assert holder.wait() == 0
    assert run_json("check", "-i", path)["consistent"]


@pytest.mark.skipif(sys.platform != "linux", reason="uses RLIMIT_FSIZE to fake a full disk")
def test_full_disk_is_a_one_line_error_and_the_index_stays(corpus, tmp_path, run, run_json,
                                                           fake_model):
    import resource

    path = tmp_path / "full"
    run("index", "-i", str(path), "--model", fake_model, str(corpus), "--json")
    before = snapshot(path)
    more = tmp_path / "more.jsonl"
    more.write_text("\n".join(json.dumps({"id": f"new{i}", "text": f"Fresh note {i} on moss."})
                              for i in range(400)))
    limit = max(file.stat().st_size for file in path.iterdir()) + (64 << 10)

    def small_files():  # no file may grow past the biggest one now: as if the disk were full
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_semsearch(["index", "-i", str(path), str(more)], preexec_fn=small_files)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert run_json("check", "-i", path)["consistent"]
    assert same_index(path, before)


def _make_read_only(files: list[Path]) -> bool:
    """chmod, or for root (whom permissions do not stop) the immutable attribute."""
    if os.geteuid() != 0:
        for file in files:
            file.chmod(0o555 if file.is_dir() else 0o444)
        return True
    done = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True)
    return done.returncode == 0


def _make_writable(files: list[Path], modes: dict) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *map(str, files)], capture_output=True)
    for file in files:
        file.chmod(modes[file])


@pytest.mark.skipif(sys.platform != "linux", reason="uses chmod or chattr")
def test_read_only_index_is_a_one_line_error_and_stays(corpus, tmp_path, run, fake_model):
    path = tmp_path / "readonly"
    run("index", "-i", str(path), "--model", fake_model, str(corpus), "--json")
    before = snapshot(path)
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "new", "text": "A new note on moss."}))
    files = [path, *path.iterdir()]
    modes = {file: file.stat().st_mode for file in files}
    if not _make_read_only(files):
        pytest.skip("running as root where chattr +i is not allowed")
    try:
        result = run_semsearch(["index", "-i", str(path), str(more)])
    finally:
        _make_writable(files, modes)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot write" in result.stderr
    assert same_index(path, before)
