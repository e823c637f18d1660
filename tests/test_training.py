import json

import numpy as np
import pytest

from conftest import DATA
from semsearch.encoder import load_encoder
from semsearch.errors import ModelError


def torch_fp32(model=None, **options):
    """Exact comparisons: torch in fp32 (bf16, auto on some CPUs, rounds by batch shape)."""
    return load_encoder(model, precision="fp32", backend="torch", **options)


def test_attention_pooling_equals_mean_pooling_before_training():
    encoder = torch_fp32()  # exact comparisons: bf16 (auto on some CPUs) rounds
    attention = torch_fp32(pooling="attention")
    texts = ["A short one.", "A much longer sentence, with many more word pieces than the other."]
    assert attention.pooling == "attention"
    np.testing.assert_allclose(attention.encode(texts), encoder.encode(texts), atol=1e-6)


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_pooling_heads_start_as_masked_mean_and_round_trip(tmp_path, heads):
    import torch

    from semsearch.pooling import AttentionPooling

    tokens = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    features = {"token_embeddings": tokens, "attention_mask": mask}
    pooled = AttentionPooling(8, heads)(dict(features))["sentence_embedding"]
    expected = (tokens * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(pooled, expected)

    trained = AttentionPooling(8, heads)
    torch.nn.init.normal_(trained.scorer.weight)
    trained.save(str(tmp_path))
    loaded = AttentionPooling.load(str(tmp_path))
    assert loaded.heads == heads
    torch.testing.assert_close(loaded(dict(features))["sentence_embedding"],
                               trained(dict(features))["sentence_embedding"])


def test_attention_pooling_saved_before_heads_loads_as_one_head(tmp_path):
    from semsearch.pooling import AttentionPooling

    AttentionPooling(8, 1).save(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"embedding_dimension": 8}))
    assert AttentionPooling.load(str(tmp_path)).heads == 1


def test_a_folder_naming_foreign_code_is_refused(tmp_path, encoder):
    encoder.model.save(str(tmp_path / "model"))
    modules = json.loads((tmp_path / "model" / "modules.json").read_text())
    modules[1]["type"] = "evil_package.Backdoor"
    (tmp_path / "model" / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match="custom module 'evil_package.Backdoor'"):
        load_encoder(tmp_path / "model")


def cosent_loss(model) -> float:
    """CoSENT loss of a model over all the pairs of the mini STS file, in one batch."""
    import torch
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from semsearch.evaluation import read_sts

    first, second, scores = read_sts(DATA / "sts-mini.csv")
    with torch.no_grad():
        features = [model.tokenize(first), model.tokenize(second)]
        return float(CoSENTLoss(model)(features, torch.tensor(scores) / 5))


def test_tiny_training_run_learns_saves_loads_and_resumes(run_json, tmp_path, corpus):
    output = tmp_path / "trained"
    args = ("train", DATA / "sts-mini.csv", "--output", output, "--pooling", "attention",
            "--batch-size", "4", "--lr", "2e-5", "--seed", "3")
    first = run_json(*args, "--epochs", "2")
    assert first["loss"] == "cosent" and first["steps"] == 10 and len(first["losses"]) == 10
    trained = torch_fp32(output)
    assert cosent_loss(trained.model) < cosent_loss(torch_fp32().model)
    assert trained.pooling == "attention"
    weights = trained.model[1].scorer.weight.detach().numpy()
    assert np.abs(weights).max() > 0  # the attention layer moved away from mean pooling
    resaved = tmp_path / "resaved"
    trained.model.save(str(resaved))
    texts = ["A man plays the guitar.", "A cat naps."]
    np.testing.assert_array_equal(torch_fp32(resaved).encode(texts),
                                  trained.encode(texts))
    run_json("index", "-i", "tuned", "--model", output, corpus)
    assert run_json("info", "-i", "tuned")["pooling"] == "attention"

    resumed = run_json(*args, "--epochs", "3", "--resume")
    assert resumed["steps"] == 15 and len(resumed["losses"]) == 15
    assert resumed["losses"][:10] == first["losses"]  # carried on from the saved checkpoint


def test_training_data_layouts(tmp_path):
    from semsearch.evaluation import held_out
    from semsearch.training import read_training_data

    (tmp_path / "pairs.jsonl").write_text('{"anchor": "q", "positive": "p"}\n')
    (tmp_path / "triplets.csv").write_text("anchor,positive,negative\nq,p,n\n")
    (tmp_path / "scored.csv").write_text("s1,s2,score\na,b,4\nc,d,2\n")
    assert read_training_data(tmp_path / "pairs.jsonl").kind == "pairs"
    assert read_training_data(tmp_path / "triplets.csv").kind == "triplets"
    scored = read_training_data(tmp_path / "scored.csv")
    assert scored.kind == "scored" and scored.columns["score"] == [1.0, 0.5]
    beir = read_training_data(DATA / "beir-mini", split="test")
    assert beir.kind == "pairs" and len(beir) == 5 and len(beir.corpus) == 10
    kept = read_training_data(DATA / "beir-mini", split="test", hold_out=0.5)
    assert len(kept) == sum(not held_out(q, 0.5) for q in ["q1", "q2", "q3", "q4", "q5"])


def test_dev_selection_keeps_the_starting_model_when_training_hurts(run, tmp_path):
    output = tmp_path / "kept"
    result = run("train", DATA / "sts-mini.csv", "--output", output, "--dev", DATA / "sts-mini.csv",
                 "--batch-size", "4", "--lr", "3e-4", "--json")
    report = json.loads(result.stdout)
    assert report["kept_start"] and report["best_dev"] == report["start_dev"]
    assert "the output is the starting model" in result.stderr
    texts = ["A man plays the guitar.", "Rain is expected tomorrow."]
    np.testing.assert_allclose(torch_fp32(output).encode(texts),
                               torch_fp32().encode(texts), atol=1e-6)


@pytest.mark.parametrize("data, kind, recipe", [
    ("sts-mini.csv", "scored", (2, 16, 2e-5)),
    ("beir-mini", "pairs", (2, 32, 5e-5)),
])
def test_the_recipe_follows_the_data_kind_unless_a_flag_sets_it(run_json, tmp_path, data, kind,
                                                                 recipe):
    from semsearch.training import DEFAULT_RECIPES

    split = ("--split", "test") if kind == "pairs" else ()
    default = run_json("train", DATA / data, *split, "--output", tmp_path / "default")
    assert (default["epochs"], default["batch_size"], default["lr"]) == recipe
    chosen = DEFAULT_RECIPES[kind]
    assert (chosen.epochs, chosen.batch_size, chosen.lr) == recipe
    flagged = run_json("train", DATA / data, *split, "--output", tmp_path / "flagged",
                       "--epochs", "1", "--batch-size", "4", "--lr", "1e-5")
    assert (flagged["epochs"], flagged["batch_size"], flagged["lr"]) == (1, 4, 1e-5)
