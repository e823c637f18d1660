"""HTML (.html, .htm): one document per file, its visible text, titled by its <title>.

The text is written out as Markdown (each line of visible text a paragraph, its punctuation
escaped; each <h1>–<h6> a heading), so units get the page's heading path as a note's do.
"""

from __future__ import annotations

from semsearch.readers import markdown
from semsearch.readers.document import Reader, ReadOptions, Warn
from semsearch.readers.text import Converted, one_document_per_file

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HEADING_MARK = "\x00"  # marks a heading's line while the text is taken out (no page has it)


def _visible_text(html: str, name: str, options: ReadOptions, warn: Warn) -> Converted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html.replace(_HEADING_MARK, ""), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    for heading in soup(_HEADINGS):
        words = " ".join(heading.get_text(" ").split())
        heading.replace_with(f"\n{_HEADING_MARK}{heading.name[1]}{words}\n" if words else "")
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = "\n\n".join(_markdown_line(line) for line in lines if line)
    page = markdown.parse(text)
    return Converted(text, title or page.first_heading, structure=markdown.STRUCTURE,
                     blocks=page.blocks)


def _markdown_line(line: str) -> str:
    if line.startswith(_HEADING_MARK):
        return f"{'#' * int(line[1])} {markdown.escape(line[2:])}"
    return markdown.escape(line)


HTML = Reader("html", (".html", ".htm"), one_document_per_file(_visible_text))
