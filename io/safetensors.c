/* safetensors reader and writer (JSON header through cJSON). */
#include "loom/safetensors.h"
#include "graph/error.h"
#include "io/atomic.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20) /* as the reference implementation: 100 MB of JSON at most */

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
    f->tensors = NULL, f->meta_key = f->meta_val = NULL;
    f->n = f->cap = f->n_meta = f->cap_meta = 0;
}

void loom_st_free(loom_st *f)
{
    if (!f) return;
    clear(f);
    free(f);
}

const char *loom_st_error(const loom_st *f) { return f ? loom_error_msg(&f->err) : "out of memory"; }

const loom_st_tensor *loom_st_get(const loom_st *f, const char *name)
{
    for (int i = 0; f && name && i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *loom_st_meta(const loom_st *f, const char *key)
{
    for (int i = 0; f && key && i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_val[i];
    return NULL;
}

static void *aligned_copy(const void *src, size_t bytes)
{
    size_t sz = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

loom_status loom_st_add(loom_st *f, const char *name, loom_dtype dt, loom_shape s, const void *data)
{
    if (!f || !name || (!data && loom_shape_numel(s))) return LOOM_ERR_ARG;
    size_t bytes = (size_t)loom_shape_numel(s) * 4;
    void *copy = aligned_copy(data, bytes);
    char *nm = strdup(name);
    if (!copy || !nm) {
        free(copy), free(nm);
        return LOOM_ERR_NOMEM;
    }
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) {
            free(f->tensors[i].name);
            free(f->tensors[i].data);
            f->tensors[i] = (loom_st_tensor){nm, dt, s, copy};
            return LOOM_OK;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        loom_st_tensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
        if (!t) {
            free(copy), free(nm);
            return LOOM_ERR_NOMEM;
        }
        f->tensors = t;
        f->cap = cap;
    }
    f->tensors[f->n++] = (loom_st_tensor){nm, dt, s, copy};
    return LOOM_OK;
}

loom_status loom_st_set_meta(loom_st *f, const char *key, const char *value)
{
    if (!f || !key || !value) return LOOM_ERR_ARG;
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) {
            char *v = strdup(value);
            if (!v) return LOOM_ERR_NOMEM;
            free(f->meta_val[i]);
            f->meta_val[i] = v;
            return LOOM_OK;
        }
    if (f->n_meta == f->cap_meta) {
        int cap = f->cap_meta ? f->cap_meta * 2 : 8;
        char **k = realloc(f->meta_key, (size_t)cap * sizeof *k);
        if (!k) return LOOM_ERR_NOMEM;
        f->meta_key = k;
        char **v = realloc(f->meta_val, (size_t)cap * sizeof *v);
        if (!v) return LOOM_ERR_NOMEM;
        f->meta_val = v;
        f->cap_meta = cap;
    }
    f->meta_key[f->n_meta] = strdup(key);
    f->meta_val[f->n_meta] = strdup(value);
    if (!f->meta_key[f->n_meta] || !f->meta_val[f->n_meta]) {
        free(f->meta_key[f->n_meta]), free(f->meta_val[f->n_meta]);
        return LOOM_ERR_NOMEM;
    }
    f->n_meta++;
    return LOOM_OK;
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* Whole file into memory; NULL with a message on failure. */
static unsigned char *slurp(loom_st *f, const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        loom_error_set(&f->err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
        loom_error_set(&f->err, LOOM_ERR_IO, "%s: not a regular file", path);
        fclose(fp);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory reading %lld bytes", path, (long long)st.st_size);
        fclose(fp);
        return NULL;
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, fp);
    fclose(fp);
    if (got != (size_t)st.st_size) {
        loom_error_set(&f->err, LOOM_ERR_IO, "%s: short read (%zu of %lld bytes)", path, got, (long long)st.st_size);
        free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

static int cmp_off(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* One header entry: name → {"dtype", "shape", "data_offsets"}. Checks it
 * against the data, records its byte span and adds the tensor. */
static loom_status read_entry(loom_st *f, const char *path, const cJSON *e, const unsigned char *data, size_t data_len,
                              uint64_t *span)
{
    const char *name = e->string;
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' needs \"dtype\", \"shape\" and two \"data_offsets\"",
                              path, name);
    loom_shape s = loom_shape0();
    int rank = cJSON_GetArraySize(shape);
    if (rank > LOOM_MAX_RANK)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' has rank %d; loom supports at most %d", path, name,
                              rank, LOOM_MAX_RANK);
    s.rank = rank;
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > INT32_MAX ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return loom_error_set(&f->err, LOOM_ERR_FORMAT,
                                  "%s: tensor '%s' has a bad dimension %d (need a whole number >= 1)", path, name, i);
        s.d[i] = (int32_t)d->valuedouble;
        numel *= (uint64_t)s.d[i];
        if (numel > ((uint64_t)1 << 40))
            return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' is too large", path, name);
    }
    int width;
    loom_dtype ldt;
    if (!strcmp(dt->valuestring, "F32")) width = 4, ldt = LOOM_F32;
    else if (!strcmp(dt->valuestring, "I32")) width = 4, ldt = LOOM_I32;
    else if (!strcmp(dt->valuestring, "I64")) width = 8, ldt = LOOM_I32;
    else
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; loom reads F32, I32 and I64", path,
                              name, dt->valuestring);
    double b0 = cJSON_GetArrayItem(offs, 0)->valuedouble, b1 = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b0 < 0 ||
        b1 < b0 || b1 > (double)data_len || b0 != (double)(uint64_t)b0 || b1 != (double)(uint64_t)b1)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT,
                              "%s: tensor '%s' has data_offsets [%.0f, %.0f] outside the %zu data bytes", path, name, b0,
                              b1, data_len);
    uint64_t begin = (uint64_t)b0, end = (uint64_t)b1;
    if (end - begin != numel * (uint64_t)width)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' has %llu data bytes, but %s of %s needs %llu", path,
                              name, (unsigned long long)(end - begin), dt->valuestring,
                              loom_shape_str(s, (char[64]){0}, 64), (unsigned long long)(numel * (uint64_t)width));
    span[0] = begin, span[1] = end;
    if (loom_st_get(f, name))
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' appears twice", path, name);
    void *vals = malloc((size_t)numel * 4 + 4);
    if (!vals) return loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    if (width == 8) {
        for (uint64_t i = 0; i < numel; i++) {
            int64_t v = (int64_t)le64(data + begin + 8 * i);
            if (v < INT32_MIN || v > INT32_MAX) {
                free(vals);
                return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor '%s' (I64) holds %lld, which does not fit in i32",
                                      path, name, (long long)v);
            }
            ((int32_t *)vals)[i] = (int32_t)v;
        }
    } else {
        memcpy(vals, data + begin, (size_t)numel * 4);
    }
    loom_status st = loom_st_add(f, name, ldt, s, vals);
    free(vals);
    return st ? loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory", path) : LOOM_OK;
}

static loom_status read_metadata(loom_st *f, const char *path, const cJSON *e)
{
    if (!cJSON_IsObject(e))
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: __metadata__ must be an object of strings", path);
    for (cJSON *m = e->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path,
                                  m->string);
        if (loom_st_set_meta(f, m->string, m->valuestring))
            return loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    return LOOM_OK;
}

/* The tensors' spans must cover the data exactly, without overlaps or holes. */
static loom_status check_coverage(loom_st *f, const char *path, uint64_t *spans, int n_spans, size_t data_len)
{
    qsort(spans, (size_t)n_spans, 2 * sizeof *spans, cmp_off);
    uint64_t at = 0;
    for (int i = 0; i < n_spans; i++) {
        if (spans[2 * i] != at)
            return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: tensor data %s at byte %llu (expected %llu)", path,
                                  spans[2 * i] < at ? "overlaps" : "has a hole", (unsigned long long)spans[2 * i],
                                  (unsigned long long)at);
        at = spans[2 * i + 1];
    }
    if (at != data_len)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor", path,
                              (unsigned long long)(data_len - at));
    return LOOM_OK;
}

/* The file in memory: the 8-byte header length, the JSON header, every
 * entry, the data's coverage. */
static loom_status parse(loom_st *f, const char *path, const unsigned char *buf, size_t len)
{
    if (len < 8)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT,
                              "%s: %zu bytes is too short for a safetensors file (8-byte header length)", path, len);
    uint64_t hlen = le64(buf);
    if (hlen > MAX_HEADER || hlen > len - 8)
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: header length %llu does not fit in the file (%zu bytes)",
                              path, (unsigned long long)hlen, len);
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    uint64_t *spans = calloc((size_t)cJSON_GetArraySize(root) + 1, 2 * sizeof *spans);
    loom_status st = spans ? LOOM_OK : loom_error_set(&f->err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    int n_spans = 0;
    for (cJSON *e = root->child; e && !st; e = e->next)
        st = !strcmp(e->string, "__metadata__") ? read_metadata(f, path, e)
                                                : read_entry(f, path, e, data, data_len, spans + 2 * n_spans++);
    if (!st) st = check_coverage(f, path, spans, n_spans, data_len);
    cJSON_Delete(root);
    free(spans);
    return st;
}

loom_status loom_st_read(loom_st *f, const char *path)
{
    if (!f) return LOOM_ERR_ARG;
    clear(f);
    loom_error_clear(&f->err);
    size_t len;
    unsigned char *buf = slurp(f, path, &len);
    if (!buf) return f->err.status;
    loom_status st = parse(f, path, buf, len);
    free(buf);
    if (st) clear(f);
    return st;
}

static int cmp_name(const void *a, const void *b)
{
    const loom_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* The JSON header, tensors in name order (the order their data follows);
 * NULL when out of memory. cJSON's builders tolerate NULL parents, so one
 * check of the printed text covers every allocation. */
static char *header_json(const loom_st *f, const loom_st_tensor **order)
{
    cJSON *root = cJSON_CreateObject();
    if (f->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < f->n_meta; i++) cJSON_AddStringToObject(m, f->meta_key[i], f->meta_val[i]);
    }
    uint64_t off = 0;
    for (int i = 0; i < f->n; i++) {
        const loom_st_tensor *t = order[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", t->dtype == LOOM_I32 ? "I32" : "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int k = 0; k < t->shape.rank; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->shape.d[k]));
        uint64_t bytes = (uint64_t)loom_shape_numel(t->shape) * 4;
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
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
