"""Leaving files out of a folder: --exclude PATTERN and a .semsearchignore file, in gitignore
syntax, relative to the folder given (issue 22, in part)."""

from __future__ import annotations

import json
from pathlib import Path

from semsearch.readers import ReadOptions, read_documents


def vault(tmp_path):
    folder = tmp_path / "vault"
    for name in ("notes/a.md", "notes/b.tmp.md", "drafts/c.md", "deep/drafts/d.md",
                 "templates/t.md", "keep.md", ".obsidian/workspace.md"):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {path.stem}\nSome text in {name}.\n")
    return folder


def names(folder, warnings=None, **options):
    kept = [] if warnings is None else warnings
    found = read_documents([str(folder)], ReadOptions(**options), kept.append)
    return sorted(str(Path(doc.id).relative_to(folder.resolve())) for doc in found)


def test_exclude_takes_gitignore_patterns(tmp_path):
    folder = vault(tmp_path)
    assert names(folder) == ["deep/drafts/d.md", "drafts/c.md", "keep.md", "notes/a.md",
                             "notes/b.tmp.md", "templates/t.md"]  # hidden folders never
    assert names(folder, exclude=("drafts/", "*.tmp.md")) == ["keep.md", "notes/a.md",
                                                              "templates/t.md"]
    assert names(folder, exclude=("/drafts/",)) == ["deep/drafts/d.md", "keep.md", "notes/a.md",
                                                    "notes/b.tmp.md", "templates/t.md"]
    assert names(folder, exclude=("*.md", "!keep.md")) == ["keep.md"]


def test_a_semsearchignore_file_adds_its_patterns(tmp_path):
    folder = vault(tmp_path)
    (folder / ".semsearchignore").write_text("# not for search\ntemplates/\ndrafts/\n")
    assert names(folder) == ["keep.md", "notes/a.md", "notes/b.tmp.md"]
    assert names(folder, exclude=("notes/",)) == ["keep.md"]
    (folder / ".semsearchignore").write_bytes(b"\xff\xfe bad")
    warnings: list[str] = []
    assert len(names(folder, warnings)) == 6
    assert len(warnings) == 1 and ".semsearchignore: not read" in warnings[0]


def test_the_cli_leaves_excluded_files_out(tmp_path, run, fake_model):
    folder = vault(tmp_path)
    summary = json.loads(run("index", folder, "--index", "v", "--model", fake_model,
                             "--exclude", "drafts/", "--exclude", "templates/", "--json").stdout)
    assert summary["added"] == 3
