/* The graph arena: nodes, input pool, string pool, stored data, sticky error,
 * hash-consing of pure nodes (xxh3 of op, inputs and attributes). */
#include "graph/error.h"
#include "graph/walk.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

_Static_assert(sizeof(loom_attrs) == 56, "loom_attrs must have no padding");

struct loom_graph {
    loom_node *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *inputs;          /* input pool: node i's inputs are inputs[in_off .. in_off+n_in) */
    int32_t n_inputs, cap_inputs;
    char *strings;            /* names, NUL-separated */
    int32_t n_strings, cap_strings;
    void **stored;            /* constant data blocks */
    int32_t n_stored, cap_stored;
    /* open-addressing table of pure nodes: slot -> (key, node id + 1; 0: empty),
     * key and id side by side so that a probe touches one cache line */
    struct slot {
        uint64_t key;
        int32_t id;
    } *table;
    uint32_t table_cap;       /* power of two */
    int32_t table_count;
    /* names of inputs and parameters: slot -> node id + 1 (0: empty), open
     * addressing by xxh3 of the name; lookups check the node's current name */
    int32_t *names;
    uint32_t names_cap, names_count;
    int32_t *grad_of;         /* per node: its gradient's id (0: none); cap_grad entries */
    int32_t cap_grad;
    char context[256];        /* prefix of error messages (empty: none) */
    int32_t labels[256];      /* label id -> offset of its text in the string pool */
    int n_labels;
    loom_tags tags;
    loom_error err;
};

const char *loom_status_str(loom_status s)
{
    switch (s) {
    case LOOM_OK: return "ok";
    case LOOM_ERR_SHAPE: return "shape error";
    case LOOM_ERR_ARG: return "bad argument";
    case LOOM_ERR_STATE: return "bad state";
    case LOOM_ERR_VALUE: return "bad value";
    case LOOM_ERR_NOMEM: return "out of memory";
    case LOOM_ERR_IO: return "i/o error";
    case LOOM_ERR_FORMAT: return "malformed file";
    case LOOM_ERR_TYPE: return "type error";
    }
    return "unknown error";
}

int64_t loom_shape_numel(loom_shape s)
{
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++) n *= s.d[i];
    return n;
}

bool loom_shape_eq(loom_shape a, loom_shape b)
{
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; i++)
        if (a.d[i] != b.d[i]) return false;
    return true;
}

char *loom_shape_str(loom_shape s, char *buf, size_t n)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < s.rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%d" : "%d", s.d[i]);
    if (k < n) snprintf(buf + k, n - k, s.rank == 1 ? ",)" : ")");
    return buf;
}

loom_graph *loom_graph_new(void)
{
    loom_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->tags = LOOM_TAGS_NONE;
    return g;
}

void loom_graph_free(loom_graph *g)
{
    if (!g) return;
    for (int32_t i = 0; i < g->n_stored; i++) free(g->stored[i]);
    free(g->stored);
    free(g->nodes);
    free(g->inputs);
    free(g->strings);
    free(g->table);
    free(g->names);
    free(g->grad_of);
    free(g);
}

bool loom_graph_failed(const loom_graph *g) { return !g || g->err.status != LOOM_OK; }
loom_status loom_graph_status(const loom_graph *g) { return g ? g->err.status : LOOM_ERR_ARG; }
const char *loom_graph_error(const loom_graph *g) { return g ? loom_error_msg(&g->err) : "no graph"; }

loom_tensor loom_graph_fail(loom_graph *g, loom_status s, const char *fmt, ...)
{
    if (g && !g->err.status) {
        char msg[sizeof g->err.msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (g->context[0]) loom_error_set(&g->err, s, "%s: %s", g->context, msg);
        else loom_error_set(&g->err, s, "%s", msg);
    }
    return LOOM_INVALID;
}

void loom_graph_set_context(loom_graph *g, const char *context)
{
    if (g) snprintf(g->context, sizeof g->context, "%s", context ? context : "");
}

int loom_graph_params(const loom_graph *g, loom_tensor *out, int max)
{
    int n = 0;
    for (int32_t i = 0; g && i < g->n_nodes; i++)
        if (g->nodes[i].tags.role == LOOM_ROLE_PARAM && g->nodes[i].n_in == 0) {
            if (out && n < max) out[n] = loom_at(i);
            n++;
        }
    return n;
}

loom_tensor loom_grad(const loom_graph *g, loom_tensor x)
{
    if (!loom_graph_has(g, x) || x.id > g->cap_grad || !g->grad_of[x.id - 1]) return LOOM_INVALID;
    return (loom_tensor){g->grad_of[x.id - 1]};
}

void loom_graph_set_grad(loom_graph *g, loom_tensor x, loom_tensor gx)
{
    if (!loom_graph_has(g, x) || !loom_graph_has(g, gx)) return;
    if (x.id > g->cap_grad) {
        int32_t cap = g->cap_nodes > x.id ? g->cap_nodes : x.id;
        int32_t *t = realloc(g->grad_of, (size_t)cap * sizeof *t);
        if (!t) {
            loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory recording a gradient");
            return;
        }
        memset(t + g->cap_grad, 0, (size_t)(cap - g->cap_grad) * sizeof *t);
        g->grad_of = t, g->cap_grad = cap;
    }
    g->grad_of[x.id - 1] = gx.id;
}

/* Grows *buf (elements of size `sz`) to hold at least `need`; false on OOM. */
static bool grow(void **buf, int32_t *cap, int64_t need, size_t sz)
{
    if (need <= *cap) return true;
    if (need > INT32_MAX / 2) return false;
    int32_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*buf, (size_t)nc * sz);
    if (!p) return false;
    *buf = p;
    *cap = nc;
    return true;
}

int32_t loom_graph_size(const loom_graph *g) { return g ? g->n_nodes : 0; }

bool loom_graph_has(const loom_graph *g, loom_tensor t) { return g && t.id >= 1 && t.id <= g->n_nodes; }

loom_walk loom_graph_walk(const loom_graph *g) { return (loom_walk){g->nodes, g->inputs}; }

const loom_node *loom_graph_node(const loom_graph *g, loom_tensor t)
{
    return loom_graph_has(g, t) ? &g->nodes[t.id - 1] : NULL;
}

loom_tensor loom_node_input(const loom_graph *g, loom_tensor t, int i)
{
    const loom_node *n = loom_graph_node(g, t);
    if (!n || i < 0 || i >= n->n_in) return LOOM_INVALID;
    return (loom_tensor){g->inputs[n->in_off + i]};
}

loom_shape loom_tensor_shape(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return n ? n->shape : loom_shape0();
}

loom_dtype loom_tensor_dtype(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return n ? (loom_dtype)n->dtype : LOOM_F32;
}

int64_t loom_tensor_numel(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return n ? loom_shape_numel(n->shape) : 0;
}

const char *loom_tensor_name(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return n && n->name >= 0 ? g->strings + n->name : NULL;
}

static bool is_named_source(const loom_graph *g, int32_t i)
{
    const loom_node *n = &g->nodes[i];
    return (n->tags.role == LOOM_ROLE_INPUT || n->tags.role == LOOM_ROLE_PARAM) && n->name >= 0;
}

static uint32_t name_slot(const char *name, uint32_t cap) { return (uint32_t)XXH3_64bits(name, strlen(name)) & (cap - 1); }

static void names_put(loom_graph *g, int32_t i)
{
    uint32_t s = name_slot(g->strings + g->nodes[i].name, g->names_cap);
    while (g->names[s]) s = (s + 1) & (g->names_cap - 1);
    g->names[s] = i + 1;
    g->names_count++;
}

/* Indexes input or parameter i under its (new) name; false when out of memory. */
static bool names_add(loom_graph *g, int32_t i)
{
    if ((g->names_count + 1) * 2 > g->names_cap) {
        uint32_t cap = g->names_cap ? g->names_cap * 2 : 64;
        int32_t *t = calloc(cap, sizeof *t), *old = g->names;
        if (!t) return false;
        uint32_t old_cap = g->names_cap;
        g->names = t, g->names_cap = cap, g->names_count = 0;
        for (uint32_t k = 0; k < old_cap; k++)
            if (old[k] && is_named_source(g, old[k] - 1)) names_put(g, old[k] - 1);
        free(old);
    }
    names_put(g, i);
    return true;
}

loom_tensor loom_tensor_set_name(loom_graph *g, loom_tensor t, const char *name)
{
    if (!loom_graph_has(g, t) || !name) return t;
    /* inputs and parameters are found by name (binding, loading weights,
     * loom_graph_find): a name another one has is refused, naming both */
    const loom_node *n = &g->nodes[t.id - 1];
    if (n->tags.role == LOOM_ROLE_INPUT || n->tags.role == LOOM_ROLE_PARAM) {
        loom_tensor other = loom_graph_find(g, name);
        if (loom_valid(other) && other.id != t.id) {
            const loom_node *o = &g->nodes[other.id - 1];
            char a[64], b[64];
            return loom_graph_fail(g, LOOM_ERR_ARG,
                                   "%s '%s' %s: the name is taken by the %s '%s' %s; names of inputs and parameters "
                                   "must be unique (give one a prefix, as loom_rnn_opts.prefix does)",
                                   n->tags.role == LOOM_ROLE_PARAM ? "parameter" : "input", name,
                                   loom_shape_str(n->shape, a, sizeof a),
                                   o->tags.role == LOOM_ROLE_PARAM ? "parameter" : "input", name,
                                   loom_shape_str(o->shape, b, sizeof b));
        }
    }
    size_t len = strlen(name) + 1;
    if (!grow((void **)&g->strings, &g->cap_strings,
              (int64_t)g->n_strings + (int64_t)len, 1))
        return loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory naming a node");
    memcpy(g->strings + g->n_strings, name, len);
    g->nodes[t.id - 1].name = g->n_strings;
    g->n_strings += (int32_t)len;
    if (is_named_source(g, t.id - 1) && !names_add(g, t.id - 1))
        return loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory naming a node");
    return t;
}

loom_tensor loom_graph_find(const loom_graph *g, const char *name)
{
    if (!g || !name || !g->names_cap) return LOOM_INVALID;
    int32_t best = -1; /* the first node of that name: the smallest id on the probe chain */
    for (uint32_t s = name_slot(name, g->names_cap); g->names[s]; s = (s + 1) & (g->names_cap - 1)) {
        int32_t i = g->names[s] - 1;
        if (is_named_source(g, i) && !strcmp(g->strings + g->nodes[i].name, name) && (best < 0 || i < best)) best = i;
    }
    return best >= 0 ? loom_at(best) : LOOM_INVALID;
}

char *loom_tensor_str(const loom_graph *g, loom_tensor t, char *buf, size_t n)
{
    char sh[64];
    const loom_node *nd = loom_graph_node(g, t);
    if (!nd) {
        snprintf(buf, n, "<invalid tensor %d>", t.id);
        return buf;
    }
    const char *name = loom_tensor_name(g, t);
    loom_shape_str(nd->shape, sh, sizeof sh);
    if (name)
        snprintf(buf, n, "'%s' %s%s", name, sh, nd->dtype == LOOM_I32 ? " i32" : "");
    else
        snprintf(buf, n, "#%d %s%s", loom_index(t), sh, nd->dtype == LOOM_I32 ? " i32" : "");
    return buf;
}

uint8_t loom_graph_label(loom_graph *g, const char *text)
{
    if (!g || !text) return 0;
    for (int k = 1; k <= g->n_labels; k++)
        if (!strcmp(g->strings + g->labels[k], text)) return (uint8_t)k;
    size_t len = strlen(text) + 1;
    if (g->n_labels == 255 || !grow((void **)&g->strings, &g->cap_strings, (int64_t)g->n_strings + (int64_t)len, 1))
        return 0;
    memcpy(g->strings + g->n_strings, text, len);
    g->labels[++g->n_labels] = g->n_strings;
    g->n_strings += (int32_t)len;
    return (uint8_t)g->n_labels;
}

const char *loom_graph_label_text(const loom_graph *g, int id)
{
    return g && id >= 1 && id <= g->n_labels ? g->strings + g->labels[id] : NULL;
}

loom_tags loom_graph_set_tags(loom_graph *g, loom_tags tags)
{
    loom_tags old = g->tags;
    g->tags = tags;
    return old;
}

loom_tags loom_graph_tags(const loom_graph *g) { return g->tags; }

loom_tensor loom_tensor_set_tags(loom_graph *g, loom_tensor t, loom_tags tags)
{
    if (loom_graph_has(g, t)) g->nodes[t.id - 1].tags = tags;
    return t;
}

/* ---- hash-consing ---- */

static uint64_t node_key(int op, const loom_tensor *in, int n_in, const loom_attrs *attr)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    int32_t head[2] = {op, n_in};
    XXH3_64bits_update(&st, head, sizeof head);
    for (int i = 0; i < n_in; i++) XXH3_64bits_update(&st, &in[i].id, sizeof in[i].id);
    XXH3_64bits_update(&st, attr, sizeof *attr);
    return XXH3_64bits_digest(&st);
}

/* The input pool holds handle ids (index + 1). */
static bool same_node(const loom_graph *g, int32_t id, int op, const loom_tensor *in, int n_in,
                      const loom_attrs *attr)
{
    const loom_node *n = &g->nodes[id];
    if (n->op != op || n->n_in != n_in || !n->pure) return false;
    for (int i = 0; i < n_in; i++)
        if (g->inputs[n->in_off + i] != in[i].id) return false;
    return memcmp(&n->attr, attr, sizeof *attr) == 0;
}

static bool table_insert(loom_graph *g, uint64_t key, int32_t id);

static bool table_grow(loom_graph *g)
{
    uint32_t old_cap = g->table_cap;
    struct slot *old = g->table;
    uint32_t cap = old_cap ? old_cap * 2 : 256;
    g->table = calloc(cap, sizeof *g->table);
    if (!g->table) {
        g->table = old;
        return false;
    }
    g->table_cap = cap;
    g->table_count = 0;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].id) table_insert(g, old[i].key, old[i].id - 1);
    free(old);
    return true;
}

static bool table_insert(loom_graph *g, uint64_t key, int32_t id)
{
    if ((uint32_t)(g->table_count + 1) * 2 > g->table_cap && !table_grow(g)) return false;
    uint32_t mask = g->table_cap - 1;
    for (uint32_t s = (uint32_t)key & mask;; s = (s + 1) & mask) {
        if (!g->table[s].id) {
            g->table[s] = (struct slot){key, id + 1};
            g->table_count++;
            return true;
        }
    }
}

static int32_t table_find(const loom_graph *g, uint64_t key, int op, const loom_tensor *in, int n_in,
                          const loom_attrs *attr)
{
    if (!g->table_cap) return -1;
    uint32_t mask = g->table_cap - 1;
    for (uint32_t s = (uint32_t)key & mask; g->table[s].id; s = (s + 1) & mask)
        if (g->table[s].key == key && same_node(g, g->table[s].id - 1, op, in, n_in, attr))
            return g->table[s].id - 1;
    return -1;
}

loom_tensor loom_graph_add_node(loom_graph *g, int op, const loom_tensor *in, int n_in,
                                const loom_attrs *attr, loom_shape shape, loom_dtype dt,
                                bool pure, loom_role role)
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    uint64_t key = 0;
    if (pure) {
        key = node_key(op, in, n_in, attr);
        int32_t found = table_find(g, key, op, in, n_in, attr);
        if (found >= 0) {
            /* built again in another step (a slice of a weight that every
             * step takes): shared by the steps, it belongs to none of them */
            loom_tags *t = &g->nodes[found].tags;
            if (t->step >= 0 && t->step != g->tags.step && t->role == g->tags.role) t->step = -1;
            return loom_at(found);
        }
    }
    if (!grow((void **)&g->nodes, &g->cap_nodes, (int64_t)g->n_nodes + 1, sizeof *g->nodes) ||
        !grow((void **)&g->inputs, &g->cap_inputs, (int64_t)g->n_inputs + n_in, sizeof *g->inputs))
        return loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory adding node %d", g->n_nodes);
    int32_t id = g->n_nodes;
    loom_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = (uint16_t)op;
    n->dtype = (uint8_t)dt;
    n->pure = pure;
    n->n_in = n_in;
    n->in_off = g->n_inputs;
    n->name = -1;
    n->shape = shape;
    n->attr = *attr;
    n->tags = g->tags;
    n->tags.state = 0; /* marked on the node by whoever makes it a carried state */
    if (role != LOOM_ROLE_FORWARD || n->tags.role != LOOM_ROLE_BACKWARD) n->tags.role = (uint8_t)role;
    n->invariant = n_in == 0 ? role == LOOM_ROLE_PARAM || role == LOOM_ROLE_CONST : 1;
    for (int i = 0; i < n_in; i++) {
        n->invariant = n->invariant && g->nodes[in[i].id - 1].invariant;
        g->inputs[g->n_inputs++] = in[i].id;
    }
    g->n_nodes++;
    if (pure && !table_insert(g, key, id))
        return loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory in the node table");
    return loom_at(id);
}

int32_t loom_graph_store(loom_graph *g, const void *data, size_t bytes)
{
    if (!grow((void **)&g->stored, &g->cap_stored, (int64_t)g->n_stored + 1, sizeof *g->stored)) return -1;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return -1;
    if (bytes) memcpy(p, data, bytes);
    g->stored[g->n_stored] = p;
    return g->n_stored++;
}

const void *loom_graph_stored(const loom_graph *g, int32_t index)
{
    return index >= 0 && index < g->n_stored ? g->stored[index] : NULL;
}

uint64_t loom_graph_fingerprint(const loom_graph *g)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const loom_node *n = &g->nodes[i];
        int32_t head[4] = {n->op, n->dtype, n->n_in, n->pure};
        XXH3_64bits_update(&st, head, sizeof head);
        XXH3_64bits_update(&st, g->inputs + n->in_off, (size_t)n->n_in * sizeof(int32_t));
        XXH3_64bits_update(&st, &n->attr, sizeof n->attr);
        XXH3_64bits_update(&st, &n->shape, sizeof n->shape);
        if ((n->tags.role == LOOM_ROLE_INPUT || n->tags.role == LOOM_ROLE_PARAM) && n->name >= 0)
            XXH3_64bits_update(&st, g->strings + n->name, strlen(g->strings + n->name));
    }
    return XXH3_64bits_digest(&st);
}
