"""Action heads by name (`model.head.name`); see `atlas.models.heads.registry`."""
