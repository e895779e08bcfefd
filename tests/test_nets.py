"""Tests of companion.nets."""

import pytest
import torch

from companion.nets import mlp


def test_mlp_shapes_and_layers():
    net = mlp([4, 8, 8, 2])
    assert net(torch.zeros(5, 4)).shape == (5, 2)
    assert sum(isinstance(m, torch.nn.Tanh) for m in net) == 2


def test_mlp_orthogonal_init():
    torch.manual_seed(0)
    net = mlp([16, 16, 3], ortho_init=True, out_gain=0.01)
    hidden, out = net[0].weight, net[2].weight
    assert torch.allclose(hidden @ hidden.T, 2 * torch.eye(16), atol=1e-5)       # gain sqrt(2)
    assert torch.allclose(out @ out.T, 1e-4 * torch.eye(3), atol=1e-8)          # gain 0.01
    assert torch.all(net[0].bias == 0)


def test_mlp_refuses_bad_sizes():
    with pytest.raises(ValueError, match="sizes"):
        mlp([4])
    with pytest.raises(ValueError, match="sizes"):
        mlp([4, 0, 2])
