#!/usr/bin/env bash
# Training killed at random moments (SIGKILL, and now and then SIGINT or
# SIGTERM): the checkpoint is absent, or a whole one that loads; resuming
# from it ends exactly where an uninterrupted run ends (the final
# checkpoints are byte for byte the same); no temporary file is left.
#   bash tests/kill_test.sh LOOM CORPUS [RUNS]
set -u
loom=$1
corpus=$2
runs=${3:-20}
dir=$(mktemp -d /tmp/loom-kill-XXXXXX)
trap 'rm -rf "$dir"' EXIT
head -c 60000 "$corpus" > "$dir/text.txt"
steps=300
args=(--data "$dir/text.txt" --hidden 16 --seq-len 8 --batch 4 --steps $steps --eval-every 25 --generate 0 --threads 1)
"$loom" train "${args[@]}" --save "$dir/whole.ckpt" > /dev/null 2>&1 || { echo "FAIL: the uninterrupted run"; exit 1; }
fails=0 absent=0 signals=0
for ((i = 1; i <= runs; i++)); do
    rm -f "$dir"/ck.ckpt*
    "$loom" train "${args[@]}" --save-every 1 --save "$dir/ck.ckpt" > /dev/null 2> "$dir/err" &
    pid=$!
    sig=KILL
    case $((i % 5)) in 1) sig=INT ;; 3) sig=TERM ;; esac
    # INT and TERM check the graceful stop, which exists once loom has set
    # its handlers, a few ms after exec (before that the signal's default
    # action ends it, as any program): they come after 0.1 s at the earliest
    ms=$((RANDOM % 700))
    if [ $sig != KILL ] && [ $ms -lt 100 ]; then ms=$((ms + 100)); fi
    sleep "0.$(printf "%03d" $ms)"
    kill -s $sig $pid 2> /dev/null
    wait $pid 2> /dev/null
    status=$?
    if [ $sig != KILL ] && [ $status -ne 0 ]; then
        want=$([ $sig = INT ] && echo 130 || echo 143)
        signals=$((signals + 1))
        if [ $status -ne "$want" ] || ! grep -q "resume with" "$dir/err"; then
            echo "FAIL: run $i: SIG$sig gave status $status"; sed 's/^/    /' "$dir/err"; fails=$((fails + 1))
        fi
        if ls "$dir" | grep -q '\.tmp'; then echo "FAIL: run $i: SIG$sig left a temporary file"; fails=$((fails + 1)); fi
    fi
    if [ -e "$dir/ck.ckpt" ]; then
        if ! "$loom" generate --load "$dir/ck.ckpt" --length 1 > /dev/null 2> "$dir/err"; then
            echo "FAIL: run $i (SIG$sig): the checkpoint does not load"; sed 's/^/    /' "$dir/err"; fails=$((fails + 1))
            continue
        fi
        "$loom" train --resume "$dir/ck.ckpt" --steps $steps --threads 1 --generate 0 --save "$dir/ck.ckpt" > /dev/null 2> "$dir/err"
    else
        absent=$((absent + 1))
        "$loom" train "${args[@]}" --save "$dir/ck.ckpt" > /dev/null 2> "$dir/err"
    fi
    if ! cmp -s "$dir/ck.ckpt" "$dir/whole.ckpt"; then
        echo "FAIL: run $i (SIG$sig): the resumed run does not end where the uninterrupted one ends"; fails=$((fails + 1))
    fi
    if ls "$dir" | grep -q '\.tmp'; then echo "FAIL: run $i (SIG$sig): temporary files remain"; ls "$dir"; fails=$((fails + 1)); fi
done
echo "kill test: $runs runs ($signals stopped by SIGINT/SIGTERM, $absent killed before the first checkpoint), $fails failures"
[ $fails -eq 0 ]
