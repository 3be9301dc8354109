#!/bin/sh
# `loom train`'s character language model beside the same model and loop in
# PyTorch, starting from the same weights: held-out perplexity and tokens/s per
# cell, metrics in OUT/ and both curves in OUT/curves.svg.
#   bench/char_lm_compare.sh [steps] [out-dir]     (needs Debian's python3-torch)
# OPENBLAS_CORETYPE is unset for both: forcing an older core type slows OpenBLAS down.
set -e
cd "$(dirname "$0")/.."
steps=${1:-600}
out=${2:-build/char_lm_compare}
unset OPENBLAS_CORETYPE
mkdir -p "$out"
files= labels=
for cell in rnn_tanh gru lstm; do
    /usr/bin/python3 bench/char_lm_torch.py --cell $cell --steps "$steps" --eval-every 50 \
        --write-init "$out/init_$cell.safetensors" --metrics "$out/torch_$cell.csv" | tail -1 | sed "s/^/torch $cell: /"
    build/loom train --cell $cell --steps "$steps" --eval-every 50 --generate 0 \
        --init "$out/init_$cell.safetensors" --metrics "$out/loom_$cell.csv" 2>/dev/null | tail -1 | sed "s/^/loom  $cell: /"
    files="$files $out/loom_$cell.csv $out/torch_$cell.csv"
    labels="$labels${labels:+,}loom $cell,PyTorch $cell"
done
build/loom plot $files --labels "$labels" --column valid_perplexity \
    --title "held-out perplexity, same initial weights" -o "$out/curves.svg"
echo "curves: $out/curves.svg"
