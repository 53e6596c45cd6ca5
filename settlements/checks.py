"""Start-up checks of PGI_SETTLEMENT: a bad debtor account or schedule should stop a deploy, not
surface at the next cut-off (where PGI still holds the batches with INVALID_PAYOUT_FILE)."""

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core import checks

from pgi.text import control_characters


def cutoff_time_problem(at: dt.time, zone: zoneinfo.ZoneInfo, year: int | None = None) -> str:
    """Why a daily cut-off at `at` in `zone` is not one moment every day, or "": on a day the clocks
    change, a local time in the skipped hour does not exist and one in the repeated hour happens
    twice (the job would run at another time than it settles up to, or twice)."""
    year = year or dt.date.today().year
    day = dt.date(year, 1, 1)
    while day.year == year:
        moment = dt.datetime.combine(day, at, tzinfo=zone)
        if moment.utcoffset() != moment.replace(fold=1).utcoffset():
            back = moment.astimezone(dt.UTC).astimezone(zone)
            kind = "does not exist" if back.replace(tzinfo=None) != moment.replace(tzinfo=None) else "happens twice"
            return f"{at:%H:%M} in {zone.key} {kind} on {day.isoformat()} (a daylight saving change)"
        day += dt.timedelta(days=1)
    return ""


def settle_daily_crontab_problem(*, minute: str, hour: str, day_of_week: str, day_of_month: str,
                                 month_of_year: str, timezone: str) -> str:
    """Why a crontab cannot be settle-daily's, or "": the job settles up to the latest time its
    crontab names, so it must name one hour and one minute, every day, at a local time that is
    one moment every day (cutoff_time_problem)."""
    if not (hour.isdigit() and minute.isdigit() and 0 <= int(hour) <= 23 and 0 <= int(minute) <= 59):
        return (
            f"settle-daily runs once a day at its cut-off: give one hour (0-23) and one minute (0-59), "
            f"not hour {hour!r} and minute {minute!r}."
        )
    if (day_of_week, day_of_month, month_of_year) != ("*", "*", "*"):
        return "settle-daily runs every day: day of week, day of month and month of year must be '*'."
    try:
        zone = zoneinfo.ZoneInfo(str(timezone))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return f"{timezone!r} is not a time zone."
    if problem := cutoff_time_problem(dt.time(int(hour), int(minute)), zone):
        return f"The cut-off {problem}: choose another time."
    return ""


@checks.register("pgi")
def settlement_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .sepa import account_problem, sepa_text

    config = {"debtor_name": "PGI Bank", "debtor_iban": "", "debtor_bic": "", **settings.PGI_SETTLEMENT}
    errors: list[checks.CheckMessage] = []
    iban = config["debtor_iban"].replace(" ", "").upper()
    bic = config["debtor_bic"].replace(" ", "").upper()
    if iban or bic:
        problem = account_problem(iban, bic) if iban else "PGI_SETTLEMENT_DEBTOR_BIC is set without an IBAN"
        if problem:
            errors.append(
                checks.Error(
                    f"The bank's own settlement account (PGI_SETTLEMENT_DEBTOR_IBAN/_BIC): {problem}. "
                    "Every settlement batch would be held with INVALID_PAYOUT_FILE.",
                    hint="Set the IBAN (and BIC) of the account payout files pay from.",
                    id="pgi.E040",
                )
            )
    name = config["debtor_name"]
    if control_characters(name) or not sepa_text(name, 70):
        errors.append(
            checks.Error(
                f"PGI_SETTLEMENT_DEBTOR_NAME {name!r} has control characters or no letter of the SEPA character set.",
                id="pgi.E041",
            )
        )
    for key in ("payout_days", "lookback_days"):
        if not isinstance(config.get(key), int) or config[key] < 0:
            errors.append(
                checks.Error(f"PGI_SETTLEMENT_{key.upper()} must be a whole number of days, 0 or more.", id="pgi.E042")
            )
    try:
        zone = zoneinfo.ZoneInfo(config["time_zone"])
        hour, minute = (int(part) for part in config["cutoff_time"].split(":"))
        at = dt.time(hour, minute)
    except (ValueError, TypeError, KeyError, zoneinfo.ZoneInfoNotFoundError) as exc:
        errors.append(
            checks.Error(
                f"PGI_SETTLEMENT_CUTOFF_TIME / _TIME_ZONE cannot be read: {exc}",
                hint="HH:MM and an IANA time zone name such as Europe/Berlin.",
                id="pgi.E043",
            )
        )
    else:
        if problem := cutoff_time_problem(at, zone):
            errors.append(
                checks.Error(
                    f"The settlement cut-off {problem}.",
                    hint="Choose a cut-off outside the hours the clocks change (e.g. 00:00 or 23:00).",
                    id="pgi.E044",
                )
            )
    return errors
