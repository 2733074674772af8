"""`task_embedding`: one learned vector per training task, the cheapest instruction encoder.

Instructions unseen in training map to a shared "unknown" slot; at inference the instruction string is
mapped back to its task through the dataset's task → instruction table when no task index is given.
"""

from __future__ import annotations

import torch
from torch import nn


class TaskEmbedding(nn.Module):
    def __init__(self, tasks: list[str], instructions: dict[str, str], dim: int) -> None:
        super().__init__()
        self.num_tasks = len(tasks)
        self.embedding = nn.Embedding(self.num_tasks + 1, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.by_instruction = {text: tasks.index(task) for task, text in instructions.items() if task in tasks}
        self.out_dim = dim

    def forward(self, instructions: list[str], task_index: torch.Tensor | None = None) -> torch.Tensor:
        device = self.embedding.weight.device
        if task_index is None:
            task_index = torch.tensor([self.by_instruction.get(s, -1) for s in instructions], device=device)
        task_index = task_index.to(device).long()
        task_index = torch.where((task_index < 0) | (task_index >= self.num_tasks), self.num_tasks, task_index)
        return self.embedding(task_index)
