"""The admin's one way to write an instant and a CSV cell."""

from datetime import datetime, timedelta, timezone

import pytest

from pgi.admin_format import instant, spreadsheet_safe


def test_instant_is_iso_8601_utc_to_the_second_whatever_the_zone_it_comes_in():
    berlin = timezone(timedelta(hours=1))

    assert instant(datetime(2026, 12, 1, 23, 14, 54, 987654, tzinfo=berlin)) == "2026-12-01T22:14:54Z"
    assert instant(None) == "-"


@pytest.mark.parametrize("cell", ["=1+2", "+31 20 123", "-2", "@SUM(A1)", "\t=1", "\r=1", " =1+2", "\uff1d1+2", "\uff0b1"])
def test_a_cell_a_spreadsheet_would_run_stays_text(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["50.00", "order-1001", "", "pay_01abc"])
def test_other_cells_are_left_as_they_are(cell):
    assert spreadsheet_safe(cell) == cell
