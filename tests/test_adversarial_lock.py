"""One owner per file whatever the path (issue 24, item 1): a live file's other names are guarded.

Reproducer: start a run, make a symlink, a hard link and a ``..`` path to its file in
another folder, and run ``zaprig recover``, ``recover --salvage`` and a note after the run
on each. Before, the lock was looked up beside the name as given, so ``recover`` on a link
cleared the live file's flags and wrote its attributes under the writer: the session was
lost. Now every name meets the same lock, each command is refused with one clear line,
and the run ends ``complete``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from gui._notes import append_note
from rig.cli import main
from rig.core.errors import SessionFileError
from rig.core.lock import SessionLock, exclusive, identity_lock_path, live_owner

PROTOCOL = """
name = "short"
[[conditions]]
name = "flow"
seconds = 8
[[conditions.steps]]
duration_s = 4
stimulus = { kind = "flow", gain = 1.0, drift_mm_s = 10 }
"""


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_recover_salvage_and_note_through_any_name_of_a_live_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proto = tmp_path / "short.toml"
    proto.write_text(PROTOCOL)
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "run", str(proto), "--out", str(out), "--quiet",
         "--clock", "realtime"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait(lambda: any(out.glob("*.h5")), 30), "no session file appeared"
        live = next(out.glob("*.h5"))
        assert _wait(lambda: identity_lock_path(live) is not None and live_owner(live), 10)
        other = tmp_path / "elsewhere"
        other.mkdir()
        (other / "link.h5").symlink_to(live)
        os.link(live, other / "hard.h5")
        # the writer binds the lock keyed on the file's inode just after it creates the file:
        # a hard link meets the run's lock from then on (before, only the path's lock)
        assert _wait(lambda: live_owner(other / "hard.h5") is not None, 10)
        names = {
            "symlink": other / "link.h5",
            "hard link": other / "hard.h5",
            "'..' path": other / ".." / "runs" / live.name,
        }
        for how, name in names.items():
            assert live_owner(name) is not None, how
            capsys.readouterr()
            assert main(["recover", str(name)]) == 2, how
            err = capsys.readouterr().err
            assert "still being recorded" in err and "recovering needs a finished file" in err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert main(["recover", str(name), "--salvage", str(tmp_path / f"s-{how}.h5")]) == 2
            err = capsys.readouterr().err
            assert "still being recorded" in err and "salvaging" in err, err
            assert not (tmp_path / f"s-{how}.h5").exists()
            with pytest.raises(SessionFileError, match="a note after the run needs a finished"):
                append_note(name, "electrode came off")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "session complete" in stdout
    assert "Traceback" not in stderr
    with h5py.File(live, "r") as f:
        assert f.attrs["status"] == "complete"
        assert "recovered_at" not in f.attrs
    # once the run is over every name is free, and the identity lock is gone with it
    assert live_owner(names["hard link"]) is None
    assert not identity_lock_path(live).exists()  # type: ignore[union-attr]
    assert append_note(names["symlink"], "fish moved at the end") > 0


def test_two_commands_on_one_file_meet_through_a_hard_link(tmp_path: Path) -> None:
    """A recover in progress holds the file too: a second one through another name waits its turn."""
    f = tmp_path / "a.h5"
    with h5py.File(f, "w") as h:
        h.attrs["x"] = 1
    os.link(f, tmp_path / "b.h5")
    with (
        exclusive(f, "recovering"),
        pytest.raises(SessionFileError, match=r"holds this file \(recovering\)"),
    ):
        SessionLock(tmp_path / "b.h5", os.getpid(), doing="salvaging").acquire("salvaging")
    with exclusive(tmp_path / "b.h5", "salvaging"):
        pass
