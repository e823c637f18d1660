"""Pooling ablation on STS Benchmark: zero-shot and after `semsearch train`, per pooling.

    python benchmarks/pooling_ablation.py ../shared/data/stsb [--poolings mean,cls,max,attention]
        [--epochs 1] [--lr 2e-5] [--batch-size 32] [--loss cosent] [--eval-steps N]
        [--json out.json]

Each pooling starts from the default model's transformer, trains on sts-train.csv, keeps the
checkpoint that scores best on sts-dev.csv, and is scored once on sts-test.csv.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.evaluation import evaluate_sts
from semsearch.training import dev_evaluator, read_training_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with sts-train.csv, sts-dev.csv, sts-test.csv")
    parser.add_argument("--poolings", default="mean,cls,max,attention")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loss", default="cosent")
    parser.add_argument("--eval-steps", type=int, help="score dev every N steps, not per epoch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    folder = Path(args.folder)
    data = read_training_data(folder / "sts-train.csv")
    rows = []
    for pooling in args.poolings.split(","):
        zero_shot = evaluate_sts(folder / "sts-test.csv", pooling=pooling)["spearman"]
        with tempfile.TemporaryDirectory() as output:
            result = train(data, output, pooling=pooling, loss=args.loss, epochs=args.epochs,
                           lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                           eval_steps=args.eval_steps,
                           dev=dev_evaluator(folder / "sts-dev.csv"), progress=False)
            trained = evaluate_sts(folder / "sts-test.csv", model=output)["spearman"]
        rows.append({"pooling": pooling, "zero-shot test": zero_shot,
                     "best dev": round(100 * result.best_dev, 2), "trained test": trained,
                     "change": round(trained - zero_shot, 2), "train seconds": result.seconds})
        print(rows[-1], flush=True)
    report(f"STSb test Spearman x100 by pooling ({args.loss}, {args.epochs:g} epoch(s),"
           f" lr {args.lr:g}, batch {args.batch_size})", rows, args.json_path, vars(args))


if __name__ == "__main__":
    main()
