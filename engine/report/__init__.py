"""KPI reports from the SQL store's ticket projection (`ticketflow report`).

A package because a report is four concerns: reading the projection (`data`), computing KPIs,
trends and comparisons (`kpi`, pure), assembling a document (`build`), and rendering it as text,
JSON, CSV (`render`) or a self-contained HTML file with inline SVG charts (`html`).
"""

from engine.report.build import (
    DIMENSIONS,
    BadPeriod,
    Selection,
    build_comparison,
    build_report,
    parse_period,
    parse_time,
    selections_for_compare,
)
from engine.report.data import UnknownRuleset

__all__ = [
    "DIMENSIONS",
    "BadPeriod",
    "Selection",
    "UnknownRuleset",
    "build_comparison",
    "build_report",
    "parse_period",
    "parse_time",
    "selections_for_compare",
]
