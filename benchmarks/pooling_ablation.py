"""Pooling ablation on STS Benchmark: zero-shot and after `semsearch train`, per pooling.

    python benchmarks/pooling_ablation.py ../shared/data/stsb [--poolings mean,cls,max,attention]
        [--epochs 1] [--lr 2e-5] [--batch-size 32] [--loss cosent] [--eval-steps N]
        [--seeds 42] [--pooling-lr-factor 50] [--json out.json]

Each pooling starts from the default model's transformer, trains on sts-train.csv, keeps the
checkpoint that scores best on sts-dev.csv, and is scored once on sts-test.csv. With several
``--seeds`` each pooling trains once per seed (the same data order for every pooling at a given
seed, so the comparison is paired) and a mean row per pooling follows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from statistics import mean

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.evaluation import evaluate_sts
from semsearch.training import POOLING_HEAD_LR_FACTOR, dev_evaluator, read_training_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with sts-train.csv, sts-dev.csv, sts-test.csv")
    parser.add_argument("--poolings", default="mean,cls,max,attention")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loss", default="cosent")
    parser.add_argument("--eval-steps", type=int, help="score dev every N steps, not per epoch")
    parser.add_argument("--seeds", default="42", help="comma-separated training seeds")
    parser.add_argument("--pooling-lr-factor", type=float, default=POOLING_HEAD_LR_FACTOR,
                        help="learning rate of the attention-pooling scorer, x the encoder's")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    folder = Path(args.folder)
    data = read_training_data(folder / "sts-train.csv")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    poolings = args.poolings.split(",")
    zero_shot = {pooling: evaluate_sts(folder / "sts-test.csv", pooling=pooling)["spearman"]
                 for pooling in poolings}
    runs = []
    for seed in seeds:  # seed by seed, so a cut-short run still compares every pooling
        for pooling in poolings:
            with tempfile.TemporaryDirectory() as output:
                result = train(data, output, pooling=pooling, loss=args.loss, epochs=args.epochs,
                               lr=args.lr, batch_size=args.batch_size, seed=seed,
                               eval_steps=args.eval_steps, pooling_lr_factor=args.pooling_lr_factor,
                               dev=dev_evaluator(folder / "sts-dev.csv"), progress=False)
                trained = evaluate_sts(folder / "sts-test.csv", model=output)["spearman"]
            runs.append({"pooling": pooling, "seed": seed, "zero-shot test": zero_shot[pooling],
                         "best dev": round(100 * result.best_dev, 2), "trained test": trained,
                         "change": round(trained - zero_shot[pooling], 2),
                         "train seconds": result.seconds})
            print(runs[-1], flush=True)
    rows = []
    for pooling in poolings:
        own = [run for run in runs if run["pooling"] == pooling]
        rows += own
        if len(own) > 1:
            rows.append({column: round(mean(run[column] for run in own), 2)
                         if column not in ("pooling", "seed") else own[0][column]
                         for column in own[0]} | {"seed": "mean"})
    report(f"STSb test Spearman x100 by pooling ({args.loss}, {args.epochs:g} epoch(s),"
           f" lr {args.lr:g}, batch {args.batch_size})", rows, args.json_path, vars(args))


if __name__ == "__main__":
    main()
