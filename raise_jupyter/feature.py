"""The ``Feature`` value object and the feature specifications accepted by bulk definitions."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raise_jupyter.dtypes import parse_dtype
from raise_jupyter.errors import DefinitionError
from raise_jupyter.names import validate_feature_name

__all__ = ["Feature", "FeatureSpec"]

_SPEC_KEYS = {"name", "dtype", "derived_from", "description", "tags"}


@dataclass(frozen=True)
class Feature:
    """A feature of a feature group, as stored in the catalog.

    Attributes
    ----------
    name
        Column name.
    dtype
        Canonical dtype, such as ``"int64"`` or ``"float32[512]"``.
    derived_from
        SQL expression of a derived feature, or None for a stored feature.
    description, tags
        Documentation; tags map names to (possibly empty) values.
    group
        Name of the feature group.
    """

    name: str
    dtype: str
    derived_from: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    group: str = ""

    @property
    def is_derived(self) -> bool:
        return self.derived_from is not None

    def describe(self) -> str:
        """Return a one-line summary such as ``ctr float64 = clicks / NULLIF(impressions, 0)``."""
        text = f"{self.name} {self.dtype}"
        if self.derived_from is not None:
            text += f" = {' '.join(self.derived_from.split())}"
        if self.description:
            text += f"  -- {self.description}"
        if self.tags:
            text += f"  tags={dict(self.tags)}"
        return text

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"dtype={self.dtype!r}"]
        if self.derived_from is not None:
            parts.append(f"derived_from={' '.join(self.derived_from.split())!r}")
        if self.description:
            parts.append(f"description={self.description!r}")
        if self.tags:
            parts.append(f"tags={dict(self.tags)!r}")
        return f"Feature({', '.join(parts)})"


@dataclass(frozen=True)
class FeatureSpec:
    """A requested feature definition; None means "not specified".

    ``dtype_only`` marks an entry of a name-to-dtype schema, which does not tell whether
    the feature is stored or derived, so it matches a derived feature of that dtype.
    """

    name: str
    dtype: str | None
    derived_from: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    dtype_only: bool = False


def normalize_tags(tags: object, *, what: str) -> dict[str, str] | None:
    """Return tags as a dict of strings; a list of names becomes names with empty values."""
    if tags is None:
        return None
    if isinstance(tags, Mapping):
        items = tags.items()
    elif isinstance(tags, Sequence) and not isinstance(tags, (str, bytes)):
        items = ((tag, "") for tag in tags)
    else:
        raise DefinitionError(
            f"Tags of {what} must be a dict such as {{'team': 'growth'}} or a list of names, got {tags!r}."
        )

    normalized = {}
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise DefinitionError(f"Tag names of {what} must be non-empty strings, got {key!r}.")
        normalized[key] = "" if value is None else str(value)
    return normalized


def _optional_text(value: object, *, field_name: str, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise DefinitionError(f"{field_name} of {what} must be a string, got {type(value).__name__} {value!r}.")


def make_spec(
    name: object,
    dtype: object,
    *,
    derived_from: object = None,
    description: object = None,
    tags: object = None,
) -> FeatureSpec:
    """Validate one feature specification and return it with its dtype normalized."""
    name = validate_feature_name(name)
    what = f"feature {name!r}"
    if dtype is None and derived_from is None:
        raise DefinitionError(
            f"Feature {name!r} needs a dtype, such as dtype='int64'; only derived features may omit it."
        )
    normalized = parse_dtype(dtype).name if dtype is not None else None
    return FeatureSpec(
        name=name,
        dtype=normalized,
        derived_from=_optional_text(derived_from, field_name="derived_from", what=what),
        description=_optional_text(description, field_name="description", what=what),
        tags=normalize_tags(tags, what=what),
    )


def spec_from_mapping(item: Mapping[str, Any], *, default_name: str | None = None) -> FeatureSpec:
    """Build a spec from a dict such as ``{"name": "ctr", "dtype": "float64", ...}``."""
    unknown = set(item) - _SPEC_KEYS
    if unknown:
        raise DefinitionError(
            f"Unknown keys {sorted(unknown)} in feature specification {dict(item)!r}; "
            f"valid keys are {', '.join(sorted(_SPEC_KEYS))}."
        )
    name = item.get("name", default_name)
    if name is None:
        raise DefinitionError(f"Feature specification {dict(item)!r} has no 'name'.")
    return make_spec(
        name,
        item.get("dtype"),
        derived_from=item.get("derived_from"),
        description=item.get("description"),
        tags=item.get("tags"),
    )


def specs_from_schema(schema: object) -> list[FeatureSpec]:
    """Build specs from a mapping of name to dtype (or to a spec dict)."""
    if not isinstance(schema, Mapping):
        raise DefinitionError(
            f"A schema must be a dict of feature name to dtype, such as {{'clicks': 'int64'}}, "
            f"got {type(schema).__name__}."
        )
    specs = []
    for name, value in schema.items():
        if isinstance(value, Mapping):
            specs.append(spec_from_mapping(value, default_name=name))
        else:
            specs.append(dataclasses.replace(make_spec(name, value), dtype_only=True))
    return specs


def specs_from_list(items: object) -> list[FeatureSpec]:
    """Build specs from a list of spec dicts."""
    if isinstance(items, Mapping) or not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise DefinitionError(
            "create_features takes a list of dicts such as "
            "[{'name': 'clicks', 'dtype': 'int64'}]; use create_features_from_schema for a dict."
        )
    specs = []
    for item in items:
        if not isinstance(item, Mapping):
            raise DefinitionError(f"Each feature specification must be a dict, got {item!r}.")
        specs.append(spec_from_mapping(item))
    return specs


def specs_from_document(document: object, *, source: str) -> list[FeatureSpec]:
    """Build specs from a parsed YAML or JSON document.

    The document is a mapping of name to dtype, a list of spec dicts, or a mapping whose
    ``features`` key contains either.
    """
    if isinstance(document, Mapping) and "features" in document:
        extra = set(document) - {"features"}
        if extra:
            raise DefinitionError(
                f"{source} has keys {sorted(extra)} beside 'features'; put feature definitions under 'features'."
            )
        document = document["features"]
    if isinstance(document, Mapping):
        return specs_from_schema(document)
    if isinstance(document, list):
        return specs_from_list(document)
    raise DefinitionError(
        f"{source} must hold a mapping of feature name to dtype, a list of feature "
        "specifications, or either under a 'features' key."
    )


def read_spec_file(path: str | os.PathLike[str]) -> list[FeatureSpec]:
    """Read feature specifications from a YAML (.yaml, .yml) or JSON (.json) file."""
    location = Path(path)
    if not location.is_file():
        raise DefinitionError(f"Feature file {str(location)!r} does not exist.")

    text = location.read_text(encoding="utf-8")
    suffix = location.suffix.lower()
    try:
        if suffix == ".json":
            document = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            document = yaml.safe_load(text)
        else:
            raise DefinitionError(f"Feature file {str(location)!r} must end in .yaml, .yml or .json.")
    except (ValueError, ImportError) as error:
        if isinstance(error, DefinitionError):
            raise
        raise DefinitionError(f"Cannot parse feature file {str(location)!r}: {error}") from None
    except Exception as error:  # yaml.YAMLError has no common base with ValueError
        raise DefinitionError(f"Cannot parse feature file {str(location)!r}: {error}") from None
    return specs_from_document(document, source=f"Feature file {str(location)!r}")
