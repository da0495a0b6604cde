"""The session set-up: everything arming checks and builds before anything moves.

The output folder (it exists, can be written, holds the session's size), the
file's name (reserved with its lock file, so concurrent runs never share one),
the file's root attributes (:class:`SessionAttrs`) and the writer's frozen spec
(:class:`~acquisition.writer.WriterSpec`), the live readout's labels and
layout, and the order the devices open in. The runner (``rig/engine.py``) calls
these in order and owns what happens when one fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from acquisition.daq import Daq
from acquisition.fish import TUNINGS, VirtualFish
from acquisition.laser import Laser
from acquisition.microscope import Microscope
from acquisition.writer import WriterClient, WriterSpec
from rig import __version__
from rig.core.clock import Clock, utc_now_iso
from rig.core.config import RigConfig
from rig.core.errors import ConfigError, SessionFileError
from rig.core.events import Kind, Source
from rig.core.layout import FORMAT, FORMAT_VERSION
from rig.core.lock import lock_path
from rig.devices import Devices
from rig.readout import LabelIndex, LiveRow, SessionReadout, live_layout, prepare_labels
from stimuli.protocol import Protocol
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE

__all__ = ["SessionAttrs", "SessionSetup", "open_devices"]


@dataclass(frozen=True, slots=True)
class SessionAttrs:
    """The session file's root attributes when it is created (the contract's names)."""

    format: str
    format_version: int
    status: str
    started_at: str
    ended_at: str
    software_version: str
    simulated: bool
    hardware_config: str
    hardware_config_source: str
    protocol: str
    protocol_sha256: str
    fish: str
    seed: int
    clock: str
    volumes_expected: int
    swim_power_units: str

    def as_dict(self) -> dict[str, Any]:
        """In the order the file lists them."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SessionSetup:
    """What one session is made of, and the checks and records arming builds from it."""

    rig: RigConfig
    protocol: Protocol
    schedule: Schedule
    out_dir: Path
    clock: Clock
    seed: int
    fish_meta: Mapping[str, Any]
    session_name: str | None = None
    rig_source: str = ""
    #: The session's own label volume for the live readout (overrides the rig's).
    label_file: str | None = None
    virtual: bool = False

    def planned_bytes(self) -> int:
        """About how many bytes the session file will take (checked against disk free)."""
        tl = self.schedule
        z, y, x = self.rig.microscope.shape_zyx
        vol = tl.n_volumes * z * y * x * 2
        stream = tl.end_sample * 10 * 4
        frames = tl.duration_s * self.rig.display.refresh_hz * FRAME_DTYPE.itemsize
        return int(vol + stream + frames)

    def check_folder(self) -> None:
        """The output folder exists, takes a file, and has room for the session."""
        out = self.out_dir
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SessionFileError(f"{out}: cannot create the output folder: {e}") from None
        try:  # a folder we cannot write to (or /proc) must fail here, not in the writer
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as e:
            raise SessionFileError(
                f"{out}: cannot write a session file there ({e.strerror or e}): "
                "pick another --out folder"
            ) from None
        need = self.planned_bytes()
        free = shutil.disk_usage(out).free
        if free < need * 1.05:
            raise SessionFileError(
                f"{out}: {free / 1e9:.2f} GB free, the session needs about "
                f"{need / 1e9:.2f} GB: free space, pick another --out folder, or use compression"
            )

    def session_path(self) -> Path:
        """A new file's name, reserved: ``{UTC stamp}_{fish id or rig}[-k].h5``."""
        stamp = utc_now_iso().replace(":", "").replace("-", "")[:15]
        # the fish id names the file: only letters, digits, '.', '-' and '_' (no folders)
        fish_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(self.fish_meta.get("fish_id", "") or ""))
        fish_id = fish_id.strip("._")[:100]  # a name the file system takes (255 bytes)
        base = self.session_name or f"{stamp}_{fish_id or self.rig.name}"
        p = self.out_dir / f"{base}.h5"
        k = 1
        # The name is reserved by creating its lock file exclusively (O_EXCL: one run wins
        # however many start in the same second with the same fish id); the writer then
        # takes that lock. A lock without a file: another run is creating that file now.
        while True:
            if not p.exists():
                try:
                    os.close(os.open(lock_path(p), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                    return p
                except FileExistsError:
                    pass
            k += 1
            p = self.out_dir / f"{base}-{k}.h5"

    def attrs(self) -> SessionAttrs:
        return SessionAttrs(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            status="recording",
            started_at=utc_now_iso(),
            ended_at="",
            software_version=__version__,
            simulated=bool(self.rig.simulated),
            hardware_config=self.rig.to_json(),
            hardware_config_source=self.rig_source,
            protocol=self.protocol.to_json(),
            protocol_sha256=self.protocol.sha256,
            fish=json.dumps(dict(self.fish_meta), sort_keys=True),
            seed=int(self.seed),
            clock=type(self.clock).__name__,
            volumes_expected=int(self.schedule.n_volumes),
            swim_power_units=self.protocol.swim_power,
        )

    def analog_inputs(self) -> tuple[tuple[str, str], ...]:
        """(name, channel) of each input recorded in /analog_inputs (beyond the 10 rows)."""
        d = self.rig.daq
        pd = (("photodiode", d.photodiode_channel),) if d.photodiode_channel else ()
        return pd + tuple(d.extra_inputs.items())

    @property
    def readout_on(self) -> bool:
        return self.rig.readout.enabled or bool(self.label_file)

    def brain_triggered_steps(self) -> int:
        """How many steps wait for the brain; they need the live readout (else ConfigError)."""
        waits = [st for c in self.protocol.conditions for st in c.steps if st.wait_for]
        if waits and not self.readout_on:
            raise ConfigError(
                f"protocol {self.protocol.name!r}: {len(waits)} brain-triggered step(s) "
                "(wait_for) need the live readout: set [readout] enabled = true in the rig config"
            )
        return len(waits)

    def readout_layout(
        self, fish: VirtualFish | None
    ) -> tuple[LabelIndex | None, dict[str, Any] | None]:
        """The live readout's labels and the file's /live layout (None, None without it).

        A bad label file fails here, before the session file exists.
        """
        if not self.readout_on:
            return None, None
        positions = fish.brain.positions if fish is not None else None
        labels = prepare_labels(self.rig, positions, self.label_file)
        return labels, live_layout(self.rig, labels, self.label_file)

    def empty_labels_warning(self, labels: LabelIndex | None) -> str | None:
        """A label volume given by the user that holds no label: the readout traces nothing."""
        from_file = bool(self.label_file) or self.rig.readout.labels == "file"
        if labels is None or labels.n != 0 or not from_file:
            return None
        return (
            f"the label volume {self.label_file or self.rig.readout.label_file} holds no "
            "label above 0 (all background): the live readout traces 0 neurons; give the "
            "label volume registered to this fish"
        )

    def writer_spec(
        self, attrs: SessionAttrs, fish: VirtualFish | None, live: Mapping[str, Any] | None
    ) -> WriterSpec:
        m = self.rig.microscope
        return WriterSpec(
            attrs=attrs.as_dict(),
            shape_zyx=m.shape_zyx,
            voxel_size_um=m.voxel_size_um,
            volume_period_s=m.volume_period_s,
            sample_rate_hz=self.rig.daq.sample_rate_hz,
            compression=self.rig.writer.compression,
            ground_truth_positions=fish.brain.positions if fish is not None else None,
            analog_inputs=self.analog_inputs(),
            ground_truth_tuning=fish.brain.tuning if fish is not None else None,
            tuning_names=TUNINGS,
            live=live,
        )

    def session_readout(
        self,
        writer: WriterClient,
        labels: LabelIndex | None,
        brain_triggered_steps: int,
        fish: VirtualFish | None,
        event: Callable[[int, Kind, str], None],
        now: Callable[[], int],
        listeners: list[Callable[[LiveRow], None]],
    ) -> SessionReadout:
        """The live readout's side of the session (its lane, /live, brain triggers)."""
        return SessionReadout(
            self.rig,
            self.schedule,
            writer,
            labels,
            virtual=self.virtual,
            brain_triggers=bool(brain_triggered_steps),
            tuning=fish.brain.tuning if fish is not None else None,
            tuning_names=TUNINGS,
            event=event,
            now=now,
            listeners=listeners,
        )

    def writer(self, path: Path, spec: WriterSpec) -> WriterClient:
        """The writer's client for ``path`` (not started)."""
        w = self.rig.writer
        fs = self.rig.daq.sample_rate_hz
        # rows go to the writer process every 0.1 s of samples; in virtual time every 0.5 s
        # (still within the writer's flush interval): each message costs the writer an h5py
        # resize and write per column, whatever its length, and was the writer's whole load
        batch_s = 0.5 if self.virtual else 0.1
        return WriterClient(
            path,
            spec,
            n_slots=w.volume_slots,
            flush_interval_s=w.flush_interval_s,
            batch_samples=max(self.rig.daq.chunk_samples, round(batch_s * fs)),
            wait_for_buffers=self.virtual,
        )


def open_devices(devices: Devices, failed: Callable[[Source, BaseException], None]) -> None:
    """Open the laser, the DAQ and the camera, in that order; ``failed(source, error)`` hears
    which one did not open (then the error is raised again)."""
    order: tuple[tuple[Source, Laser | Daq | Microscope], ...] = (
        ("laser", devices.laser),
        ("daq", devices.daq),
        ("camera", devices.microscope),
    )
    source: Source = "engine"
    try:
        for kind, device in order:
            source = kind  # named in the fault if this one fails to open
            device.open()
    except BaseException as e:
        failed(source, e)
        raise
