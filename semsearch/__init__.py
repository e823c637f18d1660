"""semsearch: index text on your own machine and ask for the nearest sentences, offline."""

import os

# Set before torch, transformers or faiss can be imported: nothing may reach for the network,
# and faiss + torch each bring an OpenMP runtime that aborts the process on macOS/Windows.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("KMP_DUPLICATE_LIB_OK", "TRUE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

from semsearch.errors import SemsearchError  # noqa: E402

__all__ = ["Index", "SearchOptions", "SemsearchError", "__version__"]


def __getattr__(name: str):
    # ``semsearch.Index`` loads faiss and SQLite on first use, so ``semsearch --help`` stays fast.
    if name == "Index":
        from semsearch.index import Index

        return Index
    if name == "SearchOptions":
        from semsearch.search import SearchOptions

        return SearchOptions
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
