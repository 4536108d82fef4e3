"""Alerts: an Aggregation watched by a Condition, evaluated on a schedule and after ingests.

An evaluation runs the aggregation on the latest table version and compares every value (one
per metric, and per group with ``group_by``) with the condition. The alert is ``firing`` when
any value meets the condition, ``ok`` when none does, and ``no_data`` when there is no value
at all. Notifications go out through the outbox only on a change into or out of ``firing``.
The state, the event and the notifications of one evaluation are written in one catalog
transaction, and an evaluation of an older table version than the last one applied is dropped,
so that concurrent evaluators (kernels, workers) never notify twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from raise_jupyter import access, analytics, audit, names, notify, scheduler
from raise_jupyter.access import guarded
from raise_jupyter.analysis import Aggregation, analysis_from_spec, check_analysis
from raise_jupyter.conditions import Condition, check_condition, condition_from_spec
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import as_utc, utcnow
from raise_jupyter.errors import ConflictError, DefinitionError, NotFoundError, RaiseWarning
from raise_jupyter.schedule import parse_schedule

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

KIND = "alert"
OK, FIRING, NO_DATA = "ok", "firing", "no_data"
# Evaluations kept per alert in alert_events; older ones are deleted.
HISTORY_LIMIT = 1000
# Whether an evaluation that queues notifications also starts sending them in a background
# thread; without it only a worker or scheduler (or notify.deliver_due) sends them.
DELIVER_IN_BACKGROUND = True

_smtp_warned: set[Path] = set()


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one alert evaluation.

    Attributes
    ----------
    state
        ``"ok"``, ``"firing"`` or ``"no_data"``.
    previous_state
        The state before, None at the first evaluation.
    values
        Metric value per series: ``"avg"``, or ``"avg[UA]"`` with ``group_by``.
    firing
        The series whose value met the condition.
    version
        Table version of the group that was evaluated.
    notified
        Whether this evaluation changed the state so that notifications were queued.
    """

    state: str
    previous_state: str | None
    values: dict[str, float | None]
    firing: list[str]
    version: int
    notified: bool


class Alert:
    """An alert of a feature store; see ``FeatureStore.create_alert``."""

    def __init__(self, store: FeatureStore, alert_id: int, name: str | None = None) -> None:
        self._store = store
        self._id = alert_id
        self._name = name

    def _row(self) -> Any:
        with self._store._catalog.read() as conn:
            row = conn.execute(sa.select(tables.alerts).where(tables.alerts.c.id == self._id)).first()
        if row is None:
            raise NotFoundError(f"Alert {self._name or self._id!r} was deleted; create it again with fs.create_alert().")
        self._name = row.name
        return row

    @property
    def name(self) -> str:
        return self._row().name

    @property
    def analysis(self) -> Aggregation:
        return analysis_from_spec(self._row().analysis)  # type: ignore[return-value]

    @property
    def condition(self) -> Condition:
        return condition_from_spec(self._row().condition)

    @property
    def notify(self) -> list[str]:
        return list(self._row().notify)

    @property
    def schedule(self) -> str:
        return self._row().schedule

    @property
    def group(self) -> str:
        """Name of the feature group the alert watches."""
        return self._store._group_name_by_id(self._row().group_id, "this alert")

    @property
    def state(self) -> str | None:
        """``"ok"``, ``"firing"``, ``"no_data"``, or None before the first evaluation."""
        return self._row().state

    @property
    def paused(self) -> bool:
        return bool(self._row().paused)

    @guarded(access.EVALUATE, kind="alert")
    def evaluate(self) -> Evaluation:
        """Evaluate the alert now, record the result and queue notifications on a state change."""
        self._row()  # raises with the alert's name if it was deleted
        return evaluate(self._store, self._id)

    @guarded(access.UPDATE, kind="alert")
    def pause(self) -> Alert:
        """Stop scheduled and on-ingest evaluations until ``resume()``."""
        self._set_paused(True)
        return self

    @guarded(access.UPDATE, kind="alert")
    def resume(self) -> Alert:
        """Evaluate on schedule and after ingests again."""
        self._set_paused(False)
        return self

    def _set_paused(self, paused: bool) -> None:
        with self._store._catalog.write() as conn:
            conn.execute(
                tables.alerts.update().where(tables.alerts.c.id == self._id).values(paused=paused, updated_at=utcnow())
            )
            scheduler.set_paused(conn, KIND, self._id, paused)

    @guarded(access.DELETE, kind="alert")
    def delete(self) -> None:
        """Delete the alert, its history and its schedule; queued notifications are still sent."""
        with self._store._catalog.write() as conn:
            scheduler.remove_task(conn, KIND, self._id)
            conn.execute(tables.alerts.delete().where(tables.alerts.c.id == self._id))
        logger.info("Deleted alert %d", self._id)

    @guarded(access.READ, kind="alert")
    def history(self) -> pandas.DataFrame:
        """Return the evaluations, newest first: time, state, previous state, values, message."""
        import pandas as pd

        events = tables.alert_events
        with self._store._catalog.read() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.alert_id == self._id).order_by(events.c.id.desc())
            ).all()
        return pd.DataFrame(
            {
                "evaluated_at": [as_utc(r.evaluated_at) for r in rows],
                "state": [r.state for r in rows],
                "previous_state": [r.previous_state for r in rows],
                "values": [r.values for r in rows],
                "message": [r.message for r in rows],
                "version": [r.table_version for r in rows],
            }
        )

    def __repr__(self) -> str:
        row = self._row()
        condition = condition_from_spec(row.condition).describe()
        return f"Alert({row.name!r}, {analysis_from_spec(row.analysis)!r}, {condition}, state={row.state!r})"

    def _repr_html_(self) -> str:
        import html

        row = self._row()
        paused = " (paused)" if row.paused else ""
        return (
            f"<p><b>Alert {html.escape(row.name)}</b>{paused}: {html.escape(repr(analysis_from_spec(row.analysis)))} "
            f"{html.escape(condition_from_spec(row.condition).describe())}, state <b>{html.escape(str(row.state))}</b>, "
            f"schedule {html.escape(row.schedule)}, notify {html.escape(', '.join(row.notify))}</p>"
        )


# -- creation -----------------------------------------------------------------------------------


def create_alert(
    store: FeatureStore,
    name: str,
    analysis: Aggregation,
    condition: Condition,
    notify_targets: Sequence[str] | str,
    *,
    group: str | FeatureGroup | None,
    schedule: str | Any,
    on_ingest: bool,
    replace: bool,
) -> Alert:
    """Create or return an alert; see ``FeatureStore.create_alert``."""
    alert_name = names.validate_alert_name(name)
    analysis = check_analysis(analysis)
    if not isinstance(analysis, Aggregation):
        raise DefinitionError(f"Alerts watch an Aggregation, got {analysis!r}; for example Aggregation('ctr', ['avg']).")
    condition = check_condition(condition)
    targets = notify.parse_targets(notify_targets)
    parsed_schedule = parse_schedule(schedule)
    if not isinstance(on_ingest, bool):
        raise DefinitionError(f"on_ingest must be True or False, got {on_ingest!r}.")

    target_group = resolve_group(store, analysis.feature, group)
    feature = analytics.resolve_feature(target_group.name, analysis.feature)
    analysis = analysis.with_feature(feature)
    analytics.check(target_group, analysis)

    values = {
        "group_id": target_group._id,
        "analysis": analysis.to_spec(),
        "condition": condition.to_spec(),
        "notify": [t.target for t in targets],
        "schedule": str(parsed_schedule),
        "on_ingest": on_ingest,
    }
    alert_id, changed = _save(store, alert_name, values, replace=replace)
    _warn_without_smtp(store, targets)
    alert = Alert(store, alert_id, alert_name)
    if changed:
        # A new or redefined alert gets its state now rather than at the next schedule.
        alert.evaluate()
    return alert


def _save(store: FeatureStore, name: str, values: dict[str, Any], *, replace: bool) -> tuple[int, bool]:
    """Insert or update the alert; return its id and whether anything changed."""
    alerts = tables.alerts
    now = utcnow()
    with store._catalog.write() as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.namespace == store.namespace, alerts.c.name == name)).first()
        if row is not None:
            changed = [key for key, value in values.items() if getattr(row, key) != value]
            if not changed:
                audit.unchanged()
                return int(row.id), False
            if not replace:
                raise ConflictError(
                    f"Alert {name!r} exists with a different {', '.join(changed)}; pass replace=True to "
                    "redefine it, or choose another name."
                )
            conn.execute(alerts.update().where(alerts.c.id == row.id).values(**values, defined_by=store.user, updated_at=now))
            alert_id = int(row.id)
        else:
            result = conn.execute(
                alerts.insert().values(
                    namespace=store.namespace, name=name, paused=False, defined_by=store.user, created_at=now,
                    updated_at=now, **values
                )
            )
            alert_id = int(result.inserted_primary_key[0])
        scheduler.ensure_task(conn, KIND, alert_id, values["schedule"])
    logger.info("Saved alert %s (id %d) on group id %d", name, alert_id, values["group_id"])
    return alert_id, True


def _warn_without_smtp(store: FeatureStore, targets: list[notify.Target]) -> None:
    if any(t.channel == "email" for t in targets) and not notify.smtp_configured(store.root):
        if store.root not in _smtp_warned:
            _smtp_warned.add(store.root)
            warnings.warn(
                "No SMTP server is configured, so alert e-mails wait in the outbox. Set smtp_url in "
                f"{store.root / 'config.yaml'} or RAISE_SMTP_URL, such as smtp://mail.example.com:587.",
                RaiseWarning,
                stacklevel=4,
            )


def resolve_group(store: FeatureStore, feature: str, group: str | FeatureGroup | None) -> FeatureGroup:
    """Return the group of ``feature``: ``group`` if given, else the group named in ``"group.feature"``,
    else the only group that has a feature of that name."""
    from raise_jupyter.group import FeatureGroup

    if isinstance(group, FeatureGroup):
        if group.namespace != store.namespace or group._store.root != store.root:
            raise DefinitionError(
                f"group {group.namespace}/{group.name} is not in this store's namespace {store.namespace!r}; "
                "an alert or live table watches a group of its own namespace."
            )
        # Look the group up again, so that the check runs as this store's user.
        return store.get_feature_group(group.name)
    if group is not None:
        return store.get_feature_group(group)

    prefix, dot, rest = feature.partition(".")
    groups = store.list_feature_groups()
    if dot and any(g.name == prefix for g in groups):
        return store.get_feature_group(prefix)
    candidates = [g for g in groups if feature in g._layout_names()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        known = ", ".join(f"{g.name}.{n}" for g in groups for n in g._layout_names()) or "(none)"
        raise NotFoundError(f"No feature group of namespace {store.namespace!r} has a feature {feature!r}. Features: {known}.")
    listed = ", ".join(f"'{g.name}.{feature}'" for g in candidates)
    raise DefinitionError(f"Feature {feature!r} is in several groups: {listed}; name one, such as {listed.split(', ')[0]}, or pass group=.")


def list_alerts(store: FeatureStore) -> list[Alert]:
    """Return the alerts of the store's namespace, by name."""
    alerts = tables.alerts
    with store._catalog.read() as conn:
        ids = conn.execute(
            sa.select(alerts.c.id).where(alerts.c.namespace == store.namespace).order_by(alerts.c.name)
        ).scalars()
        return [Alert(store, int(i)) for i in ids]


def get_alert(store: FeatureStore, name: str) -> Alert:
    """Return the alert called ``name``; raise NotFoundError listing the alerts otherwise."""
    alerts = tables.alerts
    with store._catalog.read() as conn:
        alert_id = conn.execute(
            sa.select(alerts.c.id).where(alerts.c.namespace == store.namespace, alerts.c.name == name)
        ).scalar()
    if alert_id is None:
        known = ", ".join(a.name for a in list_alerts(store)) or "(none)"
        raise NotFoundError(f"Alert {name!r} not found in namespace {store.namespace!r}. Alerts: {known}.")
    return Alert(store, int(alert_id))


# -- evaluation ---------------------------------------------------------------------------------


def evaluate(store: FeatureStore, alert_id: int) -> Evaluation:
    """Evaluate one alert and apply the result; see the module docstring."""
    row = Alert(store, alert_id)._row()
    group = store.get_feature_group(store._group_name_by_id(row.group_id, "this alert"))
    analysis = analysis_from_spec(row.analysis)
    condition = condition_from_spec(row.condition)

    try:
        result = group.analyze(analysis)
    except (NotFoundError, DefinitionError) as error:
        # The feature or a group_by column was deleted or changed since the alert was created.
        # The alert shows no data (a change from firing notifies) instead of failing each run.
        logger.warning("Alert %s cannot run its analysis: %s", row.name, error)
        return _apply(store, alert_id, NO_DATA, {}, [], group.version, problem=str(error))
    values = _series_values(result)
    has_rows = group.count(as_of=result.version) > 0
    previous_values = (row.last_values or {}).get("values", {})
    firing = [
        series
        for series, value in values.items()
        if value is not None and condition.holds(value, previous_values.get(series))
    ]
    if not has_rows or all(v is None for v in values.values()):
        state = NO_DATA
    else:
        state = FIRING if firing else OK
    return _apply(store, alert_id, state, values, firing, result.version)


def _series_values(result: analytics.AnalysisResult) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for metric in result.analysis.metrics:
        for key, value in result.series(metric):
            label = metric if key is None else f"{metric}[{_key_text(key)}]"
            values[label] = _number(value)
    return values


def _key_text(key: Any) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return ", ".join(p.isoformat() if isinstance(p, (dt.date, dt.datetime)) else str(p) for p in parts)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        return float(value.toordinal())
    number = float(value)
    return None if math.isnan(number) else number


def _apply(
    store: FeatureStore,
    alert_id: int,
    state: str,
    values: dict[str, float | None],
    firing: list[str],
    version: int,
    *,
    problem: str | None = None,
) -> Evaluation:
    """Record an evaluation and queue notifications, in one transaction."""
    alerts = tables.alerts
    now = utcnow()
    with store._catalog.write() as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"Alert id {alert_id} was deleted during its evaluation.")
        last_version = (row.last_values or {}).get("version", -1)
        previous = row.state
        if version < last_version:
            logger.info("Dropped evaluation of alert %s at version %d; version %d was applied", row.name, version, last_version)
            return Evaluation(previous or NO_DATA, previous, values, firing, version, notified=False)

        message = _message(row.name, state, previous, values, firing, row.condition)
        if problem is not None:
            message = f"Alert {row.name} cannot run its analysis: {problem} Fix the alert with replace=True or delete it."
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(state=state, last_values={"version": version, "values": values}, evaluated_at=now)
        )
        conn.execute(
            tables.alert_events.insert().values(
                alert_id=alert_id, evaluated_at=now, state=state, previous_state=previous,
                values=_kept_values(values, firing), message=message, table_version=version,
            )
        )
        _prune_history(conn, alert_id)
        if previous != state:
            audit.record(
                store._actor, action="alert_state", kind=KIND, name=row.name, namespace=row.namespace, outcome="ok",
                detail={"from": previous, "to": state, "version": version}, conn=conn,
            )
        notified = _notifies(previous, state)
        log_ids: list[int] = []
        if notified:
            payload = {
                "alert": row.name,
                "namespace": row.namespace,
                "state": state,
                "previous_state": previous,
                "values": _kept_values(values, firing),
                "series": len(values),
            }
            subject = {
                FIRING: f"[Raise] {row.name} is firing",
                OK: f"[Raise] {row.name} recovered (ok)",
                NO_DATA: f"[Raise] {row.name} stopped firing: no data",
            }[state]
            targets = notify.parse_targets(row.notify)
            ids = notify.enqueue(conn, targets, subject=subject, body=message, payload=payload)
            log_ids = [i for i, target in zip(ids, targets, strict=True) if target.channel == "log"]

    logger.info("Alert %s evaluated: %s (was %s) at version %d", row.name, state, previous, version)
    if notified and DELIVER_IN_BACKGROUND:
        _deliver_soon(store, log_ids=log_ids)
    return Evaluation(state, previous, values, firing, version, notified)


# Series named in a notification's text.
MESSAGE_SERIES = 10
# Series values kept in each history entry and notification payload, firing series first. The
# alert itself keeps every series' last value, which CHANGED_BY compares with.
KEPT_SERIES = 1000


def _kept_values(values: dict[str, float | None], firing: list[str]) -> dict[str, float | None]:
    """Return the values of the firing series and then of the others, at most ``KEPT_SERIES``."""
    if len(values) <= KEPT_SERIES:
        return values
    names = list(dict.fromkeys([*firing, *values]))[:KEPT_SERIES]
    return {name: values[name] for name in names}


def _notifies(previous: str | None, state: str) -> bool:
    """Return whether a change from ``previous`` to ``state`` is worth a notification."""
    return previous != state and FIRING in (previous, state)


def _message(name: str, state: str, previous: str | None, values: dict[str, float | None], firing: list[str], condition: dict) -> str:
    """Describe an evaluation in one paragraph; long series lists are cut (the payload has them all)."""
    described = condition_from_spec(condition).describe()
    if state == FIRING:
        share = f" ({len(firing)} of {len(values)} series)" if len(values) > 1 else ""
        return f"Alert {name} is firing: {_listed(values, firing)} met {described}{share}."
    listed = _listed(values, list(values)) or "none"
    was = f"was {previous}" if previous else "first evaluation"
    if state == NO_DATA:
        return f"Alert {name} has no data ({was}). Values: {listed}."
    return f"Alert {name} is ok ({was}): no value meets {described}. Values: {listed}."


def _listed(values: dict[str, float | None], series: list[str]) -> str:
    """Return ``series = value`` for the first ``MESSAGE_SERIES`` of ``series``, and how many more."""
    shown = ", ".join(f"{name} = {_format(values[name])}" for name in series[:MESSAGE_SERIES])
    more = len(series) - MESSAGE_SERIES
    return f"{shown} and {more} more" if more > 0 else shown


def _format(value: float | None) -> str:
    return "null" if value is None else f"{value:g}"


def _prune_history(conn: sa.Connection, alert_id: int) -> None:
    events = tables.alert_events
    cutoff = conn.execute(
        sa.select(events.c.id)
        .where(events.c.alert_id == alert_id)
        .order_by(events.c.id.desc())
        .offset(HISTORY_LIMIT)
        .limit(1)
    ).scalar()
    if cutoff is not None:
        conn.execute(events.delete().where(events.c.alert_id == alert_id, events.c.id <= cutoff))


def _deliver_soon(store: FeatureStore, *, log_ids: list[int]) -> None:
    """Write ``log`` notifications now, and try to send the others in a background thread.

    Writing log records in the evaluating thread puts them under the notebook cell that caused
    them. A slow logging handler therefore slows the ingest down. The outbox keeps what fails for a worker.
    """
    root = store.root
    if log_ids:
        try:
            notify.deliver_due(root, store._catalog, owner=scheduler.make_owner_id(), ids=log_ids)
        except Exception:
            # A failing logging handler must not stop the other channels; the worker retries.
            logger.exception("Writing log notifications failed; they stay in the outbox for the worker")

    def deliver() -> None:
        from raise_jupyter.store import open_catalog

        try:
            notify.deliver_due(root, open_catalog(root), owner=scheduler.make_owner_id())
        except Exception:
            logger.exception("Sending alert notifications failed; they stay in the outbox for the worker")

    # Not a daemon thread: a short script that ends right after an ingest still sends its
    # notifications (each send times out after 10 s) instead of leaving them leased.
    threading.Thread(target=deliver, name="raise-notify", daemon=False).start()


# -- hooks ----------------------------------------------------------------------------------------


def evaluate_after_ingest(store: FeatureStore, group_id: int) -> None:
    """Evaluate the group's unpaused on-ingest alerts; errors are logged, not raised."""
    alerts = tables.alerts
    with store._catalog.read() as conn:
        ids = conn.execute(
            sa.select(alerts.c.id).where(alerts.c.group_id == group_id, alerts.c.on_ingest, sa.not_(alerts.c.paused))
        ).scalars().all()
    for alert_id in ids:
        try:
            evaluate(store, int(alert_id))
        except Exception:
            logger.exception("Evaluating alert id %d after an ingest failed", alert_id)


def run_task(root: Path, target_id: int, due_at: dt.datetime | None) -> None:
    """Scheduler handler: evaluate alert ``target_id`` of the store at ``root``."""
    from raise_jupyter.store import FeatureStore

    alerts = tables.alerts
    with _store_catalog(root).read() as conn:
        row = conn.execute(
            sa.select(alerts.c.namespace, alerts.c.name, alerts.c.defined_by).where(alerts.c.id == target_id)
        ).first()
    if row is None:
        raise NotFoundError(f"Alert id {target_id} no longer exists.")
    store = FeatureStore._for_scheduler(row.namespace, root, row.defined_by)
    # Scheduled evaluations need what evaluate() needs, so an author demoted to viewer stops them.
    access.check(store._actor, access.EVALUATE, path=row.namespace, kind=KIND, name=row.name)
    evaluate(store, target_id)


def _store_catalog(root: Path) -> Any:
    from raise_jupyter.store import open_catalog

    return open_catalog(root)


scheduler.register_handler(KIND, run_task)


# -- test notifications -------------------------------------------------------------------------


def send_test_notification(store: FeatureStore, notify_targets: Sequence[str] | str, *, name: str = "test") -> dict[str, str]:
    """Send a test message to each target now and return, per target, "sent" or the error.

    The message goes through the outbox like real notifications, so a target that fails now is
    retried by the worker.
    """
    access.check(store._actor, access.TEST_NOTIFICATION, path=store.namespace, kind=KIND, name=name)
    targets = notify.parse_targets(notify_targets)
    ids = notify.enqueue(
        store._catalog,
        targets,
        subject=f"Raise test notification for alert {name}",
        body=f"This is a test of the notification targets of alert {name!r} in {store.namespace}.",
        payload={"alert": name, "state": "test", "namespace": store.namespace},
    )
    notify.deliver_due(store.root, store._catalog, owner=scheduler.make_owner_id(), ids=ids)
    outbox = tables.outbox
    with store._catalog.read() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(outbox).where(outbox.c.id.in_(ids))).all()}
    outcome = {}
    for target, message_id in zip(targets, ids, strict=True):
        row = rows.get(message_id)
        if row is not None and row.delivered_at is not None:
            outcome[target.target] = "sent"
        else:
            error = row.last_error if row is not None and row.last_error else "not sent yet; the worker retries it"
            outcome[target.target] = f"failed: {error}"
    audit.record(
        store._actor, action=access.TEST_NOTIFICATION.action, kind=KIND, name=name, namespace=store.namespace,
        outcome="ok", detail={"targets": outcome},
    )
    return outcome
