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

# loom plot: a range too narrow for its floats (it hung, gigabytes deep), text that is not a
# number (drawn as 0), a long header (misread), directories; a failed write says why
printf 'step,loss\n1,1e16\n2,1.0000000000000002e16\n' > "$dir/n.csv"
expect 0 "" -- timeout 20 "$loom" plot "$dir/n.csv" -o "$dir/n.svg"
printf 'step,loss\n1,1e-310\n2,3e-310\n' > "$dir/d.csv"
expect 0 "" -- timeout 20 "$loom" plot "$dir/d.csv" -o "$dir/d.svg"
printf 'step,loss\n1,2\n2,abc\n' > "$dir/a.csv"
expect 2 "line 3: field 2 (loss) is not a number" -- "$loom" plot "$dir/a.csv" -o "$dir/a.svg"
printf 'step,loss\n1,nan\n2,\n3,2\n4,inf\n' > "$dir/b.csv"
expect 0 "" -- "$loom" plot "$dir/b.csv" -o "$dir/b.svg"
{ printf '%05000d,step,loss\n' 0; printf '0,1,3\n0,2,2\n'; printf '0,3,%05000d1\n' 0; } > "$dir/h.csv"
expect 2 "line 4: field 3 (loss) is not a number" -- "$loom" plot "$dir/h.csv" -o "$dir/h.svg"
expect 2 "is a directory" -- "$loom" plot "$dir" -o "$dir/x.svg"
expect 1 "File too large" -- sh -c "ulimit -f 2; exec '$loom' plot '$dir/b.csv' -o '$dir/big.png'"
check "no picture of a failed write" [ ! -e "$dir/big.png" ]

# texts that are not regular files, directories
expect 2 "not a regular file" -- "$loom" train --data /dev/zero $T
expect 2 "is a directory" -- "$loom" train --data "$dir" $T
expect 2 "is a directory" -- "$loom" eval --load "$dir/a.ckpt" --data "$dir"

# the metrics file: written atomically (a symlink is replaced, not followed; the old file kept
# until the first rows are in), write errors fail the run, a resumed run keeps the earlier rows
echo precious > "$dir/target.txt"
ln -s target.txt "$dir/m-link.csv"
expect 0 "" -- "$loom" train --data "$dir/t.txt" $T --metrics "$dir/m-link.csv"
check "the symlink's target is untouched" grep -qx precious "$dir/target.txt"
check "the metrics replaced the symlink" grep -q '^3,' "$dir/m-link.csv"
expect 1 "File too large" -- sh -c "ulimit -f 1; exec '$loom' train --data '$dir/t.txt' --steps 300 --hidden 8 --seq-len 5 --batch 2 --generate 0 --threads 1 --metrics '$dir/big.csv'"
check "no metrics file or temporary is left by a failed write" sh -c "[ ! -e '$dir/big.csv' ] && ! ls '$dir' | grep -q 'big.csv.tmp'"
expect 1 "--metrics: /nonexistent/m.csv: cannot create a temporary file" -- "$loom" train --data "$dir/t.txt" $T --metrics /nonexistent/m.csv
expect 1 "--save: /nonexistent/x.ckpt: cannot create" -- "$loom" train --data "$dir/t.txt" --steps 100000 --hidden 8 --seq-len 5 --batch 2 --save /nonexistent/x.ckpt
expect 1 "is a directory" -- "$loom" train --data "$dir/t.txt" $T --save "$dir"
expect 0 "" -- "$loom" train --data "$dir/t.txt" $T --steps 6 --save-every 3 --save "$dir/r.ckpt" --metrics "$dir/whole.csv"
expect 0 "" -- "$loom" train --data "$dir/t.txt" $T --steps 3 --save "$dir/r.ckpt" --metrics "$dir/part.csv"
printf '4,9,9,9,9,9,\n' >> "$dir/part.csv"  # a row of an interrupted run past the checkpoint
expect 0 "" -- "$loom" train --resume "$dir/r.ckpt" --steps 6 --metrics "$dir/part.csv" --threads 1
check "a resumed run keeps the rows up to its checkpoint and replaces the later ones" \
    sh -c "[ \"\$(cut -d, -f1-5 '$dir/part.csv')\" = \"\$(cut -d, -f1-5 '$dir/whole.csv')\" ]"
printf 'a,b\n1,2\n' > "$dir/other.csv"
expect 2 "its columns are not step,loss" -- "$loom" train --resume "$dir/r.ckpt" --steps 6 --metrics "$dir/other.csv"
check "no temporary files are left" no_temporaries

# flags a run would not use are refused, not ignored
for f in "--data $dir/t.txt" "--embed 4" "--dropout 0.1" "--schedule cosine" "--bidirectional"; do
    expect 2 "is not used by --task adding" -- "$loom" train --task adding --steps 1 $f
done
for f in "--attention dot" "--teacher-forcing 0.5" "--min-len 3" "--pairs 10" "--input 3"; do
    expect 2 "is not used by a language model" -- "$loom" train --data "$dir/t.txt" $T $f
done
expect 2 "--data is not used by --task dates" -- "$loom" train --task dates --data "$dir/t.txt"
expect 2 "--prefix is not used by --task reverse" -- "$loom" train --task reverse --prefix abc
expect 2 "--hidden with --resume" -- "$loom" train --resume "$dir/a.ckpt" --hidden 16 --steps 9
expect 2 "--lr with --resume" -- "$loom" train --resume "$dir/a.ckpt" --lr 0.1 --steps 9
# a language model resumed without --data reads the text it was trained on (it read the built-in corpus)
expect 0 "vocabulary 70" -- "$loom" train --resume "$dir/a.ckpt" --steps 6 --generate 0 --threads 1
cp "$dir/a.ckpt" "$dir/moved.ckpt"
mv "$dir/t.txt" "$dir/t-moved.txt"
expect 2 "which cannot be read here: give --data" -- "$loom" train --resume "$dir/moved.ckpt" --steps 9
mv "$dir/t-moved.txt" "$dir/t.txt"

# a UTF-8 sequence split across two lines of character pairs (it read uninitialised ids); NULs
S2S="--hidden 8 --embed 4 --batch 4 --steps 2 --eval-pairs 4 --threads 1"
expect 0 "" -- "$loom" train --task reverse --seq-len 4 --pairs 40 $S2S --save "$dir/rev.ckpt"
printf '24 nov 2026\303\t2026-11-24\n\251 11/24/26\t2026-11-24\n' > "$dir/split.tsv"
expect 2 "line 1: invalid UTF-8 at byte 12 of the line" -- "$loom" eval --load "$dir/rev.ckpt" --data "$dir/split.tsv"
printf 'ab\000c\tcba\n' > "$dir/nul.tsv"
expect 2 "line 1: a NUL byte at byte 3" -- "$loom" eval --load "$dir/rev.ckpt" --data "$dir/nul.tsv"
printf 'the time\000 machine\n' > "$dir/nul.txt"
expect 2 "line 1: a NUL byte at byte 9" -- "$loom" eval --load "$dir/a.ckpt" --data "$dir/nul.txt"
expect 2 "line 2 of the input holds a NUL byte" -- sh -c "printf 'abc\nab\000c\n' | '$loom' translate --load '$dir/rev.ckpt'"

# limits are checked before anything is made, and stated right
expect 2 "may be 1023 at most" -- "$loom" train --task reverse --seq-len 100000
expect 2 "may be 1023 at most" -- "$loom" train --task reverse --seq-len 1024
expect 2 "may be 1024 at most" -- "$loom" train --task dates --seq-len 2000
expect 2 "[1, 16777216]" -- "$loom" train --task dates --pairs 1073741824
expect 2 "too short for one batch" -- "$loom" train --data "$dir/t.txt" --seq-len 100000 --batch 4096 --steps 1
# out of memory is a failure (1), not bad input (2)
if [ -z "${ASAN_OPTIONS:-}" ]; then
    expect 1 "out of memory" -- sh -c "ulimit -v 600000; exec '$loom' train --data '$dir/t.txt' --hidden 4096 --batch 512 --seq-len 100 --steps 1 --generate 0"
fi

# what a command prints must reach standard output (a full disk is a failure, not exit 0)
if [ -w /dev/full ]; then
    expect 1 "cannot write to standard output" -- sh -c "exec '$loom' eval --load '$dir/a.ckpt' --data '$dir/t.txt' > /dev/full"
    expect 1 "cannot write to standard output" -- sh -c "exec '$loom' generate --load '$dir/a.ckpt' --length 5 > /dev/full"
    expect 1 "cannot write to standard output" -- sh -c "exec '$loom' translate --load '$dir/rev.ckpt' abc > /dev/full"
    expect 1 "cannot write to standard output" -- sh -c "exec '$loom' train --data '$dir/t.txt' $T > /dev/full"
fi

# messages say what is wrong, in the command's own name
expect 2 "loom generate: --top-p needs a number in [0, 1]" -- "$loom" generate --load "$dir/a.ckpt" --top-p 2
expect 2 "an encoder–decoder's checkpoint, not a language model's" -- "$loom" generate --load "$dir/rev.ckpt"
expect 0 "" -- "$loom" dot --load "$dir/rev.ckpt" -o "$dir/x.svg"
check "an encoder–decoder's checkpoint is drawn on its first held-out pair" grep -q "trained encoder–decoder" "$dir/x.svg"
expect 2 "--source is not valid UTF-8 text" -- "$loom" dot --load "$dir/rev.ckpt" --source "$(printf 'a\377b')" -o "$dir/y.svg"
check "no picture from a bad sentence" [ ! -e "$dir/y.svg" ]
expect 2 "--bidirectional is not used by --task adding" -- "$loom" train --task adding --bidirectional
head -c 200 "$dir/t.txt" > "$dir/small.txt"
expect 0 "warning: the held-out text (20 tokens) is shorter than one batch" -- "$loom" train --data "$dir/small.txt" --steps 2 --generate 0 --seq-len 10 --batch 2 --hidden 8
check "the summary says there is no held-out perplexity" grep -q "no held-out perplexity" "$dir/out"

# the synthetic tasks save and resume (they wrote nothing): 15 + 15 steps end where 30 end
A="--task adding --seq-len 20 --hidden 16 --batch 8 --eval-every 10 --threads 1"
expect 0 "" -- "$loom" train $A --steps 30 --save "$dir/add30.ckpt"
expect 0 "" -- "$loom" train $A --steps 15 --save "$dir/add.ckpt"
expect 0 "" -- "$loom" train --resume "$dir/add.ckpt" --steps 30 --save "$dir/add.ckpt" --threads 1
check "a resumed adding run ends where the whole run ends" cmp -s "$dir/add.ckpt" "$dir/add30.ckpt"
expect 0 "" -- "$loom" train --task copy --seq-len 5 --hidden 8 --batch 4 --steps 4 --save "$dir/copy.ckpt" --threads 1
expect 2 "--hidden with --resume" -- "$loom" train --resume "$dir/copy.ckpt" --steps 8 --hidden 4
expect 0 "copy task, T = 5, after 4 steps: held-out loss" -- "$loom" eval --load "$dir/copy.ckpt"
expect 0 "adding task, T = 20, after 30 steps: held-out MSE" -- "$loom" eval --load "$dir/add.ckpt"
expect 2 "its own held-out batch" -- "$loom" eval --load "$dir/add.ckpt" --data "$dir/t.txt"
expect 2 "a synthetic task's checkpoint" -- "$loom" generate --load "$dir/add.ckpt"

echo "cli_faults: $((n - fails)) of $n checks passed"
[ "$fails" -eq 0 ]
