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

import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from rig.errors import ProtocolError

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
    with os.fdopen(read_fd, "rb") as result:
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ProtocolError(
                f"{path}: the protocol script did not finish within {timeout_s:g} s "
                "(an endless loop or a blocking call?): define PROTOCOL without waiting"
            ) from None
        out = result.read()
    text = err.decode("utf-8", "replace").strip()
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ProtocolError(f"{path}: the protocol script crashed ({name}){_tail(text)}")
    if proc.returncode != 0 or not out:
        raise ProtocolError(
            f"{path}: {text.splitlines()[-1] if text else 'the script ended without defining PROTOCOL'}"
        )
    return json.loads(out)  # type: ignore[no-any-return]


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

    from rig.errors import ZaprigError, format_validation_error
    from stimuli.protocol import Protocol

    path, fd = sys.argv[1], int(sys.argv[2])
    try:
        ns = runpy.run_path(path)
        proto = ns.get("PROTOCOL")
        if proto is None and callable(ns.get("build")):
            proto = ns["build"]()
    except SystemExit as e:
        _fail(f"the script called sys.exit({e.code!r}) before defining PROTOCOL; remove it")
    except ValidationError as e:
        _fail(format_validation_error(path, e.errors()).split("\n", 1)[-1].strip())
    except ZaprigError as e:
        _fail(str(e))
    except BaseException as e:  # a user's script: report its error, not ours
        _fail(f"the script failed: {type(e).__name__}: {e}")
    if not isinstance(proto, Protocol):
        _fail("define PROTOCOL = Protocol(...) (or a build() returning one)")
    with os.fdopen(fd, "wb") as out:
        out.write(proto.to_json().encode())
    os._exit(0)  # no atexit handlers of the script's making


def _fail(message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(3)
