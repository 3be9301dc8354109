#!/bin/sh
# Bad input, faults and interruption, as a probe of the command met them:
# each check failed before its fix.   sh tests/cli_faults.sh LOOM CORPUS
set -u
loom=$1
corpus=$2
. "$(dirname "$0")/cli_lib.sh"

cp "$corpus" "$dir/t.txt"
T="--steps 3 --hidden 8 --seq-len 5 --batch 2 --generate 0 --threads 1"
expect 0 "" -- "$loom" train --data "$dir/t.txt" $T --save "$dir/a.ckpt"

# invalid UTF-8 in a prefix is refused (it crashed, or generated from <unk>)
expect 2 "--prefix is not valid UTF-8" -- "$loom" generate --load "$dir/a.ckpt" --prefix "$(printf '\377')" --length 10
expect 2 "--prefix is not valid UTF-8" -- "$loom" generate --load "$dir/a.ckpt" --prefix "$(printf 'ab\303')" --length 3
expect 2 "--prefix is not valid UTF-8" -- "$loom" train --data "$dir/t.txt" $T --generate 5 --prefix "$(printf '\377')"
expect 2 "holds no token" -- "$loom" generate --load "$dir/a.ckpt" --prefix "" --length 3

# an output never replaces an input (nor another output); a run may continue into its own checkpoint
cp "$dir/a.ckpt" "$dir/keep.ckpt"
expect 2 "would replace its input --data" -- "$loom" train --data "$dir/t.txt" $T --save "$dir/t.txt"
expect 2 "would replace its input --data" -- "$loom" train --data "$dir/t.txt" $T --metrics "$dir/t.txt"
expect 2 "would replace its input --valid" -- "$loom" train --data "$dir/t.txt" --valid "$dir/a.ckpt" $T --save "$dir/a.ckpt"
expect 2 "would replace its input --resume" -- "$loom" train --resume "$dir/a.ckpt" --steps 4 --metrics "$dir/a.ckpt"
expect 2 "would replace the output --save" -- "$loom" train --data "$dir/t.txt" $T --save "$dir/x.ckpt" --metrics "$dir/x.ckpt"
ln -s t.txt "$dir/link.txt"
expect 2 "would replace its input --data" -- "$loom" train --data "$dir/link.txt" $T --save "$dir/t.txt"
printf 'a\tb\nc\td\n' > "$dir/p.tsv"
expect 2 "would replace its input --data" -- "$loom" train --task seq2seq --data "$dir/p.tsv" --save "$dir/p.tsv"
expect 2 "would replace its input --data" -- "$loom" train --task seq2seq --data "$dir/p.tsv" --metrics "$dir/p.tsv"
printf 'step,loss\n1,2\n2,1\n' > "$dir/m.csv"
expect 2 "would replace its input" -- "$loom" plot "$dir/m.csv" -o "$dir/m.csv"
expect 2 "would replace its input --load" -- "$loom" dot --load "$dir/a.ckpt" -o "$dir/a.ckpt"
expect 2 "would replace its input --load" -- "$loom" translate --load "$dir/a.ckpt" --attention-map "$dir/a.ckpt" abc
check "the inputs are intact" cmp -s "$dir/a.ckpt" "$dir/keep.ckpt"
check "the text is intact" cmp -s "$dir/t.txt" "$corpus"
check "the metrics file is intact" grep -q '^2,1$' "$dir/m.csv"
check "the pairs are intact" grep -q '^c' "$dir/p.tsv"
expect 0 "" -- "$loom" train --resume "$dir/a.ckpt" --steps 4 --save "$dir/a.ckpt"
check "a run continued into its own checkpoint replaced it" sh -c "! cmp -s '$dir/a.ckpt' '$dir/keep.ckpt'"

echo "cli_faults: $((n - fails)) of $n checks passed"
[ "$fails" -eq 0 ]
