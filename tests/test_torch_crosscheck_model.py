"""Forward, loss and every gradient of refnet.model against PyTorch autograd in float64.

Skipped when torch is not importable; .ci/run installs the CPU build so these run in CI.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

import refnet as rn  # noqa: E402
from refnet.io import from_state_dict, to_state_dict  # noqa: E402
from refnet.noise import draw_layer_noise  # noqa: E402

RTOL, ATOL = 1e-10, 1e-14
TORCH_ACT = {"sigmoid": torch.sigmoid, "identity": lambda z: z,
             "cubic": lambda z: 3 * z ** 2 - 2 * z ** 3,
             "shifted_sigmoid(alpha=3.0)": lambda z: 0.5 + 3.0 * (z - 0.5) / (2 * torch.sqrt(1 + 9.0 * (z - 0.5) ** 2))}


def _torch_noise(x, spec, d):
    """Semenova 2022 Eq. 3 on the same standard-normal draws, written in torch."""
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    y = x
    if spec.mul_unc:
        y = y * (1 + spec.mul_unc ** 0.5 * t(d.mul_unc))
    if spec.mul_cor:
        y = y * (1 + spec.mul_cor ** 0.5 * t(d.mul_cor))
    if spec.add_unc:
        y = y + spec.add_unc ** 0.5 * t(d.add_unc)
    if spec.add_cor:
        y = y + spec.add_cor ** 0.5 * t(d.add_cor)
    return y


def _torch_forward(arch, Ws, bs, X, cfg, draws):
    noisy = cfg.resolved_layers(arch.n_layers) if cfg else ()
    a = torch.from_numpy(X)
    if 0 in noisy:
        a = _torch_noise(a, cfg.spec, draws[0])
    for l in range(1, arch.n_layers + 1):
        z = a @ Ws[l - 1].T + bs[l - 1]
        if l in noisy and cfg.position == "pre":
            z = _torch_noise(z, cfg.spec, draws[l])
        a = TORCH_ACT[arch.activations[l - 1]](z)
        if l in noisy and cfg.position == "post":
            a = _torch_noise(a, cfg.spec, draws[l])
    return a


@pytest.mark.parametrize("act", list(TORCH_ACT))
@pytest.mark.parametrize("position", ["pre", "post"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_forward_loss_and_gradients_match_autograd(act, position, loss, rng):
    arch = rn.Architecture((6, 5, 4, 3), (act, act, "identity"))
    p = rn.init_params(arch, rng=3)
    X = rng.uniform(0, 1, size=(7, 6))
    spec = rn.NoiseSpec(0.03, 0.02, 0.05, 0.01)
    cfg = rn.NoiseConfig(spec, (0, 1, 2, 3), position)
    g = np.random.default_rng(9)
    draws = [draw_layer_noise(spec, 7, n, g) for n in arch.sizes]
    out, cache = rn.forward(arch, p, X, cfg, draws=draws)
    if loss == "ce":
        y = rng.integers(0, 3, 7)
        value, d_out = rn.cross_entropy(out, y)
    else:
        y = rng.normal(size=(7, 3))
        value, d_out = rn.mse(out, y)
    grads = rn.backward(arch, p, cache, d_out)

    Ws = [torch.tensor(w, requires_grad=True) for w in p.W]
    bs = [torch.tensor(b, requires_grad=True) for b in p.b]
    t_out = _torch_forward(arch, Ws, bs, X, cfg, draws)
    if loss == "ce":
        t_loss = torch.nn.functional.cross_entropy(t_out, torch.from_numpy(y))
    else:
        t_loss = torch.nn.functional.mse_loss(t_out, torch.from_numpy(y))
    t_loss.backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(value, t_loss.item(), rtol=RTOL)
    for l in range(arch.n_layers):
        np.testing.assert_allclose(grads.W[l], Ws[l].grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"dW{l + 1}: refnet (actual) vs torch (desired)")
        np.testing.assert_allclose(grads.b[l], bs[l].grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"db{l + 1}: refnet (actual) vs torch (desired)")


def test_duque_net_in_torch_modules_matches_refnet(rng):
    """The authors' Linear(784,300)-sigmoid-Linear(300,300)-sigmoid-Linear(300,10), float64."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.Sigmoid(),
                              torch.nn.Linear(300, 300), torch.nn.Sigmoid(),
                              torch.nn.Linear(300, 10)).double()
    arch, p = from_state_dict(net.state_dict())
    assert arch.sizes == (784, 300, 300, 10) and arch.activations == ("sigmoid", "sigmoid", "identity")
    X = rng.normal(size=(16, 784))
    y = rng.integers(0, 10, 16)
    out, cache = rn.forward(arch, p, X)
    value, d_out = rn.cross_entropy(out, y)
    grads = rn.backward(arch, p, cache, d_out)
    t_out = net(torch.from_numpy(X))
    t_loss = torch.nn.CrossEntropyLoss()(t_out, torch.from_numpy(y))
    t_loss.backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(value, t_loss.item(), rtol=RTOL)
    for l, idx in enumerate([0, 2, 4]):
        np.testing.assert_allclose(grads.W[l], net[idx].weight.grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grads.b[l], net[idx].bias.grad.numpy(), rtol=RTOL, atol=ATOL)
    # and back: refnet weights load into the torch module under the same key names
    sd = {k: torch.from_numpy(v) for k, v in to_state_dict(arch, p).items()}
    net.load_state_dict(sd)
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), p.W[0])
