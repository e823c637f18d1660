"""Cold start: wall time and peak memory of one-shot `semsearch` commands, each a fresh process.

    python benchmarks/cold.py [--scifact ../shared/data/scifact] [--index results/scifact-index]
        [--runs 5] [--json out.json]

A search tool is used one query at a time from the shell, so what counts is the whole process:
starting Python, importing, loading the model and the index, searching, printing. Every figure
is the median of ``--runs`` fresh processes on the demo index (the bundled sample), for the
default backend (auto: ONNX Runtime and tokenizers, no torch) and for `--backend torch` (the
query path before the torch-free one); with ``--scifact``, also a hybrid query on the SciFact
corpus index (document units, chunked) and re-indexing one changed note into it. Targets
(2 cores): hybrid query <= 0.6 s, keyword <= 0.35 s, info <= 0.4 s, SciFact query <= 0.8 s,
peak RSS of a query <= 250 MB, re-indexing one changed file <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

SAMPLE = Path(__file__).resolve().parent.parent / "semsearch" / "sample"
SEMSEARCH = [str(Path(sys.executable).parent / "semsearch")]  # the installed command


def fresh(command: list[str], runs: int, before=None) -> tuple[float, float]:
    """Median seconds and median peak RSS (MB) of ``runs`` fresh processes."""
    seconds, peaks = [], []
    for run in range(runs):
        if before:
            before(run)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds.append(time.perf_counter() - started)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
        peaks.append(usage.ru_maxrss / 1024)  # kB on Linux
    return statistics.median(seconds), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scifact", help="a BEIR folder: also time queries on its corpus")
    parser.add_argument("--index", default="results/scifact-index",
                        help="the corpus index, built on first use and reused after")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = []

    def measure(name: str, command: list[str], target: float | None = None, before=None,
                torch_too: bool = True) -> None:
        row = {"command": name, "target s": target or ""}
        for label, backend in (("auto", []), ("torch", ["--backend", "torch"])):
            if label == "torch" and not torch_too:
                row.update({"torch s": "", "torch MB": ""})
                continue
            seconds, peak = fresh([*SEMSEARCH, *backend, *command], args.runs, before)
            row.update({f"{label} s": round(seconds, 3), f"{label} MB": round(peak)})
        rows.append(row)
        print(row, flush=True)

    # Byte-compiled first, as `pip install` leaves an installed package (an editable one, or
    # $PYTHONDONTWRITEBYTECODE, would compile it again in every process).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(SAMPLE.parent)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo = str(Path(tmp) / "demo")
        subprocess.run([*SEMSEARCH, "index", "-i", demo, str(SAMPLE)], check=True,
                       capture_output=True)
        measure("--help", ["--help"], torch_too=False)
        measure("query (demo, hybrid)", ["query", "-i", demo, "how do I bake bread"], 0.6)
        measure("query (demo, keyword)", ["query", "-i", demo, "--mode", "keyword",
                                          "how do I bake bread"], 0.35)
        measure("info (demo)", ["info", "-i", demo], 0.4)
        if args.scifact:
            # Built in a child: a parent that held torch and the corpus would hand its peak
            # memory on to every process it starts (Linux keeps it across exec).
            units = subprocess.run([sys.executable, "-c", (
                "import sys; sys.path.insert(0, sys.argv[3]); from _common import beir_index;"
                " print(beir_index(sys.argv[1], 'train', sys.argv[2])[0].manifest['units'])"),
                args.scifact, args.index, str(Path(__file__).parent)],
                check=True, capture_output=True, text=True).stdout.split()[-1]
            measure(f"query (SciFact, {units} units, hybrid)",
                    ["query", "-i", args.index, "statins lower the risk of heart attacks"], 0.8)
            note = Path(tmp) / "note.md"

            def change_note(run: int) -> None:
                note.write_text(f"# Note {run}\n\nStatins were taken by {run} patients in this"
                                " trial.\n\nThe risk of heart attacks fell by a third.\n")

            measure("index one changed note (SciFact)", ["index", "-i", args.index, str(note)],
                    1.5, before=change_note)
            subprocess.run([*SEMSEARCH, "remove", "-i", args.index, str(note)], check=True,
                           capture_output=True)
    cores = len(os.sched_getaffinity(0))
    report(f"One-shot commands, median of {args.runs} fresh processes ({cores} cores)", rows,
           args.json_path, vars(args))


if __name__ == "__main__":
    main()
