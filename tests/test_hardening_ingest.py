"""Issue 20, ingestion side: hostile inputs (non-finite numbers, huge units and streams, deep
folders, symbolic links, unreadable folders, FIFOs) are indexed or reported, within bounds.

Memory is measured on real `semsearch index` processes: peak RSS of the whole process, model
loaded, read with os.wait4 by a small launcher. Read by pytest itself it would be wrong: Linux
starts a forked child's peak at its parent's RSS, and pytest holds a loaded model."""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_reliability import SEMSEARCH

from semsearch.encoder import load_encoder
from semsearch.readers import ReadOptions, read_documents

PEAK_RSS_MB = 1024  # with the default model loaded, as a user's run has it (not the fake one)
# Spawns argv[2:], lets go of stdin (so that only the child holds the pipe), waits for it with
# os.wait4, writes its peak RSS (KiB) to argv[1] and exits as it did.
LAUNCHER = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[2:]); os.close(0);"
            " _, status, usage = os.wait4(child.pid, 0);"
            " open(sys.argv[1], 'w').write(str(usage.ru_maxrss));"
            " sys.exit(os.waitstatus_to_exitcode(status))")


def read(paths, **options) -> tuple[list, list[str]]:
    warnings: list[str] = []
    documents = list(read_documents([str(p) for p in paths], ReadOptions(**options),
                                    warnings.append))
    return documents, warnings


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not in it."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# ---- 1. NaN and Infinity in metadata ----------------------------------------------------------

NON_FINITE = ('{"id": "n1", "text": "Otters hold hands while they sleep.", "score": NaN,'
              ' "stats": {"high": Infinity, "runs": [1, -Infinity]}, "big": 1e999}\n'
              '{"id": "n2", "text": "Finite numbers stay as they are.", "score": 0.5}\n')


def test_non_finite_numbers_in_a_jsonl_file_are_stored_as_null_with_a_warning(
        run, run_json, tmp_path, fake_model):
    (tmp_path / "notes.jsonl").write_text(NON_FINITE)
    warnings = run_json("index", "-i", "nan", "--model", fake_model,
                        tmp_path / "notes.jsonl")["warnings"]
    where = f"{tmp_path / 'notes.jsonl'}:1"
    assert set(warnings) == {f"{where}: field 'score' is NaN; stored as null",
                             f"{where}: field 'stats.high' is Infinity; stored as null",
                             f"{where}: field 'stats.runs[1]' is -Infinity; stored as null",
                             f"{where}: field 'big' is Infinity; stored as null"}
    answer = strict_json(run("query", "-i", "nan", "otters sleeping", "--json").stdout)
    metadata = {hit["document_id"]: hit["metadata"] for hit in answer[0]["hits"]}
    assert metadata["n1"] == {"score": None, "stats": {"high": None, "runs": [1, None]},
                              "big": None}
    assert metadata["n2"] == {"score": 0.5}


def test_non_finite_numbers_from_stdin_are_stored_as_null(run, run_json, fake_model):
    result = run_json("index", "-i", "nan", "--model", fake_model, "--format", "jsonl", "-",
                      input=NON_FINITE.encode())
    assert "<stdin>:1: field 'score' is NaN; stored as null" in result["warnings"]
    strict_json(run("query", "-i", "nan", "otters", "--json").stdout)


# ---- 2. bounded work on long units, streamed input, the size cap ------------------------------

def index_process(tmp_path: Path, *args, stdin_chunks=None) -> tuple[int, str, float, int]:
    """Run `semsearch index` (stdin fed from ``stdin_chunks``): exit code, stderr, peak RSS in
    MB of that process alone, and the bytes of stdin it took before it stopped reading."""
    err, peak = (tmp_path / "stderr.txt").open("w+"), tmp_path / "peak_kib.txt"
    process = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(peak),
                                SEMSEARCH, "index", "-i", str(tmp_path / "idx"), "--json",
                                *map(str, args)], stdin=subprocess.PIPE if stdin_chunks else None,
                               stdout=subprocess.DEVNULL, stderr=err)
    sent = 0
    if stdin_chunks:
        try:
            for chunk in stdin_chunks:
                process.stdin.write(chunk)
                sent += len(chunk)
            process.stdin.close()
        except BrokenPipeError:  # it stopped reading: what it was meant to do
            pass
    process.wait()
    err.seek(0)
    return process.returncode, err.read(), int(peak.read_text()) / 1024, sent


def assert_clean(code: int, stderr: str, peak_mb: float) -> None:
    assert code == 0 and "Traceback" not in stderr, stderr
    assert peak_mb <= PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"


def test_a_20_mb_word_is_indexed_within_1_gb(tmp_path):
    (tmp_path / "word.txt").write_bytes(b"a" * (20 * 2**20))
    code, stderr, peak_mb, _ = index_process(tmp_path, tmp_path / "word.txt")
    assert_clean(code, stderr, peak_mb)  # before: 2,014 MB


def test_a_10_mb_csv_cell_is_indexed_within_1_gb(tmp_path):
    (tmp_path / "cell.csv").write_bytes(b"id,text\n1," + b"b" * (10 * 2**20) + b"\n")
    code, stderr, peak_mb, _ = index_process(tmp_path, tmp_path / "cell.csv")
    assert_clean(code, stderr, peak_mb)  # before: 1,395 MB


def test_a_200_mb_file_is_skipped_by_the_cap_without_being_read(tmp_path):
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    with big.open("wb") as handle:
        handle.truncate(200 * 2**20)  # sparse zeros: read, it would be called binary
    small.write_text("A small note about herons.")
    code, stderr, peak_mb, _ = index_process(tmp_path, big, small)
    assert_clean(code, stderr, peak_mb)
    assert f"warning: {big}: skipped, 200.0 MB is over --max-document-mb 24\n" in stderr
    assert "binary" not in stderr


def test_a_300_mb_stdin_stream_stops_at_the_cap(tmp_path):
    (tmp_path / "small.txt").write_text("A small note about herons.")
    stream = (b"y\n" * 2**19 for _ in range(300))  # 300 MB, as from `yes`
    code, stderr, peak_mb, sent = index_process(tmp_path, "-", tmp_path / "small.txt",
                                                stdin_chunks=stream)
    assert_clean(code, stderr, peak_mb)  # before: 5.8 GB after 40 s, still reading
    assert "warning: <stdin>: skipped, over --max-document-mb 24\n" in stderr
    assert sent < 100 * 2**20


def test_long_texts_give_the_same_vectors_and_counts_as_sentence_transformers():
    encoder = load_encoder(precision="fp32", backend="torch")
    texts = ["a" * 200_000,  # one word: [UNK], not truncated
             " " * 60_000 + "heron\n\n\n" + "\t\x01" * 20_000 + "egret",  # blank runs
             "Ünïcödé wörds, ελληνικά и кириллица. " * 2_000,  # truncated
             "é" * 150 + " x" * 40_000, "日本語の文。" * 10_000, "ab\x01\x02cd " * 20_000]
    plain = encoder.model.encode(texts, normalize_embeddings=True)
    assert np.abs(encoder.encode(texts) - plain).max() < 1e-5
    whole = [len(ids) for ids in encoder.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert list(encoder.token_counts(texts)) == [min(count, 255) for count in whole]  # limit + 1
    assert whole[:2] == [1, 4] and encoder.count_truncated(texts) == 4


def test_records_over_the_cap_are_skipped(run_json, tmp_path, fake_model):
    (tmp_path / "notes.jsonl").write_text(
        '{"text": "First heron."}\n' + json.dumps({"text": "x " * 5000}) + '\n{"text": "Egret."}\n')
    result = run_json("index", "-i", "cap", "--model", fake_model, "--max-document-mb", "0.001",
                      tmp_path / "notes.jsonl")
    assert result["added"] == 2
    assert result["warnings"] == [f"{tmp_path / 'notes.jsonl'}:2: skipped, over"
                                  " --max-document-mb 0.001"]
    (tmp_path / "rows.csv").write_text("text\nFirst row.\n\"" + "y " * 5000 + "\"\nLast row.\n")
    result = run_json("index", "-i", "cap", "--max-document-mb", "0.001", tmp_path / "rows.csv",
                      tmp_path / "notes.jsonl")
    assert result["added"] == 0  # none of the CSV goes in: it is not read in half
    assert any(f"{tmp_path / 'rows.csv'}:" in w and "over --max-document-mb" in w
               for w in result["warnings"])


def test_stdin_text_over_the_cap_is_skipped(run, run_json, tmp_path, fake_model):
    (tmp_path / "small.txt").write_text("A small note about herons.")
    result = run_json("index", "-i", "cap", "--model", fake_model, "--max-document-mb", "0.01", "-",
                      tmp_path / "small.txt", input=b"word " * 10_000)
    assert result["added"] == 1
    assert result["warnings"] == ["<stdin>: skipped, over --max-document-mb 0.01"]


def test_a_csv_that_breaks_late_goes_in_not_at_all(tmp_path):
    rows = "".join(f"Row {i} is fine.\n" for i in range(200_000))  # chunks of reading past
    (tmp_path / "late.csv").write_bytes(f"text\n{rows}".encode() + b"caf\xe9\n")
    documents, warnings = read([tmp_path / "late.csv"])
    assert documents == []
    assert len(warnings) == 1 and "not valid utf-8 (byte" in warnings[0]


def test_a_jsonl_file_that_does_not_decode_goes_in_not_at_all(tmp_path):
    (tmp_path / "late.jsonl").write_bytes(b'{"text": "fine"}\n' * 2000 + b'{"text": "caf\xe9"}\n')
    documents, warnings = read([tmp_path / "late.jsonl"])
    assert documents == []
    assert warnings == [f"{tmp_path / 'late.jsonl'}: not valid utf-8 (byte {17 * 2000 + 13});"
                        " pass --encoding to read it"]  # as when it was read whole


# ---- 3. deep folders --------------------------------------------------------------------------

@pytest.fixture
def deep_folder(tmp_path):
    """A folder nested 1,000 deep, made and removed one level at a time: Path.mkdir(parents=True)
    and shutil.rmtree (pytest's clean-up of old temporary folders) recurse as deep."""
    top = deepest = tmp_path / "deep"
    top.mkdir()
    for _ in range(1000):
        deepest /= "d"
        deepest.mkdir()
    (deepest / "bottom.txt").write_text("The heron waits at the bottom.")
    yield top
    (deepest / "bottom.txt").unlink()
    while deepest != tmp_path:
        deepest.rmdir()
        deepest = deepest.parent


def test_a_folder_nested_1000_deep_is_indexed(run_json, deep_folder, fake_model):
    assert run_json("index", "-i", "deep", "--model", fake_model, deep_folder)["added"] == 1


def test_the_walk_keeps_the_rules_of_rglob(tmp_path):
    for name in ["b.txt", "a/z.md", "a b/x.txt", "a/.hidden/h.txt", ".git/g.txt", "a/c.csv",
                 "a/skip.py", "a/sub/deeper/page.html", "A.TXT"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text\nSome words here.\n")
    for pattern in [None, "*.txt", "sub/*/*.html"]:
        expected = [str(p) for p in sorted(tmp_path.rglob(pattern or "*"))
                    if p.is_file() and not any(part.startswith(".") for part in
                                               p.relative_to(tmp_path).parts)
                    and (pattern or p.suffix.lower() in {".txt", ".md", ".csv", ".html"})]
        documents, _ = read([tmp_path], glob=pattern)
        assert [doc.source for doc in documents] == expected


# ---- 4. and 5. symbolic links, unreadable folders, FIFOs --------------------------------------

@pytest.fixture
def linked(tmp_path, corpus):
    """The corpus with links: out of it, into it, and in loops."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("The launch code is zebra.")
    (outside / "records.jsonl").write_text('{"id": "r1", "text": "A record about herons."}\n')
    (corpus / "passwd.txt").symlink_to(outside / "secret")
    (corpus / "records").symlink_to(outside / "records.jsonl")
    (corpus / "alias.txt").symlink_to(corpus / "pets.txt")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "loop").symlink_to(corpus)
    (corpus / "self.txt").symlink_to("self.txt")
    (corpus / "gone.txt").symlink_to(tmp_path / "nothing")
    return corpus


def test_symlinks_out_of_the_folder_are_skipped_with_a_warning(run_json, linked, fake_model):
    result = run_json("index", "-i", "links", "--model", fake_model, linked)
    assert result["added"] == 3  # pets (once), space, food
    assert sorted(result["warnings"]) == sorted([
        f"{linked / 'passwd.txt'}: skipped, symbolic link to outside the folders given"
        " (--follow-symlinks follows it)",
        f"{linked / 'records'}: skipped, symbolic link to outside the folders given"
        " (--follow-symlinks follows it)",
        f"{linked / 'sub' / 'loop'}: skipped, symbolic link loop",
        f"{linked / 'self.txt'}: skipped, symbolic link loop",
        f"{linked / 'gone.txt'}: skipped, broken symbolic link"])


def test_follow_symlinks_reads_the_target_by_its_own_name(run_json, linked, tmp_path,
                                                          fake_model):
    result = run_json("index", "-i", "links", "--model", fake_model, "--follow-symlinks", linked)
    assert result["added"] == 4  # records.jsonl, by its name, not the link's (no suffix)
    ids = {hit["document_id"] for hit in run_json(
        "query", "-i", "links", "herons launch code", "-k", "20")[0]["hits"]}
    assert "r1" in ids and str(tmp_path / "outside" / "secret") not in ids  # no suffix: skipped


def test_a_fifo_given_directly_is_not_opened(run, tmp_path, corpus, fake_model):
    os.mkfifo(tmp_path / "pipe")
    stderr = run("index", "-i", "fifo", "--model", fake_model, tmp_path / "pipe", expect=1).stderr
    assert stderr.startswith(f"warning: {tmp_path / 'pipe'}: skipped, not a regular file\n")
    os.mkfifo(corpus / "inside.txt")  # inside a folder: passed over quietly, as before
    assert run("index", "-i", "fifo", "--model", fake_model, corpus).stderr == ""


def drop_root_file_powers() -> None:
    """Root reads any folder: drop that power (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the
    bounding set before exec, so the child meets permissions as any user would."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):
            if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_folder_is_reported(tmp_path, corpus, fake_model):
    locked = corpus / "locked"
    locked.mkdir()
    (locked / "hidden.txt").write_text("Unreachable words.")
    locked.chmod(0)
    try:
        result = subprocess.run([SEMSEARCH, "index", "-i", str(tmp_path / "idx"), "--model",
                                 str(fake_model), str(corpus)],
                                capture_output=True, text=True, preexec_fn=drop_root_file_powers)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"warning: {locked}: skipped, cannot read (Permission denied)\n"


def test_a_nan_stored_before_it_was_refused_is_printed_as_null(run, run_json, tmp_path,
                                                               fake_model):
    import sqlite3

    (tmp_path / "note.txt").write_text("Otters hold hands while they sleep.")
    run("index", "-i", tmp_path / "old", "--model", fake_model, tmp_path / "note.txt")
    with sqlite3.connect(tmp_path / "old" / "store.db") as db:  # as an older version stored it
        db.execute("""update documents set metadata = '{"score": NaN}'""")
    answer = strict_json(run("query", "-i", tmp_path / "old", "otters", "--json").stdout)
    assert answer[0]["hits"][0]["metadata"] == {"score": None}
