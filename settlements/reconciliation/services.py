"""Reconciliation's writes: fetch or load a report, run the match for a gateway's day, resolve exceptions.

Every entry point (beat's daily job, the inbox job, an upload in the finance UI, `manage.py
reconcile`) ends in reconciliation_run. A run holds the gateway's day's row locked (select_for_update)
while it matches, so two runs of the same day follow one another; a rerun replaces the totals and
upserts the exceptions, keeping every resolution. No gateway call runs inside a transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateways.base import GatewayError
from gateways.registry import UnknownGateway, configured_codes, get_connector
from pgi.audit.actors import Actor
from pgi.audit.services import audit_record, audit_record_each
from pgi.errors import ApplicationError, NotFound, ServiceUnavailable, ValidationFailed

from . import loading, matching
from .models import (
    GatewayReport,
    ReconciliationException,
    ReconciliationRun,
    ReportSource,
    Resolution,
    RunStatus,
    RunTrigger,
)

logger = logging.getLogger(__name__)
SYSTEM = "system"
DAILY_PREFIX = "reconcile-daily-"
DAILY_TASK = "settlements.reconciliation.tasks.reconciliation_reconcile_gateway"


@dataclass(frozen=True)
class RunOutcome:
    run: ReconciliationRun | None  # None for a dry run
    report: GatewayReport | None
    report_created: bool  # False: no report, or the same file was loaded before
    totals: matching.Totals


def _check_gateway(gateway: str) -> None:
    if gateway not in configured_codes() and not GatewayReport.objects.filter(gateway=gateway).exists():
        raise ValidationFailed(f"No gateway {gateway!r} is configured.", code="UNKNOWN_GATEWAY")


# The first day PGI reconciles (a bound for a mistyped --date: days before it are refused).
EARLIEST_DAY = dt.date(2000, 1, 1)


def _today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def _check_day(day: dt.date) -> None:
    """A day from EARLIEST_DAY to today (UTC); raises ValidationFailed (REPORT_DAY_INVALID)."""
    if not EARLIEST_DAY <= day <= _today():
        raise ValidationFailed(
            f"The day {day.isoformat()} is not one PGI reconciles: from {EARLIEST_DAY.isoformat()} to today (UTC).",
            code="REPORT_DAY_INVALID",
        )


def _check_day_over(day: dt.date) -> None:
    """A report is fetched only for a day that has ended (UTC): before, the gateway's is incomplete."""
    if day >= _today():
        raise ValidationFailed(
            f"The day {day.isoformat()} has not ended (UTC): its report cannot be fetched yet.",
            code="REPORT_DAY_NOT_OVER",
        )


def reconciliation_day_default(today: dt.date | None = None) -> dt.date:
    """The day beat's daily job reconciles: lag_days before today (UTC)."""
    today = today or timezone.now().astimezone(dt.UTC).date()
    return today - dt.timedelta(days=settings.PGI_RECONCILIATION["lag_days"])


def _report_download(*, gateway: str, day: dt.date) -> tuple[bytes, str]:
    """The day's report file from the gateway's connector (no transaction open: a gateway call)."""
    try:
        connector = get_connector(gateway)
    except UnknownGateway as exc:
        raise ValidationFailed(f"No gateway {gateway!r} is configured.", code="UNKNOWN_GATEWAY") from exc
    try:
        if hasattr(connector, "report_csv"):  # the simulator writes its own file format
            return connector.report_csv(day).encode(), f"{gateway}_{day.isoformat()}.csv"
        return loading.lines_csv(connector.fetch_report(day)), f"{gateway}_{day.isoformat()}_lines.csv"
    except GatewayError as exc:
        raise ServiceUnavailable(
            f"{gateway} has no report for {day.isoformat()} yet: {exc}", code="REPORT_UNAVAILABLE"
        ) from exc


def reconciliation_report_fetch(*, gateway: str, day: dt.date) -> loading.LoadOutcome:
    """Fetch the day's report from the gateway's connector and load it (the simulator's as its CSV,
    others' lines in PGI's line format). Raises ServiceUnavailable when the gateway has none yet."""
    _check_day(day)
    _check_day_over(day)
    data, name = _report_download(gateway=gateway, day=day)
    return loading.report_load(gateway=gateway, day=day, source=ReportSource.CONNECTOR, name=name, data=data)


def reconciliation_run(
    *,
    gateway: str,
    day: dt.date,
    report: GatewayReport | None = None,
    trigger: str = RunTrigger.COMMAND,
    user=None,
    dry_run: bool = False,
    fetch: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Reconcile the gateway's day against `report`, else the day's current report (the one loaded,
    or imported again, last), else one fetched from the connector (fetch=True, only for a day that
    has ended; without any, every operation of the day is missing at the gateway). A dry run
    computes the totals and writes nothing. Raises ValidationFailed for an unknown gateway, a day
    out of range or a fetch for a day not over, ServiceUnavailable when the report cannot be fetched."""
    _check_gateway(gateway)
    _check_day(day)
    created = False
    if report is None:
        report = loading.current_report(gateway=gateway, day=day)
    if report is None and fetch:
        _check_day_over(day)
        if dry_run:  # downloaded, then loaded in the transaction the dry run rolls back
            data, name = _report_download(gateway=gateway, day=day)
            return reconciliation_file_run(
                gateway=gateway, day=day, data=data, name=name, source=ReportSource.CONNECTOR, trigger=trigger,
                user=user, dry_run=True, progress=progress,
            )  # fmt: skip
        loaded = reconciliation_report_fetch(gateway=gateway, day=day)
        report, created = loaded.report, loaded.created
    if report is not None and (report.gateway != gateway or report.day != day):
        raise ValidationFailed("The report is of another gateway or day.", code="REPORT_MISMATCH")
    now = timezone.now()
    who = getattr(user, "get_username", lambda: SYSTEM)() if user is not None else SYSTEM
    if dry_run:
        with transaction.atomic():
            totals = matching.match(run_id=None, gateway=gateway, day=day, report_id=report and report.pk, now=now,
                                    progress=progress)  # fmt: skip
            transaction.set_rollback(True)
        return RunOutcome(run=None, report=report, report_created=created, totals=totals)
    try:
        with transaction.atomic():
            ReconciliationRun.objects.get_or_create(
                gateway=gateway, day=day, defaults={"trigger": trigger, "started_at": now}
            )
            run = ReconciliationRun.objects.select_for_update().get(gateway=gateway, day=day)
            totals = matching.match(run_id=run.pk, gateway=gateway, day=day, report_id=report and report.pk, now=now,
                                    progress=progress)  # fmt: skip
            run.report = report
            run.status = RunStatus.COMPLETED
            run.error = ""
            run.trigger = trigger
            run.triggered_by = who
            run.run_count += 1
            run.line_count = totals.lines
            run.operation_count = totals.operations
            run.matched_count = totals.matched
            run.exception_count = totals.exceptions
            run.started_at = now
            run.finished_at = timezone.now()
            run.save()
    except Exception as exc:
        # The match rolled back; the day's row says why (created if this was its first run).
        ReconciliationRun.objects.update_or_create(
            gateway=gateway, day=day,
            defaults={"status": RunStatus.FAILED, "error": f"{exc.__class__.__name__}: {exc}"[:2000],
                      "trigger": trigger, "triggered_by": who, "finished_at": timezone.now()},
            create_defaults={"status": RunStatus.FAILED, "error": f"{exc.__class__.__name__}: {exc}"[:2000],
                             "trigger": trigger, "triggered_by": who, "started_at": now, "finished_at": timezone.now()},
        )  # fmt: skip
        raise
    logger.info("reconciled %s %s: %s lines, %s exceptions", gateway, day, totals.lines, totals.exceptions)
    return RunOutcome(run=run, report=report, report_created=created, totals=totals)


def reconciliation_file_run(
    *,
    gateway: str,
    day: dt.date,
    data: bytes | BinaryIO | Path,
    name: str,
    source: str,
    trigger: str,
    user=None,
    dry_run: bool = False,
    load_progress: Callable[[int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Load a report file and reconcile the day against it. The same file loaded before is found,
    not loaded twice (report_created False); the day is reconciled again all the same. A dry run
    loads and matches in a transaction that is rolled back. Raises ValidationFailed for a file PGI
    cannot read (nothing is kept)."""
    _check_gateway(gateway)
    _check_day(day)
    if dry_run:
        with transaction.atomic():
            loaded = loading.report_load(gateway=gateway, day=day, source=source, name=name, data=data,
                                         uploaded_by=user, progress=load_progress)  # fmt: skip
            outcome = reconciliation_run(gateway=gateway, day=day, report=loaded.report, trigger=trigger, user=user,
                                         dry_run=True, progress=progress)  # fmt: skip
            transaction.set_rollback(True)
        return RunOutcome(run=None, report=None, report_created=loaded.created, totals=outcome.totals)
    loaded = loading.report_load(gateway=gateway, day=day, source=source, name=name, data=data, uploaded_by=user,
                                 progress=load_progress)  # fmt: skip
    outcome = reconciliation_run(gateway=gateway, day=day, report=loaded.report, trigger=trigger, user=user,
                                 progress=progress)  # fmt: skip
    return RunOutcome(run=outcome.run, report=loaded.report, report_created=loaded.created, totals=outcome.totals)


def upload_max_bytes() -> int:
    """The largest report the finance UI's upload takes (PGI_RECONCILIATION["upload_max_bytes"])."""
    return settings.PGI_RECONCILIATION["upload_max_bytes"]


def upload_too_large_message(size: int) -> str:
    limit = upload_max_bytes()
    return (
        f"The file has {size:,} bytes; an upload takes at most {limit:,} bytes ({limit / (1024 * 1024):g} MB). "
        "Put a larger report in the inbox folder, or load it with `manage.py reconcile --file`."
    )


def report_has_lines(content: bytes) -> bool:
    """Whether a report file holds anything after its header row (blank lines do not count)."""
    _, newline, rest = content.partition(b"\n")
    return bool(newline) and bool(rest.strip())


def reconciliation_report_upload(
    *, gateway: str, day: dt.date, name: str, content: bytes, user, replace_with_empty: bool = False,
    actor: Actor | None = None,
) -> RunOutcome:
    """Finance's upload: keep the file, load it (once per identical file) and reconcile the day.
    Raises ValidationFailed for an unknown gateway, a file PGI cannot read, a file over
    upload_max_bytes (REPORT_TOO_LARGE), and a file with no line after its header when the day's
    current report has lines (REPORT_EMPTY_REPLACES_LINES) unless `replace_with_empty`: such a
    file would turn every operation of the day into "missing at gateway". `actor`: the audit
    trail records the upload once the day is reconciled (loading and matching commit in steps)."""
    if not content:
        raise ValidationFailed("The file is empty.", code="REPORT_EMPTY")
    if len(content) > upload_max_bytes():
        raise ValidationFailed(upload_too_large_message(len(content)), code="REPORT_TOO_LARGE")
    if not replace_with_empty and not report_has_lines(content):
        current = loading.current_report(gateway=gateway, day=day)
        if current is not None and current.line_count:
            raise ValidationFailed(
                f"The file has no line after its header, and the current report of {gateway} for "
                f"{day.isoformat()} has {current.line_count:,}: it would make every operation of the day "
                "missing at the gateway. Tick “Replace with an empty report” if the gateway's report "
                "for the day really is empty.",
                code="REPORT_EMPTY_REPLACES_LINES",
            )
    outcome = reconciliation_file_run(
        gateway=gateway, day=day, data=content, name=name, source=ReportSource.UPLOAD, trigger=RunTrigger.UPLOAD,
        user=user,
    )  # fmt: skip
    with transaction.atomic():
        audit_record(actor=actor, action="gateway_report.upload", obj=outcome.report, after={
            "gateway": gateway, "day": day, "name": name, "sha256": outcome.report.sha256, "run": outcome.run.pk,
            "new_report": outcome.report_created, "exceptions": outcome.totals.exceptions})  # fmt: skip
    return outcome


@dataclass(frozen=True)
class ResolveOutcome:
    """What resolving a set of exception ids did: how many were resolved now, how many were
    resolved already (left as they were) and which ids exist not at all."""

    resolved: int
    already_resolved: int
    not_found: tuple[int, ...]


def reconciliation_exceptions_resolve(
    *, exception_ids: Iterable[int], resolution: str, note: str, user, actor: Actor | None = None
) -> ResolveOutcome:
    """Resolve the open exceptions among `exception_ids` with a resolution and a note, recording who
    and when (resolved ones are left as they are; ids that exist not are reported back in
    `not_found`, never counted as resolved). Raises ValidationFailed for an unknown resolution or an
    empty note, NotFound when no id exists."""
    if resolution not in Resolution.values:
        raise ValidationFailed(
            f"The resolution must be one of {', '.join(Resolution.values)}.", code="INVALID_RESOLUTION"
        )
    note = (note or "").strip()
    if not note:
        raise ValidationFailed("A note is required.", code="NOTE_REQUIRED")
    try:
        ids = sorted({int(pk) for pk in exception_ids})
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("Exception ids are whole numbers.", code="INVALID_ID") from exc
    existing = set(ReconciliationException.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
    if not existing:
        raise NotFound("No such reconciliation exception.")
    with transaction.atomic():
        # Under their row locks: two people resolving the same exception at once, the first one
        # wins, and the audit trail names the ones this call resolved.
        still_open = list(
            ReconciliationException.objects.select_for_update().filter(pk__in=existing, resolution="")
            .order_by("pk").values_list("pk", flat=True)
        )  # fmt: skip
        resolved = ReconciliationException.objects.filter(pk__in=still_open).update(
            resolution=resolution, resolution_note=note, resolved_by=user, resolved_at=timezone.now()
        )
        audit_record_each(actor=actor, action="reconciliation_exception.resolve", object_ids=still_open,
                          object_type="settlements.reconciliationexception", before={"resolution": ""},
                          after={"resolution": resolution, "resolution_note": note})  # fmt: skip
    return ResolveOutcome(
        resolved=resolved,
        already_resolved=len(existing) - resolved,
        not_found=tuple(pk for pk in ids if pk not in existing),
    )


def reconciliation_exception_reopen(*, exception: ReconciliationException, user) -> None:
    """Take a resolution back (a mistake): the exception is open again."""
    ReconciliationException.objects.filter(pk=exception.pk).update(
        resolution="", resolution_note="", resolved_by=None, resolved_at=None
    )


@transaction.atomic
def reconciliation_schedules_ensure() -> list[str]:
    """A `reconcile-daily-<gateway>` beat job for each configured gateway that has none (the
    migration made those of the gateways configured then); returns the names created."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    config = settings.PGI_RECONCILIATION
    hour, minute = config["run_time"].split(":")
    created = []
    for code in configured_codes():
        name = DAILY_PREFIX + code
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(int(minute)), hour=str(int(hour)), day_of_week="*", day_of_month="*", month_of_year="*",
            timezone=config["time_zone"],
        )  # fmt: skip
        PeriodicTask.objects.create(
            name=name, task=DAILY_TASK, crontab=crontab, kwargs=json.dumps({"gateway": code}),
            description=f"Reconcile {code}'s settlement report of the day before.",
        )  # fmt: skip
        created.append(name)
    return created


@dataclass(frozen=True)
class InboxOutcome:
    name: str
    ok: bool
    message: str


# The longest name a moved file (and its `.error.txt`) may have, in bytes (most file systems: 255).
INBOX_NAME_BYTES = 255 - len(".error.txt")


def inbox_moved_name(stamp: str, name: str) -> str:
    """`<stamp>_<name>`, within INBOX_NAME_BYTES: a longer name is cut and keeps a hash of the whole."""
    moved = f"{stamp}_{name}"
    if len(moved.encode("utf-8", "surrogateescape")) <= INBOX_NAME_BYTES:
        return moved
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    suffix = f"-{digest}{Path(name).suffix[:8]}"
    room = INBOX_NAME_BYTES - len(stamp.encode()) - 1 - len(suffix.encode("utf-8", "surrogateescape"))
    head = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return f"{stamp}_{head}{suffix}"


def _inbox_files(inbox: Path) -> list[os.DirEntry]:
    """The inbox's `*.csv` entries (any case), oldest first. Hidden and temporary names (a leading
    dot, a trailing `~`, `.part`, `.tmp`) and directories are left alone: a file still being written."""
    entries = []
    with os.scandir(inbox) as found:
        for entry in found:
            name = entry.name
            if name.startswith(".") or name.endswith("~") or not name.lower().endswith(".csv"):
                continue
            if entry.is_dir(follow_symlinks=False):
                continue
            entries.append(entry)
    return sorted(entries, key=lambda e: (e.stat(follow_symlinks=False).st_mtime, e.name))


def _inbox_open(path: Path) -> BinaryIO:
    """The file, opened without following a symbolic link, and only if it is a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValidationFailed(
            "The file cannot be opened, or is a symbolic link (refused).", code="INBOX_NOT_A_FILE"
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValidationFailed("Not a regular file (refused).", code="INBOX_NOT_A_FILE")
    return os.fdopen(fd, "rb")


def reconciliation_inbox_process(*, inbox: Path | None = None) -> list[InboxOutcome]:
    """Load and reconcile every `<gateway>_<YYYY-MM-DD>….csv` in the inbox, oldest first, then move
    it to processed/ (or failed/, with a `.error.txt` beside it saying why). Files are picked up
    only once complete: write them under another name (or elsewhere) and rename them in. Any error
    of one file (a symbolic link, a bad line, a database error) fails that file, never the job; a
    file that cannot be moved is logged and the next one is taken."""
    inbox = Path(inbox or settings.PGI_RECONCILIATION["inbox_dir"])
    inbox.mkdir(parents=True, exist_ok=True)
    processed, failed = inbox / "processed", inbox / "failed"
    outcomes = []
    for entry in _inbox_files(inbox):
        path = Path(entry.path)
        parsed = loading.inbox_name_parse(path.name)
        try:
            if parsed is None:
                raise ValidationFailed("The name is not <gateway>_<YYYY-MM-DD>….csv.", code="INBOX_NAME_INVALID")
            gateway, day = parsed
            with _inbox_open(path) as handle:
                outcome = reconciliation_file_run(
                    gateway=gateway, day=day, data=handle, name=path.name, source=ReportSource.INBOX,
                    trigger=RunTrigger.INBOX,
                )  # fmt: skip
            message = (
                f"{'loaded' if outcome.report_created else 'already loaded'}; "
                f"{outcome.totals.exceptions} exception(s)"
            )
            target, ok = processed, True
        except ApplicationError as exc:
            target, ok, message = failed, False, f"{exc.code}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - one file's failure never stops the inbox
            logger.exception("reconciliation inbox: %s failed", path.name)
            target, ok, message = failed, False, f"LOAD_FAILED: {exc.__class__.__name__}: {exc}"
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        moved = target / inbox_moved_name(stamp, path.name)
        try:
            target.mkdir(exist_ok=True)
            os.rename(path, moved)  # the entry itself (a symbolic link is moved, never followed)
            if not ok:
                moved.with_name(moved.name + ".error.txt").write_text(message + "\n")
        except OSError as exc:
            logger.error("reconciliation inbox: %s could not be moved to %s: %s", path.name, target.name, exc)
            message += f"; not moved: {exc}"
        logger.info("reconciliation inbox: %s %s (%s)", path.name, "processed" if ok else "failed", message)
        outcomes.append(InboxOutcome(name=path.name, ok=ok, message=message))
    return outcomes
