"""One-shot commands run without torch: queries, reads and small updates embed on ONNX Runtime
with `tokenizers`, from the export torch made once, and give the torch path's hits. Each import
check runs the real command in a fresh interpreter under ``python -X importtime``."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semsearch.encoder import load_encoder

HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "sqlite_utils",
         "umap", "numba", "mcp", "mcp_types")
SAMPLE = Path(__file__).resolve().parent.parent / "semsearch" / "sample"


def fresh(*args: str, env: dict | None = None) -> tuple[str, set[str]]:
    """Run ``semsearch ARGS`` in a new interpreter: its stdout, and the top-level packages it
    imported (read from -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "semsearch", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done.stdout, imported


def test_reads_and_queries_import_no_heavy_library(run, run_json, corpus, fake_model,
                                                   indexes_home):
    run_json("index", "-i", "light", "--model", fake_model, corpus)
    run("cluster", "-i", "light", "-k", "2")
    commands = [("query", "-i", "light", "red planet", "--json"),
                ("query", "-i", "light", "red planet", "--mode", "dense"),
                ("query", "-i", "light", "red planet", "--mode", "keyword"),
                ("query", "-i", "light", "planet", "--cluster", "1"),
                ("info", "-i", "light"), ("list",), ("check", "-i", "light"),
                ("clusters", "-i", "light"), ("--help",), ("mcp", "--help")]
    for command in commands:
        output, imported = fresh(*command, env={"SEMSEARCH_INDEXES": str(indexes_home)})
        assert output.strip(), command
        assert not imported & set(HEAVY), (command, sorted(imported & set(HEAVY)))
        assert "onnxruntime" in imported or command[0] != "query" or "keyword" in command
        if "keyword" in command or command[0] in ("info", "list", "clusters"):
            assert not imported & {"faiss", "onnxruntime"}, command  # no vectors read
    hits = json.loads(fresh(*commands[0], env={"SEMSEARCH_INDEXES": str(indexes_home)})[0])
    assert hits[0]["hits"][0]["text"] == "Mars is called the red planet."


def test_one_changed_note_is_indexed_without_torch(run_json, corpus, fake_model, indexes_home):
    run_json("index", "-i", "notes", "--model", fake_model, corpus)
    note = corpus / "pets.txt"
    note.write_text(note.read_text() + " Hamsters run at night.")
    output, imported = fresh("index", "-i", "notes", str(note), "--json",
                             env={"SEMSEARCH_INDEXES": str(indexes_home)})
    assert json.loads(output)["replaced"] == 1
    assert not imported & {"torch", "transformers", "sentence_transformers"}  # sqlite-utils writes
    hits = run_json("query", "-i", "notes", "hamsters at night", "--mode", "keyword")
    assert "Hamsters run at night." in hits[0]["hits"][0]["text"]


def test_bulk_work_goes_to_torch_by_its_tokens_and_gets_the_same_vectors():
    from semsearch.encoder import AdaptiveEncoder

    encoder = load_encoder()
    assert isinstance(encoder, AdaptiveEncoder)
    long_text = "the moon shows phases as it circles the earth " * 25
    tokens = int(encoder.token_counts([long_text])[0])
    assert not encoder.is_bulk(["backups run nightly"] * 1000)  # many texts, few tokens
    bulk = [long_text] * (encoder.torch_from // tokens + 1)
    assert encoder.is_bulk(bulk)
    assert not encoder.is_bulk(bulk[:-1])
    texts = ["backups run nightly", long_text]
    small = encoder.encode(texts)
    assert encoder.encode(texts + bulk)[:2] == pytest.approx(small, abs=1e-2)  # bf16 on torch


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_the_torch_free_path_gives_the_torch_hits_on_the_sample(run_json, mode):
    run_json("index", "-i", "sample", SAMPLE)
    queries = ["how do I bake bread", "dark sky", "backups of my files", "sleep better",
               "trains across Europe", "x"]
    for query in queries:
        torch_hits = run_json("--backend", "torch", "--precision", "fp32", "query", "-i",
                              "sample", query, "--mode", mode, "-k", "10")[0]["hits"]
        fast_hits = run_json("query", "-i", "sample", query, "--mode", mode,
                             "-k", "10")[0]["hits"]
        assert [h["unit_id"] for h in fast_hits] == [h["unit_id"] for h in torch_hits], query
        assert max(abs(a["dense_score"] - b["dense_score"]) for a, b in
                   zip(fast_hits, torch_hits, strict=True)) < 1e-5


@pytest.fixture(scope="module")
def attention_model(tmp_path_factory, tiny_bert):
    """An attention-pooled sentence-transformers folder, as `semsearch train --pooling
    attention` writes one (the same save)."""
    folder = tmp_path_factory.mktemp("attention") / "model"
    load_encoder(tiny_bert, "attention", backend="torch", precision="fp32").model.save(
        str(folder), safe_serialization=True)
    return folder


@pytest.mark.parametrize("pooling", ["cls", "max", "attention"])
def test_every_pooling_runs_without_torch(run, run_json, corpus, tiny_bert, attention_model,
                                          indexes_home, pooling):
    model = attention_model if pooling == "attention" else tiny_bert
    given = [] if pooling == "attention" else ["--pooling", pooling]  # the folder's own
    run_json("index", "-i", pooling, "--model", model, *given, corpus)
    assert run_json("info", "-i", pooling)["pooling"] == pooling
    output, imported = fresh("query", "-i", pooling, "red planet", "--mode", "dense", "--json",
                             env={"SEMSEARCH_INDEXES": str(indexes_home)})
    assert not imported & set(HEAVY) and "onnxruntime" in imported
    torch_hits = run_json("--backend", "torch", "--precision", "fp32", "query", "-i", pooling,
                          "red planet", "--mode", "dense")[0]["hits"]
    fast_hits = json.loads(output)[0]["hits"]
    assert [h["unit_id"] for h in fast_hits] == [h["unit_id"] for h in torch_hits]
    assert max(abs(a["score"] - b["score"]) for a, b in
               zip(fast_hits, torch_hits, strict=True)) < 1e-5


def test_without_a_writable_cache_a_query_falls_back_to_torch_and_says_so(
        run_json, corpus, tiny_bert, tmp_path, indexes_home):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model, ignore=shutil.ignore_patterns("onnx"))
    run_json("--backend", "torch", "index", "-i", "old", "--model", model, corpus)
    (model / "onnx").write_text("not a folder")  # the model's folder cannot hold the export
    (tmp_path / "cache").write_text("not a folder")  # nor can the cache
    env = {"SEMSEARCH_INDEXES": str(indexes_home), "SEMSEARCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "semsearch", "query", "-i", "old",
                           "red planet", "--json"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["hits"]
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "semsearch index --prepare" in notes[0]
    (model / "onnx").unlink()
    output, _ = fresh("index", "-i", "old", "--prepare", env=env)
    assert "queries run without torch" in output
    _, imported = fresh("query", "-i", "old", "red planet", env=env)
    assert "torch" not in imported
