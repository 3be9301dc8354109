#!/usr/bin/python3
"""Writes tests/golden/optim.safetensors: torch.optim's updates, learning-rate
schedules and gradient clipping, for test_train.c to compare with loom's.

Each optimiser case: `<case>.p0` the initial parameters (N,), `<case>.grads`
the gradient of each step (S, N), `<case>.expected` the parameters after each
step (S, N); its options as JSON in the metadata under `<case>`. Schedules:
`sched.<name>` the learning rate of steps 0..S-1 (options in the metadata).
Clipping: `clip.g0`, `clip.g1` gradients, `clip.out0`, `clip.out1` after
clip_grad_norm_(max_norm), `clip.norm` the norm it returned.

Run with Debian's python3-torch: /usr/bin/python3 tests/golden/make_optim.py
"""
import json, math, os, struct
import torch

torch.manual_seed(7)
S, N = 6, 5
cases = {
    "sgd": dict(kind="sgd", lr=0.1),
    "sgd_momentum": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.1),
    "sgd_nesterov_wd": dict(kind="sgd", lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": dict(kind="adam", lr=0.01),
    "adam_wd": dict(kind="adam", lr=0.02, betas=[0.8, 0.99], eps=1e-6, weight_decay=0.05),
    "adamw": dict(kind="adamw", lr=0.01, weight_decay=0.1),
}
tensors, meta = {}, {}
for name, c in cases.items():
    p = torch.nn.Parameter(torch.randn(N))
    p0 = p.detach().clone()
    kw = {k: v for k, v in c.items() if k != "kind"}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[c["kind"]]([p], **kw)
    grads, after = [], []
    for s in range(S):
        g = torch.randn(N) * (1 + s)
        p.grad = g.clone()
        opt.step()
        grads.append(g)
        after.append(p.detach().clone())
    tensors[name + ".p0"] = p0
    tensors[name + ".grads"] = torch.stack(grads)
    tensors[name + ".expected"] = torch.stack(after)
    meta[name] = json.dumps(c)

scheds = {
    "step": dict(kind="step", lr=0.5, step_size=3, gamma=0.5),
    "exp": dict(kind="exp", lr=0.5, gamma=0.9),
    "cosine": dict(kind="cosine", lr=0.5, total=8, min_lr=0.01),
}
for name, c in scheds.items():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=c["lr"])
    sch = {"step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=c["step_size"], gamma=c["gamma"]),
           "exp": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=c["gamma"]),
           "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=c["total"], eta_min=c["min_lr"])}[name](opt)
    lrs = []
    for s in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    tensors["sched." + name] = torch.tensor(lrs, dtype=torch.float32)
    meta["sched." + name] = json.dumps(c)

g0, g1 = torch.randn(4) * 3, torch.randn(3) * 3
a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(3))
a.grad, b.grad = g0.clone(), g1.clone()
norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
tensors.update({"clip.g0": g0, "clip.g1": g1, "clip.out0": a.grad, "clip.out1": b.grad, "clip.norm": norm.reshape(1)})
meta["clip"] = json.dumps(dict(max_norm=1.0))

# safetensors by hand (as make_golden.py): header, then the data in name order
names = sorted(tensors)
header, off, blobs = {"__metadata__": meta}, 0, []
for n in names:
    t = tensors[n].detach().to(torch.float32).contiguous()
    raw = b"".join(struct.pack("<f", float(x)) for x in t.flatten().tolist())
    header[n] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
    off += len(raw)
    blobs.append(raw)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.safetensors")
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("wrote", out, "with", len(names), "tensors")
