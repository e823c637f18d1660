"""Reading speed per input format, and how much of indexing a folder of papers is reading.

    python benchmarks/ingest_formats.py [--scifact ../shared/data/scifact] [--pdf-pages 400]
        [--papers 50] [--vault DIR] [--repeat 3] [--json out.json]

Why: reading must not be what indexing waits for. A PDF is parsed page by page (PDFium), a
Word file unzipped and walked, a note parsed as Markdown; then every document is cut into
blocks and units. This times all of that (``read_documents``, ``blocks_of``, ``cut_units``)
per format: pages/s and MB/s for PDF, MB/s and files/s for Markdown and DOCX. Then it indexes
each folder with the default model, as ``semsearch index`` does, and reports the share of the
total time spent reading (targets for the papers: reading <= 15% of indexing, >= 50 PDF
pages/s).

The inputs are built in a temporary folder: "papers" (PDFs laid out with fpdf2: a title, an
author line, numbered sections, a running header and page numbers on every page) from SciFact
abstracts when ``--scifact`` names a BEIR folder, else from the notes vault's text; the same
papers as Word files (python-docx); and the notes vault (``benchmarks/notes_vault.py``, or
``--vault``) as the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import semsearch  # noqa: F401  (offline environment)
import semsearch.index
import semsearch.service
from _common import report
from semsearch.readers import ReadOptions, blocks_of, read_documents
from semsearch.units import cut_units

FONTS = Path("/usr/share/fonts/truetype/dejavu")  # Unicode text; else Helvetica (Latin-1)
PAGE_TARGET = 50.0  # PDF pages/s
SHARE_TARGET = 0.15  # reading's share of indexing


# ---- the inputs -------------------------------------------------------------------------------


def scifact_sections(folder: str) -> list[tuple[str, str]]:
    """(title, abstract) of every SciFact document, in corpus order."""
    sections = []
    with open(Path(folder) / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("text", "").strip():
                sections.append((row.get("title", "").strip() or "Untitled", row["text"].strip()))
    return sections


def vault_sections(vault: Path) -> list[tuple[str, str]]:
    """(title, plain-ish text) of every note with some prose: the markup crudely taken out."""
    sections = []
    for path in sorted(vault.rglob("*.md")):
        text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        text = re.sub(r"!?\[\[?([^\]|]*\|)?([^\]]*)\]\]?(\([^)]*\))?", r"\2", text)
        text = re.sub(r"<[^>]+>|[*_`#>|]", "", text)
        text = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 8)
        if len(text) > 300:
            sections.append((path.stem, text))
    return sections


def paper_groups(sections: list[tuple[str, str]], papers: int, pages: int
                 ) -> list[list[tuple[str, str]]]:
    """The sections split into ``papers`` papers of about ``pages / papers`` pages each (an A4
    page holds about 4,000 characters of 10.5 pt text)."""
    per_paper = max(1, round(pages * 4000 / papers))
    groups, cursor = [], 0
    for _ in range(papers):
        group, size = [], 0
        while size < per_paper:
            title, text = sections[cursor % len(sections)]
            group.append((title, text))
            size += len(text) + 100
            cursor += 1
        groups.append(group)
    return groups


def write_pdf(path: Path, number: int, group: list[tuple[str, str]]) -> int:
    """One paper as a PDF: title, authors, numbered sections, running header, page numbers;
    returns its page count."""
    from fpdf import FPDF

    unicode = (FONTS / "DejaVuSans.ttf").exists()
    family = "DejaVu" if unicode else "Helvetica"
    short = group[0][0] if len(group[0][0]) < 70 else group[0][0][:67] + "..."

    def clean(text: str) -> str:
        return text if unicode else text.encode("latin-1", "replace").decode("latin-1")

    class Paper(FPDF):
        def header(self) -> None:
            if self.page_no() > 1:
                self.set_font(family, "", 8)
                self.cell(0, 6, clean(f"Proceedings of Benchmark Papers, vol. 7 - {short}"),
                          align="C", new_x="LMARGIN", new_y="NEXT")
                self.ln(2)

        def footer(self) -> None:
            self.set_y(-14)
            self.set_font(family, "", 8)
            self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Paper(format="A4")
    pdf.set_title(clean(group[0][0]))
    pdf.set_author(f"Author {number}")
    pdf.set_auto_page_break(True, margin=18)
    if unicode:
        pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    pdf.set_font(family, "B", 15)
    pdf.multi_cell(0, 7, clean(group[0][0]), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    pdf.cell(0, 8, f"A. Author{number}, B. Writer{number} - Institute of Benchmarks", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for section, (title, text) in enumerate(group, start=1):
        pdf.set_font(family, "B", 11)
        pdf.multi_cell(0, 6, clean(f"{section}. {title}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 10.5)
        for paragraph in text.split("\n\n"):
            pdf.multi_cell(0, 5, clean(paragraph), align="J", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        pdf.ln(2)
    pdf.output(str(path))
    return pdf.page_no()


def write_docx(path: Path, number: int, group: list[tuple[str, str]]) -> None:
    """The same paper as a Word file: title, headings per section, a running header."""
    import docx

    document = docx.Document()
    document.core_properties.title = group[0][0]
    document.core_properties.author = f"Author {number}"
    document.sections[0].header.paragraphs[0].text = "Proceedings of Benchmark Papers, vol. 7"
    document.add_heading(group[0][0], level=0)
    document.add_paragraph(f"A. Author{number}, B. Writer{number} - Institute of Benchmarks")
    for section, (title, text) in enumerate(group, start=1):
        document.add_heading(f"{section}. {title}", level=1)
        for paragraph in text.split("\n\n"):
            document.add_paragraph(paragraph)
    document.save(str(path))


def build_inputs(root: Path, args) -> dict:
    """The three folders (pdf, docx, markdown) under ``root`` and what they hold."""
    vault = Path(args.vault) if args.vault else root / "markdown"
    if not args.vault:
        sys.path.insert(0, str(Path(__file__).parent))
        from notes_vault import build

        build(vault)
    sections = scifact_sections(args.scifact) if args.scifact else vault_sections(vault)
    groups = paper_groups(sections, args.papers, args.pdf_pages)
    (root / "pdf").mkdir()
    (root / "docx").mkdir()
    pages = 0
    for number, group in enumerate(groups, start=1):
        pages += write_pdf(root / "pdf" / f"paper-{number:03d}.pdf", number, group)
        write_docx(root / "docx" / f"paper-{number:03d}.docx", number, group)
    return {"pdf": {"folder": root / "pdf", "pages": pages},
            "docx": {"folder": root / "docx"},
            "markdown": {"folder": vault},
            "source": "scifact abstracts" if args.scifact else "notes vault text"}


def folder_bytes(folder: Path, suffix: str) -> tuple[int, int]:
    files = [path for path in folder.rglob(f"*{suffix}") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


# ---- timing -----------------------------------------------------------------------------------


def _token_counts(texts: list[str]):
    """The default model's token counts, which sentence units use to pack list items."""
    from semsearch.encoder import load_encoder

    return load_encoder().token_counts(texts)


def read_once(folder: Path) -> dict:
    """Read a folder as `semsearch index` would, without embedding: documents (reading and
    parsing), their blocks, and their sentence units; the seconds of each part."""
    warnings: list[str] = []
    read_s = cut_s = 0.0
    documents = units = 0
    started = time.perf_counter()
    iterator = iter(read_documents([str(folder)], ReadOptions(), warnings.append))
    while True:
        try:
            document = next(iterator)
            blocks = blocks_of(document)
        except StopIteration:
            break
        finally:
            read_s += time.perf_counter() - started
        started = time.perf_counter()
        units += len(cut_units(document.text, blocks, "sentence", _token_counts, None, 0))
        documents += 1
        cut_s += time.perf_counter() - started
        started = time.perf_counter()
    return {"documents": documents, "units": units, "read_s": read_s, "cut_s": cut_s,
            "warnings": warnings}


class Stopwatch:
    """Seconds spent inside wrapped functions and generators (reading inside an index run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def function(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)
        return timed

    def generator(self, name: str, function: Callable[..., Iterator]) -> Callable:
        def timed(*args, **kwargs):
            iterator = iter(function(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self.add(name, time.perf_counter() - started)
                    return
                self.add(name, time.perf_counter() - started)
                yield item
        return timed

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def index_once(folder: Path, model: str | None) -> dict:
    """Index a folder into a temporary index with the model (as `semsearch index` does: the
    model loaded, documents read, cut, embedded, stored); the seconds reading took within."""
    watch = Stopwatch()
    patched = {(semsearch.service, "read_documents"): watch.generator("read",
                                                                    read_documents),
               (semsearch.index, "blocks_of"): watch.function("read", semsearch.index.blocks_of),
               (semsearch.index, "cut_units"): watch.function("cut", semsearch.index.cut_units)}
    originals = {key: getattr(*key) for key in patched}
    with tempfile.TemporaryDirectory(prefix="ingest-index-") as where:
        for (module, name), value in patched.items():
            setattr(module, name, value)
        try:
            started = time.perf_counter()
            index = semsearch.service.open_or_create(Path(where) / "index", model=model)
            result = semsearch.service.index_files(index, [str(folder)], ReadOptions())
            total = time.perf_counter() - started
        finally:
            for (module, name), value in originals.items():
                setattr(module, name, value)
    return {"total_s": total, "read_s": watch.seconds.get("read", 0.0),
            "cut_s": watch.seconds.get("cut", 0.0), "units": result.units,
            "documents": result.added}


# ---- the report -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", help="a BEIR folder (corpus.jsonl) whose abstracts make"
                                          " the papers; default: the notes vault's text")
    parser.add_argument("--pdf-pages", type=int, default=400,
                        help="pages of all the papers together (about)")
    parser.add_argument("--papers", type=int, default=50, help="how many papers")
    parser.add_argument("--vault", help="a notes vault for the Markdown (default: built)")
    parser.add_argument("--repeat", type=int, default=3, help="reads per format (median)")
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--no-index", dest="index", action="store_false",
                        help="time reading only")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="ingest-formats-") as where:
        started = time.perf_counter()
        inputs = build_inputs(Path(where), args)
        print(f"built the inputs ({inputs['source']}) in {time.perf_counter() - started:.1f} s",
              flush=True)
        rows, index_rows = [], []
        _token_counts([])  # load the tokenizer before any timing
        for form, suffix in (("pdf", ".pdf"), ("docx", ".docx"), ("markdown", ".md")):
            folder = inputs[form]["folder"]
            files, size = folder_bytes(folder, suffix)
            runs = [read_once(folder) for _ in range(args.repeat)]
            read_s = statistics.median(run["read_s"] for run in runs)
            whole_s = statistics.median(run["read_s"] + run["cut_s"] for run in runs)
            pages = inputs[form].get("pages")
            megabytes = size / 2**20
            rows.append({
                "format": form, "files": files, "MB": round(megabytes, 2),
                "pages": pages if pages else "", "units": runs[0]["units"],
                "read s": round(read_s, 3), "read+cut s": round(whole_s, 3),
                "MB/s": round(megabytes / whole_s, 2), "files/s": round(files / whole_s, 1),
                "pages/s": round(pages / whole_s, 1) if pages else "",
                "warnings": len(runs[0]["warnings"]),
            })
            for warning in runs[0]["warnings"][:5]:
                print(f"  {form}: {warning}", file=sys.stderr)
            print(rows[-1], flush=True)
            if args.index:
                timed = index_once(folder, args.model)
                share = (timed["read_s"] + timed["cut_s"]) / timed["total_s"]
                index_rows.append({
                    "format": form, "documents": timed["documents"], "units": timed["units"],
                    "index s": round(timed["total_s"], 2), "read s": round(timed["read_s"], 2),
                    "cut s": round(timed["cut_s"], 2),
                    "read share": round(timed["read_s"] / timed["total_s"], 4),
                    "read+cut share": round(share, 4),
                    "pages/s in index": round(pages / timed["read_s"], 1) if pages else "",
                })
                print(index_rows[-1], flush=True)
    load = [round(value, 2) for value in os.getloadavg()]
    extra = {**vars(args), "cores": cores, "source": inputs["source"], "load_average": load}
    print(f"\nload average (1, 5, 15 min) at the end: {load}; other work on the cores slows"
          " every timing here")
    report(f"Reading speed per format ({cores} cores; read = documents and blocks, cut ="
           f" sentence units; median of {args.repeat})", rows, None)
    if index_rows:
        report("Indexing each folder with the default model: the share reading takes",
               index_rows, None)
        papers = next(row for row in index_rows if row["format"] == "pdf")
        pdf = next(row for row in rows if row["format"] == "pdf")
        checks = [
            f"papers: reading is {papers['read share']:.1%} of indexing (read+cut"
            f" {papers['read+cut share']:.1%}); target <= {SHARE_TARGET:.0%}:"
            f" {'met' if papers['read share'] <= SHARE_TARGET else 'NOT met'}",
            f"papers: {pdf['pages/s']} PDF pages/s (read+cut, alone); target >="
            f" {PAGE_TARGET:g}: {'met' if pdf['pages/s'] >= PAGE_TARGET else 'NOT met'}",
        ]
        print("\n" + "\n".join(checks))
        extra["checks"] = checks
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(
            {"benchmark": "ingest_formats", "read": rows, "index": index_rows, **extra},
            indent=2, default=str))
        print(f"\nwrote {args.json_path}")


if __name__ == "__main__":
    main()
