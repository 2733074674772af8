"""The normalizer a mixture-trained policy carries: every dataset's statistics, seen through the padded space.

A mixture pads state and action to the largest sizes among its datasets (S, A). The policy sees one
dataset at a time at inference: `MixtureNormalizer` behaves as the selected dataset's `Normalizer`
(default the first) on its own sizes, then pads the normalized state to S and cuts the predicted
action chunk back to that dataset's size before unnormalizing. `to_dict` keeps every dataset, so the
checkpoint's normalization.json holds them all and `atlas eval --dataset NAME` picks one (`select`).
"""

from __future__ import annotations

import torch

from atlas.config.errors import ConfigError
from atlas.data.normalize import Normalizer


class MixtureNormalizer(Normalizer):
    """datasets: [{name, stats, modes, state_dim, action_dim, tasks}], in mixture order."""

    def __init__(self, datasets: list[dict], state_dim: int, action_dim: int, selected: str | None = None) -> None:
        names = [d["name"] for d in datasets]
        chosen_name = selected or names[0]
        if chosen_name not in names:
            raise ConfigError(f"--dataset {chosen_name!r}: the checkpoint was trained on {', '.join(names)}")
        chosen = datasets[names.index(chosen_name)]
        super().__init__(chosen["stats"], chosen["modes"])
        self.datasets = datasets
        self.selected = chosen_name
        self.padded = {"state": int(state_dim), "action": int(action_dim)}
        self.real = {"state": int(chosen["state_dim"]), "action": int(chosen["action_dim"])}

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """The selected dataset's normalization of its own-sized `x`, zero-padded to the mixture's size."""
        real = self.real.get(key)
        if real is None or x.shape[-1] != real:
            return super().normalize(key, x)
        y = super().normalize(key, x)
        return torch.nn.functional.pad(y, (0, self.padded[key] - real))

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Cut to the selected dataset's size, then unnormalize with its statistics."""
        real = self.real.get(key)
        return super().unnormalize(key, x[..., :real] if real is not None else x)

    def dim_mask(self, key: str, device: torch.device | None = None) -> torch.Tensor:
        """bool [padded size]: True for the selected dataset's real entries."""
        mask = torch.zeros(self.padded[key], dtype=torch.bool, device=device)
        mask[: self.real[key]] = True
        return mask

    def select(self, name: str) -> MixtureNormalizer:
        return MixtureNormalizer(self.datasets, self.padded["state"], self.padded["action"], name)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "mixture": {"datasets": self.datasets, "state_dim": self.padded["state"],
                                                 "action_dim": self.padded["action"], "selected": self.selected}}

    @classmethod
    def from_dict(cls, data: dict) -> MixtureNormalizer:
        mix = data["mixture"]
        return cls(mix["datasets"], mix["state_dim"], mix["action_dim"], mix.get("selected"))


def select_dataset(policy, name: str | None) -> str | None:
    """Point a loaded policy at one mixture dataset's statistics (`atlas eval --dataset NAME`); returns the
    name in use (None for a policy trained on one dataset, where a name is an error)."""
    normalizer = policy.normalizer
    if not isinstance(normalizer, MixtureNormalizer):
        if name:
            raise ConfigError(f"--dataset {name!r}: this checkpoint was trained on one dataset, not a mixture")
        return None
    if name and name != normalizer.selected:
        policy.normalizer = normalizer.select(name).to(policy.device)
    return policy.normalizer.selected


def dataset_tasks(policy) -> list[str] | None:
    """The selected mixture dataset's tasks (eval's default), None for a single-dataset policy."""
    normalizer = policy.normalizer
    if isinstance(normalizer, MixtureNormalizer):
        return next(d.get("tasks") for d in normalizer.datasets if d["name"] == normalizer.selected)
    return None
