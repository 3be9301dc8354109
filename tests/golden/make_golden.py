#!/usr/bin/python3
"""Writes the recurrent-layer golden cases for loom's tests with PyTorch.

Each case is one safetensors file in the format `loom rnn-run` reads (metadata,
parameters under torch.nn state_dict names, input, h0/c0, optional lengths,
grad_output) plus PyTorch's answers under `expected.*`: output, h_n, c_n and
the gradients of L = sum(output * grad_output) with respect to the input, the
initial states and every parameter. Inputs are float32; PyTorch computes in
float64 from exactly those values.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py
"""
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
T, B, I, H = 5, 3, 4, 5
LENGTHS = [5, 2, 4]  # unsorted on purpose


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        raw = t.numpy().tobytes()  # little-endian on every machine torch runs on here
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make(cell, layers, bidirectional, lengths, seed, proj=0):
    torch.manual_seed(seed)
    kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    if proj:
        kw["proj_size"] = proj  # LSTM with projections: h (and the outputs) have proj features
    m = kind(I, H, num_layers=layers, bidirectional=bidirectional, **kw)
    dirs = 2 if bidirectional else 1
    P = proj or H
    params32 = {k: v.detach().float() for k, v in m.state_dict().items()}
    x32 = torch.randn(T, B, I)
    h032 = torch.randn(layers * dirs, B, P) * 0.5
    c032 = torch.randn(layers * dirs, B, H) * 0.5
    go32 = torch.randn(T, B, dirs * P)

    m = m.double()
    x = x32.double().requires_grad_()
    h0 = h032.double().requires_grad_()
    c0 = c032.double().requires_grad_()
    state = (h0, c0) if cell == "lstm" else h0
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        out_p, fin = m(packed, state)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, total_length=T)
    else:
        out, fin = m(x, state)
    loss = (out * go32.double()).sum()
    loss.backward()

    t = dict(params32)
    t["input"], t["h0"], t["grad_output"] = x32, h032, go32
    t["expected.output"] = out.detach().float()
    t["expected.grad.input"], t["expected.grad.h0"] = x.grad.float(), h0.grad.float()
    if cell == "lstm":
        t["c0"] = c032
        t["expected.h_n"], t["expected.c_n"] = fin[0].detach().float(), fin[1].detach().float()
        t["expected.grad.c0"] = c0.grad.float()
    else:
        t["expected.h_n"] = fin.detach().float()
    for k, p in m.named_parameters():
        t["expected.grad." + k] = p.grad.float()
    if lengths is not None:
        t["lengths"] = torch.tensor(lengths, dtype=torch.int32)
    meta = {"cell": cell, "layers": str(layers), "bidirectional": "true" if bidirectional else "false",
            "input_size": str(I), "hidden_size": str(H), "seq_len": str(T), "batch": str(B)}
    if proj:
        meta["proj_size"] = str(proj)
    name = "%s%s_l%d_%s%s.safetensors" % (cell, "_proj%d" % proj if proj else "", layers, "bi" if bidirectional else "uni",
                                         "_varlen" if lengths else "")
    write_safetensors(os.path.join(HERE, name), t, meta)
    return name


def main():
    names, seed = [], 1
    for cell in ("rnn_tanh", "rnn_relu", "gru", "lstm"):
        for layers in (1, 2):
            for bi in (False, True):
                names.append(make(cell, layers, bi, None, seed))
                seed += 1
        names.append(make(cell, 1, False, LENGTHS, seed))
        names.append(make(cell, 2, True, LENGTHS, seed + 1))
        seed += 2
    names.append(make("lstm", 2, True, None, seed, proj=3))       # torch.nn.LSTM(proj_size=3)
    names.append(make("lstm", 1, False, LENGTHS, seed + 1, proj=2))
    with open(os.path.join(HERE, "cases.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print("wrote %d cases (torch %s)" % (len(names), torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
