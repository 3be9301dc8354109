#!/usr/bin/python3
"""The PyTorch side of bench/seq2seq_bench.c: the same encoder-decoder (embedding,
LSTM encoder; decoder step by step with additive (Bahdanau), scaled dot or no
attention over the encoder outputs, the previous target token's embedding joined
with the context, LSTM, linear), a training step (masked mean cross-entropy,
backward, clip_grad_norm_ 1.0, Adam) and greedy decoding of a batch, median of
--iters runs after a warm-up.
    /usr/bin/python3 bench/seq2seq_torch.py [--attention additive] [--batch 64] [--src-len 32] ...
"""
import argparse, math, statistics, time
import torch
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--attention", default="additive", choices=["none", "additive", "dot"])
p.add_argument("--batch", type=int, default=64)
p.add_argument("--src-len", type=int, default=32)
p.add_argument("--tgt-len", type=int, default=11)
p.add_argument("--embed", type=int, default=32)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)
B, Ts, Tt, E, H, VS, VT = a.batch, a.src_len, a.tgt_len, a.embed, a.hidden, 41, 15


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(VS, E), nn.Embedding(VT, E)
        self.enc = nn.LSTM(E, H)
        self.W_k = nn.Linear(H, H, bias=False)
        self.W_q = nn.Linear(H, H, bias=False)
        self.w_v = nn.Linear(H, 1, bias=False)
        self.dec = nn.LSTMCell(E + H, H)
        self.dense = nn.Linear(H, VT)

    def encode(self, src):
        mem, (h, c) = self.enc(self.src_emb(src))          # (Ts, B, H)
        mem = mem.transpose(0, 1)                            # (B, Ts, H)
        return mem, self.W_k(mem) if a.attention != "none" else None, h[0], c[0]

    def step(self, tok, h, c, mem, keys, ctx0):
        if a.attention == "additive":
            s = self.w_v(torch.tanh(keys + self.W_q(h).unsqueeze(1))).squeeze(2)
        elif a.attention == "dot":
            s = torch.bmm(keys, h.unsqueeze(2)).squeeze(2) / math.sqrt(H)
        if a.attention != "none":
            ctx = torch.bmm(torch.softmax(s, dim=1).unsqueeze(1), mem).squeeze(1)
        else:
            ctx = ctx0
        h, c = self.dec(torch.cat([self.tgt_emb(tok), ctx], 1), (h, c))
        return self.dense(h), h, c

    def forward(self, src, dec_in):
        mem, keys, h, c = self.encode(src)
        ctx0, out = h, []
        for t in range(dec_in.shape[0]):
            y, h, c = self.step(dec_in[t], h, c, mem, keys, ctx0)
            out.append(y)
        return torch.stack(out)


m = Seq2Seq()
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
src = torch.randint(4, VS, (Ts, B))
tgt = torch.randint(4, VT, (Tt, B))
dec_in = torch.cat([torch.full((1, B), 2), tgt[:-1]])
loss_fn = nn.CrossEntropyLoss()


def train():
    opt.zero_grad()
    loss = loss_fn(m(src, dec_in).reshape(-1, VT), tgt.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()


@torch.no_grad()
def decode():
    mem, keys, h, c = m.encode(src)
    ctx0, tok = h, torch.full((B,), 2)
    for _ in range(Tt):
        y, h, c = m.step(tok, h, c, mem, keys, ctx0)
        tok = y.argmax(1)


def median_ms(f):
    f()
    ts = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


tr, de = median_ms(train), median_ms(decode)
print(f"torch seq2seq lstm, attention {a.attention}, B={B} Ts={Ts} Tt={Tt} E={E} H={H} layers 1: "
      f"train step {tr:.2f} ms ({B / tr * 1e3:.0f} pairs/s), greedy decode {de:.2f} ms ({B / de * 1e3:.0f} pairs/s)")
