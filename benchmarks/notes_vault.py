"""Build an Obsidian-style Markdown vault from the READMEs installed Python packages ship.

    python benchmarks/notes_vault.py OUT_DIR [--queries benchmarks/data/notes_queries.jsonl]

Why: semsearch's Markdown reading (front matter, titles from file names, heading paths) needs a
realistic notes corpus to be measured on, and the machine has one offline: the Markdown long
descriptions in installed packages' ``*.dist-info/METADATA``. Each package becomes a folder;
each of its top sections a note named ``<package> - <Section>.md`` with the heading line
removed (the title lives in the file name only, as in real vaults), deeper headings kept, YAML
front matter (``tags``, a ``date`` on some), wiki links for in-README anchors and mentions of
other packages in the vault, and one overview note per package linking its sections. A short
README is one note. Changelogs and badge-only sections are left out. The READMEs give ~220
notes, so npm's own documentation (installed with Node.js) is added as a second folder: a note
per command page (``npm/commands/npm ci.md``), the guides split by section like READMEs, its
``[x](/commands/npm-ci)`` links made wiki links (``--no-npm`` leaves it out).

Run it with the project's virtual environment (its packages are the READMEs). The output
depends only on the installed versions, which ``vault.json`` records; the labelled queries
(``benchmarks/data/notes_queries.jsonl``) were written against it, and a labelled note that
this machine's vault lacks is warned about.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import shutil
import sys
from pathlib import Path

# Packages with substantial Markdown READMEs (distribution names, as installed).
PACKAGES = [
    "accelerate", "annotated-types", "attrs", "blingfire", "charset-normalizer", "datasets",
    "faiss-gpu", "fastapi", "fpdf2", "httpx2", "huggingface_hub", "idna", "markdown-it-py",
    "ml_dtypes", "msgpack", "narwhals", "onnx", "pandas", "pydantic", "pypdfium2", "rich",
    "ruff", "sentence-transformers", "sqlite-fts4", "sqlite-utils", "sympy", "tabulate",
    "threadpoolctl", "tokenizers", "torch", "transformers", "typer", "uvicorn",
]
# A README shorter than this (characters) is one note.
SHORT_README = 6000
# A section with fewer words of prose or code than this (badges, logos) is left out.
MIN_WORDS = 25
# Names that are linked as [[package]] where another package's prose mentions them (distinct
# words only: "rich", "attrs", "datasets" are English too).
LINKED_NAMES = {"FastAPI": "fastapi", "Typer": "typer", "Pydantic": "pydantic",
                "pandas": "pandas", "Uvicorn": "uvicorn", "Narwhals": "narwhals",
                "PyTorch": "torch", "SymPy": "sympy", "Ruff": "ruff", "Faiss": "faiss-gpu",
                "tabulate": "tabulate", "msgpack": "msgpack", "Accelerate": "accelerate",
                "Transformers": "transformers", "PDFium": "pypdfium2"}
DEFAULT_QUERIES = Path(__file__).parent / "data" / "notes_queries.jsonl"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_CHANGELOG = re.compile(r"change ?log|release notes|release information|history of changes",
                        re.IGNORECASE)
_VERSION_TITLE = re.compile(r"^\[?v?\d+\.\d+")
_ANCHOR_LINK = re.compile(r"\[([^\]\n]+)\]\(#([^)\s]+)\)")
_FORBIDDEN = re.compile(r"[*\"\\/<>:|?#^\[\]]")
_PAGE_LINK = re.compile(r"\[([^\]\n]+)\]\((/[\w-]+/[\w.-]+)(?:#([^)\s]+))?\)")
# npm's docs (the npm that Node.js installs), a second source of notes
NPM_DOCS = "/usr/lib/node_modules/npm/docs"
NPM_SKIPPED = {"using-npm/config"}  # 60 kB of every setting: the command pages repeat them


def readme(name: str) -> tuple[str, str] | None:
    """The package's version and Markdown long description, or None when not installed."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    meta = dist.metadata
    if "markdown" not in (meta.get("Description-Content-Type") or "").lower():
        return None
    body = meta.get_payload() or meta.get("Description") or ""
    return meta["Version"], body.replace("\r\n", "\n")


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line number, level, text) of every ATX heading outside fenced code."""
    found, fence = [], ""
    for number, line in enumerate(lines):
        if opened := _FENCE.match(line):
            marker = opened.group(1)
            if not fence:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence) and \
                    not line.strip()[len(marker):].strip():
                fence = ""
            continue
        if not fence and (heading := _HEADING.match(line)):
            found.append((number, len(heading.group(1)), heading.group(2)))
    return found


def clean_title(text: str) -> str:
    """A heading as a file name: links, HTML, code ticks, emphasis and emoji gone."""
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r":[a-z_]+:|\[\^[^\]]*\]", "", text)  # :fire:, footnote marks
    text = text.replace("`", "").replace("**", "").replace("__", "")
    text = _FORBIDDEN.sub(" ", text)
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_.,'()&+!=@’")
    return " ".join(text.split()).strip(" .-")


def slug(text: str) -> str:
    """GitHub's anchor for a heading (what ``[x](#anchor)`` links point at)."""
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def words(text: str) -> int:
    text = re.sub(r"<[^>]+>|!\[[^\]]*\]\([^)]*\)|https?://\S+", " ", text)
    return len(re.findall(r"[A-Za-z]{2,}", text))


def sections(body: str) -> tuple[str, list[tuple[str, str]]]:
    """The preamble and the (title, body) of each top section, changelogs left out.

    Sections are split at the level (1 or 2) most headings have, else the shallowest level
    that occurs twice; a shallower heading before the first of them is the README's title and
    is dropped, one after them starts a section too."""
    lines = body.split("\n")
    found = headings(lines)
    levels = [level for _, level, _ in found]
    repeated = [lv for lv in sorted(set(levels)) if levels.count(lv) >= 2]
    top_levels = [lv for lv in repeated if lv <= 2]
    level = max(top_levels, key=lambda lv: (levels.count(lv), -lv)) if top_levels else \
        min(repeated, default=0)
    first = next((number for number, lv, _ in found if lv == level), None)
    if first is None:
        return body, []
    tops = [(number, text) for number, lv, text in found if lv <= level and number >= first]
    titles = {number for number, _, _ in found if number < first}
    preamble = "\n".join(line for number, line in enumerate(lines[:first])
                         if number not in titles)
    out = []
    for at, (number, text) in enumerate(tops):
        if _CHANGELOG.search(text):
            break  # the changelog and everything after it
        if _VERSION_TITLE.match(text):
            continue
        end = tops[at + 1][0] if at + 1 < len(tops) else len(lines)
        out.append((text, "\n".join(lines[number + 1:end]).strip("\n")))
    return preamble, out


def stable(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def front_matter(title: str, tags: list[str], description: str = "") -> str:
    lines = ["---", f"tags: [{', '.join(tags)}]"]
    if description:
        lines.append(f"description: {json.dumps(description)}")
    seed = stable(title)
    if seed % 3 == 0:  # a date on a third of the notes
        lines.append(f"date: 2024-{1 + seed % 12:02d}-{1 + seed // 12 % 28:02d}")
    return "\n".join([*lines, "---", ""])


def topic_tags(title: str) -> list[str]:
    lowered = title.lower()
    rules = [("install", "install"), ("usage", "usage"), ("example", "example"),
             ("licen", "license"), ("contribut", "contributing"), ("depend", "dependencies"),
             ("quick", "quickstart"), ("getting started", "quickstart")]
    return [tag for key, tag in rules if key in lowered][:1]


def link_mentions(text: str, package: str) -> str:
    """The first prose mention of another vault package becomes a wiki link to its overview."""
    out, fence, linked = [], False, set()
    for line in text.split("\n"):
        if _FENCE.match(line):
            fence = not fence
        elif not fence and not re.search(r"[`\[<]|https?:", line) and not line.startswith("#"):
            for name, target in LINKED_NAMES.items():
                if target == package or target in linked or target not in PACKAGES:
                    continue
                pattern = rf"(?<![\w.-]){re.escape(name)}(?![\w-])"
                if re.search(pattern, line):
                    line = re.sub(pattern, f"[[{target}|{name}]]", line, count=1)
                    linked.add(target)
        out.append(line)
    return "\n".join(out)


def split_notes(name: str, body: str, tags: list[str], description: str = "",
                links: dict[str, str] | None = None) -> dict[str, str]:
    """The notes of one README or guide: file name (in its folder) → text. A long one is a
    note per top section (``<name> - <Section>``) and an overview note ``<name>`` linking
    them; a short one, a single note."""
    links = links or {}
    preamble, found = sections(body)
    if len(body) < SHORT_README or not found:
        lines = body.split("\n")
        first = headings(lines)[:1]
        if first and first[0][0] < 3:  # the README's own `# Title` goes: the file name says it
            del lines[first[0][0]]
        text = rewrite_links("\n".join(lines).strip(), name, {}, links)
        return {f"{name}.md": front_matter(name, tags, description) + text + "\n"}
    titles: dict[str, str] = {}  # section slug → note title
    kept = []
    for heading, text in found:
        if words(text) < MIN_WORDS:
            continue
        title = f"{name} - {clean_title(heading)}"
        while title in titles.values():
            title += " (2)"
        titles[slug(heading)] = title
        kept.append((title, text))
    notes = {}
    for title, text in kept:
        notes[f"{title}.md"] = (front_matter(title, [*tags, *topic_tags(title)])
                                + rewrite_links(text, name, titles, links).strip() + "\n")
    contents = "\n".join(f"- [[{title}]]" for title, _ in kept)
    intro = rewrite_links(preamble, name, titles, links).strip()
    intro = intro if words(intro) >= MIN_WORDS else ""
    notes[f"{name}.md"] = (front_matter(name, [*tags, "overview"], description)
                           + (intro + "\n\n" if intro else "")
                           + f"Notes on {name}:\n\n{contents}\n")
    return notes


def rewrite_links(text: str, name: str, anchors: dict[str, str], pages: dict[str, str]) -> str:
    """Links between notes as wiki links: ``[x](#anchor)`` to a section of the same README,
    ``[x](/commands/npm-ci)`` to another npm page; first mentions of other packages too."""
    def to_anchor(found: re.Match) -> str:
        target = anchors.get(found.group(2).lower())
        return f"[[{target}|{found.group(1)}]]" if target else found.group(0)

    def to_page(found: re.Match) -> str:
        alias = found.group(1).replace("`", "")
        target = pages.get(found.group(2))
        if target and found.group(3):
            target = pages.get(f"{found.group(2)}#{found.group(3)}", target)
        if not target:
            return found.group(0)
        return f"[[{target}]]" if alias == target else f"[[{target}|{alias}]]"

    text = _ANCHOR_LINK.sub(to_anchor, text)
    text = _PAGE_LINK.sub(to_page, text)
    return link_mentions(text, name)


def npm_notes(out: Path) -> dict | None:
    """npm's own documentation (the command pages and the guides), when npm is installed: a
    note per command (``npm/commands/npm ci.md``), the guides split like READMEs."""
    root = Path(NPM_DOCS)
    try:
        version = json.loads((root.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    pages: dict[str, tuple[str, str, str, str]] = {}  # /folder/page → kind, title, desc, body
    for path in sorted((root / "content").glob("*/*.md")):
        kind = path.parent.name
        if f"{kind}/{path.stem}" in NPM_SKIPPED:
            continue
        text = path.read_text(encoding="utf-8")
        found = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
        meta = dict(re.findall(r"^(\w+): *(.*)$", found.group(1), re.MULTILINE)) if found else {}
        body = text[found.end():] if found else text
        title = meta.get("title", path.stem)
        if kind == "commands":
            title = title.replace("-", " ", 1) if title.startswith("npm-") else title
        pages[f"/{kind}/{path.stem}"] = (kind, clean_title(title).lstrip("."),
                                         meta.get("description", ""), body)
    links = {page: title for page, (_, title, _, _) in pages.items()}
    for page, (kind, title, _, body) in pages.items():  # sections of split guides
        if kind != "commands" and len(body) >= SHORT_README:
            for heading in (text for _, _, text in headings(body.split("\n"))):
                links.setdefault(f"{page}#{slug(heading)}", f"{title} - {clean_title(heading)}")
    count = 0
    for kind, title, description, body in pages.values():
        folder = out / "npm" / ("commands" if kind == "commands" else "guides")
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "commands":
            notes = {f"{title}.md": front_matter(title, ["npm", "command"], description)
                     + rewrite_links(body.strip(), "npm", {}, links) + "\n"}
        else:
            notes = split_notes(title, body, ["npm", "guide"], description, links)
        for file, text in notes.items():
            (folder / file).write_text(text, encoding="utf-8")
        count += len(notes)
    return {"version": version, "notes": count, "source": NPM_DOCS}


def build(out: Path, npm: bool = True) -> dict:
    """Write the vault under ``out`` (replacing what a previous run wrote) and its manifest."""
    if out.exists():
        if not (out / "vault.json").exists() and any(out.iterdir()):
            sys.exit(f"{out} is not empty and holds no vault.json: not overwriting it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    packages, missing = {}, []
    for package in PACKAGES:
        found = readme(package)
        if found is None:
            missing.append(package)
            continue
        version, body = found
        notes = split_notes(package, body, [package])
        folder = out / package
        folder.mkdir()
        for name, text in notes.items():
            (folder / name).write_text(text, encoding="utf-8")
        packages[package] = {"version": version, "notes": len(notes)}
    if npm:
        if found_npm := npm_notes(out):
            packages["npm"] = found_npm
        else:
            missing.append("npm")
    if missing:
        print(f"warning: not installed (or no Markdown README), left out: {', '.join(missing)}",
              file=sys.stderr)
    files = sorted(out.rglob("*.md"))
    manifest = {"source": "installed packages' METADATA long descriptions; npm's docs",
                "python": sys.version.split()[0], "notes": len(files),
                "bytes": sum(file.stat().st_size for file in files),
                "packages": packages, "missing": missing}
    (out / "vault.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_queries(vault: Path, queries: Path) -> list[str]:
    """Labelled notes of ``queries`` that the vault lacks (each warned about)."""
    missing = []
    for line in queries.read_text().splitlines():
        if line.strip() and not (vault / json.loads(line)["note"]).is_file():
            missing.append(json.loads(line)["note"])
    for note in missing:
        print(f"warning: labelled note missing from the vault: {note}", file=sys.stderr)
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write the vault to")
    parser.add_argument("--queries", default=str(DEFAULT_QUERIES),
                        help="labelled queries whose notes must exist")
    parser.add_argument("--no-npm", dest="npm", action="store_false",
                        help="leave npm's documentation out")
    args = parser.parse_args()
    manifest = build(Path(args.out), args.npm)
    print(f"wrote {manifest['notes']} notes ({manifest['bytes'] / 2**20:.2f} MB) from"
          f" {len(manifest['packages'])} packages to {args.out}")
    if Path(args.queries).is_file():
        missing = check_queries(Path(args.out), Path(args.queries))
        said = f"{len(missing)} labelled notes missing" if missing else "all present"
        print(f"{args.queries}: {said}")


if __name__ == "__main__":
    main()
