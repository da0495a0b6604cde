"""Shared fixtures: short simulated sessions, the contract checker, the --runslow switch."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("QT_API", "pyqt6")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PyQt6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYMM_LOG_LEVEL", "CRITICAL")

REPO = Path(__file__).resolve().parents[1]
CHECKER = REPO.parent / "shared" / "tools" / "check_session.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run slow tests and benchmarks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def check_session() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the project's contract checker (shared/tools/check_session.py) on a file."""
    if not CHECKER.exists():
        pytest.skip(f"contract checker not found at {CHECKER}")

    def run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(CHECKER), str(path), "--json", *extra],
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


@pytest.fixture(scope="session")
def short_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in protocol at 1% length, virtual time, simulated rig (about 80 volumes)."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    out = tmp_path_factory.mktemp("sessions")
    engine = Engine(
        load_config(), dataset_protocol().scaled(0.01), out, clock="virtual", seed=3,
        fish={"fish_id": "f1", "age_dpf": 6},
    )  # fmt: skip
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path
