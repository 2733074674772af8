"""One description of a training setup, whether it came from an Atlas YAML or a shell launch script.

Values use Atlas words (micro_batch_size, warmup_steps, ...). `origin` says where each came from: a flag,
a YAML key, or the launched tool's default when the flag is absent. A script's command is read by the
launcher of the tool it runs (atlas/planning/launchers), in that tool's own terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.config.loader import load_config
from atlas.config.schema import AtlasConfig
from atlas.planning.launch import LaunchScript, parse_launch_script
from atlas.planning.launchers import Reading, get_launcher
from atlas.planning.run_plan import Hardware, resolve_run_plan


@dataclass
class Setup:
    kind: str  # "script" or "yaml"
    values: dict[str, Any]
    origin: dict[str, str]
    world_size: int
    world_size_origin: str
    unknown_flags: list[str] = field(default_factory=list)
    launch: LaunchScript | None = None
    cfg: AtlasConfig | None = None
    text: str = ""
    tool: str = "atlas"  # the launcher's key (atlas/planning/launchers); "atlas" for a YAML
    tool_label: str = "Atlas"
    reading: Reading | None = None  # the launcher's reading of a script's command

    @property
    def effective_batch_size(self) -> int | None:
        if "micro_batch_size" not in self.values:
            return None
        return self.values["micro_batch_size"] * self.world_size * (self.values.get("gradient_accumulation_steps") or 1)

    def covers(self, parameter: str) -> bool:
        """A rule of the script's own tool already judges this parameter."""
        return self.reading is not None and any(rule.parameter == parameter for rule in self.reading.rules)


def setup_from_script(text: str, gpus: int | None = None) -> Setup:
    """The launch command read by its own tool's launcher; flags it does not know are kept in `unknown_flags`."""
    launch = parse_launch_script(text)
    command = launch.training
    if command is None:
        raise ValueError("no launch command found (accelerate launch, torchrun, deepspeed, python or a tool's command)")
    launcher = get_launcher(command.tool)
    reading = launcher.read(command, gpus)
    if launcher.key == "atlas":
        config = reading.values.get("config")
        if not config or not Path(config).is_file():
            from atlas.config.errors import ConfigError

            raise ConfigError(f"the script launches Atlas with --config {config or '(none)'}, which is not a file "
                              f"here ({Path.cwd()}): run `atlas doctor` from the folder the script runs in, or on "
                              "the config itself with --gpus N")
        setup = setup_from_yaml(config, reading.world_size)
        setup.world_size_origin, setup.launch, setup.reading = reading.world_size_origin, launch, reading
        return setup
    return Setup("script", reading.values, reading.origin, reading.world_size or gpus or 1, reading.world_size_origin,
                 reading.unknown_flags, launch, None, text, launcher.key, launcher.label, reading)


def setup_from_yaml(path: str | Path, gpus: int | None = None) -> Setup:
    cfg = load_config(path)
    t, d = cfg.training, cfg.data
    world = gpus or 1
    run = resolve_run_plan(cfg, Hardware(world_size=world))  # the batch `atlas train` would run (or its error)
    values = {
        "micro_batch_size": run.micro_batch_size, "gradient_accumulation_steps": run.gradient_accumulation_steps,
        "learning_rate": t.learning_rate, "lr_scheduler": t.lr_scheduler, "warmup_steps": t.warmup_steps,
        "max_steps": t.max_steps, "checkpoint_interval": t.checkpoint_interval,
        "checkpoints_total_limit": t.checkpoints_total_limit, "mixed_precision": run.mixed_precision,
        "num_workers": cfg.data_loading.num_workers, "sampling": d.sampling, "strategy": t.strategy,
        "gradient_checkpointing": cfg.memory_optimization.gradient_checkpointing,
        "state_noise_snr": getattr(d, "state_noise_snr", None),
        "image_aug": bool(getattr(getattr(d, "image_aug", None), "enabled", False)),
    }
    keys = {"micro_batch_size": "data.batch_size", "sampling": "data.sampling", "num_workers": "data_loading.num_workers",
            "gradient_checkpointing": "memory_optimization.gradient_checkpointing", "state_noise_snr": "data.state_noise_snr",
            "image_aug": "data.image_aug"}
    origin = {k: keys.get(k, f"training.{k}") for k in values}
    return Setup("yaml", values, origin, world, "--gpus" if gpus else "assumed 1 (--gpus not given)", [], None, cfg,
                 Path(path).read_text())


def read_setup(path: str | Path, gpus: int | None = None) -> Setup:
    """YAML by extension or content; anything else is read as a shell script."""
    from atlas.textfile import read_text_file

    path = Path(path)
    text = read_text_file(path, "launch script")
    if path.suffix in (".yaml", ".yml"):
        return setup_from_yaml(path, gpus)
    return setup_from_script(text, gpus)
