"""Instruction encoders by name (`model.language.name`); see `atlas.models.language.registry`."""
