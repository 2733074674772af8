"""Policies: vision backbones, language encoders, fusion transformer, action heads → AtlasPolicy.

`atlas.config` is imported first because its schema imports `atlas.models.config`; importing it here
breaks the cycle for any entry point that starts at `atlas.models.*`.
"""

import atlas.config  # noqa: F401
