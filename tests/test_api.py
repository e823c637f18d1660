import pytest

from semsearch import Index, SearchOptions
from semsearch.errors import IndexBusyError, IndexMismatchError
from semsearch.index import LOCK_FILE, IndexSettings
from semsearch.readers import Document


def docs(*texts, prefix="d"):
    return [Document(id=f"{prefix}{i}", text=t, metadata={"n": i}) for i, t in enumerate(texts)]


def test_python_api_round_trip(tmp_path, encoder):
    index = Index.create(tmp_path / "idx", settings=IndexSettings(unit="sentence"))
    result = index.add(docs("The sun is a star. It is very hot.", "Fish live in water."))
    assert (result.added, result.units) == (2, 3)
    hits = Index.open(tmp_path / "idx").search("hot star", SearchOptions(k=2))[0]
    assert hits[0].document_id == "d0" and hits[0].text in {"The sun is a star.", "It is very hot."}
    found = Index.open(tmp_path / "idx").search("fish", SearchOptions(where={"n": "1"}))
    assert found[0][0].document_id == "d1"


def test_interrupted_add_keeps_the_committed_index(tmp_path, fake_model):
    index = Index.create(tmp_path / "idx", model=str(fake_model))
    index.add(docs("Apples are red.", "Bananas are yellow."))
    before = index.search("fruit colour", SearchOptions(k=5))

    def stream():
        yield from docs("Cherries are dark red.", prefix="new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.add(stream())
    reopened = Index.open(tmp_path / "idx")
    assert reopened.check()["consistent"]
    assert reopened.search("fruit colour", SearchOptions(k=5)) == before
    assert sorted(p.name for p in (tmp_path / "idx").glob("vectors.*")) == [
        reopened.manifest["vectors_file"]]
    assert reopened.add(docs("Cherries are dark red.", prefix="new")).added == 1


def test_a_second_writer_is_refused(tmp_path, fake_model):
    import fcntl

    index = Index.create(tmp_path / "idx", model=str(fake_model))
    with (tmp_path / "idx" / LOCK_FILE).open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError, match="another process is writing"):
            index.add(docs("Blocked."))
    assert index.add(docs("Now it goes in.")).added == 1


def test_settings_of_an_existing_index_must_match(tmp_path, fake_model):
    Index.create(tmp_path / "idx", model=str(fake_model), settings=IndexSettings(unit="passage"))
    assert Index.open_or_create(tmp_path / "idx", unit="passage").manifest["unit"] == "passage"
    with pytest.raises(IndexMismatchError, match="would need a new index"):
        Index.open_or_create(tmp_path / "idx", unit="sentence")
