"""The base class every config section derives from.

Sections live beside the component they configure (LeRobot style): `atlas/data/config.py`,
`atlas/models/config.py`, `atlas/sim/config.py`; `atlas/config/schema.py` composes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors (with did-you-mean, see `atlas.config.errors`), so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
