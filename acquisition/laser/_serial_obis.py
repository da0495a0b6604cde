"""A Coherent OBIS laser over a serial port, and a simulated OBIS on a pseudo-terminal.

OBIS speaks SCPI-like lines ending in CR LF; with handshaking on, every command
is answered by its reply (for queries) and then ``OK`` or ``ERR-<code>``.
Power is set in watts; the rig config is in milliwatts.

The simulated device runs the same protocol on a real pseudo-terminal, so the
simulated rig exercises the real driver code end to end.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field

from acquisition.laser._base import Laser, LaserStatus
from rig.errors import DeviceError

__all__ = ["ObisLaser", "SimulatedObis"]


class ObisLaser(Laser):
    def __init__(self, port: str, baudrate: int = 115200, timeout_s: float = 0.5) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._ser = None
        self._lock = threading.Lock()
        self.off_failures: list[str] = []

    def open(self) -> None:
        import serial

        try:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=self.timeout_s)
        except (serial.SerialException, OSError) as e:
            raise DeviceError(
                f"laser: cannot open serial port {self.port} ({e}): check the cable and the "
                "config field laser.port"
            ) from None
        self._query("SYST:COMM:HAND ON")
        ident = self._query("*IDN?")
        if "OBIS" not in ident.upper():
            raise DeviceError(f"laser on {self.port} answered {ident!r}, not an OBIS laser")

    def _query(self, cmd: str) -> str:
        import serial

        if self._ser is None:
            raise DeviceError(f"laser on {self.port}: not open")
        with self._lock:
            try:
                self._ser.reset_input_buffer()
                self._ser.write((cmd + "\r\n").encode())
                reply = ""
                while True:
                    line = self._ser.readline().decode(errors="replace").strip()
                    if not line:
                        raise DeviceError(f"laser on {self.port}: no answer to {cmd!r}")
                    if line == "OK":
                        return reply
                    if line.startswith("ERR"):
                        raise DeviceError(f"laser on {self.port}: {cmd!r} refused ({line})")
                    reply = line
            except (serial.SerialException, OSError) as e:
                raise DeviceError(f"laser on {self.port}: serial port lost ({e})") from None

    def on(self, power_mw: float) -> None:
        self._query(f"SOUR:POW:LEV:IMM:AMPL {power_mw / 1000.0:.6f}")
        self._query("SOUR:AM:STAT ON")

    def off(self) -> None:
        try:
            self._query("SOUR:AM:STAT OFF")
        except DeviceError as e:
            # never raise from off(): it runs on every stop path; keep the failure visible
            self.off_failures.append(str(e))

    def status(self) -> LaserStatus:
        on = self._query("SOUR:AM:STAT?").upper() == "ON"
        power = float(self._query("SOUR:POW:LEV?")) * 1000.0
        fault = int(self._query("SYST:FAUL?") or "0", 0)
        faults = tuple(f"fault bit {b}" for b in range(32) if fault >> b & 1)
        return LaserStatus(on, power, faults, self._query("*IDN?"))

    def close(self) -> None:
        if self._ser is not None:
            self.off()
            self._ser.close()
            self._ser = None


@dataclass
class _ObisState:
    emission: bool = False
    power_w: float = 0.0
    fault: int = 0
    history: list[str] = field(default_factory=list)


class SimulatedObis:
    """An OBIS on a pty: ``.port`` is the device path the driver opens."""

    def __init__(self) -> None:
        self._master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave
        self.state = _ObisState()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sim-obis", daemon=True)
        self._thread.start()

    def _answer(self, cmd: str) -> list[str]:
        st = self.state
        c = cmd.strip().upper()
        if c == "*IDN?":
            return ["Coherent, Inc - OBIS 488nm 100mW (simulated) - V1.0", "OK"]
        if c.startswith("SYST:COMM:HAND"):
            return ["OK"]
        if c == "SOUR:AM:STAT ON":
            st.emission = True
            st.history.append("on")
            return ["OK"]
        if c == "SOUR:AM:STAT OFF":
            st.emission = False
            st.history.append("off")
            return ["OK"]
        if c == "SOUR:AM:STAT?":
            return ["ON" if st.emission else "OFF", "OK"]
        if c.startswith("SOUR:POW:LEV:IMM:AMPL "):
            try:
                st.power_w = float(c.split()[1])
            except ValueError:
                return ["ERR-100"]
            return ["OK"]
        if c == "SOUR:POW:LEV?":
            return [f"{st.power_w:.6f}", "OK"]
        if c == "SYST:FAUL?":
            return [str(st.fault), "OK"]
        return ["ERR-100"]

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 1024)
            except OSError:
                break
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                for reply in self._answer(line.decode(errors="replace")):
                    try:
                        os.write(self._master, (reply + "\r\n").encode())
                    except OSError:
                        return

    def close(self) -> None:
        self._stop.set()
        for fd in (self._slave, self._master):
            with contextlib.suppress(OSError):
                os.close(fd)
