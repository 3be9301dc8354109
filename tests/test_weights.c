/* Weights in and out: safetensors reading (every malformed case), atomic
 * writing, the parameter store, and rnn-run's handling of bad case files. */
#include "helpers.h"
#include "tool.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom-test-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(tmpdir);
}

TestSuite(safetensors, .init = make_tmpdir, .fini = remove_tmpdir);
TestSuite(store, .init = make_tmpdir, .fini = remove_tmpdir);
TestSuite(rnn_run, .init = make_tmpdir, .fini = remove_tmpdir);

static const char *tmp(const char *name) { return tmp_path(tmpdir, name); }

/* Writes a file from a JSON header and raw data bytes. */
static const char *raw_file(const char *name, const char *json, const void *data, size_t n, int64_t header_len)
{
    const char *path = tmp(name);
    FILE *f = fopen(path, "wb");
    uint64_t h = header_len >= 0 ? (uint64_t)header_len : strlen(json);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(h >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, strlen(json), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

Test(safetensors, round_trip)
{
    loom_st *f = loom_st_new();
    float a[6] = {1, 2, 3, 4, 5, -6.5f};
    int32_t b[3] = {7, -8, 9};
    cr_assert_eq(loom_st_add(f, "weight_ih_l0", LOOM_F32, loom_shape2(2, 3), a), LOOM_OK);
    cr_assert_eq(loom_st_add(f, "lengths", LOOM_I32, loom_shape1(3), b), LOOM_OK);
    cr_assert_eq(loom_st_add(f, "scalar", LOOM_F32, loom_shape0(), a), LOOM_OK);
    cr_assert_eq(loom_st_set_meta(f, "cell", "lstm"), LOOM_OK);
    char err[512];
    cr_assert_eq(loom_st_write(f, tmp("a.safetensors")), LOOM_OK, "%s", loom_st_error(f));
    loom_st_free(f);
    loom_st *r = st_read(tmp("a.safetensors"), err, sizeof err);
    cr_assert(r, "%s", err);
    cr_assert_eq(r->n, 3);
    cr_assert_str_eq(loom_st_meta(r, "cell"), "lstm");
    const loom_st_tensor *t = loom_st_get(r, "weight_ih_l0");
    cr_assert(t && t->dtype == LOOM_F32 && loom_shape_eq(t->shape, loom_shape2(2, 3)));
    cr_assert_arr_eq(t->data, a, sizeof a);
    t = loom_st_get(r, "lengths");
    cr_assert(t && t->dtype == LOOM_I32);
    cr_assert_arr_eq(t->data, b, sizeof b);
    cr_assert_eq(loom_st_get(r, "scalar")->shape.rank, 0);
    cr_assert_null(loom_st_get(r, "nope"));
    loom_st_free(r);
}

Test(safetensors, reads_i64_as_i32)
{
    int64_t v[2] = {3, -4};
    const char *p = raw_file("i64", "{\"len\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", v, 16, -1);
    char err[512];
    loom_st *r = st_read(p, err, sizeof err);
    cr_assert(r, "%s", err);
    const int32_t *d = loom_st_get(r, "len")->data;
    cr_assert(d[0] == 3 && d[1] == -4);
    loom_st_free(r);
    v[1] = (int64_t)1 << 40;
    p = raw_file("i64big", "{\"len\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", v, 16, -1);
    cr_assert_null(st_read(p, err, sizeof err));
    cr_assert(strstr(err, "does not fit in i32"), "%s", err);
}

Test(safetensors, malformed_files_are_refused_with_a_reason)
{
    float d[4] = {1, 2, 3, 4};
    struct {
        const char *json;
        size_t data;
        int64_t hlen;
        const char *why;
    } cases[] = {
        {"", 0, 100, "does not fit"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1 << 30, "does not fit"},
        {"not json at all", 0, -1, "not a JSON object"},
        {"[1,2]", 0, -1, "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -1, "dtype F16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,80]}}", 8, -1, "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "needs 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, "hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, -1, "trailing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1, "rank 5"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,4]}}", 4, -1, "bad dimension"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, -1, "data_offsets"},
        {"{\"__metadata__\":{\"k\":3}}", 0, -1, "not a string"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        const char *p = raw_file("bad", cases[i].json, d, cases[i].data, cases[i].hlen);
        loom_st *r = st_read(p, err, sizeof err);
        cr_assert_null(r, "case %u was accepted", i);
        cr_assert(strstr(err, cases[i].why), "case %u: '%s' is not in: %s", i, cases[i].why, err);
    }
    char err[512];
    FILE *f = fopen(tmp("short"), "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    cr_assert_null(st_read(tmp("short"), err, sizeof err));
    cr_assert(strstr(err, "too short"), "%s", err);
    cr_assert_null(st_read(tmp("missing"), err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
}

/* Zero-size tensors are legal (PyTorch writes them) both ways; a tensor
 * named __metadata__, a negative dimension or a rank over 4 is refused on
 * writing as on reading. */
Test(safetensors, writer_and_reader_agree)
{
    loom_st *f = loom_st_new();
    float a[2] = {1, 2};
    cr_assert_eq(loom_st_add(f, "empty", LOOM_F32, loom_shape2(3, 0), NULL), LOOM_OK, "%s", loom_st_error(f));
    cr_assert_eq(loom_st_add(f, "a", LOOM_F32, loom_shape1(2), a), LOOM_OK);
    cr_assert_eq(loom_st_add(f, "__metadata__", LOOM_F32, loom_shape1(2), a), LOOM_ERR_ARG);
    cr_assert(strstr(loom_st_error(f), "reserved"), "%s", loom_st_error(f));
    cr_assert_eq(loom_st_add(f, "neg", LOOM_F32, loom_shape2(-1, 2), a), LOOM_ERR_ARG);
    cr_assert(strstr(loom_st_error(f), "reserved"), "the first error is kept: %s", loom_st_error(f));
    loom_shape r9 = loom_shape1(1);
    r9.rank = 9;
    cr_assert_eq(loom_st_add(f, "r9", LOOM_F32, r9, a), LOOM_ERR_ARG);
    cr_assert_eq(loom_st_add(f, "", LOOM_F32, loom_shape1(2), a), LOOM_ERR_ARG);
    cr_assert_eq(loom_st_add(f, "i64", (loom_dtype)7, loom_shape1(2), a), LOOM_ERR_ARG);
    cr_assert_eq(f->n, 2, "refused tensors are not added");
    cr_assert_eq(loom_st_write(f, tmp("zero.safetensors")), LOOM_OK, "%s", loom_st_error(f));
    cr_assert_str_eq(loom_st_error(f), "", "a write starts afresh");
    char err[512];
    loom_st *r = st_read(tmp("zero.safetensors"), err, sizeof err);
    cr_assert(r, "%s", err);
    const loom_st_tensor *t = loom_st_get(r, "empty");
    cr_assert(t && loom_shape_eq(t->shape, loom_shape2(3, 0)));
    cr_assert_eq(((float *)loom_st_get(r, "a")->data)[1], 2.0f);
    loom_st_free(r);
    loom_st_free(f);
}

/* Names are found through an index: many tensors, replaced and looked up. */
Test(safetensors, many_tensors)
{
    loom_st *f = loom_st_new();
    enum { N = 5000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        float v = (float)i;
        snprintf(name, sizeof name, "t%d", i);
        cr_assert_eq(loom_st_add(f, name, LOOM_F32, loom_shape0(), &v), LOOM_OK);
    }
    float v = -1;
    cr_assert_eq(loom_st_add(f, "t77", LOOM_F32, loom_shape0(), &v), LOOM_OK, "replacing");
    cr_assert_eq(f->n, N);
    cr_assert_eq(loom_st_write(f, tmp("many.safetensors")), LOOM_OK);
    char err[512];
    loom_st *r = st_read(tmp("many.safetensors"), err, sizeof err);
    cr_assert(r, "%s", err);
    for (int i = 0; i < N; i += 97) {
        snprintf(name, sizeof name, "t%d", i);
        cr_assert_eq(*(float *)loom_st_get(r, name)->data, i == 77 ? -1.0f : (float)i);
    }
    cr_assert_null(loom_st_get(r, "t5000"));
    loom_st_free(r);
    loom_st_free(f);
}

/* A FIFO (or any file that is not a regular file) is refused without
 * waiting for a writer. */
Test(safetensors, fifo_is_refused)
{
    cr_assert_eq(mkfifo(tmp("fifo"), 0600), 0);
    char err[512];
    cr_assert_null(st_read(tmp("fifo"), err, sizeof err));
    cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* A huge file with a bad header is refused from its header alone: under
 * an address-space limit far below its size, the message is about the
 * header, not about memory. */
Test(safetensors, bad_header_of_a_huge_file)
{
    const char *p = raw_file("huge", "{not json", NULL, 0, -1);
    cr_assert_eq(truncate(p, (off_t)3 << 29), 0, "a sparse 1.5 GB file");
    char err[512];
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves far more address space than any limit would allow */
    struct rlimit lim = {(rlim_t)1 << 30, (rlim_t)1 << 30};
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
#endif
    cr_assert_null(st_read(p, err, sizeof err));
    cr_assert(strstr(err, "not a JSON object"), "%s", err);
    unlink(p);
}

Test(safetensors, writes_are_atomic)
{
    char err[512];
    loom_st *f = loom_st_new();
    float a[2] = {1, 2};
    loom_st_add(f, "a", LOOM_F32, loom_shape1(2), a);
    cr_assert_neq(loom_st_write(f, "/nonexistent-dir/x.safetensors"), LOOM_OK);
    cr_assert(strstr(loom_st_error(f), "temporary"), "%s", loom_st_error(f));
    mode_t old = umask(022);
    cr_assert_eq(loom_st_write(f, tmp("w.safetensors")), LOOM_OK);
    umask(old);
    struct stat st;
    cr_assert_eq(stat(tmp("w.safetensors"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "the umask decides a new file's mode, got %o", st.st_mode & 0777);
    a[0] = 5;
    loom_st_add(f, "a", LOOM_F32, loom_shape1(2), a);
    cr_assert_eq(loom_st_write(f, tmp("w.safetensors")), LOOM_OK);
    loom_st_free(f);
    loom_st *r = st_read(tmp("w.safetensors"), err, sizeof err);
    cr_assert_eq(((float *)loom_st_get(r, "a")->data)[0], 5);
    loom_st_free(r);
    int files = 0;
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; (e = readdir(d));) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 1, "no temporary file is left behind");
}

/* ---- parameter store ---- */

/* torch.nn.init.orthogonal_: tall weights get orthonormal columns, wide
 * ones orthonormal rows, both scaled by the gain; a different seed gives
 * a different matrix. */
Test(store, orthogonal_init)
{
    loom_graph *g = loom_graph_new();
    loom_tensor tall = loom_param_init(g, "tall", loom_shape2(48, 16), LOOM_INIT_ORTHOGONAL, 2);
    loom_tensor wide = loom_param_init(g, "wide", loom_shape3(6, 5, 4), LOOM_INIT_ORTHOGONAL, 1);
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 3);
    const float *w = loom_store_data(s, tall), *v = loom_store_data(s, wide);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) { /* WᵀW = 4 I */
            double d = 0;
            for (int r = 0; r < 48; r++) d += (double)w[r * 16 + i] * w[r * 16 + j];
            cr_assert_float_eq(d, i == j ? 4.0 : 0.0, 1e-5, "(WᵀW)[%d][%d] = %g", i, j, d);
        }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) { /* (6, 20): W Wᵀ = I */
            double d = 0;
            for (int c = 0; c < 20; c++) d += (double)v[i * 20 + c] * v[j * 20 + c];
            cr_assert_float_eq(d, i == j ? 1.0 : 0.0, 1e-5, "(WWᵀ)[%d][%d] = %g", i, j, d);
        }
    float first = w[0];
    loom_store_init(s, 4);
    cr_assert_neq(w[0], first);
    cr_assert_eq(loom_param_init(g, "bad", loom_shape1(2), (loom_init)(LOOM_INIT_FORGET_GATE + 1), 1).id, LOOM_INVALID.id);
    loom_store_free(s);
    loom_graph_free(g);
}

/* U(lo, hi) and constants, per parameter; numbers an initialiser cannot
 * honour are refused by name. */
Test(store, uniform_range_and_constant_init)
{
    loom_graph *g = loom_graph_new();
    loom_tensor u = loom_param_init2(g, "u", loom_shape1(4000), LOOM_INIT_UNIFORM_RANGE, 0.25f, 1.5f);
    loom_tensor c = loom_param_init(g, "c", loom_shape2(3, 5), LOOM_INIT_CONSTANT, -2.5f);
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 11);
    const float *d = loom_store_data(s, u), *k = loom_store_data(s, c);
    double lo = 9, hi = -9, mean = 0;
    for (int i = 0; i < 4000; i++) lo = fmin(lo, d[i]), hi = fmax(hi, d[i]), mean += d[i] / 4000.0;
    cr_assert(lo >= 0.25 && hi <= 1.5 && lo < 0.26 && hi > 1.49, "U(0.25, 1.5): [%g, %g]", lo, hi);
    cr_assert_float_eq(mean, 0.875, 0.02);
    for (int i = 0; i < 15; i++) cr_assert_eq(k[i], -2.5f);
    loom_store_free(s);
    loom_graph_free(g);
    struct { loom_init init; float a, b; const char *says; } bad[] = {
        {LOOM_INIT_UNIFORM_RANGE, 2, 1, "lo > hi"},
        {LOOM_INIT_ONES, 3, 0, "ones takes no scale"},
        {LOOM_INIT_ZEROS, 1, 0, "zeros takes no scale"},
        {LOOM_INIT_CONSTANT, NAN, 0, "not finite"},
        {LOOM_INIT_NORMAL, 1, 2, "only a uniform range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        g = loom_graph_new();
        cr_assert_eq(loom_param_init2(g, "p", loom_shape1(2), bad[i].init, bad[i].a, bad[i].b).id, LOOM_INVALID.id);
        cr_assert(strstr(loom_graph_error(g), bad[i].says) && strstr(loom_graph_error(g), "'p'"), "%s", loom_graph_error(g));
        loom_graph_free(g);
    }
}

/* An initialiser in words: Xavier's bound from the shape, as the store draws it. */
Test(store, initialisers_described)
{
    char b[96];
    cr_assert_str_eq(loom_init_describe(LOOM_INIT_XAVIER_UNIFORM, 2, 0, loom_shape2(6, 4), b, sizeof b), "xavier: U(-1.549, 1.549)");
    cr_assert_str_eq(loom_init_describe(LOOM_INIT_UNIFORM_RANGE, 0, 1, loom_shape1(3), b, sizeof b), "U(0, 1)");
    cr_assert_str_eq(loom_init_describe(LOOM_INIT_ONES, 0, 0, loom_shape1(3), b, sizeof b), "ones");
    cr_assert_str_eq(loom_init_describe(LOOM_INIT_FORGET_GATE, 0.5f, 1, loom_shape1(8), b, sizeof b), "U(-0.5, 0.5), forget gate 1");
}

Test(store, init_save_load_round_trip)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = 3, .hidden_size = 16});
    loom_tensor ones = loom_param_init(g, "ones", loom_shape1(4), LOOM_INIT_ONES, 0);
    loom_tensor xav = loom_param_init(g, "xavier", loom_shape2(20, 30), LOOM_INIT_XAVIER_UNIFORM, 1);
    loom_store *s = loom_store_new(g);
    cr_assert_eq(loom_store_status(s), LOOM_OK, "%s", loom_store_error(s));
    cr_assert_eq(loom_store_count(s), 6);
    loom_store_init(s, 7);
    const float *w = loom_store_data(s, rnn.param[0][0][1]);
    double lo = 1, hi = -1, bound = 0.25; /* 1/√16 */
    for (int i = 0; i < 48 * 16; i++) lo = fmin(lo, w[i]), hi = fmax(hi, w[i]);
    cr_assert(lo >= -bound && hi <= bound && lo < -0.2 && hi > 0.2, "U(-1/√H, 1/√H): [%g, %g]", lo, hi);
    cr_assert_eq(loom_store_data(s, ones)[3], 1.0f);
    float xb = sqrtf(6.0f / 50);
    for (int i = 0; i < 600; i++) cr_assert(fabsf(loom_store_data(s, xav)[i]) <= xb);
    cr_assert_eq(loom_store_save_file(s, tmp("p.safetensors")), LOOM_OK, "%s", loom_store_error(s));

    loom_store *s2 = loom_store_new(g);
    cr_assert_eq(loom_store_load_file(s2, tmp("p.safetensors"), true), LOOM_OK, "%s", loom_store_error(s2));
    for (int i = 0; i < 6; i++) {
        loom_tensor t = loom_store_tensor(s, i);
        cr_assert_arr_eq(loom_store_data(s2, t), loom_store_data(s, t), (size_t)loom_tensor_numel(g, t) * 4);
    }
    loom_store_free(s);
    loom_store_free(s2);
    loom_graph_free(g);
}

Test(store, load_mistakes_change_nothing)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_param(g, "a", loom_shape1(2));
    loom_param(g, "b", loom_shape2(2, 2));
    loom_store *s = loom_store_new(g);
    loom_st *f = loom_st_new();
    float v[4] = {1, 2, 3, 4};
    loom_st_add(f, "a", LOOM_F32, loom_shape1(2), v);
    cr_assert_eq(loom_store_load(s, f, false), LOOM_ERR_ARG);
    cr_assert(strstr(loom_store_error(s), "'b' (2,2) is missing"), "%s", loom_store_error(s));
    cr_assert_eq(loom_store_data(s, a)[0], 0.0f, "a failed load copies nothing");
    loom_st_add(f, "b", LOOM_F32, loom_shape1(4), v);
    cr_assert_eq(loom_store_load(s, f, false), LOOM_ERR_SHAPE, "a well-formed file of the wrong shape: a shape error");
    cr_assert(strstr(loom_store_error(s), "'b' is F32 (4,), expected F32 (2,2)"), "%s", loom_store_error(s));
    int32_t iv[4] = {0};
    loom_st_add(f, "b", LOOM_I32, loom_shape2(2, 2), iv);
    cr_assert_eq(loom_store_load(s, f, false), LOOM_ERR_TYPE, "I32 weights: a type error");
    loom_st_add(f, "b", LOOM_F32, loom_shape2(2, 2), v);
    loom_st_add(f, "extra", LOOM_F32, loom_shape1(1), v);
    cr_assert_eq(loom_store_load(s, f, true), LOOM_ERR_ARG);
    cr_assert(strstr(loom_store_error(s), "'extra' is not a parameter"), "%s", loom_store_error(s));
    cr_assert_eq(loom_store_load(s, f, false), LOOM_OK);
    cr_assert_str_eq(loom_store_error(s), "", "a successful load starts afresh");
    cr_assert_eq(loom_store_data(s, a)[1], 2.0f);
    loom_st_free(f);
    loom_store_free(s);
    loom_param(g, "a", loom_shape1(1)); /* refused by the graph, naming both shapes */
    s = loom_store_new(g);
    cr_assert_eq(loom_store_status(s), LOOM_ERR_ARG);
    cr_assert(strstr(loom_store_error(s), "the graph has failed: parameter 'a' (1,): the name is taken by the parameter 'a' (2,)"),
              "%s", loom_store_error(s));
    cr_assert_eq(loom_store_count(s), 0, "a store that could not be made holds nothing");
    cr_assert_eq(loom_store_save_file(s, tmp("never.safetensors")), LOOM_ERR_ARG, "and refuses to work");
    loom_store_free(s);
    loom_graph_free(g);
}

/* PyTorch state_dict weights (a golden case) load into loom and come back
 * out bit for bit. */
Test(store, pytorch_weights_round_trip)
{
    char err[512];
    loom_st *src = st_read(LOOM_GOLDEN_DIR "/lstm_l2_bi.safetensors", err, sizeof err);
    cr_assert(src, "%s", err);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 4, .hidden_size = 5, .layers = 2,
                                            .bidirectional = true});
    loom_store *s = loom_store_new(g);
    cr_assert_eq(loom_store_load(s, src, false), LOOM_OK, "%s", loom_store_error(s));
    cr_assert_eq(loom_store_save_file(s, tmp("lstm.safetensors")), LOOM_OK);
    loom_st *back = st_read(tmp("lstm.safetensors"), err, sizeof err);
    cr_assert_eq(back->n, 16);
    for (int i = 0; i < back->n; i++) {
        const loom_st_tensor *a = &back->tensors[i], *b = loom_st_get(src, a->name);
        cr_assert(b, "%s is not a PyTorch name", a->name);
        cr_assert(loom_shape_eq(a->shape, b->shape));
        cr_assert_arr_eq(a->data, b->data, (size_t)loom_shape_numel(a->shape) * 4);
    }
    loom_st_free(back);
    loom_st_free(src);
    loom_store_free(s);
    loom_graph_free(g);
}

/* ---- rnn-run on bad case files: a clear message and status 2 ---- */

static void expect_rnn_run_error(loom_st *f, const char *why)
{
    char err[1024];
    cr_assert_eq(loom_st_write(f, tmp("case.safetensors")), LOOM_OK);
    int rc = rnn_run(tmp("case.safetensors"), tmp("out.safetensors"), false, err, sizeof err);
    cr_assert_eq(rc, 2, "status %d for: %s", rc, why);
    cr_assert(strstr(err, why), "'%s' is not in: %s", why, err);
    cr_assert_neq(access(tmp("out.safetensors"), F_OK), 0, "no output is written");
}

static loom_st *golden(void)
{
    char err[512];
    loom_st *f = st_read(LOOM_GOLDEN_DIR "/gru_l1_uni.safetensors", err, sizeof err);
    cr_assert(f, "%s", err);
    return f;
}

Test(rnn_run, bad_case_files)
{
    float z[64] = {0};
    loom_st *f = golden();
    loom_st_set_meta(f, "cell", "transformer");
    expect_rnn_run_error(f, "'cell' = 'transformer' is not one of");
    loom_st_free(f);

    f = golden();
    loom_st_set_meta(f, "layers", "two");
    expect_rnn_run_error(f, "'layers' = 'two' is not an integer");
    loom_st_free(f);

    f = golden();
    loom_st_set_meta(f, "bidirectional", "yes");
    expect_rnn_run_error(f, "'bidirectional' = 'yes'");
    loom_st_free(f);

    f = golden();
    loom_st_add(f, "weight_hh_l0", LOOM_F32, loom_shape2(15, 4), z);
    expect_rnn_run_error(f, "'weight_hh_l0' is F32 (15,4), expected F32 (15,5)");
    loom_st_free(f);

    f = golden();
    loom_st_add(f, "weight_hh_l7", LOOM_F32, loom_shape1(1), z);
    expect_rnn_run_error(f, "'weight_hh_l7' is neither a parameter");
    loom_st_free(f);

    f = golden();
    loom_st_set_meta(f, "hidden_size", "6");
    expect_rnn_run_error(f, "expected F32");
    loom_st_free(f);

    f = golden();
    loom_st_add(f, "lengths", LOOM_F32, loom_shape1(3), z);
    expect_rnn_run_error(f, "'lengths' is F32 (3,), expected I32 (3,)");
    loom_st_free(f);

    f = golden();
    int32_t bad_len[3] = {5, 0, 2};
    loom_st_add(f, "lengths", LOOM_I32, loom_shape1(3), bad_len);
    expect_rnn_run_error(f, "length 0 of sequence 1 is not in [1, 5]");
    loom_st_free(f);

    char err[512];
    cr_assert_eq(rnn_run(tmp("nothing.safetensors"), tmp("out.safetensors"), false, err, sizeof err), 2);
    cr_assert(strstr(err, "cannot open"), "%s", err);
}

/* A small case that asks for a huge model but holds none of its weights is
 * refused from the file alone: under an address-space limit far below what
 * the model would take, the message is about the missing weights. */
Test(rnn_run, missing_weights_are_found_before_allocating)
{
    loom_st *f = loom_st_new();
    loom_st_set_meta(f, "cell", "lstm");
    loom_st_set_meta(f, "bidirectional", "false");
    const char *meta[][2] = {{"layers", "1"}, {"input_size", "1"}, {"hidden_size", "4096"}, {"seq_len", "2"}, {"batch", "1"}};
    for (unsigned i = 0; i < 5; i++) loom_st_set_meta(f, meta[i][0], meta[i][1]);
    float x[2] = {0};
    loom_st_add(f, "input", LOOM_F32, loom_shape3(2, 1, 1), x);
    cr_assert_eq(loom_st_write(f, tmp("case.safetensors")), LOOM_OK);
    loom_st_free(f);
#ifndef __SANITIZE_ADDRESS__
    struct rlimit lim = {(rlim_t)200 << 20, (rlim_t)200 << 20}; /* weight_hh_l0 alone would take 268 MB */
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
#endif
    char err[1024];
    cr_assert_eq(rnn_run(tmp("case.safetensors"), tmp("out.safetensors"), false, err, sizeof err), 2);
    cr_assert(strstr(err, "'weight_ih_l0' (16384,1) is missing"), "%s", err);
}

/* NaN or infinite inputs: a warning and NaN results by default, refused
 * with --finite. */
Test(rnn_run, non_finite_inputs)
{
    loom_st *f = golden();
    const loom_st_tensor *w = loom_st_get(f, "weight_hh_l0");
    float *v = w->data;
    v[3] = NAN;
    cr_assert_eq(loom_st_write(f, tmp("case.safetensors")), LOOM_OK);
    loom_st_free(f);
    char err[1024];
    cr_assert_eq(rnn_run(tmp("case.safetensors"), tmp("out.safetensors"), true, err, sizeof err), 2);
    cr_assert(strstr(err, "'weight_hh_l0' holds 1 non-finite values (the first at element 3)"), "%s", err);
    cr_assert_neq(access(tmp("out.safetensors"), F_OK), 0, "nothing is written");
    cr_assert_eq(rnn_run(tmp("case.safetensors"), tmp("out.safetensors"), false, err, sizeof err), 0, "%s", err);
    f = st_read(tmp("out.safetensors"), err, sizeof err);
    cr_assert(isnan(((float *)loom_st_get(f, "output")->data)[0]), "the NaN reaches the output");
    loom_st_free(f);
}

/* Numbers in metadata: strict decimal (or hex) in range, written back as read. */
Test(weights, metadata_numbers)
{
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_st_set_meta_int(f, "n", -42), LOOM_OK);
    cr_assert_str_eq(loom_st_meta(f, "n"), "-42");
    int64_t v = 0;
    cr_assert(loom_st_meta_int(f, "n", -100, 100, &v) && v == -42);
    cr_assert(!loom_st_meta_int(f, "n", 0, 100, &v), "below the range");
    static const char *const bad[] = {"", " 3", "+3", "3 ", "abc", "1e3", "9223372036854775808", "-"};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_st_set_meta(f, "b", bad[i]);
        cr_assert(!loom_st_meta_int(f, "b", INT64_MIN, INT64_MAX, &v), "'%s' is refused", bad[i]);
    }
    cr_assert(!loom_st_meta_int(f, "missing", 0, 1, &v));
    uint64_t h = 0;
    loom_st_set_meta(f, "h", "00ff00ff00ff00ff");
    cr_assert(loom_st_meta_hex(f, "h", &h) && h == 0x00ff00ff00ff00ffull);
    static const char *const bad_hex[] = {"", "12345678901234567", "zz", "0x12", " 1"};
    for (unsigned i = 0; i < sizeof bad_hex / sizeof *bad_hex; i++) {
        loom_st_set_meta(f, "h", bad_hex[i]);
        cr_assert(!loom_st_meta_hex(f, "h", &h), "'%s' is refused", bad_hex[i]);
    }
    loom_st_free(f);
}
