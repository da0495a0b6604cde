"""The Micro-Manager backend through a real MMCore: pymmcore-plus's UniMMCore with a Python camera.

Nothing of MMCore is faked: the sequence acquisition, circular buffer and
metadata are pymmcore-plus's own. The camera (acquisition.microscope._sim_camera)
exposes one frame per trigger pulse, filled with its frame number + 1, so each
test can see which frame landed in which (volume, plane). The sink below is a
stand-in for the writer: it lends buffers from a small ring whose slots start
dirty (so planes the backend should blank are checked) and keeps what is
committed.
"""

from __future__ import annotations

import os
import resource

os.environ.setdefault("PYMM_LOG_LEVEL", "CRITICAL")

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pymmcore_plus.experimental.unicore import UniMMCore

from acquisition.microscope._base import MicroscopeEvent
from acquisition.microscope._mmcore import (
    MMCoreMicroscope,
    PycromanagerCore,
    release_core,
)
from acquisition.microscope._sim_camera import CAMERA_TIME_KEY, FRAME_COUNTER_KEY, TriggeredCamera
from rig.core.config import MicroscopeConfig, RigConfig
from rig.core.errors import ConfigError, DeviceError
from stimuli.builtin import dataset_protocol
from stimuli.schedule import Schedule

STALE = 0xBEEF  # what a recycled writer slot holds before the backend writes it


class StoringSink:
    """The writer's side of VolumeSink: a ring of slots; committed volumes are copied out."""

    def __init__(
        self, shape: tuple[int, int, int], slots: int = 4, full_at: frozenset[int] = frozenset()
    ):
        self.ring = [np.full(shape, STALE, dtype=np.uint16) for _ in range(slots)]
        self.free = list(range(slots))
        self.lent: dict[int, int] = {}
        self.full_at = full_at
        self.volumes: dict[int, np.ndarray] = {}
        self.missing: dict[int, tuple[int, ...]] = {}
        self.order: list[int] = []
        self.discarded: list[int] = []

    def acquire(self, t: int) -> np.ndarray | None:
        if t in self.full_at or not self.free:
            return None
        slot = self.free.pop()
        self.lent[t] = slot
        return self.ring[slot]

    def commit(self, t: int, missing_planes: tuple[int, ...] = ()) -> None:
        slot = self.lent.pop(t)
        self.volumes[t] = self.ring[slot].copy()
        self.missing[t] = tuple(missing_planes)
        self.order.append(t)
        self.ring[slot].fill(STALE)  # the next volume gets a dirty slot, as in a real ring
        self.free.append(slot)

    def discard(self, t: int) -> None:
        self.free.append(self.lent.pop(t))
        self.discarded.append(t)


@pytest.fixture(scope="module")
def timeline() -> Schedule:
    return Schedule.build(dataset_protocol().scaled(0.01), RigConfig())


@pytest.fixture
def cfg() -> MicroscopeConfig:
    return RigConfig().microscope


@pytest.fixture
def make_scope(cfg: MicroscopeConfig) -> Iterator[Callable[..., MMCoreMicroscope]]:
    made: list[MMCoreMicroscope] = []

    def make(**options: object) -> MMCoreMicroscope:
        scope = MMCoreMicroscope.simulated(cfg, **options)  # type: ignore[arg-type]
        made.append(scope)
        scope.open()
        return scope

    yield make
    for scope in made:
        scope.close()


def trigger_volume(scope: MMCoreMicroscope, timeline: Schedule, t: int) -> None:
    """What the DAQ does for volume t: one pulse per plane (the wire fires the camera)."""
    z = timeline.planes_per_volume
    scope.on_triggers(np.arange(t * z, (t + 1) * z), timeline.plane_samples[t])


def poll_until(
    scope: MMCoreMicroscope,
    done: Callable[[list[MicroscopeEvent]], bool],
    timeout: float = 5.0,
) -> list[MicroscopeEvent]:
    """Poll like the engine does until ``done(events so far)``; the camera runs on MMCore's
    own acquisition thread, so frames arrive in their own time."""
    events: list[MicroscopeEvent] = []
    deadline = time.monotonic() + timeout
    while True:
        events += scope.poll()
        if done(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; events: {events}")
        time.sleep(0.001)


def run(
    scope: MMCoreMicroscope, timeline: Schedule, volumes: int, frames_after: Callable[[int], int]
) -> list[MicroscopeEvent]:
    """Trigger ``volumes`` volumes; after volume t wait for ``frames_after(t)`` frames."""
    events: list[MicroscopeEvent] = []
    for t in range(volumes):
        trigger_volume(scope, timeline, t)
        want = frames_after(t)

        def arrived(_: list[MicroscopeEvent], want: int = want) -> bool:
            return scope.frames_received >= want

        events += poll_until(scope, arrived)
    return events


def warnings_of(events: list[MicroscopeEvent]) -> list[str]:
    return [e.message for e in events if e.kind == "warning"]


def expected_volume(t: int, z: int, shape: tuple[int, int]) -> np.ndarray:
    """Frame k holds k + 1: volume t plane p is frame t*z + p."""
    values = np.arange(t * z, (t + 1) * z, dtype=np.uint16) + 1
    return np.broadcast_to(values[:, None, None], (z, *shape))


def test_whole_run_assembles_every_volume_in_plane_order(make_scope, timeline, cfg) -> None:
    scope = make_scope()
    scope.core.setProperty(cfg.camera_device, "TriggerMode", "Internal")
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    # frames wait in Micro-Manager's buffer sized by the rig config, not MM's 250 MB default
    assert scope.core.getCircularBufferMemoryFootprint() == cfg.sequence_buffer_mb  # type: ignore[attr-defined]
    assert scope.core.getProperty(cfg.camera_device, "TriggerMode") == "External"
    assert scope.core.getExposure() == pytest.approx(cfg.exposure_ms)

    z, n = timeline.planes_per_volume, timeline.n_volumes
    events = run(scope, timeline, n, lambda t: (t + 1) * z)
    scope.stop()
    events += scope.poll()

    assert scope.frames_received == n * z == scope.simulated_camera.exposures
    assert scope.volumes_done == n and sink.order == list(range(n))
    for t in (0, 1, n // 2, n - 1):
        np.testing.assert_array_equal(sink.volumes[t], expected_volume(t, z, cfg.shape_zyx[1:]))
    assert all(m == () for m in sink.missing.values())
    assert not [e for e in events if e.kind != "info"], events
    assert any("hardware frame counter" in e.message for e in events)
    records = scope.frame_records
    assert records["received"].all()
    np.testing.assert_array_equal(records["counter"], np.arange(n * z))
    assert np.all(np.diff(records["camera_time_us"]) >= 0)
    assert not scope.core.isSequenceRunning()


def test_dropped_frame_is_named_and_left_black(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    lost = z + 3  # volume 1, plane 3
    scope = make_scope(drop_frames=[lost])
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    events = run(scope, timeline, 3, lambda t: (t + 1) * z - (t >= 1))
    scope.stop()

    messages = warnings_of(events)
    assert len(messages) == 1 and "missing frame" in messages[0]
    assert "volume 1 plane 3" in messages[0]
    assert scope.frames_missing == 1
    assert sink.order == [0, 1, 2] and sink.missing == {0: (), 1: (3,), 2: ()}
    vol = sink.volumes[1]
    assert not vol[3].any()  # blanked, not the stale slot content
    want = expected_volume(1, z, cfg.shape_zyx[1:])
    keep = [p for p in range(z) if p != 3]
    np.testing.assert_array_equal(vol[keep], want[keep])  # later planes are not shifted


def test_volume_missing_its_last_plane_is_saved_when_the_next_volume_starts(
    make_scope, timeline, cfg
) -> None:
    z = timeline.planes_per_volume
    scope = make_scope(drop_frames=[2 * z - 1])  # volume 1, last plane
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    events = run(scope, timeline, 2, lambda t: (t + 1) * z - t)
    assert sink.order == [0] and not warnings_of(events)  # plane 7 could still be on its way

    trigger_volume(scope, timeline, 2)
    events = poll_until(scope, lambda _: 1 in sink.volumes)
    assert any("volume 1 plane 7" in m for m in warnings_of(events))
    assert sink.missing[1] == (z - 1,)
    scope.stop()


def test_extra_frame_from_a_spurious_trigger_is_reported(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope(spurious_pulses_after=[4])
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    events = run(scope, timeline, 3, lambda t: (t + 1) * z + 1)
    scope.stop()
    events += scope.poll()

    extra = [m for m in warnings_of(events) if "extra frame" in m]
    assert len(extra) == 1, events
    assert f"made {3 * z + 1} frames for {3 * z} triggers (1 more" in extra[0] or (
        f"made {2 * z + 1} frames for {2 * z} triggers (1 more" in extra[0]
    )
    assert scope.frames_extra == 1


def faults(events: list[MicroscopeEvent]) -> list[MicroscopeEvent]:
    return [e for e in events if e.kind == "fault"]


def test_camera_that_stops_delivering_becomes_a_fault(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope(stop_after=z + 4)  # silent from volume 1 plane 4 on
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    events = run(scope, timeline, 2, lambda t: min((t + 1) * z, z + 4))
    assert not faults(events)
    last_frame = time.monotonic()
    for t in (2, 3):  # the DAQ keeps triggering
        trigger_volume(scope, timeline, t)
    events = poll_until(scope, lambda ev: bool(faults(ev)), timeout=4.0)
    waited = time.monotonic() - last_frame
    assert 0.9 < waited < 2.5  # after the 1 s allowed, not before
    (fault,) = faults(events)
    assert "camera stopped delivering frames" in fault.message
    assert "the last frame was volume 1 plane 3" in fault.message and fault.volume == 1

    scope.stop()
    events = scope.poll()
    # Volumes whose triggers were all sent are still saved, with the missing planes named.
    assert sink.order == [0, 1, 2, 3]
    assert sink.missing[1] == (4, 5, 6, 7) and sink.missing[3] == tuple(range(z))
    assert not sink.volumes[3].any()
    assert any("volume 1 planes 4-7, volume 2 planes 0-7" in m for m in warnings_of(events))


def test_camera_that_never_answers_a_trigger_is_a_fault(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope(stop_after=0)  # e.g. the trigger cable is unplugged
    scope.start(timeline, StoringSink(cfg.shape_zyx))
    for t in range(3):
        trigger_volume(scope, timeline, t)
    (fault,) = faults(poll_until(scope, lambda ev: bool(faults(ev)), timeout=4.0))
    assert "camera stopped delivering frames" in fault.message
    assert f"the DAQ sent {3 * z} triggers" in fault.message
    assert "no frame has arrived since the sequence started" in fault.message
    assert "trigger cable" in fault.message
    scope.stop()


def test_full_writer_drops_the_volume_and_says_so(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope()
    sink = StoringSink(cfg.shape_zyx, full_at=frozenset({1}))
    scope.start(timeline, sink)
    events = run(scope, timeline, 3, lambda t: (t + 1) * z)
    scope.stop()

    assert sink.order == [0, 2] and scope.volumes_done == 2 and scope.volumes_dropped == 1
    assert any("writer is full: volume 1 dropped" in m for m in warnings_of(events))
    np.testing.assert_array_equal(sink.volumes[2], expected_volume(2, z, cfg.shape_zyx[1:]))


def test_stop_mid_volume_discards_the_partial_volume(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope()
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    run(scope, timeline, 1, lambda t: z)
    scope.on_triggers(np.arange(z, z + 3), timeline.plane_samples[1, :3])  # abort mid-volume
    poll_until(scope, lambda _: scope.frames_received == z + 3)
    scope.stop()
    events = scope.poll()
    assert sink.order == [0] and sink.discarded == [1] and not sink.lent
    assert any("volume 1 was cut short" in e.message for e in events)


def test_without_a_frame_counter_losses_are_counted_at_stop(make_scope, timeline, cfg) -> None:
    z = timeline.planes_per_volume
    scope = make_scope(drop_frames=[5], frame_counter_key=None)
    sink = StoringSink(cfg.shape_zyx)
    scope.start(timeline, sink)
    events = run(scope, timeline, 2, lambda t: (t + 1) * z - 1)
    scope.stop()
    events += scope.poll()
    assert any("ImageNumber" in e.message for e in events if e.kind == "info")
    lost = [m for m in warnings_of(events) if "missing frames at stop" in m]
    assert len(lost) == 1 and "1 frame (" in lost[0] and "unknown" in lost[0]
    assert sink.missing[1] == (z - 1,)  # the planes after the loss came one frame early


def test_exposure_longer_than_the_plane_interval_is_refused(timeline) -> None:
    cfg = MicroscopeConfig(exposure_ms=200.0)  # planes are 114 ms apart
    scope = MMCoreMicroscope.simulated(cfg)
    try:
        scope.open()
        with pytest.raises(ConfigError, match="exposure_ms"):
            scope.start(timeline, StoringSink(cfg.shape_zyx))
    finally:
        scope.close()


def test_camera_frame_size_must_match_the_config() -> None:
    core = UniMMCore()
    try:
        core.loadPyDevice("Camera", TriggeredCamera(width=64, height=64))
        core.initializeDevice("Camera")
        scope = MMCoreMicroscope(core, MicroscopeConfig())
        with pytest.raises(DeviceError, match=r"64 x 64.*microscope.width x height = 128 x 80"):
            scope.open()
    finally:
        release_core(core)


def test_pymmcore_backend_loads_the_hardware_config(tmp_path: Path, timeline) -> None:
    cfg_file = tmp_path / "lightsheet.cfg"
    cfg_file.write_text(
        "# zaprig test rig: the Python triggered camera\n"
        "#py pyDevice,Camera,acquisition.microscope._sim_camera,TriggeredCamera\n"
        "Property,Core,Initialize,1\n"
        "#py Property,Core,Camera,Camera\n"
    )
    cfg = MicroscopeConfig(backend="pymmcore", mm_config=str(cfg_file))
    scope = MMCoreMicroscope.from_config(cfg)
    assert scope.connector == "pymmcore"
    with scope:  # open() wires the simulated camera's trigger input to on_triggers
        sink = StoringSink(cfg.shape_zyx)
        scope.start(timeline, sink)
        events = run(scope, timeline, 2, lambda t: (t + 1) * cfg.planes_per_volume)
        scope.stop()
    assert any("SimulatedTriggerPulses" in e.message for e in events)
    assert any("hardware frame counter" in e.message for e in events)
    assert sink.order == [0, 1]
    np.testing.assert_array_equal(
        sink.volumes[1], expected_volume(1, cfg.planes_per_volume, cfg.shape_zyx[1:])
    )


def test_pymmcore_backend_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Micro-Manager backend"):
        MMCoreMicroscope.from_config(MicroscopeConfig(backend="sim"))
    with pytest.raises(ConfigError, match=r"microscope\.mm_config is not set"):
        MMCoreMicroscope.from_config(MicroscopeConfig(backend="pymmcore"))
    with pytest.raises(ConfigError, match="no such file"):
        MMCoreMicroscope.from_config(
            MicroscopeConfig(backend="pymmcore", mm_config=str(tmp_path / "nope.cfg"))
        )
    bad = tmp_path / "bad.cfg"
    bad.write_text("Device,Camera,NoSuchAdapter,NoSuchCamera\n")
    with pytest.raises(DeviceError, match=r"could not load .*bad.cfg \(microscope.mm_config\)"):
        MMCoreMicroscope.from_config(MicroscopeConfig(backend="pymmcore", mm_config=str(bad)))


def test_pycromanager_with_nothing_listening_says_what_to_do() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = MicroscopeConfig(backend="pycromanager", pycromanager_port=port)
    with pytest.raises(DeviceError) as err:
        MMCoreMicroscope.from_config(cfg)
    message = str(err.value)
    assert f"no Micro-Manager answers on 127.0.0.1:{port}" in message
    assert "microscope.pycromanager_port" in message
    assert "Run pycro-manager server" in message
    assert "microscope.backend" in message


class SnakeCaseJavaCore:
    """pycromanager's view of a core: snake_case methods and tagged images with flat short[]
    pixels; behind it, a real MMCore. Only this bridge layer is stood in for."""

    class Tagged:
        def __init__(self, pix: np.ndarray, tags: dict[str, str]) -> None:
            self.pix, self.tags = pix, tags

    def __init__(self, core: UniMMCore) -> None:
        self._core = core

    def __getattr__(self, name: str) -> object:
        head, *rest = name.split("_")
        return getattr(self._core, head + "".join(w.capitalize() for w in rest))

    def pop_next_tagged_image(self) -> SnakeCaseJavaCore.Tagged:
        image, md = self._core.popNextImageAndMD()
        return self.Tagged(image.ravel().view(np.int16), dict(md))


def test_pycromanager_connector_drives_the_same_code(timeline, cfg) -> None:
    core = UniMMCore()
    camera = TriggeredCamera()
    try:
        core.loadPyDevice("Camera", camera)
        core.initializeDevice("Camera")
        scope = MMCoreMicroscope(
            PycromanagerCore(SnakeCaseJavaCore(core)),
            cfg,
            connector="pycromanager",
            trigger_wire=camera.fire,
            frame_counter_key=FRAME_COUNTER_KEY,
            timestamp_key=CAMERA_TIME_KEY,
        )
        scope.open()
        sink = StoringSink(cfg.shape_zyx)
        scope.start(timeline, sink)
        assert core.getProperty("Camera", "TriggerMode") == "External"
        events = run(scope, timeline, 2, lambda t: (t + 1) * cfg.planes_per_volume)
        scope.stop()
        assert not warnings_of(events)
        np.testing.assert_array_equal(
            sink.volumes[1], expected_volume(1, cfg.planes_per_volume, cfg.shape_zyx[1:])
        )
    finally:
        release_core(core)


def test_the_circular_buffer_is_in_memory_before_the_first_trigger(make_scope, timeline) -> None:
    """UniMMCore's buffer is allocated lazily; a run must not fault it in while it runs."""
    scope = make_scope()
    scope.start(timeline, StoringSink((timeline.planes_per_volume, 80, 128)))
    pool = scope.core._seq_buffer._pool  # what the camera's frames are written into
    used = timeline.n_volumes * timeline.planes_per_volume * 80 * 128 * 2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    pool[:used] = 1
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    pool[used : 2 * used] = 1  # past what the run uses: not touched, so it faults
    untouched = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    scope.stop()
    # numpy asks for huge pages: a fault may bring in 2 MB, so count loosely
    assert untouched >= used // (2 << 20) // 2  # the measure works
    assert faults <= 2
