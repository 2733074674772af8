"""`training.strategy`: how weights, gradients and optimizer state are laid out across processes.

The loop asks the strategy, and only the strategy, for what differs between layouts:

  ddp (auto)  replicated weights; one gradient all-reduce per optimizer step (also: a single process)
  fsdp        FSDP2: weights, gradients, optimizer state and the EMA sharded (atlas/engine/sharding.py)
  deepspeed   DeepSpeed ZeRO (`training.zero_stage`): optimizer state partitioned (1), and gradients (2),
              and weights with the EMA (3); at stages 1/2 weights (and so the EMA) stay whole on every rank

Checkpoints do not depend on the strategy: full weights in safetensors, the optimizer as a full state
dict keyed by parameter name. So a run resumes on another world size, or under another strategy.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.config.schema import MemoryOptimizationConfig, TrainingConfig
from atlas.engine import distributed as D
from atlas.engine import sharding

OptimizerFactory = Callable[[], torch.optim.Optimizer]


class Strategy:
    """DDP, and the single process: the default every other strategy departs from."""

    name = "ddp"
    # True when a forward pass is itself a collective (all-gathers weights): then every rank must run the
    # same number of them, and rank 0 may never run one alone.
    collective_forward = False
    # AdamW's fused kernel (atlas/engine/optim.py `adamw_kernel`); sharded strategies use foreach
    fused_optimizer = True

    def __init__(self, ctx: D.DistContext, mixed_precision: str = "no") -> None:
        self.ctx = ctx
        self.mixed_precision = mixed_precision

    @property
    def label(self) -> str:
        return "ddp" if self.ctx.distributed else "single process"

    # -- building ---------------------------------------------------------------------------------
    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        """(the module the loop calls forward on, the optimizer whose group LRs the loop sets)."""
        return D.wrap_model(policy, self.ctx), make_optimizer()

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.ctx.device.type) if self.mixed_precision == "fp16" else None

    # -- a step -----------------------------------------------------------------------------------
    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        """Gradient synchronisation on (the last micro-batch of a step) or off (all others)."""
        return D.no_sync(model, skip=not enabled)

    def backward(self, model: nn.Module, loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
             max_norm: float | None) -> tuple[torch.Tensor, bool]:
        """Clip, then update unless the gradients are not finite: (grad norm before clipping, updated).
        A step that is not taken leaves the gradients for the caller to drop (and the scaler to update)."""
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
        norm = sharding.full_tensor(norm)  # a replicated DTensor under FSDP: a plain tensor for logging
        if not bool(torch.isfinite(norm)):  # the one host sync of a step
            return norm, False
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm, True

    # -- full state (checkpoints, evaluation) ------------------------------------------------------
    def local_tensor(self, param: nn.Parameter) -> torch.Tensor:
        """The part of `param` this rank holds and updates (the EMA follows it): the parameter itself,
        a DTensor shard under FSDP."""
        return param

    def local_state(self, policy: nn.Module) -> dict[str, torch.Tensor]:
        """The policy's state dict in this rank's layout: what `gather` takes."""
        return policy.state_dict()

    def held(self, tensors: dict[str, torch.Tensor]) -> tuple[int, int]:
        """(elements this rank holds, elements of the full tensors) of a dict in this rank's layout."""
        return sharding.numel(tensors)

    def gather(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Full tensors on rank 0 ({} on other ranks). Every rank calls it."""
        return sharding.full_tensors(tensors, keep=self.ctx.is_main)

    def scatter(self, full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Full tensors (every rank read the same file) laid out like `like`."""
        return sharding.shard_like(full, like)

    def optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """Full optimizer state keyed by parameter name, on rank 0 ({} elsewhere). Every rank calls it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if not optimizer.state:  # no step taken yet: the helper would take a zero-LR step to create state
            return optimizer.state_dict() if self.ctx.is_main else {}
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(policy, optimizer, options=options)

    def load_optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not _keyed_by_name(state):  # written before any step, or by an older Atlas
            optimizer.load_state_dict(state)
            return
        # strict=False: a parameter that never had a gradient (unused by this head) has no state, as in torch's own
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_optimizer_state_dict(policy, optimizer, state, options=options)

    @contextlib.contextmanager
    def evaluation_policy(self, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                          fresh: Callable[[], nn.Module]) -> Iterator[nn.Module | None]:
        """On rank 0 the policy with `weights` (EMA) swapped in for the duration, else None. Weights are
        whole on every rank, so rank 0 evaluates the training module itself and swaps back after."""
        if not self.ctx.is_main:
            yield None
            return
        raw = {k: v.detach().clone() for k, v in policy.state_dict().items()} if weights is not None else None
        if weights is not None:
            policy.load_state_dict(weights, strict=False)
        try:
            yield policy
        finally:
            if raw is not None:
                policy.load_state_dict(raw)
            policy.train()


class FSDPStrategy(Strategy):
    """FSDP2 over the fusion blocks, the trainable vision backbone and the root (atlas/engine/sharding.py)."""

    name = "fsdp"
    collective_forward = True
    fused_optimizer = False

    @property
    def label(self) -> str:
        return "fsdp (FSDP2)"

    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = sharding.shard_policy(policy, self.mixed_precision)
        return model, make_optimizer()  # after sharding: the optimizer must hold the DTensor parameters

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        if self.mixed_precision != "fp16":
            return None
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(self.ctx.device.type)  # agrees on inf/NaN across ranks: every shard skips together

    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        return sharding.gradient_sync(model, enabled)

    def evaluation_policy(self, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                          fresh: Callable[[], nn.Module]) -> contextlib.AbstractContextManager[nn.Module | None]:
        return _unsharded_copy(self, policy, weights, fresh)


@contextlib.contextmanager
def _unsharded_copy(strategy: Strategy, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                    fresh: Callable[[], nn.Module]) -> Iterator[nn.Module | None]:
    """Every rank takes part in gathering the full (EMA) weights; rank 0 evaluates an unsharded copy
    (a sharded forward on rank 0 alone would wait forever for the others' all-gather)."""
    full = strategy.gather(weights if weights is not None else strategy.local_state(policy))
    if not strategy.ctx.is_main:
        yield None
        return
    with torch.random.fork_rng(devices=[]):  # initialising the copy must not move rank 0's training RNG
        copy = fresh()
    copy.to(strategy.ctx.device).load_state_dict(full)
    del full
    yield copy


class DeepSpeedStrategy(Strategy):
    """DeepSpeed ZeRO-1/2/3 through `deepspeed.initialize`. The loop keeps its own schedule (it sets the
    LRs of the optimizer it built, which ZeRO steps on its partitions), loss scaling and accumulation
    (`managed_gradient_accumulation: false`: one `engine.step()` per optimizer step); DeepSpeed clips to
    `training.max_grad_norm` and skips a step whose gradient norm is not finite.

    ZeRO-3 partitions the weights too: each parameter's data is empty outside the forward/backward of
    its module and this rank's flat slice lives in `param.ds_tensor` (padded to a multiple of the world
    size). A forward is then a collective, the EMA follows the partitions (`local_tensor`), and `gather` /
    `scatter` move between partitions and the full tensors that checkpoints hold."""

    name = "deepspeed"
    fused_optimizer = False

    def __init__(self, ctx: D.DistContext, mixed_precision: str, zero_stage: int, micro_batch: int,
                 accumulation: int, max_grad_norm: float | None) -> None:
        super().__init__(ctx, mixed_precision)
        self.zero_stage, self.micro_batch, self.accumulation = zero_stage, micro_batch, accumulation
        self.max_grad_norm = max_grad_norm
        self.engine = None
        self.collective_forward = zero_stage == 3  # every forward all-gathers the partitioned weights
        self._partitioned: dict[str, nn.Parameter] = {}  # ZeRO-3: name -> parameter holding `ds_tensor`

    @property
    def label(self) -> str:
        return f"deepspeed ZeRO-{self.zero_stage}"

    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        import deepspeed

        optimizer = make_optimizer()
        zero: dict = {"stage": self.zero_stage}
        if self.zero_stage == 3:
            # DeepSpeed keeps parameters under 1e5 elements whole on every rank by default: in the smaller
            # presets (fusion width 64-128) that is every one, so ZeRO-3 would partition no weight at all
            zero["stage3_param_persistence_threshold"] = 0
        config = {
            "train_micro_batch_size_per_gpu": self.micro_batch,
            "gradient_accumulation_steps": self.accumulation,
            "managed_gradient_accumulation": False,
            "zero_optimization": zero,
            "gradient_clipping": self.max_grad_norm or 0.0,
            "steps_per_print": 2**31 - 1,
        }  # fp32 weights; bf16 runs through the loop's autocast, as under DDP
        self.engine, _, _, _ = deepspeed.initialize(model=policy, optimizer=optimizer, config=config,
                                                    dist_init_required=False)
        if self.zero_stage == 3:
            self._partitioned = {n: p for n, p in policy.named_parameters() if hasattr(p, "ds_tensor")}
        return self.engine, optimizer

    def grad_scaler(self) -> None:
        return None

    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # unmanaged accumulation: engine.step() is the boundary

    def backward(self, model: nn.Module, loss: torch.Tensor, scaler: None) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loop already divides by the effective batch

    def step(self, params, optimizer, scaler, max_norm) -> tuple[torch.Tensor, bool]:
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        norm = torch.as_tensor(float("inf") if norm is None else float(norm))
        return norm, bool(self.engine.was_step_applied()) and math.isfinite(norm.item())

    # -- ZeRO-3: partitions <-> full tensors ---------------------------------------------------------
    def local_tensor(self, param: nn.Parameter) -> torch.Tensor:
        return param.ds_tensor if self.zero_stage == 3 else param

    def local_state(self, policy: nn.Module) -> dict[str, torch.Tensor]:
        state = policy.state_dict()  # ZeRO-3: parameters are empty here; buffers are whole on every rank
        state.update({n: p.ds_tensor.detach() for n, p in self._partitioned.items() if n in state})
        return state

    def held(self, tensors: dict[str, torch.Tensor]) -> tuple[int, int]:
        if self.zero_stage != 3:
            return super().held(tensors)
        full = sum(self._partitioned[n].ds_numel if n in self._partitioned else t.numel() for n, t in tensors.items())
        return sum(t.numel() for t in tensors.values()), full

    def gather(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ZeRO-3: one all-gather per partitioned tensor (peak memory: one full tensor), kept on rank 0."""
        if self.zero_stage != 3:
            return super().gather(tensors)
        out = {}
        for name, value in tensors.items():
            param = self._partitioned.get(name)
            full = _all_gather_partition(value.detach(), param) if param is not None else value.detach()
            if self.ctx.is_main:
                out[name] = full.cpu()
        return out

    def scatter(self, full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.zero_stage != 3:
            return super().scatter(full, like)
        return {n: _partition(v, self._partitioned[n], self.ctx) if n in self._partitioned else v
                for n, v in full.items()}

    def evaluation_policy(self, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                          fresh: Callable[[], nn.Module]) -> contextlib.AbstractContextManager[nn.Module | None]:
        if self.zero_stage == 3:  # partitioned weights: as under FSDP, rank 0 evaluates a gathered copy
            return _unsharded_copy(self, policy, weights, fresh)
        return super().evaluation_policy(policy, weights, fresh)

    # ZeRO partitions the optimizer state in flat fp32 buffers; checkpoints hold it full and keyed by
    # parameter name, the layout torch's get/set_optimizer_state_dict use, so any world size reads it.
    # Stages 1/2: DeepSpeed's safe_get/set_full_optimizer_state read and write one parameter's full state
    # (collectives). Stage 3: this rank's slice of each parameter sits at the same offset in the flat
    # state as its `ds_tensor` in the flat weights; gathered and cut here, as for weights and EMA
    # (DeepSpeed's setter reads past the end of a full tensor for the padded last partition).
    def optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        from deepspeed.utils import safe_get_full_optimizer_state

        if self.zero_stage == 3:
            return self._zero3_optimizer_state(policy, optimizer)
        zero, names = self.engine.optimizer, _names(policy)
        _link_fragments(zero)
        state, groups = {}, []
        for i, group in enumerate(optimizer.param_groups):
            flat_state = optimizer.state.get(group["params"][0], {})
            keys = [k for k in flat_state if k != "step"]
            for p in zero.bit16_groups[i]:
                full = {k: safe_get_full_optimizer_state(p, k) for k in keys}
                if self.ctx.is_main and keys:
                    state[names[p]] = {"step": flat_state["step"].clone(), **{k: v.cpu() for k, v in full.items()}}
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [names[p] for p in zero.bit16_groups[i]]})
        return {"state": state, "param_groups": groups} if self.ctx.is_main else {}

    def load_optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from deepspeed.utils import safe_set_full_optimizer_state

        if not state.get("state"):
            return  # saved before any step: nothing to restore
        if not _keyed_by_name(state):
            raise ConfigError("this checkpoint's optimizer.pt is keyed by position (an older Atlas): resume it "
                              "with training.strategy=ddp, then continue under deepspeed")
        if self.zero_stage == 3:
            self._load_zero3_optimizer_state(policy, optimizer, state)
            return
        zero, names = self.engine.optimizer, _names(policy)
        for i, group in enumerate(optimizer.param_groups):
            flat = group["params"][0]
            entries = [state["state"][names[p]] for p in zero.bit16_groups[i]]
            keys = [k for k in entries[0] if k != "step"]
            optimizer.state[flat] = {"step": entries[0]["step"].clone(), **{k: torch.zeros_like(flat) for k in keys}}
        _link_fragments(zero)
        for i in range(len(optimizer.param_groups)):
            for p in zero.bit16_groups[i]:
                for key, value in state["state"][names[p]].items():
                    if key != "step":
                        safe_set_full_optimizer_state(p, value.to(self.ctx.device), key)

    def _zero3_optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        zero, names = self.engine.optimizer, _names(policy)
        state: dict[str, dict] = {}
        group_params: list[list[str]] = [[] for _ in optimizer.param_groups]
        for sub, params in enumerate(zero.fp16_groups):  # sub-groups of the optimizer's param groups
            flat_state = optimizer.state.get(zero.fp32_partitioned_groups_flat[sub], {})
            keys = [k for k in flat_state if k != "step"]
            for p, offset in zip(params, _offsets(params)):
                full = {k: _all_gather_partition(flat_state[k].narrow(0, offset, p.partition_numel()), p) for k in keys}
                if self.ctx.is_main and keys:
                    state[names[p]] = {"step": flat_state["step"].clone(), **{k: v.cpu() for k, v in full.items()}}
            group_params[zero.sub_group_to_group_id[sub]] += [names[p] for p in params]
        groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": group_params[i]}
                  for i, group in enumerate(optimizer.param_groups)]
        return {"state": state, "param_groups": groups} if self.ctx.is_main else {}

    def _load_zero3_optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        zero, names = self.engine.optimizer, _names(policy)
        for sub, params in enumerate(zero.fp16_groups):
            flat = zero.fp32_partitioned_groups_flat[sub]
            entries = [state["state"][names[p]] for p in params]
            keys = [k for k in entries[0] if k != "step"]
            local = {k: torch.cat([_partition(e[k], p, self.ctx) for e, p in zip(entries, params)]).to(flat)
                     for k in keys}
            if any(v.numel() != flat.numel() for v in local.values()):  # a DeepSpeed whose layout differs
                raise RuntimeError(f"ZeRO-3 optimizer sub-group {sub}: {flat.numel()} elements, not the sum of "
                                   "its parameters' partitions; cannot restore its state")
            optimizer.state[flat] = {"step": entries[0]["step"].clone(), **local}


def _offsets(params: list[nn.Parameter]) -> list[int]:
    """Where each ZeRO-3 parameter's partition starts in its sub-group's flat buffer."""
    sizes = [p.partition_numel() for p in params]
    return [sum(sizes[:i]) for i in range(len(sizes))]


def _all_gather_partition(local: torch.Tensor, param: nn.Parameter) -> torch.Tensor:
    """The full tensor of `param`'s shape from every rank's partition (a collective), padding dropped."""
    import torch.distributed as dist

    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)[: param.ds_numel].view(param.ds_shape)


def _partition(full: torch.Tensor, param: nn.Parameter, ctx: D.DistContext) -> torch.Tensor:
    """This rank's slice of a full tensor laid out like `param.ds_tensor`: flat, zero-padded at the end."""
    size = param.ds_tensor.numel()
    flat = full.detach().reshape(-1)
    if flat.numel() != param.ds_numel or size * ctx.world_size < flat.numel():
        raise ValueError(f"a tensor of {flat.numel()} elements does not fit a ZeRO-3 partition of {size} x "
                         f"{ctx.world_size} (parameter of {param.ds_numel})")
    flat = torch.nn.functional.pad(flat, (0, size * ctx.world_size - flat.numel()))
    return flat[ctx.rank * size:(ctx.rank + 1) * size].to(param.ds_tensor.device).clone()


def _link_fragments(zero) -> None:
    """Point every parameter at its slice of the current optimizer state. DeepSpeed links them once,
    after the first group's first step, when later groups have no state yet (their links stay empty)."""
    zero._hp_optimizer_states_linked = False
    zero._lazy_init_hp_params_optimizer_state()


def _names(policy: nn.Module) -> dict[nn.Parameter, str]:
    return {p: n for n, p in policy.named_parameters()}


def _keyed_by_name(state: dict) -> bool:
    return any(isinstance(p, str) for group in state.get("param_groups", []) for p in group["params"])


def build_strategy(tc: TrainingConfig, mo: MemoryOptimizationConfig, ctx: D.DistContext, micro_batch: int,
                   accumulation: int, log: logging.Logger) -> Strategy:
    """The strategy the config asks for, or a ConfigError that says why it cannot run and what to do."""
    name = "ddp" if tc.strategy == "auto" else tc.strategy
    if name == "ddp":
        return Strategy(ctx, tc.mixed_precision)
    if not ctx.distributed:
        log.info(f"training.strategy={name} with one process: nothing to shard, training unsharded")
        return Strategy(ctx, tc.mixed_precision)
    if mo.dynamic_batch_size:
        raise ConfigError(
            f"memory_optimization.dynamic_batch_size=true with training.strategy={name} on {ctx.world_size} "
            "processes: an out-of-memory error on one rank in the middle of a forward/backward leaves the "
            f"others waiting in a collective ({'a weight all-gather' if name == 'fsdp' else 'a ZeRO gradient reduce'}) "
            "that never completes, so the back-off cannot be agreed. Use training.strategy=ddp with "
            "dynamic_batch_size, or set dynamic_batch_size=false and a micro-batch that fits (atlas plan)."
        )
    if name == "fsdp":
        return FSDPStrategy(ctx, tc.mixed_precision)
    _check_deepspeed(tc, ctx)
    return DeepSpeedStrategy(ctx, tc.mixed_precision, tc.zero_stage, micro_batch, accumulation, tc.max_grad_norm)


def _check_deepspeed(tc: TrainingConfig, ctx: D.DistContext) -> None:
    """DeepSpeed is an optional extra: say what is missing before any rank starts building."""
    if tc.mixed_precision == "fp16":
        raise ConfigError("training.mixed_precision=fp16 with training.strategy=deepspeed: use bf16 (no loss "
                          "scaling needed), or fp16 under ddp/fsdp (the loop's grad scaler)")
    if ctx.device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's own switch; gloo on CPU
    try:
        import deepspeed  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"training.strategy=deepspeed needs the deepspeed package ({err}): "
                          "pip install 'atlas-vla[deepspeed]' (from a clone: pip install -e '.[deepspeed]')") from None
    try:
        from deepspeed.accelerator import get_accelerator

        accelerator = get_accelerator().device_name()
    except Exception as err:  # noqa: BLE001 - any failure here means DeepSpeed cannot run on this machine
        raise ConfigError(f"training.strategy=deepspeed: deepspeed is installed but has no usable accelerator "
                          f"here ({type(err).__name__}: {err}); use training.strategy=ddp or fsdp") from None
    if accelerator != ctx.device.type:
        raise ConfigError(f"training.strategy=deepspeed: DeepSpeed chose the {accelerator!r} accelerator but "
                          f"training runs on {ctx.device.type}; set DS_ACCELERATOR={ctx.device.type} or use "
                          "training.strategy=ddp or fsdp")
