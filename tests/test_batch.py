"""``zaprig batch`` on dask.distributed: a cluster started from the command line, a worker
killed mid-job, exports identical to ``zaprig export``, a restart that skips what is done,
the batch readout equal to ``zaprig readout``, and a core install that never loads Dask."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("tensorstore")

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="session")
def batch_sessions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three short simulated sessions (built-in protocol at 0.2 %, ~20 volumes each);
    the third with the live readout on."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    out = tmp_path_factory.mktemp("batch_sessions")
    base = load_config()
    paths = []
    for k in range(3):
        cfg = base
        if k == 2:
            cfg = base.model_copy(
                update={"readout": base.readout.model_copy(update={"enabled": True})}
            )
        engine = Engine(
            cfg, dataset_protocol().scaled(0.002), out / f"s{k}", clock="virtual", seed=10 + k,
            fish={"fish_id": f"b{k}"},
        )  # fmt: skip
        assert engine.run() is RunState.COMPLETE
        assert engine.path is not None
        paths.append(engine.path)
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler and two single-threaded workers, each its own process, on 127.0.0.1."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (logs / f"{name}.log").open("wb") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=tmp_path)
        procs.append(p)
        return p

    start(
        "scheduler",
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", f"127.0.0.1:{_free_port()}"],
    )  # fmt: skip
    for name in ("wA", "wB"):
        start(
            name,
            [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name],
        )  # fmt: skip
    try:
        yield address, procs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _batch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rig", "batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=REPO,
    )


def test_batch_export_survives_a_killed_worker_and_equals_zaprig_export(
    batch_sessions: list[Path],
    cli_cluster: tuple[str, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    from distributed import Client

    from rig.batch._digest import folder_digest
    from rig.cli import main

    address, procs = cli_cluster
    worker_a = procs[1]
    out = tmp_path / "batch"
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
        addr_a = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "wA")
        job = _batch("export", *map(str, batch_sessions), "--out", str(out),
                     "--scheduler", address, "--chunk-volumes", "3")  # fmt: skip

        def a_is_executing() -> bool:
            assert job.poll() is None, job.communicate()
            n = client.run(lambda dask_worker: len(dask_worker.state.executing), workers=[addr_a])
            return bool(n.get(addr_a))

        # SIGKILL worker A as its first task starts: the task dies with it, mid-job
        _wait_for(a_is_executing, 60, "worker A's first task")
        worker_a.send_signal(signal.SIGKILL)
        worker_a.wait(timeout=10)
        stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    assert "FAILED" not in stdout
    for s in batch_sessions:
        assert f"{s.stem}  " in stdout and "ok" in stdout
    # each batch export equals the single-process one (zaprig export), array by array
    for s in batch_sessions:
        single = tmp_path / "single" / s.stem
        assert main(["export", str(s), "--format", "zapbench", str(single)]) == 0
        want = folder_digest(single)
        assert "raw" in want and "stimuli_raw/stimuli_and_ephys.10chFlt" in want
        got = folder_digest(out / s.stem)
        # the forecasting specs name their folder's absolute path: equal but for it
        spec = "zapbench_specs.json"
        if spec in want:
            mine = (out / s.stem / spec).read_text().replace(str(out / s.stem), "DIR")
            assert mine == (single / spec).read_text().replace(str(single), "DIR")
            assert spec in got
            del want[spec], got[spec]
        assert got == want, s.stem

    # started again: every task is complete, nothing runs, nothing changes
    before = {s.stem: folder_digest(out / s.stem) for s in batch_sessions}
    book = out / ".batch" / "export" / batch_sessions[0].stem
    (book / "range-3-6.done").unlink()
    (book / "rest-0-0.done").unlink()
    again = _batch("export", *map(str, batch_sessions), "--out", str(out),
                   "--scheduler", address, "--chunk-volumes", "3")  # fmt: skip
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    done = sum(len(list((out / ".batch/export" / s.stem).glob("*.done"))) for s in batch_sessions)
    assert f"{done - 2} tasks already complete from an earlier run: skipped" in stdout
    assert {s.stem: folder_digest(out / s.stem) for s in batch_sessions} == before


def test_batch_readout_on_a_local_cluster_equals_zaprig_readout(
    batch_sessions: list[Path], tmp_path: Path
) -> None:
    import tensorstore as ts

    from rig.readout.offline import readout_session

    session = batch_sessions[2]
    out = tmp_path / "readout"
    # one worker process: the split into reference, ranges and ΔF/F blocks is what is checked
    job = _batch("readout", str(session), "--out", str(out), "--workers", "1",
                 "--chunk-volumes", "4")  # fmt: skip
    _stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    _, want = readout_session(session, write=False)
    assert want.traces_dff.shape[0] > 10 and want.traces_dff.shape[1] > 0
    for name in ("drift_um", "brightness", "traces_raw", "traces_f", "traces_dff"):
        path = str(out / session.stem / name)
        got = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}})
        np.testing.assert_array_equal(
            got.result().read().result(), getattr(want, name), err_msg=name
        )


def test_batch_without_dask_is_one_line_naming_the_extra(
    batch_sessions: list[Path], tmp_path: Path
) -> None:
    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
        "from rig.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "batch", "export", str(batch_sessions[0]),
         "--out", str(tmp_path / "x")],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'zaprig[batch]'" in lines[0], r.stderr
    assert not (tmp_path / "x").exists()


def test_core_commands_do_not_import_dask() -> None:
    code = (
        "import sys\n"
        "import rig.cli, rig.session, rig.preflight, rig.session.recover\n"
        "import rig.swims\n"
        "rig.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_batch_refuses_an_output_of_another_session(
    batch_sessions: list[Path], tmp_path: Path
) -> None:
    """A folder under --out that no batch made is never written into: the session fails."""
    from rig.batch._plan import plan_session
    from rig.core.errors import SessionFileError

    s = batch_sessions[0]
    (tmp_path / s.stem).mkdir()
    (tmp_path / s.stem / "mine.txt").write_text("a user's file")
    with pytest.raises(SessionFileError, match="was not made by zaprig batch"):
        plan_session("export", s, tmp_path, "zapbench", 4)
    assert (tmp_path / s.stem / "mine.txt").read_text() == "a user's file"


_FAULTS = """
import resource, sys
import numpy as np
from rig.batch._tasks import heap_as_one_process
changed = heap_as_one_process() if sys.argv[1] == "set" else False
for _ in range(2):
    np.ones(1 << 18)  # first arrays: the heap grows once
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(1 << 18)  # 2 MB, above the frozen mmap threshold, freed each time
    del a
print(changed, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_worker_reuses_its_heap_like_one_process() -> None:
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes every big array a
    fresh mmap (its pages faulted in again: twice the CPU per volume); a batch task sets
    the heap back to a plain process's, so freed arrays are reused."""

    def faults(env: dict[str, str], arg: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, arg], env=env, capture_output=True, text=True,
            check=True, timeout=60,
        ).stdout.split()  # fmt: skip
        return out[0], int(out[1])

    dask_env = {**ENV, "MALLOC_TRIM_THRESHOLD_": "65536"}
    plain = {k: v for k, v in ENV.items() if not k.startswith("MALLOC_")}
    pages = (2 << 20) // 4096
    # the problem: under Dask's setting, each 2 MB array's pages are faulted in again
    assert faults(dask_env, "leave") == ("False", pytest.approx(pages, rel=0.2))
    changed, n = faults(dask_env, "set")
    assert changed == "True" and n < pages // 20
    # a plain process's heap is left as it is (it reuses freed arrays already)
    changed, n = faults(plain, "set")
    assert changed == "False" and n < pages // 20
