"""One Meta-World 3.x task as a fully observable, seedable environment with fast camera images.

Works around measured pitfalls of metaworld 3.1.1: `reset(seed=...)` ignores its seed (we call
`env.seed(s)` with `seeded_rand_vec=True`); the observation space is cached, so it is rebuilt after
making the goal observable; `step()` raises past `max_path_length`; expert actions exceed [-1, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from atlas.sim.render import CameraRenderer, simplify_visuals
from atlas.sim.tasks import INSTRUCTIONS

STATE_DIM = 39
ACTION_DIM = 4


@dataclass
class StepResult:
    state: np.ndarray  # float32 [39], observation after the action
    reward: float
    success: bool


class MetaWorldEnv:
    """Goal-observable Meta-World task; the 39-d state includes the goal, never the task id."""

    def __init__(self, task: str) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        if task not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"unknown Meta-World task {task!r}")
        self.task = task
        self.instruction = INSTRUCTIONS[task]
        env = ALL_V3_ENVIRONMENTS[task]()
        env._partially_observable = False
        del env.sawyer_observation_space  # cached property: rebuild with the goal visible
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        simplify_visuals(env.model)
        self.env = env
        self.max_steps = int(env.max_path_length)
        self._renderers: dict[tuple[int, int], CameraRenderer] = {}

    def reset(self, seed: int, episode: int = 0) -> np.ndarray:
        """A fresh episode; its start comes from `seed` alone (`episode` is for envs with fixed starts)."""
        import mujoco

        self.env.seed(int(seed))
        state, _ = self.env.reset()
        # reset() leaves the goal marker where the last episode put it until the first step():
        # place it now so frame 0 depends on this episode only
        for site in self.env._target_site_config:
            self.env._set_pos_site(*site)
        mujoco.mj_forward(self.env.model, self.env.data)
        return state.astype(np.float32)

    def step(self, action: np.ndarray) -> StepResult:
        if self.env.curr_path_length >= self.max_steps:
            raise RuntimeError(f"{self.task}: more than {self.max_steps} steps in one episode")
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        state, reward, _, _, info = self.env.step(action)
        return StepResult(state.astype(np.float32), float(reward), bool(info["success"]))

    def render(self, camera: str, height: int, width: int | None = None) -> np.ndarray:
        """Upright uint8 [H, W, 3] image of a named camera (corner, corner2..4, topview, gripperPOV ...)."""
        size = (int(height), int(width or height))
        if size not in self._renderers:
            self._renderers[size] = CameraRenderer(self.env.model, *size)
        return self._renderers[size].render(self.env.data, camera)

    @property
    def camera_names(self) -> list[str]:
        model = self.env.model
        return [model.camera(i).name for i in range(model.ncam)]

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self.env.close()


class ScriptedExpert:
    """Meta-World's hand-written policy for a task, with actions clipped to the valid box; Atlas's
    correction of it where the script itself has a bug (atlas/sim/expert_fixes.py)."""

    def __init__(self, task: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        from atlas.sim.expert_fixes import CORRECTED_EXPERTS

        self.corrected = task in CORRECTED_EXPERTS
        self.policy = CORRECTED_EXPERTS[task]() if self.corrected else ENV_POLICY_MAP[task]()

    def __call__(self, state: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Constant(s) may be too high": we clip
            action = self.policy.get_action(state.astype(np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)
