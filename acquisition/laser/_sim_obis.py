"""A simulated Coherent OBIS laser on a real pseudo-terminal, for tests and the simulated rig.

:class:`SimulatedObis` opens a pty pair (``os.openpty``): a thread reads the
master side and answers the OBIS command set, and :attr:`SimulatedObis.port`
is the slave device path, which any serial program (pyserial, a terminal)
opens like a USB laser. It tracks emission and power, keeps a history of every
state change (so a test can assert the laser went off, and when), and can
simulate faults (:meth:`inject_fault`) and a pulled cable (:meth:`disconnect`).

It behaves like the real laser where that matters for safety: emission stays
as last commanded when the host program goes away (the simulator holds the
line open itself, so a host closing or dying is invisible to it, as it is to an
OBIS); a fault stops emission; and a pulled cable leaves the laser emitting,
because the laser has its own power supply. It starts with handshaking off, so
the driver's switch to handshaking is exercised.

:class:`SimulatedObisLaser` is the simulated rig's laser: the real
:class:`~acquisition.laser._obis.ObisLaser` driver talking to a
:class:`SimulatedObis` it starts on :meth:`open` and stops on :meth:`close`.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acquisition.laser._obis import ObisLaser

if TYPE_CHECKING:
    from rig.core.config import LaserConfig

__all__ = ["SimulatedObis", "SimulatedObisLaser", "StateChange"]

#: SCPI long keywords -> the short forms the handlers are keyed by.
_SHORT = {
    "SOURCE": "SOUR",
    "SYSTEM": "SYST",
    "STATE": "STAT",
    "STATUS": "STAT",
    "INFORMATION": "INF",
    "MODEL": "MOD",
    "POWER": "POW",
    "LEVEL": "LEV",
    "IMMEDIATE": "IMM",
    "AMPLITUDE": "AMPL",
    "FAULT": "FAUL",
    "COMMUNICATE": "COMM",
    "HANDSHAKING": "HAND",
    "PROMPT": "PROM",
    "INTERNAL": "INT",
    "LIMIT": "LIM",
    "ERROR": "ERR",
    "CLEAR": "CLE",
}

_STATUS_FAULT, _STATUS_EMISSION, _STATUS_READY = 0x1, 0x2, 0x4


def _normalize(header: str) -> str:
    """``source:am:state?`` -> ``SOUR:AM:STAT?``."""
    query = header.endswith("?")
    parts = [p for p in header.rstrip("?").upper().split(":") if p]
    return ":".join(_SHORT.get(p, p) for p in parts) + ("?" if query else "")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of the simulated laser's state."""

    time: float  # time.monotonic()
    what: str  # "emission", "power_w", "faults", "handshake", "link"
    value: Any
    cause: str = "command"


class SimulatedObis:
    """An OBIS laser on a pseudo-terminal; use as a context manager or call start/close."""

    def __init__(
        self,
        *,
        wavelength_nm: int = 488,
        max_power_mw: float = 100.0,
        handshake: bool = False,
        serial_number: str = "SIM-0001",
        reply_delay_s: float = 0.0,
    ) -> None:
        self.wavelength_nm = wavelength_nm
        #: A slow device: every answer comes this late (a busy or failing controller).
        self.reply_delay_s = reply_delay_s
        self.max_power_w = max_power_mw / 1000.0
        self.serial_number = serial_number
        self.emission = False
        self.power_setpoint_w = 0.0
        self.fault_code = 0
        self.handshake = handshake
        self.prompt = False
        self.mode = "CWP"
        self.history: list[StateChange] = []
        #: Every command line received, as sent.
        self.commands: list[str] = []
        self._cond = threading.Condition()
        self._master: int | None = None
        self._slave: int | None = None
        self._port = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = False

    # -------------------------------------------------------------- lifecycle
    def start(self) -> SimulatedObis:
        master, slave = os.openpty()
        # Raw before any host opens it: no echo, no CR/LF translation.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        # Holding the slave end open ourselves keeps the line up when a host closes
        # or dies, as a real OBIS does not notice its host leaving either.
        self._port = os.ttyname(slave)
        self._stop.clear()
        self.connected = True
        self._thread = threading.Thread(target=self._serve, name="sim-obis", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> str:
        """The device path a host opens, e.g. ``/dev/pts/3``."""
        if not self._port:
            raise RuntimeError("SimulatedObis.start() has not been called")
        return self._port

    def close(self, cause: str = "closed") -> None:
        """Stop serving and release the pty (the host sees a hung-up line)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.connected:
            self.connected = False
            self._record("link", "disconnected", cause)

    def __enter__(self) -> SimulatedObis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- fault injection
    def disconnect(self) -> None:
        """Pull the cable: the host's port goes dead; the laser keeps emitting as it was."""
        self.close("cable pulled")

    def inject_fault(self, bits: int) -> None:
        """Raise fault bits (see ``FAULT_BITS``); like the real laser, a fault stops emission."""
        with self._cond:
            self.fault_code |= bits
            self._record("faults", self.fault_code, "fault")
            if self.emission:
                self.emission = False
                self._record("emission", False, "fault")

    def clear_faults(self) -> None:
        with self._cond:
            self.fault_code = 0
            self._record("faults", 0, "cleared")

    def wait_for(self, predicate: Callable[[SimulatedObis], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (it is re-checked on every command and change)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def emission_changes(self) -> list[tuple[bool, str]]:
        """(on, cause) for each change of emission, in order."""
        with self._cond:
            return [(bool(c.value), c.cause) for c in self.history if c.what == "emission"]

    # ----------------------------------------------------------------- serving
    def _record(self, what: str, value: Any, cause: str = "command") -> None:
        with self._cond:
            self.history.append(StateChange(time.monotonic(), what, value, cause))
            self._cond.notify_all()

    def _serve(self) -> None:
        master = self._master
        assert master is not None
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                break  # closed under us
            if not data:
                continue
            pending += data
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                line = raw.decode("ascii", "replace").strip()
                if line:
                    self._reply(master, self._handle(line))

    def _reply(self, master: int, lines: list[str]) -> None:
        if self.reply_delay_s > 0:
            self._stop.wait(self.reply_delay_s)
        out = "".join(f"{line}\r\n" for line in lines)
        if self.prompt:
            out += "OBIS>"
        try:
            os.write(master, out.encode("ascii"))
        except OSError:
            self._stop.set()

    def _handle(self, line: str) -> list[str]:
        with self._cond:
            self.commands.append(line)
            self._cond.notify_all()
        header, _, arg = line.partition(" ")
        cmd = _normalize(header)
        arg = arg.strip()
        try:
            with self._cond:  # state is also changed by inject_fault() from other threads
                reply = self._execute(cmd, arg)
        except _Refused as e:
            return [f"ERR-{e.code}"]
        ok = ["OK"] if self.handshake else []
        return ([reply] if reply is not None else []) + ok

    def _execute(self, cmd: str, arg: str) -> str | None:
        on_off = arg.upper()
        if cmd == "*IDN?":
            return (
                f"Coherent, Inc - OBIS {self.wavelength_nm}nm "
                f"{self.max_power_w * 1000:g}mW LX - {self.serial_number} - zaprig simulator"
            )
        if cmd == "SYST:INF:MOD?":
            return f"OBIS {self.wavelength_nm}nm {self.max_power_w * 1000:g}mW LX (simulated)"
        if cmd == "SYST:INF:SNUM?":
            return self.serial_number
        if cmd == "SYST:COMM:HAND":
            self.handshake = self._on_off(on_off)
            self._record("handshake", self.handshake)
            return None
        if cmd == "SYST:COMM:HAND?":
            return "ON" if self.handshake else "OFF"
        if cmd == "SYST:COMM:PROM":
            self.prompt = self._on_off(on_off)
            return None
        if cmd == "SOUR:AM:INT":
            if on_off not in ("CWP", "CWC"):
                raise _Refused(220)
            self.mode = on_off
            return None
        if cmd == "SOUR:AM:SOUR?":
            return self.mode
        if cmd == "SOUR:POW:LIM:HIGH?":
            return f"{self.max_power_w:.5f}"
        if cmd == "SOUR:POW:LIM:LOW?":
            return "0.00000"
        if cmd == "SOUR:POW:LEV:IMM:AMPL":
            try:
                watts = float(arg)
            except ValueError:
                raise _Refused(220) from None
            if not 0.0 <= watts <= self.max_power_w:
                raise _Refused(220)
            self.power_setpoint_w = watts
            self._record("power_w", watts)
            return None
        if cmd in ("SOUR:POW:LEV:IMM:AMPL?", "SOUR:POW:LEV:AMPL?"):
            return f"{self.power_setpoint_w:.5f}"
        if cmd == "SOUR:POW:LEV?":  # the power actually emitted
            return f"{self.power_setpoint_w if self.emission else 0.0:.5f}"
        if cmd == "SOUR:AM:STAT":
            want = self._on_off(on_off)
            if want and self.fault_code:
                raise _Refused(241)
            if want != self.emission:
                self.emission = want
                self._record("emission", want)
            return None
        if cmd == "SOUR:AM:STAT?":
            return "ON" if self.emission else "OFF"
        if cmd == "SYST:FAUL?":
            return f"{self.fault_code:08X}"
        if cmd == "SYST:STAT?":
            status = _STATUS_FAULT if self.fault_code else _STATUS_READY
            status |= _STATUS_EMISSION if self.emission else 0
            return f"{status:08X}"
        if cmd == "SYST:ERR:CLE":
            return None
        raise _Refused(100)

    @staticmethod
    def _on_off(value: str) -> bool:
        if value in ("ON", "1"):
            return True
        if value in ("OFF", "0"):
            return False
        raise _Refused(220 if value else 109)


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class SimulatedObisLaser(ObisLaser):
    """The real OBIS driver on a :class:`SimulatedObis` that lives as long as it is open.

    No guard process: the simulated laser lives in this process and dies with
    it, so there is nothing left to switch off.
    """

    def __init__(self, cfg: LaserConfig, **device_options: Any) -> None:
        super().__init__("", baudrate=cfg.baudrate, timeout_s=cfg.timeout_s, guard=False)
        self._device_options = device_options
        self.device: SimulatedObis | None = None

    def open(self) -> None:
        if self.is_open:
            return
        self.device = SimulatedObis(**self._device_options).start()
        self.port = self.device.port
        try:
            super().open()
        except BaseException:
            self.device.close()
            raise

    def simulate_disconnect(self) -> bool:
        """The simulated laser's port vanishes (fault injection)."""
        if self.device is None:
            return False
        self.device.disconnect()
        return True

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.device is not None:
                self.device.close()
