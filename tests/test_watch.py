"""`semsearch index --watch`: the real command in a subprocess, searched from another process
while it runs, killed in the middle of a batch, and stopped by a signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

VISIBLE_SECONDS = 5.0  # a change must be searchable this soon after it is made
START_SECONDS = 90.0  # a first pass on a slow machine: torch's import, the model, the files
READY = "for changes; Ctrl+C stops"


def _as_a_background_job() -> None:
    """Start with SIGINT ignored, as a shell starts `cmd &` (and a parent may pass it on): the
    watcher must still stop on SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Watcher:
    """The watching process; its output (stdout and stderr) is read by a thread, so a full
    pipe never stalls it and the test can look for a line at any time."""

    def __init__(self, index: Path, model: Path, folder: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "semsearch", "index", "--watch", "-i", str(index), "--model",
             str(model), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=folder.parent, preexec_fn=_as_a_background_job)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"the watcher exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} in {seconds}s:\n{self.output}"
            time.sleep(0.05)

    def stop(self, signum: int) -> int:
        """Send ``signum``; the exit code, once the process and its output have ended."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def watch(tmp_path, fake_model):
    """Start a watcher on a folder and wait until it watches; every one started is killed at
    the end, whatever the test did."""
    started: list[Watcher] = []

    def start(folder: Path) -> Watcher:
        watcher = Watcher(tmp_path / "idx", fake_model, folder)
        started.append(watcher)
        watcher.wait_for(READY)
        return watcher

    yield start
    for watcher in started:
        if watcher.process.poll() is None:
            watcher.process.kill()
            watcher.process.wait()


def _sources(run, index: Path, model: Path, word: str) -> set[str]:
    """The files whose documents a keyword search for ``word`` finds, as another process sees
    the index."""
    found = run("query", "--json", "-i", index, "--model", model, "--mode", "keyword", word)
    return {hit["source"] for hit in json.loads(found.stdout)[0]["hits"]}


def _wait_until(run, index: Path, model: Path, word: str, files: set[Path],
                since: float) -> None:
    """Poll a search until ``word`` is found in exactly ``files``, within VISIBLE_SECONDS of
    ``since`` (when the change was made)."""
    wanted = {str(file.resolve()) for file in files}
    while (found := _sources(run, index, model, word)) != wanted:
        assert time.monotonic() - since < VISIBLE_SECONDS, (
            f"{word!r} found in {found}, not {wanted}, {VISIBLE_SECONDS}s after the change")
        time.sleep(0.1)


def test_changes_are_searchable_within_seconds(tmp_path, fake_model, run, watch):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("Cats sleep all day.")
    (notes / "b.txt").write_text("Dogs bark at the mailman.")
    (notes / ".semsearchignore").write_text("drafts/\n")
    index = tmp_path / "idx"
    watcher = watch(notes)
    assert _sources(run, index, fake_model, "mailman") == {str((notes / "b.txt").resolve())}

    # What the folder walk leaves out (hidden, ignored, unknown suffix), and a file that cannot
    # be read, come first: once the new note is found, they were seen too.
    (notes / ".hidden.md").write_text("A quokka hides here.")
    (notes / "drafts").mkdir()
    (notes / "drafts" / "draft.md").write_text("A quokka drafts here.")
    (notes / "program.exe").write_text("A quokka compiled here.")
    (notes / "broken.md").write_bytes(b"\xff\xfe not utf-8")
    since = time.monotonic()
    (notes / "c.md").write_text("Zebrafish swim in the tank.")
    _wait_until(run, index, fake_model, "zebrafish", {notes / "c.md"}, since)
    assert not _sources(run, index, fake_model, "quokka")

    since = time.monotonic()
    (notes / "c.md").write_text("Axolotls regrow their legs.")
    _wait_until(run, index, fake_model, "axolotls", {notes / "c.md"}, since)
    assert not _sources(run, index, fake_model, "zebrafish")

    since = time.monotonic()
    (notes / "b.txt").unlink()
    _wait_until(run, index, fake_model, "mailman", set(), since)

    since = time.monotonic()
    (notes / "a.md").rename(notes / "cats.md")
    _wait_until(run, index, fake_model, "cats", {notes / "cats.md"}, since)

    watcher.wait_for("removed notes/a.md", VISIBLE_SECONDS)
    assert watcher.stop(signal.SIGINT) == 0, watcher.output
    for line in ("updated notes/c.md (1 unit)", "removed notes/b.txt", "updated notes/cats.md",
                 "broken.md: not valid utf-8", "stopped watching"):
        assert line in watcher.output
    assert "quokka" not in watcher.output and "draft.md" not in watcher.output


def _holds_lock(pid: int, lock_file: Path) -> bool:
    """Whether process ``pid`` holds the lock on ``lock_file``, read from /proc/locks (taking
    the lock to find out would make the watcher wait)."""
    if not lock_file.exists():
        return False
    inode = f":{lock_file.stat().st_ino} "
    return any(line.split()[4] == str(pid) and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads the locks in /proc/locks")
def test_killed_in_a_batch_leaves_a_sound_index(tmp_path, fake_model, run, run_json, watch):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "first.md").write_text("The first note.")
    index = tmp_path / "idx"
    watcher = watch(notes)
    for number in range(200):
        (notes / f"note-{number}.md").write_text(
            " ".join(f"Sentence {n} of note {number} says something new." for n in range(40)))
    deadline = time.monotonic() + 30
    while not _holds_lock(watcher.process.pid, index / "write.lock"):
        assert time.monotonic() < deadline, f"the batch never started:\n{watcher.output}"
        time.sleep(0.002)
    watcher.process.kill()
    watcher.process.wait()

    run("check", "-i", index)
    watcher = watch(notes)  # a new watcher's first pass indexes what the killed one had not
    assert watcher.stop(signal.SIGTERM) == 0, watcher.output
    assert "stopped watching" in watcher.output
    assert run_json("info", "-i", index)["documents"] == 201
    run("check", "-i", index)


def test_watch_refuses_json_and_stdin(tmp_path, fake_model, run):
    index = tmp_path / "idx"
    assert "leave out --json" in run("index", "--watch", "--json", "-i", index, "--model",
                                     fake_model, tmp_path, expect=2).output
    assert "not - (stdin)" in run("index", "--watch", "-i", index, "--model", fake_model, "-",
                                  input="Some text.", expect=2).output
