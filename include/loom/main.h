/* loom/main.h — the loom command as a library call.
 *
 * A program that registers cells of its own gets every subcommand of the
 * loom command for them:
 *
 *     #include <loom/loom.h>
 *     #include <loom/main.h>
 *     extern const loom_cell_def my_cell;
 *     int main(int argc, char **argv)
 *     {
 *         loom_cell_register(&my_cell);
 *         return loom_main(argc, argv);
 *     }
 *
 * built with `cc prog.c my_cell.c $(pkg-config --cflags --libs loom)`. */
#ifndef LOOM_MAIN_H
#define LOOM_MAIN_H

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the loom command with these arguments (argv[0] the program's name,
 * argv[1] the subcommand); returns its exit status: 0, 1 (out of memory,
 * i/o), 2 (bad input), 130/143 (stopped by a signal). */
int loom_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
