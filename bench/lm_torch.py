#!/usr/bin/python3
"""`loom bench`'s table in PyTorch, side by side with loom, in one invocation.

The same language model (one-hot input for vocab 28, else an embedding ->
recurrent layers -> linear decoder -> mean cross-entropy over all T*B
positions, zero initial state), the same training step (backward,
clip_grad_norm_ 1.0, SGD lr 1.0) and inference pass (forward to the logits,
no_grad), median of --iters runs after one warm-up. PyTorch runs at its best
thread setting: its own threads and OpenBLAS's are separate
(torch.set_num_threads, openblas_set_num_threads through ctypes), and the
best of {1:1, 2:2, 1:2} is taken per row. The user cells run as an eager
nn.Module loop and as torch.jit.script: mgu (loom: the C cell of
examples/mgu_cell.c, through --cell-lib) and ln_lstm (Ba et al.'s layer-norm
LSTM; loom: cells/ln_lstm.cell, from equations). lstm_eq is loom's
cells/lstm_eq.cell (the LSTM from equations) beside torch.nn.LSTM. --precision bf16: loom's
bf16 products (`loom bench --precision bf16`) beside PyTorch's own bf16 (its
training and inference steps under torch.cpu.amp.autocast(dtype=bfloat16)),
with both f32 figures beside them. Each row is measured --rounds times,
loom and PyTorch in turn, and the fastest of each kept: a VM whose speed
drifts between the two measurements otherwise decides the ratio.

  /usr/bin/python3 bench/lm_torch.py [--config NAME] [--cell NAME] [--iters 5]
      [--rounds 3] [--threads 2] [--loom build/loom] [--precision f32|bf16]

Prints, per row: loom's and PyTorch's training and inference ms and the
ratios (PyTorch time / loom time: above 1, loom is faster)."""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

if "OPENBLAS_CORETYPE" in os.environ:
    # OpenBLAS reads it when torch loads it: start again without it, so that
    # PyTorch's OpenBLAS picks its kernels for this CPU, as loom's does
    del os.environ["OPENBLAS_CORETYPE"]
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch

CONFIGS = {  # vocab, embed (0: one-hot), hidden, layers, batch, seq len
    "charlm-small": (28, 0, 256, 1, 32, 35),
    "charlm-512": (28, 0, 512, 1, 32, 35),
    "wordlm-medium": (10000, 650, 650, 2, 20, 35),
    "long-seq": (28, 0, 128, 1, 16, 1000),
}

p = argparse.ArgumentParser()
p.add_argument("--config", choices=list(CONFIGS))
CELLS = ["rnn_tanh", "gru", "lstm", "lstm_eq", "mgu", "ln_lstm"]
p.add_argument("--cell", choices=CELLS)
p.add_argument("--iters", type=int, default=5)
p.add_argument("--rounds", type=int, default=3, help="loom and PyTorch in turn, the fastest of each kept")
p.add_argument("--threads", type=int, default=2, help="loom's threads")
p.add_argument("--precision", choices=["f32", "bf16"], default="f32")
p.add_argument("--loom", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "loom"))
a = p.parse_args()


def find_openblas():
    """openblas_set_num_threads of the OpenBLAS torch loaded, or None."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "openblas" in line and line.strip().endswith(".so.0")}
    for lib in libs:
        try:
            return ctypes.CDLL(lib).openblas_set_num_threads
        except (OSError, AttributeError):
            pass
    return None


openblas_threads = find_openblas()


class MGU(torch.nn.Module):
    """The minimal gated unit of examples/mgu_cell.c, as a user writes it:
    f = sigmoid(W_f x + U_f h + b_f), n = tanh(W_h x + U_h (f*h) + b_h),
    h' = h + f*(n - h)."""

    def __init__(self, inp, hidden):
        super().__init__()
        k = hidden ** -0.5
        self.weight_ih = torch.nn.Parameter(torch.empty(2 * hidden, inp).uniform_(-k, k))
        self.weight_hh = torch.nn.Parameter(torch.empty(2 * hidden, hidden).uniform_(-k, k))
        self.bias = torch.nn.Parameter(torch.empty(2 * hidden).uniform_(-k, k))

    def forward(self, x, h):
        return mgu_loop(x, h, self.weight_ih, self.weight_hh, self.bias)


def mgu_loop(x, h, w_ih, w_hh, bias):
    H = h.shape[1]
    xp = torch.matmul(x, w_ih.t()) + bias
    u_f, u_h = w_hh[:H], w_hh[H:]
    outs = []
    for t in range(x.shape[0]):
        f = torch.sigmoid(xp[t, :, :H] + torch.matmul(h, u_f.t()))
        n = torch.tanh(xp[t, :, H:] + torch.matmul(f * h, u_h.t()))
        h = h + f * (n - h)
        outs.append(h)
    return torch.stack(outs), h


mgu_scripted = torch.jit.script(mgu_loop)


class LNLSTM(torch.nn.Module):
    """cells/ln_lstm.cell as a user writes it in PyTorch: the input and
    recurrent pre-activations layer-normalised apart, the cell state before
    the output; the input projection of every step at once."""

    def __init__(self, inp, hidden):
        super().__init__()
        k = hidden ** -0.5
        self.weight_ih = torch.nn.Parameter(torch.empty(4 * hidden, inp).uniform_(-k, k))
        self.weight_hh = torch.nn.Parameter(torch.empty(4 * hidden, hidden).uniform_(-k, k))
        self.bias = torch.nn.Parameter(torch.zeros(4 * hidden))
        self.ln = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(n)) if w else torch.nn.Parameter(torch.zeros(n))
                                          for n in (4 * hidden, 4 * hidden, hidden) for w in (True, False)])


def ln_lstm_loop(x, h, c, w_ih, w_hh, bias, g1, b1, g2, b2, g3, b3):
    H = h.shape[1]
    xp = torch.nn.functional.layer_norm(torch.matmul(x, w_ih.t()), [4 * H], g1, b1) + bias
    outs = []
    for t in range(x.shape[0]):
        z = xp[t] + torch.nn.functional.layer_norm(torch.matmul(h, w_hh.t()), [4 * H], g2, b2)
        i, f, g, o = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H]), torch.tanh(z[:, 2 * H:3 * H]), torch.sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * torch.tanh(torch.nn.functional.layer_norm(c, [H], g3, b3))
        outs.append(h)
    return torch.stack(outs), h


ln_lstm_scripted = torch.jit.script(ln_lstm_loop)


class LM(torch.nn.Module):
    def __init__(self, cell, vocab, embed, hidden, layers, script):
        super().__init__()
        self.vocab, self.embed_dim, self.cell = vocab, embed, cell
        self.embedding = torch.nn.Embedding(vocab, embed) if embed else None
        inp = embed if embed else vocab
        if cell == "mgu":
            self.rnn = torch.nn.ModuleList(MGU(inp if i == 0 else hidden, hidden) for i in range(layers))
            self.loop = mgu_scripted if script else mgu_loop
        elif cell == "ln_lstm":
            self.rnn = torch.nn.ModuleList(LNLSTM(inp if i == 0 else hidden, hidden) for i in range(layers))
            self.loop = ln_lstm_scripted if script else ln_lstm_loop
        else:
            kind = {"rnn_tanh": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "lstm_eq": torch.nn.LSTM}[cell]
            self.rnn = kind(inp, hidden, layers)
        self.decoder = torch.nn.Linear(hidden, vocab)
        self.hidden, self.layers = hidden, layers

    def forward(self, x):
        T, B = x.shape
        y = self.embedding(x) if self.embedding is not None else torch.nn.functional.one_hot(x, self.vocab).float()
        if self.cell == "mgu":
            for layer in self.rnn:
                y, _ = self.loop(y, torch.zeros(B, self.hidden), layer.weight_ih, layer.weight_hh, layer.bias)
        elif self.cell == "ln_lstm":
            for layer in self.rnn:
                z = torch.zeros(B, self.hidden)
                y, _ = self.loop(y, z, z, layer.weight_ih, layer.weight_hh, layer.bias, *layer.ln)
        else:
            y, _ = self.rnn(y)  # zero initial state
        return self.decoder(y)


def median_ms(step, iters):
    step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[iters // 2] if iters % 2 else 0.5 * (times[iters // 2 - 1] + times[iters // 2])


def torch_row(config, cell, script=False, bf16=False):
    V, E, H, L, B, T = CONFIGS[config]
    torch.manual_seed(1)
    m = LM(cell, V, E, H, L, script)
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    x = torch.randint(0, V, (T, B))
    y = torch.randint(0, V, (T, B))
    loss_fn = torch.nn.CrossEntropyLoss()

    def train():
        opt.zero_grad()
        with torch.cpu.amp.autocast(enabled=bf16, dtype=torch.bfloat16):
            loss = loss_fn(m(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    def infer():
        with torch.no_grad(), torch.cpu.amp.autocast(enabled=bf16, dtype=torch.bfloat16):
            m(x)

    best = None
    for th, blas in ((1, 1), (2, 2), (1, 2)):
        torch.set_num_threads(th)
        if openblas_threads:
            openblas_threads(blas)
        elif blas != th:
            continue
        r = (median_ms(train, a.iters), median_ms(infer, a.iters), "%d:%d" % (th, blas))
        if best is None or r[0] < best[0]:
            best = (r[0], best[1] if best and best[1] < r[1] else r[1], r[2])
        elif r[1] < best[1]:
            best = (best[0], r[1], best[2])
    return best


def loom_row(config, cell, precision="f32"):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    # mgu: the C cell of examples/mgu_cell.c, as PyTorch's MGU above (not cells/mgu.cell, whose gates are apart)
    lib = ["--cell-lib", os.path.join(os.path.dirname(a.loom), "libmgu_cell.so")] if cell == "mgu" else []
    out = subprocess.run([a.loom] + lib + ["bench", "--config", config, "--cell", cell, "--threads", str(a.threads),
                          "--iters", str(a.iters), "--precision", precision, "--json"], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit("loom bench failed: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


print("loom at %d threads vs PyTorch %s at its best of torch:OpenBLAS threads {1:1, 2:2, 1:2}; "
      "OPENBLAS_CORETYPE unset; ms per step, median of %d, best of %d rounds; ratio = PyTorch / loom (> 1: loom faster)"
      % (a.threads, torch.__version__, a.iters, a.rounds))


def fastest(rows, r):
    """Per figure, the fastest of the rounds so far."""
    return r if rows is None else tuple(min(x, y) for x, y in zip(rows, r))


if a.precision == "bf16":  # loom bf16, loom f32, PyTorch autocast bf16, PyTorch f32: training ms, then inference ms
    print("%-14s %-9s | %9s %9s %9s %9s %6s | %9s %9s %9s %9s %6s" %
          ("config", "cell", "loom bf16", "loom f32", "torch bf16", "torch f32", "ratio",
           "loom bf16", "loom f32", "torch bf16", "torch f32", "ratio"))
    for config in [a.config] if a.config else list(CONFIGS):
        for cell in [a.cell] if a.cell else ["rnn_tanh", "gru", "lstm"]:
            lb = lf = tb = tf = None
            for _ in range(max(1, a.rounds)):
                r = loom_row(config, cell, "bf16")
                lb = fastest(lb, (r["train_ms"], r["infer_ms"]))
                r = loom_row(config, cell, "f32")
                lf = fastest(lf, (r["train_ms"], r["infer_ms"]))
                tb = fastest(tb, torch_row(config, cell, bf16=True)[:2])
                tf = fastest(tf, torch_row(config, cell)[:2])
            print("%-14s %-9s | %9.2f %9.2f %9.2f %9.2f %6.2f | %9.2f %9.2f %9.2f %9.2f %6.2f" %
                  (config, cell, lb[0], lf[0], tb[0], tf[0], tb[0] / lb[0], lb[1], lf[1], tb[1], tf[1], tb[1] / lb[1]),
                  flush=True)
    sys.exit(0)

print("%-14s %-10s %10s %10s %6s %10s %10s %6s %6s" %
      ("config", "cell", "loom train", "torch", "ratio", "loom infer", "torch", "ratio", "thr"))
for config in [a.config] if a.config else list(CONFIGS):
    for cell in [a.cell] if a.cell else CELLS:
        variants = [("", False), (" (jit)", True)] if cell in ("mgu", "ln_lstm") else [("", False)]
        lr, rows = None, [None] * len(variants)
        for _ in range(max(1, a.rounds)):
            r = loom_row(config, cell)
            lr = r if lr is None else {"train_ms": min(lr["train_ms"], r["train_ms"]),
                                       "infer_ms": min(lr["infer_ms"], r["infer_ms"])}
            for v, (suffix, script) in enumerate(variants):
                t = torch_row(config, cell, script)
                rows[v] = t if rows[v] is None else (min(rows[v][0], t[0]), min(rows[v][1], t[1]),
                                                      rows[v][2] if rows[v][0] <= t[0] else t[2])
        for (suffix, script), (tt, ti, thr) in zip(variants, rows):
            print("%-14s %-10s %10.2f %10.2f %6.2f %10.2f %10.2f %6.2f %6s" %
                  (config, cell + suffix, lr["train_ms"], tt, tt / lr["train_ms"], lr["infer_ms"], ti,
                   ti / lr["infer_ms"], thr), flush=True)
