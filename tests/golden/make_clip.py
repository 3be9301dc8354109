#!/usr/bin/python3
"""Writes tests/golden/clip.safetensors: every parameter's gradient after
torch.nn.utils.clip_grad_norm_, for recurrent stacks of each built-in cell
and of two user cells, for test_train.c to compare with loom's.

A case is a 2-layer bidirectional stack (T=5, B=3, I=4, H=5) with the loss
L = sum(output * grad_output). Its tensors, under `<case>.`: the parameters
(loom's and torch.nn's state_dict names), `input`, `h0` (and `c0`),
`grad_output`, `clipped.<parameter>` (each gradient after clipping) and
`norm` (the total norm clip_grad_norm_ returned). The metadata holds the
cases in order (`cases`, comma-separated) and `max_norm`.

The user cells (written in loom's tests with loom's public API):
  twin  h' = tanh(W_ih x + W_hh h + bias_a + bias_b): two parameters whose
        gradients are identical, as PyTorch's RNN's bias_ih and bias_hh;
  mgu   the minimal gated unit of examples/mgu_cell.c.

Run with Debian's python3-torch: /usr/bin/python3 tests/golden/make_clip.py
"""
import os

import torch

from make_golden import write_safetensors  # the same file format as the recurrent-layer cases

HERE = os.path.dirname(os.path.abspath(__file__))
T, B, I, H, LAYERS = 5, 3, 4, 5, 2
MAX_NORM = 1e-3


def twin_specs(i):
    return {"weight_ih": (H, i), "weight_hh": (H, H), "bias_a": (H,), "bias_b": (H,)}


def twin_step(p, x, h):
    return torch.tanh(x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias_a"] + p["bias_b"])


def mgu_specs(i):
    return {"weight_ih": (2 * H, i), "weight_hh": (2 * H, H), "bias": (2 * H,)}


def mgu_step(p, x, h):
    xp = x @ p["weight_ih"].T + p["bias"]
    uf, uh = p["weight_hh"][:H], p["weight_hh"][H:]
    f = torch.sigmoid(xp[:, :H] + h @ uf.T)
    cand = torch.tanh(xp[:, H:] + (f * h) @ uh.T)
    return h + f * (cand - h)


class UserStack(torch.nn.Module):
    """A stacked bidirectional unroll of a one-state cell, parameters named
    as loom_rnn_init names them."""

    def __init__(self, specs, step):
        super().__init__()
        self.step = step
        self.p = torch.nn.ParameterDict()
        for l in range(LAYERS):
            for d in range(2):
                for name, shape in specs(I if l == 0 else 2 * H).items():
                    key = "%s_l%d%s" % (name, l, "_reverse" if d else "")
                    self.p[key] = torch.nn.Parameter((torch.rand(shape) * 2 - 1) / H ** 0.5)
        self.names = list(specs(I))

    def forward(self, x, h0):
        for l in range(LAYERS):
            outs = []
            for d in range(2):
                sfx = "_l%d%s" % (l, "_reverse" if d else "")
                p = {n: self.p[n + sfx] for n in self.names}
                h, ys = h0[2 * l + d], []
                steps = range(T - 1, -1, -1) if d else range(T)
                for t in steps:
                    h = self.step(p, x[t], h)
                    ys.append(h)
                if d:
                    ys.reverse()
                outs.append(torch.stack(ys))
            x = torch.cat(outs, dim=2)
        return x


def make(case, seed, tensors):
    torch.manual_seed(seed)
    if case in ("rnn_tanh", "rnn_relu", "gru", "lstm"):
        kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[case]
        kw = {"nonlinearity": case[4:]} if case.startswith("rnn") else {}
        m = kind(I, H, num_layers=LAYERS, bidirectional=True, **kw)
        named = list(m.named_parameters())
    else:
        m = UserStack(*{"twin": (twin_specs, twin_step), "mgu": (mgu_specs, mgu_step)}[case])
        named = [(k[2:], v) for k, v in m.named_parameters()]  # "p." prefix of the ParameterDict
    x = torch.randn(T, B, I)
    h0 = torch.randn(2 * LAYERS, B, H) * 0.5
    c0 = torch.randn(2 * LAYERS, B, H) * 0.5
    go = torch.randn(T, B, 2 * H)
    for k, v in named:
        tensors["%s.%s" % (case, k)] = v.detach().clone()
    m = m.double()
    if case == "lstm":
        out, _ = m(x.double(), (h0.double(), c0.double()))
        tensors[case + ".c0"] = c0
    elif case in ("rnn_tanh", "rnn_relu", "gru"):
        out, _ = m(x.double(), h0.double())
    else:
        out = m(x.double(), h0.double())
    (out * go.double()).sum().backward()
    norm = torch.nn.utils.clip_grad_norm_(m.parameters(), max_norm=MAX_NORM)
    builtin = case in ("rnn_tanh", "rnn_relu", "gru", "lstm")
    for k, v in m.named_parameters():
        tensors["%s.clipped.%s" % (case, k if builtin else k[2:])] = v.grad
    tensors[case + ".input"], tensors[case + ".h0"], tensors[case + ".grad_output"] = x, h0, go
    tensors[case + ".norm"] = norm.reshape(1)


def main():
    cases = ["rnn_tanh", "rnn_relu", "gru", "lstm", "twin", "mgu"]
    tensors = {}
    for seed, case in enumerate(cases, 11):
        make(case, seed, tensors)
    tensors = {k: v.detach().float() for k, v in tensors.items()}
    write_safetensors(os.path.join(HERE, "clip.safetensors"), tensors,
                      {"cases": ",".join(cases), "max_norm": repr(MAX_NORM)})


if __name__ == "__main__":
    main()
