"""Exceptions and warnings raised by Raise.

Every error subclasses ``RaiseError`` and one of Python's built-in exceptions, so callers can
catch either ``RaiseError`` or the built-in kind (``ValueError``, ``KeyError``, ...).
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "DefinitionError",
    "IngestError",
    "NotFoundError",
    "PermissionDenied",
    "QueryError",
    "RaiseError",
    "RaiseWarning",
    "StoreError",
]


class RaiseError(Exception):
    """Base class of every error raised by Raise."""


class DefinitionError(RaiseError, ValueError):
    """An invalid name, dtype, expression or feature specification."""


class ConflictError(RaiseError, ValueError):
    """A definition that differs from one already stored under the same name."""


class NotFoundError(RaiseError, LookupError):
    """A feature group, feature or table version that does not exist."""


class IngestError(RaiseError, ValueError):
    """Data that does not fit a feature group's schema; nothing of it was written."""


class StoreError(RaiseError, RuntimeError):
    """A store that cannot be opened or written, such as a catalog from a newer release."""


class RaiseWarning(UserWarning):
    """Something Raise did on the caller's behalf, such as inferring features from data."""


class QueryError(RaiseError, RuntimeError):
    """A query that DuckDB could not run, such as a derived feature failing on stored values."""


class PermissionDenied(RaiseError, PermissionError):
    """An operation that the acting user's roles do not allow; nothing was changed."""
