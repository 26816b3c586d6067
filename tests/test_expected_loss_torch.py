"""The expected-loss objective against PyTorch autograd, float64, rtol 1e-10.

The torch side shares nothing with refnet's derivation: the Jacobians ``J_l = dy/da_l`` come
from ``torch.func.jacrev`` of the network above layer ``l``, the cross-entropy's Hessian from
``torch.func.hessian``, the noise covariances ``S_l`` are formed as explicit matrices, and the
gradient of ``CE + 1/2 tr(H J S J^T)`` with respect to every weight and bias comes from
``backward()`` through all of it.
"""
import numpy as np
import pytest

from refnet.model import Params, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec
from refnet.regularizers import ExpectedLoss, expected_loss

RTOL, ATOL = 1e-10, 1e-14


def _torch_objective(torch, params, X, y, spec, layers, hidden):
    """``(J, W, b)`` with leaf tensors W, b; J = mean CE + 1/2 mean tr(H Sigma)."""
    from torch.func import hessian, jacrev, vmap
    import torch.nn.functional as F

    T = torch.float64
    W = [torch.tensor(w, dtype=T, requires_grad=True) for w in params.W]
    b = [torch.tensor(v, dtype=T, requires_grad=True) for v in params.b]
    L = len(W)

    def above(l, a):  # the network from the output a of layer l to the logits
        for k in range(l + 1, L + 1):
            z = F.linear(a, W[k - 1], b[k - 1])
            a = hidden(z) if k < L else z
        return a

    a = torch.tensor(X, dtype=T)
    A = [a]  # a_l, layer by layer, each a node of the graph
    for l in range(1, L + 1):
        z = F.linear(a, W[l - 1], b[l - 1])
        a = hidden(z) if l < L else z
        A.append(a)
    logits = A[L]
    onehot = F.one_hot(torch.tensor(y), logits.shape[1]).to(T)

    def ce(yy, t):
        return -(t * torch.log_softmax(yy, dim=-1)).sum()

    H = vmap(hessian(ce))(logits, onehot)  # (n, n_out, n_out)
    Sigma = torch.zeros_like(H)
    s = spec.noise.spec
    for l in layers:
        J = vmap(jacrev(lambda x, l=l: above(l, x)))(A[l])  # (n, n_out, n_l)
        x = A[l]
        n_l = x.shape[1]
        S = (s.add_unc * torch.eye(n_l, dtype=T) + s.add_cor * torch.ones(n_l, n_l, dtype=T)
             + s.mul_unc * torch.diag_embed(x ** 2) + s.mul_cor * x[:, :, None] * x[:, None, :])
        Sigma = Sigma + J @ S @ J.transpose(1, 2)
    Jval = F.cross_entropy(logits, torch.tensor(y)) + 0.5 * torch.einsum("bij,bji->b", H, Sigma).mean()
    Jval.backward()
    return Jval, W, b


def _setup(arch, seed, n):
    rng = np.random.default_rng(seed)
    p = init_params(arch, "normal", rng=seed, std=0.8)
    p = Params(p.W, tuple(rng.normal(size=b.shape) for b in p.b))
    return p, rng.normal(size=(n, arch.sizes[0])), rng.integers(0, arch.sizes[-1], n)


@pytest.mark.torch
@pytest.mark.parametrize("layers", [(1, 2), (0, 1, 2, 3)], ids=["duque", "all layers"])
@pytest.mark.parametrize("noise_type", NOISE_TYPES + ("all four",))
def test_objective_and_gradient_match_torch_autograd(noise_type, layers):
    torch = pytest.importorskip("torch")
    arch = mlp((4, 5, 6, 3))
    params, X, y = _setup(arch, 7, 6)
    spec_ = (NoiseSpec(0.1, 0.05, 0.2, 0.03) if noise_type == "all four"
             else NoiseSpec.single(noise_type, 0.3))
    spec = ExpectedLoss(NoiseConfig(spec_, layers))
    J, g = expected_loss(arch, params, X, y, spec)
    Jt, W, b = _torch_objective(torch, params, X, y, spec, layers, torch.sigmoid)
    assert J == pytest.approx(Jt.item(), rel=RTOL, abs=ATOL)
    for k in range(arch.n_layers):
        np.testing.assert_allclose(g.W[k], W[k].grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(g.b[k], b[k].grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.torch
def test_deeper_network_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    arch = mlp((3, 4, 5, 4, 2))
    params, X, y = _setup(arch, 8, 5)
    spec = ExpectedLoss(NoiseConfig(NoiseSpec(0.2, 0.1, 0.1, 0.05), (1, 2, 3)))
    J, g = expected_loss(arch, params, X, y, spec)
    Jt, W, b = _torch_objective(torch, params, X, y, spec, (1, 2, 3), torch.sigmoid)
    assert J == pytest.approx(Jt.item(), rel=RTOL, abs=ATOL)
    for k in range(arch.n_layers):
        np.testing.assert_allclose(g.W[k], W[k].grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(g.b[k], b[k].grad.numpy(), rtol=RTOL, atol=ATOL)
