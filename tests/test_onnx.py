"""The ONNX Runtime backend: exported once, cached, same vectors as torch (fp32), close (int8)."""

import os

import numpy as np
import pytest

from semsearch.encoder import load_encoder
from semsearch.errors import ModelError
from semsearch.onnx_export import onnx_file

TEXTS = ["The Moon orbits the Earth.", "Bake the bread in a hot oven until golden.",
         "A very long sentence " * 60, "x"]


@pytest.mark.parametrize("pooling", ["cls", "max", "attention"])
def test_export_gives_the_torch_vectors_for_any_pooling(tiny_bert, pooling):
    torch_vectors = load_encoder(tiny_bert, pooling, backend="torch", precision="fp32")
    onnx_vectors = load_encoder(tiny_bert, pooling, backend="onnx")
    assert onnx_vectors.backend == "onnx" and onnx_vectors.precision == "fp32"
    np.testing.assert_allclose(onnx_vectors.encode(TEXTS, batch_size=3),
                               torch_vectors.encode(TEXTS), atol=1e-5)
    assert (tiny_bert / "onnx").is_dir()  # cached next to the model


def test_default_model_fp32_and_int8_against_torch(encoder):
    onnx = load_encoder(backend="onnx").encode(TEXTS)
    int8 = load_encoder(backend="onnx", precision="int8").encode(TEXTS)
    torch_encoder = load_encoder(backend="torch", precision="fp32")
    reference = torch_encoder.encode(TEXTS)
    plain = torch_encoder.model.encode(TEXTS, normalize_embeddings=True)  # sentence-transformers
    assert np.abs(reference - plain).max() < 1e-5
    assert np.abs(onnx - reference).max() < 1e-5
    assert load_encoder(backend="onnx").encode([]).shape == (0, 384)
    assert (int8 * reference).sum(axis=1).min() > 0.97  # quantised, close
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-5)


def test_a_read_only_model_folder_caches_elsewhere(tiny_bert, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder, ignore=shutil.ignore_patterns("onnx"))
    (folder / "onnx").write_text("not a folder")  # mkdir fails, even for root
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    encoder = load_encoder(folder, "mean", device="cpu", precision="fp32", backend="torch")
    model, folder = encoder.model, encoder.path  # torch: nothing exported yet
    assert not (tmp_path / "cache").exists()
    exported = onnx_file(model, folder, "fp32")
    assert exported.parent == tmp_path / "cache" / "onnx" and exported.stat().st_size > 0
    assert not [p for p in exported.parent.iterdir() if p.suffix == ".tmp"]
    written = exported.stat().st_mtime_ns
    assert onnx_file(model, folder, "fp32") == exported
    assert exported.stat().st_mtime_ns == written  # reused, not exported again


def test_cli_backend_and_precision_choices(run, run_json, corpus):
    run_json("index", "-i", "b", corpus)
    torch_hits = run_json("--precision", "fp32", "query", "-i", "b", "red planet",
                          "--mode", "dense")[0]["hits"]
    onnx_hits = run_json("--backend", "onnx", "query", "-i", "b", "red planet",
                         "--mode", "dense")[0]["hits"]
    assert [h["unit_id"] for h in onnx_hits] == [h["unit_id"] for h in torch_hits]
    assert max(abs(a["score"] - b["score"]) for a, b in
               zip(onnx_hits, torch_hits, strict=True)) < 1e-4
    int8 = run_json("--backend", "onnx", "--precision", "int8", "query", "-i", "b",
                    "red planet", "--mode", "dense")[0]["hits"]
    assert int8[0]["text"] == "Mars is called the red planet."
    assert run_json("--backend", "onnx", "info", "-i", "b")["encoder"]["backend"] == "onnx"
    assert os.environ.get("SEMSEARCH_BACKEND") is None  # the setting ends with the command
    auto_int8 = run_json("--precision", "int8", "query", "-i", "b", "red planet", "--mode",
                         "dense")[0]["hits"]  # auto: ONNX Runtime's int8 for the query
    assert [h["unit_id"] for h in auto_int8] == [h["unit_id"] for h in int8]
    assert "runs on ONNX Runtime" in run("--backend", "torch", "--precision", "int8", "query",
                                         "-i", "b", "x", expect=1).stderr
    assert "runs fp32 or int8" in run("--backend", "onnx", "--precision", "bf16", "query",
                                      "-i", "b", "x", expect=1).stderr
    with pytest.raises(ModelError, match="unknown backend"):
        load_encoder(backend="tensorrt")
