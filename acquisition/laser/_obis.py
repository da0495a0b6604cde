"""The Coherent OBIS excitation laser over a serial port, and the guard that switches it off.

OBIS lasers speak a SCPI-like command set over USB (a virtual COM port) or
RS-232. With handshaking on (``SYST:COMM:HAND ON``) every command is answered
by its reply line, if it is a query, then ``OK``, or by ``ERR-<code>``; lines
end with CR LF. Power is set and read in watts; zaprig's config says mW.

Safety. :meth:`ObisLaser.off` is called on every stop, abort and fault, so it
never raises: a failure is logged and kept in :attr:`ObisLaser.off_failures`
for the engine to report.

What if the session itself dies (killed, crashed)? An OBIS keeps doing what it
was last told. We found no OBIS command or setting that switches emission off
when the host goes away: an RS-232 line has no notion of a host leaving, and
nothing in the command set watches the USB link. What does stop emission
without the host is hardware: the key switch and the remote interlock, which
must be wired on any rig. So rather than pretend the laser does it, zaprig adds
a separate-process **guard**: when :class:`ObisLaser` opens the laser it starts
a small Python process holding one end of a pipe to the session. A session that
closes the laser normally tells the guard so and it exits. If the pipe breaks
without that word (the session was killed or crashed, and the operating system
closed the pipe), the guard opens the port itself, sends ``SOUR:AM:STAT OFF``
and checks ``SOUR:AM:STAT?``, retrying for 10 s while the dead session's port
is released. The guard runs in its own session / process group, so Ctrl-C or a
kill of the session's process group does not take it too. A power cut, or
killing the guard as well, defeats it: the interlock stays the primary safety.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import serial

from acquisition.laser._base import Laser, LaserStatus
from rig.core.errors import DeviceError

if TYPE_CHECKING:  # the guard process imports this module: keep its start-up light
    from rig.core.config import LaserConfig

_PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError)
if os.name != "nt":
    import termios

    # pyserial lets termios.error (not an OSError) through when a tty hangs up.
    _PORT_ERRORS = (*_PORT_ERRORS, termios.error)

__all__ = ["ERROR_CODES", "FAULT_BITS", "ObisLaser", "decode_faults"]

log = logging.getLogger(__name__)

#: ``SYST:FAUL?`` bit field (OBIS operator's manual, fault code table).
FAULT_BITS: dict[int, str] = {
    0x000001: "base plate temperature out of range",
    0x000002: "diode temperature out of range",
    0x000004: "internal temperature out of range",
    0x000008: "no electrical power to the laser diode",
    0x000010: "I2C bus error",
    0x000020: "diode over current",
    0x000040: "EEPROM checksum error",
    0x000080: "EEPROM restored to defaults",
    0x000100: "bus message buffer overflow",
    0x000200: "warm-up time limit exceeded",
    0x000400: "TE controller driver failure",
    0x000800: "RS-485 bus error",
    0x001000: "diode temperature more than 5 C from its set point",
    0x002000: "cannot emit at the set power",
    0x004000: "negative photodiode reading",
    0x008000: "irrecoverable system failure",
    0x010000: "errors during firmware start-up",
    0x020000: "firmware resumed after a watchdog reset",
    0x040000: "field calibration error",
    0x100000: "output power above its limit",
}

#: ``ERR-<code>`` replies.
ERROR_CODES: dict[int, str] = {
    100: "unrecognized command",
    102: "syntax error",
    109: "missing parameter",
    200: "execution error",
    203: "command protected",
    220: "invalid parameter",
    221: "settings conflict",
    241: "device unavailable",
    310: "unexpected hardware or software fault",
    321: "out of memory",
    350: "error queue full",
    400: "broadcast of a query is prohibited",
    500: "Coherent Connection bus error",
    510: "I2C bus fault",
    520: "controller time out",
    900: "Coherent Connection message time out",
}

#: The guard process's program: the module is imported by path, not run as __main__.
_GUARD_CODE = "from acquisition.laser._obis import _guard_main; _guard_main()"
#: What a session writes to its guard when it closes the laser itself.
_CLOSED = b"closed\n"


def decode_faults(code: int) -> tuple[str, ...]:
    """Names of the fault bits set in a ``SYST:FAUL?`` code."""
    names = [name for bit, name in FAULT_BITS.items() if code & bit]
    unknown = code & ~sum(FAULT_BITS)
    if unknown:
        names.append(f"unknown fault bits 0x{unknown:X}")
    return tuple(names)


def _parse_code(text: str, port: str) -> int:
    """OBIS reports status and fault words as hex digits (e.g. ``00000000``)."""
    digits = text.strip()
    try:
        return int(digits[2:] if digits.lower().startswith("0x") else digits, 16)
    except ValueError:
        raise DeviceError(f"the laser on {port} sent an unreadable fault code {text!r}") from None


class _DeviceRefused(DeviceError):
    """The laser answered ``ERR-<code>``: it is there, but refused the command."""


class _NoAnswer(DeviceError):
    """Nothing came back within the timeout."""


class ObisLaser(Laser):
    """An OBIS laser on ``port``; see the module docstring for the safety design."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout_s: float = 0.5,
        guard: bool = True,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._use_guard = guard
        self._serial: serial.Serial | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        # a timed-out exchange may still be answered later: that answer must not be taken
        # for the next command's (a late "0.02000" read as a fault code)
        self._late_answer_possible = False
        self.identity = ""
        self.model = ""
        self.max_power_mw: float | None = None
        self._off_failures: list[str] = []

    @classmethod
    def from_config(cls, cfg: LaserConfig, *, guard: bool = True) -> ObisLaser:
        return cls(cfg.port, baudrate=cfg.baudrate, timeout_s=cfg.timeout_s, guard=guard)

    @property
    def off_failures(self) -> list[str]:
        """Every failed attempt to switch the emission off, for the runner to report."""
        return self._off_failures

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    @property
    def guard_process(self) -> subprocess.Popen[bytes] | None:
        """The guard process while the laser is open (None without one)."""
        return self._guard

    # ------------------------------------------------------------------ Laser
    def open(self) -> None:
        if self._serial is not None:
            return
        self._open_port()
        try:
            self._handshake_on()
            with self._lock:
                with suppress(_DeviceRefused):  # an "OBIS>" prompt would garble the replies
                    self._exchange("SYST:COMM:PROM OFF")
                self.identity = self._ask("*IDN?")
                self.model = self._optional("SYST:INF:MOD?") or ""
                self.max_power_mw = self._max_power_mw()
                self._exchange("SOUR:AM:INT CWP")  # constant power: the set power is what we get
                self._exchange("SOUR:AM:STAT OFF")  # a session starts dark
        except DeviceError:
            self._close_port()
            raise
        if self._use_guard:
            self._start_guard()

    def on(self, power_mw: float) -> None:
        if power_mw < 0:
            raise DeviceError(f"laser power must not be negative (laser.power_mw = {power_mw})")
        if self.max_power_mw is not None and power_mw > self.max_power_mw:
            raise DeviceError(
                f"laser.power_mw = {power_mw} is above this laser's maximum of "
                f"{self.max_power_mw:g} mW ({self.model or self.identity})"
            )
        with self._lock:
            faults = decode_faults(_parse_code(self._ask("SYST:FAUL?"), self.port))
            if faults:
                raise DeviceError(
                    f"the laser on {self.port} reports faults: {'; '.join(faults)}. Emission was "
                    "not turned on; clear the cause (see the OBIS manual) and power-cycle the laser"
                )
            self._exchange(f"SOUR:POW:LEV:IMM:AMPL {power_mw / 1000.0:.6f}")
            self._exchange("SOUR:AM:STAT ON")
            state = self._ask("SOUR:AM:STAT?")
        if state.upper() != "ON":
            raise DeviceError(
                f"the laser on {self.port} did not turn on (SOUR:AM:STAT? answers {state!r}): "
                "check its key switch and interlock"
            )

    def off(self) -> None:
        """Close the emission; never raises (failures are logged and kept in ``off_failures``)."""
        if self._serial is None:
            self._record_off_failure(f"the laser on {self.port} is not connected")
            return
        # Another thread may be stuck mid-exchange with a dead laser: wait a little,
        # then say OFF anyway rather than not at all.
        locked = self._lock.acquire(timeout=2 * self.timeout_s + 0.5)
        try:
            if locked:
                self._exchange("SOUR:AM:STAT OFF")
            else:
                self._serial.write(b"SOUR:AM:STAT OFF\r\n")
                self._record_off_failure(
                    f"the laser on {self.port} was busy: sent OFF without waiting for its answer"
                )
        except Exception as e:  # off() runs on every abort path: it must not raise
            self._record_off_failure(f"could not switch the laser on {self.port} off: {e}")
        finally:
            if locked:
                self._lock.release()

    def status(self) -> LaserStatus:
        with self._lock:
            state = self._ask("SOUR:AM:STAT?")
            power = self._ask("SOUR:POW:LEV?")
            fault = self._ask("SYST:FAUL?")
        faults = decode_faults(_parse_code(fault, self.port))
        try:
            power_mw = float(power) * 1000.0
        except ValueError:
            raise DeviceError(
                f"the laser on {self.port} sent an unreadable power {power!r}"
            ) from None
        return LaserStatus(
            on=state.upper() == "ON", power_mw=power_mw, faults=faults, identity=self.identity
        )

    def faults(self) -> tuple[str, ...]:
        """One ``SYST:FAUL?`` exchange: alive and fault-free, or not (the engine's watch)."""
        with self._lock:
            code = self._ask("SYST:FAUL?")
        return decode_faults(_parse_code(code, self.port))

    def close(self) -> None:
        if self._serial is None:
            self._stop_guard(clean=True)
            return
        failures = len(self.off_failures)
        self.off()
        # If our own OFF failed, let the guard try once more from its process.
        self._stop_guard(clean=len(self.off_failures) == failures)
        self._close_port()

    # --------------------------------------------------------------- protocol
    def _open_port(self) -> None:
        try:
            self._serial = serial.Serial(
                port=self.port,
                baudrate=self.baudrate,
                timeout=self.timeout_s,
                write_timeout=self.timeout_s,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise DeviceError(
                f"cannot open the laser's serial port {self.port!r} (laser.port): {e}. Check that "
                "the laser is connected and powered, and set laser.port in the rig config to its "
                "port (`python -m serial.tools.list_ports` lists them)"
            ) from None

    def _close_port(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except _PORT_ERRORS as e:
                log.warning("closing the laser port %s failed: %s", self.port, e)

    def _handshake_on(self) -> None:
        """Ask for OK/ERR after every command. With handshaking off, this first
        command may go unanswered: that is not an error, the *IDN? after it decides."""
        with self._lock, suppress(_NoAnswer):
            self._exchange("SYST:COMM:HAND ON")

    def _exchange(self, command: str) -> list[str]:
        """Send one command; return the reply lines before ``OK``. Call with the lock held."""
        ser = self._serial
        if ser is None:
            raise DeviceError(f"the laser on {self.port} is not open (call open() first)")
        try:
            if self._late_answer_possible:
                self._drain_late_answer(ser)
            ser.reset_input_buffer()  # drop anything a timed-out exchange left behind
            ser.write(command.encode("ascii") + b"\r\n")
            lines: list[str] = []
            while True:
                raw = ser.readline()
                if not raw.endswith(b"\n"):
                    self._late_answer_possible = True
                    raise _NoAnswer(
                        f"the laser on {self.port} (laser.port) did not answer {command!r} within "
                        f"{self.timeout_s} s (laser.timeout_s): is it an OBIS, powered, and set to "
                        f"{self.baudrate} baud (laser.baudrate)?"
                    )
                line = raw.decode("ascii", "replace").strip()
                if line == "OK":
                    return lines
                if line.startswith("ERR"):
                    raise _DeviceRefused(self._refusal(command, line))
                if line:
                    lines.append(line)
        except _PORT_ERRORS as e:
            raise DeviceError(
                f"lost the laser's serial port {self.port} (laser.port) during {command!r}: {e}. "
                "Check its USB/serial cable and power"
            ) from None

    def _drain_late_answer(self, ser: serial.Serial) -> None:
        """Read and drop what a timed-out command's late answer sends: wait up to one timeout
        for it to begin, then until the line is quiet for a tenth of the timeout. The next
        answer is then ours. (Stopping at the first quiet spell lost the race when the late
        answer had not begun yet: it was then read as the next command's.)"""
        quiet = max(0.02, self.timeout_s / 10)
        deadline = time.monotonic() + self.timeout_s
        last_byte: float | None = None
        while time.monotonic() < deadline:
            if ser.in_waiting:
                ser.read(ser.in_waiting)
                last_byte = time.monotonic()
            elif last_byte is not None and time.monotonic() - last_byte >= quiet:
                break
            else:
                time.sleep(quiet / 4)
        self._late_answer_possible = False

    def _refusal(self, command: str, line: str) -> str:
        try:
            code = abs(int(line[3:].lstrip("-: ")))
        except ValueError:
            code = -1
        meaning = ERROR_CODES.get(code, "unknown error")
        return f"the laser on {self.port} refused {command!r}: {line} ({meaning})"

    def _ask(self, query: str) -> str:
        lines = self._exchange(query)
        if not lines:
            raise DeviceError(f"the laser on {self.port} gave no answer to {query!r}")
        return lines[-1]

    def _optional(self, query: str) -> str | None:
        """A query some OBIS firmware does not know: None instead of an error."""
        try:
            return self._ask(query)
        except _DeviceRefused:
            return None

    def _max_power_mw(self) -> float | None:
        high = self._optional("SOUR:POW:LIM:HIGH?")
        try:
            return float(high) * 1000.0 if high else None
        except ValueError:
            return None  # unknown limit: the laser itself refuses too much power (ERR-220)

    def _record_off_failure(self, message: str) -> None:
        log.error("%s", message)
        self._off_failures.append(message)

    # ------------------------------------------------------------------ guard
    def _start_guard(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        detach: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if os.name == "nt"
            else {"start_new_session": True}
        )
        try:
            self._guard = subprocess.Popen(
                [sys.executable, "-c", _GUARD_CODE, self.port, str(self.baudrate)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
                **detach,
            )
        except OSError as e:
            self._close_port()
            raise DeviceError(
                f"could not start the laser guard process ({e}); refusing to run the laser "
                "without it (pass guard=False only where a hardware interlock covers this)"
            ) from None

    def _stop_guard(self, *, clean: bool) -> None:
        guard, self._guard = self._guard, None
        if guard is None or guard.stdin is None:
            return
        try:
            if clean:
                guard.stdin.write(_CLOSED)
            guard.stdin.close()
        except OSError as e:
            log.warning("laser guard already gone: %s", e)
        if clean:
            try:
                guard.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                guard.kill()
                guard.wait()
        # Not clean: the guard must get the port after we release it; it reaps itself.


def _switch_off_from_guard(port: str, baudrate: int, give_up_s: float = 10.0) -> bool:
    """Open the port (retrying while the dead session still holds it) and switch emission off."""
    deadline = time.monotonic() + give_up_s
    last_error = ""
    while time.monotonic() < deadline:
        laser = ObisLaser(port, baudrate=baudrate, guard=False)
        try:
            laser._open_port()
            laser._handshake_on()
            with laser._lock:
                laser._exchange("SOUR:AM:STAT OFF")
                if laser._ask("SOUR:AM:STAT?").upper() == "OFF":
                    return True
        except DeviceError as e:
            last_error = str(e)
        finally:
            laser._close_port()
        time.sleep(0.1)  # the port may still be held by the dying session
    _say(f"could not switch the laser on {port} off: {last_error}")
    return False


def _say(message: str) -> None:
    """Tell the terminal, if there still is one; the guard's job must not depend on it."""
    with suppress(OSError, ValueError):
        print(f"zaprig laser guard: {message}", file=sys.stderr, flush=True)


def _guard_main() -> None:
    """The guard process: wait for the session; if it ended without closing the laser, switch
    the laser off. Arguments: port, baud rate."""
    # Ctrl-C, SIGTERM or a hang-up sent to the session's process group are meant for the
    # session, not its safety net: it stays until the session closes its pipe.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    port, baudrate = sys.argv[1], int(sys.argv[2])
    said = sys.stdin.buffer.read()  # returns at EOF: the session closed the pipe, or died
    if said.endswith(_CLOSED):
        return
    _say(f"the session ended without closing the laser: switching {port} off")
    sys.exit(0 if _switch_off_from_guard(port, baudrate) else 1)
