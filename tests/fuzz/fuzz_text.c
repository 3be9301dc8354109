/* libFuzzer target: the text reader and tokenisers (data/text.c). The first
 * byte picks the options (token kind, lower case, d2l's letters only, a
 * minimum frequency, specials); the rest is the text. A text is accepted
 * exactly when it is UTF-8 without NUL bytes; an accepted text's
 * vocabulary survives a round trip through its string form, tokenises the
 * same text to the same ids, and encodes and decodes without error. */
#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1) return 0;
    unsigned o = data[0];
    loom_text_opts opts = {.kind = (loom_token_kind)(o % 3), .lower = o & 4, .letters_only = o & 8,
                           .min_freq = 1 + ((o >> 4) & 3), .specials = o & 64};
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    loom_text *t = loom_text_new(&opts);
    if (!t) return 0;
    loom_status st = loom_text_parse(t, s, n);
    bool valid = loom_utf8_check(s, n) < 0;
    if (valid != (st == LOOM_OK) && st != LOOM_ERR_NOMEM) abort(); /* refused exactly when not text */
    if (st) {
        if (!*loom_text_error(t)) abort(); /* a refusal says why */
        loom_text_free(t);
        return 0;
    }
    const loom_vocab *v = loom_text_vocab(t);
    int64_t n_ids;
    const int32_t *ids = loom_text_ids(t, &n_ids);
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= loom_vocab_size(v)) abort();
    char *str = loom_vocab_to_string(v);
    loom_vocab *back = str ? loom_vocab_from_string(str) : NULL;
    if (str && !back) abort(); /* what was written can be read */
    char *again = back ? loom_vocab_to_string(back) : NULL;
    if (back && again && strcmp(str, again)) abort(); /* and reads the same */
    if (back) {
        loom_text *t2 = loom_text_new(NULL);
        if (t2 && loom_text_parse_with(t2, s, n, back) == LOOM_OK) {
            int64_t n2;
            const int32_t *ids2 = loom_text_ids(t2, &n2);
            if (n2 != n_ids || (n_ids && memcmp(ids, ids2, (size_t)n_ids * sizeof *ids))) abort(); /* the same tokens */
        } else if (t2) {
            abort();
        }
        loom_text_free(t2);
        int64_t k = loom_vocab_encode(back, s, n, NULL, 0);
        if (k < 0) abort();
        int32_t *enc = malloc((size_t)(k + 1) * sizeof *enc);
        if (enc && loom_vocab_encode(back, s, n, enc, k) == k) {
            size_t len = loom_vocab_decode(back, enc, k, NULL, 0);
            char *dec = malloc(len + 1);
            if (dec) loom_vocab_decode(back, enc, k, dec, len + 1);
            if (dec && loom_utf8_check(dec, strlen(dec)) >= 0) abort(); /* decoding gives text */
            free(dec);
        }
        free(enc);
    }
    free(str), free(again);
    loom_vocab_free(back);
    loom_text_free(t);
    return 0;
}
