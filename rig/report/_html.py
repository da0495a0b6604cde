"""The QC report's HTML page: numbers first, then the figures, then warnings and events.

One self-contained page (inline CSS, relative PNG links) so the report folder
can be zipped, mailed or opened from a network share as it is.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from rig.core.vocabulary import format_drops, plain_fault
from rig.report._data import LATE_FACTOR, ReportData
from rig.report._plots import PLOTS, condition_colour
from rig.session.light import LightTiming

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1050px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00020; font-weight: bold; } .ok { color: #2e7d32; }
img { max-width: 100%; border: 1px solid #ddd; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; }
"""


def _row(label: str, value: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<tr><th>{escape(label)}</th><td{c}>{value}</td></tr>"


def _light_rows(t: LightTiming | None) -> list[str]:
    """Display timing measured by the photodiode (rig/session/light.py), or "not measured"."""
    labels = (
        "display latency (flip -> light)",
        "frames seen in the light",
        "swim onset -> light (closed loop)",
    )
    if t is None or not t.measured:
        why = escape(t.why_not) if t is not None else "older file"
        return [_row(k, f'<span class="light">not measured</span> ({why})') for k in labels]

    def pct(x: np.ndarray | None, what: str) -> str:
        st = t.stats(x)
        if st is None:
            return f"not measured ({what})"
        return f"p50 {st[0]:.1f} ms, p99 {st[1]:.1f} ms, max {st[2]:.1f} ms (n = {len(x)})"  # type: ignore[arg-type]

    assert t.dropped is not None
    bad = len(t.dropped) or t.repeated
    return [
        _row(labels[0], pct(t.latency_ms, "no frame seen")),
        _row(
            labels[1],
            f"{t.frames_seen} seen; {len(t.dropped)} dropped (never seen), "
            f"{t.repeated} repeated (shown for more than one refresh)",
            "bad" if bad else "ok",
        ),
        _row(labels[2], pct(t.onset_to_light_ms, "no closed-loop swim with a frame seen")),
    ]


def _summary_table(d: ReportData) -> str:
    s = d.summary
    z, y, x = s.volume_shape_zyx
    vol_cls = "ok" if s.volumes == s.volumes_expected and s.dropped_volumes == 0 else "bad"
    j = np.abs(d.volume_jitter_ms)
    one = 1000.0 / d.fs
    rows = [
        _row("status", escape(s.status), "ok" if s.status == "complete" else "bad"),
        _row("protocol", escape(s.protocol_name)),
        _row("rig", "simulated" if s.simulated else "real"),
        _row("fish", escape(json.dumps(s.fish)) if s.fish else "-"),
        _row("started / ended", f"{escape(s.started_at)} / {escape(s.ended_at or '-')}"),
        _row("duration", f"{s.duration_s:.1f} s ({s.samples} samples at {s.sample_rate_hz:g} Hz)"),
        _row(
            "volumes",
            f'<span id="volumes">{s.volumes}</span> of {s.volumes_expected} expected '
            f"({z} planes of {y} x {x})",
            vol_cls,
        ),
        _row("dropped volumes", str(s.dropped_volumes), "bad" if s.dropped_volumes else "ok"),
        _row(
            "volume timing",
            f"max |interval - period| {j.max(initial=0.0):.3f} ms; "
            f"{int((j > one + 1e-9).sum())} intervals off by more than one DAQ sample",
        ),
        _row("stimulus frames", str(s.frames)),
        _row(
            "late / dropped frames",
            f"{len(d.late_frame_s)} late (> {LATE_FACTOR:g} x {d.nominal_frame_ms:.1f} ms), "
            f"{s.frames_dropped} dropped by the renderer",
            "bad" if len(d.late_frame_s) or s.frames_dropped else "ok",
        ),
        *_light_rows(s.light),
        _row("camera planes dropped", str(d.frames_missing), "bad" if d.frames_missing else "ok"),
        _row(
            "dropped (as the app and inspect say)",
            format_drops(s.planes_dropped, s.dropped_volumes, s.frames_dropped),
            "bad" if s.planes_dropped or s.dropped_volumes or s.frames_dropped else "ok",
        ),
        _row("swim bouts", f'<span id="bouts">{s.bouts}</span>'),
        _row(
            "faults",
            f"{len(s.incidents)}"
            + "".join(f"; {escape(plain_fault(i.message))}" for i in s.incidents[:3]),
            "bad" if s.incidents else "ok",
        ),
        _row("warnings", str(sum(1 for e in s.warnings if e[1] == "warning"))),
    ]
    return "<table>" + "".join(rows) + "</table>"


def _conditions_table(d: ReportData) -> str:
    head = (
        "<tr><th>#</th><th>condition</th><th>start volume</th><th>stop volume</th>"
        "<th>duration (s)</th><th>bouts</th><th>bouts/min</th><th>median power</th></tr>"
    )
    rows = []
    for c, name in enumerate(d.condition_names):
        k = d.bouts_in(c)
        minutes = d.condition_minutes(c)
        row = d.summary.conditions[c] if c < len(d.summary.conditions) else {}
        power = f"{np.median(d.bout_power[k]):.3g}" if len(k) else "-"
        rate = f"{len(k) / minutes:.1f}" if minutes > 0 else "-"
        rows.append(
            f'<tr><td class="n">{c}</td><td><span class="swatch" '
            f'style="background:{condition_colour(c)}"></span>{escape(name)}</td>'
            f'<td class="n">{row.get("start_volume", "-")}</td>'
            f'<td class="n">{row.get("stop_volume", "-")}</td>'
            f'<td class="n">{minutes * 60:.1f}</td><td class="n">{len(k)}</td>'
            f'<td class="n">{rate}</td><td class="n">{power}</td></tr>'
        )
    if not rows:
        return "<p>No conditions were recorded.</p>"
    return "<table>" + head + "".join(rows) + "</table>"


def _events_table(events: list[tuple[int, str, str]], fs: float) -> str:
    if not events:
        return "<p>None.</p>"
    rows = "".join(
        f'<tr><td class="n">{sample / fs:.3f}</td><td class="n">{sample}</td>'
        f"<td>{escape(kind)}</td><td>{escape(msg)}</td></tr>"
        for sample, kind, msg in events
    )
    return (
        "<table><tr><th>time (s)</th><th>sample</th><th>kind</th><th>message</th></tr>"
        + rows
        + "</table>"
    )


def _volume_time(d: ReportData, v: int) -> str:
    return f"{d.volume_start_s[v]:.3f}" if 0 <= v < len(d.volume_start_s) else "-"


def render_html(d: ReportData, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The page; ``extra``: (file name, title) of figures other commands put in the folder."""
    s = d.summary
    title = f"QC report: {Path(s.path).name}"
    figures = "".join(
        f'<h2>{escape(t)}</h2><img src="{escape(name)}" alt="{escape(t)}">'
        for name, t in [(n, t) for n, (t, _make) in PLOTS.items()] + list(extra)
    )
    dropped = ""
    if len(d.dropped_volumes):
        rows = "".join(
            f'<tr><td class="n">{v}</td><td class="n">{_volume_time(d, v)}</td>'
            f"<td>{escape(r)}</td></tr>"
            for v, r in zip(d.dropped_volumes.tolist(), d.dropped_volume_reasons, strict=True)
        )
        dropped = (
            f"<h2>Dropped volumes ({len(d.dropped_volumes)})</h2><table><tr><th>volume</th>"
            f"<th>time (s)</th><th>reason</th></tr>{rows}</table>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p>{escape(s.path)}</p>
<h2>Summary</h2>
{_summary_table(d)}
<h2>Conditions</h2>
{_conditions_table(d)}
<h2>Warnings and faults ({len(s.warnings)})</h2>
{_events_table(s.warnings, d.fs)}
{dropped}
{figures}
<h2>Event log ({len(s.events)})</h2>
<details><summary>show all events</summary>{_events_table(s.events, d.fs)}</details>
</body></html>
"""
