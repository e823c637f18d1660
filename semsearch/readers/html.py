"""HTML (.html, .htm): one document per file, its visible text, titled by its <title>."""

from __future__ import annotations

from semsearch.readers.document import Reader, Warn
from semsearch.readers.text import Converted, one_document_per_file


def _visible_text(html: str, name: str, warn: Warn) -> Converted:
    """(title, text) of a page: its lines of visible text, one paragraph each."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = "\n\n".join(line for line in lines if line)
    return Converted(text, title)


HTML = Reader("html", (".html", ".htm"), one_document_per_file(_visible_text))
