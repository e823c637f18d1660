"""SBERT-style siamese fine-tuning through sentence-transformers' trainer.

Scored pairs train with CoSENT, cosine-similarity or AnglE loss; (anchor, positive) pairs and
BEIR folders with MultipleNegativesRankingLoss (in-batch negatives, no duplicate texts in a
batch), optionally with hard negatives mined by the starting model; triplets with MNRL too.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
    mine_hard_negatives,
)
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
)

from semsearch.encoder import load_encoder
from semsearch.errors import InputError
from semsearch.evaluation import held_out, read_beir, read_sts
from semsearch.onnx_export import prepare_export
from semsearch.pooling import AttentionPooling
from semsearch.torch_encoder import TorchEncoder, pooling_of

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modality_types import SingleInput

SCORED_LOSSES = ("cosent", "cosine", "angle")
# A freshly initialised attention-pooling scorer learns at this multiple of the encoder's rate:
# at the encoder's own rate it barely moves from mean pooling within one epoch.
POOLING_HEAD_LR_FACTOR = 50


@dataclass(frozen=True)
class Recipe:
    epochs: float
    batch_size: int
    lr: float


# What `semsearch train` runs when no flag says otherwise, by data kind; chosen over seeds on
# dev or on queries training never saw (benchmarks/train_recipes.py, docs/benchmarks.md).
# Scored pairs: one epoch at batch 32 never beat all-MiniLM-L6-v2 on STSb dev; batch 16 for
# two epochs does at every seed. Query->document pairs: two epochs at 5e-5 beat 3e-5 and one
# epoch on held-back SciFact queries at every seed.
DEFAULT_RECIPES = {
    "scored": Recipe(epochs=2, batch_size=16, lr=2e-5),
    "pairs": Recipe(epochs=2, batch_size=32, lr=5e-5),
    "triplets": Recipe(epochs=2, batch_size=32, lr=5e-5),
}
# What dev_evaluator makes and train selects checkpoints with.
DevEvaluator = InformationRetrievalEvaluator | EmbeddingSimilarityEvaluator


@dataclass
class TrainingData:
    kind: str  # "scored", "pairs" or "triplets"
    columns: dict[str, list]
    corpus: list[str] | None = None  # where hard negatives can be mined from

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


@dataclass
class TrainResult:
    output: str
    examples: int
    loss: str
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    dev: list[dict] = field(default_factory=list)
    start_dev: float | None = None
    best_dev: float | None = None
    kept_start: bool = False  # training never beat the starting model on dev, so it was kept
    epochs: float = 0.0
    batch_size: int = 0
    lr: float = 0.0


def _records(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix in {".jsonl", ".ndjson"}:
            return [json.loads(line) for line in handle if line.strip()]
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def _is_sts_layout(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        first = handle.readline().split("\t")
    try:
        return len(first) >= 7 and float(first[4]) >= 0
    except ValueError:
        return False


def read_training_data(
    path: str | Path, split: str = "train", hold_out: float = 0.0
) -> TrainingData:
    """Detect the layout: a BEIR folder, an STS Benchmark file, or CSV/JSONL records with
    (sentence1, sentence2, score), (anchor, positive) or (anchor, positive, negative)."""
    path = Path(path)
    if path.is_dir():
        documents, queries, qrels = read_beir(path, split)
        texts = {doc.id: doc.text for doc in documents}
        pairs = [(queries[q], texts[d]) for q in queries if not held_out(q, hold_out)
                 for d, rel in qrels[q].items() if rel > 0 and d in texts]
        return TrainingData("pairs", {"anchor": [a for a, _ in pairs],
                                      "positive": [p for _, p in pairs]},
                            corpus=list(texts.values()))
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    if path.suffix in {".csv", ".tsv", ".txt"} and _is_sts_layout(path):
        first, second, scores = read_sts(path)
        return TrainingData("scored", {"sentence1": first, "sentence2": second,
                                       "score": [s / 5.0 for s in scores]})
    try:
        records = _records(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read training data {path}: {exc}") from None
    keys = set(records[0]) if records else set()
    if {"anchor", "positive", "negative"} <= keys:
        return TrainingData("triplets", {k: [str(r[k]) for r in records]
                                         for k in ("anchor", "positive", "negative")})
    if {"anchor", "positive"} <= keys:
        return TrainingData("pairs", {k: [str(r[k]) for r in records]
                                      for k in ("anchor", "positive")})
    for first_key, second_key in (("sentence1", "sentence2"), ("s1", "s2")):
        if {first_key, second_key, "score"} <= keys:
            scores = [float(r["score"]) for r in records]
            top = max(scores) if max(scores) > 1 else 1.0
            return TrainingData("scored", {"sentence1": [str(r[first_key]) for r in records],
                                           "sentence2": [str(r[second_key]) for r in records],
                                           "score": [s / top for s in scores]})
    raise InputError(
        f"{path}: expected an STS file, a BEIR folder, or records with (s1, s2, score),"
        " (anchor, positive) or (anchor, positive, negative)")


def dev_evaluator(path: str | Path, split: str = "dev", hold_out: float = 0.0
                  ) -> DevEvaluator:
    """An STS file gives Spearman; a BEIR folder gives nDCG@10 (on its held-out queries when
    ``hold_out`` is set, so selection never sees the rest)."""
    path = Path(path)
    if path.is_dir():
        documents, all_queries, qrels = read_beir(path, split)
        queries: dict[str, SingleInput] = {
            q: t for q, t in all_queries.items() if not hold_out or held_out(q, hold_out)}
        retrieval = InformationRetrievalEvaluator(
            queries=queries, corpus={d.id: d.text for d in documents},
            relevant_docs={q: {d for d, r in qrels[q].items() if r > 0} for q in queries},
            ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[10],
            map_at_k=[10], name="dev", write_csv=False)
        retrieval.primary_metric = "dev_cosine_ndcg@10"
        return retrieval
    first, second, scores = read_sts(path)
    similarity = EmbeddingSimilarityEvaluator(
        first, second, [s / 5.0 for s in scores], main_similarity="cosine",
        similarity_fn_names=["cosine"], name="dev", write_csv=False)
    similarity.primary_metric = "dev_spearman_cosine"
    return similarity


def _loss(name: str, kind: str, model: SentenceTransformer) -> tuple[str, torch.nn.Module]:
    if kind == "scored":
        name = "cosent" if name == "auto" else name
        if name not in SCORED_LOSSES:
            raise InputError(f"--loss {name} does not fit scored pairs; use {SCORED_LOSSES}")
        return name, {"cosent": losses.CoSENTLoss, "cosine": losses.CosineSimilarityLoss,
                      "angle": losses.AnglELoss}[name](model)
    if name not in ("auto", "mnrl"):
        raise InputError(f"--loss {name} does not fit {kind}; use mnrl")
    return "mnrl", losses.MultipleNegativesRankingLoss(model)


def train(
    data: TrainingData, output: str | Path, *, model: str | None = None,
    pooling: str | None = None, loss: str = "auto", epochs: float | None = None,
    batch_size: int | None = None, lr: float | None = None,
    max_seq_length: int | None = None, seed: int = 42,
    hard_negatives: int = 0, dev: DevEvaluator | None = None, eval_steps: int | None = None,
    resume: bool = False,
    progress: bool = True, on_evaluate: Callable[[dict], None] | None = None,
    pooling_lr_factor: float = POOLING_HEAD_LR_FACTOR,
) -> TrainResult:
    """Fine-tune and save the model to ``output``; with ``dev``, keep the best checkpoint.
    Epochs, batch size and learning rate left as None come from the data kind's recipe."""
    if len(data) == 0:
        raise InputError("no training examples")
    recipe = DEFAULT_RECIPES[data.kind]
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    lr = recipe.lr if lr is None else lr
    transformers.set_seed(seed)
    transformers.logging.set_verbosity_error()
    encoder = load_encoder(model, pooling, precision="fp32", backend="torch")  # trains fp32
    assert isinstance(encoder, TorchEncoder), "backend torch"
    # Train a private copy: the cached encoder stays as it was for everything else.
    st_model = copy.deepcopy(encoder.model)
    if max_seq_length:
        st_model.max_seq_length = max_seq_length
    dataset = Dataset.from_dict(data.columns)
    if hard_negatives and data.kind == "pairs":
        dataset = mine_hard_negatives(
            dataset, st_model, corpus=data.corpus, num_negatives=hard_negatives, range_min=5,
            range_max=50, relative_margin=0.05, sampling_strategy="top", batch_size=batch_size,
            output_format="n-tuple", verbose=False)
    loss_name, loss_module = _loss(loss, data.kind, st_model)
    output = Path(output)
    head_lr = ({r"\.scorer\.": lr * pooling_lr_factor}
               if any(isinstance(m, AttentionPooling) for m in st_model) else {})
    strategy = ("steps" if eval_steps else "epoch") if dev is not None else "no"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output / "checkpoints"), num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
        learning_rate=lr, learning_rate_mapping=head_lr, warmup_steps=0.1, seed=seed,
        data_seed=seed,
        eval_strategy=strategy, save_strategy="steps" if eval_steps else "epoch",
        # None (epoch saving) is accepted: save_steps is read only when save_strategy is
        # "steps", which transformers' float annotation cannot say.
        eval_steps=eval_steps, save_steps=eval_steps,  # type: ignore[arg-type]
        save_total_limit=2,
        load_best_model_at_end=dev is not None,
        metric_for_best_model=f"eval_{dev.primary_metric}" if dev is not None else None,
        greater_is_better=True, logging_steps=1, report_to="none",
        batch_sampler=BatchSamplers.NO_DUPLICATES if loss_name == "mnrl"
        else BatchSamplers.BATCH_SAMPLER,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=not progress,
    )
    callbacks: list[transformers.TrainerCallback] = (
        [EvaluationReporter(on_evaluate, dev.primary_metric)] if dev is not None else [])
    trainer = SentenceTransformerTrainer(
        model=st_model, args=args, train_dataset=dataset, loss=loss_module, evaluator=dev,
        callbacks=callbacks)
    trainer.remove_callback(transformers.PrinterCallback)  # logs go to the result, not stdout
    # The starting model is a candidate too: selection on dev may keep it.
    start_dev = dev(encoder.model)[dev.primary_metric] if dev is not None else None
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=resume and _has_checkpoint(output / "checkpoints"))
    seconds = time.monotonic() - started
    best_dev = trainer.state.best_metric
    kept_start = False
    if start_dev is not None and best_dev is not None and start_dev >= best_dev:
        kept_start, best_dev = True, max(best_dev, start_dev)
    output.mkdir(parents=True, exist_ok=True)
    trained = encoder.model if kept_start else st_model
    trained.save(str(output), safe_serialization=True)
    # Made while torch is here: queries against indexes of the trained model start fast.
    prepare_export(trained.to("cpu").float(), output, pooling_of(trained) or "mean")
    history = trainer.state.log_history
    dev_scores = [{"epoch": h.get("epoch"), "step": h.get("step"),
                   "score": h[f"eval_{dev.primary_metric}"]}
                  for h in history if dev is not None and f"eval_{dev.primary_metric}" in h]
    return TrainResult(
        output=str(output), examples=len(dataset), loss=loss_name,
        steps=trainer.state.global_step, seconds=round(seconds, 1),
        losses=[h["loss"] for h in history if "loss" in h], dev=dev_scores,
        start_dev=start_dev, best_dev=best_dev, kept_start=kept_start, epochs=epochs,
        batch_size=batch_size, lr=lr)


def _has_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("checkpoint-*"))


class EvaluationReporter(transformers.TrainerCallback):
    """Passes each dev evaluation to ``report`` (the CLI prints a line per epoch)."""

    def __init__(self, report: Callable[[dict], None] | None, metric: str) -> None:
        self.report, self.metric = report, metric

    def on_evaluate(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                    control: transformers.TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.report and metrics:
            self.report({"epoch": state.epoch, "step": state.global_step,
                         "score": metrics.get(f"eval_{self.metric}")})
