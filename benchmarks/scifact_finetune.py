"""Fine-tune on SciFact train queries (MNRL, with and without hard negatives) and score the
held-back queries that training never saw.

    python benchmarks/scifact_finetune.py ../shared/data/scifact [--hold-out 0.2]
        [--epochs 1] [--lr 3e-5] [--batch-size 32] [--hard-negatives 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.evaluation import evaluate_retrieval
from semsearch.training import read_training_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--hold-out", type=float, default=0.2)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hard-negatives", default="0,1",
                        help="comma-separated hard-negative counts, one training run each")
    parser.add_argument("--modes", default="dense,hybrid", help="search modes to score")
    parser.add_argument("--chunk", action="store_true", help="chunk long documents when scoring")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    data = read_training_data(args.folder, split="train", hold_out=args.hold_out)

    rows = []

    def score(name: str, model: str | None, pairs: int = 0, seconds: float = 0.0) -> None:
        result = evaluate_retrieval(args.folder, split="train", modes=args.modes.split(","),
                                    model=model, chunk=args.chunk, hold_out=args.hold_out)
        for metrics in result["results"]:
            rows.append({"model": name, "train pairs": pairs, "train seconds": seconds,
                         **metrics})
            print(rows[-1], flush=True)

    score("all-MiniLM-L6-v2 (base)", None)
    for negatives in map(int, args.hard_negatives.split(",")):
        with tempfile.TemporaryDirectory() as output:
            result = train(data, output, loss="mnrl", epochs=args.epochs, lr=args.lr,
                           batch_size=args.batch_size, hard_negatives=negatives, progress=False)
            score(f"MNRL, {negatives} hard negative(s)", output, result.examples, result.seconds)
    report(f"SciFact held-back train queries ({args.hold_out:.0%})", rows, args.json_path,
           vars(args))


if __name__ == "__main__":
    main()
