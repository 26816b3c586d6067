"""Regenerate the constants of test_handworked.py at 30 significant digits with mpmath.

Independent of refnet: plain scalar loops over the 2-2-1 network, written from the chain rule.
Run with any Python that has mpmath: ``python tests/make_handworked.py``.
"""
from mpmath import mp, mpf, exp

mp.dps = 40
W1 = [[mpf("0.1"), mpf("-0.2")], [mpf("0.3"), mpf("0.4")]]
b1 = [mpf("0.05"), mpf("-0.1")]
W2 = [[mpf("0.7"), mpf("-0.5")]]
b2 = [mpf("0.2")]
x = [mpf("1.0"), mpf("2.0")]
t = mpf("0.5")
# noise draws (standard normals) for hidden layer 1, variances below
v_au, v_ac, v_mu, v_mc = mpf("0.04"), mpf("0.01"), mpf("0.09"), mpf("0.0025")
e_au, e_ac, e_mu, e_mc = [mpf("0.3"), mpf("-1.1")], mpf("0.7"), [mpf("-0.4"), mpf("1.5")], mpf("-0.8")
lam_rows, lam_der, lam_w = mpf("0.01"), mpf("0.02"), mpf("0.03")


def sig(z):
    return 1 / (1 + exp(-z))


def run(noisy):
    z1 = [W1[i][0] * x[0] + W1[i][1] * x[1] + b1[i] for i in range(2)]
    a1 = [sig(z) for z in z1]
    g = [mpf(1), mpf(1)]
    if noisy:
        g = [(1 + mp.sqrt(v_mu) * e_mu[i]) * (1 + mp.sqrt(v_mc) * e_mc) for i in range(2)]
        a1n = [a1[i] * g[i] + mp.sqrt(v_au) * e_au[i] + mp.sqrt(v_ac) * e_ac for i in range(2)]
    else:
        a1n = a1
    z2 = W2[0][0] * a1n[0] + W2[0][1] * a1n[1] + b2[0]
    L = (z2 - t) ** 2
    dz2 = 2 * (z2 - t)
    dW2 = [dz2 * a1n[0], dz2 * a1n[1]]
    db2 = dz2
    da1 = [dz2 * W2[0][i] * g[i] for i in range(2)]
    dz1 = [da1[i] * a1[i] * (1 - a1[i]) for i in range(2)]
    dW1 = [[dz1[i] * x[j] for j in range(2)] for i in range(2)]
    return dict(z1=z1, a1=a1, a1n=a1n, z2=z2, L=L, dW1=dW1, db1=dz1, dW2=dW2, db2=db2)


def regs():
    # Eq. 4 on layer 2: lam |sum_j W2_1j|; Eq. 7 generalised: lam_der * sum_i sigma'(z1_i)
    # + lam_w * ||W2||^2, clean forward, batch of one.
    r4 = lam_rows * abs(W2[0][0] + W2[0][1])
    z1 = [W1[i][0] * x[0] + W1[i][1] * x[1] + b1[i] for i in range(2)]
    s = [sig(z) for z in z1]
    d1 = [si * (1 - si) for si in s]
    d2 = [si * (1 - si) * (1 - 2 * si) for si in s]
    r7 = lam_der * sum(d1) + lam_w * (W2[0][0] ** 2 + W2[0][1] ** 2)
    dW1 = [[lam_der * d2[i] * x[j] for j in range(2)] for i in range(2)]
    db1 = [lam_der * d2[i] for i in range(2)]
    dW2 = [2 * lam_w * W2[0][j] for j in range(2)]
    return dict(r4=r4, r7=r7, r7_dW1=dW1, r7_db1=db1, r7_dW2=dW2)


def show(name, d):
    print(f"{name} = {{")
    for k, v in d.items():
        print(f"    {k!r}: {mp.nstr(v, 30) if not isinstance(v, list) else _l(v)},")
    print("}")


def _l(v):
    if isinstance(v[0], list):
        return "[" + ", ".join(_l(r) for r in v) + "]"
    return "[" + ", ".join(mp.nstr(e, 30) for e in v) + "]"


if __name__ == "__main__":
    show("CLEAN", run(False))
    show("NOISY", run(True))
    show("REGS", regs())
