"""``report kpi``: the SLA KPI report per month and priority (table, CSV, JSON or HTML).

The numbers come from :mod:`ctiwatch.kpi`, as the console's ``/reports/kpi`` page and
``GET /api/v1/reports/kpi`` give them; CSV and JSON are written by it too."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ctiwatch.clock import RealClock
from ctiwatch.config import Config, load_config
from ctiwatch.kpi import (
    hours_text,
    kpi_csv,
    kpi_document,
    kpi_json,
    kpi_target_text,
    read_kpi_report,
    share_text,
)
from ctiwatch.settings import policy_from_config
from ctiwatch.storage import StorageError, Store, normalize_url
from sla.kpi import KpiReport, KpiRow, MonthError, parse_month
from sla.targets import SlaPolicy

FORMATS = ("table", "csv", "json", "html")


def register(sub: Any) -> None:
    report = sub.add_parser("report", help="reports over the incident history")
    reports = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    kpi = reports.add_parser("kpi", help="SLA KPIs per month and priority")
    kpi.add_argument("--month", type=month_argument, metavar="YYYY-MM", help="default: all")
    kpi.add_argument("--format", choices=FORMATS, default="table")
    kpi.add_argument("--config", metavar="FILE")
    kpi.set_defaults(func=kpi_command)


def month_argument(text: str) -> str:
    try:
        return parse_month(text)
    except MonthError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_kpi_report(config: Config, month: str | None) -> KpiReport:
    """The report of ``month`` (a local month; all when None) over the incidents in the
    database of ``config.storage``: :func:`ctiwatch.kpi.read_kpi_report`, the one the console
    and the API answer with.

    Raises :class:`StorageError` when the database is missing or cannot be read."""
    policy = policy_from_config(config.sla)
    _require_database(config)
    return asyncio.run(_read_report(config, policy, month))


def _require_database(config: Config) -> None:
    """Opening a SQLite file that is not there would create an empty database: refuse."""
    url = normalize_url(config.storage.url)  # ConfigError naming storage.url
    if url.get_backend_name() == "sqlite" and url.database:
        path = Path(url.database)
        if not path.is_file():
            raise StorageError(
                f"storage.url: no database at {path} (start `ctiwatch run` or run "
                "`ctiwatch db upgrade` first)"
            )


async def _read_report(config: Config, policy: SlaPolicy, month: str | None) -> KpiReport:
    async with Store.open(config.storage.url) as store:
        return await read_kpi_report(store, policy, month, now=RealClock().now())


def kpi_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    policy = policy_from_config(config.sla)
    try:
        report = load_kpi_report(config, args.month)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    renderer = RENDERERS[args.format]
    sys.stdout.write(renderer(report.rows, policy, args.month))
    return 0


# --- rendering ----------------------------------------------------------------------------


def _title(policy: SlaPolicy, month: str | None) -> str:
    period = month if month is not None else "all months"
    return f"SLA KPIs {period} (performance target {kpi_target_text(policy.performance_target)})"


def render_table(rows: Sequence[KpiRow], policy: SlaPolicy, month: str | None) -> str:
    header = (
        "month",
        "priority",
        "incidents",
        "pending",
        "response met",
        "update met",
        "SLA met",
        "repair met",
        "repair h mean",
        "repair h max",
        "target",
    )
    body = [
        (
            row.month,
            f"P{int(row.priority)} {row.priority.label}",
            str(row.incidents),
            str(row.pending),
            share_text(row.response_met_share),
            share_text(row.update_met_share),
            share_text(row.met_share),
            share_text(row.repair_met_share),
            hours_text(row.repair_hours),
            hours_text(row.repair_hours_max),
            "met" if row.meets_target else "MISSED",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [_title(policy, month)]
    for line in [header, *body]:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    if not rows:
        lines.append("(no incidents)")
    lines.append("pending: open incidents whose response or update is not due yet (not counted)")
    lines.append("repair hours are support hours from opening to resolution")
    return "\n".join(lines) + "\n"


def render_csv(rows: Sequence[KpiRow], policy: SlaPolicy, month: str | None) -> str:
    return kpi_csv(rows)


def render_json(rows: Sequence[KpiRow], policy: SlaPolicy, month: str | None) -> str:
    document = kpi_document(rows, policy.performance_target, month)
    return json.dumps(kpi_json(document), indent=2) + "\n"


_BARS = (
    ("response met", "response_met_share"),
    ("update met", "update_met_share"),
    ("SLA met", "met_share"),
    ("repair met", "repair_met_share"),
)
_LABEL_W = 110
_BAR_W = 300
_BAR_H = 18
_GAP = 6


def _svg_chart(row: KpiRow, target: float) -> str:
    """Horizontal bars of the shares of one row, with the performance target as a line."""
    height = len(_BARS) * (_BAR_H + _GAP) + _GAP
    width = _LABEL_W + _BAR_W + 60
    title = f"P{int(row.priority)} {row.priority.label} {row.month}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for index, (label, attribute) in enumerate(_BARS):
        share: float | None = getattr(row, attribute)
        y = _GAP + index * (_BAR_H + _GAP)
        text_y = y + _BAR_H - 5
        parts.append(f'<text x="0" y="{text_y}" font-size="12">{escape(label)}</text>')
        parts.append(
            f'<rect x="{_LABEL_W}" y="{y}" width="{_BAR_W}" height="{_BAR_H}" fill="#eee"/>'
        )
        if share is not None:
            colour = "#2e7d32" if share >= target else "#c62828"
            parts.append(
                f'<rect x="{_LABEL_W}" y="{y}" width="{share * _BAR_W:.1f}" '
                f'height="{_BAR_H}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{_LABEL_W + _BAR_W + 6}" y="{text_y}" font-size="12">'
            f"{escape(share_text(share))}</text>"
        )
    line_x = _LABEL_W + target * _BAR_W
    parts.append(
        f'<line x1="{line_x:.1f}" y1="0" x2="{line_x:.1f}" y2="{height}" stroke="#000" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _count(number: int, noun: str) -> str:
    """``1 incident``, ``2 incidents``, ``0 incidents``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def render_html(rows: Sequence[KpiRow], policy: SlaPolicy, month: str | None) -> str:
    title = _title(policy, month)
    target = policy.performance_target
    sections = []
    for row in rows:
        verdict = "meets the target" if row.meets_target else "misses the target"
        sections.append(
            "<section>"
            f"<h2>{escape(row.month)} P{int(row.priority)} {escape(row.priority.label)}</h2>"
            f"<p>{_count(row.incidents, 'incident')}, {row.resolved} resolved"
            f"{f', {row.pending} pending' if row.pending else ''}; "
            f"{escape(verdict)}; "
            f"repair {escape(hours_text(row.repair_hours))} h mean, "
            f"{escape(hours_text(row.repair_hours_max))} h max (support hours)</p>"
            f"{_svg_chart(row, target)}"
            "</section>"
        )
    if not rows:
        sections.append("<p>No incidents.</p>")
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}section{margin-bottom:1.5em}"
        "h2{font-size:1.1em;margin:0 0 .3em}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>\n"
        f"<p>Dashed line: performance target {kpi_target_text(target)}.</p>\n"
        f"{body}\n</body></html>\n"
    )


RENDERERS = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}
