"""Initialise a fresh policy from a trained one (`model.pretrained`, `atlas train --init-from PATH`).

What PATH may be, tried in this order (`SOURCE_KINDS`):
  a `*.safetensors` file            its tensors (normalization.json beside it, if any, for data.stats: pretrained)
  an Atlas run folder               its checkpoints/best (else latest), or `model.pretrained_checkpoint`: latest|best|step_N
  RDT's release folder              config.json + pytorch_model.bin (or model.safetensors) without Atlas's manifest,
                                    read by atlas.models.rdt.release
  an Atlas checkpoint folder        model.safetensors (+ ema/model.safetensors), its manifest verified when present
Pointers and manifests are read with atlas/engine/checkpoint.py (CheckpointStore.pointer, verify, load_weights).

Only the weights are taken: the loop starts at step 1 with a fresh optimizer, schedule and data order; a resumed
fine-tune loads its own checkpoint and never the base again. The weights go into the whole policy before the
strategy shards it. The load report (tensors loaded, missing, unexpected, shape-mismatched, re-initialised, by
top-level module) goes to train.log and plan.json; anything that does not load is a ConfigError naming the
tensors unless `model.pretrained_reinit` names its module or `model.pretrained_strict` is false. LoRA adapters the
new policy adds are new by design (never "missing"); a LoRA fine-tune used as a base has its adapters merged.

Normalization: the new data's statistics unless `data.stats: pretrained`, which takes the checkpoint's
normalization.json (statistics and modes, as openpi keeps a base model's statistics for the same robot). Either
way a warning names the action dimensions where the new data leaves the range of the statistics in use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import MANIFEST, CheckpointStore, load_weights, step_dir_name, verify
from atlas.models.base import CONFIG_NAME, NORMALIZATION_NAME, WEIGHTS_NAME
from atlas.models.lora import is_adapter, merge_lora_state

SHOWN = 12  # tensors named per category in an error or log line


# --------------------------------------------------------------------------------------------------
# where the weights are
# --------------------------------------------------------------------------------------------------
@dataclass
class PretrainedSource:
    """A resolved `model.pretrained`: what it is, where its weights and statistics are."""

    path: Path
    kind: str  # safetensors | atlas-run | atlas-checkpoint | rdt-release
    directory: Path  # the checkpoint folder (config.json, normalization.json)
    weights: Path | None  # the safetensors file read (None: the RDT reader reads the folder)
    weights_kind: str  # ema | raw | file | rdt
    notes: list[str] = field(default_factory=list)

    def label(self) -> str:
        where = self.weights if self.weights is not None else self.directory
        return f"{where} ({self.kind}, {self.weights_kind} weights)"

    def config(self) -> dict:
        """The source's Atlas config.json ({} when it has none, e.g. a bare file or RDT's own)."""
        path = self.directory / CONFIG_NAME
        if self.kind == "rdt-release" or not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise ConfigError(f"model.pretrained: {path} is not valid JSON ({err})") from None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The source's tensors on the CPU, LoRA adapters (of a LoRA fine-tune) merged into their base weights."""
        if self.kind == "rdt-release":
            from atlas.models.rdt.release import load_release_state_dict

            state = load_release_state_dict(self.directory)
        else:
            state = load_weights(self.weights)
        lora = (self.config().get("model") or {}).get("lora")
        if any(is_adapter(k) for k in state):
            if not lora:
                raise ConfigError(f"model.pretrained: {self.label()} holds LoRA adapters but its config.json has "
                                  "no model.lora block (alpha unknown); export it with `atlas export --merge-lora`")
            state = merge_lora_state(state, float(lora.get("alpha", 16.0)))
            self.notes.append("the source's LoRA adapters were merged into its base weights")
        return state

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor shapes without reading the tensors (safetensors header); RDT's reader for its release."""
        if self.kind == "rdt-release":
            return {k: tuple(v.shape) for k, v in self.state_dict().items()}
        from atlas.engine.compat import checkpoint_shapes

        shapes = checkpoint_shapes(self.weights)
        if any(is_adapter(k) for k in shapes):  # merged on load: the adapters never reach the new policy
            shapes = {k: v for k, v in shapes.items() if not is_adapter(k)}
        return shapes


def _is_atlas_config(folder: Path) -> bool:
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model" in config and "meta" in config


def _is_rdt_release(path: Path) -> bool:
    if not path.is_dir() or (path / MANIFEST).is_file() or not (path / CONFIG_NAME).is_file():
        return False
    if (path / "pytorch_model.bin").is_file():
        return True
    if _is_atlas_config(path):
        return False
    from atlas.models.rdt.release import is_rdt_release

    return bool(is_rdt_release(path))


def _choose_weights(folder: Path, weights: str) -> tuple[Path, str]:
    """EMA or raw, as `atlas eval` picks them (atlas/sim/checkpoint.py), its error re-worded for this key."""
    from atlas.sim.checkpoint import choose_weights

    try:
        return choose_weights(folder, weights)
    except ConfigError as err:
        raise ConfigError(f"model.pretrained: {str(err).split(': ', 1)[-1]}") from None


def _checkpoint_folder(path: Path, checkpoint: str, weights: str) -> PretrainedSource:
    problem = verify(path) if (path / MANIFEST).is_file() else None  # exported folders carry no manifest
    if problem:
        raise ConfigError(f"model.pretrained: {problem}")
    file, kind = _choose_weights(path, weights)
    notes = [] if kind == weights else [f"no EMA weights in {path}; using the raw weights"]
    return PretrainedSource(path, "atlas-checkpoint", path, file, kind, notes)


def _run_folder(path: Path, checkpoint: str, weights: str) -> PretrainedSource:
    store = CheckpointStore(path / "checkpoints")
    notes = []
    if checkpoint.startswith("step_"):
        folder = store.root / step_dir_name(int(checkpoint.split("_", 1)[1]))
        if not folder.is_dir():
            have = ", ".join(p.name for p in store.step_dirs()) or "none"
            raise ConfigError(f"model.pretrained_checkpoint={checkpoint}: {folder} does not exist; checkpoints: {have}")
    else:
        folder = store.pointer(checkpoint)
        if folder is None and checkpoint == "best":
            folder = store.pointer("latest")
            notes.append(f"{store.root} has no best checkpoint (no validation or eval selected one); using latest")
        if folder is None:
            raise ConfigError(f"model.pretrained: {store.root} has no {checkpoint} checkpoint")
    source = _checkpoint_folder(folder, checkpoint, weights)
    return PretrainedSource(path, "atlas-run", folder, source.weights, source.weights_kind, notes + source.notes)


def _file(path: Path, checkpoint: str, weights: str) -> PretrainedSource:
    return PretrainedSource(path, "safetensors", path.parent, path, "file")


def _rdt(path: Path, checkpoint: str, weights: str) -> PretrainedSource:
    return PretrainedSource(path, "rdt-release", path, None, "rdt")


# (name, recognises PATH, resolves it) in the order they are tried
SOURCE_KINDS: list[tuple[str, Callable[[Path], bool], Callable[[Path, str, str], PretrainedSource]]] = [
    ("safetensors file", lambda p: p.is_file() and p.suffix == ".safetensors", _file),
    ("Atlas run folder", lambda p: (p / "checkpoints").is_dir(), _run_folder),
    ("RDT release folder", _is_rdt_release, _rdt),
    ("Atlas checkpoint folder", lambda p: (p / WEIGHTS_NAME).is_file() or (p / MANIFEST).is_file(), _checkpoint_folder),
]


def resolve_source(path: str | Path, checkpoint: str = "best", weights: str = "ema") -> PretrainedSource:
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"model.pretrained: {path} does not exist")
    for _, recognises, resolve in SOURCE_KINDS:
        if recognises(path):
            return resolve(path, checkpoint, weights)
    kinds = ", ".join(name for name, _, _ in SOURCE_KINDS)
    raise ConfigError(f"model.pretrained: {path} is none of: {kinds} (no checkpoints/, {WEIGHTS_NAME}, "
                      f"{MANIFEST} or RDT's config.json + pytorch_model.bin)")


# --------------------------------------------------------------------------------------------------
# what loads
# --------------------------------------------------------------------------------------------------
def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass
class LoadReport:
    """Tensor names by fate. `mismatched` rows are (name, source shape, policy shape)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    new_adapters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problems(self, reinit: list[str]) -> dict[str, list[str]]:
        """What would not load and no `pretrained_reinit` prefix covers."""
        return {
            "missing": [n for n in self.missing if not _under(n, reinit)],
            "unexpected": [n for n in self.unexpected if not _under(n, reinit)],
            "shape-mismatched": [f"{n} {tuple(s)} in the checkpoint vs {tuple(t)} in the policy"
                                 for n, s, t in self.mismatched if not _under(n, reinit)],
        }

    def by_module(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        rows = [("loaded", self.loaded), ("missing", self.missing), ("unexpected", self.unexpected),
                ("mismatched", [m[0] for m in self.mismatched]), ("reinitialised", self.reinitialised),
                ("new_adapters", self.new_adapters)]
        for what, names in rows:
            for name in names:
                entry = out.setdefault(name.split(".")[0], {k: 0 for k, _ in rows})
                entry[what] += 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["counts"] = {k: len(data[k]) for k in ("loaded", "missing", "unexpected", "mismatched", "reinitialised",
                                                    "new_adapters")}
        data["by_module"] = self.by_module()
        del data["loaded"]  # counted and by module; a 1 B model's hundreds of names stay out of plan.json
        return data

    def lines(self) -> list[str]:
        counts = self.to_dict()["counts"]
        lines = [f"pretrained: {self.source}: " + ", ".join(f"{v} {k}" for k, v in counts.items())]
        for module, row in self.by_module().items():
            lines.append(f"pretrained:   {module}: " + ", ".join(f"{v} {k}" for k, v in row.items() if v))
        if self.reinitialised:
            modules = sorted({n.split(".")[0] for n in self.reinitialised})
            lines.append(f"pretrained: re-initialised (fresh weights, not from the checkpoint): {', '.join(modules)} "
                         f"({len(self.reinitialised)} tensors: {_names(self.reinitialised)})")
        for name, what in (("missing", self.missing), ("unexpected", self.unexpected)):
            if what:
                lines.append(f"pretrained: {name}: {_names(what)}")
        lines += [f"pretrained: {note}" for note in self.notes]
        return lines


def _names(names: list[str]) -> str:
    more = f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def compare(policy_shapes: dict[str, tuple[int, ...]], source_shapes: dict[str, tuple[int, ...]],
            reinit: list[str], label: str) -> LoadReport:
    """Sort every tensor name of the policy and the source into the report's categories (shapes only)."""
    report = LoadReport(label)
    for name, shape in policy_shapes.items():
        if is_adapter(name) and name not in source_shapes:
            report.new_adapters.append(name)
        elif _under(name, reinit):
            report.reinitialised.append(name)
        elif name not in source_shapes:
            report.missing.append(name)
        elif tuple(source_shapes[name]) != tuple(shape):
            report.mismatched.append((name, list(source_shapes[name]), list(shape)))
        else:
            report.loaded.append(name)
    report.unexpected = [n for n in source_shapes if n not in policy_shapes]
    return report


def _check_reinit(policy_names: list[str], reinit: list[str]) -> None:
    for prefix in reinit:
        if not any(_under(n, [prefix]) for n in policy_names):
            tops = sorted({n.split(".")[0] for n in policy_names})
            raise ConfigError(f"model.pretrained_reinit: no tensor of the policy starts with {prefix!r}; "
                              f"modules: {', '.join(tops)}")


def _raise_if_strict(report: LoadReport, cfg) -> None:
    problems = {k: v for k, v in report.problems(cfg.pretrained_reinit).items() if v}
    if not problems:
        return
    if not cfg.pretrained_strict:
        report.notes.append("pretrained_strict=false: " + "; ".join(
            f"{len(v)} {k} kept at their fresh initialisation" for k, v in problems.items()))
        return
    detail = "; ".join(f"{k} ({len(v)}): {_names(v)}" for k, v in problems.items())
    modules = sorted({n.split(".")[0].split(" ")[0] for v in problems.values() for n in v})
    raise ConfigError(
        f"model.pretrained: {report.source} does not fit the policy: {detail}. Re-initialise those modules with "
        f"model.pretrained_reinit=[{','.join(modules)}] (e.g. a new action head), or set "
        "model.pretrained_strict=false to load what matches"
    )


def load_into(policy: nn.Module, cfg, source: PretrainedSource | None = None) -> LoadReport:
    """Copy the source's tensors into `policy` (the whole, unsharded module) following `cfg` (model.*)."""
    source = source or resolve_source(cfg.pretrained, cfg.pretrained_checkpoint, cfg.pretrained_weights)
    target = policy.state_dict()
    _check_reinit(list(target), cfg.pretrained_reinit)
    state = source.state_dict()
    report = compare({k: tuple(v.shape) for k, v in target.items()}, {k: tuple(v.shape) for k, v in state.items()},
                     cfg.pretrained_reinit, source.label())
    report.notes = list(source.notes)
    if source.kind == "rdt-release":  # RDT's release holds its network; the encoders come from their own folders
        from atlas.models.rdt.release import RELEASE_MODULES

        encoders = [n for n in report.missing if n.split(".")[0] not in RELEASE_MODULES]
        report.missing = [n for n in report.missing if n.split(".")[0] in RELEASE_MODULES]
        if encoders:
            modules = sorted({n.split(".")[0] for n in encoders})
            report.notes.append(f"RDT's release holds no {'/'.join(modules)} weights: those come from "
                                f"model.{'/'.join(modules)} ({len(encoders)} tensors)")
    _raise_if_strict(report, cfg)
    with torch.no_grad():
        for name in report.loaded:
            target[name].copy_(state[name])  # state_dict() tensors share storage with the parameters
    return report


# --------------------------------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------------------------------
def _read_normalization(folder: Path, what: str) -> dict:
    path = folder / NORMALIZATION_NAME
    if not path.is_file():
        raise ConfigError(f"data.stats=pretrained: {path} is missing ({what} has no statistics to reuse); use "
                          "data.stats=auto for the new data's")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"data.stats=pretrained: {path} is not valid JSON ({err})") from None


def _range_of(stats: dict, mode: str) -> tuple[list[float], list[float]] | None:
    low, high = ("q01", "q99") if mode == "quantile" else ("min", "max")
    entry = stats.get("action", {})
    return (entry[low], entry[high]) if low in entry and high in entry else None


def range_warning(new_stats: dict, used_stats: dict, mode: str, label: str) -> str | None:
    """Which action dimensions of the new data leave the range of the statistics in use (None: all inside)."""
    new = _range_of(new_stats, "min_max")
    used = _range_of(used_stats, mode)
    if new is None or used is None:
        return None
    outside = []
    for i, (lo, hi, ulo, uhi) in enumerate(zip(*new, *used)):
        tol = 1e-3 * max(uhi - ulo, 1e-6)
        if lo < ulo - tol or hi > uhi + tol:
            outside.append(f"dim {i}: data [{lo:.3g}, {hi:.3g}] vs [{ulo:.3g}, {uhi:.3g}]")
    if not outside:
        return None
    return (f"the new data's actions leave the range of {label} in {len(outside)} dimension(s) "
            f"({'; '.join(outside[:6])}{' ...' if len(outside) > 6 else ''}): normalized actions beyond what the "
            "base model saw")


def use_statistics(policy: nn.Module, data, stats_mode: str, folder: Path | None, log) -> dict:
    """`data.stats: pretrained` swaps the policy's and the data transform's normalizer for the checkpoint's."""
    from atlas.data.normalize import Normalizer

    new_stats = data.normalizer.stats
    if stats_mode != "pretrained":
        return {"stats": "data", "source": data.stats_source}
    if folder is None:
        raise ConfigError("data.stats=pretrained needs model.pretrained (the checkpoint whose statistics to reuse)")
    saved = _read_normalization(folder, str(folder))
    for key, dim in (("state", data.meta.state_dim), ("action", data.meta.action_dim)):
        entry = saved.get("stats", {}).get(key, {})
        size = len(next(iter(entry.values()), []))
        if entry and size != dim:
            raise ConfigError(f"data.stats=pretrained: {folder / NORMALIZATION_NAME} has {key} statistics of size "
                              f"{size}, the new data's {key} has {dim}; use data.stats=auto")
    normalizer = Normalizer.from_dict(saved).to(next(policy.buffers(), torch.empty(0)).device)
    policy.normalizer = normalizer
    data.normalizer = normalizer
    data.transform.normalizer = normalizer
    log.info(f"normalization: statistics of the pretrained checkpoint ({folder / NORMALIZATION_NAME}), modes "
             f"{normalizer.modes}")
    warning = range_warning(new_stats, normalizer.stats, normalizer.mode("action"), "the pretrained statistics")
    if warning:
        log.warning(f"normalization: {warning}")
    return {"stats": "pretrained", "source": str(folder / NORMALIZATION_NAME), "range_warning": warning}


# --------------------------------------------------------------------------------------------------
# the loop's one call
# --------------------------------------------------------------------------------------------------
def initialise_from_pretrained(policy: nn.Module, cfg, stats_mode: str, data, log,
                               resumed_from: str | Path | None = None) -> dict | None:
    """Called by the loop where it loads resume weights, before the strategy shards the policy.

    Fresh run with `model.pretrained`: load the weights (report to the log), apply `data.stats`. Resumed run: the
    checkpoint's weights are already in; only `data.stats: pretrained` is re-applied, from the resumed checkpoint's
    own normalization.json (the base is not read again). Returns plan.json's `pretrained` block (None: no base)."""
    if resumed_from is not None:
        if cfg.pretrained is None:
            return None
        normalization = use_statistics(policy, data, stats_mode, Path(resumed_from), log)
        log.info(f"pretrained: resumed fine-tune; weights from {resumed_from}, {cfg.pretrained} not reloaded")
        return {"path": cfg.pretrained, "resumed_from": str(resumed_from), "reloaded": False,
                "normalization": normalization}
    if cfg.pretrained is None:
        use_statistics(policy, data, stats_mode, None, log)  # data.stats=pretrained without a base: the error
        return None
    source = resolve_source(cfg.pretrained, cfg.pretrained_checkpoint, cfg.pretrained_weights)
    report = load_into(policy, cfg, source)
    for line in report.lines():
        log.info(line)
    normalization = use_statistics(policy, data, stats_mode, source.directory, log)
    return {"path": cfg.pretrained, "kind": source.kind, "checkpoint": str(source.directory),
            "weights": str(source.weights or source.directory), "weights_kind": source.weights_kind,
            "report": report.to_dict(), "normalization": normalization}


def check_shapes(cfg, policy: nn.Module) -> tuple[str, str] | None:
    """For `atlas plan`/`atlas doctor`: do the config's model and the pretrained checkpoint agree in shape?
    Read from the checkpoint's header against `policy` built on the meta device (no tensors loaded).
    Returns (verdict: match | differ | unknown, message), None without model.pretrained."""
    mc = cfg.model
    if mc.pretrained is None:
        return None
    try:
        source = resolve_source(mc.pretrained, mc.pretrained_checkpoint, mc.pretrained_weights)
        report = compare({k: tuple(v.shape) for k, v in policy.state_dict().items()}, source.shapes(),
                         mc.pretrained_reinit, source.label())
    except (ConfigError, OSError) as err:
        return "unknown", f"pretrained: could not check {mc.pretrained} against the model ({err})"
    problems = {k: v for k, v in report.problems(mc.pretrained_reinit).items() if v}
    if not problems:
        return "match", (f"pretrained: {source.label()} has the config's model shapes ({len(report.loaded)} tensors "
                         "load" + (f", {len(report.reinitialised)} re-initialised" if report.reinitialised else "") + ")")
    detail = "; ".join(f"{len(v)} {k}: {_names(v)}" for k, v in problems.items())
    verdict = "loads what matches (pretrained_strict=false)" if not mc.pretrained_strict else "training would stop"
    return "differ", f"pretrained: {source.label()} does NOT match the config's model ({detail}); {verdict}"


def plan_notes(cfg, policy: nn.Module) -> list[str]:
    """`check_shapes` as the planner's note lines."""
    checked = check_shapes(cfg, policy)
    return [] if checked is None else [checked[1]]
