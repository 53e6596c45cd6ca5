"""`manage.py simulator`: staff controls for the simulator gateways configured in settings.PGI_GATEWAYS.

    manage.py simulator outage <code> on|off|status   take one simulator down, bring it back, or ask
    manage.py simulator status                        every simulator and whether it is up
    manage.py simulator report <code> [--day YYYY-MM-DD] [--out FILE]
                                                      its settlement report of one UTC day (CSV)
"""

import datetime
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ..registry import UnknownGateway, get_connector
from .connector import SimulatorConnector, simulator_outage, simulator_outage_set
from .report import simulator_report_write


def _simulator(code: str) -> SimulatorConnector:
    try:
        connector = get_connector(code)
    except UnknownGateway as exc:
        raise CommandError(f"No gateway {code!r} is configured (PGI_GATEWAYS).") from exc
    if not isinstance(connector, SimulatorConnector):
        raise CommandError(f"Gateway {code!r} is not a simulator.")
    return connector


def _state(connector: SimulatorConnector) -> str:
    if connector.outage:
        return "down (its `outage` option is set in settings)"
    return "down (switched off)" if simulator_outage(connector.code) else "up"


def _day(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--day must be a date as YYYY-MM-DD, not {value!r}.") from exc


class Command(BaseCommand):
    help = "Simulator gateways: switch a simulated outage on or off, show their state, write a settlement report."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        outage = actions.add_parser("outage", help="Take one simulator down, bring it back, or show its state.")
        outage.add_argument("code", help="A simulator's gateway code, e.g. simulator.")
        outage.add_argument("switch", choices=["on", "off", "status"], help="on: down; off: up again; status: show.")
        actions.add_parser("status", help="Every configured simulator and whether it is up.")
        report = actions.add_parser("report", help="Write one simulator's settlement report of one UTC day as CSV.")
        report.add_argument("code", help="A simulator's gateway code, e.g. simulator.")
        report.add_argument("--day", help="The UTC day, YYYY-MM-DD (default: yesterday, UTC).")
        report.add_argument("--out", help="The file to write (default: standard output). Written whole or not at all.")

    def handle(self, *args, action, **options):
        if action == "outage":
            self._outage(options["code"], options["switch"])
        elif action == "status":
            self._status()
        else:
            self._report(options["code"], options["day"], options["out"])

    def _outage(self, code: str, switch: str) -> None:
        connector = _simulator(code)
        if switch != "status":
            simulator_outage_set(code, switch == "on")
        self.stdout.write(f"{code}: {_state(connector)}")

    def _status(self) -> None:
        codes = [code for code in settings.PGI_GATEWAYS if isinstance(get_connector(code), SimulatorConnector)]
        if not codes:
            self.stdout.write("No simulator gateway is configured.")
        for code in codes:
            self.stdout.write(f"{code}: {_state(get_connector(code))}")

    def _report(self, code: str, day_text: str | None, out: str | None) -> None:
        _simulator(code)
        day = _day(day_text) if day_text else datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
        if out is None:
            simulator_report_write(code=code, day=day, out=self.stdout)
            return
        target = Path(out)
        # Written beside the target and renamed over it: whoever watches the folder (the
        # reconciliation inbox) never reads half a file.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(temporary, 0o666 & ~mask)  # as an ordinary new file, not mkstemp's 0600
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
                lines = simulator_report_write(code=code, day=day, out=file)
            os.replace(temporary, target)
        except BaseException:  # anything, Ctrl-C included: no half-written file is left behind; re-raised
            Path(temporary).unlink(missing_ok=True)
            raise
        self.stdout.write(f"{code}: report of {day.isoformat()} written to {target} ({lines} lines)")
