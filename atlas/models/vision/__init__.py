"""Vision backbones by name (`model.vision.name`); see `atlas.models.vision.registry`."""
