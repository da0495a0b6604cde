"""Can the rig's writer keep up with the dataset's full data rate? (issue 7)

1. Raw disk bandwidth in the target folder: a few GB written sequentially and
   fsync'ed (the ceiling any writer can reach).
2. The rig's writer (:class:`acquisition.writer.WriterClient`, its real process and
   shared-memory ring) fed the dataset's full volumes (72 x 1328 x 2048 uint16,
   392 MB) every 0.9141 s (429 MB/s) plus the 6 kHz 10-row stream, paced by the
   wall clock like the camera would be; uncompressed, then lz4 + bitshuffle.
   Volumes are realistic: sparse bright cells over a dim brain, with shot noise
   (a few pre-generated volumes, cycled), so compression ratios mean something.

Printed per run: MB/s written (while running, and including the final fsync),
ratio to the raw disk, compression ratio, dropped volumes, peak RSS of the engine
side and of the writer process, and the time to read one full volume back (cold:
after evicting the file from the page cache; and warm). Everything written is deleted.

Usage: python benchmarks/write_throughput.py [--seconds 60] [--dir FOLDER] [--quick]
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import hdf5plugin  # noqa: E402, F401  (registers the lz4/zstd filters for reading back)
import psutil  # noqa: E402

from acquisition.writer import WriterClient  # noqa: E402
from rig.core.layout import FORMAT, FORMAT_VERSION  # noqa: E402

SHAPE_ZYX = (72, 1328, 2048)
VOLUME_PERIOD_S = 0.9141
FS = 6000.0
VOXEL_UM = (4.0, 0.406, 0.406)


@dataclass
class RunResult:
    compression: str
    offered: int
    written: int
    dropped: int
    elapsed_s: float
    nominal_s: float
    close_s: float
    fsync_s: float
    file_bytes: int
    logical_bytes: int
    peak_rss_engine: int
    peak_rss_writer: int
    read_cold_s: float
    read_warm_s: float
    errors: list[str]


def make_volumes(n: int, shape: tuple[int, int, int], seed: int = 0) -> list[np.ndarray]:
    """Light-sheet-like volumes: camera offset, a dim brain, ~1000 cells per plane, shot noise."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    yy = np.linspace(-1, 1, y, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, x, dtype=np.float32)[None, :]
    brain = np.clip(1.0 - (yy / 0.8) ** 2 - (xx / 0.9) ** 2, 0.0, 1.0)
    r = 6  # a 5 um cell is ~12 px at 0.406 um
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    stamp = np.exp(-(dy**2 + dx**2) / (2 * 3.0**2)).astype(np.float32)
    cells_per_plane = max(1, round(1000 * y * x / (1328 * 2048)))
    # cell positions and brightness are fixed; activity changes a little between volumes
    pos_y = rng.integers(r, y - r, size=(z, cells_per_plane))
    pos_x = rng.integers(r, x - r, size=(z, cells_per_plane))
    base = rng.uniform(40.0, 300.0, size=(z, cells_per_plane)).astype(np.float32)
    inside = brain[pos_y, pos_x] > 0.05
    vols = []
    for _ in range(n):
        vol = np.empty(shape, dtype=np.uint16)
        for k in range(z):
            lam = 100.0 + 60.0 * brain
            amp = base[k] * rng.uniform(0.7, 1.6, size=cells_per_plane).astype(np.float32)
            for i in np.flatnonzero(inside[k]):
                cy, cx = pos_y[k, i], pos_x[k, i]
                lam[cy - r : cy + r + 1, cx - r : cx + r + 1] += amp[i] * stamp
            # shot noise: Poisson ~ Gaussian at these counts, much faster to draw
            noisy = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
            np.clip(noisy, 0, 65535, out=noisy)
            vol[k] = noisy.astype(np.uint16)
        vols.append(vol)
    return vols


def raw_disk(folder: Path, gb: float, block_mb: int = 64, direct: bool = True) -> float:
    """Sequential write + fsync bandwidth in MB/s (the file is deleted).

    ``direct``: with ``O_DIRECT`` from a page-aligned buffer, the way the rig's writer puts
    uncompressed volumes on the disk (acquisition/writer/_direct.py), so the figure is the
    ceiling of the writer's own path; a buffered write measures the kernel's copy into the
    page cache as much as the disk (465 against 2900 MB/s on this project's VMs). Falls
    back to a buffered write where the filesystem refuses ``O_DIRECT``.
    """
    path = folder / "zaprig-raw-disk-test.bin"
    size = block_mb * 2**20
    block = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
    block[:] = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    n = max(1, round(gb * 1024 / block_mb))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(path, flags | (os.O_DIRECT if direct else 0), 0o644)
    except OSError:
        fd = os.open(path, flags, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, block)
        os.fsync(fd)
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
        block.close()
    return n * size / 1e6 / dt


class _RssSampler(threading.Thread):
    """Peak RSS of this process and of the writer process, sampled every 50 ms."""

    def __init__(self, writer_pid: int) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.writer = psutil.Process(writer_pid)
        self.peak_me = 0
        self.peak_writer = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_me = max(self.peak_me, self.me.memory_info().rss)
            try:
                self.peak_writer = max(self.peak_writer, self.writer.memory_info().rss)
            except psutil.Error:
                return
            self.stop.wait(0.05)


def run_writer(
    folder: Path,
    compression: str,
    vols: list[np.ndarray],
    seconds: float,
    slots: int,
    paced: bool = True,
) -> RunResult:
    """Feed the writer; ``paced=False`` feeds volumes as fast as it takes them (its maximum)."""
    path = folder / f"zaprig-write-test-{compression}.h5"
    path.unlink(missing_ok=True)
    shape = vols[0].shape
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "status": "recording",
        "simulated": True,
        "protocol": "{}",
        "hardware_config": "{}",
        "fish": "{}",
    }
    client = WriterClient(
        path,
        {
            "attrs": attrs,
            "shape_zyx": shape,
            "voxel_size_um": VOXEL_UM,
            "volume_period_s": VOLUME_PERIOD_S,
            "sample_rate_hz": FS,
            "compression": compression,
        },
        n_slots=slots,
        flush_interval_s=1.0,
        batch_samples=600,
        # real time: a full ring drops the volume, as on the rig; unpaced: wait, to find the maximum
        wait_for_buffers=not paced,
    )
    client.start()
    sampler = _RssSampler(client.proc.pid)
    sampler.start()
    n_vol = max(1, round(seconds / VOLUME_PERIOD_S))
    z = shape[0]
    spv = VOLUME_PERIOD_S * FS
    rows = np.zeros((600, 10), dtype=np.float32)
    t0 = time.perf_counter()
    next_rows = 0.0
    period = VOLUME_PERIOD_S if paced else 0.0
    for t in range(n_vol):
        due = t0 + t * period
        # the 10-row stream arrives in 0.1 s batches between volumes
        while True:
            now = time.perf_counter() - t0
            while next_rows <= (now if paced else (t + 1) * VOLUME_PERIOD_S):
                client.stream(rows)
                next_rows += 0.1
            left = due - time.perf_counter()
            if left <= 0:
                break
            time.sleep(min(left, 0.1 - (now % 0.1) + 1e-4))
        start = round(t * spv)
        planes = start + np.rint(np.arange(z) * spv / z).astype(np.int64)
        client.set_volume_meta(t, start, planes, start - 60)
        buf = client.acquire(t)
        if buf is not None:
            np.copyto(buf, vols[t % len(vols)])
            client.commit(t)
        client.poll()
    # the last volume's period ends one period after its trigger
    time.sleep(max(0.0, t0 + n_vol * period - time.perf_counter()))
    t_close = time.perf_counter()
    client.close({"status": "complete"})
    close_s = time.perf_counter() - t_close
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    # what is still only in the page cache is not on the disk yet
    t_sync = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        fsync_s = time.perf_counter() - t_sync
        # evict the file from the page cache so the read-back comes from the disk
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    file_bytes = path.stat().st_size
    with h5py.File(path, "r") as f:
        raw = f["volumes/raw"]
        k = raw.shape[0] // 2
        t_read = time.perf_counter()
        cold = raw[k]
        read_cold = time.perf_counter() - t_read
        t_read = time.perf_counter()
        warm = raw[k]
        read_warm = time.perf_counter() - t_read
        assert np.array_equal(cold, warm)
        written = int(raw.shape[0]) - int(f["volumes/dropped/volume"].shape[0])
    path.unlink()
    return RunResult(
        compression=compression,
        offered=n_vol,
        written=written,
        dropped=client.volumes_dropped,
        elapsed_s=elapsed - close_s,
        nominal_s=n_vol * period,
        close_s=close_s,
        fsync_s=fsync_s,
        file_bytes=file_bytes,
        logical_bytes=written * vols[0].nbytes,
        peak_rss_engine=sampler.peak_me,
        peak_rss_writer=sampler.peak_writer,
        read_cold_s=read_cold,
        read_warm_s=read_warm,
        errors=list(client.errors),
    )


def report(r: RunResult, raw_mbs: float, vol_mb: float) -> list[str]:
    total = r.elapsed_s + r.close_s + r.fsync_s
    stream_mbs = r.logical_bytes / 1e6 / total
    disk_mbs = r.file_bytes / 1e6 / total
    offered_mbs = vol_mb / VOLUME_PERIOD_S
    ratio = r.logical_bytes / r.file_bytes if r.file_bytes else float("nan")
    lines = [
        f"writer, compression {r.compression}:",
        f"  volumes          {r.written} written of {r.offered} offered, {r.dropped} dropped"
        f" (ring full)",
        f"  data rate        {stream_mbs:7.1f} MB/s of volumes through to disk "
        f"(offered {offered_mbs:.1f} MB/s; {stream_mbs / offered_mbs:.2f} of the rate)",
        f"  disk rate        {disk_mbs:7.1f} MB/s of file bytes = {disk_mbs / raw_mbs:.2f} x raw disk"
        f" ({raw_mbs:.0f} MB/s)",
        f"  timing           feeding {r.elapsed_s:.1f} s (nominal {r.nominal_s:.1f} s; "
        f"{r.offered * vol_mb / r.elapsed_s:.0f} MB/s offered), close "
        f"{r.close_s:.1f} s (the writer's backlog), final fsync {r.fsync_s:.1f} s",
        f"  compression      {ratio:.2f} x ({r.file_bytes / 1e9:.2f} GB file for "
        f"{r.logical_bytes / 1e9:.2f} GB of volumes)",
        f"  peak RSS         engine side {r.peak_rss_engine / 1e9:.2f} GB, writer "
        f"{r.peak_rss_writer / 1e9:.2f} GB (both count the shared ring pages they touch)",
        f"  read one volume  {r.read_cold_s:.2f} s cold ({vol_mb / r.read_cold_s:.0f} MB/s), "
        f"{r.read_warm_s:.2f} s warm",
    ]
    for e in r.errors:
        lines.append(f"  writer error     {e}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each writer run")
    ap.add_argument("--dir", type=Path, default=None, help="folder to test (default: temp dir)")
    ap.add_argument("--raw-gb", type=float, default=3.0, help="GB for the raw disk test")
    ap.add_argument("--slots", type=int, default=6, help="volume slots in the ring (rig default)")
    ap.add_argument(
        "--compression", nargs="+", default=["none", "lz4"], choices=("none", "lz4", "zstd")
    )
    ap.add_argument("--quick", action="store_true", help="10 s runs, 1 GB raw test")
    ap.add_argument(
        "--max-rate",
        action="store_true",
        help="also feed uncompressed volumes as fast as the writer takes them: its maximum "
        "MB/s against the raw disk (issue 7: >= 0.9)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.raw_gb = 10.0, 1.0
    folder = args.dir or Path(tempfile.mkdtemp(prefix="zaprig-write-"))
    folder.mkdir(parents=True, exist_ok=True)
    vol_bytes = int(np.prod(SHAPE_ZYX)) * 2
    n_vol = max(1, round(args.seconds / VOLUME_PERIOD_S))
    need = max(args.raw_gb * 2**30, n_vol * vol_bytes) * 1.1
    free = shutil.disk_usage(folder).free
    print(
        f"folder    {folder}: {free / 1e9:.1f} GB free; the largest run needs {need / 1e9:.1f} GB"
    )
    if free < need:
        print(
            f"not enough free disk for {args.seconds:g} s at {vol_bytes / 1e6:.0f} MB per volume:"
            " use --seconds with a smaller value, or --dir on a bigger disk"
        )
        return 1
    try:
        raw_mbs = raw_disk(folder, args.raw_gb)
        print(f"raw disk  {raw_mbs:.0f} MB/s sequential write + fsync ({args.raw_gb:g} GB)")
        t = time.perf_counter()
        vols = make_volumes(3, SHAPE_ZYX)
        print(
            f"volumes   3 x {SHAPE_ZYX} uint16 ({vol_bytes / 1e6:.0f} MB) generated in "
            f"{time.perf_counter() - t:.1f} s; rate 1 per {VOLUME_PERIOD_S} s = "
            f"{vol_bytes / 1e6 / VOLUME_PERIOD_S:.0f} MB/s; ring {args.slots} slots "
            f"({args.slots * vol_bytes / 1e9:.1f} GB shared memory)"
        )
        for comp in args.compression:
            r = run_writer(folder, comp, vols, args.seconds, args.slots)
            print("\n".join(report(r, raw_mbs, vol_bytes / 1e6)), flush=True)
        if args.max_rate:
            r = run_writer(folder, "none", vols, args.seconds, args.slots, paced=False)
            mbs = r.logical_bytes / 1e6 / (r.elapsed_s + r.close_s + r.fsync_s)
            print(
                f"max rate  uncompressed, unpaced: {r.written} volumes in "
                f"{r.elapsed_s + r.close_s + r.fsync_s:.1f} s incl. close and fsync = {mbs:.0f} MB/s"
                f" = {mbs / raw_mbs:.2f} x raw disk (limit >= 0.9)",
                flush=True,
            )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
