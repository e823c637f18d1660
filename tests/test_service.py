"""The library layer under every front end (semsearch.service): the rules the CLI and the server
used to keep for themselves hold from Python too."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from semsearch.cli import cli
from semsearch.errors import IndexMismatchError, InputError, UsageError
from semsearch.index import Index
from semsearch.readers import Document
from semsearch.service import (
    add_documents,
    cluster,
    index_files,
    list_indexes,
    open_index,
    open_or_create,
    remove_documents,
)
from semsearch.shards import ShardedIndex


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "bread.txt").write_text("Knead the dough. Let it rise overnight.\n")
    (folder / "moon.txt").write_text("The Moon orbits the Earth. Tides follow it.\n")
    return folder


def test_index_files_says_when_nothing_was_found(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    index = open_or_create(tmp_path / "index")
    with pytest.raises(InputError, match="no documents found"):
        index_files(index, [str(empty)])


def test_the_add_summary_is_the_same_from_python_and_the_cli(tmp_path, notes):
    from_python = index_files(open_or_create(tmp_path / "a"), [str(notes)]).to_dict()
    printed = CliRunner().invoke(cli, ["index", str(notes), "--index", str(tmp_path / "b"),
                                       "--json"])
    assert printed.exit_code == 0, printed.output
    from_cli = json.loads(printed.stdout)
    assert from_cli.pop("index") == str(tmp_path / "b")
    assert from_cli.keys() == from_python.keys()
    assert {**from_cli, "seconds": 0} == {**from_python, "seconds": 0}
    assert from_python["added"] == 2 and from_python["warnings"] == []


def test_warnings_are_passed_on_and_kept(tmp_path, notes):
    (notes / "blank.txt").write_text("   \n")
    seen: list[str] = []
    result = index_files(open_or_create(tmp_path / "index"), [str(notes)], warn=seen.append)
    assert result.warnings == seen and any("no text" in warning for warning in seen)
    again = add_documents(open_index(tmp_path / "index"),
                          [Document(id="blank", text=" ", source="api")])
    assert again.empty == 1 and again.warnings == ["blank: skipped, no text"]


def test_open_or_create_picks_sharded_or_single_and_keeps_settings(tmp_path, notes):
    assert isinstance(open_or_create(tmp_path / "single"), Index)
    sharded = open_or_create(tmp_path / "sharded", shards=2)
    assert isinstance(sharded, ShardedIndex)
    index_files(sharded, [str(notes)])
    assert isinstance(open_index(tmp_path / "sharded"), ShardedIndex)  # found by its layout
    with pytest.raises(IndexMismatchError, match="would need a new index"):
        open_or_create(tmp_path / "single", settings={"unit": "document"})
    with pytest.raises(UsageError, match="--ray works on sharded indexes"):
        open_index(tmp_path / "single", runner=lambda: pytest.fail("no runner is needed"))


def test_remove_takes_ids_or_the_files_documents_came_from(tmp_path, notes, monkeypatch):
    index = open_or_create(tmp_path / "index")
    index_files(index, [str(notes)])
    monkeypatch.chdir(notes)
    assert remove_documents(index, ["moon.txt"], paths=False) == 0  # an id, and none is that
    assert remove_documents(index, ["moon.txt"]) == 1  # the file: its documents
    assert remove_documents(index, [str(notes / "bread.txt")], paths=False) == 1  # its id
    assert index.info()["documents"] == 0


def test_list_indexes_shows_each_index_and_the_broken_ones(tmp_path, notes):
    index_files(open_or_create(tmp_path / "home" / "good"), [str(notes)])
    broken = tmp_path / "home" / "broken"
    broken.mkdir()
    (broken / "store.db").write_bytes(b"not a database")
    rows = {row["name"]: row for row in list_indexes(tmp_path / "home")}
    assert rows["good"]["documents"] == 2
    assert "is not a semsearch store" in rows["broken"]["error"]


def test_cluster_picks_the_method_a_sharded_index_can_run(tmp_path, notes):
    sharded = open_or_create(tmp_path / "sharded", shards=2)
    index_files(sharded, [str(notes)])
    with pytest.raises(InputError, match="clustered with kmeans"):
        cluster(sharded, method="agglomerative")
    run = cluster(sharded, k=2)
    assert run["parameters"]["shards"] == 2 and run["clusters"] == 2
