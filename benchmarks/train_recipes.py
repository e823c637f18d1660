"""Training recipes compared over seeds: what `semsearch train`'s defaults are chosen from.

    python benchmarks/train_recipes.py sts ../shared/data/stsb
        [--recipes 1:32:2e-5,2:16:2e-5] [--seeds 42,1,2] [--json out.json]
    python benchmarks/train_recipes.py beir ../shared/data/scifact [--hold-out 0.2]
        [--recipes 1:32:3e-5,2:32:3e-5] [--seeds 42,1,2] [--json out.json]

A recipe is EPOCHS:BATCH:LR, and each runs once per seed. `sts`: train on sts-train.csv, the
checkpoint (or the starting model) chosen on sts-dev.csv only, then sts-test.csv scored once.
`beir`: train on the queries that --hold-out keeps for training, no dev, then the held-back
queries scored as `semsearch eval retrieval --hold-out` does (chunked, dense and hybrid). The
last rows are each recipe's mean and standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
from _common import report
from semsearch.evaluation import evaluate_retrieval, evaluate_sts
from semsearch.training import dev_evaluator, read_training_data, train


def sts_run(folder: Path, epochs: float, batch: int, lr: float, seed: int) -> dict:
    data = read_training_data(folder / "sts-train.csv")
    with tempfile.TemporaryDirectory() as output:
        result = train(data, output, epochs=epochs, batch_size=batch, lr=lr, seed=seed,
                       dev=dev_evaluator(folder / "sts-dev.csv"), progress=False)
        test = evaluate_sts(folder / "sts-test.csv", model=output)
    return {"best dev": 100 * result.best_dev, "kept start": result.kept_start,
            "test": test["spearman"], "train seconds": result.seconds}


def beir_run(folder: Path, hold_out: float, epochs: float, batch: int, lr: float,
             seed: int) -> dict:
    data = read_training_data(folder, split="train", hold_out=hold_out)
    with tempfile.TemporaryDirectory() as output:
        result = train(data, output, epochs=epochs, batch_size=batch, lr=lr, seed=seed,
                       progress=False)
        scored = evaluate_retrieval(folder, split="train", modes=["dense", "hybrid"],
                                    model=output, hold_out=hold_out)
    by_mode = {row["mode"]: row["ndcg@10"] for row in scored["results"]}
    return {"dense": by_mode["dense"], "hybrid": by_mode["hybrid"],
            "train seconds": result.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["sts", "beir"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--recipes", default="1:32:2e-5,2:16:2e-5")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--hold-out", type=float, default=0.2)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = []
    for recipe in args.recipes.split(","):
        epochs, batch, lr = recipe.split(":")
        runs = []
        for seed in map(int, args.seeds.split(",")):
            if args.kind == "sts":
                measured = sts_run(args.folder, float(epochs), int(batch), float(lr), seed)
            else:
                measured = beir_run(args.folder, args.hold_out, float(epochs), int(batch),
                                    float(lr), seed)
            runs.append(measured)
            rows.append({"recipe": recipe, "seed": seed, **measured})
            print(rows[-1], flush=True)
        summary: dict = {"recipe": recipe, "seed": "mean ± sd"}
        for key, value in runs[0].items():
            values = [run[key] for run in runs]
            if isinstance(value, bool):
                summary[key] = f"{sum(values)} of {len(values)}"
            else:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                summary[key] = f"{statistics.mean(values):.2f} ± {spread:.2f}"
        rows.append(summary)
    report(f"Training recipes ({args.kind}, {args.folder.name})", rows, args.json_path,
           {**vars(args), "folder": str(args.folder)})


if __name__ == "__main__":
    main()
