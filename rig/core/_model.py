"""The base of every rig config model (rig.core.config, rig.core.simulation)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Frozen, no unknown field, and no NaN or infinity: never a physical setting."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
