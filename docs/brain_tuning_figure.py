"""docs/brain-tuning.png: the virtual brain's tuned populations in an exported simulated session.

Runs a short protocol (flashes, forward flow, a looming shadow) in virtual time on the
default simulated rig, exports it with ``zaprig export --format zapbench``, and plots
each population's mean exported trace (z-scored) under the stimulus: luminance,
forward flow velocity and the shadow's state. Usage: python docs/brain_tuning_figure.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorstore as ts  # noqa: E402

from rig.core.config import load_config  # noqa: E402
from rig.engine import Engine  # noqa: E402
from rig.export import export_zapbench  # noqa: E402
from rig.session import read_table  # noqa: E402
from stimuli.library import Flash, Flow, Shadow  # noqa: E402
from stimuli.protocol import Protocol, condition, step  # noqa: E402

OUT = REPO / "docs" / "brain-tuning.png"


def main() -> int:
    base = load_config()
    rig = base.with_simulation(fish=base.sim.fish.model_copy(update={"n_neurons": 2000}))
    proto = Protocol(
        name="tuning figure",
        conditions=[
            condition("flash", step(Flash(period_s=20.0, on_s=10.0), 20.0), seconds=60.0),
            condition("flow", step(Flow(gain=2.0, closed_loop=False), 60.0), seconds=60.0),
            # a disk looming right above the fish (the default start is off to its side)
            condition(
                "shadow",
                step(Shadow(mode="loom", period_s=10.0, start_mm=(0.0, 2.0)), 10.0),
                seconds=60.0,
            ),
        ],
    )
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(rig, proto, Path(d), clock="virtual", seed=2)
        engine.run()
        assert engine.path is not None
        with h5py.File(engine.path, "r") as f:
            starts = f["volumes/start_sample"][...]
            fr = read_table(f["stimulus/frames"])
        out = export_zapbench(engine.path, Path(d) / "export", progress=False).out
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / "traces")}}
        traces = np.asarray(ts.open(spec).result().read().result())
        tuning = np.array(json.loads((out / "tuning.json").read_text())["tuning"])
    k = np.maximum(np.searchsorted(fr["flip_sample"], starts, side="right") - 1, 0)
    t = np.arange(len(starts)) * rig.microscope.volume_period_s
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[1, 3])
    axes[0].plot(t, fr["luminance"][k], label="luminance")
    axes[0].plot(t, np.abs(fr["velocity"][k]) / 10.0, label="|flow velocity| / 10 mm/s")
    axes[0].plot(t, fr["disk_radius_mm"][k] / 15.0, label="shadow radius / 15 mm")
    axes[0].legend(loc="upper right", fontsize=7)
    axes[0].set_ylabel("stimulus")
    for i, name in enumerate(("light_on", "light_off", "forward", "loom", "motor", "spontaneous")):
        m = traces[:, tuning == name].mean(axis=1)
        z = (m - m.mean()) / (m.std() + 1e-9)
        axes[1].plot(t, z + 3.0 * i, label=f"{name} ({int((tuning == name).sum())} cells)")
    axes[1].set_ylabel("mean exported trace (z-scored, offset)")
    axes[1].set_xlabel("time (s): flash | forward flow | looming shadow")
    axes[1].legend(loc="upper right", fontsize=7)
    fig.suptitle("Virtual brain: populations tuned to what the conditions probe")
    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
