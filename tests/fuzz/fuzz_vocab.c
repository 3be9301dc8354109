/* libFuzzer target: a vocabulary's JSON form, as checkpoints store it
 * (loom_vocab_from_string). A vocabulary that is read writes back to a
 * string that reads to the same string again, its counts are in range, and
 * it encodes and decodes text. */
#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    loom_vocab *v = loom_vocab_from_string(s);
    free(s);
    if (!v) return 0;
    int n = loom_vocab_size(v);
    if (n < 1 || strcmp(loom_vocab_token(v, 0), "<unk>")) abort();
    for (int i = 0; i < n; i++) {
        if (loom_vocab_count(v, i) < 0) abort();
        const char *t = loom_vocab_token(v, i);
        if (!t || !*t || loom_utf8_check(t, strlen(t)) >= 0 || loom_vocab_id(v, t) != i) abort();
    }
    char *out = loom_vocab_to_string(v);
    loom_vocab *back = out ? loom_vocab_from_string(out) : NULL;
    char *again = back ? loom_vocab_to_string(back) : NULL;
    if (out && (!back || (again && strcmp(out, again)))) abort();
    const char *text = "The time traveller, 1895. Ünïcödé!";
    int32_t ids[64];
    int64_t k = loom_vocab_encode(v, text, strlen(text), ids, 64);
    if (k < 0) abort();
    char buf[512];
    loom_vocab_decode(v, ids, k < 64 ? k : 64, buf, sizeof buf);
    free(out), free(again);
    loom_vocab_free(back);
    loom_vocab_free(v);
    return 0;
}
