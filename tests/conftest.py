import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_model import build_fake_model

import semsearch  # noqa: F401  (offline environment before torch/faiss)
from semsearch.cli import cli
from semsearch.encoder import load_encoder, prepare_fast_path
from semsearch.model_folder import default_model_path

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def default_model_export():
    """The default model's ONNX export, made once before any test (as the first `semsearch
    index` makes it): every test then sees the torch-free query path, whatever runs first."""
    return prepare_fast_path(None, "mean")


@pytest.fixture(scope="session")
def encoder():
    """The default model on torch, loaded once for the whole session (the CLI reuses this
    copy for bulk work)."""
    return load_encoder(backend="torch")


@pytest.fixture(scope="session")
def fake_model(tmp_path_factory):
    """The folder of the small deterministic model (tests/fake_model.py), built once per
    session: for the tests of storage, plumbing and reliability, as ``--model`` or ``model=``.
    Tests that judge the quality of hits use the real model (the ``encoder`` fixture)."""
    return build_fake_model(tmp_path_factory.mktemp("fake-model"))


@pytest.fixture(autouse=True)
def indexes_home(tmp_path, monkeypatch):
    home = tmp_path / "indexes"
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(home))
    return home


@pytest.fixture
def run():
    """Invoke the CLI in-process; fail the test on an unexpected exit code. The models it loads
    stay loaded for the session (the default one is the ``encoder`` fixture's copy)."""

    def invoke(*args, input=None, expect=0):
        """``expect``: the exit code, or None where the test reads the answer instead."""
        result = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                                    catch_exceptions=False)
        assert expect is None or result.exit_code == expect, result.output + result.stderr
        return result

    return invoke


@pytest.fixture
def run_json(run):
    def invoke(*args, **kwargs):
        return json.loads(run(*args, "--json", **kwargs).stdout)

    return invoke


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "pets.txt").write_text(
        "Cats sleep for most of the day.\nDogs need a walk every morning.\n\n"
        "A parrot can learn to repeat words.")
    (folder / "space.md").write_text(
        "# Space\n\nThe Moon orbits the Earth. Mars is called the red planet.\n\n"
        "Astronauts live on the International Space Station.")
    (folder / "food.html").write_text(
        "<html><head><title>Kitchen</title><script>var secret = 'hidden';</script></head>"
        "<body><p>Bake the bread in a hot oven.</p><p>Boil pasta in salted water.</p>"
        "</body></html>")
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, encoder):
    """A small random BERT folder (no sentence-transformers config): another model, dim 32."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(default_model_path() / name, folder / name)
    return folder


XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


@pytest.fixture(scope="session")
def site_index(tmp_path_factory, encoder):
    """A small index as a served site sees it: topics, metadata, a document id that looks like a
    path, a document whose text is markup, and a stored cluster run."""
    from semsearch import Index
    from semsearch.clustering import cluster_index
    from semsearch.index import IndexSettings
    from semsearch.readers import Document

    path = tmp_path_factory.mktemp("site") / "site"
    index = Index.create(path, settings=IndexSettings(unit="sentence"))
    index.add([
        Document(id="notes/bread.txt", title="Baking bread", metadata={"topic": "food"},
                 text="Flour, water and yeast make dough. Bake the loaf in a hot oven until the"
                      " crust is golden. Let it cool before slicing."),
        Document(id="space", title="The night sky", metadata={"topic": "space"},
                 text="The Moon orbits the Earth every month. Mars is called the red planet."),
        Document(id="pets", title="Pets", metadata={"topic": "animals"},
                 text="Cats sleep for most of the day. Dogs need a walk every morning."),
        Document(id="markup", title="<b>Markup</b> title", metadata={"topic": "web"},
                 text=f"A page about zebrafish markup. {XSS} It must render as text."),
    ])
    cluster_index(index, k=3, seed=0)
    index.store.close()
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, probe: Callable[[], object],
                       failure: Callable[[], str], seconds: float = 120) -> None:
    """Poll ``probe`` until it stops raising OSError; fail with ``failure()`` if the server
    process exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(failure())
            time.sleep(0.2)
