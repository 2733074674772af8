"""Config: schema, layered loading, clear errors."""

from atlas.config.errors import ConfigError
from atlas.config.loader import dump_config, load_config
from atlas.config.schema import AtlasConfig

__all__ = ["AtlasConfig", "ConfigError", "dump_config", "load_config"]
