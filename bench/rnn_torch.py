#!/usr/bin/python3
"""PyTorch on the shapes of rnn_bench: forward + backward of sum(output) of one layer.
   /usr/bin/python3 bench/rnn_torch.py [cell] [seq_len] [batch] [hidden] [iters]"""
import os
import sys
import time

import torch

args = sys.argv[1:] + ["lstm", "35", "20", "200", "50"][len(sys.argv[1:]):]
cell = args[0]
T, B, H, iters = (int(v) for v in args[1:5])
kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
m = kind(H, H, **kw)
x = torch.randn(T, B, H)
m(x)[0].sum().backward()
t0 = time.time()
for _ in range(iters):
    m.zero_grad()
    m(x)[0].sum().backward()
ms = (time.time() - t0) / iters * 1e3
print("torch %-8s T=%d B=%d H=%d  forward+backward %8.2f ms/iter  (torch %s, %d threads, OPENBLAS_CORETYPE %s)"
      % (cell, T, B, H, ms, torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "unset")))
