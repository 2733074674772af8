"""Open a local Hugging Face folder (`model.vision.path`, `model.language.path`) or say why not, by name.

transformers raises OSError, ValueError, KeyError, JSONDecodeError, safetensors errors ... for folders that
are missing, half-copied, of an unknown architecture, or asking for remote code (never run: we do not pass
trust_remote_code); each becomes one ConfigError naming the config key and the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from atlas.config.errors import ConfigError

T = TypeVar("T")


def open_hf_folder(field: str, path: str | None, load: Callable[[str], T]) -> T:
    """`load(path)` for a local folder with a config.json; any failure is a ConfigError naming `field`."""
    if not path:
        raise ConfigError(f"{field}: needs a local folder of a transformers model")
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{field}: {folder} is not a folder" + ("" if folder.exists() else " (it does not exist)"))
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{field}: {folder} has no config.json; it is not a saved transformers model")
    try:
        return load(str(folder))
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - transformers' many error types all mean "this folder is unusable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(f"{field}: {folder} cannot be loaded as a local transformers model "
                          f"({type(err).__name__}: {first[:300]})") from None
