#!/bin/sh
# The figures of the README's "Teaching BPTT" section: two models trained on
# the adding problem (a vanilla RNN, an LSTM), their gradients along t, the
# Jacobians and spectra behind them, and pictures of both, with loom commands.
#   sh docs/make_teaching.sh   (about 3 minutes on 2 cores)
set -eu
cd "$(dirname "$0")/.."
loom=${LOOM:-build/loom}
out=docs/teaching
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
# adding problem, T = 100 (the loss on the last step), as the lecture trains it
for cell in rnn_tanh lstm; do
    $loom train --task adding --cell $cell --seq-len 100 --hidden 64 --batch 64 --lr 0.003 --clip 1 --steps 4000 \
        --eval-every 1000 --threads 2 --save "$tmp/$cell.ckpt" --norms-every 1000 --norms-csv "$tmp/${cell}_training.csv"
    $loom dot --load "$tmp/$cell.ckpt" --norms-csv "$tmp/$cell.csv"
    $loom inspect --load "$tmp/$cell.ckpt" --jacobian-csv "$tmp/${cell}_jacobian.csv" --gates-csv "$tmp/${cell}_gates.csv" \
        --spectrum-csv "$tmp/${cell}_spectrum.csv" > "$out/${cell}_inspect.txt"
    $loom dot --load "$tmp/$cell.ckpt" --grad-norms --view cell --steps-shown 4 --heat-range 1e-30:1 -o "$out/${cell}_heat.svg"
    $loom dot --load "$tmp/$cell.ckpt" --grad-norms --view cell --style slide --heat-range 1e-30:1 -o "$out/${cell}_heat_slide.svg"
done
# the lecture's slide: how much of the gradient reaches t = 1
$loom plot "$tmp/rnn_tanh.csv" "$tmp/lstm.csv" --labels "tanh RNN,LSTM" --x t --where state=h --log \
    --ylabel "‖∂L/∂h_t‖ (float64)" --title "after training: the gradient of the last step's loss along t" \
    -o "$out/vanishing.svg"
# why: each step's Jacobian — its norm bounds the shrinking, its spectral radius is the rate
$loom plot "$tmp/rnn_tanh_jacobian.csv" "$tmp/lstm_jacobian.csv" --labels "tanh RNN,LSTM" --x t \
    --column spectral_radius --ylabel "spectral radius of ∂s_t/∂s_t-1" --title "the rate the gradient shrinks at, step by step" \
    -o "$out/jacobians.svg"
# the LSTM's gates along t, and its gradient as it learns
$loom plot "$tmp/lstm_gates.csv" --labels LSTM --x t --column mean --ylabel "mean gate activation" --linear \
    -o "$out/lstm_gates.svg"
$loom plot "$tmp/lstm_training.csv" --labels LSTM --x t --where state=c --log --ylabel "‖∂L/∂c_t‖" \
    --title "the LSTM's gradient along t at training steps 0, 1000, ..., 4000" -o "$out/lstm_learning.svg"
$loom plot "$tmp/rnn_tanh_training.csv" --labels "tanh RNN" --x t --log --ylabel "‖∂L/∂h_t‖" \
    --title "the tanh RNN's gradient along t at training steps 0, 1000, ..., 4000" -o "$out/rnn_learning.svg"
