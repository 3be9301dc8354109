#!/bin/sh
# Builds and runs a program against loom the two ways a user does:
#   1. against a build tree, without installing (meson's uninstalled pkg-config file);
#   2. against an install into a user prefix (--prefix, PKG_CONFIG_PATH, LD_LIBRARY_PATH).
#   sh tests/link.sh BUILDDIR          (CI runs it)
set -eu
cd "$(dirname "$0")/.."
build=$1
work=$(mktemp -d /tmp/loom-link-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== against the build tree $build, not installed"
pc="$PWD/$build/meson-uninstalled"
cc -o "$work/tanh_rnn" examples/tanh_rnn.c $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs loom)
LD_LIBRARY_PATH="$PWD/$build" "$work/tanh_rnn" | tee "$work/out1"
grep -q "dL/dW" "$work/out1"

echo "== against an install into the prefix $work/prefix"
meson setup "$work/build" --prefix "$work/prefix" -Dtests=false >/dev/null
meson compile -C "$work/build" >/dev/null
meson install -C "$work/build" --quiet >/dev/null
libdir=$(dirname "$(dirname "$(find "$work/prefix" -name loom.pc)")")
cc -o "$work/tanh_rnn2" examples/tanh_rnn.c $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs loom)
LD_LIBRARY_PATH="$libdir" "$work/tanh_rnn2" | tee "$work/out2"
cmp "$work/out1" "$work/out2"
"$work/prefix/bin/loom" version

echo "== a cell in C (calling sqrtf: pkg-config's Libs carry -lm) through loom_main and through --cell-lib"
flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs loom)
cc -o "$work/my_loom" examples/my_loom.c examples/mgu_cell.c -Iexamples $flags
LD_LIBRARY_PATH="$libdir" "$work/my_loom" gradcheck --cell mgu --max-checks 5 | grep -q "^mgu language model"
cc -shared -fPIC -o "$work/mgu.so" examples/mgu_cell.c -Iexamples $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags loom)
"$work/prefix/bin/loom" --cell-lib "$work/mgu.so" gradcheck --cell mgu --max-checks 5 | grep -q "^mgu language model"
echo "== the installed cells folder"
"$work/prefix/bin/loom" gradcheck --cell indrnn --max-checks 5 | grep -q "^indrnn (equations)"
test -f "$work/prefix/share/loom/cells/ln_lstm.cell"
echo "link: built and ran both ways"
