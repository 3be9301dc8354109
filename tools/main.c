/* The loom command: every subcommand is the library's (loom_main). */
#include "loom/main.h"

int main(int argc, char **argv) { return loom_main(argc, argv); }
