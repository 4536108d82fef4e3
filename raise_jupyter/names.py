"""Validation of namespace, feature group and feature names."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from raise_jupyter.errors import DefinitionError

MAX_NAMESPACE_SEGMENTS = 5
MAX_SEGMENT_LENGTH = 64
MAX_GROUP_NAME_LENGTH = 64
MAX_FEATURE_NAME_LENGTH = 128

# Prefix of the columns Raise adds to every stored row (the ingest sequence).
INTERNAL_PREFIX = "_raise"

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_-]*")
_FEATURE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _validate_segment(value: object, *, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise DefinitionError(f"{what} must be a string, got {type(value).__name__} {_describe(value)}.")

    if not value:
        raise DefinitionError(f"{what} must not be empty.")

    if len(value) > max_length:
        raise DefinitionError(
            f"{what} {_describe(value)} has {len(value)} characters; the maximum is {max_length}."
        )

    if not _SEGMENT.fullmatch(value):
        hint = value.lower().replace(" ", "-")
        suggestion = f"; for example {hint!r}" if _SEGMENT.fullmatch(hint) else ""
        raise DefinitionError(
            f"{what} {_describe(value)} is invalid: use lowercase letters, digits, '-' and '_', "
            f"starting with a letter or digit{suggestion}."
        )
    return value


def validate_namespace(value: object) -> str:
    """Return ``value`` if it is a namespace path such as ``"acme/ml/engagement"``.

    A namespace has 1 to 5 segments separated by ``/``; each segment uses lowercase letters,
    digits, ``-`` and ``_`` and starts with a letter or digit.
    """
    if not isinstance(value, str) or not value:
        raise DefinitionError(
            f"Namespace {_describe(value)} is invalid: pass a path such as 'acme/ml/engagement'."
        )

    segments = value.split("/")
    if len(segments) > MAX_NAMESPACE_SEGMENTS:
        raise DefinitionError(
            f"Namespace {_describe(value)} has {len(segments)} segments; "
            f"the maximum is {MAX_NAMESPACE_SEGMENTS}."
        )
    for segment in segments:
        try:
            _validate_segment(segment, what="segment", max_length=MAX_SEGMENT_LENGTH)
        except DefinitionError as error:
            raise DefinitionError(f"Namespace {value!r} is invalid: {error}") from None
    return value


def validate_group_name(value: object) -> str:
    """Return ``value`` if it is a valid feature group name such as ``"user-signals"``."""
    return _validate_segment(value, what="Feature group name", max_length=MAX_GROUP_NAME_LENGTH)


def validate_alert_name(value: object) -> str:
    """Return ``value`` if it is a valid alert name such as ``"ctr-drop"``."""
    return _validate_segment(value, what="Alert name", max_length=MAX_GROUP_NAME_LENGTH)


def validate_live_table_name(value: object) -> str:
    """Return ``value`` if it is a valid live table name such as ``"daily_metrics"``."""
    return _validate_segment(value, what="Live table name", max_length=MAX_GROUP_NAME_LENGTH)


def validate_feature_name(value: object) -> str:
    """Return ``value`` if it is a valid feature or column name such as ``"clicks"``.

    Feature names are SQL identifiers (letters, digits and ``_``, not starting with a digit) so
    that derived-feature expressions can use them without quotes.
    """
    if not isinstance(value, str):
        raise DefinitionError(
            f"Feature name must be a string, got {type(value).__name__} {_describe(value)}."
        )

    if not value:
        raise DefinitionError("Feature name must not be empty.")

    if len(value) > MAX_FEATURE_NAME_LENGTH:
        raise DefinitionError(
            f"Feature name {_describe(value)} has {len(value)} characters; "
            f"the maximum is {MAX_FEATURE_NAME_LENGTH}."
        )

    if not _FEATURE.fullmatch(value):
        hint = re.sub(r"\W+", "_", value).strip("_")
        suggestion = f"; for example {hint!r}" if hint and _FEATURE.fullmatch(hint) else ""
        raise DefinitionError(
            f"Feature name {_describe(value)} is invalid: use letters, digits and '_', "
            f"not starting with a digit{suggestion}."
        )

    if value.lower().startswith(INTERNAL_PREFIX):
        raise DefinitionError(
            f"Feature name {value!r} is invalid: names starting with {INTERNAL_PREFIX!r} are "
            "reserved for columns Raise adds; choose another name."
        )
    return value


def normalize_ttl(ttl: object) -> int | None:
    """Return a time to live (a timedelta or seconds) in microseconds, or None for no limit."""
    if ttl is None:
        return None
    if isinstance(ttl, dt.timedelta):
        micros = ttl // dt.timedelta(microseconds=1)
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        micros = round(ttl * 1_000_000)
    else:
        raise DefinitionError(f"ttl must be a timedelta or a number of seconds, got {ttl!r}.")
    if micros <= 0:
        raise DefinitionError(f"ttl must be positive, got {ttl!r}; pass None for values that never expire.")
    return int(micros)


def normalize_keys(keys: object) -> list[str] | None:
    """Return key column names as a list (a single name becomes a one-item list)."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, Sequence) or not keys:
        raise DefinitionError(f"keys must be a column name or a non-empty list of names, got {keys!r}.")
    normalized = [validate_feature_name(key) for key in keys]
    if len(set(normalized)) != len(normalized):
        raise DefinitionError(f"keys {normalized} name a column twice.")
    return normalized
