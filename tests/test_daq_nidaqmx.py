"""The NI-DAQmx backend, through the real ``nidaqmx`` package with only its driver layer faked.

``tests/_nidaqmx_fake.py`` replaces the interpreter that nidaqmx uses to call the C
driver (the seam nidaqmx's own unit tests patch); everything above it — ``Task``,
timing, streams, stream readers and writers, error classes — is the real package. The
fake records what reaches the driver and serves known signals, with the camera-trigger
and volume-marker outputs diode-ORed into the read-back input, as on the rig
(docs/hardware.md).
"""

from __future__ import annotations

import ctypes.util
import sys

import nidaqmx
import numpy as np
import pytest
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    RegenerationMode,
    TaskMode,
    TerminalConfiguration,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.errors import DaqError, DaqNotFoundError
from nidaqmx.stream_writers import AnalogMultiChannelWriter
from scipy.signal import find_peaks

from acquisition.daq._nidaqmx import TRIGGER_DROOP, NiDaq
from acquisition.daq._ttl import (
    camera_trigger_waveform,
    galvo_waveform,
    piezo_waveform,
    ttl_readback,
    volume_marker_waveform,
)
from rig.core.config import DaqConfig, RigConfig
from rig.core.errors import ConfigError, DeviceError
from stimuli.builtin import dataset_protocol
from stimuli.schedule import Schedule
from tests._nidaqmx_fake import FakeInterpreter, UnsupportedByFake, install, signature_mismatches

RIG = RigConfig()
CFG = DaqConfig(backend="nidaqmx")
CFG_PD = DaqConfig(backend="nidaqmx", photodiode_channel="ai3", input_range_v=5.0)


def tail_left(k: np.ndarray) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * k / 600.0)


def tail_right(k: np.ndarray) -> np.ndarray:
    return 1e-4 * (k % 20_000) - 1.0


def photodiode(k: np.ndarray) -> np.ndarray:
    return 0.25 + 1e-3 * (k % 1000)


@pytest.fixture(scope="module")
def timeline() -> Schedule:
    return Schedule.build(dataset_protocol().scaled(0.01), RIG)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeInterpreter:
    board = FakeInterpreter(
        signals={"Dev1/ai0": tail_left, "Dev1/ai1": tail_right, "Dev1/ai3": photodiode},
        # the camera trigger and the volume marker, diode-ORed into the read-back
        wires={"Dev1/ai2": ("Dev1/ao0", "Dev1/ao3")},
    )
    return install(monkeypatch, board)


def _created_names(fake: FakeInterpreter) -> list[str]:
    return [a["session_name"] for a in fake.calls_named("create_task")]


def by_task(fake: FakeInterpreter, call: str, task_name: str) -> list[dict[str, object]]:
    handle = _created_names(fake).index(task_name) + 1  # the fake numbers handles from 1
    return [a for a in fake.calls_named(call) if a["task"] == handle]


def ni_code(err: DeviceError) -> int:
    """The NI-DAQmx error code behind a DeviceError."""
    cause = err.__cause__
    assert isinstance(cause, DaqError), cause
    return int(cause.error_code)


def test_fake_has_the_interpreter_signatures() -> None:
    """Every method the fake models takes exactly the parameters nidaqmx passes the driver."""
    assert signature_mismatches() == []


@pytest.mark.parametrize(
    ("cfg", "inputs", "outputs"),
    [
        (CFG, ["ai0", "ai1", "ai2"], ["ao0", "ao3", "ao1", "ao2"]),
        (CFG_PD, ["ai0", "ai1", "ai2", "ai3"], ["ao0", "ao3", "ao1", "ao2"]),
        (
            DaqConfig(backend="nidaqmx", galvo_output=None, piezo_output=None),
            None,
            ["ao0", "ao3"],
        ),
    ],
)
def test_open_creates_the_channels_of_the_config(
    fake: FakeInterpreter, cfg: DaqConfig, inputs: list[str] | None, outputs: list[str]
) -> None:
    daq = NiDaq(cfg)
    daq.open()
    ai = fake.calls_named("create_ai_voltage_chan")
    if inputs is not None:
        assert [a["physical_channel"] for a in ai] == [f"Dev1/{c}" for c in inputs]
    assert [a["name_to_assign_to_channel"] for a in ai] == list(daq.input_names)
    assert daq.input_names[:3] == ("tail_left", "tail_right", "trigger_readback")
    assert daq.n_inputs == len(ai)
    assert {a["terminal_config"] for a in ai} == {TerminalConfiguration.DIFF}
    assert {(a["min_val"], a["max_val"]) for a in ai} == {(-cfg.input_range_v, cfg.input_range_v)}
    ao = fake.calls_named("create_ao_voltage_chan")
    assert [a["physical_channel"] for a in ao] == [f"Dev1/{c}" for c in outputs]
    assert {(a["min_val"], a["max_val"]) for a in ao} == {(-10.0, 10.0)}
    assert fake.task_names() == ["zaprig-ai", "zaprig-ao"]
    daq.close()
    assert fake.task_names() == []


def test_start_shares_the_input_sample_clock(fake: FakeInterpreter, timeline: Schedule) -> None:
    daq = NiDaq(CFG)
    daq.open()
    daq.start(timeline)
    n = round(CFG.buffer_seconds * CFG.sample_rate_hz)
    assert daq.buffer_samples == n == 30_000

    (ai_clk,) = by_task(fake, "cfg_samp_clk_timing", "zaprig-ai")
    assert ai_clk["rate"] == 6000.0
    assert ai_clk["source"] == ""  # the board's own clock: the rig's master clock
    assert ai_clk["sample_mode"] == AcquisitionType.CONTINUOUS
    (ao_clk,) = by_task(fake, "cfg_samp_clk_timing", "zaprig-ao")
    assert ao_clk["rate"] == 6000.0
    assert ao_clk["source"] == "/Dev1/ai/SampleClock"
    assert ao_clk["active_edge"] == Edge.RISING == ai_clk["active_edge"]
    assert ao_clk["sample_mode"] == AcquisitionType.CONTINUOUS

    bufs = {a["attribute"]: a["value"] for a in fake.calls_named("set_buffer_attribute_uint32")}
    assert bufs == {0x186C: n, 0x186D: n}  # input and output buffer sizes
    (regen,) = fake.calls_named("set_write_attribute_int32")
    assert regen["value"] == RegenerationMode.DONT_ALLOW_REGENERATION.value

    # pre-filled before anything starts, then output armed before the input starts the clock
    names = fake.call_names()
    first_write = names.index("write_analog_f64")
    starts = [i for i, c in enumerate(names) if c == "start_task"]
    assert first_write < starts[0]
    assert [fake.calls[i].args["task"] for i in starts] == [2, 1]  # zaprig-ao, then zaprig-ai
    (prefill,) = fake.calls_named("write_analog_f64")
    assert prefill["num_samps_per_chan"] == daq.write_ahead_samples
    assert not prefill["auto_start"]
    daq.close()


def test_full_timeline_outputs_decode_like_the_dataset(
    fake: FakeInterpreter, timeline: Schedule
) -> None:
    """Every camera trigger, marker, galvo and piezo sample over a whole (short) run; 0 V after.

    The camera line carries exactly z pulses per volume (one frame per plane); the
    read-back, where the marker line joins it, decodes as the dataset's notebook expects.
    """
    end = timeline.end_sample
    z = timeline.planes_per_volume
    with NiDaq(CFG) as daq:
        daq.start(timeline)
        chunks = []
        written = fake.writes[0][1].shape[1]
        while daq.samples_read < end + CFG.sample_rate_hz:
            chunks.append(daq.read())
            written += fake.writes[-1][1].shape[1]
            assert written == daq.samples_read + daq.write_ahead_samples  # never the whole run
    stream = np.concatenate(chunks)
    out = fake.written("zaprig-ao")
    trig, marker, galvo, piezo = out[:, :end]
    assert out.shape[1] > end

    # the camera sees one pulse per plane and nothing above 3.55 V
    camera_pulses, _ = find_peaks(trig, height=1.0, distance=50)
    np.testing.assert_array_equal(camera_pulses, timeline.all_plane_samples)
    assert trig.max() < 3.55
    np.testing.assert_array_equal(
        trig, camera_trigger_waveform(timeline, CFG, 0, end, droop=TRIGGER_DROOP)
    )
    np.testing.assert_array_equal(
        marker, volume_marker_waveform(timeline, CFG, 0, end, droop=TRIGGER_DROOP)
    )
    np.testing.assert_array_equal(galvo, galvo_waveform(timeline, CFG, 0, end))
    np.testing.assert_array_equal(piezo, piezo_waveform(timeline, CFG, 0, end))
    assert np.ptp(galvo) == pytest.approx(2 * CFG.galvo_amplitude_v)
    assert np.all(out[:, end:] == 0.0)

    # the read-back (both lines through the diode-OR), decoded as the dataset's notebook does
    readback = stream[:, 2]
    np.testing.assert_array_equal(
        readback[:end], ttl_readback(timeline, CFG, 0, end, droop=TRIGGER_DROOP).astype(np.float32)
    )
    vol_rb, _ = find_peaks(readback, height=3.55, distance=500)
    np.testing.assert_array_equal(vol_rb, timeline.marker_samples)
    low, _ = find_peaks(readback, height=1.0, distance=50)
    planes = np.setdiff1d(low, vol_rb)
    np.testing.assert_array_equal(planes, timeline.all_plane_samples)
    assert len(planes) / (len(vol_rb) - 1) == z  # the notebook's "ratio of ~72"
    # and the board was left at 0 V
    assert [fake.output_level(f"Dev1/ao{i}") for i in range(4)] == [0.0] * 4
    assert fake.task_names() == []


def test_read_returns_the_served_samples_in_column_order(
    fake: FakeInterpreter, timeline: Schedule
) -> None:
    daq = NiDaq(CFG_PD)
    daq.open()
    daq.start(timeline)
    assert daq.samples_read == 0
    for i in range(5):
        chunk = daq.read()
        assert chunk.dtype == np.float32
        assert chunk.shape == (CFG_PD.chunk_samples, 4)
        assert chunk.flags.c_contiguous
        k = np.arange(i * 60, (i + 1) * 60)
        np.testing.assert_array_equal(chunk[:, 0], tail_left(k).astype(np.float32))
        np.testing.assert_array_equal(chunk[:, 1], tail_right(k).astype(np.float32))
        np.testing.assert_array_equal(chunk[:, 3], photodiode(k).astype(np.float32))
        assert daq.samples_read == (i + 1) * 60
    reads = fake.calls_named("read_analog_f64")
    assert [r["num_samps_per_chan"] for r in reads] == [60] * 5
    daq.close()


def test_the_first_volume_trigger_is_read_back_on_its_sample(
    fake: FakeInterpreter, timeline: Schedule
) -> None:
    m = int(timeline.marker_samples[0])
    s = int(timeline.volume_starts[0])
    with NiDaq(CFG) as daq:
        daq.start(timeline)
        stream = np.concatenate([daq.read() for _ in range(s // 60 + 2)])
    rb = stream[:, 2]
    assert np.all(rb[:m] == 0.0)
    assert rb[m] == CFG.volume_start_v
    assert rb[m] > rb[m + 1] > 3.55  # the droop puts the marker's peak on its first sample
    assert np.all(rb[m + 10 : s] == 0.0)
    assert rb[s] == CFG.plane_trigger_v
    assert rb[s] > rb[s + 1] > 1.0  # and plane 0's peak on sample s


def test_stop_drives_every_output_to_zero(fake: FakeInterpreter, timeline: Schedule) -> None:
    daq = NiDaq(CFG)
    daq.open()
    daq.start(timeline)
    # stop while a trigger pulse is high and the galvo and piezo are off zero
    for _ in range(timeline.end_sample // 60):
        daq.read()
        levels = [fake.output_level(f"Dev1/ao{i}") for i in range(3)]
        if levels[0] > 1.0 and levels[1] != 0.0 and levels[2] > 0.0:
            break
    else:
        pytest.fail("no read ended inside a trigger pulse")
    n_writes = len(fake.writes)

    daq.stop()
    assert [fake.output_level(f"Dev1/ao{i}") for i in range(4)] == [0.0] * 4
    names = fake.call_names()
    stop_ao = names.index("stop_task")
    unreserve = fake.calls_named("task_control")
    assert [u["action"] for u in unreserve] == [TaskMode.TASK_UNRESERVE]
    (zero_task,) = [a["session_name"] for a in fake.calls_named("create_task")][2:]
    (zero_name, zero), *_ = fake.writes[n_writes:]
    assert zero_name == zero_task
    np.testing.assert_array_equal(zero, np.zeros((4, 1)))
    zero_chans = [a["physical_channel"] for a in fake.calls_named("create_ao_voltage_chan")][4:]
    assert zero_chans == ["Dev1/ao0", "Dev1/ao3", "Dev1/ao1", "Dev1/ao2"]
    assert stop_ao < max(i for i, c in enumerate(names) if c == "write_analog_f64")
    assert fake.task_names() == ["zaprig-ai", "zaprig-ao"]  # the zero task is gone

    with pytest.raises(DeviceError, match="not running"):
        daq.read()
    daq.close()
    assert len(fake.writes) == n_writes + 1  # close() after stop() does not write again
    assert fake.task_names() == []


def test_close_without_start_leaves_outputs_at_zero(fake: FakeInterpreter) -> None:
    with NiDaq(CFG):
        pass
    (_, zero) = fake.writes[-1]
    np.testing.assert_array_equal(zero, np.zeros((4, 1)))
    assert fake.task_names() == []


def test_input_overflow_becomes_device_error(fake: FakeInterpreter, timeline: Schedule) -> None:
    daq = NiDaq(CFG)
    daq.open()
    daq.start(timeline)
    daq.read()
    fake.elapse(daq.buffer_samples + 1)  # the program stalls longer than the buffer
    with pytest.raises(DeviceError) as err:
        daq.read()
    msg = str(err.value)
    assert "overflow" in msg and "daq.buffer_seconds" in msg and "'Dev1'" in msg
    assert ni_code(err.value) == -200279
    daq.close()
    assert [fake.output_level(f"Dev1/ao{i}") for i in range(4)] == [0.0] * 4
    assert fake.task_names() == []


def test_output_underflow_becomes_device_error(fake: FakeInterpreter, timeline: Schedule) -> None:
    daq = NiDaq(CFG)
    daq.open()
    daq.start(timeline)
    daq.read()
    # long enough to drain what was written ahead, short enough for the input buffer
    fake.elapse(daq.write_ahead_samples + 1)
    with pytest.raises(DeviceError) as err:
        daq.read()
    assert "ran out of samples" in str(err.value)
    assert ni_code(err.value) == DAQmxErrors.GEN_STOPPED_TO_PREVENT_REGEN_OF_OLD_SAMPLES
    daq.close()


def test_lost_device_becomes_device_error(fake: FakeInterpreter, timeline: Schedule) -> None:
    daq = NiDaq(CFG)
    daq.open()
    daq.start(timeline)
    daq.read()
    fake.unplug("Dev1")
    with pytest.raises(DeviceError, match="stopped responding") as err:
        daq.read()
    assert ni_code(err.value) == DAQmxErrors.DEV_CANNOT_BE_ACCESSED
    with pytest.raises(DeviceError, match="may NOT be at 0 V"):
        daq.close()
    assert fake.task_names() == []  # released all the same


@pytest.mark.skipif(
    sys.platform.startswith("linux") and ctypes.util.find_library("nidaqmx") is not None,
    reason="NI-DAQmx is installed here: the missing-driver path cannot happen",
)
def test_missing_driver_becomes_device_error() -> None:
    """No fake: the real nidaqmx finds no driver on this machine."""
    daq = NiDaq(DaqConfig(backend="nidaqmx", device="PXI1Slot2"))
    with pytest.raises(DeviceError) as err:
        daq.open()
    msg = str(err.value)
    assert "NI-DAQmx driver is not installed" in msg
    assert "installdriver" in msg and "NI MAX" in msg and "daq.device" in msg
    assert "'PXI1Slot2'" in msg and "daq.backend = 'sim'" in msg
    assert isinstance(err.value.__cause__, DaqNotFoundError)
    daq.close()  # nothing was opened: a no-op


def test_unknown_device_becomes_device_error(fake: FakeInterpreter) -> None:
    daq = NiDaq(DaqConfig(backend="nidaqmx", device="Dev7"))
    with pytest.raises(DeviceError) as err:
        daq.open()
    msg = str(err.value)
    assert "'Dev7' not found" in msg and "NI MAX" in msg and "daq.device" in msg
    assert ni_code(err.value) == DAQmxErrors.INVALID_DEVICE_ID
    assert fake.task_names() == []  # the half-opened task was released


def test_missing_channel_names_its_config_field(fake: FakeInterpreter) -> None:
    daq = NiDaq(DaqConfig(backend="nidaqmx", tail_channels=("ai0", "ai31")))
    with pytest.raises(DeviceError) as err:
        daq.open()
    msg = str(err.value)
    assert "daq.tail_channels[1] = 'ai31'" in msg and "does not exist" in msg
    assert fake.task_names() == []


def test_call_order_and_clock_mismatch_are_refused(
    fake: FakeInterpreter, timeline: Schedule
) -> None:
    daq = NiDaq(CFG)
    with pytest.raises(DeviceError, match="before open"):
        daq.start(timeline)
    daq.open()
    with pytest.raises(DeviceError, match="not running"):
        daq.read()
    fast = RigConfig(daq=DaqConfig(sample_rate_hz=10_000.0))
    with pytest.raises(ConfigError, match="10000"):
        daq.start(Schedule.build(dataset_protocol().scaled(0.01), fast))
    daq.start(timeline)
    with pytest.raises(DeviceError, match="one timeline per open"):
        daq.start(timeline)
    daq.close()


def test_a_two_hour_timeline_is_streamed(fake: FakeInterpreter) -> None:
    full = Schedule.build(dataset_protocol(), RIG)
    assert full.duration_s > 7000
    with NiDaq(CFG) as daq:
        daq.start(full)
        for _ in range(10):
            daq.read()
        assert sum(w.shape[1] for _, w in fake.writes) == 600 + daq.write_ahead_samples
    assert max(w.shape[1] for _, w in fake.writes) < full.end_sample / 100


# -- the fake itself refuses wrong use, so the tests above can fail ----------------------------


def test_fake_refuses_wrong_driver_use(fake: FakeInterpreter) -> None:
    with nidaqmx.Task("t") as task:
        with pytest.raises(DaqError) as err:
            task.ai_channels.add_ai_voltage_chan(
                "Dev1/ai9", terminal_config=TerminalConfiguration.DIFF
            )
        assert err.value.error_code == DAQmxErrors.INVALID_ATTRIBUTE_VALUE
        task.ao_channels.add_ao_voltage_chan("Dev1/ao0", min_val=-1.0, max_val=1.0)
        task.timing.cfg_samp_clk_timing(
            6000.0, source="/Dev1/ai/SampleClock", sample_mode=AcquisitionType.CONTINUOUS
        )
        task.out_stream.regen_mode = RegenerationMode.DONT_ALLOW_REGENERATION
        with pytest.raises(DaqError) as err:
            task.start()  # nothing written yet
        assert err.value.error_code == DAQmxErrors.OUTPUT_BUFFER_EMPTY
        writer = AnalogMultiChannelWriter(task.out_stream)
        with pytest.raises(ctypes.ArgumentError):
            writer.write_many_sample(np.zeros((1, 10), dtype=np.float32))
        with pytest.raises(DaqError) as err:
            writer.write_many_sample(np.full((1, 10), 2.0))  # outside the channel's ±1 V
        assert err.value.error_code == DAQmxErrors.INVALID_AO_DATA_WRITE
        with pytest.raises(DaqError) as err:
            writer.write_many_sample(np.zeros((1, 1001)))  # more than the 1000-sample buffer
        assert err.value.error_code == DAQmxErrors.SAMPLES_CAN_NOT_YET_BE_WRITTEN
        with pytest.raises(UnsupportedByFake):
            _ = task.out_stream.output_onbrd_buf_size


def test_a_marker_read_on_its_own_input_is_folded_into_the_readback_row(
    monkeypatch: pytest.MonkeyPatch, timeline: Schedule
) -> None:
    """With ``marker_readback_channel`` each line is measured alone; row 2 is their diode-OR."""
    board = FakeInterpreter(
        signals={"Dev1/ai0": tail_left, "Dev1/ai1": tail_right},
        wires={"Dev1/ai2": "Dev1/ao0", "Dev1/ai4": "Dev1/ao3"},
    )
    fake = install(monkeypatch, board)
    cfg = DaqConfig(backend="nidaqmx", marker_readback_channel="ai4")
    end = int(timeline.volume_starts[3])
    with NiDaq(cfg) as daq:
        assert daq.n_inputs == 3 and daq.input_names == (
            "tail_left",
            "tail_right",
            "trigger_readback",
        )
        ai = [a["physical_channel"] for a in fake.calls_named("create_ai_voltage_chan")]
        assert ai == ["Dev1/ai0", "Dev1/ai1", "Dev1/ai2", "Dev1/ai4"]
        daq.start(timeline)
        stream = np.concatenate([daq.read() for _ in range(end // 60 + 1)])
    assert stream.shape[1] == 3
    rb = stream[:end, 2]
    np.testing.assert_array_equal(
        rb, ttl_readback(timeline, cfg, 0, end, droop=TRIGGER_DROOP).astype(np.float32)
    )
    vol, _ = find_peaks(rb, height=3.55, distance=500)
    np.testing.assert_array_equal(vol, timeline.marker_samples[:4])  # volume 3 marker too
