/* safetensors reader and writer (JSON header through cJSON).
 *
 * Reading checks the 8-byte header length and the whole JSON header — every
 * dtype, shape and offset, and that the tensors cover the data exactly —
 * before it reads any tensor data, then reads each tensor straight into its
 * buffer: a bad header costs its own size, not the file's. Names are found
 * through an xxh3 hash index, so files of many tensors read in linear time. */
#include "loom/safetensors.h"
#include "graph/error.h"
#include "io/atomic.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_HEADER (100u << 20)       /* as the reference implementation: 100 MB of JSON at most */
#define MAX_NUMEL ((uint64_t)1 << 40) /* elements of one tensor */

#define st_fail(f, ...) loom_error_set(&(f)->err, __VA_ARGS__)

loom_st *loom_st_new(void) { return calloc(1, sizeof(loom_st)); }

/* Drops every tensor and metadata entry (the error stays). */
static void clear(loom_st *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].data);
    }
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->tensors);
    free(f->meta_key);
    free(f->meta_val);
    free(f->index);
    f->tensors = NULL, f->meta_key = f->meta_val = NULL, f->index = NULL;
    f->n = f->cap = f->n_meta = f->cap_meta = 0;
    f->index_cap = 0;
}

void loom_st_free(loom_st *f)
{
    if (!f) return;
    clear(f);
    free(f);
}

const char *loom_st_error(const loom_st *f) { return f ? loom_error_msg(&f->err) : "out of memory"; }

/* ---- the name index: open addressing, slot = tensor index + 1 (0: empty) ---- */

static uint32_t slot_of(const char *name, uint32_t cap) { return (uint32_t)XXH3_64bits(name, strlen(name)) & (cap - 1); }

static int find(const loom_st *f, const char *name)
{
    if (!f || !name || !f->index_cap) return -1;
    for (uint32_t s = slot_of(name, f->index_cap);; s = (s + 1) & (f->index_cap - 1)) {
        int32_t k = f->index[s];
        if (!k) return -1;
        if (!strcmp(f->tensors[k - 1].name, name)) return k - 1;
    }
}

/* Indexes tensor i (its name is new), growing the table to stay half empty. */
static bool index_add(loom_st *f, int i)
{
    if ((uint32_t)(f->n + 1) * 2 > f->index_cap) {
        uint32_t cap = f->index_cap ? f->index_cap * 2 : 64;
        int32_t *t = calloc(cap, sizeof *t);
        if (!t) return false;
        free(f->index);
        f->index = t;
        f->index_cap = cap;
        for (int k = 0; k < f->n; k++)
            if (k != i) index_add(f, k);
    }
    uint32_t s = slot_of(f->tensors[i].name, f->index_cap);
    while (f->index[s]) s = (s + 1) & (f->index_cap - 1);
    f->index[s] = i + 1;
    return true;
}

const loom_st_tensor *loom_st_get(const loom_st *f, const char *name)
{
    int i = find(f, name);
    return i >= 0 ? &f->tensors[i] : NULL;
}

const char *loom_st_meta(const loom_st *f, const char *key)
{
    for (int i = 0; f && key && i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_val[i];
    return NULL;
}

/* A 64-byte aligned buffer of `bytes` (at least one cache line). */
static void *aligned_buffer(size_t bytes) { return aligned_alloc(64, bytes ? (bytes + 63) / 64 * 64 : 64); }

/* What a tensor may be: a name that is not the metadata key, F32 or I32,
 * rank 0..4, dimensions >= 0 (zero-size tensors are legal), at most 2^40
 * elements. */
static loom_status check_tensor(loom_st *f, const char *name, loom_dtype dt, loom_shape s)
{
    if (!name || !*name) return st_fail(f, LOOM_ERR_ARG, "safetensors: a tensor needs a name");
    if (!strcmp(name, "__metadata__"))
        return st_fail(f, LOOM_ERR_ARG, "safetensors: '__metadata__' is reserved for the metadata, not a tensor name");
    if (dt != LOOM_F32 && dt != LOOM_I32) return st_fail(f, LOOM_ERR_ARG, "safetensors: tensor '%s' has dtype %d", name, (int)dt);
    if (s.rank < 0 || s.rank > LOOM_MAX_RANK)
        return st_fail(f, LOOM_ERR_ARG, "safetensors: tensor '%s' has rank %d (0..%d)", name, s.rank, LOOM_MAX_RANK);
    uint64_t numel = 1;
    for (int i = 0; i < s.rank; i++) {
        if (s.d[i] < 0) return st_fail(f, LOOM_ERR_ARG, "safetensors: tensor '%s' has dimension %d = %d", name, i, s.d[i]);
        numel *= (uint64_t)s.d[i];
        if (numel > MAX_NUMEL) return st_fail(f, LOOM_ERR_ARG, "safetensors: tensor '%s' is too large", name);
    }
    return LOOM_OK;
}

/* Adds a tensor that owns `data` (replacing one of the same name). */
static loom_status put(loom_st *f, const char *name, loom_dtype dt, loom_shape s, void *data)
{
    char *nm = strdup(name);
    if (!nm) return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
    for (int i = s.rank; i < LOOM_MAX_RANK; i++) s.d[i] = 0;
    int i = find(f, name);
    if (i >= 0) {
        free(f->tensors[i].name);
        free(f->tensors[i].data);
        f->tensors[i] = (loom_st_tensor){nm, dt, s, data};
        return LOOM_OK;
    }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        loom_st_tensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
        if (!t) {
            free(nm);
            return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
        }
        f->tensors = t;
        f->cap = cap;
    }
    f->tensors[f->n] = (loom_st_tensor){nm, dt, s, data};
    if (!index_add(f, f->n)) {
        free(nm);
        return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
    }
    f->n++;
    return LOOM_OK;
}

loom_status loom_st_add(loom_st *f, const char *name, loom_dtype dt, loom_shape s, const void *data)
{
    if (!f) return LOOM_ERR_ARG;
    loom_status st = check_tensor(f, name, dt, s);
    if (st) return st;
    size_t bytes = (size_t)loom_shape_numel(s) * 4;
    if (!data && bytes) return st_fail(f, LOOM_ERR_ARG, "safetensors: tensor '%s' has no data", name);
    void *copy = aligned_buffer(bytes);
    if (!copy) return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory for tensor '%s'", name);
    if (bytes) memcpy(copy, data, bytes);
    st = put(f, name, dt, s, copy);
    if (st) free(copy);
    return st;
}

bool loom_st_meta_int(const loom_st *f, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = loom_st_meta(f, key);
    bool digits = v && ((v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && v[1] >= '0' && v[1] <= '9'));
    char *end;
    errno = 0;
    long long x = digits ? strtoll(v, &end, 10) : 0;
    if (!digits || errno || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

bool loom_st_meta_hex(const loom_st *f, const char *key, uint64_t *out)
{
    const char *v = loom_st_meta(f, key);
    size_t n = v ? strlen(v) : 0;
    if (n < 1 || n > 16 || strspn(v, "0123456789abcdefABCDEF") != n) return false;
    *out = strtoull(v, NULL, 16);
    return true;
}

loom_status loom_st_set_meta_int(loom_st *f, const char *key, int64_t value)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)value);
    return loom_st_set_meta(f, key, s);
}

loom_status loom_st_set_meta(loom_st *f, const char *key, const char *value)
{
    if (!f) return LOOM_ERR_ARG;
    if (!key || !value) return st_fail(f, LOOM_ERR_ARG, "safetensors: metadata needs a key and a value");
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) {
            char *v = strdup(value);
            if (!v) return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
            free(f->meta_val[i]);
            f->meta_val[i] = v;
            return LOOM_OK;
        }
    if (f->n_meta == f->cap_meta) {
        int cap = f->cap_meta ? f->cap_meta * 2 : 8;
        char **k = realloc(f->meta_key, (size_t)cap * sizeof *k);
        if (k) f->meta_key = k;
        char **v = k ? realloc(f->meta_val, (size_t)cap * sizeof *v) : NULL;
        if (v) f->meta_val = v;
        if (!k || !v) return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
        f->cap_meta = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k), free(v);
        return st_fail(f, LOOM_ERR_NOMEM, "safetensors: out of memory");
    }
    f->meta_key[f->n_meta] = k;
    f->meta_val[f->n_meta++] = v;
    return LOOM_OK;
}

/* ---- reading ---- */

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* Opens a regular file; a FIFO or device is refused before any read (the
 * open itself does not block: O_NONBLOCK until the type is known). */
static int open_regular(loom_st *f, const char *path, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return st_fail(f, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno)), -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return st_fail(f, LOOM_ERR_IO, "%s: not a regular file", path), -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *size = (uint64_t)st.st_size;
    return fd;
}

static bool read_at(int fd, void *buf, size_t n, uint64_t off)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

/* One tensor of the header, checked but not yet read. */
typedef struct {
    const char *name;
    const char *dtype;
    loom_dtype dt;
    int width;          /* bytes per element in the file */
    loom_shape shape;
    uint64_t begin, end; /* data offsets */
} entry;

/* name → {"dtype", "shape", "data_offsets"}, checked against the data's size. */
static loom_status parse_entry(loom_st *f, const char *path, const cJSON *e, uint64_t data_len, entry *en)
{
    const char *name = e->string;
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' needs \"dtype\", \"shape\" and two \"data_offsets\"", path,
                       name);
    *en = (entry){.name = name, .dtype = dt->valuestring, .shape = loom_shape0()};
    int rank = cJSON_GetArraySize(shape);
    if (rank > LOOM_MAX_RANK)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' has rank %d; loom supports at most %d", path, name, rank,
                       LOOM_MAX_RANK);
    en->shape.rank = rank;
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > INT32_MAX ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' has a bad dimension %d (need a whole number >= 0)", path,
                           name, i);
        en->shape.d[i] = (int32_t)d->valuedouble;
        numel *= (uint64_t)en->shape.d[i];
        if (numel > MAX_NUMEL) return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' is too large", path, name);
    }
    if (!strcmp(en->dtype, "F32")) en->width = 4, en->dt = LOOM_F32;
    else if (!strcmp(en->dtype, "I32")) en->width = 4, en->dt = LOOM_I32;
    else if (!strcmp(en->dtype, "I64")) en->width = 8, en->dt = LOOM_I32;
    else
        return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; loom reads F32, I32 and I64", path, name,
                       en->dtype);
    cJSON *o0 = cJSON_GetArrayItem(offs, 0), *o1 = cJSON_GetArrayItem(offs, 1);
    double b0 = cJSON_IsNumber(o0) ? o0->valuedouble : -1, b1 = cJSON_IsNumber(o1) ? o1->valuedouble : -1;
    if (b0 < 0 || b1 < b0 || b1 > (double)data_len || b0 != (double)(uint64_t)b0 || b1 != (double)(uint64_t)b1)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' has data_offsets [%.0f, %.0f] outside the %llu data bytes",
                       path, name, b0, b1, (unsigned long long)data_len);
    en->begin = (uint64_t)b0, en->end = (uint64_t)b1;
    if (en->end - en->begin != numel * (uint64_t)en->width)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' has %llu data bytes, but %s of %s needs %llu", path, name,
                       (unsigned long long)(en->end - en->begin), en->dtype, loom_shape_str(en->shape, (char[64]){0}, 64),
                       (unsigned long long)(numel * (uint64_t)en->width));
    return LOOM_OK;
}

static loom_status read_metadata(loom_st *f, const char *path, const cJSON *e)
{
    if (!cJSON_IsObject(e)) return st_fail(f, LOOM_ERR_FORMAT, "%s: __metadata__ must be an object of strings", path);
    for (cJSON *m = e->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return st_fail(f, LOOM_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path, m->string);
        if (loom_st_set_meta(f, m->string, m->valuestring)) return f->err.status;
    }
    return LOOM_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1) : (x->end > y->end) - (x->end < y->end);
}

/* The tensors' spans must cover the data exactly, without overlaps or
 * holes (sorts the entries by offset). */
static loom_status check_coverage(loom_st *f, const char *path, entry *en, int n, uint64_t data_len)
{
    qsort(en, (size_t)n, sizeof *en, cmp_begin);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (en[i].begin != at)
            return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor data %s at byte %llu (expected %llu)", path,
                           en[i].begin < at ? "overlaps" : "has a hole", (unsigned long long)en[i].begin,
                           (unsigned long long)at);
        at = en[i].end;
    }
    if (at != data_len)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor", path,
                       (unsigned long long)(data_len - at));
    return LOOM_OK;
}

/* Reads one checked tensor from the file (I64 narrowed to i32). */
static loom_status load_entry(loom_st *f, const char *path, int fd, uint64_t data_off, const entry *en)
{
    if (find(f, en->name) >= 0) return st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' appears twice", path, en->name);
    uint64_t numel = (en->end - en->begin) / (uint64_t)en->width;
    void *vals = aligned_buffer((size_t)numel * 4);
    unsigned char *raw = en->width == 8 ? malloc((size_t)numel * 8 + 1) : vals;
    if (!vals || !raw) {
        free(vals);
        return st_fail(f, LOOM_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, en->name);
    }
    loom_status st = LOOM_OK;
    if (!read_at(fd, raw, (size_t)(en->end - en->begin), data_off + en->begin))
        st = st_fail(f, LOOM_ERR_IO, "%s: cannot read tensor '%s': %s", path, en->name, errno ? strerror(errno) : "short file");
    for (uint64_t i = 0; !st && en->width == 8 && i < numel; i++) {
        int64_t v = (int64_t)le64(raw + 8 * i);
        if (v < INT32_MIN || v > INT32_MAX)
            st = st_fail(f, LOOM_ERR_FORMAT, "%s: tensor '%s' (I64) holds %lld, which does not fit in i32", path, en->name,
                         (long long)v);
        else
            ((int32_t *)vals)[i] = (int32_t)v;
    }
    if (raw != vals) free(raw);
    if (!st) st = put(f, en->name, en->dt, en->shape, vals);
    if (st) free(vals);
    return st;
}

/* After the 8-byte length: the header, its entries and their coverage,
 * then the data. */
static loom_status read_file(loom_st *f, const char *path, int fd, uint64_t size)
{
    unsigned char len8[8];
    if (size < 8 || !read_at(fd, len8, 8, 0))
        return st_fail(f, LOOM_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file (8-byte header length)",
                       path, (unsigned long long)size);
    uint64_t hlen = le64(len8);
    if (hlen > MAX_HEADER || hlen > size - 8)
        return st_fail(f, LOOM_ERR_FORMAT, "%s: header length %llu does not fit in the file (%llu bytes)", path,
                       (unsigned long long)hlen, (unsigned long long)size);
    char *text = malloc((size_t)hlen + 1);
    if (!text) return st_fail(f, LOOM_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
    cJSON *root = NULL;
    entry *en = NULL;
    loom_status st = LOOM_OK;
    if (!read_at(fd, text, (size_t)hlen, 8)) st = st_fail(f, LOOM_ERR_IO, "%s: cannot read the header", path);
    else if (!(root = cJSON_ParseWithLength(text, (size_t)hlen)) || !cJSON_IsObject(root))
        st = st_fail(f, LOOM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    else if (!(en = malloc(((size_t)cJSON_GetArraySize(root) + 1) * sizeof *en)))
        st = st_fail(f, LOOM_ERR_NOMEM, "%s: out of memory", path);
    uint64_t data_off = 8 + hlen, data_len = size - data_off;
    int n = 0;
    for (cJSON *e = root ? root->child : NULL; e && !st; e = e->next)
        st = !strcmp(e->string, "__metadata__") ? read_metadata(f, path, e) : parse_entry(f, path, e, data_len, &en[n++]);
    if (!st) st = check_coverage(f, path, en, n, data_len);
    for (int i = 0; !st && i < n; i++) st = load_entry(f, path, fd, data_off, &en[i]);
    cJSON_Delete(root);
    free(en);
    free(text);
    return st;
}

loom_status loom_st_read(loom_st *f, const char *path)
{
    if (!f) return LOOM_ERR_ARG;
    clear(f);
    loom_error_clear(&f->err);
    uint64_t size;
    int fd = open_regular(f, path, &size);
    if (fd < 0) return f->err.status;
    loom_status st = read_file(f, path, fd, size);
    close(fd);
    if (st) clear(f);
    return st;
}

static int cmp_name(const void *a, const void *b)
{
    const loom_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Appends a number to a JSON array; false when out of memory. */
static bool add_number(cJSON *array, double v)
{
    cJSON *n = cJSON_CreateNumber(v);
    if (n && cJSON_AddItemToArray(array, n)) return true;
    cJSON_Delete(n);
    return false;
}

/* The JSON header, tensors in name order (the order their data follows);
 * NULL when out of memory (every builder call is checked: a failed one
 * would otherwise leave a header with pieces missing). */
static char *header_json(const loom_st *f, const loom_st_tensor **order)
{
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    bool ok = root && (!f->n_meta || (m = cJSON_AddObjectToObject(root, "__metadata__")));
    for (int i = 0; ok && i < f->n_meta; i++) ok = cJSON_AddStringToObject(m, f->meta_key[i], f->meta_val[i]) != NULL;
    uint64_t off = 0;
    for (int i = 0; ok && i < f->n; i++) {
        const loom_st_tensor *t = order[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name), *sh = NULL, *o = NULL;
        ok = e && cJSON_AddStringToObject(e, "dtype", t->dtype == LOOM_I32 ? "I32" : "F32") &&
             (sh = cJSON_AddArrayToObject(e, "shape")) && (o = cJSON_AddArrayToObject(e, "data_offsets"));
        for (int k = 0; ok && k < t->shape.rank; k++) ok = add_number(sh, t->shape.d[k]);
        uint64_t bytes = (uint64_t)loom_shape_numel(t->shape) * 4;
        ok = ok && add_number(o, (double)off) && add_number(o, (double)(off + bytes));
        off += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return json;
}

loom_status loom_st_write(loom_st *f, const char *path)
{
    if (!f) return LOOM_ERR_ARG;
    loom_error_clear(&f->err);
    const loom_st_tensor **order = malloc(((size_t)f->n + 1) * sizeof *order);
    char *json = NULL;
    loom_atomic out = {0};
    if (!order) goto nomem;
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_name);
    if (!(json = header_json(f, order))) goto nomem;
    if (loom_atomic_open(&out, path, &f->err)) goto done;
    /* the header is padded with spaces to a multiple of 8, so the data is aligned */
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    unsigned char head[8];
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    bool ok = fwrite(head, 1, 8, out.f) == 8 && fwrite(json, 1, jlen, out.f) == jlen;
    for (size_t i = jlen; ok && i < hlen; i++) ok = fputc(' ', out.f) != EOF;
    for (int i = 0; ok && i < f->n; i++) {
        size_t bytes = (size_t)loom_shape_numel(order[i]->shape) * 4;
        ok = fwrite(order[i]->data, 1, bytes, out.f) == bytes;
    }
    loom_atomic_commit(&out, &f->err);
    goto done;
nomem:
    loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory", path);
done:
    cJSON_free(json);
    free(order);
    return f->err.status;
}
