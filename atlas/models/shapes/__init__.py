"""Planning-only shapes of published VLAs (pi0, pi0.5, pi0-FAST, SmolVLA, OpenVLA-7B): importing registers them."""

from atlas.models.shapes import presets  # noqa: F401
