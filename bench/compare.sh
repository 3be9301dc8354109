#!/bin/sh
# loom and PyTorch side by side (PyTorch when Debian's python3-torch is installed).
# OPENBLAS_CORETYPE is unset for both: forcing an older core type slows OpenBLAS down.
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE
for cell in rnn_tanh gru lstm; do
    build/bench/rnn_bench --cell $cell
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then /usr/bin/python3 bench/rnn_torch.py $cell; fi
done
