#!/usr/bin/python3
"""PyTorch's side of `loom train`'s default job, for comparing perplexity and speed.

Same text and preprocessing (d2l's letters only, lines joined), same vocabulary
order (loom's: <unk>, then by count, ties by first occurrence), same split (last
10% held out), same model (one-hot input, one recurrent layer, linear decoder),
same loop (sequential partitioning with a random offset per epoch, state carried
and detached, mean cross-entropy, global-norm clipping at 1, Adam), same held-out
perplexity (B streams, windows of T, state carried from zero).

  /usr/bin/python3 bench/char_lm_torch.py [--cell lstm] [--steps 600] [--hidden 256]
      [--lr 0.01] [--eval-every 100] [--seed 1] [--threads N] [--metrics FILE] [--write-init FILE]

--write-init saves the initial weights as safetensors under the names loom uses
(rnn.*, decoder.*), so that `loom train --init FILE` starts from the same model.
--metrics writes loom's CSV columns, so `loom plot` draws both runs."""
import argparse
import json
import math
import os
import re
import struct
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--cell", default="lstm", choices=["rnn_tanh", "rnn_relu", "gru", "lstm"])
p.add_argument("--steps", type=int, default=600)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--seq-len", type=int, default=35)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--clip", type=float, default=1.0)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--threads", type=int, default=os.cpu_count(), help="default: all, as loom")
p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "corpus", "timemachine.txt"))
p.add_argument("--metrics")
p.add_argument("--write-init")
a = p.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)
T, B, H = a.seq_len, a.batch, a.hidden

with open(a.data, encoding="utf-8") as f:
    text = "".join(re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in f)
n_valid = len(text) // 10
train, valid = text[: len(text) - n_valid], text[len(text) - n_valid:]
counts, first = {}, {}
for i, ch in enumerate(train):
    counts[ch] = counts.get(ch, 0) + 1
    first.setdefault(ch, i)
tokens = ["<unk>"] + sorted(counts, key=lambda c: (-counts[c], first[c]))
index = {c: i for i, c in enumerate(tokens)}
V = len(tokens)
ids = torch.tensor([index.get(c, 0) for c in train])
vids = torch.tensor([index.get(c, 0) for c in valid])

kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[a.cell]
kw = {"nonlinearity": a.cell[4:]} if a.cell.startswith("rnn") else {}


class LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = kind(V, H, **kw)
        self.decoder = torch.nn.Linear(H, V)

    def forward(self, x, state):
        y, state = self.rnn(torch.nn.functional.one_hot(x, V).float(), state)
        return self.decoder(y), state


model = LM()
if a.write_init:
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    header, off = {}, 0
    for k, v in tensors.items():
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.numel() * 4]}
        off += v.numel() * 4
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(a.write_init, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for v in tensors.values():
            f.write(v.numpy().astype("<f4").tobytes())


def zero_state():
    z = torch.zeros(1, B, H)
    return (z, z.clone()) if a.cell == "lstm" else z


def detach(s):
    return tuple(x.detach() for x in s) if isinstance(s, tuple) else s.detach()


def held_out_perplexity():
    per_stream = (len(vids) - 1) // B
    windows = per_stream // T
    state, total = zero_state(), 0.0
    with torch.no_grad():
        for w in range(windows):
            at = torch.arange(B)[None, :] * per_stream + w * T + torch.arange(T)[:, None]
            out, state = model(vids[at], state)
            total += torch.nn.functional.cross_entropy(out.reshape(-1, V), vids[at + 1].reshape(-1)).item()
    return math.exp(total / windows)


gen = torch.Generator().manual_seed(a.seed)
opt = torch.optim.Adam(model.parameters(), lr=a.lr)
rows, step, t0, best = [], 0, time.time(), float("inf")
print("torch %s language model: vocabulary %d, %d training and %d held-out tokens; hidden %d, T=%d B=%d, adam lr %g, "
      "%d steps (torch %s, %d threads, OPENBLAS_CORETYPE %s)" % (a.cell, V, len(ids), len(vids), H, T, B, a.lr, a.steps,
      torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "unset")))
while step < a.steps:
    offset = int(torch.randint(0, T + 1, (1,), generator=gen))
    stream = (len(ids) - offset - 1) // B
    batches, state = stream // T, zero_state()
    for k in range(batches):
        if step == a.steps:
            break
        at = offset + torch.arange(B)[None, :] * stream + k * T + torch.arange(T)[:, None]
        state = detach(state)
        out, state = model(ids[at], state)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, V), ids[at + 1].reshape(-1))
        opt.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip if a.clip > 0 else float("inf")))
        opt.step()
        step += 1
        tps = step * T * B / (time.time() - t0)
        vppl = ""
        if step % a.eval_every == 0 or step == a.steps:
            v = held_out_perplexity()
            best = min(best, v)
            vppl = "%.4f" % v
            print("step %d/%d  loss %.3f  perplexity %.2f  %.0f tokens/s  held-out perplexity %.2f"
                  % (step, a.steps, loss.item(), math.exp(loss.item()), tps, v))
        rows.append("%d,%.6f,%.4f,%.6f,%g,%.1f,%s" % (step, loss.item(), math.exp(loss.item()), norm, a.lr, tps, vppl))
elapsed = time.time() - t0
print("trained %d steps in %.1f s (%.0f tokens/s): best held-out perplexity %.2f"
      % (a.steps, elapsed, a.steps * T * B / elapsed, best))
if a.metrics:
    with open(a.metrics, "w") as f:
        f.write("step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity\n" + "\n".join(rows) + "\n")
