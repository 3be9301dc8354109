#!/bin/sh
# The loom command as a user meets it: exit statuses, messages, and the
# files it leaves behind.   sh tests/cli.sh LOOM GOLDEN_DIR
set -u
loom=$1
golden=$2
. "$(dirname "$0")/cli_lib.sh"

# help: where an option may stand, not as a flag's value
expect 0 "usage: loom dot" -- "$loom" dot --help
expect 0 "--max-checks" -- "$loom" gradcheck -h
expect 0 "--finite" -- "$loom" rnn-run --help
expect 0 "commands:" -- "$loom" --help
expect 0 "" -- "$loom" dot --title --help -o "$dir/title.dot"
check "--title takes --help as its value" grep -q 'label="--help"' "$dir/title.dot"
expect 2 "must be" -- "$loom" gradcheck --cell --help

# flags and their values
expect 2 "--title needs a value" -- "$loom" dot -o "$dir/x.dot" --title
expect 2 "-o needs a value" -- "$loom" dot -o
expect 2 "needs an integer" -- "$loom" gradcheck --seq-len " 3"
expect 2 "needs an integer" -- "$loom" gradcheck --seq-len "+3"
expect 2 "needs an integer" -- "$loom" gradcheck --seq-len "3 "
expect 2 "unknown option" -- "$loom" rnn-run --frobnicate a b
expect 2 "usage: loom rnn-run" -- "$loom" rnn-run onlyone
expect 2 "unknown command" -- "$loom" train-me
expect 2 "0 < LO < HI" -- "$loom" dot --grad-norms --heat-range 1:inf -o "$dir/h.svg"
expect 0 "" -- "$loom" dot --cell gru --backward -o "$dir/g.html"
check "the page: one file, its data the DOT" grep -q '<script type="text/plain" id="view_cell">digraph loom' "$dir/g.html"
expect 2 "has its own labels and edges" -- "$loom" dot --style slide -o "$dir/g2.html"
expect 2 "has its own labels and edges" -- "$loom" dot --edges straight -o "$dir/g2.html"
expect 2 "0 < LO < HI" -- "$loom" dot --grad-norms --heat-range 1:1e39 -o "$dir/h.svg"

# outputs: written whole or not at all, and never over their own input
expect 1 "cannot create a temporary file" -- "$loom" dot -o "$dir/no/such/dir.svg"
mkdir "$dir/d.svg"
expect 1 "is a directory" -- "$loom" dot -o "$dir/d.svg"
echo old >"$dir/keep.svg"
expect 0 "" -- "$loom" dot -o "$dir/keep.svg"
check "the svg replaced the old file" grep -q '<svg' "$dir/keep.svg"
cp "$golden/gru_l1_uni.safetensors" "$dir/case.safetensors"
expect 2 "would replace the case file" -- "$loom" rnn-run "$dir/case.safetensors" "$dir/case.safetensors"
check "the case file is intact" cmp -s "$golden/gru_l1_uni.safetensors" "$dir/case.safetensors"
ln -s case.safetensors "$dir/link.safetensors"
expect 2 "would replace the case file" -- "$loom" rnn-run "$dir/case.safetensors" "$dir/link.safetensors"
expect 0 "" -- "$loom" rnn-run "$dir/case.safetensors" "$dir/out.safetensors"
umask_out=$(stat -c %a "$dir/out.safetensors")
check "a new file gets 0666 less the umask ($(umask)): $umask_out" [ "$umask_out" = "$(printf '%o' $((0666 & ~$(umask))))" ]
# a file over RLIMIT_FSIZE: a write error, the old file kept, no temporary left
echo old >"$dir/big.svg"
expect 1 "write failed" -- sh -c "ulimit -f 8; exec \"$loom\" dot --seq-len 40 --backward -o \"$dir/big.svg\""
check "the old file is kept after a failed write" grep -qx old "$dir/big.svg"
check "no temporary file is left" no_temporaries

# bench: one configuration and cell; the last line a JSON object with the figures
expect 0 '"train_ms"' -- "$loom" bench --config charlm-small --cell mgu --threads 1 --iters 1 --json
last=$(tail -n 1 "$dir/out")
check "bench's last line is its JSON result: $last" sh -c "echo '$last' | grep -q '^{\"config\": \"charlm-small\", \"cell\": \"mgu\", \"threads\": 1, \"seq_len\": 35, \"batch\": 32, \"recompute\": 0, \"precision\": \"f32\", \"train_ms\": [0-9.]*, \"infer_ms\": [0-9.]*, \"tokens_per_s\": [0-9.]*.*\"peak_bytes\": [1-9][0-9]*'"
expect 2 "--config must be one of charlm-small charlm-512 wordlm-medium long-seq, got 'charlm'" -- "$loom" bench --config charlm
expect 2 "--threads needs an integer" -- "$loom" bench --threads 0
# bf16 where oneDNN may not use it (as on a CPU without it): refused, never an illegal instruction
expect 2 "bf16 products need" -- env DNNL_MAX_CPU_ISA=AVX2 "$loom" bench --config charlm-small --cell gru --iters 1 --precision bf16
expect 2 "bf16 products need" -- env DNNL_MAX_CPU_ISA=AVX512_CORE "$loom" train --steps 2 --precision bf16
expect 2 "--precision must be one of f32 bf16" -- "$loom" train --precision fp16
expect 2 "LOOM_NUM_THREADS needs an integer" -- env LOOM_NUM_THREADS=two "$loom" bench
expect 2 "unknown rewrite 'fast'" -- env LOOM_REWRITES=fast "$loom" bench --config charlm-small --cell gru --iters 1
# gradcheck: a step far too large fails (the check can fail);
# sampling; out of memory is a failure (1), not bad input (2)
expect 1 "gradcheck FAILED" -- "$loom" gradcheck --eps 0.4
expect 0 "checked 27 gradient elements over 9 tensors" -- "$loom" gradcheck --max-checks 3
if [ -z "${ASAN_OPTIONS:-}" ]; then # ASan reserves more address space than the limit allows
    expect 1 "out of memory" -- sh -c "ulimit -v 400000; exec \"$loom\" gradcheck --hidden 2048 --seq-len 200 --batch 64"
fi

# training: --epochs, and drawing a trained model on its text
i=0
while [ $i -lt 60 ]; do echo "the time traveller held in his hand a glittering metallic framework"; i=$((i + 1)); done >"$dir/text.txt"
small="--data $dir/text.txt --hidden 8 --seq-len 5 --batch 2 --generate 0 --threads 1"
expect 2 "not both" -- "$loom" train $small --epochs 1 --steps 5
expect 2 "use --steps" -- "$loom" train --task adding --epochs 1
expect 0 "" -- "$loom" train $small --epochs 2 --metrics "$dir/ep.csv" --save "$dir/ck.safetensors"
# 4080 characters, 3672 for training: an epoch's offset o in 0..5 leaves 2 streams of
# (3671 - o) / 2 tokens, 366 or 367 windows of 5
rows=$(($(wc -l <"$dir/ep.csv") - 1))
check "--epochs 2 ran two epochs' batches ($rows steps)" [ "$rows" -ge 732 ] && [ "$rows" -le 734 ]
check "the summary names the steps run" grep -q "trained $rows steps" "$dir/out"
expect 0 "on the held-out tenth of its training text (408 tokens)" -- "$loom" eval --load "$dir/ck.safetensors"
expect 0 "on $dir/text.txt (4080 tokens)" -- "$loom" eval --load "$dir/ck.safetensors" --data "$dir/text.txt"
# resumes NAME FLAGS...: 12 steps, then 8 more resumed, are the 20 steps of one run byte for byte ($dir/NAME_whole.ckpt)
resumes() {
    name=$1
    shift
    expect 0 "" -- "$loom" train "$@" --steps 12 --save "$dir/${name}_half.ckpt"
    expect 0 "" -- "$loom" train --resume "$dir/${name}_half.ckpt" --steps 20 --save "$dir/${name}_resumed.ckpt"
    expect 0 "" -- "$loom" train "$@" --steps 20 --save "$dir/${name}_whole.ckpt"
    check "$name resumes bit for bit" cmp -s "$dir/${name}_resumed.ckpt" "$dir/${name}_whole.ckpt"
}
# stacked layers joined (highway gates)
resumes hw $small --layers 2 --stacking highway
expect 2 "--stacking with --resume" -- "$loom" train --resume "$dir/hw_half.ckpt" --stacking dense --steps 20
expect 2 "--stacking must be one of plain residual highway dense" -- "$loom" train $small --stacking skip
expect 0 "gradcheck passed" -- "$loom" gradcheck --cell gru --layers 2 --stacking residual --input 6 --max-checks 20
# tied weights: the embedding is the decoder's weight; resumed bit for bit; eval and generate read it
resumes tied $small --embed 8 --tie-weights
expect 0 "perplexity" -- "$loom" eval --load "$dir/tied_whole.ckpt"
expect 0 "" -- "$loom" generate --load "$dir/tied_whole.ckpt" --length 10
expect 2 "give --embed 8 (= --hidden)" -- "$loom" train $small --tie-weights
expect 2 "--tie-weights" -- "$loom" train --task adding --tie-weights
# AWD-LSTM's regularisers: resumed bit for bit, evaluated (masks off), refused where they cannot be honoured
resumes awd $small --embed 8 --layers 2 --dropout 0.2 --variational --dropout-state 0.2 --weight-drop 0.3 --zoneout 0.1 \
  --dropout-embed 0.1
expect 0 "perplexity" -- "$loom" eval --load "$dir/awd_whole.ckpt"
expect 2 "--zoneout" -- "$loom" train --task adding --zoneout 0.1
expect 2 "--weight-drop with --resume" -- "$loom" train --resume "$dir/awd_half.ckpt" --weight-drop 0.5 --steps 20
expect 2 "--dropout-embed drops words from an embedding" -- "$loom" train $small --dropout-embed 0.1
# the n-gram baseline: counted on the 3672 training characters, scored on the same 408 tokens as the model
expect 0 "3-gram baseline (Laplace, ε = " -- "$loom" eval --load "$dir/ck.safetensors" --baseline 3
check "the baseline is scored on the model's tokens" grep -q "perplexity .* on the same tokens" "$dir/out"
expect 2 "--baseline needs an integer in [1, 8]" -- "$loom" eval --load "$dir/ck.safetensors" --baseline 9
# text statistics: the most frequent n-grams, Zipf's law, the n-gram models' perplexity
expect 0 "" -- "$loom" stats --data "$dir/text.txt" --tokens word --top 3 --plot "$dir/zipf.svg"
check "stats counts the words" grep -q "text.txt: 660 tokens (words), 11 distinct" "$dir/out"
check "the most frequent word" grep -q "^  the  *60$" "$dir/out"
check "bigrams and the n-gram perplexity" grep -q "^2-grams: 659, 11 distinct" "$dir/out" && grep -q "^  3-gram " "$dir/out"
check "the Zipf plot" grep -q "<svg" "$dir/zipf.svg"
expect 2 "--data FILE is required" -- "$loom" stats
expect 2 "would replace its input" -- "$loom" stats --data "$dir/text.txt" --plot "$dir/text.txt"
expect 2 "--order needs an integer in [1, 8]" -- "$loom" stats --data "$dir/text.txt" --order 0
head -c 600 "$dir/text.txt" >"$dir/valid.txt"
expect 0 "" -- "$loom" train $small --steps 3 --valid "$dir/valid.txt" --save "$dir/ckv.safetensors"
expect 0 "on its held-out text (600 tokens)" -- "$loom" eval --load "$dir/ckv.safetensors"
mv "$dir/valid.txt" "$dir/valid2.txt"
expect 2 "the held-out text the model trained with: give it, or another" -- "$loom" eval --load "$dir/ckv.safetensors"
# a run that diverges with a finite loss says so, and fails with --strict (its checkpoint written all the same)
expect 0 "the run diverged" -- "$loom" train $small --steps 40 --clip 0 --optimizer sgd --lr 50
expect 1 "the run diverged" -- "$loom" train $small --steps 40 --clip 0 --optimizer sgd --lr 50 --strict --save "$dir/div.ckpt"
check "the diverged run's checkpoint was written" [ -s "$dir/div.ckpt" ]
expect 0 "" -- "$loom" dot --load "$dir/ck.safetensors" --grad-norms --seq-len 6 -o "$dir/trained.dot"
check "the trained model's picture has its title and heat" grep -q 'trained language model, lstm.*on held-out text' "$dir/trained.dot"
check "the trained model's picture has its heat legend" grep -q '‖∂L/∂h' "$dir/trained.dot"
expect 2 "cannot be given with --load" -- "$loom" dot --load "$dir/ck.safetensors" --cell gru -o "$dir/x.dot"
expect 2 "give --load CKPT too" -- "$loom" dot --data "$dir/text.txt" -o "$dir/x.dot"
expect 2 "loom dot: " -- "$loom" dot --load "$dir/no-such.safetensors" -o "$dir/x.dot"
expect 2 "loom dot: " -- "$loom" dot --load "$dir/text.txt" -o "$dir/x.dot"
check "nothing was written for a refused --load" [ ! -e "$dir/x.dot" ]
expect 2 "--batch-from is for --load's model" -- "$loom" dot --batch-from training -o "$dir/x.dot"

# a sampled softmax: trains a word LM, resumes bit for bit, is evaluated with the full softmax
resumes ss $small --tokens word --embed 8 --sampled-softmax 5
check "training prints the sampled loss, no perplexity of it" grep -q "final sampled loss" "$dir/out"
expect 0 "perplexity" -- "$loom" eval --load "$dir/ss_whole.ckpt"
expect 2 "--sampled-softmax is not used by --task adding" -- "$loom" train --task adding --sampled-softmax 5

# forecasting d2l's noisy sine: k-step-ahead errors printed, plotted from the checkpoint; resumed bit for bit
resumes sine --task sine --seq-len 8 --hidden 8 --batch 8 --eval-every 10
check "the forecast table at the end" grep -q "k = 64 *MSE" "$dir/out"
expect 0 "k = 2 " -- "$loom" eval --load "$dir/sine_whole.ckpt" --horizons 1,2 --plot "$dir/sine.svg"
check "the forecasts drawn" grep -q "<svg" "$dir/sine.svg"
expect 2 "--horizons: give up to 64" -- "$loom" eval --load "$dir/sine_whole.ckpt" --horizons 1,x
expect 2 "--horizons: each k from 1" -- "$loom" eval --load "$dir/sine_whole.ckpt" --horizons 1000
expect 2 "would replace its input" -- "$loom" eval --load "$dir/sine_whole.ckpt" --plot "$dir/sine_whole.ckpt"
expect 2 "--bidirectional is not used by --task sine" -- "$loom" train --task sine --bidirectional
expect 2 "sine windows of at most 300 steps" -- "$loom" train --task sine --seq-len 400 --steps 1
check "a sine run's metrics: its MSE" sh -c "'$loom' train --task sine --seq-len 4 --hidden 4 --steps 2 --metrics '$dir/sine.csv' >/dev/null 2>&1 && head -1 '$dir/sine.csv' | grep -qx 'step,mse,grad_norm,lr,valid_mse'"
# the temporal-order problem: classes, both directions, pooled; --pool only where a sequence has one class
resumes order --task temporal-order --seq-len 12 --hidden 8 --batch 8 --bidirectional --pool mean --eval-every 10
expect 0 "temporal-order task, T = 12, after 20 steps: held-out loss" -- "$loom" eval --load "$dir/order_whole.ckpt"
expect 2 "--pool is for --task temporal-order and classify" -- "$loom" train --task copy --pool mean
expect 2 "--pool with --resume" -- "$loom" train --resume "$dir/order_half.ckpt" --pool last --steps 30
expect 2 "a sine model's forecasts, not a temporal-order" -- "$loom" eval --load "$dir/order_whole.ckpt" --plot "$dir/o.svg"
expect 2 "at least 10 steps" -- "$loom" train --task temporal-order --seq-len 9 --steps 1
resumes ufb --task temporal-order --seq-len 12 --hidden 8 --batch 8 --unit-forget-bias --eval-every 10
check "the checkpoint says so" grep -aq 'unit_forget_bias.":true' "$dir/ufb_whole.ckpt"
expect 2 "give --cell lstm" -- "$loom" train --task temporal-order --cell gru --unit-forget-bias

# classification and tagging from lines of a file; resumed bit for bit; scored on its held-out lines or another file
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
  printf 'pos\tgood fine great day %s\nneg\tbad awful poor day %s\nvery pos\tgreat great good %s\n' $i $i $i
done >"$dir/labels.tsv"
printf 'pos\tgood day\nnot a line\nneg\tawful\n' >"$dir/labels_more.tsv"
resumes cls --task classify --data "$dir/labels.tsv" --seq-len 6 --hidden 8 --embed 4 --batch 4 --bidirectional --pool mean --eval-every 10
expect 0 "classify task, T = 6, after 20 steps: held-out loss" -- "$loom" eval --load "$dir/cls_whole.ckpt"
expect 0 "on $dir/labels_more.tsv (2 lines)" -- "$loom" eval --load "$dir/cls_whole.ckpt" --data "$dir/labels_more.tsv"
check "the bad line is named" grep -q "line 2" "$dir/err"
for i in 1 2 3 4 5 6 7 8 9 10; do printf 'the dog barks %s\tDET NOUN VERB NUM\na cat %s\tDET NOUN NUM\n' $i $i; done >"$dir/tags.tsv"
resumes tag --task tag --data "$dir/tags.tsv" --seq-len 6 --hidden 8 --embed 4 --batch 4 --bidirectional --eval-every 10
expect 0 "tag task, T = 6, after 20 steps: held-out loss" -- "$loom" eval --load "$dir/tag_whole.ckpt"
expect 0 "trained" -- "$loom" train --task tag --data "$dir/tags.tsv" --seq-len 6 --hidden 4 --embed 0 --epochs 2 --valid "$dir/tags.tsv"
expect 2 "--task classify needs --data FILE (label TAB text per line)" -- "$loom" train --task classify
expect 2 "--pool is for --task temporal-order and classify" -- "$loom" train --task tag --data "$dir/tags.tsv" --pool mean
expect 2 "--dropout is not used by --task classify" -- "$loom" train --task classify --data "$dir/labels.tsv" --dropout 0.1
expect 2 "no line of tokens TAB as many tags" -- "$loom" train --task tag --data "$dir/labels.tsv" --steps 1
expect 2 "" -- "$loom" dot --load "$dir/tag_whole.ckpt" -o "$dir/tag.dot"
check "a tag model's checkpoint is not looked inside: said why" grep -q "its sentences are in a file" "$dir/err"

# the vanishing-gradient lesson: trained task checkpoints, their gradient norms as data, plotted
for c in rnn_tanh lstm; do
  expect 0 "trained 30 steps" -- "$loom" train --task adding --cell $c --seq-len 12 --hidden 8 --batch 8 --steps 30 \
    --eval-every 30 --save "$dir/add_$c.ckpt"
  expect 0 "" -- "$loom" dot --load "$dir/add_$c.ckpt" --norms-csv "$dir/add_$c.csv"
  check "the $c norms file has its header" grep -qx 't,layer,direction,state,norm,norm64' "$dir/add_$c.csv"
done
check "one row per step (tanh RNN: h)" [ "$(wc -l <"$dir/add_rnn_tanh.csv")" = 13 ]
expect 0 "" -- "$loom" dot --load "$dir/add_lstm.ckpt" --backward -o "$dir/add.html"
check "a trained model's page has each node's values and gradients" grep -q 'loom_stats=' "$dir/add.html"
expect 0 "ratio" -- "$loom" inspect --load "$dir/add_lstm.ckpt" --jacobian-csv "$dir/jac.csv" --gates-csv "$dir/gates.csv" \
  --spectrum-csv "$dir/spec.csv" --norms-csv "$dir/in.csv"
check "inspect prints the spectral radii, one per gate block" grep -q "spectral radius .* (one per gate block)" "$dir/out"
check "inspect prints the gates" grep -q "gates, mean .*: i .* f .* o " "$dir/out"
check "a Jacobian row per step from t = 2" [ "$(wc -l <"$dir/jac.csv")" = 12 ] && grep -q '^2,0,forward,' "$dir/jac.csv"
check "three gates per step" [ "$(wc -l <"$dir/gates.csv")" = 37 ] && grep -q '^12,0,forward,f,0\.' "$dir/gates.csv"
check "8 eigenvalues in each of 4 blocks" [ "$(wc -l <"$dir/spec.csv")" = 33 ] && grep -q '^0,forward,rnn.weight_hh_l0,3,8,' "$dir/spec.csv"
check "inspect's norms are loom dot's" cmp -s "$dir/in.csv" "$dir/add_lstm.csv"
expect 0 "ratio" -- "$loom" inspect --load "$dir/ck.safetensors" --seq-len 6 --loss last --batch-from training
expect 2 "--load CKPT is required" -- "$loom" inspect
expect 2 "would replace its input" -- "$loom" inspect --load "$dir/add_lstm.ckpt" --gates-csv "$dir/add_lstm.ckpt"
# ... and as it trains: every 10 steps and before the first, through a resume
expect 0 "" -- "$loom" train --task adding --cell lstm --seq-len 12 --hidden 8 --batch 8 --steps 20 --norms-every 10 \
  --norms-csv "$dir/tn.csv" --save "$dir/tn.ckpt"
expect 0 "" -- "$loom" train --resume "$dir/tn.ckpt" --steps 30 --norms-every 10 --norms-csv "$dir/tn.csv"
check "steps 0, 10, 20, 30: 4 × 24 rows" [ "$(wc -l <"$dir/tn.csv")" = 97 ]
check "the step column first" grep -q '^30,12,0,forward,c,' "$dir/tn.csv"
expect 2 "go together" -- "$loom" train --task adding --norms-every 10
expect 0 "" -- "$loom" train $small --steps 4 --norms-every 2 --norms-csv "$dir/lmn.csv"
check "a language model's norms as it trains (3 × 5 steps × h, c)" [ "$(wc -l <"$dir/lmn.csv")" = 31 ]
check "one row per step and state (LSTM: h, c)" [ "$(wc -l <"$dir/add_lstm.csv")" = 25 ]
check "t counts from 1, the LSTM's c named" grep -q '^1,0,forward,c,' "$dir/add_lstm.csv"
expect 0 "" -- "$loom" dot --load "$dir/add_lstm.ckpt" --grad-norms --view cell -o "$dir/add.dot"
check "the task's picture says what it shows" grep -q 'adding task, lstm.*on a held-out batch' "$dir/add.dot"
expect 2 "the adding task has one loss term" -- "$loom" dot --load "$dir/add_lstm.ckpt" --loss all --norms-csv "$dir/x.csv"
expect 2 "no text, no window length" -- "$loom" dot --load "$dir/add_lstm.ckpt" --seq-len 5 --norms-csv "$dir/x.csv"
expect 2 "would replace its input" -- "$loom" dot --load "$dir/add_lstm.ckpt" --norms-csv "$dir/add_lstm.ckpt"
expect 0 "" -- "$loom" dot --load "$dir/ck.safetensors" --loss last --batch-from training --seq-len 6 --norms-csv "$dir/lm.csv"
check "a language model's norms, its loss on the last step" [ "$(wc -l <"$dir/lm.csv")" = 13 ]
if "$loom" plot --help >/dev/null 2>&1 && [ -n "$(ldd "$loom" 2>/dev/null | grep cairo)$(ldd "$(dirname "$loom")/libloom.so" 2>/dev/null | grep cairo)" ]; then
  expect 0 "" -- "$loom" plot "$dir/add_rnn_tanh.csv" "$dir/add_lstm.csv" --labels "tanh RNN,LSTM" --x t --log \
    --ylabel "‖∂L/∂h_t‖" -o "$dir/norms.svg"
  check "the norms plot is an SVG" grep -q '<svg' "$dir/norms.svg"
fi

# sequence to sequence: a tiny reversal model saved, translating, evaluated
s2s="--hidden 16 --embed 8 --batch 8 --steps 30 --eval-every 15 --eval-pairs 20 --threads 1"
expect 2 "needs --data" -- "$loom" train --task seq2seq
expect 2 "--attention must be one of" -- "$loom" train --task reverse --attention luong
expect 2 "--teacher-forcing needs a number in [0, 1]" -- "$loom" train --task reverse --teacher-forcing 2
expect 2 "--bidirectional is for the encoder" -- "$loom" train --bidirectional --steps 1
expect 0 "exact match" -- "$loom" train --task reverse --seq-len 6 --pairs 200 --bidirectional --teacher-forcing 0.5 $s2s \
  --metrics "$dir/s2s.csv" --save "$dir/rev.ckpt"
cp "$dir/out" "$dir/rev.out"
expect 2 "an encoder–decoder's checkpoint" -- "$loom" inspect --load "$dir/rev.ckpt"
check "the seq2seq metrics have BLEU" grep -q "valid_bleu" "$dir/s2s.csv"
# resuming: 12 + 18 steps are the 30 steps of one run, byte for byte (dropout, scheduled sampling)
more="--seq-len 6 --pairs 200 --dropout 0.1 --layers 2 --teacher-forcing 0.7"
expect 0 "" -- "$loom" train --task reverse $more $s2s --steps 12 --save "$dir/half.ckpt"
expect 0 "" -- "$loom" train --resume "$dir/half.ckpt" --steps 30 --save "$dir/resumed.ckpt" --threads 1
expect 0 "" -- "$loom" train --task reverse $more $s2s --steps 30 --save "$dir/whole.ckpt"
check "a resumed run ends where the whole run ends" cmp -s "$dir/resumed.ckpt" "$dir/whole.ckpt"
expect 2 "choose one" -- "$loom" train --resume "$dir/half.ckpt" --init "$dir/half.ckpt"
expect 0 "" -- "$loom" train --task reverse --seq-len 6 --pairs 200 --bidirectional $s2s --steps 1 --lr 0 --init "$dir/rev.ckpt"
check "--init starts from the checkpoint's weights" [ "$(grep -o 'held-out loss [0-9.]*' "$dir/out")" = "$(grep -o 'held-out loss [0-9.]*' "$dir/rev.out")" ]
expect 0 "" -- "$loom" translate --load "$dir/rev.ckpt" --beam 3 abcdef ab
check "one translation per sentence" [ "$(wc -l < "$dir/out")" -eq 2 ]
expect 0 "" -- "$loom" translate --load "$dir/rev.ckpt" --attention-map "$dir/att.svg" abc
check "the attention map is an SVG" grep -q "<svg" "$dir/att.svg"
expect 0 "" -- "$loom" translate --load "$dir/rev.ckpt" --beam 3 --beam-tree "$dir/tree.dot" abc
check "the beam search's tree: every continuation weighed, the winner's path bold" grep -q "penwidth=2.5" "$dir/tree.dot"
expect 2 "cannot tell the format" -- "$loom" translate --load "$dir/rev.ckpt" --beam-tree "$dir/tree.txt" abc
expect 2 "would replace its input" -- "$loom" translate --load "$dir/rev.ckpt" --beam-tree "$dir/rev.ckpt" abc
# the page of a trained encoder–decoder: one sentence, its translation, the attention weights with their tokens
expect 0 "" -- "$loom" dot --load "$dir/rev.ckpt" --source abcd --backward -o "$dir/rev.html"
check "the page names the sentence and its translation" grep -q 'trained encoder–decoder, .*“abcd” → “' "$dir/rev.html"
check "the page has the attention weights and the tokens" grep -q '"colLabels": \["a", "b", "c", "d", "<eos>"\]' "$dir/rev.html"
check "and every value" grep -q 'loom_stats=' "$dir/rev.html"
expect 0 "" -- "$loom" dot --load "$dir/rev.ckpt" --view cell -o "$dir/rev.dot"
check "its first held-out pair by default" grep -q 'trained encoder–decoder' "$dir/rev.dot"
expect 2 "drawn on one sentence" -- "$loom" dot --load "$dir/rev.ckpt" --grad-norms -o "$dir/x.html"
expect 2 "--source is the sentence an encoder–decoder" -- "$loom" dot --load "$dir/ck.safetensors" --source abc -o "$dir/x.html"
expect 2 "--source is for --load" -- "$loom" dot --source abc -o "$dir/x.html"
printf 'abc\tcba\nab\tba\nno tab here\n' > "$dir/pairs.tsv"
expect 0 "line 3" -- "$loom" eval --load "$dir/rev.ckpt" --data "$dir/pairs.tsv" --beam 2
check "eval prints BLEU, exact match and perplexity" grep -q "2 pairs (beam search): BLEU .*exact match .*perplexity" "$dir/out"
expect 0 "" -- "$loom" eval --load "$dir/rev.ckpt"
check "a synthetic task's checkpoint is evaluated on its own held-out pairs" grep -q "^20 held-out pairs: BLEU" "$dir/out"
expect 2 "a language model's checkpoint, not an encoder–decoder's" -- "$loom" translate --load "$dir/ck.safetensors" hello
expect 2 "--load CKPT is required" -- "$loom" translate hello
expect 2 "has no attention" -- sh -c "'$loom' train --task reverse --seq-len 4 --pairs 50 --attention none $s2s --save '$dir/plain.ckpt' >/dev/null 2>&1 && '$loom' translate --load '$dir/plain.ckpt' --attention-map '$dir/x.svg' abc"
check "no map for a model without attention" [ ! -e "$dir/x.svg" ]
# a decoder deeper than its encoder: trains, resumes bit for bit, translates
resumes deep --task reverse --seq-len 4 --pairs 50 $s2s --dec-layers 2
expect 0 "" -- "$loom" translate --load "$dir/deep_whole.ckpt" --beam 2 abc
expect 2 "--dec-layers is not used by a language model" -- "$loom" train --dec-layers 2
# exhaustive search: the toy demo (greedy < beam 2 < exhaustive there), and on a trained model when it is small enough
expect 0 "exhaustive search      C B <eos>      p = 0.1862" -- "$loom" search-demo
check "greedy finds the worse sequence" grep -q "greedy search          A B C <eos>    p = 0.0675" "$dir/out"
expect 0 "" -- "$loom" translate --load "$dir/rev.ckpt" --exhaustive --max-len 2 ab
expect 2 "at most 1024" -- "$loom" translate --load "$dir/rev.ckpt" --exhaustive ab
expect 2 "not with --beam" -- "$loom" translate --load "$dir/rev.ckpt" --exhaustive --beam 3 ab
# the coverage penalty weighs attention: with it, beam search translates; a model without attention refuses it
expect 0 "" -- "$loom" translate --load "$dir/rev.ckpt" --beam 3 --coverage 0.2 abcdef ab
expect 2 "weighs attention, and this model has none" -- "$loom" translate --load "$dir/plain.ckpt" --beam 2 --coverage 0.2 abc
expect 2 "--coverage: ranks hypotheses" -- "$loom" translate --load "$dir/rev.ckpt" --temperature 1 --coverage 0.2 abc
# plain dot-product attention (qᵀk, no projection): trains and translates; needs a unidirectional encoder
expect 0 "" -- "$loom" train --task reverse --seq-len 4 --pairs 50 --attention plain $s2s --save "$dir/plain_dot.ckpt"
expect 0 "" -- "$loom" translate --load "$dir/plain_dot.ckpt" --attention-map "$dir/pd.svg" abc
check "its attention map" grep -q "<svg" "$dir/pd.svg"
expect 2 "a bidirectional encoder's are" -- "$loom" train --task reverse --seq-len 4 --pairs 50 --attention plain --bidirectional $s2s
# word pairs, as the Tatoeba files: d2l's preprocessing, <unk> for unseen words, bad lines named
printf 'Go.\tVa !\tCC-BY 2.0\nHi.\tSalut !\nRun!\tCours !\nno tab\nI lost.\tJ\xe2\x80\x99ai perdu.\nWho?\tQui ?\nWow!\tÇa alors !\nHelp!\tÀ l\x27aide !\nJump.\tSaute.\nStop!\tÇa suffit !\nWait!\tAttends !\n' > "$dir/fra.tsv"
expect 0 "line 4" -- "$loom" train --task seq2seq --data "$dir/fra.tsv" --min-freq 1 --seq-len 5 $s2s --save "$dir/fra.ckpt"
check "the run names its pairs" grep -q "10 pairs\|9 training and 1 held-out pairs" "$dir/out"
expect 0 "" -- "$loom" train --task seq2seq --data "$dir/fra.tsv" --min-freq 1 --seq-len 5 --hidden 16 --embed 8 --eval-every 15 --eval-pairs 20 --threads 1 --epochs 3 --batch 4
check "three epochs of 9 pairs in batches of 4 are 9 steps" grep -q "^trained 9 steps" "$dir/out"
printf 'Go.\tVa !\nHello!\tBonjour !\nbad\n' > "$dir/fra_valid.tsv"
expect 0 "fra_valid.tsv: 1 line" -- "$loom" train --task seq2seq --data "$dir/fra.tsv" --valid "$dir/fra_valid.tsv" --min-freq 1 --seq-len 5 $s2s
check "--valid: all 10 pairs train, the file's 2 are held out" grep -q "10 training and 2 held-out pairs" "$dir/out"
expect 2 "--valid is for --task seq2seq" -- "$loom" train --task dates --valid "$dir/fra_valid.tsv"
expect 0 "" -- "$loom" translate --load "$dir/fra.ckpt" --beam 2 "Go." "Never seen words."
check "two translations" [ "$(wc -l < "$dir/out")" -eq 2 ]
expect 2 "invalid UTF-8" -- "$loom" translate --load "$dir/fra.ckpt" "$(printf 'bad \377')"
expect 0 "" -- "$loom" dot --seq2seq dot --cell gru --bidirectional --seq-len 3 --view cell --backward -o "$dir/s2s.dot"
check "the encoder–decoder's picture has its attention weights (named by their step: t = 4, after 3 source steps)" grep -q 'attention\[4\]' "$dir/s2s.dot"
expect 2 "not with --load" -- "$loom" dot --seq2seq additive --grad-norms -o "$dir/y.dot"
expect 2 "--seq2seq must be" -- "$loom" dot --seq2seq luong -o "$dir/y.dot"

# truncated BPTT: fixed and random train; a random run resumes byte for byte
lm="--hidden 16 --seq-len 8 --batch 4 --generate 0 --eval-every 10"
expect 0 "" -- "$loom" train $lm --steps 6 --truncate 3
expect 0 "" -- "$loom" train $lm --steps 6 --truncate 3 --random-truncation --save "$dir/rt_half.ckpt" --threads 1
expect 0 "" -- "$loom" train --resume "$dir/rt_half.ckpt" --steps 12 --save "$dir/rt_resumed.ckpt" --threads 1
expect 0 "" -- "$loom" train $lm --steps 12 --truncate 3 --random-truncation --save "$dir/rt_whole.ckpt" --threads 1
check "a resumed randomly truncated run ends where the whole run ends" cmp -s "$dir/rt_resumed.ckpt" "$dir/rt_whole.ckpt"
expect 0 "" -- "$loom" eval --load "$dir/rt_whole.ckpt"
expect 2 "needs --truncate K" -- "$loom" train $lm --random-truncation
expect 2 "cuts nothing inside a window" -- "$loom" train $lm --truncate 8
expect 2 "--truncate is not used by --task adding" -- "$loom" train --task adding --truncate 3
expect 2 "--truncate with --resume" -- "$loom" train --resume "$dir/rt_half.ckpt" --truncate 2
expect 2 "each direction draws its own cuts" -- "$loom" dot --bidirectional --truncate 3 --random-truncation -o "$dir/rt.dot"
expect 0 "" -- "$loom" dot --cell gru --seq-len 9 --truncate 3 --random-truncation -o "$dir/rt.dot"
check "the random truncation's picture weights what crosses uncut" grep -q 'scale_grad' "$dir/rt.dot"

# checkpoints of format 0 (before loom.format_version; made by the loom before it) resume and evaluate
f0="$(dirname "$0")/data/format0"
corpus="$(dirname "$0")/../data/corpus/timemachine.txt"
expect 0 "" -- "$loom" train --resume "$f0/lm.ckpt" --data "$corpus" --steps 5 --generate 0 --save "$dir/f0_lm.ckpt"
expect 0 "perplexity" -- "$loom" eval --load "$f0/lm.ckpt" --data "$corpus"
expect 0 "" -- "$loom" generate --load "$f0/lm.ckpt" --length 5
expect 0 "" -- "$loom" train --resume "$f0/copy.ckpt" --steps 5 --save "$dir/f0_copy.ckpt"
expect 0 "accuracy" -- "$loom" eval --load "$f0/copy.ckpt"
expect 0 "" -- "$loom" train --resume "$f0/reverse.ckpt" --steps 5 --save "$dir/f0_rev.ckpt"
expect 0 "BLEU" -- "$loom" eval --load "$f0/reverse.ckpt"
check "a resumed format-0 run writes format 1" grep -aq '"loom.format_version":"1"' "$dir/f0_rev.ckpt"

# word vectors: word2vec trains, resumes bit for bit; loom embed finds neighbours and analogies and exports;
# loom plot maps them; a language model's embedding is read the same way
w2v="--data $corpus --letters-only --dim 16 --batch 64 --min-count 20 --lr 2 --min-lr 2"
expect 0 "nearest words:" -- "$loom" word2vec $w2v --steps 30 --save "$dir/w2v_whole.ckpt"
expect 0 "" -- "$loom" word2vec $w2v --steps 15 --save "$dir/w2v_half.ckpt"
expect 0 "" -- "$loom" word2vec --resume "$dir/w2v_half.ckpt" --steps 30 --save "$dir/w2v_resumed.ckpt"
check "word2vec resumes bit for bit (the vectors; the files name their own planned steps)" sh -c "'$loom' embed --load '$dir/w2v_resumed.ckpt' --export-safetensors '$dir/w2v_r.st' && '$loom' embed --load '$dir/w2v_whole.ckpt' --export-safetensors '$dir/w2v_w.st' && cmp -s '$dir/w2v_r.st' '$dir/w2v_w.st'"
expect 0 "" -- "$loom" word2vec $w2v --cbow --steps 5 --metrics "$dir/w2v.csv"
check "its metrics" grep -qx 'step,loss,lr' "$dir/w2v.csv"
expect 2 "--dim: with --resume" -- "$loom" word2vec --resume "$dir/w2v_half.ckpt" --dim 8 --steps 40
expect 2 "--data TEXT is required" -- "$loom" word2vec
expect 0 "time:" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --neighbours time,the -k 3
expect 0 "is to" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --analogy the,time,a -k 2
expect 2 "'zzzz' is not in the vocabulary" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --neighbours zzzz
expect 2 "takes three words" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --analogy the,time
expect 0 "" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --export-word2vec "$dir/w2v.txt" --export-safetensors "$dir/w2v.safetensors"
check "the word2vec format: V E, then a word and 16 numbers a line" sh -c "head -1 '$dir/w2v.txt' | grep -qx '[0-9]* 16' && [ \$(sed -n 2p '$dir/w2v.txt' | wc -w) = 17 ]"
expect 0 "time:" -- "$loom" embed --load "$dir/w2v.safetensors" --neighbours time -k 2
expect 2 "would replace its input" -- "$loom" embed --load "$dir/w2v_whole.ckpt" --export-word2vec "$dir/w2v_whole.ckpt"
expect 2 "nothing to do" -- "$loom" embed --load "$dir/w2v_whole.ckpt"
expect 0 "words mapped" -- "$loom" plot --tsne "$dir/w2v_whole.ckpt" --words 40 -o "$dir/tsne.svg"
check "the map is drawn" grep -q "<svg" "$dir/tsne.svg"
expect 2 "no CSV files with it" -- "$loom" plot --tsne "$dir/w2v_whole.ckpt" "$dir/w2v.csv" -o "$dir/x.svg"
expect 2 "are for --tsne" -- "$loom" plot "$dir/w2v.csv" --words 10 -o "$dir/x.svg"
expect 2 "a word2vec checkpoint: loom embed" -- "$loom" eval --load "$dir/w2v_whole.ckpt"
expect 2 "continue it with loom word2vec --resume" -- "$loom" train --resume "$dir/w2v_whole.ckpt"
expect 0 "" -- "$loom" train --data "$corpus" --tokens word --embed 8 --hidden 8 --steps 2 --generate 0 --save "$dir/wlm.ckpt"
expect 0 "the:" -- "$loom" embed --load "$dir/wlm.ckpt" --neighbours the -k 2
expect 2 "no word vectors in it" -- "$loom" embed --load "$dir/add_lstm.ckpt" --neighbours the

# a cell from equations, everywhere --cell goes; its checkpoint carries the
# equations and loads after the file is gone
cells="$(dirname "$0")/../cells"
cp "$cells/indrnn.cell" "$dir/ind.cell"
expect 0 "gradcheck passed" -- "$loom" gradcheck --cell "$dir/ind.cell" --layers 2 --bidirectional --max-checks 20
expect 0 "" -- "$loom" train --cell "$dir/ind.cell" --data "$corpus" --steps 5 --generate 0 --save "$dir/ind.ckpt"
expect 0 "" -- "$loom" train --task copy --cell "$dir/ind.cell" --steps 3 --save "$dir/ind_copy.ckpt"
expect 0 "" -- "$loom" train --task reverse --cell "$dir/ind.cell" --steps 3 --save "$dir/ind_rev.ckpt"
rm "$dir/ind.cell"
check "the checkpoint holds the equations" grep -aq 'cell_source' "$dir/ind.ckpt"
expect 0 "" -- "$loom" generate --load "$dir/ind.ckpt" --length 5
expect 0 "perplexity" -- "$loom" eval --load "$dir/ind.ckpt" --data "$corpus"
expect 0 "" -- "$loom" dot --load "$dir/ind.ckpt" --grad-norms -o "$dir/ind.dot"
check "the op view names nodes after the equations" grep -q 'h\[3\]' "$dir/ind.dot"
expect 0 "accuracy" -- "$loom" eval --load "$dir/ind_copy.ckpt"
expect 0 "" -- "$loom" train --resume "$dir/ind_rev.ckpt" --steps 5 --save "$dir/ind_rev.ckpt"
printf 'cell bad(x; h)\n  h = tanh(W @ x + U @ h\n' >"$dir/bad.cell"
expect 2 "bad.cell:3:1: expected ')' after the arguments" -- "$loom" gradcheck --cell "$dir/bad.cell"
expect 2 "cannot open" -- "$loom" train --cell "$dir/none.cell" --steps 1
expect 2 "already known" -- "$loom" gradcheck --cell "$cells/../tests/data/lstm_named.cell"
expect 0 "ln_lstm" -- "$loom" bench --cell "$cells/ln_lstm.cell" --config charlm-small --iters 1
# loom cell: the parameters the equations make (a misspelt variable would be one more)
expect 0 "9 parameters at input 3, hidden 8" -- "$loom" cell --cell "$cells/ln_lstm.cell" --input 3 --hidden 8
check "shapes, initialisers and the equations" sh -c "grep -q 'ln_h_weight *(8,) *ones' '$dir/out' && grep -q 'h = o \* tanh(layer_norm(c))' '$dir/out'"
printf 'cell typo(x; h)\n  hc = tanh(W @ x + U @ h)\n  h = tanh(hc + hx)\n' >"$dir/typo.cell"
expect 0 "hx " -- "$loom" cell --cell "$dir/typo.cell"
expect 0 "written in C" -- "$loom" cell --cell gru
# three carried states, through gradcheck, training and resuming
expect 0 "gradcheck passed" -- "$loom" gradcheck --cell "$(dirname "$0")/data/three_states.cell" --layers 2 --bidirectional --max-checks 10
expect 0 "" -- "$loom" train --cell "$(dirname "$0")/data/three_states.cell" --data "$corpus" --steps 3 --generate 0 --save "$dir/three.ckpt"
expect 0 "" -- "$loom" train --resume "$dir/three.ckpt" --data "$corpus" --steps 5 --generate 0 --save "$dir/three.ckpt"
# the cell view names the carried states as the equations do
printf 'cell ym(x; y, m)\n  f = sigmoid(W_f @ x + U_f @ y + b_f)\n  m = f * m + (1 - f) * tanh(W_m @ x + U_m @ y + b_m)\n  y = tanh(m)\n' >"$dir/ym.cell"
expect 0 "" -- "$loom" dot --cell "$dir/ym.cell" --view cell --seq-len 3 --backward -o "$dir/ym.dot"
check "states y and m, gradients ∂y and ∂m, and no h or c" sh -c "grep -q 'label=\"m\"' '$dir/ym.dot' && grep -q 'label=\"∂y\"' '$dir/ym.dot' && ! grep -q 'label=\"c\"' '$dir/ym.dot' && grep -q 'ym t=2' '$dir/ym.dot'"

echo "cli: $((n - fails)) of $n checks passed"
[ "$fails" -eq 0 ]
