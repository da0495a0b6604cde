"""Salvage keeps everything readable (issue 24, item 2): a session cut at 20 places.

Reproducer: cut a finished session file short (``truncate``) anywhere and run
``zaprig recover --salvage``. Before, every frame, bout and event was reported lost,
the volume samples were rebuilt "from the protocol", the ground truth was dropped,
the salvaged ``/events`` had 1 row in four columns and 0 in two (``inspect`` and
``report`` then failed with a traceback), and where ``inspect`` recommended salvage,
salvage could answer "not a zaprig session file".

Here every cut's salvage must pass ``inspect``, ``report`` and the contract checker,
and every table that h5py reads back identical to the original from a zero-padded copy
(padding to the end of data the superblock records) must be in the salvaged file whole.
Where salvage cannot help, ``inspect`` must not recommend it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - the session's compressed volumes
import numpy as np
import pytest

from rig.cli import main
from rig.report import load_report_data
from rig.report._html import render_html
from rig.session._damage import check_file

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_session.py"
N_CUTS = 20
#: Tables: groups of equal columns, and the datasets kept whole where readable.
TABLES = ("events", "behavior/bouts", "stimulus/frames", "volumes/dropped")
WHOLE = ("ground_truth/positions_zyx", "ground_truth/tuning", "ground_truth/traces")


def _checker() -> Any:
    if not CHECKER.exists():
        pytest.skip(f"contract checker not found at {CHECKER}")
    spec = importlib.util.spec_from_file_location("check_session", CHECKER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _read(f: h5py.File, name: str) -> dict[str, np.ndarray] | None:
    """A table's columns (or one dataset) as read, or None where h5py fails."""
    try:
        obj = f[name]
        if isinstance(obj, h5py.Dataset):
            return {"": obj[...]}
        return {k: obj[k][...] for k in obj}
    except (OSError, RuntimeError, KeyError, ValueError):
        return None


def _same(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray] | None) -> bool:
    if a is None or b is None or a.keys() != b.keys():
        return False
    return all(
        a[k].shape == b[k].shape
        and (np.array_equal(a[k], b[k], equal_nan=True) if a[k].dtype.kind == "f"
             else bool(np.all(a[k] == b[k])))
        for k in a
    )  # fmt: skip


def _padded_reads(cut: Path, tmp: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """What h5py reads from a copy of ``cut`` zero-padded to the recorded end of data."""
    pad = tmp / "padded.h5"
    shutil.copy(cut, pad)
    eof = check_file(cut).stored_eof
    assert eof is not None
    with open(pad, "r+b") as fh:
        fh.truncate(eof)
    try:
        with h5py.File(pad, "r", locking=False) as f:
            return {n: _read(f, n) for n in names}
    except OSError:
        return {}
    finally:
        pad.unlink()


def test_salvage_at_20_cuts_keeps_every_readable_table_and_passes_every_reader(
    short_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checker = _checker()
    data = short_session.read_bytes()
    names = (*TABLES, *WHOLE, "protocol/conditions")
    with h5py.File(short_session, "r") as f:
        original = {n: _read(f, n) for n in names}
        stream = f["stimuli_and_ephys"][...]
        n_vol = f["volumes/raw"].shape[0]
        some_volumes = {t: f["volumes/raw"][t] for t in (0, n_vol // 2, n_vol - 1)}
    table = []
    salvaged_any = 0
    for i in range(N_CUTS):
        at = len(data) * (i + 1) // (N_CUTS + 1)  # 20 offsets, spread over the length
        cut = tmp_path / f"cut{i}.h5"
        cut.write_bytes(data[:at])
        capsys.readouterr()
        assert main(["inspect", str(cut)]) == 2
        advice = capsys.readouterr().err
        assert "Traceback" not in advice
        out = tmp_path / f"salvaged{i}.h5"
        code = main(["recover", "--salvage", str(out), str(cut)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if "--salvage" not in advice:  # inspect said salvage cannot help: it must not
            assert "salvage cannot help" in advice
            assert code == 2 and "salvage cannot help" in err and not out.exists()
            table.append((at, "cannot help", None))
            continue
        assert code == 0, f"cut at {at}: inspect recommended salvage, which failed: {err}"
        salvaged_any += 1
        padded = _padded_reads(cut, tmp_path, names)
        with h5py.File(out, "r") as g:
            kept = {n: _read(g, n) for n in names}
            rows = int(g["stimuli_and_ephys"].shape[0])
            vols = int(g["volumes/raw"].shape[0])
            assert np.array_equal(g["stimuli_and_ephys"][...], stream[:rows])
            for t, v in some_volumes.items():
                if t < vols:
                    assert np.array_equal(g["volumes/raw"][t], v)
            n_cond = len(kept["protocol/conditions"]["name"])  # type: ignore[index]
        assert kept["events"] is not None
        assert "salvaged from" in str(kept["events"]["message"][-1])  # its own note, then ...
        kept["events"] = {k: v[:-1] for k, v in kept["events"].items()}  # ... the original's
        for n in (*TABLES, *WHOLE):
            if _same(padded.get(n), original[n]):
                assert _same(kept[n], original[n]), f"cut at {at}: {n} readable but not kept whole"
        if _same(padded.get("protocol/conditions"), original["protocol/conditions"]):
            starts = original["protocol/conditions"]["start_sample"]  # type: ignore[index]
            assert n_cond == int(np.count_nonzero(starts < rows))
        problems, _ = checker.check(str(out), False)
        assert problems == [], f"cut at {at}: {problems}"
        assert main(["inspect", str(out)]) == 0
        # the report's reading and its numbers for every cut; its figures (matplotlib, slow)
        # for the first, the middle and the last salvageable cuts
        render_html(load_report_data(out))
        if i in (1, N_CUTS // 2, N_CUTS - 1):
            assert main(["report", str(out), "--out", str(tmp_path / f"report{i}")]) == 0
        assert "Traceback" not in capsys.readouterr().err
        table.append((at, f"{rows}/{len(stream)} samples", f"{vols}/{n_vol} volumes"))
    with capsys.disabled():
        print("\ncut at byte: kept", *table, sep="\n  ")
    assert salvaged_any >= N_CUTS // 2
