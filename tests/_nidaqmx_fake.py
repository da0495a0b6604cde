"""A fake NI-DAQmx driver for tests: nidaqmx's interpreter layer, replaced.

Everything in ``nidaqmx`` above the driver (``Task``, channel collections, timing,
streams, stream readers/writers, error classes) runs for real; it reaches the C
driver only through an *interpreter* returned by ``nidaqmx.utils._select_interpreter``.
nidaqmx's own unit tests patch that function; :func:`install` does the same with a
:class:`FakeInterpreter` that models one multifunction board closely enough to catch
wrong use:

* physical channels must exist (``Dev1/ai0``..``ai15``, ``Dev1/ao0``..``ao3``); in
  differential mode ``ai8``..``ai15`` are the negative inputs and cannot be used;
  ranges are limited to ±10 V;
* the input task's sample clock ticks only while it runs, in virtual time: a read
  of ``n`` samples advances the clock as far as needed (no sleeping), and
  :meth:`FakeInterpreter.elapse` lets the clock run while nobody reads (a stall);
  samples older than the input buffer are gone (error -200279);
* an output task clocked by ``/Dev1/ai/SampleClock`` emits its sample ``j`` at input
  tick ``start + j``; without regeneration it needs data before it starts (-200462),
  a write may not overfill its buffer (-200292) and running out of data stops it
  (-200290); written values must be float64, C-contiguous, of the right shape and
  inside the channel range (-200561);
* starting a task takes ``start_latency_ticks`` of a running clock, so an output
  task started after the input task is that many samples late;
* an input channel can be wired to an output channel (loop-back) or served a known
  signal; every call reaching the layer is recorded with its arguments.

Methods the fake does not model raise :class:`UnsupportedByFake`, so a test fails
instead of passing on behaviour nobody checked.
"""

from __future__ import annotations

import ctypes
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from nidaqmx import utils as nidaqmx_utils
from nidaqmx._base_interpreter import BaseInterpreter
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    FillMode,
    RegenerationMode,
    TaskMode,
    TerminalConfiguration,
    VoltageUnits,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.errors import DaqError, DaqReadError, DaqWriteError

__all__ = ["Call", "FakeInterpreter", "UnsupportedByFake", "install", "signature_mismatches"]

Signal = Callable[[np.ndarray], np.ndarray]

_TASK_NAME = 0x1276
_READ_NUM_CHANS = 0x217B
_WRITE_NUM_CHANS = 0x217E
_INPUT_BUF_SIZE = 0x186C
_OUTPUT_BUF_SIZE = 0x186D
_REGEN_MODE = 0x1453
_DEVICE_RANGE_V = 10.0
_PHYS = re.compile(r"^(?P<dev>[A-Za-z][\w-]*)/(?P<kind>ai|ao)(?P<idx>\d+)$")


class UnsupportedByFake(AssertionError):
    """The code under test used the driver in a way this fake does not model."""


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class _Chan:
    physical: str
    name: str
    kind: str
    terminal_config: int | None
    min_val: float
    max_val: float


@dataclass
class _Task:
    handle: int
    name: str
    chans: list[_Chan] = field(default_factory=list)
    timing: dict[str, Any] | None = None
    input_buf: int | None = None
    output_buf: int | None = None
    regen: int = RegenerationMode.ALLOW_REGENERATION.value
    running: bool = False
    # analog input: next sample to read
    read_pos: int = 0
    # analog output (hardware timed): samples written, and the input tick of sample 0
    data: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    written: int = 0
    start_tick: int | None = None

    @property
    def kind(self) -> str:
        return self.chans[0].kind if self.chans else ""

    @property
    def clock_source(self) -> str:
        return "" if self.timing is None else str(self.timing["source"])


class FakeInterpreter:
    """One simulated board per name in ``devices``; see the module docstring."""

    def __init__(
        self,
        devices: tuple[str, ...] = ("Dev1",),
        signals: dict[str, Signal] | None = None,
        wires: dict[str, str | tuple[str, ...]] | None = None,
        n_ai: int = 16,
        n_ao: int = 4,
        start_latency_ticks: int = 12,
    ) -> None:
        self.devices = set(devices)
        #: Starting a task takes a few ms of driver time, during which a running clock ticks on.
        self.start_latency_ticks = start_latency_ticks
        self.unplugged: set[str] = set()
        self.n_ai, self.n_ao = n_ai, n_ao
        #: input physical channel -> function of the sample index (volts)
        self.signals: dict[str, Signal] = dict(signals or {})
        #: input physical channel -> output physical channel(s) wired to it; several outputs
        #: on one input are diode-ORed (the input sees the highest of them)
        self.wires: dict[str, str | tuple[str, ...]] = dict(wires or {})
        self.calls: list[Call] = []
        #: every write: (task name, float64 copy of the samples, shape (channels, n))
        self.writes: list[tuple[str, np.ndarray]] = []
        self.tick = 0  # input sample-clock ticks since the input task started
        self._tasks: dict[int, _Task] = {}
        self._next_handle = 1
        self._unnamed = 0
        self._last_chan = ""
        self._static: dict[str, float] = {}  # output level when no timed task drives it

    # -- what tests look at -----------------------------------------------------------------

    def calls_named(self, name: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.name == name]

    def call_names(self) -> list[str]:
        return [c.name for c in self.calls]

    def task_names(self) -> list[str]:
        return [t.name for t in self._tasks.values()]

    def written(self, task_name: str) -> np.ndarray:
        """All samples written to ``task_name``, concatenated: (channels, n)."""
        blocks = [
            np.atleast_2d(d.reshape(d.shape[0], -1)) for n, d in self.writes if n == task_name
        ]
        return np.concatenate(blocks, axis=1)

    def output_level(self, physical: str) -> float:
        """The voltage an output channel holds now."""
        return float(self._ao_values(physical, np.array([self.tick - 1]))[0])

    def elapse(self, ticks: int) -> None:
        """Let the sample clock run ``ticks`` samples while the program does not read."""
        self._advance(ticks)

    def unplug(self, device: str) -> None:
        self.unplugged.add(device)

    # -- task life cycle --------------------------------------------------------------------

    def create_task(self, session_name: str) -> tuple[int, bool]:
        self._record("create_task", session_name=session_name)
        if not session_name:
            session_name = f"_unnamedTask<{self._unnamed}>"
            self._unnamed += 1
        if session_name in self.task_names():
            raise DaqError(f"Duplicate task name: {session_name}", DAQmxErrors.DUPLICATE_TASK)
        h = self._next_handle
        self._next_handle += 1
        self._tasks[h] = _Task(h, session_name)
        return h, True

    def hash_task_handle(self, task_handle: int) -> int:
        return hash(task_handle)

    def get_task_attribute_string(self, task: int, attribute: int) -> str:
        t = self._task(task)
        if attribute != _TASK_NAME:
            raise UnsupportedByFake(f"task attribute {attribute:#x}")
        return t.name

    def clear_task(self, task: int) -> None:
        self._record("clear_task", task=task)
        t = self._task(task)
        if t.running:
            self._halt(t)
        del self._tasks[task]

    def start_task(self, task: int) -> None:
        self._record("start_task", task=task)
        t = self._task(task)
        self._check_present(t)
        if t.running:
            return
        if not t.chans:
            raise DaqError("Task contains no channels.", DAQmxErrors.INVALID_TASK)
        self._check_reservations(t)
        if t.timing is None:
            raise UnsupportedByFake(f"starting task {t.name!r} without sample-clock timing")
        if t.kind == "ai":
            others = [o for o in self._tasks.values() if o.running and o.kind == "ai"]
            if others:
                raise DaqError(
                    "The specified resource is reserved.", DAQmxErrors.PAL_RESOURCE_RESERVED
                )
            t.running = True
            t.read_pos = 0
            self.tick = 0
            for o in self._tasks.values():
                if o.running and o.kind == "ao":
                    o.start_tick = 0  # armed outputs start with the clock
        else:
            if t.regen == RegenerationMode.DONT_ALLOW_REGENERATION.value and t.written == 0:
                raise DaqError(
                    "Generation cannot be started because the output buffer is empty.",
                    DAQmxErrors.OUTPUT_BUFFER_EMPTY,
                )
            ai_running = any(o.running and o.kind == "ai" for o in self._tasks.values())
            t.running = True
            if ai_running:
                # started after the input task: the clock ran on while the driver started it
                self._advance(self.start_latency_ticks)
                t.start_tick = self.tick
            else:
                t.start_tick = None  # armed: starts with the input task's first tick

    def stop_task(self, task: int) -> None:
        self._record("stop_task", task=task)
        t = self._task(task)
        self._check_present(t)
        if t.running:
            self._halt(t)

    def task_control(self, task: int, action: int) -> None:
        self._record("task_control", task=task, action=TaskMode(action))
        t = self._task(task)
        self._check_present(t)
        if action == TaskMode.TASK_UNRESERVE.value:
            if t.running:
                raise DaqError(
                    "Task is running.", DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING
                )
            return  # the fake reserves only while running
        if action == TaskMode.TASK_ABORT.value:
            if t.running:
                self._halt(t)
            return
        raise UnsupportedByFake(f"task_control {TaskMode(action)!r}")

    # -- channels ---------------------------------------------------------------------------

    def create_ai_voltage_chan(
        self,
        task: int,
        physical_channel: str,
        name_to_assign_to_channel: str,
        terminal_config: int,
        min_val: float,
        max_val: float,
        units: int,
        custom_scale_name: str,
    ) -> None:
        self._record(
            "create_ai_voltage_chan",
            task=task,
            physical_channel=physical_channel,
            name_to_assign_to_channel=name_to_assign_to_channel,
            terminal_config=TerminalConfiguration(terminal_config),
            min_val=min_val,
            max_val=max_val,
            units=VoltageUnits(units),
            custom_scale_name=custom_scale_name,
        )
        t = self._task(task)
        idx = self._check_physical(physical_channel, "ai")
        if terminal_config == TerminalConfiguration.DIFF.value and idx >= self.n_ai // 2:
            raise DaqError(
                f"Requested value is not a supported value for this property.\n"
                f"Property: AI.TermCfg\nChannel: {physical_channel} (in differential mode "
                f"ai{idx} is the negative input of ai{idx - self.n_ai // 2})",
                DAQmxErrors.INVALID_ATTRIBUTE_VALUE,
            )
        self._add_chan(t, "ai", physical_channel, name_to_assign_to_channel, min_val, max_val)
        t.chans[-1].terminal_config = terminal_config
        self._check_units(units, custom_scale_name)

    def create_ao_voltage_chan(
        self,
        task: int,
        physical_channel: str,
        name_to_assign_to_channel: str,
        min_val: float,
        max_val: float,
        units: int,
        custom_scale_name: str,
    ) -> None:
        self._record(
            "create_ao_voltage_chan",
            task=task,
            physical_channel=physical_channel,
            name_to_assign_to_channel=name_to_assign_to_channel,
            min_val=min_val,
            max_val=max_val,
            units=VoltageUnits(units),
            custom_scale_name=custom_scale_name,
        )
        t = self._task(task)
        self._check_physical(physical_channel, "ao")
        self._add_chan(t, "ao", physical_channel, name_to_assign_to_channel, min_val, max_val)
        self._check_units(units, custom_scale_name)

    def internal_get_last_created_chan(self) -> str:
        return self._last_chan

    def get_read_attribute_uint32(self, task: int, attribute: int) -> int:
        t = self._task(task)
        if attribute != _READ_NUM_CHANS:
            raise UnsupportedByFake(f"read attribute {attribute:#x}")
        return sum(c.kind == "ai" for c in t.chans)

    def get_write_attribute_uint32(self, task: int, attribute: int) -> int:
        t = self._task(task)
        if attribute != _WRITE_NUM_CHANS:
            raise UnsupportedByFake(f"write attribute {attribute:#x}")
        return sum(c.kind == "ao" for c in t.chans)

    # -- timing and buffers -----------------------------------------------------------------

    def cfg_samp_clk_timing(
        self,
        task: int,
        rate: float,
        source: str,
        active_edge: int,
        sample_mode: int,
        samps_per_chan: int,
    ) -> None:
        self._record(
            "cfg_samp_clk_timing",
            task=task,
            rate=rate,
            source=source,
            active_edge=Edge(active_edge),
            sample_mode=AcquisitionType(sample_mode),
            samps_per_chan=samps_per_chan,
        )
        t = self._task(task)
        self._not_running(t)
        if not 0 < rate <= 1e6:
            raise DaqError(
                f"Sample rate {rate} is out of range.", DAQmxErrors.INVALID_ATTRIBUTE_VALUE
            )
        if samps_per_chan <= 0:
            raise DaqError("samps_per_chan must be positive", DAQmxErrors.INVALID_ATTRIBUTE_VALUE)
        if source not in ("", "OnboardClock"):
            if t.kind != "ao":
                raise UnsupportedByFake(f"input sample clock source {source!r}")
            dev = t.chans[0].physical.split("/")[0]
            if source != f"/{dev}/ai/SampleClock":
                raise DaqError(
                    f"Source terminal to be routed could not be found on the device.\n"
                    f"Source Terminal: {source}",
                    DAQmxErrors.INVALID_ROUTING_SOURCE_TERMINAL_NAME_ROUTING,
                )
        elif t.kind == "ao":
            raise UnsupportedByFake("an output task on its own onboard clock")
        t.timing = {
            "rate": rate,
            "source": source,
            "active_edge": active_edge,
            "sample_mode": sample_mode,
            "samps_per_chan": samps_per_chan,
        }

    def set_buffer_attribute_uint32(self, task: int, attribute: int, value: int) -> None:
        self._record("set_buffer_attribute_uint32", task=task, attribute=attribute, value=value)
        t = self._task(task)
        self._not_running(t)
        if attribute == _INPUT_BUF_SIZE and t.kind == "ai":
            t.input_buf = value
        elif attribute == _OUTPUT_BUF_SIZE and t.kind == "ao":
            t.output_buf = value
        else:
            raise DaqError(
                f"Buffer attribute {attribute:#x} does not apply to this task.",
                DAQmxErrors.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT,
            )

    def set_write_attribute_int32(self, task: int, attribute: int, value: int) -> None:
        self._record("set_write_attribute_int32", task=task, attribute=attribute, value=value)
        t = self._task(task)
        self._not_running(t)
        if attribute != _REGEN_MODE:
            raise UnsupportedByFake(f"write attribute {attribute:#x}")
        if t.kind != "ao":
            raise DaqError(
                "Regeneration applies to output tasks only.",
                DAQmxErrors.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT,
            )
        t.regen = RegenerationMode(value).value

    # -- data -------------------------------------------------------------------------------

    def read_analog_f64(
        self,
        task: int,
        num_samps_per_chan: int,
        timeout: float,
        fill_mode: int,
        read_array: np.ndarray,
    ) -> tuple[np.ndarray, int]:
        self._record(
            "read_analog_f64",
            task=task,
            num_samps_per_chan=num_samps_per_chan,
            timeout=timeout,
            fill_mode=FillMode(fill_mode),
        )
        t = self._task(task)
        self._check_present(t, read=True)
        if not t.running or t.kind != "ai":
            raise UnsupportedByFake("reading from a task that is not a running input task")
        if fill_mode != FillMode.GROUP_BY_CHANNEL.value:
            raise UnsupportedByFake("fill mode other than GROUP_BY_CHANNEL")
        _check_ndpointer(read_array, writeable=True)
        n, nchan = num_samps_per_chan, len(t.chans)
        if n <= 0 or read_array.size < n * nchan:
            raise DaqReadError("The read array is too small.", DAQmxErrors.READ_BUFFER_TOO_SMALL, 0)
        if self.tick - t.read_pos > self._input_buf(t):
            raise DaqReadError(
                "Attempted to read samples that are no longer available. The requested sample "
                "was previously available, but has since been overwritten.",
                DAQmxErrors.SAMPLES_NO_LONGER_AVAILABLE,
                0,
            )
        if t.read_pos + n > self.tick:
            self._advance(t.read_pos + n - self.tick)  # the read waits; in virtual time
        ks = np.arange(t.read_pos, t.read_pos + n, dtype=np.int64)
        out = read_array.reshape(-1)
        for i, c in enumerate(t.chans):
            out[i * n : (i + 1) * n] = self._ai_values(c.physical, ks)
        t.read_pos += n
        return read_array, n

    def write_analog_f64(
        self,
        task: int,
        num_samps_per_chan: int,
        auto_start: bool,
        timeout: float,
        data_layout: int,
        write_array: np.ndarray,
    ) -> int:
        _check_ndpointer(write_array, writeable=False)
        copy = np.array(write_array, dtype=np.float64).reshape(-1, num_samps_per_chan)
        self._record(
            "write_analog_f64",
            task=task,
            num_samps_per_chan=num_samps_per_chan,
            auto_start=auto_start,
            timeout=timeout,
            data_layout=FillMode(data_layout),
        )
        t = self._task(task)
        self._check_present(t, written=0)
        n, nchan = num_samps_per_chan, len(t.chans)
        if t.kind != "ao":
            raise DaqWriteError(
                "No output channels in task.", DAQmxErrors.WRITE_NO_OUTPUT_CHANS_IN_TASK, 0
            )
        if data_layout != FillMode.GROUP_BY_CHANNEL.value:
            raise UnsupportedByFake("data layout other than GROUP_BY_CHANNEL")
        if n <= 0 or write_array.size != n * nchan:
            raise DaqWriteError(
                f"Write array holds {write_array.size} values, not {nchan} channels x {n}.",
                DAQmxErrors.WRITE_NUM_CHANS_MISMATCH,
                0,
            )
        for i, c in enumerate(t.chans):
            row = copy[i]
            if not np.all(np.isfinite(row)) or row.min() < c.min_val or row.max() > c.max_val:
                raise DaqWriteError(
                    f"Invalid AO data write: values outside [{c.min_val}, {c.max_val}] V "
                    f"on {c.physical}.",
                    DAQmxErrors.INVALID_AO_DATA_WRITE,
                    0,
                )
        if t.timing is None:
            self._write_on_demand(t, copy, auto_start)
        else:
            self._write_buffered(t, copy, auto_start)
        self.writes.append((t.name, copy))
        return n

    # -- anything else is not modelled --------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if hasattr(BaseInterpreter, name):

            def unsupported(*args: Any, **kwargs: Any) -> Any:
                raise UnsupportedByFake(f"interpreter method {name}{args!r} is not modelled")

            return unsupported
        raise AttributeError(name)

    # -- model --------------------------------------------------------------------------------

    def _record(self, name: str, **args: Any) -> None:
        self.calls.append(Call(name, args))

    def _task(self, handle: int) -> _Task:
        t = self._tasks.get(handle)
        if t is None:
            raise DaqError("Task specified is invalid or does not exist.", DAQmxErrors.INVALID_TASK)
        return t

    def _not_running(self, t: _Task) -> None:
        if t.running:
            raise DaqError(
                "The operation cannot be performed while the task is running.",
                DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING,
            )

    def _check_present(self, t: _Task, read: bool = False, written: int | None = None) -> None:
        if any(c.physical.split("/")[0] in self.unplugged for c in t.chans):
            msg = "Device cannot be accessed. Possible causes: the device is no longer present."
            code = DAQmxErrors.DEV_CANNOT_BE_ACCESSED
            if read:
                raise DaqReadError(msg, code, 0)
            if written is not None:
                raise DaqWriteError(msg, code, written)
            raise DaqError(msg, code)

    def _check_physical(self, physical: str, kind: str) -> int:
        m = _PHYS.match(physical)
        dev = physical.split("/")[0]
        if dev not in self.devices:
            raise DaqError(
                f"Device identifier is invalid.\nDevice Specified: {dev}",
                DAQmxErrors.INVALID_DEVICE_ID,
            )
        if dev in self.unplugged:
            raise DaqError("Device cannot be accessed.", DAQmxErrors.DEV_CANNOT_BE_ACCESSED)
        n = self.n_ai if kind == "ai" else self.n_ao
        if m is None or m["kind"] != kind or int(m["idx"]) >= n:
            raise DaqError(
                f"Physical channel specified does not exist on this device.\n"
                f"Physical Channel Name: {physical}",
                DAQmxErrors.PHYSICAL_CHAN_DOES_NOT_EXIST,
            )
        return int(m["idx"])

    def _add_chan(
        self, t: _Task, kind: str, physical: str, name: str, min_val: float, max_val: float
    ) -> None:
        self._not_running(t)
        if t.chans and t.kind != kind:
            raise UnsupportedByFake("input and output channels in one task")
        if any(c.physical == physical for c in t.chans) or any(c.name == name for c in t.chans):
            raise DaqError(f"Channel already in task: {physical}", DAQmxErrors.CHAN_ALREADY_IN_TASK)
        if not -_DEVICE_RANGE_V <= min_val < max_val <= _DEVICE_RANGE_V:
            raise DaqError(
                f"Requested range [{min_val}, {max_val}] V is not supported by {physical}.",
                DAQmxErrors.INVALID_ATTRIBUTE_VALUE,
            )
        t.chans.append(_Chan(physical, name or physical, kind, None, min_val, max_val))
        self._last_chan = name or physical

    @staticmethod
    def _check_units(units: int, custom_scale_name: str) -> None:
        if units != VoltageUnits.VOLTS.value or custom_scale_name:
            raise UnsupportedByFake("units other than volts")

    def _check_reservations(self, t: _Task) -> None:
        mine = {c.physical for c in t.chans}
        for o in self._tasks.values():
            if o is not t and o.running and mine & {c.physical for c in o.chans}:
                raise DaqError(
                    f"The specified resource is reserved by task {o.name!r}.",
                    DAQmxErrors.PAL_RESOURCE_RESERVED,
                )

    def _input_buf(self, t: _Task) -> int:
        if t.input_buf is not None:
            return t.input_buf
        # DAQmx's default for continuous input, when not set, by sample rate
        assert t.timing is not None
        rate, spc = t.timing["rate"], t.timing["samps_per_chan"]
        default = 1_000 if rate <= 100 else 10_000 if rate <= 10_000 else 100_000
        return max(spc, default)

    def _advance(self, ticks: int) -> None:
        if not any(o.running and o.kind == "ai" for o in self._tasks.values()):
            return  # no input task runs: the shared sample clock does not tick
        self.tick += ticks

    def _generated(self, t: _Task) -> int:
        return 0 if t.start_tick is None else max(0, self.tick - t.start_tick)

    def _underflowed(self, t: _Task) -> bool:
        return (
            t.running
            and t.regen == RegenerationMode.DONT_ALLOW_REGENERATION.value
            and self._generated(t) > t.written
        )

    def _write_buffered(self, t: _Task, data: np.ndarray, auto_start: bool) -> None:
        n = data.shape[1]
        if self._underflowed(t):
            raise DaqWriteError(
                "The generation has stopped to prevent the regeneration of old samples. Your "
                "application was unable to write samples to the background buffer fast enough "
                "to prevent old samples from being regenerated.",
                DAQmxErrors.GEN_STOPPED_TO_PREVENT_REGEN_OF_OLD_SAMPLES,
                0,
            )
        buf = t.output_buf if t.output_buf is not None else t.timing["samps_per_chan"]  # type: ignore[index]
        if t.written - self._generated(t) + n > buf:
            # the clock does not advance while the program is inside a write
            raise DaqWriteError(
                "Some or all of the samples to write could not be written to the buffer yet.",
                DAQmxErrors.SAMPLES_CAN_NOT_YET_BE_WRITTEN,
                0,
            )
        if t.data.shape[1] < t.written + n:
            grown = np.zeros((data.shape[0], max(2 * t.data.shape[1], t.written + n)))
            if t.written:
                grown[:, : t.written] = t.data[:, : t.written]
            t.data = grown
        t.data[:, t.written : t.written + n] = data
        t.written += n
        if auto_start and not t.running:
            self.start_task(t.handle)

    def _write_on_demand(self, t: _Task, data: np.ndarray, auto_start: bool) -> None:
        if not (auto_start or t.running):
            raise UnsupportedByFake("an on-demand write without auto_start to a stopped task")
        self._check_reservations(t)
        for i, c in enumerate(t.chans):
            self._static[c.physical] = float(data[i, -1])

    def _halt(self, t: _Task) -> None:
        """Stop a task; its outputs hold the last value they generated."""
        if t.kind == "ao" and t.timing is not None:
            for c in t.chans:
                self._static[c.physical] = self.output_level(c.physical)
        t.running = False
        t.start_tick = None

    def _driver(self, physical: str) -> tuple[_Task, int] | None:
        for t in self._tasks.values():
            if t.running and t.kind == "ao" and t.timing is not None:
                for i, c in enumerate(t.chans):
                    if c.physical == physical:
                        return t, i
        return None

    def _ao_values(self, physical: str, ks: np.ndarray) -> np.ndarray:
        rest = self._static.get(physical, 0.0)
        drv = self._driver(physical)
        if drv is None or drv[0].start_tick is None or drv[0].written == 0:
            return np.full(ks.shape, rest)
        t, i = drv
        j = ks - t.start_tick
        if t.regen == RegenerationMode.ALLOW_REGENERATION.value:
            jj = np.where(j >= 0, j % t.written, 0)
        else:
            jj = np.clip(j, 0, t.written - 1)  # after running out it holds the last sample
        return np.where(j >= 0, t.data[i, jj], rest)

    def _ai_values(self, physical: str, ks: np.ndarray) -> np.ndarray:
        if physical in self.wires:
            wired = self.wires[physical]
            outs = (wired,) if isinstance(wired, str) else wired
            return np.max([self._ao_values(o, ks) for o in outs], axis=0)
        if physical in self.signals:
            return np.asarray(self.signals[physical](ks), dtype=np.float64)
        return np.zeros(ks.shape)


def _check_ndpointer(a: object, writeable: bool) -> None:
    """What ctypes' ndpointer(float64, flags=C[,W]) in the real library would reject."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        raise ctypes.ArgumentError(f"array must be float64, got {getattr(a, 'dtype', type(a))}")
    if not a.flags.c_contiguous or (writeable and not a.flags.writeable):
        raise ctypes.ArgumentError(
            "array must be C-contiguous" + (" and writeable" if writeable else "")
        )


def signature_mismatches() -> list[str]:
    """Methods of the fake whose parameters differ from BaseInterpreter's (should be none)."""
    bad = []
    for name, fn in inspect.getmembers(FakeInterpreter, inspect.isfunction):
        base = getattr(BaseInterpreter, name, None)
        if name.startswith("_") or base is None:
            continue
        if list(inspect.signature(fn).parameters) != list(inspect.signature(base).parameters):
            bad.append(name)
    return bad


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeInterpreter) -> FakeInterpreter:
    """Make every nidaqmx object created from now on (for this test) talk to ``fake``.

    This is the seam nidaqmx's own unit tests patch: ``nidaqmx.utils._select_interpreter``.
    """
    monkeypatch.setattr(nidaqmx_utils, "_select_interpreter", lambda *a, **k: fake)
    return fake
