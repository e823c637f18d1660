"""Errors a user can act on; the CLI prints them as one line, without a traceback."""

from pathlib import Path


class SemsearchError(Exception):
    """Base class: the message says what went wrong and what to do."""


class IndexNotFoundError(SemsearchError):
    pass


class IndexMismatchError(SemsearchError):
    """The index was built with another model, pooling, dimension or unit."""


class CorruptIndexError(SemsearchError):
    pass


class IndexBusyError(SemsearchError):
    pass


class ModelError(SemsearchError):
    pass


class InputError(SemsearchError):
    pass


class UsageError(InputError):
    """Options that do not go together (the CLI answers with its usage line)."""


class IndexExistsError(InputError):
    """Create found an index already there (perhaps made a moment ago by another process)."""


class WriteError(SemsearchError):
    """The disk refused a write (full, read-only, permissions); nothing committed is lost."""


def damaged_store_error(exc: Exception) -> CorruptIndexError:
    """SQLite's "malformed" from a read that met a damaged page, as something to act on."""
    return CorruptIndexError(f"the index store is damaged ({exc}); run `semsearch check` to see"
                             " what can be recovered")


def shown_path(path: Path) -> str:
    """A path as the user would write it in a message: relative to the working folder when
    inside it."""
    path = Path(path)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
