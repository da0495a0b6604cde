"""The OBIS driver against a simulated OBIS on a real pseudo-terminal (os.openpty).

The driver's pyserial code runs unchanged: the simulator answers on the master
side of a pty and the driver opens the slave device path like a USB laser.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from acquisition.laser import (
    ObisLaser,
    SimulatedObis,
    SimulatedObisLaser,
    UncontrolledLaser,
    make_laser,
)
from rig.core.config import LaserConfig
from rig.core.errors import DeviceError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def device() -> Iterator[SimulatedObis]:
    with SimulatedObis(max_power_mw=100.0) as dev:
        yield dev


@pytest.fixture
def laser(device: SimulatedObis) -> Iterator[ObisLaser]:
    # The guard process has its own tests below; here it would only add start-up time.
    with ObisLaser(device.port, timeout_s=0.5, guard=False) as las:
        yield las


def test_identity_power_on_and_off(device: SimulatedObis, laser: ObisLaser) -> None:
    assert device.handshake  # the driver switched handshaking on (the simulator starts off)
    assert laser.identity.startswith("Coherent, Inc - OBIS 488nm")
    assert laser.model == "OBIS 488nm 100mW LX (simulated)"
    assert laser.max_power_mw == pytest.approx(100.0)
    assert device.mode == "CWP" and not device.emission

    laser.on(20.0)
    assert device.emission
    assert device.power_setpoint_w == pytest.approx(0.020)  # mW in the config, W on the wire
    assert "SOUR:POW:LEV:IMM:AMPL 0.020000" in device.commands
    status = laser.status()
    assert status.on and status.power_mw == pytest.approx(20.0) and status.faults == ()
    assert status.identity == laser.identity

    laser.off()
    assert not device.emission
    status = laser.status()
    assert not status.on and status.power_mw == 0.0
    assert device.emission_changes() == [(True, "command"), (False, "command")]
    assert laser.off_failures == []


def test_faults_are_decoded_and_block_emission(device: SimulatedObis, laser: ObisLaser) -> None:
    laser.on(10.0)
    device.inject_fault(0x000001 | 0x002000)
    status = laser.status()
    assert not status.on  # a fault stops emission
    assert status.faults == ("base plate temperature out of range", "cannot emit at the set power")
    with pytest.raises(DeviceError, match="reports faults: base plate temperature out of range"):
        laser.on(10.0)
    assert not device.emission

    device.clear_faults()
    laser.on(10.0)
    assert laser.status().on


def test_power_above_the_lasers_maximum_is_refused(device: SimulatedObis, laser: ObisLaser) -> None:
    with pytest.raises(DeviceError, match=r"laser.power_mw = 150.0 is above .* 100 mW"):
        laser.on(150.0)
    assert not device.emission and device.power_setpoint_w == 0.0

    laser.max_power_mw = None  # firmware that does not report its limit: the laser refuses
    with pytest.raises(DeviceError, match=r"refused 'SOUR:POW:LEV:IMM:AMPL 0.150000': ERR-220"):
        laser.on(150.0)
    assert not device.emission


def test_a_port_that_does_not_exist_names_the_port_and_the_config_field(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    with pytest.raises(DeviceError) as err:
        make_laser(LaserConfig(backend="obis", port=port)).open()
    assert port in str(err.value) and "laser.port" in str(err.value)


def test_a_silent_device_is_reported_not_waited_for() -> None:
    master, slave = os.openpty()  # a serial line with nothing answering on it
    tty.setraw(slave)
    try:
        las = ObisLaser(os.ttyname(slave), timeout_s=0.2, guard=False)
        started = time.monotonic()
        with pytest.raises(DeviceError, match=r"did not answer .* is it an OBIS.*laser.baudrate"):
            las.open()
        assert time.monotonic() - started < 2.0
        assert not las.is_open
    finally:
        os.close(master)
        os.close(slave)


def test_disconnect_mid_run(device: SimulatedObis) -> None:
    las = ObisLaser(device.port, timeout_s=0.3, guard=False)
    las.open()
    las.on(20.0)
    device.disconnect()  # the cable is pulled

    las.off()  # must not raise: it runs on every abort path
    assert las.off_failures and "could not switch the laser" in las.off_failures[0]
    with pytest.raises(DeviceError, match=r"lost the laser's serial port .* \(laser.port\)"):
        las.status()
    with pytest.raises(DeviceError):
        las.on(20.0)
    las.close()  # still does not raise
    # As with a real laser on its own power supply, it is still emitting: the
    # engine must tell the experimenter (off_failures), the interlock must act.
    assert device.emission


def _session_code(port: str, guard: bool) -> str:
    return textwrap.dedent(
        f"""
        import time
        from acquisition.laser import ObisLaser
        laser = ObisLaser({port!r}, guard={guard})
        laser.open()
        laser.on(20.0)
        guard = laser.guard_process
        print("ON", guard.pid if guard else -1, flush=True)
        time.sleep(60)
        """
    )


def _start_session(port: str, guard: bool) -> tuple[subprocess.Popen[bytes], int]:
    """A session in its own process with the laser on; returns it and its guard's pid."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", _session_code(port, guard)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20.0)
    line = proc.stdout.readline().split() if ready else []
    assert line[:1] == [b"ON"], proc.stderr and proc.stderr.read()
    return proc, int(line[1])


def _end(session: subprocess.Popen[bytes]) -> None:
    session.kill()
    session.wait()
    for pipe in (session.stdout, session.stderr):
        if pipe is not None:
            pipe.close()


def test_a_session_killed_mid_run_leaves_the_laser_off(device: SimulatedObis) -> None:
    session, guard_pid = _start_session(device.port, guard=True)
    guard = psutil.Process(guard_pid)
    try:
        assert device.emission and guard.is_running()
        killed_at = time.monotonic()
        session.kill()  # SIGKILL: no finally, no atexit, nothing of the session runs
        session.wait()
        assert device.wait_for(lambda d: not d.emission, timeout=10.0)
        print(f"laser off {time.monotonic() - killed_at:.2f} s after the kill")
        guard.wait(timeout=10.0)  # done: it does not linger
    finally:
        _end(session)
    assert device.emission_changes() == [(True, "command"), (False, "command")]
    assert device.commands[-3:] == ["SYST:COMM:HAND ON", "SOUR:AM:STAT OFF", "SOUR:AM:STAT?"]


def test_without_the_guard_a_killed_session_leaves_the_laser_on(device: SimulatedObis) -> None:
    """The control for the test above: neither the simulator nor a real OBIS switches off
    when its host dies, so it is the guard that does it."""
    session, _ = _start_session(device.port, guard=False)
    _end(session)
    assert not device.wait_for(lambda d: not d.emission, timeout=1.0)
    assert device.emission


def test_closing_normally_stands_the_guard_down(device: SimulatedObis) -> None:
    las = ObisLaser(device.port, guard=True)
    las.open()
    guard = las.guard_process
    assert guard is not None and guard.poll() is None
    las.on(5.0)
    las.close()
    assert guard.wait(timeout=5.0) == 0
    n = len(device.commands)
    assert device.commands[-1] == "SOUR:AM:STAT OFF" and not device.emission
    quiet = not device.wait_for(lambda d: len(d.commands) > n, timeout=0.3)
    assert quiet, (device.port, device.commands[n - 3 :])  # the guard stays quiet


def test_make_laser_sim_runs_the_driver_on_a_simulated_obis() -> None:
    laser = make_laser(LaserConfig(backend="sim", power_mw=20.0))
    assert isinstance(laser, SimulatedObisLaser)
    with laser:
        assert laser.device is not None and laser.port == laser.device.port
        laser.on(20.0)
        assert laser.device.emission and laser.device.power_setpoint_w == pytest.approx(0.02)
        device = laser.device
    assert not device.emission and not device.connected  # closed: off first, then released
    assert device.emission_changes()[-1] == (False, "command")


def test_uncontrolled_laser_records_but_drives_nothing() -> None:
    laser = UncontrolledLaser()
    with laser:
        laser.on(20.0)
        status = laser.status()
        assert status.on and status.power_mw == 20.0 and "switch it by hand" in status.identity
        laser.off()
        assert not laser.status().on
    assert laser.requests == [("on", 20.0), ("off", 0.0), ("off", 0.0)]


def test_the_laser_package_imports_without_the_simulator() -> None:
    """A real rig on Windows has no ``tty``: importing the drivers must not need it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['tty'] = None\n"
        "import acquisition.laser as laser\n"
        "from acquisition.laser import ObisLaser, make_laser\n"
        "from rig.core.config import LaserConfig\n"
        "assert 'acquisition.laser._sim_obis' not in sys.modules\n"
        "assert make_laser(LaserConfig(backend='none')).status().on is False\n"
        "try:\n"
        "    laser.SimulatedObis\n"
        "except ImportError:\n"
        "    print('simulator needs tty')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "simulator needs tty" in r.stdout  # asked for, it says what it needs


def test_a_late_answer_is_never_taken_for_the_next_commands(device: SimulatedObis) -> None:
    """A controller that answers after the timeout: its late reply to the power query must
    not be read as the fault code of the next one (it desynchronised the link for good)."""
    with ObisLaser(device.port, timeout_s=0.2, guard=False) as las:
        las.on(20.0)
        device.reply_delay_s = 0.3  # now every answer comes after the driver gave up
        with pytest.raises(DeviceError, match="did not answer"):
            las.status()
        device.reply_delay_s = 0.0  # the controller recovers
        st = las.status()
        assert st.on and st.power_mw == pytest.approx(20.0) and not st.faults
        assert las.status().power_mw == pytest.approx(20.0)  # and stays in step
