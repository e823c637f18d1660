"""Cold start: wall time of `semsearch --help` and of a one-shot `semsearch query`, and its parts.

    python benchmarks/cold.py [--runs 5] [--json out.json]

Each figure is the median of fresh processes. The parts of the one-shot query are timed in
fresh processes too: starting Python, importing the CLI, importing sentence-transformers
(which imports torch and transformers), loading the model, opening the index and searching.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

SAMPLE = Path(__file__).resolve().parent.parent / "semsearch" / "sample"
SEMSEARCH = [str(Path(sys.executable).parent / "semsearch")]  # the installed command


def wall(command: list[str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = str(Path(tmp) / "sample")
        subprocess.run([*SEMSEARCH, "index", "-i", index, str(SAMPLE)], check=True,
                       capture_output=True)
        query = [*SEMSEARCH, "query", "-i", index, "how do I bake bread"]
        steps = [
            ("python -c pass", python("pass")),
            ("semsearch --help", [*SEMSEARCH, "--help"]),
            ("import semsearch.cli", python("import semsearch.cli")),
            ("+ import sentence_transformers",
             python("import semsearch.cli, sentence_transformers")),
            ("+ load the model", python("from semsearch.encoder import load_encoder;"
                                        " load_encoder()")),
            ("+ open the index, search (dense)", python(
                "from semsearch import Index, SearchOptions;"
                f" Index.open({index!r}).search('how do I bake bread',"
                " SearchOptions(mode='dense'))")),
            ("semsearch query (one-shot, hybrid)", query),
        ]
        rows = [{"step": name, "seconds": wall(command, args.runs)} for name, command in steps]
    report(f"Cold start, median of {args.runs} fresh processes", rows, args.json_path,
           vars(args))


if __name__ == "__main__":
    main()
