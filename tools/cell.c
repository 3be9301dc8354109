/* `loom cell`: what a cell is made of — its states, and its parameters with
 * their shapes and initialisers at given sizes (a misspelt variable in an
 * equation shows here as a parameter of its own) — and its equations. */
#include "tool.h"

#include <math.h>
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

/* "U(-0.0625, 0.0625)", "ones", ...: an initialiser as it draws. */
static const char *init_str(const loom_param_spec *s, int rows, int cols, char *buf, size_t n)
{
    double a = s->scale;
    switch (s->init) {
    case LOOM_INIT_ZEROS: return "zeros";
    case LOOM_INIT_ONES: return "ones";
    case LOOM_INIT_UNIFORM: snprintf(buf, n, "U(%.4g, %.4g)", -a, a); break;
    case LOOM_INIT_NORMAL: snprintf(buf, n, "N(0, %.4g²)", a); break;
    case LOOM_INIT_XAVIER_UNIFORM: {
        double b = cols ? a * sqrt(6.0 / (rows + cols)) : a;
        snprintf(buf, n, "xavier: U(%.4g, %.4g)", -b, b);
        break;
    }
    case LOOM_INIT_ORTHOGONAL: snprintf(buf, n, "orthogonal, gain %.4g", a); break;
    case LOOM_INIT_CONSTANT: snprintf(buf, n, "constant %.4g", a); break;
    case LOOM_INIT_UNIFORM_RANGE: snprintf(buf, n, "U(%.4g, %.4g)", a, (double)s->b); break;
    case LOOM_INIT_FORGET_GATE: snprintf(buf, n, "U(%.4g, %.4g), forget gate %.4g", -a, a, (double)s->b); break;
    default: return "?";
    }
    return buf;
}

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
        int rows = s->shape.rank ? s->shape.d[0] : 1, cols = s->shape.rank > 1 ? s->shape.d[1] : 0;
        printf("  %-16s %-14s %s\n", s->name, loom_shape_str(s->shape, shape, sizeof shape),
               init_str(s, rows, cols, init, sizeof init));
    }
    if (src) printf("\n%s%s", src, *src && src[strlen(src) - 1] != '\n' ? "\n" : "");
    return 0;
}
