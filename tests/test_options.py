"""Every search option is one definition (``SearchOptions``): `semsearch query`, GET /search,
POST /search and ``Index.search`` accept each the same way and give the same hits."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from semsearch.cli import cli  # noqa: E402
from semsearch.errors import InputError  # noqa: E402
from semsearch.index import Index  # noqa: E402
from semsearch.readers import Document  # noqa: E402
from semsearch.search import SearchOptions, option_specs  # noqa: E402
from semsearch.server import create_app  # noqa: E402
from semsearch.service import cluster  # noqa: E402

TEXTS = {
    "bread": ("kitchen", "Knead the dough for ten minutes. Let the bread rise overnight."
                         " Bake it in a hot oven."),
    "soup": ("kitchen", "Simmer the onions slowly. Add stock and season the soup."),
    "kettle": ("kitchen", "The kettle boils water quickly. Descale it every month."),
    "mars": ("space", "Mars is the red planet. Its dust storms can cover the whole planet."),
    "moon": ("space", "The Moon orbits the Earth. Tides follow the Moon."),
    "comet": ("space", "A comet has a tail of gas and dust. It glows near the Sun."),
}
QUERY = "the red planet and its dust"
# Per option: a value unlike its default, with the other options it takes effect under.
CASES = {"k": {"k": 3}, "mode": {"mode": "keyword"}, "where": {"where": {"topic": "kitchen"}},
         "by_document": {"by_document": True}, "cluster": {"cluster": "0"},
         "min_score": {"min_score": 0.2}, "context": {"context": 1}, "effort": {"effort": 2},
         "fusion": {"fusion": "rrf"}, "rrf_k": {"fusion": "rrf", "rrf_k": 1.0},
         "alpha": {"alpha": 0.3}}


@pytest.fixture(scope="module")
def options_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("options") / "index"
    index = Index.create(path)
    index.add([Document(id=name, text=text, source="test", metadata={"topic": topic})
               for name, (topic, text) in TEXTS.items()])
    cluster(index, k=2)
    index.store.close()
    return path


@pytest.fixture(scope="module")
def client(options_index):
    with TestClient(create_app(Index.open(options_index))) as client:
        yield client


def test_every_option_has_a_case():
    assert set(CASES) == {spec.name for spec in option_specs()} == {
        item.name for item in fields(SearchOptions)}


def _argv(options: dict) -> list[str]:
    argv = []
    for name, value in options.items():
        flag = next(spec.flag for spec in option_specs() if spec.name == name)
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):
            argv += [part for key, item in value.items() for part in (flag, f"{key}={item}")]
        else:
            argv += [flag, str(value)]
    return argv


def _parameters(options: dict) -> dict:
    return {name: [f"{key}={item}" for key, item in value.items()] if isinstance(value, dict)
            else "true" if value is True else str(value) for name, value in options.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_each_option_is_taken_alike_by_every_front_end(name, options_index, client):
    options = CASES[name]
    index = Index.open(options_index)
    expected = [hit.to_dict() for hit in index.search(QUERY, SearchOptions(**options))[0]]
    if name != "effort":  # effort changes nothing on an exact (Flat) index
        without = SearchOptions(**{key: value for key, value in options.items() if key != name})
        assert expected != [hit.to_dict() for hit in index.search(QUERY, without)[0]], (
            f"{options} should change the hits")
    result = CliRunner().invoke(cli, ["query", QUERY, "--index", str(options_index), "--json",
                                      *_argv(options)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["hits"] == expected
    got = client.get("/search", params={"q": QUERY, **_parameters(options)})
    assert got.status_code == 200, got.text
    assert got.json()["hits"] == expected
    posted = client.post("/search", json={"queries": [QUERY], **options})
    assert posted.status_code == 200, posted.text
    assert posted.json()["results"][0]["hits"] == expected


OUT_OF_BOUNDS = [(spec.name, value) for spec in option_specs()
                 for value in (spec.low - 1 if spec.low is not None else None,
                               spec.high + 1 if spec.high is not None else None)
                 if value is not None] + [("mode", "fuzzy"), ("fusion", "max"),
                                          ("cluster", "one")]


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_each_bound_is_enforced_by_every_front_end(name, value, options_index, client):
    if isinstance(value, float) and name in ("k", "context", "effort"):
        value = int(value)
    with pytest.raises(InputError):
        SearchOptions(**{name: value})
    result = CliRunner().invoke(cli, ["query", QUERY, "--index", str(options_index),
                                      *_argv({name: value})])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert client.get("/search", params={"q": QUERY, **_parameters({name: value})}
                      ).status_code == 400
    assert client.post("/search", json={"queries": [QUERY], name: value}).status_code == 400
