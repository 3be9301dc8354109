/* Cells written as equations. The text (grammar in the README, "Cells from
 * equations"):
 *
 *   cell mgu(x; h)                      # the step input; the carried states
 *     f  = sigmoid(W_f @ x + U_f @ h + b_f)
 *     hc = tanh(W_h @ x + U_h @ (f * h) + b_h)
 *     h  = (1 - f) * h + f * hc
 *
 * is compiled once into a program (symbols, expression nodes, statements)
 * that the cell's two functions interpret: `params` walks it for the
 * parameters' shapes at a layer's sizes, `step` walks it again building
 * the step's nodes with the ordinary builders — so an equation cell is the
 * same graph, and runs the same plan, as the cell written in C.
 *
 * Names: the input and the states come from the header; H and I are the
 * hidden and input sizes; a name given a value (`f = ...`) is a variable,
 * used only after its first assignment; a state's name means its old value
 * until a statement gives it its new one; every other name is a parameter.
 * A parameter's shape comes from its declaration (`W: matrix(4*H, I)`) or
 * from its use: `P @ v` makes P a matrix of H rows and v's width in
 * columns, `v + b` makes b a vector of v's width. Values are per example,
 * (B, width); `M @ v` is v·Mᵀ, PyTorch's layout. */
#include "frontends/cell_lang.h"

#include "loom/ops.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NAME_LEN = 40, MAX_SYMS = 256, MAX_EXPRS = 2048, MAX_STMTS = 256, MAX_TEXT = 1 << 16 };

/* ---- the program ---- */

typedef enum { S_UNKNOWN, S_SIZE, S_INPUT, S_STATE, S_VAR, S_PARAM } sym_kind;
typedef enum { ROLE_WEIGHT, ROLE_GAIN, ROLE_BIAS } param_role;
typedef enum { D_NONE, D_VECTOR, D_MATRIX } decl_kind;

typedef struct {
    char name[NAME_LEN + 1];
    sym_kind kind;
    int index;      /* size: 0 = H, 1 = I; state: its number; param: its number */
    int line, col;  /* first mention */
    decl_kind decl; /* a parameter's declaration */
    int dim[2];     /* declared dimensions (expressions; -1: none) */
    int init;       /* declared initialiser (loom_init), -1: the default for its role */
    int init_arg[2], n_init_args;
    param_role role;
    int assigned_at; /* a variable's first assigning statement (-1: none) */
} sym;

typedef enum { X_NUM, X_SYM, X_NEG, X_BIN, X_CALL, X_SLICE } expr_kind;

typedef struct {
    expr_kind kind;
    char op;        /* X_BIN: + - * / @ ^ */
    int fn;         /* X_CALL: index into fns[] */
    int line, col;
    int a, b, c;    /* operands; X_SLICE: operand, start, end */
    int arg0, n_args;
    double num;
    int sym;        /* X_SYM; X_CALL layer_norm without gain and bias: its gain (bias: sym + 1), else -1 */
} expr;

typedef struct {
    int sym; /* -1: the output */
    int expr, line, col;
} stmt;

typedef struct {
    loom_cell_def def;
    char name[NAME_LEN + 1];
    char *source;
    sym syms[MAX_SYMS];
    int n_syms;
    expr ex[MAX_EXPRS];
    int n_ex;
    int args[MAX_EXPRS];
    int n_args;
    stmt st[MAX_STMTS];
    int n_st;
    int input;
    int state[LOOM_CELL_MAX_STATES];
    int n_states;
    int param[LOOM_CELL_MAX_PARAMS];
    int n_params;
    int output; /* statement, -1: state 0 is the output */
} program;

enum { F_SIGMOID, F_TANH, F_RELU, F_EXP, F_LOG, F_SQRT, F_RSQRT, F_SOFTPLUS, F_HARD_SIGMOID, F_ELU, F_POW,
       F_LAYER_NORM, F_CONCAT, F_MEAN, F_VAR, F_SUM };
static const struct {
    const char *name;
    int min, max;
} fns[] = {
    {"sigmoid", 1, 1}, {"tanh", 1, 1},     {"relu", 1, 1},         {"exp", 1, 1},  {"log", 1, 1},
    {"sqrt", 1, 1},    {"rsqrt", 1, 1},    {"softplus", 1, 1},     {"hard_sigmoid", 1, 1},
    {"elu", 1, 2},     {"pow", 2, 2},      {"layer_norm", 1, 3},   {"concat", 1, 16},
    {"mean", 1, 1},    {"var", 1, 1},      {"sum", 1, 1},
};
enum { N_FNS = sizeof fns / sizeof *fns };

static const struct {
    const char *name;
    loom_init init;
    int min, max;
} inits[] = {
    {"zeros", LOOM_INIT_ZEROS, 0, 0},       {"ones", LOOM_INIT_ONES, 0, 0},
    {"constant", LOOM_INIT_CONSTANT, 1, 1}, {"uniform", LOOM_INIT_UNIFORM, 1, 2},
    {"normal", LOOM_INIT_NORMAL, 1, 1},     {"xavier", LOOM_INIT_XAVIER_UNIFORM, 0, 1},
    {"orthogonal", LOOM_INIT_ORTHOGONAL, 0, 1},
};
enum { N_INITS = sizeof inits / sizeof *inits };

/* ---- lexer ---- */

typedef enum { T_EOF, T_NL, T_NAME, T_NUM, T_PUNCT } tok_kind;

typedef struct {
    tok_kind k;
    int line, col;
    double num;
    char p;
    char name[NAME_LEN + 1];
} token;

typedef struct {
    const char *s;
    size_t pos;
    int line, col, depth; /* depth: open brackets (newlines inside them are spaces) */
    token tok, next;      /* the current token and the one after it */
    const char *origin;
    loom_error *err;
    bool failed;
    program *pr;
    const char *lhs; /* the statement's target, for layer_norm's parameter names */
    int n_ln;        /* layer_norms without gain and bias in this statement */
    int cur_stmt;
} parser;

static bool fail_at(parser *P, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool fail_at(parser *P, int line, int col, const char *fmt, ...)
{
    if (P->failed) return false;
    P->failed = true;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (P->origin)
        loom_error_set(P->err, LOOM_ERR_ARG, "%s:%d:%d: %s", P->origin, line, col, msg);
    else
        loom_error_set(P->err, LOOM_ERR_ARG, "cell, line %d, column %d: %s", line, col, msg);
    return false;
}

static const char *tok_str(const token *t, char *buf, size_t n)
{
    switch (t->k) {
    case T_EOF: return "the end of the text";
    case T_NL: return "the end of the line";
    case T_NAME: snprintf(buf, n, "'%s'", t->name); return buf;
    case T_NUM: snprintf(buf, n, "the number %g", t->num); return buf;
    default: snprintf(buf, n, "'%c'", t->p); return buf;
    }
}
#define TOK(t) tok_str((t), (char[64]){0}, 64)

static token lex(parser *P)
{
    token t = {T_EOF, 0, 0, 0, 0, {0}};
    for (;;) {
        char c = P->s[P->pos];
        if (c == '#')
            while (P->s[P->pos] && P->s[P->pos] != '\n') P->pos++, P->col++;
        c = P->s[P->pos];
        if (c == ' ' || c == '\t' || c == '\r') {
            P->pos++, P->col++;
        } else if (c == '\n' && P->depth > 0) {
            P->pos++, P->line++, P->col = 1;
        } else {
            break;
        }
    }
    t.line = P->line, t.col = P->col;
    const char *s = P->s + P->pos;
    if (!*s) return t;
    if (*s == '\n') {
        t.k = T_NL;
        P->pos++, P->line++, P->col = 1;
        return t;
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        size_t n = 0;
        while (isalnum((unsigned char)s[n]) || s[n] == '_') n++;
        if (n > NAME_LEN) {
            fail_at(P, t.line, t.col, "the name '%.*s...' is longer than %d characters", 20, s, NAME_LEN);
            t.k = T_EOF;
            return t;
        }
        t.k = T_NAME;
        memcpy(t.name, s, n);
        t.name[n] = 0;
        P->pos += n, P->col += (int)n;
        return t;
    }
    if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
        size_t n = 0;
        while (isdigit((unsigned char)s[n])) n++;
        if (s[n] == '.') {
            n++;
            while (isdigit((unsigned char)s[n])) n++;
        }
        if ((s[n] == 'e' || s[n] == 'E') &&
            (isdigit((unsigned char)s[n + 1]) || ((s[n + 1] == '+' || s[n + 1] == '-') && isdigit((unsigned char)s[n + 2])))) {
            n += 2;
            while (isdigit((unsigned char)s[n])) n++;
        }
        char buf[64];
        if (n >= sizeof buf) {
            fail_at(P, t.line, t.col, "a number of more than %d characters", (int)sizeof buf - 1);
            t.k = T_EOF;
            return t;
        }
        memcpy(buf, s, n);
        buf[n] = 0;
        t.k = T_NUM;
        t.num = strtod(buf, NULL);
        if (!isfinite(t.num)) fail_at(P, t.line, t.col, "the number %s is too large", buf);
        P->pos += n, P->col += (int)n;
        return t;
    }
    if (strchr("()[],;:=+-*/@^", *s)) {
        t.k = T_PUNCT;
        t.p = *s;
        if (*s == '(' || *s == '[') P->depth++;
        if ((*s == ')' || *s == ']') && P->depth > 0) P->depth--;
        P->pos++, P->col++;
        return t;
    }
    if ((unsigned char)*s >= 0x80)
        fail_at(P, t.line, t.col, "a character outside ASCII (only comments may hold other text)");
    else
        fail_at(P, t.line, t.col, "the character '%c' has no meaning here", isprint((unsigned char)*s) ? *s : '?');
    t.k = T_EOF;
    return t;
}

static void advance(parser *P)
{
    P->tok = P->next;
    P->next = P->failed ? (token){T_EOF, P->line, P->col, 0, 0, {0}} : lex(P);
}

static bool is_punct(const parser *P, char c) { return P->tok.k == T_PUNCT && P->tok.p == c; }
static bool is_name(const parser *P, const char *n) { return P->tok.k == T_NAME && !strcmp(P->tok.name, n); }

static bool expect(parser *P, char c, const char *what)
{
    if (is_punct(P, c)) {
        advance(P);
        return true;
    }
    return fail_at(P, P->tok.line, P->tok.col, "expected '%c' %s, found %s", c, what, TOK(&P->tok));
}

static bool end_of_statement(parser *P)
{
    if (P->tok.k == T_NL || P->tok.k == T_EOF) return true;
    return fail_at(P, P->tok.line, P->tok.col, "expected the end of the line, found %s", TOK(&P->tok));
}

/* ---- symbols and nodes ---- */

static int find_sym(const program *pr, const char *name)
{
    for (int i = 0; i < pr->n_syms; i++)
        if (!strcmp(pr->syms[i].name, name)) return i;
    return -1;
}

static int add_sym(parser *P, const char *name, sym_kind kind, int line, int col)
{
    program *pr = P->pr;
    if (pr->n_syms == MAX_SYMS) return fail_at(P, line, col, "more than %d names in one cell", MAX_SYMS), -1;
    sym *s = &pr->syms[pr->n_syms];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->kind = kind;
    s->line = line, s->col = col;
    s->dim[0] = s->dim[1] = -1;
    s->init = -1;
    s->assigned_at = -1;
    return pr->n_syms++;
}

static int sym_of(parser *P, const char *name, int line, int col)
{
    int i = find_sym(P->pr, name);
    return i >= 0 ? i : add_sym(P, name, S_UNKNOWN, line, col);
}

static int add_expr(parser *P, expr_kind k, int line, int col)
{
    program *pr = P->pr;
    if (pr->n_ex == MAX_EXPRS) return fail_at(P, line, col, "more than %d terms in one cell", MAX_EXPRS), -1;
    expr *e = &pr->ex[pr->n_ex];
    memset(e, 0, sizeof *e);
    e->kind = k;
    e->line = line, e->col = col;
    e->a = e->b = e->c = e->sym = -1;
    return pr->n_ex++;
}

/* ---- expressions ----
 *   expr    := term { ('+' | '-') term }
 *   term    := unary { ('*' | '/' | '@') unary }
 *   unary   := '-' unary | power
 *   power   := postfix [ '^' unary ]
 *   postfix := primary { '[' expr ':' expr ']' }
 *   primary := NUMBER | NAME | NAME '(' expr { ',' expr } ')' | '(' expr ')' */

static int parse_expr(parser *P);

static int binary(parser *P, char op, int a, int b, int line, int col)
{
    int e = add_expr(P, X_BIN, line, col);
    if (e < 0) return -1;
    P->pr->ex[e].op = op, P->pr->ex[e].a = a, P->pr->ex[e].b = b;
    return e;
}

static int parse_call(parser *P, const token *name)
{
    int f = 0;
    while (f < N_FNS && strcmp(fns[f].name, name->name)) f++;
    if (f == N_FNS) {
        fail_at(P, name->line, name->col,
                "unknown function '%s' (known: sigmoid, tanh, relu, exp, log, sqrt, rsqrt, softplus, hard_sigmoid, elu, "
                "pow, layer_norm, concat, mean, var, sum)",
                name->name);
        return -1;
    }
    advance(P);
    advance(P); /* the name and '(' */
    int args[16], n = 0;
    if (!is_punct(P, ')'))
        for (;;) {
            if (n == 16) return fail_at(P, P->tok.line, P->tok.col, "more than 16 arguments"), -1;
            if ((args[n++] = parse_expr(P)) < 0) return -1;
            if (!is_punct(P, ',')) break;
            advance(P);
        }
    if (!expect(P, ')', "after the arguments")) return -1;
    if (n < fns[f].min || n > fns[f].max || (f == F_LAYER_NORM && n == 2))
        return fail_at(P, name->line, name->col, "%s takes %s, not %d", fns[f].name,
                       f == F_LAYER_NORM ? "1 argument (x) or 3 (x, gain, bias)"
                       : fns[f].min == fns[f].max ? (fns[f].min == 1 ? "1 argument" : "2 arguments")
                       : f == F_ELU            ? "1 or 2 arguments (x, alpha)"
                                               : "1 to 16 arguments",
                       n),
               -1;
    int e = add_expr(P, X_CALL, name->line, name->col);
    if (e < 0) return -1;
    program *pr = P->pr;
    if (pr->n_args + n > MAX_EXPRS) return fail_at(P, name->line, name->col, "too many arguments in one cell"), -1;
    pr->ex[e].fn = f;
    pr->ex[e].arg0 = pr->n_args;
    pr->ex[e].n_args = n;
    memcpy(pr->args + pr->n_args, args, (size_t)n * sizeof *args);
    pr->n_args += n;
    if (f == F_LAYER_NORM && n == 1) { /* its own gain and bias: ln_<target>[k]_weight, _bias */
        char nm[2][NAME_LEN + 16];
        char k[16] = "";
        if (P->n_ln++) snprintf(k, sizeof k, "%d", P->n_ln);
        snprintf(nm[0], sizeof nm[0], "ln_%s%s_weight", P->lhs, k);
        snprintf(nm[1], sizeof nm[1], "ln_%s%s_bias", P->lhs, k);
        for (int i = 0; i < 2; i++) {
            if (strlen(nm[i]) > NAME_LEN || find_sym(pr, nm[i]) >= 0)
                return fail_at(P, name->line, name->col, "the name '%s' for layer_norm's %s is %s; give gain and bias: "
                               "layer_norm(x, gain, bias)", nm[i], i ? "bias" : "gain",
                               strlen(nm[i]) > NAME_LEN ? "too long" : "taken"), -1;
            int s = add_sym(P, nm[i], S_PARAM, name->line, name->col);
            if (s < 0) return -1;
            pr->syms[s].role = i ? ROLE_BIAS : ROLE_GAIN;
            if (!i) pr->ex[e].sym = s;
        }
    }
    return e;
}

static int parse_primary(parser *P)
{
    token t = P->tok;
    if (t.k == T_NUM) {
        advance(P);
        int e = add_expr(P, X_NUM, t.line, t.col);
        if (e >= 0) P->pr->ex[e].num = t.num;
        return e;
    }
    if (t.k == T_NAME) {
        if (P->next.k == T_PUNCT && P->next.p == '(') return parse_call(P, &t);
        advance(P);
        if (!strcmp(t.name, "cell") || !strcmp(t.name, "output") || !strcmp(t.name, "init"))
            return fail_at(P, t.line, t.col, "'%s' is a keyword, not a value", t.name), -1;
        int s = sym_of(P, t.name, t.line, t.col);
        int e = s < 0 ? -1 : add_expr(P, X_SYM, t.line, t.col);
        if (e >= 0) P->pr->ex[e].sym = s;
        return e;
    }
    if (is_punct(P, '(')) {
        advance(P);
        int e = parse_expr(P);
        if (e < 0 || !expect(P, ')', "to close '('")) return -1;
        return e;
    }
    return fail_at(P, t.line, t.col, "expected a value (a number, a name, a function or '('), found %s", TOK(&t)), -1;
}

static int parse_postfix(parser *P)
{
    int e = parse_primary(P);
    while (e >= 0 && is_punct(P, '[')) {
        token t = P->tok;
        advance(P);
        int lo = parse_expr(P);
        if (lo < 0 || !expect(P, ':', "between a slice's start and end")) return -1;
        int hi = parse_expr(P);
        if (hi < 0 || !expect(P, ']', "to close the slice")) return -1;
        int s = add_expr(P, X_SLICE, t.line, t.col);
        if (s < 0) return -1;
        P->pr->ex[s].a = e, P->pr->ex[s].b = lo, P->pr->ex[s].c = hi;
        e = s;
    }
    return e;
}

static int parse_unary(parser *P);

static int parse_power(parser *P)
{
    int e = parse_postfix(P);
    if (e >= 0 && is_punct(P, '^')) {
        token t = P->tok;
        advance(P);
        int b = parse_unary(P);
        return b < 0 ? -1 : binary(P, '^', e, b, t.line, t.col);
    }
    return e;
}

static int parse_unary(parser *P)
{
    if (is_punct(P, '-')) {
        token t = P->tok;
        advance(P);
        int a = parse_unary(P);
        int e = a < 0 ? -1 : add_expr(P, X_NEG, t.line, t.col);
        if (e >= 0) P->pr->ex[e].a = a;
        return e;
    }
    return parse_power(P);
}

static int parse_term(parser *P)
{
    int e = parse_unary(P);
    while (e >= 0 && (is_punct(P, '*') || is_punct(P, '/') || is_punct(P, '@'))) {
        token t = P->tok;
        advance(P);
        int b = parse_unary(P);
        e = b < 0 ? -1 : binary(P, t.p, e, b, t.line, t.col);
    }
    return e;
}

static int parse_expr(parser *P)
{
    int e = parse_term(P);
    while (e >= 0 && (is_punct(P, '+') || is_punct(P, '-'))) {
        token t = P->tok;
        advance(P);
        int b = parse_term(P);
        e = b < 0 ? -1 : binary(P, t.p, e, b, t.line, t.col);
    }
    return e;
}

/* ---- statements ---- */

/* NAME ':' ('vector' | 'matrix') ['(' dims ')'] ['init' NAME ['(' args ')']] */
static bool parse_decl(parser *P, const token *name)
{
    program *pr = P->pr;
    advance(P); /* : */
    int s = sym_of(P, name->name, name->line, name->col);
    if (s < 0) return false;
    sym *y = &pr->syms[s];
    if (y->kind != S_UNKNOWN && y->kind != S_PARAM)
        return fail_at(P, name->line, name->col, "'%s' is %s, not a parameter", name->name,
                       y->kind == S_SIZE ? "a size" : y->kind == S_INPUT ? "the input" : y->kind == S_STATE ? "a state"
                                                                                                  : "a variable (it is given a value)");
    if (y->decl != D_NONE) return fail_at(P, name->line, name->col, "'%s' is declared twice", name->name);
    y->kind = S_PARAM;
    if (!is_name(P, "vector") && !is_name(P, "matrix"))
        return fail_at(P, P->tok.line, P->tok.col, "expected 'vector' or 'matrix' after '%s:', found %s", name->name, TOK(&P->tok));
    y->decl = is_name(P, "vector") ? D_VECTOR : D_MATRIX;
    advance(P);
    if (is_punct(P, '(')) {
        advance(P);
        int want = y->decl == D_VECTOR ? 1 : 2;
        for (int i = 0; i < want; i++) {
            if (i && !expect(P, ',', "between a matrix's rows and columns")) return false;
            if ((y->dim[i] = parse_expr(P)) < 0) return false;
        }
        if (!expect(P, ')', want == 1 ? "after a vector's size" : "after a matrix's rows and columns")) return false;
    }
    if (is_name(P, "init")) {
        advance(P);
        token t = P->tok;
        int k = 0;
        while (t.k == T_NAME && k < N_INITS && strcmp(inits[k].name, t.name)) k++;
        if (t.k != T_NAME || k == N_INITS)
            return fail_at(P, t.line, t.col, "expected an initialiser (zeros, ones, constant(v), uniform(a), uniform(lo, hi), "
                           "normal(std), xavier, orthogonal), found %s", TOK(&t));
        advance(P);
        int n = 0;
        if (is_punct(P, '(')) {
            advance(P);
            for (;;) {
                if (n == 2) return fail_at(P, P->tok.line, P->tok.col, "%s takes at most %d numbers", t.name, inits[k].max);
                if ((y->init_arg[n++] = parse_expr(P)) < 0) return false;
                if (!is_punct(P, ',')) break;
                advance(P);
            }
            if (!expect(P, ')', "after the initialiser's numbers")) return false;
        }
        if (n < inits[k].min || n > inits[k].max)
            return fail_at(P, t.line, t.col, "%s takes %d to %d numbers, not %d", t.name, inits[k].min, inits[k].max, n);
        y->init = inits[k].init == LOOM_INIT_UNIFORM && n == 2 ? LOOM_INIT_UNIFORM_RANGE : (int)inits[k].init;
        y->n_init_args = n;
    }
    return end_of_statement(P);
}

static bool parse_statement(parser *P)
{
    program *pr = P->pr;
    token t = P->tok;
    if (t.k != T_NAME)
        return fail_at(P, t.line, t.col, "expected a statement (NAME = ..., NAME: vector|matrix, output ...), found %s", TOK(&t));
    if (pr->n_st == MAX_STMTS) return fail_at(P, t.line, t.col, "more than %d statements", MAX_STMTS);
    P->n_ln = 0;
    P->cur_stmt = pr->n_st;
    if (!strcmp(t.name, "output") && !(P->next.k == T_PUNCT && (P->next.p == '=' || P->next.p == ':'))) {
        if (pr->output >= 0) return fail_at(P, t.line, t.col, "a second output (the first is on line %d)", pr->st[pr->output].line);
        advance(P);
        P->lhs = "output";
        int e = parse_expr(P);
        if (e < 0) return false;
        pr->output = pr->n_st;
        pr->st[pr->n_st++] = (stmt){-1, e, t.line, t.col};
        return end_of_statement(P);
    }
    if (!strcmp(t.name, "cell") || !strcmp(t.name, "init") || !strcmp(t.name, "output"))
        return fail_at(P, t.line, t.col, "'%s' is a keyword", t.name);
    if (P->next.k == T_PUNCT && P->next.p == ':') {
        advance(P);
        return parse_decl(P, &t);
    }
    if (!(P->next.k == T_PUNCT && P->next.p == '='))
        return fail_at(P, P->next.line, P->next.col, "expected '=' or ':' after '%s', found %s", t.name, TOK(&P->next));
    int s = sym_of(P, t.name, t.line, t.col);
    if (s < 0) return false;
    sym *y = &pr->syms[s];
    if (y->kind == S_SIZE || y->kind == S_INPUT || y->kind == S_PARAM)
        return fail_at(P, t.line, t.col, "'%s' is %s and cannot be given a value", t.name,
                       y->kind == S_SIZE ? "a size" : y->kind == S_INPUT ? "the input" : "a parameter");
    if (y->kind == S_UNKNOWN) y->kind = S_VAR;
    if (y->kind == S_VAR && y->assigned_at < 0) y->assigned_at = pr->n_st;
    advance(P);
    advance(P); /* = */
    P->lhs = t.name;
    int e = parse_expr(P);
    if (e < 0) return false;
    pr->st[pr->n_st++] = (stmt){s, e, t.line, t.col};
    return end_of_statement(P);
}

/* cell NAME '(' INPUT ';' STATE {',' STATE} ')' */
static bool parse_header(parser *P)
{
    program *pr = P->pr;
    while (P->tok.k == T_NL) advance(P);
    if (!is_name(P, "cell")) return fail_at(P, P->tok.line, P->tok.col, "expected 'cell NAME(x; h, ...)', found %s", TOK(&P->tok));
    advance(P);
    if (P->tok.k != T_NAME) return fail_at(P, P->tok.line, P->tok.col, "expected the cell's name, found %s", TOK(&P->tok));
    snprintf(pr->name, sizeof pr->name, "%s", P->tok.name);
    advance(P);
    if (!expect(P, '(', "after the cell's name")) return false;
    if (P->tok.k != T_NAME) return fail_at(P, P->tok.line, P->tok.col, "expected the input's name, found %s", TOK(&P->tok));
    if (find_sym(pr, P->tok.name) >= 0)
        return fail_at(P, P->tok.line, P->tok.col, "'%s' is the %s size", P->tok.name, P->tok.name[0] == 'H' ? "hidden" : "input");
    if ((pr->input = add_sym(P, P->tok.name, S_INPUT, P->tok.line, P->tok.col)) < 0) return false;
    advance(P);
    if (is_punct(P, ','))
        return fail_at(P, P->tok.line, P->tok.col, "a cell has one input (the step's x); the states follow ';'");
    if (!expect(P, ';', "between the input and the states")) return false;
    for (;;) {
        if (P->tok.k != T_NAME) return fail_at(P, P->tok.line, P->tok.col, "expected a state's name, found %s", TOK(&P->tok));
        if (find_sym(pr, P->tok.name) >= 0) return fail_at(P, P->tok.line, P->tok.col, "'%s' is named twice", P->tok.name);
        if (pr->n_states == LOOM_CELL_MAX_STATES)
            return fail_at(P, P->tok.line, P->tok.col, "more than %d states", LOOM_CELL_MAX_STATES);
        int s = add_sym(P, P->tok.name, S_STATE, P->tok.line, P->tok.col);
        if (s < 0) return false;
        pr->syms[s].index = pr->n_states;
        pr->state[pr->n_states++] = s;
        advance(P);
        if (!is_punct(P, ',')) break;
        advance(P);
    }
    if (!expect(P, ')', "after the states")) return false;
    return end_of_statement(P);
}

/* Every name resolved (a free name is a parameter); variables given a
 * value before they are read; every state given its new value. */
static bool resolve(parser *P)
{
    program *pr = P->pr;
    for (int i = 0; i < pr->n_syms; i++)
        if (pr->syms[i].kind == S_UNKNOWN) pr->syms[i].kind = S_PARAM;
    bool *assigned = calloc(MAX_SYMS, sizeof *assigned);
    if (!assigned) return fail_at(P, 1, 1, "out of memory");
    int *stack = malloc(MAX_EXPRS * sizeof *stack);
    bool *used = calloc(MAX_SYMS, sizeof *used);
    bool ok = stack && used;
    if (!ok) fail_at(P, 1, 1, "out of memory");
    for (int s = 0; ok && s < pr->n_st; s++) {
        int top = 0;
        stack[top++] = pr->st[s].expr;
        while (ok && top) {
            const expr *e = &pr->ex[stack[--top]];
            if (e->kind == X_SYM) {
                const sym *y = &pr->syms[e->sym];
                used[e->sym] = true;
                if (y->kind == S_VAR && !assigned[e->sym])
                    ok = fail_at(P, e->line, e->col, "'%s' is used before it is given a value (on line %d)", y->name,
                                 pr->st[y->assigned_at].line);
            }
            if (e->kind == X_CALL && e->sym >= 0) used[e->sym] = used[e->sym + 1] = true;
            if (e->a >= 0) stack[top++] = e->a;
            if (e->b >= 0) stack[top++] = e->b;
            if (e->c >= 0) stack[top++] = e->c;
            for (int k = 0; e->kind == X_CALL && k < e->n_args; k++) stack[top++] = pr->args[e->arg0 + k];
        }
        if (pr->st[s].sym >= 0) assigned[pr->st[s].sym] = true;
    }
    for (int i = 0; ok && i < pr->n_states; i++)
        if (!assigned[pr->state[i]])
            ok = fail_at(P, pr->syms[pr->state[i]].line, pr->syms[pr->state[i]].col, "the state '%s' is never given its new value",
                         pr->syms[pr->state[i]].name);
    for (int i = 0; ok && i < pr->n_syms; i++) { /* a value nothing reads: most often a misspelt name */
        const sym *y = &pr->syms[i];
        if (y->kind == S_VAR && !used[i])
            ok = fail_at(P, pr->st[y->assigned_at].line, pr->st[y->assigned_at].col,
                         "'%s' is given a value but never used (a misspelt name where it should be read?)", y->name);
    }
    for (int i = 0; ok && i < pr->n_syms; i++) {
        sym *y = &pr->syms[i];
        if (y->kind != S_PARAM) continue;
        if (!used[i]) {
            ok = fail_at(P, y->line, y->col, "the parameter '%s' is declared but never used", y->name);
        } else if (pr->n_params == LOOM_CELL_MAX_PARAMS) {
            ok = fail_at(P, y->line, y->col, "more than %d parameters", LOOM_CELL_MAX_PARAMS);
        } else {
            y->index = pr->n_params;
            pr->param[pr->n_params++] = i;
        }
    }
    free(assigned), free(stack), free(used);
    return ok;
}

/* ---- the walk: shapes at given sizes, and the step's nodes ---- */

typedef enum { V_STATIC, V_VALUE, V_VECTOR, V_MATRIX, V_OPEN } vtype;

typedef struct {
    vtype t;
    int64_t w, rows; /* value/vector: width; matrix: rows × w */
    double num;      /* static */
    loom_tensor x;   /* built */
    int sym;         /* open: the parameter */
} val;

typedef struct {
    const program *pr;
    int64_t I, H;
    loom_graph *g;        /* NULL: shapes only */
    const loom_tensor *p; /* the parameters (building) */
    val var[MAX_SYMS];    /* input, states, variables: their current values */
    int prank[LOOM_CELL_MAX_PARAMS];
    int64_t pdim[LOOM_CELL_MAX_PARAMS][2];
    char msg[400];
    int line, col; /* where msg points */
    bool failed;
    int32_t first; /* the graph's size when the step began: nodes from here on are the step's */
} walker;

static val bad(walker *c, const expr *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static val bad(walker *c, const expr *e, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof c->msg, fmt, ap);
        va_end(ap);
        c->line = e->line, c->col = e->col;
        c->failed = true;
    }
    return (val){.t = V_STATIC};
}

static val eval(walker *c, int ei);

static const char *what(vtype t)
{
    static const char *const n[] = {"a number", "a value", "a parameter vector", "a parameter matrix", "a parameter"};
    return n[t];
}

/* A parameter's value once its shape is known. */
static val param_val(walker *c, int s)
{
    const sym *y = &c->pr->syms[s];
    int k = y->index;
    val v = {.t = c->prank[k] == 2 ? V_MATRIX : V_VECTOR, .sym = s};
    v.rows = c->prank[k] == 2 ? c->pdim[k][0] : 1;
    v.w = c->prank[k] == 2 ? c->pdim[k][1] : c->pdim[k][0];
    if (c->g) v.x = c->p[k];
    return v;
}

/* Gives an open parameter its shape: a vector of width w (rows 0) or a
 * matrix rows × w. */
static val settle(walker *c, const expr *e, int s, int64_t rows, int64_t w)
{
    const sym *y = &c->pr->syms[s];
    int k = y->index;
    if ((y->decl == D_VECTOR && rows) || (y->decl == D_MATRIX && !rows))
        return bad(c, e, "'%s' is declared a %s but used as a %s", y->name, y->decl == D_VECTOR ? "vector" : "matrix",
                   rows ? "matrix" : "vector");
    if (c->prank[k]) return param_val(c, s); /* settled meanwhile ('U + U @ h': the right side settles U) */
    c->prank[k] = rows ? 2 : 1;
    c->pdim[k][0] = rows ? rows : w;
    c->pdim[k][1] = rows ? w : 0;
    return param_val(c, s);
}

static bool whole(double v, int64_t *out)
{
    if (!(v >= -1e15 && v <= 1e15) || v != floor(v)) return false;
    *out = (int64_t)v;
    return true;
}

/* Width broadcast of two operands of an elementwise op: equal, or one 1. */
static bool join_width(int64_t a, int64_t b, int64_t *w)
{
    if (a != b && a != 1 && b != 1) return false;
    *w = a > b ? a : b;
    return true;
}

static double fold1(int f, double x, double y)
{
    switch (f) {
    case F_SIGMOID: return 1 / (1 + exp(-x));
    case F_TANH: return tanh(x);
    case F_RELU: return x > 0 ? x : 0;
    case F_EXP: return exp(x);
    case F_LOG: return log(x);
    case F_SQRT: return sqrt(x);
    case F_RSQRT: return 1 / sqrt(x);
    case F_SOFTPLUS: return fmax(x, 0) + log1p(exp(-fabs(x)));
    case F_HARD_SIGMOID: return fmin(fmax(x + 3, 0), 6) / 6;
    case F_ELU: return x > 0 ? x : y * expm1(x);
    default: return pow(x, y);
    }
}

static val eval_call(walker *c, const expr *e)
{
    const program *pr = c->pr;
    val a[16];
    for (int k = 0; k < e->n_args; k++) {
        a[k] = eval(c, pr->args[e->arg0 + k]);
        if (c->failed) return a[k];
    }
    int f = e->fn;
    loom_graph *g = c->g;
    if (f == F_LAYER_NORM || f == F_CONCAT || f == F_MEAN || f == F_VAR || f == F_SUM) {
        for (int k = 0; k < (f == F_CONCAT ? e->n_args : 1); k++)
            if (a[k].t != V_VALUE) return bad(c, e, "%s needs values, and its argument %d is %s", fns[f].name, k + 1, what(a[k].t));
        val v = {.t = V_VALUE, .w = 1};
        if (f == F_CONCAT) {
            loom_tensor parts[16];
            v.w = 0;
            for (int k = 0; k < e->n_args; k++) v.w += a[k].w, parts[k] = a[k].x;
            if (g) v.x = loom_concat(g, parts, e->n_args, 1);
            return v;
        }
        if (f != F_LAYER_NORM) {
            if (g) v.x = f == F_MEAN ? loom_mean(g, a[0].x, 1, true) : f == F_VAR ? loom_var(g, a[0].x, 1, true) : loom_sum(g, a[0].x, 1, true);
            return v;
        }
        val wb[2];
        for (int k = 0; k < 2; k++) {
            if (e->sym >= 0) { /* its own gain and bias */
                int s = e->sym + k, idx = pr->syms[s].index;
                wb[k] = c->prank[idx] ? param_val(c, s) : settle(c, e, s, 0, a[0].w);
            } else {
                wb[k] = a[1 + k].t == V_OPEN ? settle(c, e, a[1 + k].sym, 0, a[0].w) : a[1 + k];
            }
            if (c->failed) return wb[k];
            if (wb[k].t != V_VECTOR || wb[k].w != a[0].w)
                return bad(c, e, "layer_norm's %s must be a vector of the value's width %lld", k ? "bias" : "gain", (long long)a[0].w);
        }
        v.w = a[0].w;
        if (g) v.x = loom_layer_norm(g, a[0].x, wb[0].x, wb[1].x, 1e-5f);
        return v;
    }
    /* the elementwise maps; elu's alpha and pow's exponent are numbers */
    if (e->n_args == 2 && a[1].t != V_STATIC) return bad(c, e, "%s's second argument must be a number", fns[f].name);
    double p = e->n_args == 2 ? a[1].num : 1.0;
    if (a[0].t == V_OPEN) return bad(c, e, "the shape of '%s' cannot be told from this use; declare it", pr->syms[a[0].sym].name);
    val v = a[0];
    if (v.t == V_STATIC) {
        v.num = fold1(f, v.num, p);
        if (!isfinite(v.num)) return bad(c, e, "%s of these numbers is %s", fns[f].name, isnan(v.num) ? "not a number" : "infinite");
        return v;
    }
    if (!g) return v;
    switch (f) {
    case F_SIGMOID: v.x = loom_sigmoid(g, v.x); break;
    case F_TANH: v.x = loom_tanh(g, v.x); break;
    case F_RELU: v.x = loom_relu(g, v.x); break;
    case F_EXP: v.x = loom_exp(g, v.x); break;
    case F_LOG: v.x = loom_log(g, v.x); break;
    case F_SQRT: v.x = loom_sqrt(g, v.x); break;
    case F_RSQRT: v.x = loom_rsqrt(g, v.x); break;
    case F_SOFTPLUS: v.x = loom_softplus(g, v.x); break;
    case F_HARD_SIGMOID: v.x = loom_hard_sigmoid(g, v.x); break;
    case F_ELU: v.x = loom_elu(g, v.x, (float)p); break;
    default: v.x = loom_pow(g, v.x, (float)p); break;
    }
    return v;
}

static val eval_bin(walker *c, const expr *e)
{
    val l = eval(c, e->a);
    if (c->failed) return l;
    val r = eval(c, e->b);
    if (c->failed) return r;
    loom_graph *g = c->g;
    const program *pr = c->pr;
    if (e->op == '^') {
        if (r.t != V_STATIC) return bad(c, e, "the exponent of '^' must be a number");
        if (l.t == V_OPEN) return bad(c, e, "the shape of '%s' cannot be told from this use; declare it", pr->syms[l.sym].name);
        if (l.t == V_STATIC) {
            double v = pow(l.num, r.num);
            if (!isfinite(v)) return bad(c, e, "the numbers give %s", isnan(v) ? "not a number" : "an infinite one");
            return (val){.t = V_STATIC, .num = v};
        }
        if (g) l.x = loom_pow(g, l.x, (float)r.num);
        return l;
    }
    if (e->op == '@') {
        if (r.t != V_VALUE) return bad(c, e, "'@' multiplies a matrix by a value, and its right side is %s", what(r.t));
        if (l.t == V_OPEN) { /* P @ v: P is H × width(v) (declared rows were settled before the walk) */
            l = settle(c, e, l.sym, c->H, r.w);
            if (c->failed) return l;
        }
        if (l.t != V_MATRIX) return bad(c, e, "'@' multiplies a matrix by a value, and its left side is %s", what(l.t));
        if (l.w != r.w)
            return bad(c, e, "'@' joins a matrix of %lld columns with a value of width %lld", (long long)l.w, (long long)r.w);
        val v = {.t = V_VALUE, .w = l.rows};
        if (g) v.x = loom_matmul(g, r.x, l.x, false, true);
        return v;
    }
    /* elementwise: an open parameter takes the other side's width */
    if (l.t == V_OPEN && r.t == V_OPEN) return bad(c, e, "the shapes of '%s' and '%s' cannot be told; declare one", pr->syms[l.sym].name, pr->syms[r.sym].name);
    for (int side = 0; side < 2; side++) {
        val *o = side ? &r : &l, *other = side ? &l : &r;
        if (o->t != V_OPEN) continue;
        if (other->t == V_VALUE || other->t == V_VECTOR) {
            *o = settle(c, e, o->sym, 0, other->w);
        } else if (pr->syms[o->sym].decl == D_VECTOR && pr->syms[o->sym].dim[0] < 0) {
            *o = settle(c, e, o->sym, 0, c->H);
        } else {
            return bad(c, e, "the shape of '%s' cannot be told from this use; declare it", pr->syms[o->sym].name);
        }
        if (c->failed) return *o;
    }
    if (l.t == V_STATIC && r.t == V_STATIC) {
        double v = e->op == '+' ? l.num + r.num : e->op == '-' ? l.num - r.num : e->op == '*' ? l.num * r.num : l.num / r.num;
        if (!isfinite(v)) return bad(c, e, "the numbers give %s", isnan(v) ? "not a number" : "an infinite one");
        return (val){.t = V_STATIC, .num = v};
    }
    if (l.t == V_STATIC || r.t == V_STATIC) { /* a number and a tensor: one affine map (or a division) */
        val v = l.t == V_STATIC ? r : l;
        double k = l.t == V_STATIC ? l.num : r.num;
        if (!g) return v;
        float kf = (float)k;
        switch (e->op) {
        case '+': v.x = loom_affine(g, v.x, 1, kf); break;
        case '-': v.x = l.t == V_STATIC ? loom_affine(g, v.x, -1, kf) : loom_affine(g, v.x, 1, -kf); break;
        case '*': v.x = loom_scale(g, v.x, kf); break;
        default: v.x = l.t == V_STATIC ? loom_div(g, loom_scalar(g, kf), v.x) : loom_scale(g, v.x, (float)(1 / k)); break;
        }
        return v;
    }
    if ((l.t == V_MATRIX) != (r.t == V_MATRIX))
        return bad(c, e, "'%c' joins %s with %s (a matrix meets a value only through '@')", e->op, what(l.t), what(r.t));
    val v = {.t = l.t == V_VALUE || r.t == V_VALUE ? V_VALUE : l.t, .rows = l.rows};
    if ((l.t == V_MATRIX && l.rows != r.rows) || !join_width(l.w, r.w, &v.w))
        return bad(c, e, "'%c' joins widths %lld and %lld", e->op, (long long)l.w, (long long)r.w);
    if (g)
        v.x = e->op == '+' ? loom_add(g, l.x, r.x) : e->op == '-' ? loom_sub(g, l.x, r.x) : e->op == '*' ? loom_mul(g, l.x, r.x) : loom_div(g, l.x, r.x);
    return v;
}

static val eval(walker *c, int ei)
{
    const program *pr = c->pr;
    const expr *e = &pr->ex[ei];
    switch (e->kind) {
    case X_NUM: return (val){.t = V_STATIC, .num = e->num};
    case X_SYM: {
        const sym *y = &pr->syms[e->sym];
        if (y->kind == S_SIZE) return (val){.t = V_STATIC, .num = (double)(y->index ? c->I : c->H)};
        if (y->kind != S_PARAM) return c->var[e->sym];
        return c->prank[y->index] ? param_val(c, e->sym) : (val){.t = V_OPEN, .sym = e->sym};
    }
    case X_NEG: {
        val v = eval(c, e->a);
        if (c->failed) return v;
        if (v.t == V_OPEN) return bad(c, e, "the shape of '%s' cannot be told from this use; declare it", pr->syms[v.sym].name);
        if (v.t == V_STATIC) v.num = -v.num;
        else if (c->g) v.x = loom_neg(c->g, v.x);
        return v;
    }
    case X_BIN: return eval_bin(c, e);
    case X_CALL: return eval_call(c, e);
    default: { /* slice */
        val v = eval(c, e->a), lo = eval(c, e->b), hi = eval(c, e->c);
        if (c->failed) return v;
        int64_t a, b;
        if (lo.t != V_STATIC || hi.t != V_STATIC || !whole(lo.num, &a) || !whole(hi.num, &b))
            return bad(c, e, "a slice's start and end must be whole numbers (of H, I and constants)");
        if (v.t == V_OPEN) return bad(c, e, "'%s' is sliced: declare its shape", pr->syms[v.sym].name);
        if (v.t == V_STATIC) return bad(c, e, "a number cannot be sliced");
        int64_t n = v.t == V_MATRIX ? v.rows : v.w;
        if (a < 0 || b > n || a >= b)
            return bad(c, e, "the slice [%lld:%lld] is not inside [0:%lld] (H = %lld, I = %lld)", (long long)a, (long long)b,
                       (long long)n, (long long)c->H, (long long)c->I);
        if (v.t == V_MATRIX) v.rows = b - a;
        else v.w = b - a;
        if (c->g) v.x = loom_slice(c->g, v.x, v.t == V_VALUE ? 1 : 0, (int)a, (int)(b - a));
        return v;
    }
    }
}

/* A number of H, I and constants: a declared dimension or an initialiser's number. */
static bool static_num(walker *c, int ei, double *out)
{
    val v = eval(c, ei);
    if (c->failed) return false;
    if (v.t != V_STATIC) return bad(c, &c->pr->ex[ei], "expected a number (of H, I and constants)"), false;
    *out = v.num;
    return true;
}

/* Walks the statements at sizes I, H: the parameters' shapes, and with a
 * graph the step's nodes (x and states given). */
static bool walk(walker *c, const program *pr, int64_t I, int64_t H, loom_graph *g, const loom_tensor *p, loom_tensor x,
                 const loom_tensor *state, loom_tensor *next, loom_tensor *out)
{
    memset(c, 0, sizeof *c);
    c->pr = pr, c->I = I, c->H = H, c->g = g, c->p = p;
    c->first = g ? loom_graph_size(g) : 0;
    for (int k = 0; k < pr->n_params && !c->failed; k++) { /* declared shapes */
        const sym *y = &pr->syms[pr->param[k]];
        if (y->dim[0] < 0) continue;
        for (int d = 0; d < (y->decl == D_MATRIX ? 2 : 1); d++) {
            double v;
            int64_t n;
            if (!static_num(c, y->dim[d], &v)) break;
            if (!whole(v, &n) || n < 1 || n > (1 << 30)) {
                bad(c, &pr->ex[y->dim[d]], "the size %g of '%s' is not a whole number in [1, 2^30] (H = %lld, I = %lld)", v,
                    y->name, (long long)H, (long long)I);
                break;
            }
            c->pdim[k][d] = n;
        }
        c->prank[k] = y->decl == D_MATRIX ? 2 : 1;
    }
    c->var[pr->input] = (val){.t = V_VALUE, .w = I, .x = x};
    for (int s = 0; s < pr->n_states; s++) c->var[pr->state[s]] = (val){.t = V_VALUE, .w = H, .x = g ? state[s] : LOOM_INVALID};
    loom_tags tags = g ? loom_graph_tags(g) : LOOM_TAGS_NONE;
    int t = tags.step;
    for (int i = 0; i < pr->n_st && !c->failed; i++) {
        const stmt *s = &pr->st[i];
        const expr *e = &pr->ex[s->expr];
        loom_tags eq = tags;
        eq.eq = (uint8_t)(i < 255 ? i + 1 : 0);
        if (g) loom_graph_set_tags(g, eq);
        val v = eval(c, s->expr);
        if (g) loom_graph_set_tags(g, tags); /* the statement's nodes carry its number: the page shows its equation */
        if (c->failed) break;
        const char *nm = s->sym >= 0 ? pr->syms[s->sym].name : "the output";
        if (v.t == V_OPEN) {
            bad(c, e, "the shape of '%s' cannot be told from this use; declare it", pr->syms[v.sym].name);
            break;
        }
        bool must = s->sym < 0 || pr->syms[s->sym].kind == S_STATE;
        if (must && (v.t != V_VALUE || v.w != H)) {
            bad(c, e, "%s%s must be a value of width H = %lld, not %s of width %lld", s->sym >= 0 ? "the new " : "", nm,
                (long long)H, what(v.t), (long long)v.w);
            break;
        }
        if (g && v.t != V_STATIC && v.x.id > c->first && !loom_tensor_name(g, v.x)) {
            char label[NAME_LEN + 16];
            if (t >= 0) snprintf(label, sizeof label, "%s[%d]", s->sym >= 0 ? nm : "output", t);
            else snprintf(label, sizeof label, "%s", s->sym >= 0 ? nm : "output");
            loom_tensor_set_name(g, v.x, label); /* the op view names nodes after the equations */
        }
        if (s->sym >= 0) c->var[s->sym] = v;
        else if (out) *out = v.x;
    }
    if (c->failed) return false;
    for (int s = 0; g && s < pr->n_states; s++) next[s] = c->var[pr->state[s]].x;
    if (out && pr->output < 0) *out = c->var[pr->state[0]].x;
    for (int k = 0; k < pr->n_params; k++)
        if (!c->prank[k]) {
            const sym *y = &pr->syms[pr->param[k]];
            if (y->decl == D_VECTOR) {
                c->prank[k] = 1, c->pdim[k][0] = H;
                continue;
            }
            snprintf(c->msg, sizeof c->msg, "the shape of '%s' cannot be told from its uses; declare it", y->name);
            c->line = y->line, c->col = y->col;
            c->failed = true;
            return false;
        }
    return true;
}

/* ---- the cell's functions ---- */

/* Parameter k's spec at the walk's sizes (its shape from the walk); false
 * with c->msg for initialiser numbers it cannot take. */
static bool param_spec(walker *c, int k, loom_param_spec *s)
{
    const program *pr = c->pr;
    const sym *y = &pr->syms[pr->param[k]];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", y->name);
    s->shape = c->prank[k] == 2 ? loom_shape2((int)c->pdim[k][0], (int)c->pdim[k][1]) : loom_shape1((int)c->pdim[k][0]);
    if (y->init < 0) { /* PyTorch's recurrent weights: U(−1/√H, 1/√H); a layer norm's gain 1, bias 0 */
        s->init = y->role == ROLE_GAIN ? LOOM_INIT_ONES : y->role == ROLE_BIAS ? LOOM_INIT_ZEROS : LOOM_INIT_UNIFORM;
        s->scale = y->role == ROLE_WEIGHT ? 1.0f / sqrtf((float)c->H) : 0;
        return true;
    }
    double a[2] = {0, 0};
    for (int j = 0; j < y->n_init_args; j++) {
        if (!static_num(c, y->init_arg[j], &a[j])) return false;
        if (!isfinite((float)a[j])) return bad(c, &pr->ex[y->init_arg[j]], "the number %g is out of range", a[j]), false;
    }
    s->init = (loom_init)y->init;
    s->scale = s->init == LOOM_INIT_ZEROS || s->init == LOOM_INIT_ONES ? 0 : (float)(y->n_init_args ? a[0] : 1.0);
    s->b = (float)a[1];
    if (s->init == LOOM_INIT_UNIFORM_RANGE && s->scale > s->b)
        return bad(c, &pr->ex[y->init_arg[0]], "uniform(lo, hi) with lo %g above hi %g", a[0], a[1]), false;
    return true;
}

static int eq_params(const loom_cell_def *def, int input_size, int hidden_size, loom_param_spec *specs, int max)
{
    const program *pr = def->user;
    if (pr->n_params > max) return pr->n_params;
    walker *c = malloc(sizeof *c);
    if (!c) return -1;
    bool ok = walk(c, pr, input_size, hidden_size, NULL, NULL, LOOM_INVALID, NULL, NULL, NULL);
    for (int k = 0; k < pr->n_params; k++)
        if (!ok || !param_spec(c, k, &specs[k])) { /* shapes that do not hold at these sizes: the step says why */
            ok = false;
            memset(&specs[k], 0, sizeof specs[k]);
            snprintf(specs[k].name, sizeof specs[k].name, "%s", pr->syms[pr->param[k]].name);
            specs[k].shape = loom_shape1(1);
        }
    free(c);
    return pr->n_params;
}

static loom_tensor eq_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x, const loom_tensor *state,
                           loom_tensor *next)
{
    const program *pr = def->user;
    loom_shape xs = loom_tensor_shape(g, x), hs = loom_tensor_shape(g, state[0]);
    walker *c = malloc(sizeof *c);
    if (!c) return loom_graph_fail(g, LOOM_ERR_NOMEM, "cell %s: out of memory", pr->name);
    loom_tensor out = LOOM_INVALID;
    if (!walk(c, pr, xs.d[xs.rank - 1], hs.d[hs.rank - 1], g, p, x, state, next, &out) && !loom_graph_failed(g))
        loom_graph_fail(g, LOOM_ERR_SHAPE, "line %d, column %d: %s", c->line, c->col, c->msg);
    free(c);
    return loom_graph_failed(g) ? LOOM_INVALID : out;
}

/* ---- compiling ---- */

loom_cell_def *loom_cell_compile(const char *text, const char *origin, loom_error *err)
{
    if (!text) return loom_error_set(err, LOOM_ERR_ARG, "cell: no text"), NULL;
    size_t len = strlen(text);
    if (len > MAX_TEXT) {
        loom_error_set(err, LOOM_ERR_ARG, "%s%sthe cell's text is %zu bytes (at most %d)", origin ? origin : "", origin ? ": " : "",
                       len, MAX_TEXT);
        return NULL;
    }
    program *pr = calloc(1, sizeof *pr);
    char *src = malloc(len + 1);
    if (!pr || !src) {
        free(pr), free(src);
        loom_error_set(err, LOOM_ERR_NOMEM, "cell: out of memory");
        return NULL;
    }
    memcpy(src, text, len + 1);
    pr->source = src;
    pr->output = -1;
    parser P = {.s = src, .line = 1, .col = 1, .origin = origin, .err = err, .pr = pr};
    add_sym(&P, "H", S_SIZE, 0, 0);
    pr->syms[add_sym(&P, "I", S_SIZE, 0, 0)].index = 1;
    P.next = lex(&P);
    advance(&P);
    bool ok = parse_header(&P);
    while (ok && P.tok.k != T_EOF) {
        while (P.tok.k == T_NL) advance(&P);
        if (P.tok.k == T_EOF) break;
        ok = parse_statement(&P);
    }
    ok = ok && !P.failed && resolve(&P);
    if (ok) { /* the shapes at sizes no cell has in mind, so that errors show now, with their line */
        walker *c = malloc(sizeof *c);
        if (!c) {
            ok = fail_at(&P, 1, 1, "out of memory");
        } else {
            bool shapes = walk(c, pr, 23, 37, NULL, NULL, LOOM_INVALID, NULL, NULL, NULL);
            loom_param_spec spec;
            for (int k = 0; shapes && k < pr->n_params; k++) shapes = param_spec(c, k, &spec);
            if (!shapes) ok = fail_at(&P, c->line, c->col, "%s (checked with H = 37, I = 23)", c->msg);
        }
        free(c);
    }
    if (!ok) {
        loom_cell_discard(&pr->def);
        return NULL;
    }
    pr->def = (loom_cell_def){pr->name, pr->n_states, eq_params, eq_step, pr};
    return &pr->def;
}

void loom_cell_discard(loom_cell_def *cell)
{
    if (!cell) return;
    program *pr = (program *)cell; /* def is the program's first member */
    free(pr->source);
    free(pr);
}

const char *loom_cell_source(const loom_cell_def *cell)
{
    return cell && cell->step == eq_step ? ((const program *)cell->user)->source : NULL;
}

int loom_cell_equations(const loom_cell_def *cell)
{
    return cell && cell->step == eq_step ? ((const program *)cell->user)->n_st : 0;
}

/* Statement k as written, from its first token to the end of its line (of
 * its last line when brackets span several), comments dropped, each run of
 * blanks one space. */
const char *loom_cell_equation(const loom_cell_def *cell, int k, char *buf, size_t n)
{
    if (k < 0 || k >= loom_cell_equations(cell) || !buf || !n) return NULL;
    const program *pr = cell->user;
    const char *p = pr->source;
    for (int line = 1; line < pr->st[k].line && *p; p++) line += *p == '\n';
    p += pr->st[k].col - 1;
    size_t at = 0;
    int depth = 0;
    bool blank = false;
    for (; *p && !(*p == '\n' && depth <= 0); p++) {
        if (*p == '#') {
            while (p[1] && p[1] != '\n') p++;
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            blank = true;
            continue;
        }
        depth += (*p == '(' || *p == '[') - (*p == ')' || *p == ']');
        if (blank && at && at + 1 < n) buf[at++] = ' ';
        blank = false;
        if (at + 1 < n) buf[at++] = *p;
    }
    buf[at] = 0;
    return buf;
}

const loom_cell_def *loom_cell_load(const char *path, loom_error *err)
{
    if (!path) return loom_error_set(err, LOOM_ERR_ARG, "cell: no file"), NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno)), NULL;
    char *text = malloc(MAX_TEXT + 2);
    size_t n = text ? fread(text, 1, MAX_TEXT + 1, f) : 0;
    bool read_err = ferror(f);
    fclose(f);
    if (!text) return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path), NULL;
    const loom_cell_def *c = NULL;
    if (read_err)
        loom_error_set(err, LOOM_ERR_IO, "%s: cannot read", path);
    else if (n > MAX_TEXT)
        loom_error_set(err, LOOM_ERR_ARG, "%s: longer than a cell may be (%d bytes)", path, MAX_TEXT);
    else if (memchr(text, 0, n))
        loom_error_set(err, LOOM_ERR_ARG, "%s: holds a NUL byte: not a cell's text", path);
    else
        text[n] = 0, c = loom_cell_parse(text, path, err);
    free(text);
    return c;
}

/* LOOM_CELL_PATH's folders, then the installed cells folder, then the
 * source tree's (a build used where it was built). */
#ifndef LOOM_CELLS_DIR
#define LOOM_CELLS_DIR ""
#endif
#ifndef LOOM_CELLS_SRC
#define LOOM_CELLS_SRC ""
#endif

const loom_cell_def *loom_cell_find(const char *name, loom_error *err)
{
    size_t len = name ? strlen(name) : 0;
    if (name && (strchr(name, '/') || (len > 5 && !strcmp(name + len - 5, ".cell")))) return loom_cell_load(name, err);
    const loom_cell_def *c = loom_cell_by_name(name);
    if (c || !name) return c ? c : (loom_error_set(err, LOOM_ERR_ARG, "cell: no name"), NULL);
    bool plain = *name && strlen(name) <= NAME_LEN;
    for (const char *p = name; plain && *p; p++) plain = isalnum((unsigned char)*p) || *p == '_';
    const char *env = getenv("LOOM_CELL_PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s%s%s:%s", env ? env : "", env && *env ? ":" : "", LOOM_CELLS_DIR, LOOM_CELLS_SRC);
    for (char *d = dirs, *end; plain && d; d = end ? end + 1 : NULL) {
        if ((end = strchr(d, ':'))) *end = 0;
        if (!*d) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.cell", d, name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fclose(f);
        return loom_cell_load(path, err);
    }
    loom_error_set(err, LOOM_ERR_ARG, "no cell '%s': none is registered by that name, and no %s.cell is in LOOM_CELL_PATH or %s",
                   name, name, *LOOM_CELLS_DIR ? LOOM_CELLS_DIR : "the cells folder");
    return NULL;
}

const loom_cell_def *loom_cell_parse(const char *text, const char *origin, loom_error *err)
{
    loom_cell_def *c = loom_cell_compile(text, origin, err);
    if (!c) return NULL;
    const loom_cell_def *known = loom_cell_by_name(c->name);
    if (known) {
        const char *src = loom_cell_source(known);
        if (src && !strcmp(src, ((program *)c)->source)) {
            loom_cell_discard(c);
            return known; /* the same equations again */
        }
        loom_error_set(err, LOOM_ERR_ARG, "%s%sa cell named '%s' is already known (%s); name this one differently",
                       origin ? origin : "", origin ? ": " : "", c->name, src ? "with other equations" : "a cell written in C");
        loom_cell_discard(c);
        return NULL;
    }
    loom_status s = loom_cell_register(c);
    if (s) {
        loom_error_set(err, s, "%s%scell '%s' cannot be registered: %d cells are known already", origin ? origin : "", origin ? ": " : "",
                       c->name, LOOM_MAX_CELLS);
        loom_cell_discard(c);
        return NULL;
    }
    return c;
}
