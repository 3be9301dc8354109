/* `loom cell`: what a cell is made of — its states, and its parameters with
 * their shapes and initialisers at given sizes (a misspelt variable in an
 * equation shows here as a parameter of its own) — and its equations. */
#include "tool.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

const char cell_help[] =
    "show a cell's parameters (shapes and initialisers at the given sizes, per layer\n"
    "and direction) and, for a cell from equations, its equations\n";

typedef struct {
    const loom_cell_def *cell;
    long input, hidden;
    bool help;
} cell_args;

#define C(field) offsetof(cell_args, field)
const tool_opt cell_opts[] = {
    {"--cell", OPT_CELL, C(cell), .arg = "C", .help = "(default lstm)"},
    {"--input", OPT_INT, C(input), 1, 1 << 20, .arg = "I", .help = "input features (default 28)"},
    {"--hidden", OPT_INT, C(hidden), 1, 1 << 20, .arg = "H", .help = "hidden units (default 256)"},
};
#undef C
const int n_cell_opts = (int)(sizeof cell_opts / sizeof *cell_opts);

int cmd_cell(int argc, char **argv)
{
    cell_args a = {&loom_cell_lstm, 28, 256, false};
    int rc = tool_opts("loom cell", cell_opts, n_cell_opts, &a, NULL, argc, argv, &a.help);
    if (rc) return rc;
    if (a.help) {
        tool_help("cell [--cell C] [--input I] [--hidden H]", cell_help, cell_opts, n_cell_opts, false);
        return 0;
    }
    loom_param_spec specs[LOOM_CELL_MAX_PARAMS];
    const loom_cell_def *c = a.cell;
    int n = c->params(c, (int)a.input, (int)a.hidden, specs, LOOM_CELL_MAX_PARAMS);
    if (n < 0 || n > LOOM_CELL_MAX_PARAMS)
        return tool_fail("loom cell", c->name, "its parameter table has a count out of range");
    const char *src = loom_cell_source(c);
    printf("%s: a cell %s, %d carried state%s; %d parameter%s at input %ld, hidden %ld\n"
           "(each layer and direction has its own, named NAME_l{k}[_reverse]):\n",
           c->name, src ? "from equations" : "written in C", c->n_states, c->n_states == 1 ? "" : "s", n, n == 1 ? "" : "s",
           a.input, a.hidden);
    for (int i = 0; i < n; i++) {
        const loom_param_spec *s = &specs[i];
        char shape[64], init[96];
        printf("  %-16s %-14s %s\n", s->name, loom_shape_str(s->shape, shape, sizeof shape),
               loom_init_describe(s->init, s->scale, s->b, s->shape, init, sizeof init));
    }
    if (src) printf("\n%s%s", src, *src && src[strlen(src) - 1] != '\n' ? "\n" : "");
    return 0;
}
