/* Parallel text for sequence to sequence (loom/data.h): tab-separated
 * pairs, d2l's preprocessing, a vocabulary per side, every sentence cut or
 * padded to num_steps with <eos>, valid lengths, a seeded train/held-out
 * split; bad lines are counted with their line numbers. */
#include "loom/data.h"

#include "data/read.h"
#include "loom/safetensors.h"
#include "graph/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_pairs {
    loom_pairs_opts o;
    loom_text *text[2];  /* per side: every sentence, one per line (the vocabulary) */
    int steps[2];        /* per side: the padded length */
    int32_t *ids[2];     /* per side: n × steps ids, padded */
    int32_t *len[2];     /* per side: valid lengths */
    int64_t n, n_train;
    int64_t *order;      /* pairs after the seeded shuffle: the first n_train train */
    int64_t *bad, n_bad;
    loom_error err;
};

#define pairs_err(p, ...) loom_error_set(&(p)->err, __VA_ARGS__)

size_t loom_d2l_preprocess(const char *in, size_t n, char *out, size_t size)
{
    size_t k = 0;
    char prev = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        size_t skip = 0;
        if ((unsigned char)c == 0xC2 && i + 1 < n && (unsigned char)in[i + 1] == 0xA0) skip = 1; /* U+00A0 */
        if ((unsigned char)c == 0xE2 && i + 2 < n && (unsigned char)in[i + 1] == 0x80 && (unsigned char)in[i + 2] == 0xAF)
            skip = 2; /* U+202F */
        if (skip) c = ' ', i += skip;
        if (c && strchr(",.!?", c) && k > 0 && prev != ' ') { /* a space before , . ! ? */
            if (k < size) out[k] = ' ';
            k++;
        }
        if (k < size) out[k] = c;
        k++;
        prev = c;
    }
    if (size) out[k < size ? k : size - 1] = 0;
    return k;
}

loom_pairs *loom_pairs_new(const loom_pairs_opts *o)
{
    loom_pairs *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->o = o ? *o : (loom_pairs_opts){0};
    if (p->o.num_steps <= 0) p->o.num_steps = 10;
    if (p->o.target_steps <= 0 || p->o.kind == LOOM_PAIRS_TAGGED) p->o.target_steps = p->o.num_steps;
    if (p->o.kind == LOOM_PAIRS_LABELLED) p->o.target_steps = 1;
    if (p->o.vocab[0]) p->o.chars = loom_vocab_kind(p->o.vocab[0]) == LOOM_TOKENS_CHAR;
    if (p->o.min_freq <= 0) p->o.min_freq = 1;
    return p;
}

static void clear(loom_pairs *p)
{
    for (int s = 0; s < 2; s++) loom_text_free(p->text[s]), free(p->ids[s]), free(p->len[s]);
    free(p->order), free(p->bad);
    loom_pairs_opts o = p->o;
    memset(p, 0, sizeof *p);
    p->o = o;
}

void loom_pairs_free(loom_pairs *p)
{
    if (p) clear(p);
    free(p);
}

const char *loom_pairs_error(const loom_pairs *p) { return p ? loom_error_msg(&p->err) : "out of memory"; }

/* A sentence and its newline. */
static bool put(loom_buf *b, const char *s, size_t n) { return loom_buf_put(b, s, n) && loom_buf_put(b, "\n", 1); }

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static int pad(const loom_vocab *v, const char *s, size_t n, int steps, int32_t *row);

/* Runs of non-blank bytes. */
static int64_t words(const char *s, size_t n)
{
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\r');
    return k;
}

/* s[0..*n) without blanks at either end. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\r')) s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\r')) (*n)--;
    return s;
}

/* One side's sentences (one per line of b) as padded ids and lengths. */
static loom_status encode_side(loom_pairs *p, int side, const loom_buf *b)
{
    loom_text_opts to = {.kind = p->o.chars ? LOOM_TOKENS_CHAR : LOOM_TOKENS_SPACE, .lower = true,
                         .min_freq = p->o.min_freq, .specials = true};
    if (side == 1 && p->o.kind != LOOM_PAIRS_TEXT) { /* labels and tags: every one kept, as written */
        to.lower = false, to.min_freq = 1;
        if (p->o.kind == LOOM_PAIRS_LABELLED) to.kind = LOOM_TOKENS_LINE, to.specials = false;
    }
    int T = p->steps[side];
    if (!(p->text[side] = loom_text_new(&to))) return LOOM_ERR_NOMEM;
    /* the vocabulary from the sentences; character tokens would count the
     * newlines between them as a token, so they read them joined */
    bool chars = to.kind == LOOM_TOKENS_CHAR;
    char *joined = chars ? malloc(b->n + 1) : NULL;
    size_t nj = 0;
    if (chars && !joined) return LOOM_ERR_NOMEM;
    for (size_t i = 0; joined && i < b->n; i++)
        if (b->s[i] != '\n') joined[nj++] = b->s[i];
    const loom_vocab *given = p->o.vocab[side];
    loom_status st = given ? loom_text_parse_with(p->text[side], joined ? joined : b->s, joined ? nj : b->n, given)
                           : loom_text_parse(p->text[side], joined ? joined : b->s, joined ? nj : b->n);
    free(joined);
    if (st) return pairs_err(p, st, "pairs: %s", loom_text_error(p->text[side]));
    const loom_vocab *v = loom_text_vocab(p->text[side]);
    p->ids[side] = malloc((size_t)p->n * (size_t)T * sizeof *p->ids[side] + 1);
    p->len[side] = malloc((size_t)p->n * sizeof *p->len[side] + 1);
    if (!p->ids[side] || !p->len[side]) return LOOM_ERR_NOMEM;
    size_t at = 0;
    for (int64_t i = 0; i < p->n; i++) {
        size_t end = at;
        while (b->s[end] != '\n') end++;
        p->len[side][i] = pad(v, b->s + at, end - at, T, p->ids[side] + i * T);
        if (p->len[side][i] < 0) return pairs_err(p, LOOM_ERR_FORMAT, "pairs: sentence %lld is not UTF-8 text", (long long)i + 1);
        at = end + 1;
    }
    return LOOM_OK;
}

/* Tokens of a preprocessed sentence, <eos>, cut to `steps` and padded with
 * <pad>; returns the valid length, or −1 for invalid UTF-8. */
static int pad(const loom_vocab *v, const char *s, size_t n, int steps, int32_t *row)
{
    int64_t got = loom_vocab_encode(v, s, n, row, steps);
    if (got < 0) return -1;
    int k = (int)(got < steps ? got : steps);
    if (k < steps) row[k++] = LOOM_EOS; /* d2l: the sentence and <eos>, cut to num_steps */
    int len = k;
    for (; k < steps; k++) row[k] = LOOM_PAD;
    return len;
}

int loom_pairs_encode(const loom_vocab *v, const char *utf8, size_t n, int steps, int32_t *ids)
{
    if (!v || steps < 1 || (!utf8 && n)) return -1;
    if (loom_vocab_kind(v) == LOOM_TOKENS_CHAR) return pad(v, utf8, n, steps, ids);
    size_t m = loom_d2l_preprocess(utf8, n, NULL, 0);
    char *s = malloc(m + 1);
    if (!s) return -2;
    loom_d2l_preprocess(utf8, n, s, m + 1);
    int len = pad(v, s, m, steps, ids);
    free(s);
    return len;
}

loom_status loom_pairs_parse(loom_pairs *p, const char *utf8, size_t n)
{
    if (!p || (!utf8 && n) || p->o.kind < LOOM_PAIRS_TEXT || p->o.kind > LOOM_PAIRS_TAGGED) return LOOM_ERR_ARG;
    clear(p);
    if (p->o.kind == LOOM_PAIRS_TAGGED && p->o.chars)
        return pairs_err(p, LOOM_ERR_ARG, "pairs: tagged lines are words, one tag each (not characters)");
    p->steps[0] = p->o.num_steps, p->steps[1] = p->o.target_steps;
    loom_buf side[2] = {{0}, {0}};
    char *norm = NULL;
    size_t norm_cap = 0;
    int64_t bad_cap = 0, line = 0;
    loom_status st = LOOM_OK;
    for (size_t a = 0; a < n && !st; line++) {
        size_t e = a;
        while (e < n && utf8[e] != '\n') e++;
        size_t next = e + 1, tab = a;
        if (e > a && utf8[e - 1] == '\r') e--;
        while (tab < e && utf8[tab] != '\t') tab++;
        size_t t2 = tab + 1;
        while (t2 < e && utf8[t2] != '\t') t2++; /* later columns (an attribution) are not read */
        bool tagged = p->o.kind == LOOM_PAIRS_TAGGED;
        if (tab >= e || blank(utf8 + a, tab - a) || blank(utf8 + tab + 1, t2 - tab - 1) ||
            (tagged && words(utf8 + a, tab - a) != words(utf8 + tab + 1, t2 - tab - 1))) {
            if (p->n_bad == bad_cap) {
                int64_t *nb = realloc(p->bad, (size_t)(bad_cap = 2 * bad_cap + 16) * sizeof *nb);
                if (!nb) st = LOOM_ERR_NOMEM;
                else p->bad = nb;
            }
            if (!st) p->bad[p->n_bad++] = line + 1;
            a = next;
            continue;
        }
        const char *part[2] = {utf8 + a, utf8 + tab + 1};
        size_t plen[2] = {tab - a, t2 - tab - 1};
        if (p->o.kind == LOOM_PAIRS_LABELLED) { /* label TAB text: the text is side 0 */
            part[1] = utf8 + a, plen[1] = tab - a, part[0] = utf8 + tab + 1, plen[0] = t2 - tab - 1;
            part[1] = trim(part[1], &plen[1]);
        }
        for (int s = 0; s < 2 && !st; s++) { /* each sentence whole UTF-8 text: a sequence cut by a newline is not */
            int64_t badc = loom_utf8_check(part[s], plen[s]);
            if (badc >= 0)
                st = pairs_err(p, LOOM_ERR_FORMAT, "pairs: line %lld: %s at byte %lld of the line (byte %lld of the text)",
                               (long long)line + 1, part[s][badc] ? "invalid UTF-8" : "a NUL byte",
                               (long long)(part[s] - (utf8 + a) + badc + 1), (long long)(part[s] - utf8 + badc + 1));
        }
        for (int s = 0; s < 2 && !st; s++) {
            if (2 * plen[s] + 1 > norm_cap) {
                char *nn = realloc(norm, norm_cap = 2 * plen[s] + 1);
                if (!nn) st = LOOM_ERR_NOMEM;
                else norm = nn;
            }
            if (!st) {
                bool as_is = p->o.chars || tagged || (s == 1 && p->o.kind == LOOM_PAIRS_LABELLED);
                size_t m = as_is ? (memcpy(norm, part[s], plen[s]), plen[s]) : loom_d2l_preprocess(part[s], plen[s], norm, norm_cap);
                if (!put(&side[s], norm, m)) st = LOOM_ERR_NOMEM;
            }
        }
        if (!st) p->n++;
        a = next;
    }
    free(norm);
    static const char *const what[] = {"pair of source TAB target", "line of label TAB text", "line of tokens TAB as many tags"};
    if (!st && !p->n) st = pairs_err(p, LOOM_ERR_VALUE, "pairs: no %s in %lld lines", what[p->o.kind], (long long)line);
    for (int s = 0; s < 2 && !st; s++) st = encode_side(p, s, &side[s]);
    free(side[0].s), free(side[1].s);
    if (!st && !(p->order = malloc((size_t)p->n * sizeof *p->order))) st = LOOM_ERR_NOMEM;
    if (st) {
        if (st == LOOM_ERR_NOMEM) pairs_err(p, st, "pairs: out of memory");
        return p->err.status ? p->err.status : st;
    }
    /* a seeded shuffle (Fisher–Yates, splitmix64), then the held-out share */
    uint64_t z = p->o.seed;
    for (int64_t i = 0; i < p->n; i++) p->order[i] = i;
    for (int64_t i = p->o.keep_order ? 0 : p->n - 1; i > 0; i--) {
        int64_t j = (int64_t)loom_below(&z, (uint64_t)(i + 1)), t = p->order[i];
        p->order[i] = p->order[j], p->order[j] = t;
    }
    double f = p->o.valid_frac < 0 ? 0 : p->o.valid_frac > 1 ? 1 : p->o.valid_frac;
    p->n_train = p->n - (int64_t)(f * (double)p->n + 0.5);
    return LOOM_OK;
}

loom_status loom_pairs_read(loom_pairs *p, const char *path)
{
    if (!p || !path) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    size_t len;
    char *buf = loom_read_all(path, &len, &p->err);
    if (!buf) return p->err.status;
    loom_status st = loom_pairs_parse(p, buf, len);
    free(buf);
    return st;
}

int64_t loom_pairs_count(const loom_pairs *p, bool valid) { return !p ? 0 : valid ? p->n - p->n_train : p->n_train; }
int loom_pairs_steps(const loom_pairs *p, int side) { return p && (side == 0 || side == 1) ? p->steps[side] : 0; }
const loom_vocab *loom_pairs_vocab(const loom_pairs *p, int side)
{
    return p && (side == 0 || side == 1) ? loom_text_vocab(p->text[side]) : NULL;
}
int64_t loom_pairs_bad_lines(const loom_pairs *p, const int64_t **lines)
{
    if (lines) *lines = p ? p->bad : NULL;
    return p ? p->n_bad : 0;
}

bool loom_pairs_get(const loom_pairs *p, bool valid, int64_t i, int32_t *src, int32_t *src_len, int32_t *tgt,
                    int32_t *tgt_len)
{
    if (!p || i < 0 || i >= loom_pairs_count(p, valid)) return false;
    int64_t k = p->order[valid ? p->n_train + i : i];
    int32_t *out[2] = {src, tgt}, *len[2] = {src_len, tgt_len};
    for (int s = 0; s < 2; s++) {
        int64_t T = p->steps[s];
        if (out[s]) memcpy(out[s], p->ids[s] + k * T, (size_t)T * sizeof *out[s]);
        if (len[s]) *len[s] = p->len[s][k];
    }
    return true;
}

/* ---- minibatches ---- */

struct loom_pair_batches {
    const loom_pairs *p;
    int B;
    int first, columns; /* this rank's rows of each batch (loom_pair_batches_shard) */
    double teacher_forcing;
    loom_pair_batch batch;
    int64_t *order, pos, *idx;
    int32_t *row_s, *row_t; /* one pair, read before it is laid out time-major */
    uint64_t rng;
};

void loom_pair_batches_free(loom_pair_batches *b)
{
    if (!b) return;
    loom_pair_batch *x = &b->batch;
    free(x->src), free(x->src_len), free(x->dec_in), free(x->tgt), free(x->tgt_len), free(x->gold);
    free(b->order), free(b->idx), free(b->row_s), free(b->row_t), free(b);
}

loom_pair_batches *loom_pair_batches_new(const loom_pairs *p, int batch, double teacher_forcing, uint64_t seed)
{
    int64_t n = p ? loom_pairs_count(p, false) : 0;
    if (!p || batch < 1 || n < 1) return NULL;
    loom_pair_batches *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    size_t B = (size_t)batch, Ts = (size_t)p->steps[0], Tt = (size_t)p->steps[1];
    b->p = p, b->B = batch, b->teacher_forcing = teacher_forcing, b->columns = batch;
    loom_pair_batch *x = &b->batch;
    x->src = malloc(Ts * B * sizeof *x->src), x->src_len = malloc(B * sizeof *x->src_len);
    x->dec_in = malloc(Tt * B * sizeof *x->dec_in), x->tgt = malloc(Tt * B * sizeof *x->tgt);
    x->tgt_len = malloc(B * sizeof *x->tgt_len);
    x->gold = teacher_forcing < 1 ? malloc(Tt * B * sizeof *x->gold) : NULL;
    b->order = malloc((size_t)n * sizeof *b->order), b->idx = malloc(B * sizeof *b->idx);
    b->row_s = malloc(Ts * sizeof *b->row_s), b->row_t = malloc(Tt * sizeof *b->row_t);
    if (!x->src || !x->src_len || !x->dec_in || !x->tgt || !x->tgt_len || (teacher_forcing < 1 && !x->gold) || !b->order ||
        !b->idx || !b->row_s || !b->row_t) {
        loom_pair_batches_free(b);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) b->order[i] = i;
    b->rng = seed * 0x2545F4914F6CDD1Dull + 1;
    return b;
}

const loom_pair_batch *loom_pair_batches_buffers(const loom_pair_batches *b) { return b ? &b->batch : NULL; }

/* Rows idx[from .. from + columns) of a part into the buffers' columns
 * (a rank's of the batch: the gold draws of the other rows are made and
 * dropped, so that every rank draws what one process draws); gold drawn
 * for training rows. */
static void fill(loom_pair_batches *b, const loom_pairs *p, bool valid, bool training, int from, int rows)
{
    loom_pair_batch *x = &b->batch;
    int B = b->columns, Ts = b->p->steps[0], Tt = b->p->steps[1];
    int32_t *s = b->row_s, *t = b->row_t;
    for (int r = 0; r < rows; r++) {
        int k = r - from; /* the column, when this rank's */
        if (k < 0 || k >= B) {
            for (int j = 0; j < Tt && x->gold && training; j++) loom_uniform(&b->rng);
            continue;
        }
        loom_pairs_get(p, valid, b->idx[r], s, &x->src_len[k], t, &x->tgt_len[k]);
        for (int j = 0; j < Ts; j++) x->src[j * B + k] = s[j];
        for (int j = 0; j < Tt; j++) {
            x->tgt[j * B + k] = t[j];
            x->dec_in[j * B + k] = j ? t[j - 1] : LOOM_BOS;
            if (x->gold) x->gold[j * B + k] = !training || loom_uniform(&b->rng) < b->teacher_forcing;
        }
    }
}

void loom_pair_batches_next(loom_pair_batches *b)
{
    int64_t n = loom_pairs_count(b->p, false);
    for (int k = 0; k < b->B; k++) {
        if (b->pos % n == 0) /* a new epoch */
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)(loom_splitmix(&b->rng) % (uint64_t)(i + 1)), x = b->order[i];
                b->order[i] = b->order[j], b->order[j] = x;
            }
        b->idx[k] = b->order[b->pos++ % n];
    }
    fill(b, b->p, false, true, b->first, b->B);
}

void loom_pair_batches_rows(loom_pair_batches *b, const loom_pairs *held, bool valid, int64_t first)
{
    int64_t n = loom_pairs_count(held, valid);
    if (n < 1) return; /* an empty part: nothing to lay out */
    for (int k = 0; k < b->columns; k++) b->idx[k] = (first + k) % n;
    fill(b, held, valid, false, 0, b->columns);
}

bool loom_pair_batches_shard(loom_pair_batches *b, int rank, int ranks)
{
    if (!b || ranks < 1 || rank < 0 || rank >= ranks || b->B % ranks) return false;
    b->columns = b->B / ranks, b->first = rank * b->columns;
    return true;
}

int loom_pair_batches_columns(const loom_pair_batches *b) { return b ? b->columns : 0; }

int64_t loom_pair_batches_tokens(const loom_pair_batches *b, int side)
{
    const int32_t *len = side ? b->batch.tgt_len : b->batch.src_len;
    int steps = b->p->steps[side ? 1 : 0];
    int64_t n = 0;
    for (int k = 0; k < b->columns; k++) n += len[k] < steps ? len[k] : steps;
    return n;
}

bool loom_pair_batches_save(const loom_pair_batches *b, loom_st *f)
{
    int64_t n = loom_pairs_count(b->p, false);
    int32_t *order = malloc((size_t)n * sizeof *order);
    char rng[32];
    snprintf(rng, sizeof rng, "%016llx", (unsigned long long)b->rng);
    for (int64_t i = 0; order && i < n; i++) order[i] = (int32_t)b->order[i];
    bool ok = order && !loom_st_set_meta(f, "loom.rng", rng) && !loom_st_set_meta_int(f, "loom.pos", b->pos) &&
              !loom_st_add(f, "data.order", LOOM_I32, loom_shape1((int32_t)n), order);
    free(order);
    return ok;
}

bool loom_pair_batches_restore(loom_pair_batches *b, const loom_st *f)
{
    int64_t n = loom_pairs_count(b->p, false), pos;
    const loom_st_tensor *order = loom_st_get(f, "data.order");
    uint64_t rng;
    if (!order || order->dtype != LOOM_I32 || loom_shape_numel(order->shape) != n || !loom_st_meta_hex(f, "loom.rng", &rng) ||
        !loom_st_meta_int(f, "loom.pos", 0, INT64_MAX / 2, &pos))
        return false;
    const int32_t *o = order->data;
    bool *seen = calloc((size_t)n, sizeof *seen), ok = seen != NULL;
    for (int64_t i = 0; ok && i < n; i++) { /* a permutation of 0..n−1 */
        ok = o[i] >= 0 && o[i] < n && !seen[o[i]];
        if (ok) seen[o[i]] = true;
    }
    free(seen);
    if (!ok) return false;
    for (int64_t i = 0; i < n; i++) b->order[i] = o[i];
    b->rng = rng, b->pos = pos;
    return true;
}
