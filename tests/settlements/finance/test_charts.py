"""Server-rendered SVG charts: round axes, escaped text, no style attribute (the CSP forbids them)."""

from decimal import Decimal

from settlements.finance.charts import (
    Column,
    Segment,
    Series,
    _nice_max,
    rate_lines,
    stacked_bars,
)


def test_axes_end_on_four_round_steps():
    assert [_nice_max(v) for v in (0, 3, 4, 5, 22, 100, 101, 950)] == [4, 4, 4, 8, 40, 200, 200, 2000]


def test_labels_and_tooltips_are_escaped_and_carry_no_style():
    svg = str(stacked_bars(
        label_id="t", title="<b>title</b>", description="d",
        columns=[Column(label="<x>", tooltip='"><script>alert(1)</script>', segments=[Segment("accepted", 3)])],
    ))
    lines = str(rate_lines(label_id="r", title="t", description="d", labels=["a", "b"],
                           series=[Series("<gw>", [Decimal("50.0"), None])]))

    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;title" in svg
    assert "&lt;gw&gt;" in lines and "<gw>" not in lines
    assert "style=" not in svg + lines
    assert 'role="img"' in svg and 'aria-labelledby="t-title t-desc"' in svg


def test_a_day_without_a_rate_breaks_the_line():
    svg = str(rate_lines(label_id="r", title="t", description="d", labels=list("abcde"),
                         series=[Series("gw", [Decimal(90), Decimal(95), None, Decimal(80), Decimal(85)])]))
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4
