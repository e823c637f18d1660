"""Errors a user can act on; the CLI prints them as one line, without a traceback."""


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


class WriteError(SemsearchError):
    """The disk refused a write (full, read-only, permissions); nothing committed is lost."""
