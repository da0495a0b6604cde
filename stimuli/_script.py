"""Loading a Python protocol in a child process, with a time limit.

A Python protocol is code: it runs with the user's rights and may do anything
(``os.system``, ``sys.exit``, ``while True``, monkeypatching the engine). Running it
in a separate process keeps the engine and ``plan`` safe from its accidents: the
child runs the script, takes ``PROTOCOL`` (or ``build()``), and hands back the
protocol as JSON on a pipe of its own; the parent validates that JSON into a
frozen :class:`~stimuli.protocol.Protocol`. An exit, an exception, a crash or a hang
in the script becomes a :class:`ProtocolError` naming the file.

This is isolation from mistakes, not a sandbox: share protocols with people you
do not trust as TOML, which is data.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from rig.core.errors import ProtocolError

__all__ = ["SCRIPT_TIMEOUT_S", "run_protocol_script"]

#: How long a protocol script may take to define its protocol.
SCRIPT_TIMEOUT_S = float(os.environ.get("ZAPRIG_PROTOCOL_TIMEOUT_S", "30"))
_ROOT = Path(__file__).resolve().parents[1]


def run_protocol_script(path: Path, timeout_s: float = SCRIPT_TIMEOUT_S) -> dict[str, Any]:
    """The protocol a ``.py`` file defines, as plain data (validate it with protocol_from_dict)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from stimuli._script import _child; _child()",
             str(path), str(write_fd)],
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(write_fd,),
            start_new_session=True,  # a hang is killed with everything it started
        )  # fmt: skip
    finally:
        os.close(write_fd)
    # The pipes are read on threads and the script's *process* is waited for, not the pipes'
    # end: a process the script forked (a daemon) inherits them and would hold them open.
    assert proc.stderr is not None
    result, errors = _Drain(read_fd), _Drain(proc.stderr.fileno())
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise ProtocolError(
            f"{path}: the protocol script did not finish within {timeout_s:g} s "
            "(an endless loop or a blocking call?): define PROTOCOL without waiting"
        ) from None
    left = _kill_leftovers(proc.pid)
    out, err = result.take(), errors.take()
    if left or not (result.done and errors.done):
        raise ProtocolError(
            f"{path}: the protocol script left a process running after it ended (a fork or "
            "a daemon); it was stopped. A protocol script only defines PROTOCOL: start "
            "nothing from it"
        )
    text = err.decode("utf-8", "replace").strip()
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ProtocolError(f"{path}: the protocol script crashed ({name}){_tail(text)}")
    if proc.returncode != 0 or not out:
        raise ProtocolError(
            f"{path}: {text.splitlines()[-1] if text else 'the script ended without defining PROTOCOL'}"
        )
    return json.loads(out)  # type: ignore[no-any-return]


class _Drain:
    """Read a pipe to its end on a thread (the script may fill it before it exits)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._parts: list[bytes] = []
        self._end = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                self._parts.append(chunk)
        except OSError:
            pass
        self._end.set()

    @property
    def done(self) -> bool:
        return self._end.is_set()

    def take(self, grace_s: float = 1.0) -> bytes:
        """What was read; waits ``grace_s`` for the end (a leftover process may hold it)."""
        self._end.wait(grace_s)
        return b"".join(self._parts)


def _kill_leftovers(pgid: int) -> bool:
    """Kill what the script left in its process group; True if there was anything."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _tail(text: str) -> str:
    return f": {text.splitlines()[-1]}" if text else ""


def _child() -> None:
    """In the child: run the script, write the protocol's JSON to the result pipe."""
    from pydantic import ValidationError

    from rig.core.errors import ZaprigError, format_validation_error
    from stimuli.protocol import Protocol

    path, fd = sys.argv[1], int(sys.argv[2])
    try:
        ns = runpy.run_path(path)
        proto = ns.get("PROTOCOL")
        if proto is None and callable(ns.get("build")):
            proto = ns["build"]()
    except SystemExit as e:
        _fail(f"{_line(path, e)}the script called sys.exit({e.code!r}) before defining "
              "PROTOCOL; remove it")  # fmt: skip
    except ValidationError as e:
        _fail(_line(path, e) + format_validation_error(path, e.errors()).split("\n", 1)[-1].strip())
    except ZaprigError as e:
        _fail(_line(path, e) + str(e))
    except SyntaxError as e:
        _fail(f"line {e.lineno}: the script is not valid Python: {e.msg}")
    except BaseException as e:  # a user's script: report its error, not ours
        _fail(f"{_line(path, e)}the script failed: {type(e).__name__}: {e}")
    if not isinstance(proto, Protocol):
        _fail("define PROTOCOL = Protocol(...) (or a build() returning one)")
    with os.fdopen(fd, "wb") as out:
        out.write(proto.to_json().encode())
    os._exit(0)  # no atexit handlers of the script's making


def _line(path: str, e: BaseException) -> str:
    """``line N: `` of the script's own line that raised (the deepest frame in the script)."""
    import traceback

    real = os.path.realpath(path)
    frames = [
        f for f in traceback.extract_tb(e.__traceback__) if os.path.realpath(f.filename) == real
    ]
    return f"line {frames[-1].lineno}: " if frames else ""


def _fail(message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(3)
