"""Measure a policy without a GPU: build it under FakeTensorMode (no real storage, so rdt-1b fits on a
laptop), run forward on fake batches, and record what training would hold.

Activation memory is the bytes autograd saves for backward (torch.autograd.graph.saved_tensors_hooks),
deduplicated by storage and excluding parameters. Recorded at micro-batch 1 and 2 and fitted as
fixed + per_sample × B, separately with and without gradient checkpointing and memory-efficient attention.
Deep models are probed at reduced depth and extrapolated (depth.py): the fake forward is the cost, and
it is linear in the number of blocks. Parameters are counted on the full model built on the meta device.
The forward also records how the model calls SDPA (masks; math kernel pinned), which decides whether a
GPU would run the flash/efficient kernel by default (planner.py).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from atlas.config.schema import AtlasConfig
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.engine.optim import freeze_zero_multipliers
from atlas.models.counting import ParamCounts, count_params
from atlas.planning.depth import DepthPlan, DepthPoint, at_depth, depth_plan

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ActivationFit:
    """Saved-tensor bytes = fixed_bytes + per_sample_bytes × micro-batch (fitted from two probes)."""

    fixed_bytes: float
    per_sample_bytes: float
    samples: dict[int, int] = field(default_factory=dict)

    def predict(self, micro_batch: int) -> float:
        return max(0.0, self.fixed_bytes + self.per_sample_bytes * micro_batch)


@dataclass
class AttentionUse:
    """How the model's forward called F.scaled_dot_product_attention (recorded without memory options)."""

    calls: int = 0
    masked: bool = False  # an explicit attn_mask: the flash kernel cannot take it
    math_pinned: bool = False  # called with the flash and memory-efficient kernels disabled (sdpa_kernel)


class _WatchSDPA(TorchFunctionMode):
    """Records how the model calls SDPA (mask? kernel pinned?), then runs it on the math kernel when
    `force_math`: the "efficient attention off" fit is the math kernel's, whatever this CPU would pick."""

    def __init__(self, use: AttentionUse, force_math: bool = False) -> None:
        super().__init__()
        self.use = use
        self.force_math = force_math

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and torch.is_grad_enabled():  # frozen encoders: no activations
            self.use.calls += 1
            self.use.masked |= (kwargs.get("attn_mask", args[3] if len(args) > 3 else None)) is not None
            backends = torch.backends.cuda
            self.use.math_pinned |= not (backends.flash_sdp_enabled() or backends.mem_efficient_sdp_enabled())
            if self.force_math:
                with sdpa_kernel([SDPBackend.MATH]):
                    return func(*args, **kwargs)
        return func(*args, **kwargs)


@dataclass
class ModelProbe:
    preset: str
    params: ParamCounts
    forward_flops_per_sample: float  # counted forward FLOPs at micro-batch 1
    train_flops_per_sample: float  # trainable modules 3x forward (forward + backward), frozen ones 1x
    activations: dict[str, ActivationFit]  # key "ckpt=0,mea=0"; filled on demand
    mixed_precision: str
    seconds: float
    mode: str
    measure: Callable[[bool, bool], ActivationFit] | None = field(default=None, repr=False, compare=False)
    attention: AttentionUse = field(default_factory=AttentionUse)
    depths: list[dict] = field(default_factory=list)  # the reduced depths probed ({} = the config's own)

    def activation(self, checkpointing: bool, efficient_attention: bool) -> ActivationFit:
        """The fit for one memory option, probing the fake model the first time it is asked for."""
        key = option_key(checkpointing, efficient_attention)
        if key not in self.activations:
            start = time.perf_counter()
            self.activations[key] = self.measure(checkpointing, efficient_attention) if self.measure else \
                self.activations[option_key(False, False)]
            self.seconds += time.perf_counter() - start
        return self.activations[key]

    def to_dict(self) -> dict:
        return {"preset": self.preset, "params": asdict(self.params), "forward_flops_per_sample": self.forward_flops_per_sample,
                "train_flops_per_sample": self.train_flops_per_sample, "mixed_precision": self.mixed_precision,
                "activations": {k: asdict(v) for k, v in self.activations.items()}, "seconds": self.seconds,
                "attention": asdict(self.attention), "depths": self.depths}


def option_key(checkpointing: bool, efficient_attention: bool) -> str:
    return f"ckpt={int(checkpointing)},mea={int(efficient_attention)}"


def dataset_meta(cfg: AtlasConfig) -> DatasetMeta:
    """Shapes of the data without loading it: read the first episode's header, else the config's sizes
    (with a warning naming the file: a plan made away from the data, e.g. on a laptop for a cluster)."""
    data = cfg.data
    if data.format != "synthetic" and data.path:
        try:
            import numpy as np

            from atlas.data.registry import open_source

            source = open_source(data, cfg.training.seed)
            state = source.read(0, "state", np.arange(1))
            action = source.read(0, "action", np.arange(1))
            size = None
            if source.cameras:
                size = tuple(source.read(0, f"image/{source.cameras[0]}", np.arange(1)).shape[1:3])
            return DatasetMeta(int(state.shape[-1]), int(action.shape[-1]), list(source.cameras), size, ["task0"])
        except Exception as err:  # noqa: BLE001 - any reader failure means "plan from the config's sizes"
            warnings.warn(f"plan: could not read the shapes of data.path={data.path} ({err}); using the config's "
                          f"data.state_dim/action_dim/image_size instead", stacklevel=2)
    cameras = [f"cam{i}" for i in range(data.num_cameras)] if data.image_size else []
    size = (data.image_size, data.image_size) if data.image_size else None
    tasks = [f"task{i}" for i in range(data.num_tasks)]
    return DatasetMeta(data.state_dim, data.action_dim, cameras, size, tasks, {t: f"do {t}" for t in tasks})


def make_batch(meta: DatasetMeta, cfg: AtlasConfig, batch_size: int) -> dict:
    """A normalized training batch of the shapes `BatchTransform` hands the policy."""
    horizon, obs = cfg.model.action_horizon, cfg.data.obs_horizon
    batch = {
        "state": torch.randn(batch_size, obs, meta.state_dim),
        "action": torch.randn(batch_size, horizon, meta.action_dim),
        "action_mask": torch.ones(batch_size, horizon, dtype=torch.bool),
        "instruction": [meta.instructions.get(meta.tasks[0], "pick up the object") if meta.tasks else "pick"] * batch_size,
        "task_index": torch.zeros(batch_size, dtype=torch.long),
        "episode_index": torch.zeros(batch_size, dtype=torch.long),
        "frame_index": torch.zeros(batch_size, dtype=torch.long),
    }
    if meta.cameras and meta.image_size:
        h, w = meta.image_size
        batch["images"] = torch.rand(batch_size, obs, len(meta.cameras), 3, h, w)
    return batch


def build_model(cfg: AtlasConfig, meta: DatasetMeta, checkpointing: bool, efficient_attention: bool,
                device: str | None = None, load_weights: bool = True) -> nn.Module:
    """The policy the loop would train, with the memory options and lr_multipliers=0 as freezing (the
    optimizer's own rule). device="meta": shapes only; load_weights=False: no pretrained weights read
    (inside FakeTensorMode random init is as good as real weights for shapes, and MiniLM costs seconds)."""
    from atlas.models.registry import build_policy

    model = build_policy(cfg.model, meta, Normalizer({}), gradient_checkpointing=checkpointing,
                         memory_efficient_attention=efficient_attention, device=device, load_weights=load_weights)
    freeze_zero_multipliers(model, cfg.training.lr_multipliers)
    model.train()
    return model


def build_fake_model(cfg: AtlasConfig, meta: DatasetMeta, checkpointing: bool, efficient_attention: bool) -> nn.Module:
    return build_model(cfg, meta, checkpointing, efficient_attention, load_weights=False)


class _GpuAutocastFloat32Ops(TorchFunctionMode):
    """CUDA autocast runs normalizations, softmax and losses in float32 (their inputs are cast up, so the
    copy a norm saves for backward is float32); CPU autocast leaves them in bf16. The plan is for a GPU, so
    the probe casts up as CUDA would: without this the QK-norm inputs of every attention are counted at half
    their size (benchmarks/saved_tensor_census.py; figures in benchmarks/RESULTS.md, "CUDA checks")."""

    FLOAT32_OPS = {F.layer_norm, F.group_norm, F.softmax, F.log_softmax, torch.softmax, torch.log_softmax,
                   torch.Tensor.softmax, torch.Tensor.log_softmax, F.normalize, F.mse_loss, F.l1_loss,
                   F.smooth_l1_loss, F.cross_entropy, F.nll_loss, *((F.rms_norm,) if hasattr(F, "rms_norm") else ())}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FLOAT32_OPS:
            args = tuple(_to_float32(a) for a in args)
            kwargs = {k: _to_float32(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _to_float32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


@contextlib.contextmanager
def gpu_autocast(mixed_precision: str, device: str = "cpu"):
    """Autocast on this CPU with CUDA's float32 op list: what a GPU's bf16/fp16 forward saves."""
    dtype = AUTOCAST_DTYPES.get(mixed_precision)
    if dtype is None or device == "meta":
        yield
        return
    with torch.autocast("cpu", dtype=dtype), _GpuAutocastFloat32Ops():
        yield


def saved_tensor_bytes(model: nn.Module, batch: dict, mixed_precision: str = "no", device: str = "cpu") -> int:
    """Bytes of the distinct non-parameter storages autograd keeps for backward after one forward."""
    held = {p.untyped_storage()._cdata for p in model.parameters()}
    held |= {b.untyped_storage()._cdata for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in held:
            seen[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), gpu_autocast(mixed_precision, device):
        out = model(batch)
    total = sum(seen.values())
    del out
    return total


def _probe_forward(model: nn.Module, batch: dict, mixed_precision: str, use: AttentionUse | None = None
                   ) -> tuple[int, float, float]:
    """One forward: (saved-tensor bytes, forward FLOPs, train FLOPs by the 3x-trainable / 1x-frozen rule)."""
    from torch.utils.flop_counter import FlopCounterMode

    watch = _WatchSDPA(use, force_math=True) if use is not None else contextlib.nullcontext()
    with FlopCounterMode(display=False, depth=1) as counter, watch:
        saved = saved_tensor_bytes(model, batch, mixed_precision)
    counts = counter.get_flop_counts()
    forward = float(sum(counts.get("Global", {}).values()))
    root = type(model).__name__  # the counter names children "<Root>.<child>"

    def flops_of(name: str) -> float:
        return float(sum(counts.get(f"{root}.{name}", counts.get(name, {})).values()))

    train, attributed = 0.0, 0.0
    for name, child in model.named_children():
        flops = flops_of(name)
        attributed += flops
        trains = any(p.requires_grad for p in child.parameters())
        train += flops * (3 if trains else 1)
    return saved, forward, train + 3 * max(0.0, forward - attributed)


def _set_options(model: nn.Module, checkpointing: bool, efficient_attention: bool) -> bool:
    """Switch the memory options in place when the model supports it (else the caller rebuilds)."""
    if not hasattr(model, "set_gradient_checkpointing"):
        return False
    try:
        from atlas.models.layers import set_memory_efficient_attention
    except ImportError:
        return False
    model.set_gradient_checkpointing(checkpointing)
    set_memory_efficient_attention(model, efficient_attention)
    return True


def probe_model(cfg: AtlasConfig, meta: DatasetMeta | None = None, full_depth: bool = False) -> ModelProbe:
    """Parameter counts, FLOPs per sample and the activation fit without memory options, on fake tensors.

    Other options are probed when first asked for (`ModelProbe.activation`), on the same fake models.
    `full_depth` skips the reduced-depth extrapolation (slow for deep models; used to check it).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    start = time.perf_counter()
    meta = meta or dataset_meta(cfg)
    mp = cfg.training.mixed_precision
    plan = depth_plan(cfg)
    if full_depth:
        plan = DepthPlan((DepthPoint(None, None),), plan.full_fusion, plan.full_vision)
    params = count_params(build_model(cfg, meta, False, False, device="meta"))
    configs = [at_depth(cfg, point) for point in plan.points]
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    use = AttentionUse()
    models, rows = [], []
    with mode:
        torch.manual_seed(0)
        for small in configs:
            model = build_fake_model(small, meta, False, False)
            saved1, forward, train = _probe_forward(model, make_batch(meta, small, 1), mp, use)
            with _WatchSDPA(AttentionUse(), force_math=True):
                saved2 = saved_tensor_bytes(model, make_batch(meta, small, 2), mp)
            models.append(model)
            rows.append((saved1, saved2, forward, train))
    saved1, saved2, forward, train = (plan.combine([row[i] for row in rows]) for i in range(4))
    base = ActivationFit(2 * saved1 - saved2, saved2 - saved1, {1: round(saved1), 2: round(saved2)})

    def measure(checkpointing: bool, efficient_attention: bool) -> ActivationFit:
        samples: dict[int, list[float]] = {1: [], 2: []}
        with mode:
            for i, small in enumerate(configs):
                if not _set_options(models[i], checkpointing, efficient_attention):
                    models[i] = build_fake_model(small, meta, checkpointing, efficient_attention)
                kernel = _WatchSDPA(AttentionUse(), force_math=True) if not efficient_attention else contextlib.nullcontext()
                for b in (1, 2):
                    with kernel:
                        samples[b].append(saved_tensor_bytes(models[i], make_batch(meta, small, b), mp))
        s1, s2 = plan.combine(samples[1]), plan.combine(samples[2])
        return ActivationFit(2 * s1 - s2, s2 - s1, {1: round(s1), 2: round(s2)})

    depths = [{k: v for k, v in (("fusion", p.fusion), ("vision", p.vision)) if v is not None} for p in plan.points]
    return ModelProbe(cfg.model.preset, params, forward, train, {option_key(False, False): base}, mp,
                      time.perf_counter() - start, "fake", measure, use, depths)
