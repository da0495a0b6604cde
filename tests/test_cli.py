"""The command line as an experimenter uses it: exit codes and readable output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rig.cli import main


def zaprig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, timeout=300
    )


def test_plan_prints_the_nine_conditions_with_the_dataset_lengths(capsys) -> None:
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    for name, start, n in [("gain", 0, 649), ("dots", 649, 1773), ("dark", 7279, 600)]:
        assert any(
            line.split()[1:4] == [name, str(start), str(n)]
            for line in out.splitlines()
            if line.strip()
        ), name
    assert "7879 volumes" in out


def test_plan_saves_a_png(tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    assert main(["plan", "--time-scale", "0.01", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_protocol_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[[conditions]]\nname = "a"\nseconds = 5\n'
                 '[[conditions.steps]]\nduration_s = 5\nstimulus = { kind = "flsh" }\n')  # fmt: skip
    r = zaprig("plan", str(p))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "bad.toml" in r.stderr and "flsh" in r.stderr


def test_run_then_inspect(tmp_path: Path) -> None:
    r = zaprig("run", "--time-scale", "0.003", "--clock", "virtual", "--out", str(tmp_path),
               "--quiet", "--fish-id", "fish7")  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = list(tmp_path.glob("*.h5"))
    assert len(files) == 1 and "fish7" in files[0].name
    r = zaprig("inspect", str(files[0]))
    assert r.returncode == 0, r.stderr
    assert "status    complete" in r.stdout
    assert "open loop" in r.stdout and "volumes" in r.stdout


def test_inspect_of_a_missing_file(tmp_path: Path) -> None:
    r = zaprig("inspect", str(tmp_path / "none.h5"))
    assert r.returncode == 2 and "no such session file" in r.stderr


def test_check_passes_on_the_simulated_rig(tmp_path: Path) -> None:
    r = zaprig("check", "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and "0 failed" in r.stdout


def test_check_fails_clearly_on_the_example_real_rig(tmp_path: Path) -> None:
    cfg = Path(__file__).resolve().parents[1] / "hardware_configs" / "example-lightsheet.toml"
    r = zaprig("check", "--config", str(cfg), "--out", str(tmp_path))
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "FAIL" in lines["DAQ"] and "NI-DAQmx" in lines["DAQ"]
    assert "FAIL" in lines["microscope"] and "mm_config" in lines["microscope"]
    assert "FAIL" in lines["laser"] and "laser.port" in lines["laser"]


def test_a_ring_too_big_for_shared_memory_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    """Touching a tmpfs past its size is a SIGBUS; the rig must say so first, with the fix."""
    src = Path(__file__).resolve().parents[1] / "hardware_configs" / "simulated-fullsize.toml"
    text = src.read_text().replace("volume_slots = 12", "volume_slots = 256")  # 100 GB
    assert "volume_slots = 256" in text
    cfg = tmp_path / "rig.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    r = zaprig("run", "--config", str(cfg), "--time-scale", "0.003", "--clock", "virtual",
               "--out", str(out), "--quiet")  # fmt: skip
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "writer.volume_slots = 256" in r.stderr and "/dev/shm" in r.stderr
    assert not list(out.glob("*.h5")) if out.exists() else True
    r = zaprig("check", "--config", str(cfg), "--out", str(out))
    assert r.returncode != 0
    assert "ring memory  FAIL" in r.stdout + r.stderr
