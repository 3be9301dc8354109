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

echo "cli_faults: $((n - fails)) of $n checks passed"
[ "$fails" -eq 0 ]
