"""The alert editor: define or change an alert in a form, see its current value and history,
and send a test notification."""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from raise_jupyter.analysis import METRICS, Aggregation
from raise_jupyter.conditions import Condition
from raise_jupyter.errors import RaiseError
from raise_jupyter.widgets._common import css, esm, json_number, short_error, widget_bundle

if TYPE_CHECKING:
    from raise_jupyter.alerts import Alert
    from raise_jupyter.store import FeatureStore

__all__ = ["AlertEditor"]

logger = logging.getLogger(__name__)

CONDITIONS = [
    {"key": "greater_than", "label": "above", "arity": 1},
    {"key": "less_than", "label": "below", "arity": 1},
    {"key": "between", "label": "between", "arity": 2},
    {"key": "outside", "label": "outside", "arity": 2},
    {"key": "equals", "label": "equal to", "arity": 1},
    {"key": "not_equals", "label": "not equal to", "arity": 1},
    {"key": "changed_by", "label": "changed by % since last evaluation", "arity": 1},
]
METRIC_CHOICES = [*METRICS, "p95", "p99"]
HISTORY_ROWS = 10
# Series values of each history entry sent to the browser; the first ones are the firing series.
SHOWN_SERIES = 50
EMPTY_FORM = {
    "name": "",
    "group": "",
    "feature": "",
    "metric": "avg",
    "group_by": "",
    "where": "",
    "condition": "greater_than",
    "low": "",
    "high": "",
    "notify": "log",
    "schedule": "hourly",
    "on_ingest": True,
    "editing": "",
}


class AlertEditor(anywidget.AnyWidget):
    """A form that creates or updates an alert through ``FeatureStore.create_alert``.

    Validation errors appear next to the field they concern; nothing is stored until every
    field is valid. Choose an existing alert in the list to edit it.

    Parameters
    ----------
    store
        The feature store (namespace) the alerts belong to.
    alert
        Name of an existing alert to open for editing.
    group, feature
        Preselect a group and feature for a new alert.

    Examples
    --------
    >>> fs.alert_editor()  # doctest: +SKIP
    """

    _esm = esm("alert_editor.js")
    _css = css("alert_editor.css")

    options = traitlets.Dict().tag(sync=True)
    form = traitlets.Dict().tag(sync=True)
    errors = traitlets.Dict().tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    current = traitlets.Dict().tag(sync=True)
    test_result = traitlets.Dict().tag(sync=True)

    def __init__(
        self, store: FeatureStore, *, alert: str | None = None, group: str | None = None, feature: str | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.on_msg(self._on_message)
        self.reload_options(group)
        form = dict(EMPTY_FORM)
        groups = self.options.get("groups", {})
        form["group"] = group if group in groups else next(iter(groups), "")
        features = [f["name"] for f in groups.get(form["group"], [])]
        if feature in features:
            form["feature"] = feature
        else:
            form["feature"] = _first_numeric(groups.get(form["group"], []))
        self.form = form
        if alert is not None:
            self.load(alert)

    # -- loading ----------------------------------------------------------------------------

    def reload_options(self, group: str | None = None) -> None:
        """Read the namespace's groups and alerts, and the features of ``group`` (or the first).

        Only one group's features are sent, so that a namespace with many wide groups stays
        within the widget message limit. Choosing another group loads its features.
        """
        groups: dict[str, list[dict[str, str]]] = {}
        listed = self.store.list_feature_groups()
        chosen = group if group in {g.name for g in listed} else None
        if chosen is None and listed:
            chosen = listed[0].name
        for item in listed:
            groups[item.name] = [{"name": f.name, "dtype": str(f.dtype)} for f in item.features] if item.name == chosen else []
        self.options = {
            "groups": groups,
            "metrics": METRIC_CHOICES,
            "conditions": CONDITIONS,
            "alerts": [a.name for a in self.store.list_alerts()],
        }

    def load(self, name: str) -> None:
        """Fill the form with the definition of alert ``name``."""
        try:
            alert = self.store.get_alert(name)
            analysis, condition = alert.analysis, alert.condition
            operands = [*condition.operands, "", ""]
            self.reload_options(alert.group)
            self.form = {
                "name": alert.name,
                "group": alert.group,
                "feature": analysis.feature,
                "metric": ", ".join(analysis.metrics),
                "group_by": ", ".join(analysis.group_by),
                "where": analysis.where or "",
                "condition": condition.operator,
                "low": _number_text(operands[0]),
                "high": _number_text(operands[1]),
                "notify": ", ".join(alert.notify),
                "schedule": alert.schedule,
                "on_ingest": bool(alert._row().on_ingest),
                "editing": alert.name,
            }
            self.errors, self.message = {}, f"Editing alert {alert.name!r}."
            self._show_current(alert)
        except RaiseError as error:
            self.errors = {"form": short_error(error)}

    def _show_current(self, alert: Alert) -> None:
        history = alert.history().head(HISTORY_ROWS)
        rows = [
            {
                "evaluated_at": str(row.evaluated_at)[:19],
                "state": row.state,
                "values": {str(k): json_number(v) for k, v in list((row.values or {}).items())[:SHOWN_SERIES]},
                "message": row.message or "",
            }
            for row in history.itertuples()
        ]
        value = rows[0]["values"] if rows else {}
        self.current = {"alert": alert.name, "state": alert.state or "not evaluated", "values": value, "history": rows}

    # -- actions ----------------------------------------------------------------------------

    def save(self) -> Alert | None:
        """Create or update the alert from the form; return it, or None with ``errors`` set."""
        form = {**EMPTY_FORM, **self.form}
        errors: dict[str, str] = {}
        parts = self._parse(form, errors)
        if errors:
            self.errors, self.message = errors, "Fix the marked fields; nothing was saved."
            return None

        name, analysis, condition, targets, schedule = parts
        try:
            alert = self.store.create_alert(
                name,
                analysis,
                condition,
                targets,
                group=form["group"],
                schedule=schedule,
                on_ingest=_flag(form["on_ingest"]),
                replace=form.get("editing") == name,
            )
        except RaiseError as error:
            self.errors = {_field_of(error): short_error(error)}
            self.message = self._after_failed_save(name, form)
            return None

        self.errors = {}
        self.message = f"Saved alert {name!r}; its state is {alert.state or 'not evaluated'}."
        self.form = {**form, "editing": name}
        self.reload_options(form["group"])
        self._show_current(alert)
        logger.info("Alert editor saved alert %s", name)
        return alert

    def _after_failed_save(self, name: str, form: dict[str, Any]) -> str:
        """Say whether a save that raised stored the alert anyway (its first evaluation failed)."""
        existed = name in self.options.get("alerts", [])
        self.reload_options(form["group"])
        if existed or name not in self.options.get("alerts", []):
            return "Nothing was saved."
        self.form = {**form, "editing": name}
        return f"Saved alert {name!r}, but its first evaluation failed; fix the definition and save again."

    def send_test(self) -> dict[str, str]:
        """Send a test notification to the form's targets; return the outcome per target."""
        from raise_jupyter.alerts import send_test_notification

        form = {**EMPTY_FORM, **self.form}
        try:
            outcome = send_test_notification(self.store, _targets(form["notify"]), name=form["name"] or "(unsaved)")
        except RaiseError as error:
            self.errors = {**self.errors, "notify": short_error(error)}
            return {}
        self.test_result = outcome
        return outcome

    def _parse(self, form: dict[str, Any], errors: dict[str, str]) -> tuple[Any, ...]:
        from raise_jupyter import names
        from raise_jupyter.notify import parse_targets
        from raise_jupyter.schedule import parse_schedule

        def attempt(field: str, make: Any) -> Any:
            try:
                return make()
            except (RaiseError, ValueError, TypeError) as error:
                errors[field] = short_error(error)
                return None

        name = attempt("name", lambda: names.validate_alert_name(form["name"]))
        groups = self.options.get("groups", {})
        if form["group"] not in groups:
            errors["group"] = f"Choose a feature group; {form['group']!r} is not one of {', '.join(groups) or '(none)'}."
        features = [f["name"] for f in groups.get(form["group"], [])]
        if form["group"] in groups and form["feature"] not in features:
            errors["feature"] = f"Choose a feature of {form['group']!r}."
        analysis = attempt("metric", lambda: _aggregation(form))
        condition = attempt("low", lambda: _condition(form))
        targets = attempt("notify", lambda: [t.target for t in parse_targets(_targets(form["notify"]))])
        schedule = attempt("schedule", lambda: str(parse_schedule(form["schedule"])))
        attempt("on_ingest", lambda: _flag(form["on_ingest"]))
        return name, analysis, condition, targets, schedule

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        if isinstance(content.get("form"), dict):
            self.form = {**self.form, **content["form"]}
        kind = content.get("type")
        if kind == "group":
            self.reload_options(self.form.get("group"))
            features = self.options["groups"].get(self.form.get("group"), [])
            self.form = {**self.form, "feature": _first_numeric(features)}
        elif kind == "save":
            self.save()
        elif kind == "test":
            self.send_test()
        elif kind == "load" and isinstance(content.get("name"), str):
            self.load(content["name"])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        alerts = self.store.list_alerts()
        html = "".join(alert._repr_html_() for alert in alerts) or "<p>No alerts yet.</p>"
        return widget_bundle(self, text=repr(self), html=html)

    def __repr__(self) -> str:
        return f"AlertEditor({self.store.namespace}, editing={self.form.get('editing') or None!r})"


def _first_numeric(features: list[dict[str, str]]) -> str:
    """Return the first feature whose dtype a numeric metric such as avg applies to."""
    for feature in features:
        if feature["dtype"].startswith(("int", "float")):
            return feature["name"]
    return features[0]["name"] if features else ""


def _condition(form: dict[str, Any]) -> Condition:
    arity = next((c["arity"] for c in CONDITIONS if c["key"] == form["condition"]), None)
    if arity is None:
        raise ValueError(f"Unknown condition {form['condition']!r}.")
    values = [_parse_number(form["low"], "threshold")]
    if arity == 2:
        values.append(_parse_number(form["high"], "upper bound"))
    return Condition(form["condition"], tuple(values))


def _parse_number(text: Any, label: str) -> float:
    if isinstance(text, bool):
        raise ValueError(f"The {label} must be a number, got {text!r}.")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        cleaned = str(text).strip()
        if "," in cleaned:
            raise ValueError(f"The {label} {_shown(text)} contains a comma; write numbers with a point, such as 0.5.")
        try:
            value = float(cleaned)
        except ValueError:
            raise ValueError(f"The {label} must be a number, got {_shown(text)}.") from None
    if not math.isfinite(value):
        raise ValueError(f"The {label} must be a finite number, got {_shown(text)}.")
    return value


def _shown(value: Any) -> str:
    """Return ``repr(value)`` cut to 80 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _aggregation(form: dict[str, Any]) -> Aggregation:
    metrics = [m.strip() for m in str(form["metric"]).split(",") if m.strip()]
    group_by = [g.strip() for g in str(form.get("group_by") or "").split(",") if g.strip()]
    where = str(form.get("where") or "").strip() or None
    return Aggregation(form["feature"] or "feature", metrics or [""], group_by or None, where)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"on_ingest must be true or false, got {_shown(value)}.")


def _number_text(value: Any) -> str:
    if value == "":
        return ""
    # repr round-trips a float exactly; ":g" keeps 6 digits, so saving a loaded form unchanged
    # would alter a threshold such as 1234567.25.
    return repr(value) if isinstance(value, float) else str(value)


def _targets(text: Any) -> list[str]:
    if isinstance(text, (list, tuple)):
        return [str(t).strip() for t in text if str(t).strip()]
    return [part.strip() for part in re.split(r"[,\n;]+", str(text or "")) if part.strip()]


def _field_of(error: RaiseError) -> str:
    """Guess which form field an API error concerns, to show it there."""
    text = str(error).lower()
    for field, words in (
        # A name clash raises ConflictError("Alert 'x' exists with a different condition; ...").
        ("name", ("alert name", "already exists", "exists with a different")),
        ("feature", ("feature",)),
        ("metric", ("metric",)),
        ("schedule", ("schedule", "cron")),
        ("notify", ("target", "e-mail", "webhook", "url")),
    ):
        if any(word in text for word in words):
            return field
    return "form"
