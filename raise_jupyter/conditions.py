"""Alert conditions: when a metric value makes an alert fire.

``Condition.LESS_THAN(0.01)`` fires while the value is below 0.01. ``CHANGED_BY(20)`` compares
each value with the same series' value at the previous evaluation and fires when it moved by 20
percent or more in either direction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raise_jupyter.errors import DefinitionError

_ARITY = {
    "less_than": 1,
    "greater_than": 1,
    "between": 2,
    "outside": 2,
    "equals": 1,
    "not_equals": 1,
    "changed_by": 1,
}
_FORM_LIST = ("LESS_THAN(x)", "GREATER_THAN(x)", "BETWEEN(a, b)", "OUTSIDE(a, b)", "EQUALS(x)", "NOT_EQUALS(x)", "CHANGED_BY(percent)")
_FORMS = ", ".join(_FORM_LIST)


def _number(value: object, *, operator: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DefinitionError(f"Condition.{operator.upper()} needs finite numbers, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Condition:
    """When an alert fires; build one with the class methods such as ``Condition.LESS_THAN(0.01)``.

    Attributes
    ----------
    operator
        ``less_than``, ``greater_than``, ``between``, ``outside``, ``equals``, ``not_equals``
        or ``changed_by``.
    operands
        The bounds: one number, or two for ``between`` and ``outside`` (inclusive bounds).
    """

    operator: str
    operands: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.operator not in _ARITY:
            forms = ", ".join(f"Condition.{form}" for form in _FORM_LIST)
            raise DefinitionError(f"Unknown condition {self.operator!r}; use {forms}.")
        operands = tuple(_number(v, operator=self.operator) for v in self.operands)
        if len(operands) != _ARITY[self.operator]:
            raise DefinitionError(
                f"Condition.{self.operator.upper()} takes {_ARITY[self.operator]} value(s), got {len(operands)}."
            )
        if self.operator in ("between", "outside") and operands[0] > operands[1]:
            raise DefinitionError(
                f"Condition.{self.operator.upper()}({operands[0]!r}, {operands[1]!r}) needs the lower bound first."
            )
        if self.operator == "changed_by" and operands[0] <= 0:
            raise DefinitionError(f"Condition.CHANGED_BY needs a positive percentage, got {operands[0]!r}.")
        object.__setattr__(self, "operands", operands)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def LESS_THAN(cls, value: float) -> Condition:  # noqa: N802 - the documented spelling
        """Fire while the value is below ``value``."""
        return cls("less_than", (value,))

    @classmethod
    def GREATER_THAN(cls, value: float) -> Condition:  # noqa: N802
        """Fire while the value is above ``value``."""
        return cls("greater_than", (value,))

    @classmethod
    def BETWEEN(cls, low: float, high: float) -> Condition:  # noqa: N802
        """Fire while ``low <= value <= high``."""
        return cls("between", (low, high))

    @classmethod
    def OUTSIDE(cls, low: float, high: float) -> Condition:  # noqa: N802
        """Fire while the value is below ``low`` or above ``high``."""
        return cls("outside", (low, high))

    @classmethod
    def EQUALS(cls, value: float) -> Condition:  # noqa: N802
        """Fire while the value equals ``value``."""
        return cls("equals", (value,))

    @classmethod
    def NOT_EQUALS(cls, value: float) -> Condition:  # noqa: N802
        """Fire while the value differs from ``value``."""
        return cls("not_equals", (value,))

    @classmethod
    def CHANGED_BY(cls, percent: float) -> Condition:  # noqa: N802
        """Fire when the value moved by ``percent`` percent or more since the previous evaluation."""
        return cls("changed_by", (percent,))

    # -- evaluation -----------------------------------------------------------------------

    def holds(self, value: float, previous: float | None = None) -> bool:
        """Return whether the condition fires for ``value`` (``previous``: the last evaluation's)."""
        op, args = self.operator, self.operands
        if op == "less_than":
            return value < args[0]
        if op == "greater_than":
            return value > args[0]
        if op == "between":
            return args[0] <= value <= args[1]
        if op == "outside":
            return value < args[0] or value > args[1]
        if op == "equals":
            return value == args[0]
        if op == "not_equals":
            return value != args[0]
        return _changed_by(value, previous, args[0])

    def describe(self) -> str:
        """Return the condition as it is written, such as ``LESS_THAN(0.01)``."""
        operands = ", ".join(f"{v:g}" for v in self.operands)
        return f"{self.operator.upper()}({operands})"

    def __repr__(self) -> str:
        return f"Condition.{self.describe()}"

    def to_spec(self) -> dict[str, Any]:
        """Return a JSON-ready description, the inverse of ``condition_from_spec``."""
        return {"operator": self.operator, "operands": list(self.operands)}


def _changed_by(value: float, previous: float | None, percent: float) -> bool:
    """Return whether ``value`` moved by ``percent`` percent of ``previous`` or more.

    Without a previous value nothing has changed yet. From 0, any other value counts as a
    change, since no percentage of 0 is defined.
    """
    if previous is None:
        return False
    if previous == 0:
        return value != 0
    return abs(value - previous) / abs(previous) * 100 >= percent


def condition_from_spec(spec: Mapping[str, Any]) -> Condition:
    """Rebuild a condition from ``to_spec()`` output."""
    return Condition(str(spec["operator"]), tuple(spec["operands"]))


def check_condition(condition: object) -> Condition:
    """Return ``condition`` if it is a Condition; raise DefinitionError otherwise."""
    if isinstance(condition, Condition):
        return condition
    raise DefinitionError(f"Expected a Condition such as Condition.LESS_THAN(0.01), got {condition!r}. Forms: {_FORMS}.")
