"""Issue 20, the index's own files: a damaged store page, a read-only copy, creating on a full
disk or from two runs at once, the words `check --repair` ends with, and approximate search
measured honestly when vectors repeat."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_hardening_storage import _leave_free, small_disk  # noqa: F401  (a fixture)
from test_reliability import SEMSEARCH

from semsearch.errors import InputError
from semsearch.index import Index
from semsearch.readers import Document
from semsearch.vectors import VectorIndex

ANIMALS = ["heron", "otter", "badger", "falcon", "salmon", "beaver", "hedgehog", "kingfisher"]


@pytest.fixture
def notes(tmp_path):
    """240 one-line notes in a JSONL file, with metadata: enough rows for many store pages."""
    path = tmp_path / "notes.jsonl"
    with path.open("w") as handle:
        for number in range(240):
            animal = ANIMALS[number % len(ANIMALS)]
            handle.write(json.dumps({"id": f"n{number}", "text": f"Note {number}: the {animal}"
                                     f" was seen near the old mill on day {number}. " * 6,
                                     "animal": animal}) + "\n")
    return path


def zero_page(store: Path, table: str, kind: str = "leaf", nth: int = 0) -> int:
    """Overwrite one page of ``table`` with zeros, as a bad disk sector would: its root
    (``kind="root"``) or its ``nth`` leaf."""
    with sqlite3.connect(store) as db:
        db.execute("pragma wal_checkpoint(truncate)")  # every page in the file, none in the log
        if kind == "root":
            page = db.execute("select rootpage from sqlite_master where name = ?",
                              [table]).fetchone()[0]
        else:
            page = db.execute("select pageno from dbstat where name = ? and pagetype = 'leaf'"
                              " order by pageno", [table]).fetchall()[nth][0]
        size = db.execute("pragma page_size").fetchone()[0]
    with store.open("r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(bytes(size))
    return page


def lines(result) -> list[str]:
    return result.output.strip().splitlines()


def test_a_zeroed_store_page_is_reported_in_one_line_and_repair_rebuilds_from_what_is_left(
        run, run_json, tmp_path, notes, fake_model):
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, notes)
    zero_page(index / "store.db", "documents", nth=3)  # a few documents
    zero_page(index / "store.db", "units", kind="root")  # and every unit
    report = run("check", "-i", index, expect=1)  # before: a traceback from quick_check
    first, advice = lines(report)
    assert first.startswith(f"{index}: DAMAGED — the store cannot be read in full (")
    readable = int(first.split("; ")[1].split(" of ")[0])
    assert 200 < readable < 240 and " of 240 documents can be read" in first
    assert advice == (f"run `semsearch check --repair` to rebuild the index from those"
                      f" {readable} documents (the damaged store is kept)")

    repaired = lines(run("check", "-i", index, "--repair"))
    assert len(repaired) == 1 and repaired[0].startswith(f"{index}: repaired — rebuilt from the"
                                                         f" {readable} documents")
    assert f"{240 - readable} documents lost" in repaired[0]
    kept = [file for file in index.glob("store.db.damaged-*")
            if not file.name.endswith("-wal")]  # its log beside it, where it had one
    assert len(kept) == 1 and kept[0].name in repaired[0]
    assert run_json("check", "-i", index)["consistent"]
    assert run_json("info", "-i", index)["documents"] == readable
    answer = run_json("query", "-i", index, "an otter near the mill", "-w", "animal=otter")
    hits = answer[0]["hits"]
    assert len(hits) == 10 and {hit["metadata"]["animal"] for hit in hits} == {"otter"}


def test_a_lost_documents_table_is_put_back_together_from_the_units(run, run_json, tmp_path,
                                                                     notes, fake_model):
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, notes)
    zero_page(index / "store.db", "documents", kind="root")
    first, _ = lines(run("check", "-i", index, expect=1))
    assert "240 of 240 documents can be read" in first
    repaired = lines(run("check", "-i", index, "--repair"))[0]
    assert "240 put back together from their units without title, source or metadata" in (
        repaired)
    hit = run_json("query", "-i", index, "the kingfisher on day 7", "-k", "1")[0]["hits"][0]
    assert hit["document_id"] == "n7" and "kingfisher" in hit["text"]


def test_a_search_of_a_damaged_store_is_a_one_line_error(run, tmp_path, notes, fake_model):
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, notes)
    zero_page(index / "store.db", "units", kind="root")
    result = run("query", "-i", index, "heron", expect=1)  # before: sqlite3.DatabaseError
    assert result.stderr == ("Error: the index store is damaged (database disk image is"
                             " malformed); run `semsearch check` to see what can be"
                             " recovered\n")


def test_a_store_with_no_readable_document_says_plainly_it_cannot_be_repaired(run, tmp_path,
                                                                             notes, fake_model):
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, notes)
    zero_page(index / "store.db", "documents", kind="root")
    zero_page(index / "store.db", "units", kind="root")
    assert lines(run("check", "-i", index, expect=1))[1] == (
        "no document can be read: rebuild the index from your files into a new --index")
    result = run("check", "-i", index, "--repair", expect=1)
    assert result.stderr == (f"Error: cannot repair {index}: no document in its store can be"
                             " read; rebuild the index from your files into a new --index\n")
    assert not list(index.glob("store.db.damaged-*"))


def test_check_repair_ends_by_saying_it_repaired(run, tmp_path, corpus, fake_model):
    index = tmp_path / "idx"
    run("index", "-i", index, "--model", fake_model, corpus)
    next(index.glob("vectors.*.faiss")).write_bytes(b"not a faiss file")
    broken = lines(run("check", "-i", index, expect=1))
    assert broken[-1] == "run `semsearch check --repair` to fix it"
    repaired = lines(run("check", "-i", index, "--repair"))
    assert repaired == [f"{index}: repaired — 8 units, 0 vectors, 8 missing, 0 extra, store ok,"
                        " keyword index ok, vectors file rebuilt"]  # before: "run `check`..."


# ---- a read-only copy -------------------------------------------------------------------------

@pytest.fixture
def read_only_copy(tmp_path, run, corpus, fake_model):
    """An index reached through a read-only bind mount (as on a CD, a read-only share, or a
    folder the user may not write: root writes through permissions, not through this)."""
    run("index", "-i", tmp_path / "idx", "--model", fake_model, corpus)
    view = tmp_path / "view"
    view.mkdir()
    made = subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "idx"), str(view)],
                          capture_output=True)
    if sys.platform != "linux" or made.returncode:
        pytest.skip("needs Linux and permission to bind-mount")
    subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True)
    try:
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_a_read_only_copy_can_be_searched_and_refuses_writes_in_one_line(
        read_only_copy, run, run_json, tmp_path):
    with pytest.raises(OSError):
        (read_only_copy / "probe").write_text("x")
    hits = run_json("query", "-i", read_only_copy, "bread in the oven")[0]["hits"]
    assert hits[0]["text"] == "Bake the bread in a hot oven."  # before: "not a semsearch store"
    assert run_json("query", "-i", read_only_copy, "oven", "--mode", "hybrid")[0]["hits"]
    report = run_json("check", "-i", read_only_copy)
    assert report["consistent"] and report["keywords_ok"]
    assert run_json("info", "-i", read_only_copy)["documents"] == 3
    note = tmp_path / "note.txt"
    note.write_text("A new note.")
    result = run("index", "-i", read_only_copy, note, expect=1)
    assert result.stderr.startswith(f"Error: cannot write to {read_only_copy}: ")
    assert result.stderr.count("\n") == 1


# ---- creating -----------------------------------------------------------------------------------

def test_creating_an_index_on_a_full_disk_leaves_nothing_behind_and_says_why(
        small_disk, tmp_path, run, fake_model):  # noqa: F811
    note = tmp_path / "note.txt"
    note.write_text("A note about herons.")
    _leave_free(small_disk, 0)
    result = run("index", "-i", small_disk / "idx", "--model", fake_model, note, expect=1)
    assert result.stderr == (f"Error: cannot create an index at {small_disk / 'idx'}: database"
                             " or disk is full (the disk has 0 B free); nothing was written (free"
                             " some space or choose another --index)\n")
    # before: "store.db.PID.new is not a semsearch store (database or disk is full)"
    assert [path.name for path in (small_disk / "idx").iterdir()] == []  # before: store.db.N.new
    (small_disk / "filler").unlink()
    run("index", "-i", small_disk / "idx", "--model", fake_model, note)


@pytest.mark.parametrize("shards", [[], ["--shards", "2"]])
def test_two_runs_creating_the_same_index_both_succeed(tmp_path, shards, run_json, fake_model):
    files = []
    for number in range(3):
        files.append(tmp_path / f"note{number}.txt")
        files[-1].write_text(f"Note {number} is about the {ANIMALS[number]}.")
    index = tmp_path / "idx"
    runs = [subprocess.Popen([SEMSEARCH, "index", "-i", str(index), *shards, "--timeout", "120",
                              "--model", str(fake_model), str(file)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for file in files]
    outcomes = [(process.wait(), process.stderr.read()) for process in runs]
    assert outcomes == [(0, "")] * 3  # before: "an index already exists" for the losers
    assert run_json("info", "-i", index)["documents"] == 3


# ---- stored metadata and approximate search ---------------------------------------------------

def test_non_finite_metadata_from_the_python_api_is_refused_before_anything_is_written(
        tmp_path, fake_model):
    index = Index.open_or_create(tmp_path / "idx", model=str(fake_model))
    index.add([Document(id="fine", text="A fine note.")])
    with pytest.raises(InputError, match="^bad: metadata holds NaN or Infinity"):
        index.add([Document(id="other", text="Another note."),
                   Document(id="bad", text="Bad note.", metadata={"score": float("nan")})])
    assert index.info()["documents"] == 1


def test_tuning_counts_a_tied_neighbour_as_found():
    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((400, 64)).astype(np.float32)
    vectors = np.repeat(distinct / np.linalg.norm(distinct, axis=1, keepdims=True), 25, axis=0)
    index = VectorIndex.empty(64)
    index.add(np.arange(len(vectors)), vectors)
    index.rebuild("IVF32,SQ8")
    effort, recall = index.tune(0.95)
    assert recall >= 0.97 and effort < 32  # before: 0.2 at a full scan, 25 copies of each


def test_a_recall_target_that_is_not_met_is_a_warning():
    from semsearch.index import recall_shortfall

    info = {"index": "/x", "faiss_built": "IVF1024,SQ8", "recall_target": 0.95}
    assert recall_shortfall({**info, "measured_recall": 0.96}) is None
    assert recall_shortfall({**info, "measured_recall": None}) is None
    assert recall_shortfall({**info, "measured_recall": 0.87}) == (
        "/x: approximate search (IVF1024,SQ8) reaches recall@10 0.87, under the 0.95 asked for,"
        " even at its widest; pass --faiss Flat for exact search, or a larger --effort per query")
