"""The core install, as a new user gets it: a wheel in a fresh virtual environment, no extras.

The suite itself runs with every extra installed, so nothing else in it would notice a core
command that imports an optional package, or a file the program reads at run time that the
wheel leaves behind. Here the wheel is built from the checkout, installed with its
``[project] dependencies`` only into a new virtual environment (no system site-packages),
and run from a folder outside the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
import venv
from pathlib import Path

import h5py
import pytest

from rig.core.config import CONFIG_DIR, DEFAULT_CONFIG
from rig.core.optional import EXTRA_OF, require

REPO = Path(__file__).resolve().parents[1]
SOURCES = (
    "pyproject.toml",
    "README.md",
    "rig",
    "acquisition",
    "stimuli",
    "gui",
    "hardware_configs",
)
#: Import names whose distribution is named differently in pyproject.toml.
DISTRIBUTION = {"pymmcore_plus": "pymmcore-plus"}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel built from this checkout, core only."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy, so the build's own folders never land in the checkout
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    dist = work / "dist"
    t0 = time.monotonic()
    _ok(_run([str(py), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], work))
    t1 = time.monotonic()
    (wheel,) = dist.glob("zaprig-*.whl")
    _ok(_run([str(py), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], work))
    print(f"wheel built in {t1 - t0:.1f} s, installed in {time.monotonic() - t1:.1f} s")
    return env_dir


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder outside the checkout: no hardware_configs/ beside it."""
    return tmp_path_factory.mktemp("elsewhere")


def test_the_core_environment_has_no_extra(core_venv: Path, elsewhere: Path):
    py = str(core_venv / "bin" / "python")
    code = (
        "import importlib.util, rig; "
        f"print(rig.__file__); print([m for m in {sorted(EXTRA_OF)!r} "
        "if importlib.util.find_spec(m)])"
    )
    where, found = _ok(_run([py, "-c", code], elsewhere)).splitlines()
    assert Path(where).is_relative_to(core_venv), "the wheel's rig, not the checkout's, runs"
    assert found == "[]"


def test_the_wheel_ships_every_rig_config(core_venv: Path, elsewhere: Path):
    code = "from rig.core.config import CONFIG_DIR; print(CONFIG_DIR)"
    shipped = Path(_ok(_run([str(core_venv / "bin" / "python"), "-c", code], elsewhere)).strip())
    assert shipped.is_relative_to(core_venv)
    ours = sorted(p.name for p in (REPO / "hardware_configs").glob("*.toml"))
    assert ours and sorted(p.name for p in shipped.glob("*.toml")) == ours
    for name in ours:
        assert (shipped / name).read_bytes() == (REPO / "hardware_configs" / name).read_bytes()


@pytest.fixture(scope="module")
def session(core_venv: Path, elsewhere: Path) -> Path:
    """A short virtual-time session of the built-in protocol on the shipped simulated rig."""
    zaprig = str(core_venv / "bin" / "zaprig")
    args = ["run", "--clock", "virtual", "--time-scale", "0.01", "--out", "s", "--quiet"]
    _ok(_run([zaprig, *args], elsewhere))
    (path,) = (elsewhere / "s").glob("*.h5")
    return path


def test_plan_and_a_virtual_session_run_on_the_core_install(
    core_venv: Path, elsewhere: Path, session: Path
):
    zaprig = str(core_venv / "bin" / "zaprig")
    plan = _ok(_run([zaprig, "plan"], elsewhere))
    assert "7879 volumes" in plan  # the built-in protocol on the shipped simulated rig
    with h5py.File(session, "r") as f:
        assert f.attrs["status"] == "complete"
        assert f.attrs["volumes_expected"] == 80
    summary = _ok(_run([zaprig, "inspect", str(session)], elsewhere))
    assert summary.splitlines()[1].split() == ["status", "complete"]
    assert "bouts" in _ok(_run([zaprig, "swims", str(session)], elsewhere))


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["export", "SESSION", "--format", "zapbench", "out"], "export"),
        (["report", "SESSION"], "export"),
        (["plan", "--png", "plan.png"], "export"),
        (["gui"], "gui"),
        (["run", "--config", "psychopy.toml", "--clock", "virtual", "--out", "p"], "psychopy"),
        (["check", "--config", "psychopy.toml"], "psychopy"),
        (["calibrate", "display", "--dry-run", "--out", "p"], "psychopy"),
    ],
)
def test_an_optional_part_without_its_extra_is_one_line(
    core_venv: Path, elsewhere: Path, session: Path, args: list[str], extra: str
):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert 'backend = "headless"' in text
    (elsewhere / "psychopy.toml").write_text(
        text.replace('backend = "headless"', 'backend = "psychopy"'), encoding="utf-8"
    )
    args = [str(session) if a == "SESSION" else a for a in args]
    proc = _run([str(core_venv / "bin" / "zaprig"), *args], elsewhere)
    hint = f"pip install 'zaprig[{extra}]'"
    assert "Traceback" not in proc.stderr + proc.stdout
    if args[0] == "check":  # preflight lists every problem, the missing extra among them
        assert proc.returncode == 1 and hint in proc.stdout, proc.stdout
        return
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("zaprig: error: ") and line.endswith(hint)
    assert not list(elsewhere.glob("p/*.h5")), "no session file for a part that cannot run"


def test_every_optional_package_is_in_the_extra_the_message_names():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for package, extra in EXTRA_OF.items():
        if package == "hdmf":  # installed by pynwb, not named itself
            assert extra == EXTRA_OF["pynwb"]
            continue
        names = [re.split(r"[<>=\[ ]", r)[0] for r in extras[extra]]
        assert DISTRIBUTION.get(package, package) in names, (package, extra)


def test_require_loads_an_optional_package_and_refuses_a_core_one():
    assert require("tensorstore", "a test").__name__ == "tensorstore"  # the suite has every extra
    with pytest.raises(KeyError, match="not an optional package"):
        require("numpy", "a test")  # a programming mistake, said so


def test_the_checkout_reads_its_configs_as_package_data():
    assert CONFIG_DIR == REPO / "hardware_configs"
    assert DEFAULT_CONFIG.is_file()
