#!/bin/sh
# Regenerates the pictures in docs/ (shown in the README) with the loom command.
set -eu
cd "$(dirname "$0")/.."
loom=${LOOM:-build/loom}
$loom dot --cell lstm --seq-len 4 --view cell -o docs/lstm_forward.svg
$loom dot --cell lstm --seq-len 4 --view cell --backward -o docs/lstm_backward.svg
$loom dot --cell lstm --seq-len 3 -o docs/lstm_ops.svg
$loom dot --cell rnn_tanh --seq-len 6 --truncate 3 --view cell --backward -o docs/truncated_bptt.svg
$loom dot --cell rnn_tanh --seq-len 16 --view cell --grad-norms --loss last --heat-range 1e-7:2 -o docs/heat_rnn_tanh.svg
$loom dot --cell lstm --seq-len 16 --view cell --grad-norms --loss last --heat-range 1e-7:2 -o docs/heat_lstm.svg
$loom dot --cell gru --layers 2 --bidirectional --seq-len 4 --view cell -o docs/gru_2layer_bidirectional.svg
$loom dot --cell ln_lstm --layers 2 --seq-len 3 --view cell -o docs/ln_lstm_cells.svg
$loom dot --seq2seq additive --cell gru --seq-len 3 --view cell -o docs/seq2seq_additive.svg
$loom dot --cell rnn_tanh --seq-len 5 --view cell --backward --style slide -o docs/slide_rnn_bptt.svg
$loom dot --cell lstm --seq-len 4 --view cell --style slide -o docs/slide_lstm.svg
$loom dot --cell rnn_tanh --seq-len 2 --style slide -o docs/slide_rnn_ops.svg
# a date model's attention (training is deterministic for a given seed and thread count)
tmp=$(mktemp -d)
$loom train --task dates --steps 600 --threads 2 --eval-pairs 200 --save "$tmp/dates.ckpt" >/dev/null 2>&1
$loom translate --load "$tmp/dates.ckpt" "Tuesday, November 24, 2026" --attention-map docs/attention_dates.svg >/dev/null
rm -rf "$tmp"
