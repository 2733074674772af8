"""Closed-loop evaluation in simulation during training (`eval.every_n_steps`)."""

from __future__ import annotations

from atlas.engine import distributed as D
from atlas.loop.parts import RunParts
from atlas.models.registry import build_policy


class InTrainingEvaluation:
    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.every = parts.cfg.eval.every_n_steps

    def due(self, step: int, last: bool) -> bool:
        return bool(self.every) and (step % self.every == 0 or last)

    def run(self, step: int) -> float | None:
        """A short evaluation on rank 0 with the EMA weights (when kept); other ranks wait. The success rate
        (broadcast to every rank)."""
        parts = self.parts
        cfg, ctx, ema = parts.cfg, parts.ctx, parts.ema
        rate = None

        def fresh():  # an unsharded policy for rank 0 when the training one is sharded
            return build_policy(cfg.model, parts.data.meta, parts.data.normalizer)

        ec = cfg.eval
        with parts.timers.phase("evaluation"):
            weights = ema.state_dict() if ema is not None else None
            with parts.strategy.evaluation_policy(parts.policy, weights, fresh) as evaluated:
                if evaluated is not None:
                    from atlas.sim import evaluate_policy
                    from atlas.sim.rollout import RolloutSpec

                    spec = RolloutSpec(ec.exec_horizon, ec.max_steps, obs_horizon=cfg.data.obs_horizon, seed=1000 + step,
                                       env=ec.env)
                    summary = evaluate_policy(evaluated, ec.tasks or parts.data.meta.tasks, ec.episodes, spec)
        if ctx.is_main:
            rate = float(summary["success_rate"])
            record = {"success_rate": rate}
            record.update({f"success_rate/{task}": row["success_rate"] for task, row in summary["tasks"].items()})
            parts.metrics.log(record, step)
            parts.log.info(f"step {step}: success_rate {rate:.3f} over {ec.episodes} episodes x "
                           f"{len(summary['tasks'])} task(s)")
        return D.broadcast_object(rate, ctx)
