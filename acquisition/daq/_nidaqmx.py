"""The NI-DAQmx backend: the real board as the rig's master clock and light-sheet trigger master.

Two tasks on one device (``daq.device``):

* an **analog-input task**: ``tail_left``, ``tail_right``, ``trigger_readback`` (and
  ``photodiode``), differential, ±``input_range_v``, continuous at ``sample_rate_hz``
  on the device's onboard clock, with a driver buffer of ``buffer_seconds`` (differential
  inputs pair aiN with aiN+8 on a 16-input board, so configure channels among ai0-ai7);
* an **analog-output task**: the camera trigger (one pulse per plane), the volume-start
  marker on a line of its own (``volume_marker_output``), and the galvo and piezo
  drives when configured, continuous and *clocked by the input task's sample clock*.

Wiring (docs/hardware.md): the camera gets only the camera-trigger line, so it takes
exactly one frame per plane; both trigger lines are diode-ORed into the read-back
input, so row 2 of the session is the *measured* TTL in the dataset's layout. With
``marker_readback_channel`` set, the marker line is read on an input of its own
instead and row 2 is the larger of the two measured signals, as the diode-OR gives.

Timing design. The output task's sample clock source is ``/{device}/ai/SampleClock``:
it emits output sample ``k`` on the very clock edge that starts input sample ``k``, so
output and input share one sample index by construction, with no drift and no
trigger-latency offset to calibrate. The output task is started first; it is then
armed and idle because its clock does not tick yet. Starting the input task starts
the clock, and with it both streams at index 0. (The alternative, two clocks started
by one shared start trigger, only holds the indices equal while both clocks derive
from the same timebase and while the trigger latency of both subsystems is the same;
sharing the clock needs neither assumption.) A read-back channel then *measures*
where each camera trigger landed, in the same stream as the tail signals.

The output is streamed, never regenerated (``DONT_ALLOW_REGENERATION``): before the
start the buffer is filled to ``write_ahead_samples`` ahead, and after every read the
same number of samples is written again, so the outputs always run that far ahead of
the inputs and a two-hour timeline is computed a chunk at a time. If the program stalls
longer than that, the board stops rather than replay old triggers, and :meth:`read`
says so. After the timeline's ``end_sample`` every output is 0 V; :meth:`stop` also
drives them to 0 V with a one-sample on-demand task (the safe state).

Errors from the driver become :class:`~rig.core.errors.DeviceError` messages that say what
failed, where (device, channel, config field) and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from acquisition.daq._base import Daq
from acquisition.daq._ttl import (
    camera_trigger_waveform,
    galvo_waveform,
    piezo_waveform,
    volume_marker_waveform,
)
from rig.core.config import DaqConfig
from rig.core.errors import ConfigError, DeviceError
from rig.core.timeline import Timeline

try:
    import nidaqmx
    from nidaqmx.constants import (
        AcquisitionType,
        Edge,
        RegenerationMode,
        TaskMode,
        TerminalConfiguration,
        VoltageUnits,
    )
    from nidaqmx.error_codes import DAQmxErrors
    from nidaqmx.errors import DaqError, DaqNotFoundError, DaqNotSupportedError
    from nidaqmx.errors import Error as NiError
    from nidaqmx.stream_readers import AnalogMultiChannelReader
    from nidaqmx.stream_writers import AnalogMultiChannelWriter
except ImportError as e:  # pragma: no cover - the package is a declared test dependency
    raise DeviceError(
        "daq.backend = 'nidaqmx' needs the Python package 'nidaqmx': install it with "
        "`pip install 'zaprig[hardware]'` (or `pip install nidaqmx`), or use daq.backend = 'sim'"
    ) from e

__all__ = ["AO_RANGE_V", "TRIGGER_DROOP", "NiDaq"]

#: Output range of every analog output channel (covers the trigger, galvo and piezo levels).
AO_RANGE_V = 10.0
#: The camera-trigger pulses sag by this fraction over their width. A flat-topped pulse is
#: decoded by ``find_peaks`` at the middle of its plateau, 2-3 samples late; a pulse that
#: is highest on its first sample is decoded at the trigger sample itself, both in the
#: commanded waveform and in its read-back. 2 % of 5 V stays far above any TTL threshold.
TRIGGER_DROOP = 0.02
#: How long a write of the next output samples may wait for room in the output buffer.
_WRITE_TIMEOUT_S = 1.0
#: A read waits one chunk's duration plus this before the driver reports a stalled clock.
_READ_TIMEOUT_MARGIN_S = 2.0

_OVERFLOW_CODES = frozenset(
    {
        DAQmxErrors.SAMPLES_NO_LONGER_AVAILABLE,  # -200279: the program read too late
        DAQmxErrors.INPUT_FIFO_OVERFLOW_2,  # -200361: onboard memory overflow
        DAQmxErrors.ADC_OVERRUN,  # -200019
    }
)
_UNDERFLOW_CODES = frozenset(
    {
        DAQmxErrors.GEN_STOPPED_TO_PREVENT_REGEN_OF_OLD_SAMPLES,  # -200290
        DAQmxErrors.OUTPUT_FIFO_UNDERFLOW,  # -200016
        DAQmxErrors.OUTPUT_FIFO_UNDERFLOW_2,  # -200621
        DAQmxErrors.DAC_UNDERFLOW,  # -200018
    }
)
_LOST_CODES = frozenset(
    {
        DAQmxErrors.DEV_CANNOT_BE_ACCESSED,  # -201003
        DAQmxErrors.DEVICE_REMOVED,  # -200045
        DAQmxErrors.PAL_TRANSFER_ABORTED,  # -50405 (USB devices pulled mid-transfer)
    }
)
_ABSENT_CODES = frozenset(
    {
        DAQmxErrors.INVALID_DEVICE_ID,  # -200220
        DAQmxErrors.DEV_ABSENT_OR_UNAVAILABLE,  # -200324
    }
)

Waveform = Callable[[Timeline, DaqConfig, int, int], np.ndarray]


def _camera_trigger(timeline: Timeline, cfg: DaqConfig, s0: int, n: int) -> np.ndarray:
    return camera_trigger_waveform(timeline, cfg, s0, n, droop=TRIGGER_DROOP)


def _volume_marker(timeline: Timeline, cfg: DaqConfig, s0: int, n: int) -> np.ndarray:
    return volume_marker_waveform(timeline, cfg, s0, n, droop=TRIGGER_DROOP)


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


class NiDaq(Daq):
    """An NI multifunction DAQ (X series or similar) driven through ``nidaqmx``.

    One timeline per :meth:`open`: after :meth:`stop`, :meth:`close` and open again.
    """

    def __init__(self, cfg: DaqConfig) -> None:
        self.cfg = cfg
        self.sample_rate_hz = cfg.sample_rate_hz
        self.chunk_samples = cfg.chunk_samples
        # (column name, channel on the device, rig-config field naming it)
        inputs = [
            ("tail_left", cfg.tail_channels[0], "daq.tail_channels[0]"),
            ("tail_right", cfg.tail_channels[1], "daq.tail_channels[1]"),
            ("trigger_readback", cfg.trigger_readback_channel, "daq.trigger_readback_channel"),
        ]
        if cfg.photodiode_channel:
            inputs.append(("photodiode", cfg.photodiode_channel, "daq.photodiode_channel"))
        for name, channel in cfg.extra_inputs.items():
            inputs.append((name, channel, f"daq.extra_inputs.{name}"))
        # a separately read marker line is folded into trigger_readback by read()
        self._marker_column = len(inputs) if cfg.marker_readback_channel else None
        if cfg.marker_readback_channel:
            inputs.append(
                ("marker_readback", cfg.marker_readback_channel, "daq.marker_readback_channel")
            )
        self._inputs: tuple[tuple[str, str, str], ...] = tuple(inputs)
        outputs: list[tuple[str, str, str, Waveform]] = [
            (
                "camera_trigger",
                cfg.camera_trigger_output,
                "daq.camera_trigger_output",
                _camera_trigger,
            ),
            (
                "volume_marker",
                cfg.volume_marker_output,
                "daq.volume_marker_output",
                _volume_marker,
            ),
        ]
        if cfg.galvo_output:
            outputs.append(("galvo", cfg.galvo_output, "daq.galvo_output", galvo_waveform))
        if cfg.piezo_output:
            outputs.append(("piezo", cfg.piezo_output, "daq.piezo_output", piezo_waveform))
        self._outputs: tuple[tuple[str, str, str, Waveform], ...] = tuple(outputs)
        #: Driver buffer of each task, in samples per channel; at least 4 reads deep.
        self.buffer_samples = max(
            round(cfg.buffer_seconds * cfg.sample_rate_hz), 4 * self.chunk_samples
        )
        #: How far the outputs run ahead of the inputs: a stall shorter than this is harmless.
        self.write_ahead_samples = self.buffer_samples - 2 * self.chunk_samples
        self._read_timeout_s = self.chunk_samples / self.sample_rate_hz + _READ_TIMEOUT_MARGIN_S
        self._ai: nidaqmx.Task | None = None
        self._ao: nidaqmx.Task | None = None
        self._reader: AnalogMultiChannelReader | None = None
        self._writer: AnalogMultiChannelWriter | None = None
        self._buf = np.zeros((len(self._inputs), self.chunk_samples), dtype=np.float64)
        self._timeline: Timeline | None = None
        self._samples_read = 0
        self._samples_written = 0
        self._started = False  # start() ran since open()
        self._safe = True  # stop() ran since the last open()/start()

    # -- Daq interface ---------------------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        """Columns :meth:`read` returns (a separate marker read-back is folded into column 2)."""
        return len(self._inputs) - (self._marker_column is not None)

    @property
    def n_outputs(self) -> int:
        return len(self._outputs)

    @property
    def samples_read(self) -> int:
        return self._samples_read

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._inputs[: self.n_inputs])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _, _ in self._outputs)

    def open(self) -> None:
        """Create both tasks and their channels; a missing driver or device is a DeviceError."""
        if self._ai is not None:
            return
        dev, r = self.cfg.device, self.cfg.input_range_v
        try:
            self._ai = self._new_task("zaprig-ai")
            for column, chan, field in self._inputs:
                with self._ni_errors(f"adding analog input {column} ({field} = {chan!r})"):
                    self._ai.ai_channels.add_ai_voltage_chan(
                        f"{dev}/{chan}",
                        name_to_assign_to_channel=column,
                        terminal_config=TerminalConfiguration.DIFF,
                        min_val=-r,
                        max_val=r,
                        units=VoltageUnits.VOLTS,
                    )
            self._ao = self._new_task("zaprig-ao")
            for name, chan, field, _ in self._outputs:
                with self._ni_errors(f"adding analog output {name} ({field} = {chan!r})"):
                    self._ao.ao_channels.add_ao_voltage_chan(
                        f"{dev}/{chan}",
                        name_to_assign_to_channel=name,
                        min_val=-AO_RANGE_V,
                        max_val=AO_RANGE_V,
                        units=VoltageUnits.VOLTS,
                    )
        except BaseException:
            self._clear_tasks()
            raise
        self._started = False
        self._safe = False

    def start(self, timeline: Timeline) -> None:
        """Configure the shared clock, pre-fill the outputs, start output then input."""
        ai, ao = self._ai, self._ao
        if ai is None or ao is None:
            raise DeviceError(f"DAQ {self.cfg.device}: start() before open()")
        if self._started:
            raise DeviceError(
                f"DAQ {self.cfg.device}: one timeline per open(); close() and open() to run again"
            )
        if timeline.sample_rate_hz != self.sample_rate_hz:
            raise ConfigError(
                f"the timeline is on a {timeline.sample_rate_hz} Hz clock but daq.sample_rate_hz "
                f"is {self.sample_rate_hz}: build the timeline from this rig's config"
            )
        self._started = True
        self._safe = False
        dev, rate, n = self.cfg.device, self.sample_rate_hz, self.buffer_samples
        try:
            with self._ni_errors(f"setting the {rate:g} Hz input sample clock"):
                ai.timing.cfg_samp_clk_timing(
                    rate,
                    active_edge=Edge.RISING,
                    sample_mode=AcquisitionType.CONTINUOUS,
                    samps_per_chan=n,
                )
                ai.in_stream.input_buf_size = n
            with self._ni_errors(f"clocking the outputs from /{dev}/ai/SampleClock"):
                ao.timing.cfg_samp_clk_timing(
                    rate,
                    source=f"/{dev}/ai/SampleClock",
                    active_edge=Edge.RISING,
                    sample_mode=AcquisitionType.CONTINUOUS,
                    samps_per_chan=n,
                )
                ao.out_stream.output_buf_size = n
                ao.out_stream.regen_mode = RegenerationMode.DONT_ALLOW_REGENERATION
            self._reader = AnalogMultiChannelReader(ai.in_stream)
            self._writer = AnalogMultiChannelWriter(ao.out_stream, auto_start=False)
            self._timeline = timeline
            self._samples_read = 0
            self._samples_written = 0
            with self._ni_errors("pre-filling the camera-trigger/marker/galvo/piezo output buffer"):
                self._write_ahead()
            with self._ni_errors("starting the output task (armed on the input sample clock)"):
                ao.start()
            with self._ni_errors("starting the input task (starts the shared sample clock)"):
                ai.start()
        except BaseException as e:
            try:
                self.stop()
            except DeviceError as stop_error:
                e.add_note(f"then stopping the DAQ failed too: {stop_error}")
            raise

    def read(self) -> np.ndarray:
        """The next chunk, float32 (chunk_samples, n_inputs); then top up the outputs."""
        if self._reader is None or not self._started or self._safe:
            raise DeviceError(f"DAQ {self.cfg.device}: read() while not running (call start())")
        s0 = self._samples_read
        with self._ni_errors(f"reading samples {s0}..{s0 + self.chunk_samples}"):
            got = self._reader.read_many_sample(
                self._buf, self.chunk_samples, timeout=self._read_timeout_s
            )
        if got != self.chunk_samples:
            # the driver raises on a short read with a timeout; this guards the contract anyway
            raise DeviceError(
                f"DAQ {self.cfg.device}: asked for {self.chunk_samples} samples at sample {s0}, "
                f"got {got}: the stream is no longer continuous; restart the session"
            )
        self._samples_read = s0 + got
        with self._ni_errors(f"writing the outputs ahead of sample {self._samples_read}"):
            self._write_ahead()
        out = np.ascontiguousarray(self._buf.T, dtype=np.float32)
        if self._marker_column is not None:
            # row 2 as the diode-OR wiring would have measured it
            np.maximum(out[:, 2], out[:, self._marker_column], out=out[:, 2])
            out = np.ascontiguousarray(out[:, : self._marker_column])
        return out

    def stop(self) -> None:
        """Stop both tasks, then drive every output to 0 V; every step is tried."""
        if self._ai is None or self._ao is None:
            return
        ai, ao = self._ai, self._ao
        steps: tuple[tuple[str, Callable[[], object]], ...] = (
            ("stopping the output task", ao.stop),
            ("stopping the input task", ai.stop),
            ("releasing the analog outputs", lambda: ao.control(TaskMode.TASK_UNRESERVE)),
            ("driving every analog output to 0 V", self._write_zero),
        )
        failures: list[tuple[str, DeviceError]] = []
        for action, step in steps:
            try:
                with self._ni_errors(action):
                    step()
            except DeviceError as e:
                failures.append((action, e))
        self._safe = True
        self._timeline = None
        if failures:
            first = failures[0][1]
            also = [action for action, _ in failures[1:]]
            chans = ", ".join(chan for _, chan, _, _ in self._outputs)
            raise DeviceError(
                f"{first}"
                + (f"\nThen these failed too: {'; '.join(also)}." if also else "")
                + f"\nThe analog outputs ({self.cfg.device}: {chans}) may NOT be at 0 V: "
                "check the camera trigger, volume marker, galvo and piezo before touching the rig."
            ) from first

    def close(self) -> None:
        """Stop (unless already stopped) and release both tasks."""
        try:
            if not self._safe:
                self.stop()
        finally:
            self._clear_tasks()

    # -- internals -------------------------------------------------------------------------

    def _new_task(self, name: str) -> nidaqmx.Task:
        with self._ni_errors(f"creating the NI-DAQmx task {name!r}"):
            return nidaqmx.Task(name)

    def _output_block(self, s0: int, n: int) -> np.ndarray:
        """Output samples [s0, s0 + n), one row per output channel, 0 V from end_sample on."""
        assert self._timeline is not None
        tl = self._timeline
        block = np.zeros((len(self._outputs), n), dtype=np.float64)
        live = max(0, min(n, tl.end_sample - s0))
        if live:
            for row, (_, _, _, waveform) in enumerate(self._outputs):
                block[row, :live] = waveform(tl, self.cfg, s0, live)
        return block

    def _write_ahead(self) -> None:
        """Write output samples until they run ``write_ahead_samples`` ahead of the inputs."""
        assert self._writer is not None
        n = self._samples_read + self.write_ahead_samples - self._samples_written
        if n <= 0:
            return
        block = self._output_block(self._samples_written, n)
        self._samples_written += self._writer.write_many_sample(block, timeout=_WRITE_TIMEOUT_S)

    def _write_zero(self) -> None:
        """One on-demand sample of 0 V on every output; the outputs hold it after the task ends."""
        task = nidaqmx.Task("zaprig-ao-zero")
        try:
            for name, chan, _, _ in self._outputs:
                task.ao_channels.add_ao_voltage_chan(
                    f"{self.cfg.device}/{chan}",
                    name_to_assign_to_channel=name,
                    min_val=-AO_RANGE_V,
                    max_val=AO_RANGE_V,
                    units=VoltageUnits.VOLTS,
                )
            writer = AnalogMultiChannelWriter(task.out_stream, auto_start=True)
            writer.write_one_sample(np.zeros(len(self._outputs), dtype=np.float64))
        finally:
            task.close()

    def _clear_tasks(self) -> None:
        """Release both tasks; clearing never leaves a handle behind, even if one fails."""
        tasks = [t for t in (self._ao, self._ai) if t is not None]
        self._ai = self._ao = None
        self._reader = self._writer = None
        self._timeline = None
        self._safe = True
        failures: list[DeviceError] = []
        for task in tasks:
            try:
                with self._ni_errors("releasing an NI-DAQmx task"):
                    task.close()
            except DeviceError as e:
                failures.append(e)
        if failures:
            raise failures[0]

    @contextmanager
    def _ni_errors(self, action: str) -> Iterator[None]:
        """Turn nidaqmx's exceptions into DeviceErrors that say what to do."""
        try:
            yield
        except NiError as e:
            raise DeviceError(self._explain(e, action)) from e

    def _explain(self, e: NiError, action: str) -> str:
        dev = self.cfg.device
        if isinstance(e, DaqNotFoundError | DaqNotSupportedError):
            return (
                f"DAQ {dev!r}: the NI-DAQmx driver is not installed on this computer "
                f"({_first_paragraph(str(e))}). Install NI-DAQmx from ni.com (on Linux: "
                "`python -m nidaqmx installdriver`), check that the board is listed in NI MAX "
                "and that the rig config field daq.device names it; or run the simulated rig "
                "(daq.backend = 'sim')."
            )
        if not isinstance(e, DaqError):
            return f"DAQ {dev!r}: {action} failed: {_first_paragraph(str(e))}"
        code = e.error_code
        said = f"NI-DAQmx error {code}: {_first_paragraph(str(e))}"
        if code in _ABSENT_CODES:
            return (
                f"DAQ device {dev!r} not found while {action}: check the device's name in NI MAX "
                f"and set the rig config field daq.device to it. ({said})"
            )
        if code == DAQmxErrors.PHYSICAL_CHAN_DOES_NOT_EXIST:
            return (
                f"DAQ {dev!r}: {action}: that channel does not exist on the device. Check the "
                f"channel fields of the rig config's [daq] section against the device's pinout "
                f"in NI MAX. ({said})"
            )
        if code in _OVERFLOW_CODES:
            return (
                f"DAQ {dev!r}: input buffer overflow while {action}: the program did not read "
                f"for longer than the {self.buffer_samples / self.sample_rate_hz:g} s driver "
                "buffer, so samples were lost and the recording is no longer continuous. "
                "Close other programs, or raise daq.buffer_seconds, and start a new session. "
                f"({said})"
            )
        if code in _UNDERFLOW_CODES:
            return (
                f"DAQ {dev!r}: the camera-trigger/marker/galvo/piezo outputs ran out of samples while "
                f"{action}: the program stalled for longer than the "
                f"{self.write_ahead_samples / self.sample_rate_hz:g} s written ahead, so the "
                "board stopped the outputs rather than repeat old triggers. Close other "
                f"programs, or raise daq.buffer_seconds, and start a new session. ({said})"
            )
        if code in _LOST_CODES:
            return (
                f"DAQ device {dev!r} stopped responding while {action}: is it unplugged, "
                "powered off or reset from NI MAX? Reconnect it, check it in NI MAX and start "
                f"a new session. ({said})"
            )
        if code == DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE:
            return (
                f"DAQ {dev!r}: no samples arrived within {self._read_timeout_s:g} s while "
                f"{action}: the sample clock is not running. Check the device in NI MAX. "
                f"({said})"
            )
        return f"DAQ {dev!r}: {action} failed. ({said})"
