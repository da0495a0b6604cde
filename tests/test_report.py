"""The QC report of a short simulated session with a camera fault: page, figures, numbers.

Problems a report must show (a dropped volume, a late stimulus frame) are put
into copies of the session file with h5py, where the exact numbers are known.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest

from rig.cli import main
from rig.report import PLOTS, load_report_data, write_report
from rig.session import read_table
from stimuli.builtin import CONDITION_NAMES
from tests._session_copies import stopped_at_once

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in protocol at 0.3% length (24 volumes); the camera misses one frame at 9 s."""
    from rig.core.config import FaultConfig, load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    rig = load_config().with_simulation(faults=FaultConfig(camera_drops_frame_at_s=9.0))
    out = tmp_path_factory.mktemp("report_sessions")
    engine = Engine(
        rig, dataset_protocol().scaled(0.003), out, clock="virtual", seed=2, fish={"fish_id": "r1"}
    )
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.src += [v for k, v in attrs if k == "src" and v]


def _span(html: str, ident: str) -> str:
    m = re.search(rf'<span id="{ident}">([^<]*)</span>', html)
    assert m, f"no {ident} in the report"
    return m.group(1)


@pytest.fixture(scope="module")
def report(session: Path, tmp_path_factory: pytest.TempPathFactory):
    return write_report(session, tmp_path_factory.mktemp("report"))


def test_html_references_every_figure_and_they_are_valid_pngs(report) -> None:
    html = report.html.read_text(encoding="utf-8")
    p = _Images()
    p.feed(html)
    assert p.src == list(PLOTS)
    for name in p.src:
        png = report.html.parent / name
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        img = matplotlib.image.imread(png)  # decodes the whole image
        assert img.shape[0] > 100 and img.shape[1] > 300
        assert img[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_key_numbers_appear_in_the_page(session: Path, report) -> None:
    with h5py.File(session, "r") as f:
        bouts = f["behavior/bouts/start_sample"].shape[0]
        volumes = f["volumes/raw"].shape[0]
        expected = int(f.attrs["volumes_expected"])
    html = report.html.read_text(encoding="utf-8")
    assert bouts > 0 and volumes == expected > 20
    assert _span(html, "bouts") == str(bouts)
    assert _span(html, "volumes") == str(volumes)
    for name in CONDITION_NAMES:
        assert f"{name}</td>" in html


def test_camera_fault_is_listed_as_a_warning(report) -> None:
    html = report.html.read_text(encoding="utf-8")
    m = re.search(r"<h2>Warnings and faults \((\d+)\)</h2>", html)
    assert m and int(m.group(1)) >= 1
    assert re.search(r"missing frame: volume \d+ plane \d+", html)
    assert report.data.frames_missing == 1


def test_report_numbers_match_the_session(session: Path, report) -> None:
    d = report.data
    with h5py.File(session, "r") as f:
        stream = f["stimuli_and_ephys"][...]
        start = f["volumes/start_sample"][...]
        conds = read_table(f["protocol/conditions"])
    # binning keeps the extremes of the velocity and gain rows
    assert d.velocity.lo.min() == stream[:, 8].min() and d.velocity.hi.max() == stream[:, 8].max()
    assert d.gain.hi.max() == stream[:, 9].max()
    assert abs(d.velocity.t[-1] - len(stream) / 6000.0) < 0.1
    np.testing.assert_allclose(d.volume_jitter_ms, (np.diff(start) - 0.9141 * 6000) / 6.0)
    assert np.abs(d.volume_jitter_ms).max() <= 1000.0 / 6000.0  # within one DAQ sample
    # every bout is attributed to the condition it started in
    for c, (a, b) in enumerate(zip(conds["start_sample"], conds["stop_sample"], strict=True)):
        k = d.bouts_in(c)
        assert np.all((d.bout_start_s[k] * 6000 >= a) & (d.bout_start_s[k] * 6000 < b))
    assert len(d.late_frame_s) == 0


def test_dropped_volume_and_late_frame_are_reported(session: Path, tmp_path: Path) -> None:
    copy = tmp_path / "drops.h5"
    shutil.copy(session, copy)
    with h5py.File(copy, "r+") as f:
        g = f["volumes/dropped"]
        for name, value in (("volume", 7), ("reason", "writer buffer full")):
            g[name].resize((1,))
            g[name][0] = value
        flips = f["stimulus/frames/flip_sample"]
        late_at = int(flips[300]) + 60  # 160 samples = 26.7 ms after the previous flip
        flips[300] = late_at
    r = write_report(copy, tmp_path / "rep")
    html = r.html.read_text(encoding="utf-8")
    np.testing.assert_allclose(r.data.late_frame_s, [late_at / 6000.0])
    assert r.data.dropped_volumes.tolist() == [7]
    assert '<th>dropped volumes</th><td class="bad">1</td>' in html
    assert re.search(
        r'<td class="n">7</td><td class="n">[\d.]+</td><td>writer buffer full</td>', html
    )
    assert "1 late" in html


def test_session_without_bouts_still_reports(session: Path, tmp_path: Path) -> None:
    copy = tmp_path / "quiet.h5"
    shutil.copy(session, copy)
    with h5py.File(copy, "r+") as f:
        for d in f["behavior/bouts"].values():
            d.resize((0,))
    r = write_report(copy, tmp_path / "rep")
    assert _span(r.html.read_text(encoding="utf-8"), "bouts") == "0"
    assert all(p.stat().st_size > 0 for p in r.images)
    assert load_report_data(copy).bout_power.size == 0


def test_session_stopped_before_it_started_still_reports(session: Path, tmp_path: Path) -> None:
    copy = stopped_at_once(session, tmp_path / "aborted.h5")
    r = write_report(copy, tmp_path / "rep")
    html = r.html.read_text(encoding="utf-8")
    assert '<th>status</th><td class="bad">aborted</td>' in html
    assert _span(html, "volumes") == "0" and _span(html, "bouts") == "0"
    assert "No conditions were recorded." in html
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in r.images)


def test_cli_report_beside_the_session(
    session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "s.h5"
    shutil.copy(session, copy)
    assert main(["report", str(copy)]) == 0
    assert (tmp_path / "s_report" / "index.html").exists()
    assert "report written to" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.h5")]) == 2
    assert "no such session file" in capsys.readouterr().err
