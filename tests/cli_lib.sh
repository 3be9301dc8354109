# What the command-line test scripts share (sourced): a scratch directory,
# expect and check, and the tally.   . tests/cli_lib.sh  (with $loom set)
dir=$(mktemp -d /tmp/loom-cli-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fails=0
n=0

# expect STATUS "MESSAGE PART" -- command...: the status, and the part in stderr
expect() {
    want=$1 part=$2
    shift 3
    n=$((n + 1))
    "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $* -> status $got, expected $want"; sed 's/^/    /' "$dir/err"; fails=$((fails + 1))
    elif [ -n "$part" ] && ! grep -qF -- "$part" "$dir/err" "$dir/out"; then
        echo "FAIL: $* -> no '$part' in:"; sed 's/^/    /' "$dir/err"; fails=$((fails + 1))
    fi
}

# check "WHAT" test-expression...
check() {
    what=$1
    shift
    n=$((n + 1))
    if ! "$@"; then echo "FAIL: $what"; fails=$((fails + 1)); fi
}

no_temporaries() { ! ls "$dir" | grep -q '\.tmp'; }
