"""DeepSpeed ZeRO-1/2/3 (optional extra). DeepSpeed's private attributes are handled here and only here."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.engine import distributed as D
from atlas.engine.strategies.base import (
    OptimizerFactory,
    Strategy,
    keyed_by_name,
    load_whole,
    parameter_names,
)
from atlas.engine.strategies.fsdp import unsharded_copy


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

    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory,
              weights: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
        import deepspeed

        load_whole(policy, weights)

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
                          fresh) -> contextlib.AbstractContextManager[nn.Module | None]:
        if self.zero_stage == 3:  # partitioned weights: as under FSDP, rank 0 evaluates a gathered copy
            return unsharded_copy(self, policy, weights, fresh)
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
        zero, names = self.engine.optimizer, parameter_names(policy)
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
        if not keyed_by_name(state):
            raise ConfigError("this checkpoint's optimizer.pt is keyed by position (an older Atlas): resume it "
                              "with training.strategy=ddp, then continue under deepspeed")
        if self.zero_stage == 3:
            self._load_zero3_optimizer_state(policy, optimizer, state)
            return
        zero, names = self.engine.optimizer, parameter_names(policy)
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
        zero, names = self.engine.optimizer, parameter_names(policy)
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
        zero, names = self.engine.optimizer, parameter_names(policy)
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
