"""Small torch networks shared by the deep-RL learners (REINFORCE, TRPO, PPO)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mlp"]


def mlp(sizes: list[int], ortho_init: bool = False, out_gain: float = 1.0) -> Any:
    """A tanh MLP with layer widths ``sizes`` (input, hidden..., output) and a linear output.

    With ``ortho_init`` the weights are orthogonal, with gain :math:`\\sqrt 2` for hidden
    layers and ``out_gain`` for the output layer, and biases are zero (the PPO
    implementation detail of Chapter 5); otherwise PyTorch's default initialisation.
    """
    import torch.nn as nn

    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes must list at least an input and an output width, all >= 1, got {sizes}")
    layers: list[Any] = []
    for i in range(len(sizes) - 1):
        layer = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        if ortho_init:
            nn.init.orthogonal_(layer.weight, out_gain if last else float(np.sqrt(2)))
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)
