"""The read path stays light: opening a store and reading it (manifest, units, a document,
cluster runs, a keyword query's terms) imports no heavy library. Each check runs in a fresh
interpreter, where nothing else has imported them first."""

import json
import sqlite3
import subprocess
import sys

import pytest

from semsearch.readers import Document
from semsearch.store import Store
from semsearch.units import Unit

HEAVY = ("sqlite_utils", "sklearn", "scipy", "torch", "transformers", "sentence_transformers",
         "umap", "numba", "mcp", "mcp_types")


def _store(path):
    store = Store(path)
    store.create_schema({"model": "fake", "dimension": 4})
    documents = [Document("pets", "Cats sleep for most of the day. Dogs need a walk.", "pets.txt",
                          "Pets"),
                 Document("space", "The Moon orbits the Earth.", "space.txt", "Space")]
    units = [[Unit(0, 31, "Cats sleep for most of the day."), Unit(32, 49, "Dogs need a walk.")],
             [Unit(0, 26, "The Moon orbits the Earth.")]]
    with store.atomic():  # (a write: it imports sqlite-utils, here in the test process)
        store.add_documents(documents, units, [0, 1, 2])
    store.close()


def _run_fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints a JSON object, to which this adds the heavy
    modules it had imported by its end."""
    script = ("import json, sys\n" + code + "\n"
              f"answer['heavy'] = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
              "print(json.dumps(answer))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "store.db"
    _store(path)
    return path


def test_reading_a_store_imports_nothing_heavy(store_path):
    answer = _run_fresh(f"""
from pathlib import Path
import semsearch.bm25
from semsearch.store import Store
store = Store(Path({str(store_path)!r}))
answer = {{"manifest": store.manifest(), "texts": list(store.unit_texts([2, 0])),
          "units": store.count("units"), "document": store.document("pets")["title"],
          "neighbours": store.neighbours("pets", 0, 1), "runs": store.cluster_runs(),
          "assignments": store.cluster_assignments(1),
          "query": semsearch.bm25.query_terms("what do the sleeping cats do")}}
store.close()
""")
    assert answer["heavy"] == []
    assert answer["manifest"]["model"] == "fake" and answer["manifest"]["next_unit_id"] == 0
    assert answer["texts"] == [[0, "Cats sleep for most of the day."],
                               [2, "The Moon orbits the Earth."]]
    assert answer["units"] == 3
    assert answer["document"] == "Pets"
    assert answer["neighbours"] == [[1, "Dogs need a walk."]]
    assert answer["runs"] == [] and answer["assignments"] == []
    assert answer["query"] == ["sleep", "cat"]


def test_opening_an_older_store_adds_its_columns_without_sqlite_utils(store_path):
    with sqlite3.connect(store_path) as connection:  # as a store from before these columns
        connection.execute("alter table units drop column heading")
        connection.execute("alter table documents drop column structure")
    connection.close()
    answer = _run_fresh(f"""
from pathlib import Path
from semsearch.store import Store
store = Store(Path({str(store_path)!r}))
columns = {{table: [row[1] for row in store.conn.execute(f"pragma table_info({{table}})")]
           for table in ("units", "documents")}}
answer = {{"units": columns["units"], "documents": columns["documents"],
          "heading": store.has_column("units", "heading"),
          "hits": store.hits([1])[1]["heading"]}}
store.close()
""")
    assert answer["heavy"] == []
    assert "heading" in answer["units"] and "structure" in answer["documents"]
    assert answer["heading"] is True and answer["hits"] is None
    with sqlite3.connect(store_path) as connection:  # committed, not left in a transaction
        assert "heading" in [row[1] for row in connection.execute("pragma table_info(units)")]
    connection.close()
