/* Text → tokens → ids: strict UTF-8 decoding, character and word
 * tokenisers, vocabularies ordered by frequency (see loom/data.h). */
#define _GNU_SOURCE /* newlocale, towlower_l, qsort_r */
#include "loom/data.h"
#include "graph/error.h"
#include "data/read.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <string.h>
#include <wctype.h>
#include <xxhash.h>

struct loom_vocab {
    loom_text_opts opts;  /* how its text was tokenised (kind, lower, letters_only, specials) */
    char **tok;           /* id → UTF-8 text */
    int64_t *count;       /* id → occurrences */
    int n, cap;
    int32_t *index;       /* open addressing by xxh3 of the text: slot → id + 1 */
    uint32_t index_cap;
};

struct loom_text {
    loom_text_opts opts;
    loom_vocab *own;          /* the vocabulary built from this text */
    const loom_vocab *vocab;  /* own, or one given */
    int32_t *ids;
    int64_t n, cap;
    loom_error err;
};

/* ---- Unicode: decoding and character classes ---- */

/* One code point from s[0..n); its length in *len, or -1 when the bytes are
 * not UTF-8 (overlong forms, surrogates and values past U+10FFFF are not). */
static int32_t utf8_next(const unsigned char *s, size_t n, int *len)
{
    unsigned char c = s[0];
    int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || (size_t)k > n) return -1;
    int32_t cp = k == 1 ? c : k == 2 ? c & 0x1f : k == 3 ? c & 0x0f : c & 0x07;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const int32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *len = k;
    return cp;
}

int64_t loom_utf8_check(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int len;
        if (!s[i] || utf8_next((const unsigned char *)s + i, n - i, &len) < 0) return (int64_t)i;
        i += (size_t)len;
    }
    return -1;
}

static int utf8_put(int32_t cp, char *out)
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
               out[2] = (char)(0x80 | (cp & 0x3f)), 3;
    return out[0] = (char)(0xf0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
           out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* Character classes and case from the C.UTF-8 locale, whatever locale the
 * program has set (a library must not depend on setlocale). */
static locale_t utf8_locale;
static pthread_once_t locale_once = PTHREAD_ONCE_INIT;
static void locale_start(void) { utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

static int32_t lower(int32_t cp)
{
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    pthread_once(&locale_once, locale_start);
    return utf8_locale ? (int32_t)towlower_l((wint_t)cp, utf8_locale) : cp;
}

static bool is_space(int32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
    pthread_once(&locale_once, locale_start);
    return utf8_locale && iswspace_l((wint_t)cp, utf8_locale);
}

static bool is_punct(int32_t cp)
{
    if (cp < 0x80) return cp > ' ' && cp < 0x7f && !(cp >= '0' && cp <= '9') && !((cp | 32) >= 'a' && (cp | 32) <= 'z');
    pthread_once(&locale_once, locale_start);
    return utf8_locale && iswpunct_l((wint_t)cp, utf8_locale);
}

static bool ascii_letter(int32_t cp) { return (cp | 32) >= 'a' && (cp | 32) <= 'z'; }

/* ---- vocabulary ---- */

static uint32_t slot_of(const char *s, uint32_t cap) { return (uint32_t)XXH3_64bits(s, strlen(s)) & (cap - 1); }

static int32_t vocab_find(const loom_vocab *v, const char *tok)
{
    if (!v->index_cap) return -1;
    for (uint32_t s = slot_of(tok, v->index_cap);; s = (s + 1) & (v->index_cap - 1)) {
        int32_t k = v->index[s];
        if (!k) return -1;
        if (!strcmp(v->tok[k - 1], tok)) return k - 1;
    }
}

static bool vocab_reindex(loom_vocab *v, uint32_t cap)
{
    int32_t *t = calloc(cap, sizeof *t);
    if (!t) return false;
    free(v->index);
    v->index = t, v->index_cap = cap;
    for (int i = 0; i < v->n; i++) {
        uint32_t s = slot_of(v->tok[i], cap);
        while (t[s]) s = (s + 1) & (cap - 1);
        t[s] = i + 1;
    }
    return true;
}

/* Adds a token of len bytes (new: count 0); its id, or -1 out of memory. */
static int32_t vocab_add(loom_vocab *v, const char *tok, size_t len)
{
    char buf[64], *key = len < sizeof buf ? buf : malloc(len + 1);
    if (!key) return -1;
    memcpy(key, tok, len), key[len] = 0;
    int32_t id = vocab_find(v, key);
    if (id >= 0) {
        if (key != buf) free(key);
        return id;
    }
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 64;
        char **t = realloc(v->tok, (size_t)cap * sizeof *t);
        if (t) v->tok = t;
        int64_t *c = t ? realloc(v->count, (size_t)cap * sizeof *c) : NULL;
        if (c) v->count = c;
        if (!t || !c) goto nomem;
        v->cap = cap;
    }
    if ((uint32_t)(v->n + 1) * 2 > v->index_cap && !vocab_reindex(v, v->index_cap ? 2 * v->index_cap : 256)) goto nomem;
    v->tok[v->n] = key == buf ? strdup(buf) : key;
    if (!v->tok[v->n]) return -1;
    v->count[v->n] = 0;
    uint32_t s = slot_of(v->tok[v->n], v->index_cap);
    while (v->index[s]) s = (s + 1) & (v->index_cap - 1);
    v->index[s] = v->n + 1;
    return v->n++;
nomem:
    if (key != buf) free(key);
    return -1;
}

void loom_vocab_free(loom_vocab *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok), free(v->count), free(v->index), free(v);
}

int loom_vocab_size(const loom_vocab *v) { return v ? v->n : 0; }
loom_token_kind loom_vocab_kind(const loom_vocab *v) { return v->opts.kind; }
int32_t loom_vocab_first_word(const loom_vocab *v) { return v->opts.specials ? LOOM_EOS + 1 : LOOM_UNK + 1; }
const char *loom_vocab_token(const loom_vocab *v, int32_t id) { return v && id >= 0 && id < v->n ? v->tok[id] : NULL; }
int64_t loom_vocab_count(const loom_vocab *v, int32_t id) { return v && id >= 0 && id < v->n ? v->count[id] : 0; }

int32_t loom_vocab_id(const loom_vocab *v, const char *token)
{
    int32_t id = v && token ? vocab_find(v, token) : -1;
    return id >= 0 ? id : LOOM_UNK;
}

/* ---- tokenising ---- */

/* d2l's preprocessing of one line into out: runs of non-letters → one space,
 * trimmed, lower-cased (ASCII; the rest are not letters). Returns the length. */
static size_t letters_only_line(const char *s, size_t n, char *out)
{
    size_t k = 0;
    bool gap = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ascii_letter((unsigned char)ch)) {
            if (gap && k) out[k++] = ' ';
            gap = false;
            out[k++] = (char)(ch | 32);
        } else {
            gap = true;
        }
    }
    return k;
}

/* Calls emit(token bytes) for each token of text under opts; false (with
 * the byte offset of the first bad byte) on invalid UTF-8 or when emit
 * fails. */
typedef bool (*emit_fn)(void *ctx, const char *tok, size_t len);

static bool tokenise_plain(const loom_text_opts *o, const char *text, size_t n, size_t base, emit_fn emit, void *ctx,
                           size_t *bad)
{
    char word[4096];
    size_t wl = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        int len;
        int32_t cp = utf8_next(s + i, n - i, &len);
        if (cp <= 0) { /* invalid, or a NUL (token strings end at NUL: refused, not cut) */
            *bad = base + i;
            return false;
        }
        i += (size_t)len;
        if (o->lower) cp = lower(cp);
        char enc[4];
        int el = utf8_put(cp, enc);
        if (o->kind == LOOM_TOKENS_CHAR) {
            if (!emit(ctx, enc, (size_t)el)) return false;
            continue;
        }
        bool space = o->kind == LOOM_TOKENS_LINE ? cp == '\n' : is_space(cp), punct = o->kind == LOOM_TOKENS_WORD && !space && is_punct(cp);
        if ((space || punct || wl + (size_t)el > sizeof word) && wl) {
            if (!emit(ctx, word, wl)) return false;
            wl = 0;
        }
        if (punct) {
            if (!emit(ctx, enc, (size_t)el)) return false;
        } else if (!space) {
            memcpy(word + wl, enc, (size_t)el);
            wl += (size_t)el;
        }
    }
    return !wl || emit(ctx, word, wl);
}

static bool tokenise(const loom_text_opts *o, const char *text, size_t n, emit_fn emit, void *ctx, size_t *bad)
{
    if (!o->letters_only) return tokenise_plain(o, text, n, 0, emit, ctx, bad);
    for (size_t i = 0; i < n;) { /* the raw text must be UTF-8 even when its non-letters are dropped */
        int len;
        if (utf8_next((const unsigned char *)text + i, n - i, &len) <= 0) {
            *bad = i;
            return false;
        }
        i += (size_t)len;
    }
    /* line by line, joined without a separator for characters (as d2l
     * does), with a space for words */
    char *norm = malloc(n + 1);
    if (!norm) return false;
    size_t k = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && text[b] != '\n') b++;
        size_t start = k + (o->kind != LOOM_TOKENS_CHAR && k > 0);
        size_t m = letters_only_line(text + a, b - a, norm + start);
        if (m) {
            if (start > k) norm[k] = ' ';
            k = start + m;
        }
        a = b + 1;
    }
    bool ok = tokenise_plain(o, norm, k, 0, emit, ctx, bad);
    free(norm);
    return ok;
}

/* ---- building ---- */

typedef struct {
    loom_text *t;
    loom_vocab *v;     /* being built (counts and first occurrences), or NULL */
    const loom_vocab *fixed;
} build_ctx;

static bool push_id(loom_text *t, int32_t id)
{
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 4096;
        int32_t *ids = realloc(t->ids, (size_t)cap * sizeof *ids);
        if (!ids) return false;
        t->ids = ids, t->cap = cap;
    }
    t->ids[t->n++] = id;
    return true;
}

static bool emit_build(void *ctx, const char *tok, size_t len)
{
    build_ctx *b = ctx;
    int32_t id = vocab_add(b->v, tok, len);
    if (id < 0 || !push_id(b->t, id)) return false;
    b->v->count[id]++;
    return true;
}

static bool emit_fixed(void *ctx, const char *tok, size_t len)
{
    build_ctx *b = ctx;
    char buf[64], *key = len < sizeof buf ? buf : malloc(len + 1);
    if (!key) return false;
    memcpy(key, tok, len), key[len] = 0;
    int32_t id = loom_vocab_id(b->fixed, key);
    if (key != buf) free(key);
    return push_id(b->t, id);
}

static int cmp_freq(const void *a, const void *b, void *vocab)
{
    const loom_vocab *v = vocab;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->count[x] != v->count[y]) return v->count[x] > v->count[y] ? -1 : 1;
    return (x > y) - (x < y); /* first occurrence first */
}

/* The provisional vocabulary (tokens in order of first occurrence) → the
 * final one: specials first, then by frequency; the ids remapped. */
static loom_vocab *finish_vocab(loom_text *t, loom_vocab *raw)
{
    loom_vocab *v = calloc(1, sizeof *v);
    int32_t *order = malloc(((size_t)raw->n + 1) * sizeof *order), *map = malloc(((size_t)raw->n + 1) * sizeof *map);
    if (!v || !order || !map) goto fail;
    v->opts = t->opts;
    static const char *const special[] = {"<unk>", "<pad>", "<bos>", "<eos>"};
    for (int k = 0; k < (t->opts.specials ? 4 : 1); k++)
        if (vocab_add(v, special[k], strlen(special[k])) < 0) goto fail;
    for (int i = 0; i < raw->n; i++) order[i] = i;
    qsort_r(order, (size_t)raw->n, sizeof *order, cmp_freq, raw);
    int min = t->opts.min_freq > 1 ? t->opts.min_freq : 1;
    for (int k = 0; k < raw->n; k++) {
        int32_t r = order[k];
        /* a special's own text ("<pad>" in the text) is that special, however rare — as when the
         * text is read again with this vocabulary; other tokens rarer than min_freq are <unk> */
        int32_t id = vocab_find(v, raw->tok[r]);
        if (id < 0 && raw->count[r] >= min && (id = vocab_add(v, raw->tok[r], strlen(raw->tok[r]))) < 0) goto fail;
        map[r] = id >= 0 ? id : LOOM_UNK;
        v->count[map[r]] += raw->count[r];
    }
    for (int64_t i = 0; i < t->n; i++) t->ids[i] = map[t->ids[i]];
    free(order), free(map);
    return v;
fail:
    free(order), free(map);
    loom_vocab_free(v);
    return NULL;
}

loom_text *loom_text_new(const loom_text_opts *opts)
{
    loom_text *t = calloc(1, sizeof *t);
    if (t && opts) t->opts = *opts;
    return t;
}

void loom_text_free(loom_text *t)
{
    if (!t) return;
    loom_vocab_free(t->own);
    free(t->ids);
    free(t);
}

const char *loom_text_error(const loom_text *t) { return t ? loom_error_msg(&t->err) : "out of memory"; }
const int32_t *loom_text_ids(const loom_text *t, int64_t *n)
{
    if (n) *n = t ? t->n : 0;
    return t ? t->ids : NULL;
}
const loom_vocab *loom_text_vocab(const loom_text *t) { return t ? t->vocab : NULL; }

static loom_status parse(loom_text *t, const char *where, const char *s, size_t n, const loom_vocab *fixed)
{
    loom_error_clear(&t->err);
    loom_vocab_free(t->own);
    t->own = NULL, t->vocab = NULL, t->n = 0;
    loom_vocab *raw = fixed ? NULL : calloc(1, sizeof *raw);
    if (!fixed && !raw) return loom_error_set(&t->err, LOOM_ERR_NOMEM, "text: out of memory");
    build_ctx b = {t, raw, fixed};
    loom_text_opts o = fixed ? fixed->opts : t->opts;
    size_t bad = (size_t)-1;
    bool ok = tokenise(&o, s, n, fixed ? emit_fixed : emit_build, &b, &bad);
    loom_status st = LOOM_OK;
    if (!ok && bad != (size_t)-1) {
        long long line = 1;
        for (size_t i = 0; i < bad; i++) line += s[i] == '\n';
        if (s[bad]) st = loom_error_set(&t->err, LOOM_ERR_FORMAT, "%s: line %lld: invalid UTF-8 at byte %zu (0x%02x)", where,
                                        line, bad + 1, (unsigned)(unsigned char)s[bad]);
        else st = loom_error_set(&t->err, LOOM_ERR_FORMAT, "%s: line %lld: a NUL byte at byte %zu", where, line, bad + 1);
    }
    else if (!ok)
        st = loom_error_set(&t->err, LOOM_ERR_NOMEM, "%s: out of memory", where);
    else if (fixed)
        t->vocab = fixed;
    else if (!(t->own = finish_vocab(t, raw)))
        st = loom_error_set(&t->err, LOOM_ERR_NOMEM, "%s: out of memory", where);
    else
        t->vocab = t->own;
    loom_vocab_free(raw);
    if (st) t->n = 0;
    return st;
}

loom_status loom_text_parse(loom_text *t, const char *utf8, size_t n)
{
    return t ? parse(t, "text", utf8, n, NULL) : LOOM_ERR_ARG;
}

loom_status loom_text_parse_with(loom_text *t, const char *utf8, size_t n, const loom_vocab *v)
{
    return t && v ? parse(t, "text", utf8, n, v) : LOOM_ERR_ARG;
}

char *loom_read_all(const char *path, size_t *len, loom_error *e)
{
    *len = 0;
    /* O_NONBLOCK until the type is known: a FIFO must not block the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        loom_error_set(e, LOOM_ERR_ARG, "%s: cannot open: %s", path, strerror(errno)); /* bad input: exit 2 */
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        bool dir = S_ISDIR(st.st_mode);
        close(fd);
        loom_error_set(e, LOOM_ERR_ARG, "%s: %s", path, dir ? "is a directory, not a file" : "not a regular file");
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        loom_error_set(e, LOOM_ERR_NOMEM, "%s: too large (%lld bytes)", path, (long long)st.st_size);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1; /* a file that grows while read is read to this size */
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        loom_error_set(e, LOOM_ERR_NOMEM, "%s: out of memory (%lld bytes)", path, (long long)st.st_size);
        return NULL;
    }
    while (*len < cap - 1) {
        ssize_t r = read(fd, buf + *len, cap - 1 - *len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            free(buf), close(fd);
            loom_error_set(e, LOOM_ERR_IO, "%s: read error: %s", path, strerror(err));
            return NULL;
        }
        if (r == 0) break;
        *len += (size_t)r;
    }
    close(fd);
    buf[*len] = 0;
    return buf;
}

static loom_status read_file(loom_text *t, const char *path, const loom_vocab *fixed)
{
    if (!t) return LOOM_ERR_ARG;
    loom_error_clear(&t->err);
    size_t len;
    char *buf = loom_read_all(path, &len, &t->err);
    if (!buf) return t->err.status;
    loom_status st = parse(t, path, buf, len, fixed);
    free(buf);
    return st;
}

loom_status loom_text_read(loom_text *t, const char *path) { return read_file(t, path, NULL); }
loom_status loom_text_read_with(loom_text *t, const char *path, const loom_vocab *v)
{
    return v ? read_file(t, path, v) : LOOM_ERR_ARG;
}

/* ---- encoding and decoding with a vocabulary ---- */

typedef struct {
    const loom_vocab *v;
    int32_t *ids;
    int64_t n, max;
} enc_ctx;

static bool emit_encode(void *ctx, const char *tok, size_t len)
{
    enc_ctx *e = ctx;
    char buf[64], *key = len < sizeof buf ? buf : malloc(len + 1);
    if (!key) return false;
    memcpy(key, tok, len), key[len] = 0;
    if (e->n < e->max) e->ids[e->n] = loom_vocab_id(e->v, key);
    e->n++;
    if (key != buf) free(key);
    return true;
}

int64_t loom_vocab_encode(const loom_vocab *v, const char *utf8, size_t n, int32_t *ids, int64_t max)
{
    enc_ctx e = {v, ids, 0, ids ? max : 0};
    size_t bad = (size_t)-1;
    return v && tokenise(&v->opts, utf8, n, emit_encode, &e, &bad) ? e.n : -1;
}

size_t loom_vocab_decode(const loom_vocab *v, const int32_t *ids, int64_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (int64_t i = 0; v && i < n; i++) {
        const char *tok = loom_vocab_token(v, ids[i]);
        if (!tok) tok = "<unk>";
        if (v->opts.kind != LOOM_TOKENS_CHAR && i) {
            if (k + 1 < size) buf[k] = ' ';
            k++;
        }
        size_t l = strlen(tok);
        if (k < size) memcpy(buf + k, tok, k + l < size ? l : size - k - 1);
        k += l;
    }
    if (size) buf[k < size ? k : size - 1] = 0;
    return k;
}

/* ---- a vocabulary as a string (JSON) ---- */

char *loom_vocab_to_string(const loom_vocab *v)
{
    cJSON *o = cJSON_CreateObject(), *toks = NULL, *counts = NULL;
    static const char *const kinds[] = {"char", "word", "space", "line"};
    bool ok = o && cJSON_AddStringToObject(o, "kind", kinds[v->opts.kind]) &&
              cJSON_AddBoolToObject(o, "lower", v->opts.lower) &&
              cJSON_AddBoolToObject(o, "letters_only", v->opts.letters_only) &&
              cJSON_AddBoolToObject(o, "specials", v->opts.specials) && (toks = cJSON_AddArrayToObject(o, "tokens")) &&
              (counts = cJSON_AddArrayToObject(o, "counts"));
    for (int i = 0; ok && i < v->n; i++) {
        cJSON *s = cJSON_CreateString(v->tok[i]), *c = cJSON_CreateNumber((double)v->count[i]);
        ok = s && c && cJSON_AddItemToArray(toks, s) && cJSON_AddItemToArray(counts, c);
        if (!ok) cJSON_Delete(s), cJSON_Delete(c);
    }
    char *out = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return out;
}

loom_vocab *loom_vocab_from_string(const char *s)
{
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind"), *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "counts");
    loom_vocab *v = NULL;
    if (!cJSON_IsString(kind) || !cJSON_IsArray(toks) || !cJSON_IsArray(counts) ||
        cJSON_GetArraySize(toks) != cJSON_GetArraySize(counts) || cJSON_GetArraySize(toks) < 1)
        goto done;
    if (strcmp(kind->valuestring, "word") && strcmp(kind->valuestring, "space") && strcmp(kind->valuestring, "char") &&
        strcmp(kind->valuestring, "line"))
        goto done;
    if (!(v = calloc(1, sizeof *v))) goto done;
    v->opts.kind = !strcmp(kind->valuestring, "word")    ? LOOM_TOKENS_WORD
                   : !strcmp(kind->valuestring, "space") ? LOOM_TOKENS_SPACE
                   : !strcmp(kind->valuestring, "line")  ? LOOM_TOKENS_LINE
                                                         : LOOM_TOKENS_CHAR;
    v->opts.lower = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "lower"));
    v->opts.letters_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "letters_only"));
    v->opts.specials = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "specials"));
    int k = 0;
    for (cJSON *t = toks->child, *c = counts->child; t && c; t = t->next, c = c->next, k++) {
        /* every number read is range-checked: a count is a whole number in [0, 2^53] (1e20 was cast to a
         * negative integer and written back: the next checkpoint was unreadable); a token is non-empty text */
        if (!cJSON_IsString(t) || !*t->valuestring || loom_utf8_check(t->valuestring, strlen(t->valuestring)) >= 0 ||
            !cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble <= 9007199254740992.0) ||
            c->valuedouble != floor(c->valuedouble) || vocab_find(v, t->valuestring) >= 0 ||
            vocab_add(v, t->valuestring, strlen(t->valuestring)) != k) {
            loom_vocab_free(v);
            v = NULL;
            goto done;
        }
        v->count[k] = (int64_t)c->valuedouble;
    }
    if (strcmp(v->tok[0], "<unk>")) {
        loom_vocab_free(v);
        v = NULL;
    }
done:
    cJSON_Delete(o);
    return v;
}
