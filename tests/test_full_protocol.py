"""The full-length built-in protocol in virtual time: 7879 volumes at the dataset's offsets (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rig.core.config import load_config
from rig.engine import Engine, RunState
from stimuli.builtin import dataset_protocol


@pytest.mark.slow
def test_full_protocol_matches_the_dataset(tmp_path: Path, check_session) -> None:
    t0 = time.perf_counter()
    engine = Engine(load_config(), dataset_protocol(), tmp_path, clock="virtual", seed=1)
    assert engine.run() is RunState.COMPLETE
    elapsed = time.perf_counter() - t0
    r = check_session(engine.path, "--full")
    assert r.returncode == 0, r.stdout
    info = json.loads(r.stdout.splitlines()[-2])
    assert info["volumes"] == 7879
    assert info["condition_start_volumes"] == [0, 649, 2422, 3078, 3735, 5047, 5638, 6623, 7279]
    print(f"full protocol in virtual time: {elapsed:.0f} s")
