"""The one frame -> volume assembler, through the real writer into a real file.

Every camera (simulated, replayed, Micro-Manager) hands its numbered frames to
``VolumeAssembler``; here frames arrive missing, extra, late, twice and out of
order, and the saved file says what a user would find: each plane where it
belongs, missing planes black and named, nothing shifted.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from acquisition.microscope._assembler import VolumeAssembler
from acquisition.microscope._base import MicroscopeEvent
from acquisition.writer import WriterClient
from rig.core.layout import FORMAT

SHAPE = (4, 6, 8)
Z = SHAPE[0]
N_VOLUMES = 5


def frame(i: int) -> np.ndarray:
    """Frame i carries its own number + 1 (0 would read as 'never written')."""
    return np.full(SHAPE[1:], i + 1, dtype=np.uint16)


@pytest.fixture
def rig(tmp_path: Path):
    w = WriterClient(
        tmp_path / "s.h5",
        {
            "attrs": {"format": FORMAT, "status": "recording"},
            "shape_zyx": SHAPE,
            "voxel_size_um": (4.0, 1.0, 1.0),
            "volume_period_s": 0.5,
            "sample_rate_hz": 6000.0,
            "compression": "none",
        },
        n_slots=3,
        wait_for_buffers=True,
    )
    w.start()
    for t in range(N_VOLUMES):
        w.set_volume_meta(t, 600 + 3000 * t, 600 + 3000 * t + 700 * np.arange(Z), 540 + 3000 * t)
    events: list[MicroscopeEvent] = []
    asm = VolumeAssembler(SHAPE, N_VOLUMES, w, events.append)
    yield w, asm, events, tmp_path / "s.h5"
    if not w.closed:
        w.close({"status": "complete"})


def saved(w: WriterClient, path: Path) -> np.ndarray:
    w.close({"status": "complete"})
    with h5py.File(path, "r") as f:
        return f["volumes/raw"][...]


def messages(events: list[MicroscopeEvent]) -> list[str]:
    return [e.message for e in events]


def test_frames_in_order_make_whole_volumes(rig) -> None:
    w, asm, events, path = rig
    for i in range(N_VOLUMES * Z):
        assert asm.put(i, frame(i))
    asm.close(N_VOLUMES * Z)
    vols = saved(w, path)
    assert vols.shape == (N_VOLUMES, *SHAPE)
    assert [int(v[p, 0, 0]) for v in vols for p in range(Z)] == list(range(1, N_VOLUMES * Z + 1))
    assert asm.committed == N_VOLUMES and asm.missing == 0 and events == []


def test_out_of_order_frames_within_a_volume_land_in_their_planes(rig) -> None:
    w, asm, events, path = rig
    order = [2, 0, 3, 1, 5, 4, 7, 6]  # volumes 0 and 1, shuffled inside each
    for i in order:
        asm.put(i, frame(i))
    asm.close(2 * Z)
    vols = saved(w, path)
    np.testing.assert_array_equal(vols[0][:, 0, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(vols[1][:, 0, 0], [5, 6, 7, 8])
    assert asm.missing == 0 and events == []


def test_a_missing_frame_is_black_named_and_shifts_nothing(rig) -> None:
    w, asm, events, path = rig
    for i in range(3 * Z):
        if i != Z + 2:  # volume 1, plane 2 never comes
            asm.put(i, frame(i))
    asm.close(3 * Z)
    vols = saved(w, path)
    assert not vols[1][2].any()
    np.testing.assert_array_equal(vols[1][[0, 1, 3], 0, 0], [Z + 1, Z + 2, Z + 4])
    np.testing.assert_array_equal(vols[2][:, 0, 0], np.arange(2 * Z, 3 * Z) + 1)
    (msg,) = [m for m in messages(events) if "missing frame" in m]
    assert "volume 1 plane 2" in msg
    assert asm.missing == 1


def test_a_late_frame_is_discarded_and_its_volume_is_not_rewritten(rig) -> None:
    w, asm, events, path = rig
    for i in range(Z - 1):
        asm.put(i, frame(i))  # volume 0 without its last plane
    asm.put(Z, frame(Z))  # volume 1 starts: volume 0 is saved with plane 3 missing
    assert not asm.put(Z - 1, frame(Z - 1))  # ... which then arrives, too late
    for i in range(Z + 1, 2 * Z):
        asm.put(i, frame(i))
    asm.close(2 * Z)
    vols = saved(w, path)
    assert not vols[0][Z - 1].any()
    assert asm.late == 1 and asm.missing == 1
    assert any("late frame: volume 0 plane 3" in m for m in messages(events))


def test_duplicate_and_extra_frames_are_discarded(rig) -> None:
    w, asm, events, path = rig
    asm.put(0, frame(0))
    assert not asm.put(0, np.full(SHAPE[1:], 999, dtype=np.uint16))  # the same plane again
    for i in range(1, N_VOLUMES * Z):
        asm.put(i, frame(i))
    assert not asm.put(N_VOLUMES * Z, frame(0))  # past the armed sequence
    asm.close(N_VOLUMES * Z)
    vols = saved(w, path)
    assert int(vols[0][0, 0, 0]) == 1
    assert asm.duplicates == 1 and asm.extra == 1
    text = " ".join(messages(events))
    assert "duplicate frame" in text and "extra frame" in text


def test_a_full_writer_drops_the_volume_without_waiting(tmp_path: Path) -> None:
    """Every slot of the ring is lent out: the volume is dropped, recorded, and nothing waits."""
    path = tmp_path / "d.h5"
    w = WriterClient(
        path,
        {
            "attrs": {"format": FORMAT, "status": "recording"},
            "shape_zyx": SHAPE,
            "voxel_size_um": (4.0, 1.0, 1.0),
            "volume_period_s": 0.5,
            "sample_rate_hz": 6000.0,
            "compression": "none",
        },
        n_slots=2,
    )
    w.start()
    for t in (0, 1, 90, 91):
        w.set_volume_meta(t, 600 + 3000 * t, 600 + 3000 * t + 700 * np.arange(Z), 540 + 3000 * t)
    held = [w.acquire(90), w.acquire(91)]  # another holder has both slots
    assert all(b is not None for b in held)
    events: list[MicroscopeEvent] = []
    asm = VolumeAssembler(SHAPE, 2, w, events.append)
    for i in range(Z):
        assert asm.put(i, frame(i))  # accepted, and lost with its volume
    w.discard(90)
    w.discard(91)
    for i in range(Z, 2 * Z):
        asm.put(i, frame(i))
    asm.close(2 * Z)
    assert asm.dropped == 1 and asm.committed == 1
    assert any("writer is full: volume 0 dropped" in m for m in messages(events))
    vols = saved(w, path)
    with h5py.File(path, "r") as f:
        assert list(f["volumes/dropped/volume"][...]) == [0]
    assert not vols[0].any()  # left unwritten, reads as zeros; volume 1 keeps its index
    np.testing.assert_array_equal(vols[1][:, 0, 0], np.arange(Z, 2 * Z) + 1)


def test_stop_saves_triggered_volumes_and_discards_the_one_cut_short(rig) -> None:
    w, asm, events, path = rig
    for i in range(Z + 2):  # volume 0 whole, volume 1 half
        asm.put(i, frame(i))
    # the DAQ had triggered volumes 0..2 completely and 2 planes of volume 3
    asm.close(3 * Z + 2)
    vols = saved(w, path)
    assert vols.shape[0] == 3  # volume 2 (no frame at all) still takes its place
    assert not vols[1][2:].any() and not vols[2].any()
    assert any("missing frames at stop" in m for m in messages(events))
    assert asm.committed == 3


def test_volumes_after_a_gap_keep_their_index(rig) -> None:
    """Frames skip a whole volume: it is saved black, the next one lands at its own index."""
    w, asm, events, path = rig
    for i in list(range(Z)) + list(range(2 * Z, 3 * Z)):
        asm.put(i, frame(i))
    asm.close(3 * Z)
    vols = saved(w, path)
    assert not vols[1].any()
    assert any("volume 1 planes 0-3" in m for m in messages(events))
    np.testing.assert_array_equal(vols[2][:, 0, 0], np.arange(2 * Z, 3 * Z) + 1)
