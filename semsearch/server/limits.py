"""The bounds of one request. Nobody needs a token to search, so every request is bounded before
it costs anything; each error that enforces a limit names it. (The bounds of a search's own
options, k and context among them, are the library's: :class:`semsearch.search.SearchOptions`.)
"""

from __future__ import annotations

MAX_QUERIES = 256  # per POST /search
MAX_BATCH = 64  # requests served together by the reader thread
TOKEN_ENV = "SEMSEARCH_TOKEN"
# The encoder reads 256 tokens (~1,500 characters) of a query at most: this is twice that.
MAX_QUERY_CHARS = 4096
# Texts a search may return: k × queries × (1 + 2 × context). One query at the largest k and
# context (1000 hits, 20 units each side: 41,000) fits; 256 such queries built 729 MB.
MAX_HIT_TEXTS = 50_000
# A request body, except writes: a full batch (256 queries of 4,096 characters in any script,
# 3 MB of UTF-8) fits.
MAX_BODY_BYTES = 4 << 20
# POST /documents (with the token): a document at the readers' 24 MB default, and its JSON.
MAX_WRITE_BODY_BYTES = 64 << 20
# An answer's JSON: a full hit budget of sentence or passage units is 5-20 MB.
MAX_RESPONSE_BYTES = 64 << 20
# A URL: the longest query percent-encoded as 3-byte UTF-8 (37 KB) with filters fits.
MAX_URL_BYTES = 64 << 10
# For uvicorn (`semsearch serve` passes them): h11 parses request heads up to 16 KB and answers
# a longer one with a plain-text 400 and a reset connection; room for 2 MB lets the app answer
# a long URL with a JSON 414 (a head over 2 MB still gets uvicorn's 400).
UVICORN_LIMITS = {"h11_max_incomplete_event_size": 2 << 20}
# The page loads nothing from elsewhere and runs no inline script: a document that smuggled
# markup past the escaping still could not run it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
                               " base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def hit_texts(queries: int, k: int, context: int) -> int:
    """The most texts a search may return: each hit's unit and its context on both sides."""
    return queries * k * (1 + 2 * context)
