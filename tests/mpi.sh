#!/bin/sh
# Data-parallel training on this machine (loopback), 2 and 3 ranks: the
# library's tests (test_mpi), then `mpirun loom train` against one process
# with the global batch, resumed, and failing on one rank.
#   sh tests/mpi.sh TEST_MPI LOOM CORPUS
set -u
test_mpi=$1 loom=$2 corpus=$3
. "$(dirname "$0")/cli_lib.sh"
# mpirun refuses root without these (CI runs as root in a container); the
# shared-memory transport's single-copy mode needs ptrace rights containers
# often lack; more ranks than cores is allowed; one OpenMP thread a rank unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mpi="timeout 300 mpirun"

for np in 2 3; do
    expect 0 "" -- $mpi -np $np "$test_mpi" "$dir"
done

cp "$corpus" "$dir/t.txt"
T="--data $dir/t.txt --hidden 32 --seq-len 20 --generate 0"
# 2 ranks of batch 16 = 1 process of batch 32: the same losses (1e-5) and held-out perplexity
expect 0 "B=16 per process × 2 processes" -- $mpi -np 2 "$loom" train $T --batch 16 --steps 30 --eval-every 15 --metrics "$dir/m2.csv" --save "$dir/a.ckpt"
expect 0 "" -- "$loom" train $T --batch 32 --steps 30 --eval-every 15 --metrics "$dir/m1.csv"
same_losses() { # the step and loss columns within 1e-5 relative; the held-out perplexity too
    awk -F, 'NR == FNR { l[FNR] = $2; v[FNR] = $7; next }
             FNR > 1 { d = $2 - l[FNR]; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1;
                       if (($7 == "") != (v[FNR] == "")) bad = 1;
                       if ($7 != "") { e = $7 - v[FNR]; if (e < 0) e = -e; if (e > 1e-4 * $7) bad = 1 } }
             END { exit bad || FNR != 31 }' "$1" "$2"
}
check "2 ranks' losses are 1 process's with the global batch" same_losses "$dir/m2.csv" "$dir/m1.csv"
# a checkpoint of the ranks resumes to where 40 straight steps end, to the bit
expect 0 "" -- $mpi -np 2 "$loom" train --resume "$dir/a.ckpt" --steps 40 --save "$dir/a.ckpt"
expect 0 "" -- $mpi -np 2 "$loom" train $T --batch 16 --steps 40 --save "$dir/b.ckpt"
check "resumed = straight" cmp -s "$dir/a.ckpt" "$dir/b.ckpt"
# another number of processes resumes it, with a warning
expect 0 "written by 2 processes, this run has 3" -- $mpi -np 3 "$loom" train --resume "$dir/a.ckpt" --steps 42
# ranks of different models refuse to train together
expect_fail_named() { # a non-zero status (the ranks stop, none hangs) and the message
    n=$((n + 1))
    "$@" >"$dir/out" 2>"$dir/err"
    if [ $? = 0 ] || ! grep -qF -- "$part" "$dir/err"; then
        echo "FAIL: $* -> expected a failure naming '$part':"; sed 's/^/    /' "$dir/err"; fails=$((fails + 1))
    fi
}
part="rank 1's model" expect_fail_named $mpi -np 1 "$loom" train $T --batch 4 --steps 3 : -np 1 "$loom" train $T --hidden 33 --batch 4 --steps 3
# a failure on one rank alone (its text cannot be read) ends every rank with its message
part="rank 1" expect_fail_named $mpi -np 1 "$loom" train $T --batch 4 --steps 3 : -np 1 "$loom" train $T --data "$dir/none.txt" --batch 4 --steps 3
# a synthetic task (its batches drawn for the global batch, each rank its sequences): the same losses as one process
expect 0 "B=8 per process × 2 processes" -- $mpi -np 2 "$loom" train --task temporal-order --hidden 32 --batch 8 --steps 30 --eval-every 15 --metrics "$dir/t2.csv"
expect 0 "" -- "$loom" train --task temporal-order --hidden 32 --batch 16 --steps 30 --eval-every 15 --metrics "$dir/t1.csv"
check "2 ranks' task losses are 1 process's with the global batch" awk -F, 'NR == FNR { l[FNR] = $2; next }
    FNR > 1 { d = $2 - l[FNR]; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1 } END { exit bad || FNR != 31 }' "$dir/t2.csv" "$dir/t1.csv"
# an encoder–decoder on pairs of different lengths: each rank its pairs of the global batch, the ranks
# weighted by their target tokens (the loss is a mean over tokens): the same losses as one process
awk 'BEGIN { srand(1); split("go run see eat the a big dog cat red", w, " ");
             for (i = 0; i < 600; i++) { n = 1 + int(rand() * 7); s = ""; r = "";
                 for (j = 0; j < n; j++) { x = w[1 + int(rand() * 10)]; s = s (j ? " " : "") x; r = x (j ? " " : "") r }
                 print s "\t" r } }' > "$dir/pairs.tsv"
S="--task seq2seq --data $dir/pairs.tsv --min-freq 1 --hidden 32 --embed 16 --steps 20 --eval-every 10 --eval-pairs 50 --seq-len 9 --teacher-forcing 0.8"
expect 0 "B=8 per process × 2 processes" -- $mpi -np 2 "$loom" train $S --batch 8 --metrics "$dir/s2.csv"
expect 0 "" -- "$loom" train $S --batch 16 --metrics "$dir/s1.csv"
# tagging, a mean over the lines' tokens (1 to 9 a line): the same, held-out scores too (they sum over lines)
awk 'BEGIN { srand(2); split("go run see eat the a big dog cat red", w, " "); split("V V V V D D J N N J", t, " ");
             for (i = 0; i < 600; i++) { n = 1 + int(rand() * 9); s = ""; g = "";
                 for (j = 0; j < n; j++) { k = 1 + int(rand() * 10); s = s (j ? " " : "") w[k]; g = g (j ? " " : "") t[k] }
                 print s "\t" g } }' > "$dir/tags.tsv"
G="--task tag --data $dir/tags.tsv --hidden 16 --steps 20 --eval-every 10 --seq-len 10"
expect 0 "" -- $mpi -np 2 "$loom" train $G --batch 8 --metrics "$dir/g2.csv"
expect 0 "" -- "$loom" train $G --batch 16 --metrics "$dir/g1.csv"
check "2 ranks' tagger losses and held-out scores are 1 process's" awk -F, 'NR == FNR { l[FNR] = $2; v[FNR] = $5; next }
    FNR > 1 { d = $2 - l[FNR]; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1;
              if ($5 != "") { e = $5 - v[FNR]; if (e < 0) e = -e; if (e > 1e-5 * $5) bad = 1 } } END { exit bad || FNR != 21 }' "$dir/g2.csv" "$dir/g1.csv"
check "2 ranks' encoder–decoder losses are 1 process's with the global batch" awk -F, 'NR == FNR { l[FNR] = $2; next }
    FNR > 1 { d = $2 - l[FNR]; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1 } END { exit bad || FNR != 21 }' "$dir/s2.csv" "$dir/s1.csv"
# loom bench --mpi: the step and its wait on the exchange, overlapped and not
expect 0 "waiting on the exchange" -- $mpi -np 2 "$loom" bench --mpi --config charlm-small --cell gru --seq-len 5 --iters 1
expect 2 "run it under mpirun" -- "$loom" bench --mpi --config charlm-small --iters 1
# SIGTERM to mpirun reaches every rank: all stop after one step, rank 0 saves, and says how to resume
# (mpirun itself: timeout, started in the background by sh, does not pass the signal on; meson's timeout guards it)
mpirun -np 2 "$loom" train $T --batch 4 --steps 100000 --save "$dir/s.ckpt" > "$dir/out" 2> "$dir/err" &
pid=$!
# once training runs (its first step printed: the handlers are set on every rank), at most 60 s
i=0
while [ $i -lt 600 ] && ! grep -q "step 1/" "$dir/err" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -TERM $pid
wait $pid
check "interrupted: a checkpoint and how to resume it" grep -q "resume with" "$dir/err"
check "interrupted: resumed with as many processes" grep -q "mpirun -np 2 loom train --resume" "$dir/err"
expect 0 "" -- $mpi -np 2 "$loom" train --resume "$dir/s.ckpt" --steps "$(($(sed -n 's/.*after step \([0-9]*\).*/\1/p' "$dir/err") + 2))"
check "no temporary files" no_temporaries

echo "$n checks, $fails failed"
[ "$fails" = 0 ]
