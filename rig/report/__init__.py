"""A quality-control report for a session: one HTML page with PNG figures.

``zaprig report SESSION [--out DIR]`` lands in :func:`cli_report`. The page
shows the numbers an experimenter checks after a run (volumes, drops, bouts,
warnings), the condition timeline, swims per condition, the closed-loop
velocity and gain, volume timing jitter and stimulus frame intervals.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rig.core.errors import SessionFileError
from rig.core.vocabulary import format_drops
from rig.report._data import ReportData, load_report_data
from rig.report._html import render_html
from rig.report._plots import PLOTS, draw_all

__all__ = ["PLOTS", "Report", "ReportData", "cli_report", "load_report_data", "write_report"]


@dataclass(frozen=True, slots=True)
class Report:
    html: Path
    images: list[Path]
    data: ReportData


def default_folder(session: Path) -> Path:
    """Beside the session file: ``<name>_report/``."""
    return session.with_name(f"{session.stem}_report")


#: Figures that other commands write into a session's report folder, shown when present.
EXTRA_FIGURES = (
    ("forecast.png", "Forecasting baselines (zaprig forecast): MAE per predicted step"),
)


def write_report(session: str | Path, out: str | Path | None = None) -> Report:
    """Write ``index.html`` and its PNGs into ``out`` (made if needed; files in it replaced)."""
    session = Path(session)
    folder = Path(out) if out is not None else default_folder(session)
    data = load_report_data(session)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SessionFileError(
            f"{folder}: cannot create the report folder ({e}); pass another --out folder"
        ) from None
    images = draw_all(data, folder)
    html = folder / "index.html"
    # figures other commands left in the folder (zaprig forecast)
    extra = tuple((n, t) for n, t in EXTRA_FIGURES if (folder / n).is_file())
    html.write_text(render_html(data, extra), encoding="utf-8")
    return Report(html=html, images=images, data=data)


def cli_report(args: argparse.Namespace) -> int:
    from rig.core.errors import check_writable
    from rig.core.lock import refuse_if_live

    refuse_if_live(args.session, "a report")
    folder = Path(args.out) if args.out is not None else default_folder(Path(args.session))
    check_writable(folder, "--out", folder=True)
    r = write_report(args.session, args.out)
    s = r.data.summary
    print(f"zaprig: report written to {r.html}")
    print(
        f"  {s.volumes}/{s.volumes_expected} volumes; dropped "
        f"{format_drops(s.planes_dropped, s.dropped_volumes, s.frames_dropped)}; {s.bouts} bouts; "
        f"{len(r.data.late_frame_s)} late frames; {len(s.incidents)} faults"
    )
    return 0
