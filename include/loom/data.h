/* loom/data.h — text, tokens, vocabularies, minibatches, synthetic tasks.
 *
 * Text is UTF-8; a character tokeniser yields one token per Unicode code
 * point (an accented letter or a Chinese character is one token), a word
 * tokeniser splits at white space and punctuation, a space tokeniser at
 * white space only (d2l's translation pairs: "j'ai" stays one token). A vocabulary orders its
 * tokens by frequency (ties: first occurrence first), after <unk> (always
 * id 0) and, when asked for, <pad>, <bos>, <eos>. Minibatch iterators cut
 * one long token stream into (T, B) windows, time-major as loom's recurrent
 * layers take them, by random sampling or sequential partitioning.
 */
#ifndef LOOM_DATA_H
#define LOOM_DATA_H

#include "loom/graph.h"
#include "loom/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LINE: each line is one token (labels, names with spaces). */
typedef enum { LOOM_TOKENS_CHAR = 0, LOOM_TOKENS_WORD, LOOM_TOKENS_SPACE, LOOM_TOKENS_LINE } loom_token_kind;

typedef struct {
    loom_token_kind kind;
    bool lower;          /* lower-case every letter (Unicode simple case mapping) */
    /* d2l's Time Machine preprocessing: per line, every run of characters
     * that are not ASCII letters becomes one space, the line is trimmed and
     * lower-cased; the lines are then joined without a separator. With
     * character tokens this gives d2l's vocabulary of 28. */
    bool letters_only;
    int min_freq;        /* tokens rarer than this map to <unk> (default 1: keep all) */
    bool specials;       /* reserve <pad>, <bos>, <eos> (ids 1, 2, 3) besides <unk> */
} loom_text_opts;

typedef struct loom_vocab loom_vocab;

/* A tokenised text and its vocabulary. Errors (unreadable file, invalid
 * UTF-8 with its byte offset) are kept in the object: loom_text_error. */
typedef struct loom_text loom_text;

loom_text *loom_text_new(const loom_text_opts *opts); /* NULL only when out of memory */
void loom_text_free(loom_text *t);
/* Tokenises a file or a string and builds the vocabulary from it. */
loom_status loom_text_read(loom_text *t, const char *path);
loom_status loom_text_parse(loom_text *t, const char *utf8, size_t n);
/* Tokenises with an existing vocabulary (held-out text: tokens it does not
 * know become <unk>). The vocabulary must outlive t. */
loom_status loom_text_read_with(loom_text *t, const char *path, const loom_vocab *v);
loom_status loom_text_parse_with(loom_text *t, const char *utf8, size_t n, const loom_vocab *v);
const char *loom_text_error(const loom_text *t);
/* The token ids, in order, and how many. */
const int32_t *loom_text_ids(const loom_text *t, int64_t *n);
const loom_vocab *loom_text_vocab(const loom_text *t);

enum { LOOM_UNK = 0, LOOM_PAD = 1, LOOM_BOS = 2, LOOM_EOS = 3 };

int loom_vocab_size(const loom_vocab *v);
loom_token_kind loom_vocab_kind(const loom_vocab *v);
/* Token id → its UTF-8 text ("<unk>" ...); NULL for an id out of range. */
const char *loom_vocab_token(const loom_vocab *v, int32_t id);
/* Token text → id (LOOM_UNK when unknown). */
int32_t loom_vocab_id(const loom_vocab *v, const char *token);
/* The first id that is a word of the text: past <unk> and, in a
 * vocabulary that reserves them, <pad> <bos> <eos> (ids after it are in
 * frequency order). */
int32_t loom_vocab_first_word(const loom_vocab *v);
/* How often the token occurred in the text the vocabulary was built from. */
int64_t loom_vocab_count(const loom_vocab *v, int32_t id);
/* The byte offset of the first byte of s[0..n) that does not belong to
 * UTF-8 text (an invalid, overlong or truncated sequence, a surrogate, a
 * value past U+10FFFF, or a NUL), or -1 when all of it is text. */
int64_t loom_utf8_check(const char *s, size_t n);
/* Tokenises utf8 with v's tokeniser and options into ids (at most max);
 * returns the number of tokens, or -1 for invalid UTF-8. */
int64_t loom_vocab_encode(const loom_vocab *v, const char *utf8, size_t n, int32_t *ids, int64_t max);
/* Writes the tokens of ids as text (words separated by spaces) into buf
 * (NUL-terminated, truncated to size); returns the full length. */
size_t loom_vocab_decode(const loom_vocab *v, const int32_t *ids, int64_t n, char *buf, size_t size);
/* The vocabulary as one string (for checkpoints) and back. NULL on failure
 * (from_string: a malformed string). The string is malloc'd. */
char *loom_vocab_to_string(const loom_vocab *v);
loom_vocab *loom_vocab_from_string(const char *s);
void loom_vocab_free(loom_vocab *v); /* only for vocabularies from loom_vocab_from_string */

/* ---- minibatches over one token stream ---- */

typedef enum {
    /* random sampling: each epoch drops a random 0..T-1 tokens at the
     * start, cuts the rest into windows of T, and deals them to batches in
     * random order; windows of one batch are not adjacent, so the state is
     * re-initialised every batch */
    LOOM_SAMPLE_RANDOM = 0,
    /* sequential partitioning: each epoch drops a random 0..T tokens, splits
     * the rest into B parallel streams, and batch i+1 continues batch i in
     * every stream, so the state is carried over (detached) */
    LOOM_SAMPLE_SEQUENTIAL
} loom_sampling;

typedef struct loom_batches loom_batches;

/* Windows of `steps` tokens, `batch` at a time, over ids (which must
 * outlive the iterator). NULL when the stream is too short for one batch
 * or out of memory. */
loom_batches *loom_batches_new(const int32_t *ids, int64_t n, int steps, int batch, loom_sampling s, uint64_t seed);
void loom_batches_free(loom_batches *b);
/* The next batch: x and y (steps × batch, time-major: x[t·batch + b]),
 * y the tokens that follow x. Starts the next epoch when one ends;
 * returns true when this batch starts an epoch. */
bool loom_batches_next(loom_batches *b, int32_t *x, int32_t *y);
int64_t loom_batches_per_epoch(const loom_batches *b);
/* Position: epoch and batch within it (for checkpoints); seek restores it. */
void loom_batches_tell(const loom_batches *b, int64_t *epoch, int64_t *batch);
void loom_batches_seek(loom_batches *b, int64_t epoch, int64_t batch);
/* Data parallelism: this process is rank `rank` of `ranks`, and `batch`
 * (a multiple of ranks) is the global batch. From now on next fills only
 * this rank's batch / ranks columns — streams (sequential) or windows
 * (random) rank·batch/ranks … (rank+1)·batch/ranks − 1 of the global batch —
 * into x and y of steps × (batch / ranks): the ranks together see what one
 * process with the whole batch sees. false (nothing changed) for a rank
 * out of range or a batch not divisible by ranks. */
bool loom_batches_shard(loom_batches *b, int rank, int ranks);
/* The columns next fills (the batch, or this rank's share of it). */
int loom_batches_columns(const loom_batches *b);

/* ---- parallel text (sequence to sequence) ---- */

/* What a line holds:
 *   TEXT:     "source TAB target", parallel text (below);
 *   LABELLED: "label TAB text", a text and its class: side 0 is the text
 *             (as a source sentence), side 1 the label — the whole first
 *             column, trimmed, case kept, one token (its vocabulary has
 *             no specials: <unk>, then the labels); target_steps is 1;
 *   TAGGED:   "tokens TAB tags", one tag per token: side 0 the tokens,
 *             side 1 the tags, each split at white space only (no other
 *             preprocessing, tags' case kept; the tokens lower-cased), with
 *             <eos> after both; a line whose counts differ is bad. Side 1's
 *             length is side 0's. */
typedef enum { LOOM_PAIRS_TEXT = 0, LOOM_PAIRS_LABELLED, LOOM_PAIRS_TAGGED } loom_pairs_kind;

typedef struct {
    loom_pairs_kind kind;
    int num_steps;     /* every sentence cut or padded to this many tokens, <eos> included (default 10) */
    int target_steps;  /* the target side's length, when it differs (default num_steps) */
    int min_freq;      /* per side: rarer tokens map to <unk> (default 1) */
    double valid_frac; /* the held-out share of the pairs, after a seeded shuffle (0: none) */
    bool keep_order;   /* no shuffle: the held-out share is the last pairs of the text */
    bool chars;        /* character tokens (one per code point, spaces too), lower case, and no
                          other preprocessing: synthetic tasks, scripts written without spaces */
    uint64_t seed;
    /* Vocabularies to read with instead of building them (held-out text of
     * a trained model: unknown tokens become <unk>); they must outlive the
     * pairs, and their kind sets `chars`. */
    const loom_vocab *vocab[2];
} loom_pairs_opts;

/* Tab-separated pairs, "source TAB target" per line (later columns, such
 * as the attribution of the Tatoeba/manythings files, are not read), with
 * d2l's preprocessing: non-breaking spaces become spaces, a space goes
 * before , . ! ? that follow a non-space, lower case, words split at
 * white space; a vocabulary per side with <unk>, <pad>, <bos>, <eos>;
 * each sentence + <eos>, cut or padded with <pad> to num_steps, and its
 * valid length (tokens before the padding). A line without a tab or with
 * an empty side (or, TAGGED, with more or fewer tags than tokens) is bad:
 * counted, its number kept, never silently dropped.
 * Errors (unreadable file, no pair at all, invalid UTF-8) are kept in the
 * object: loom_pairs_error. */
typedef struct loom_pairs loom_pairs;
loom_pairs *loom_pairs_new(const loom_pairs_opts *opts); /* NULL only when out of memory */
void loom_pairs_free(loom_pairs *p);
loom_status loom_pairs_read(loom_pairs *p, const char *path);
loom_status loom_pairs_parse(loom_pairs *p, const char *utf8, size_t n);
const char *loom_pairs_error(const loom_pairs *p);
/* Pairs in the training part (valid false) or the held-out part. */
int64_t loom_pairs_count(const loom_pairs *p, bool valid);
/* The length every sentence of a side (0: source, 1: target) is cut or padded to. */
int loom_pairs_steps(const loom_pairs *p, int side);
/* Side 0: source, 1: target. */
const loom_vocab *loom_pairs_vocab(const loom_pairs *p, int side);
/* The bad lines (1-based numbers) and how many. */
int64_t loom_pairs_bad_lines(const loom_pairs *p, const int64_t **lines);
/* Pair i of a part: loom_pairs_steps ids per side and their valid lengths (any
 * output may be NULL); false when i is out of range. */
bool loom_pairs_get(const loom_pairs *p, bool valid, int64_t i, int32_t *src, int32_t *src_len, int32_t *tgt,
                    int32_t *tgt_len);
/* One sentence prepared as the side whose vocabulary v is: preprocessed
 * (d2l's, or for character pairs lower case only), tokens, <eos>, cut or
 * padded with <pad> to steps ids. Returns the valid length; −1 for invalid
 * UTF-8 or bad arguments, −2 when out of memory. */
int loom_pairs_encode(const loom_vocab *v, const char *utf8, size_t n, int steps, int32_t *ids);
/* d2l's preprocessing of n bytes into out (NUL-terminated, truncated to
 * size), before lower-casing and splitting; returns the full length. */
size_t loom_d2l_preprocess(const char *utf8, size_t n, char *out, size_t size);

/* Minibatches of pairs for an encoder–decoder, time-major as
 * loom_seq2seq reads them: src (Ts·B) and src_len (B); dec_in (Tt·B),
 * <bos> then the target shifted right; tgt (Tt·B) and tgt_len (B); gold
 * (Tt·B, scheduled sampling): 1 where the decoder step reads the gold
 * token. The buffers are the object's: bind them once. */
typedef struct {
    int32_t *src, *src_len, *dec_in, *tgt, *tgt_len;
    float *gold; /* NULL when every step reads the gold token (teacher_forcing 1) */
} loom_pair_batch;
typedef struct loom_pair_batches loom_pair_batches;
/* Training batches of p's training part: its pairs in a seeded order,
 * reshuffled at every epoch (Fisher–Yates); each step reads the gold
 * token with probability teacher_forcing. p must outlive the batches.
 * NULL when out of memory or for a bad size (batch < 1, no pair). */
loom_pair_batches *loom_pair_batches_new(const loom_pairs *p, int batch, double teacher_forcing, uint64_t seed);
void loom_pair_batches_free(loom_pair_batches *b);
const loom_pair_batch *loom_pair_batches_buffers(const loom_pair_batches *b);
/* The next training batch into the buffers. */
void loom_pair_batches_next(loom_pair_batches *b);
/* Rows first, first + 1, ... (wrapping) of a part of held (pairs of the
 * same sizes), in order, every step reading the gold token: a held-out
 * batch (of loom_pair_batches_columns rows). */
void loom_pair_batches_rows(loom_pair_batches *b, const loom_pairs *held, bool valid, int64_t first);
/* Data parallelism, as loom_batches_shard: `batch` is the global batch;
 * from now on next fills this rank's batch / ranks rows of each global
 * batch (rows rank·batch/ranks …, with the draws one process makes) into
 * buffers of batch / ranks columns, and rows fills batch / ranks rows.
 * false (nothing changed) for a rank out of range or a batch not
 * divisible by ranks. */
bool loom_pair_batches_shard(loom_pair_batches *b, int rank, int ranks);
int loom_pair_batches_columns(const loom_pair_batches *b);
/* The valid tokens of the buffers' rows on a side (0: source, 1: target):
 * Σ min(length, steps) — what a loss masked by the lengths averages over
 * (loom_trainer_set_share). */
int64_t loom_pair_batches_tokens(const loom_pair_batches *b, int side);
/* The position (order, draws, pairs taken) in a checkpoint: "data.order",
 * "loom.rng", "loom.pos"; restore checks it all before changing anything
 * (false: missing, out of range or not a permutation of these pairs). */
bool loom_pair_batches_save(const loom_pair_batches *b, loom_st *f);
bool loom_pair_batches_restore(loom_pair_batches *b, const loom_st *f);

/* ---- synthetic parallel text (no file), as loom_pairs_parse takes it ---- */

/* Sequence reversal: n lines of min_len..max_len random letters a–z (the
 * length uniform), TAB, the same letters reversed. Read with `chars`.
 * NUL-terminated and malloc'd; NULL when out of memory or lengths < 1. */
char *loom_task_reverse_pairs(int64_t n, int min_len, int max_len, uint64_t seed);
/* Date normalisation: n lines of a random date of 1950-01-01 ..
 * 2049-12-31 written as people write dates ("24 nov 2026", "tuesday,
 * november 24, 2026", "11/24/26", "24.11.2026", "the 24th of november
 * 2026", ... LOOM_DATE_FORMATS of them), TAB, the date in ISO 8601
 * ("2026-11-24"). One date in ten (fixed by the date, not the seed) is
 * held out: `held_out` draws only those, else only the others, so the
 * held-out dates are never seen in training in any format. Read with
 * `chars`. NULL when out of memory. */
#define LOOM_DATE_FORMATS 16
char *loom_task_date_pairs(int64_t n, bool held_out, uint64_t seed);
/* Date d (days since 1950-01-01, in [0, 36524]) in format f: the line's
 * source side, into out (NUL-terminated); returns its length. */
int loom_task_date_text(int d, int f, char *out, size_t size);

/* ---- synthetic long-range tasks (no file) ---- */

/* The adding problem: x (T, B, 2) of (value in [0, 1), marker); exactly
 * two markers per sequence, one in each half; y (B) the sum of the two
 * marked values. Predicting the mean scores MSE ≈ 0.167. */
void loom_task_adding(int T, int B, uint64_t seed, float *x, float *y);
/* The copy (memory) task with K symbols of an alphabet of A (A + 2 classes:
 * 0 blank, 1..A symbols, A+1 the delimiter): x (K + T + K, B) is K random
 * symbols, T−1 blanks, the delimiter, K blanks; y the same length, blanks
 * until the last K steps, which must reproduce the K symbols. */
void loom_task_copy(int T, int K, int A, int B, uint64_t seed, int32_t *x, int32_t *y);
/* The temporal-order problem (Hochreiter & Schmidhuber 1997, task 6a),
 * scaled to any length T ≥ 10: x (T, B) starts with B (6) and ends with E
 * (7); between them random distractors a–d (0–3), except at t1 in
 * [T/10, 2T/10] and t2 in [T/2, T/2 + T/10], which hold X (4) or Y (5);
 * y (B) is the class of the order: XX 0, XY 1, YX 2, YY 3. What decides
 * the class lies T/2 steps and more before the end. */
void loom_task_order(int T, int B, uint64_t seed, int32_t *x, int32_t *y);
/* d2l 8.1's series: x_t = sin(0.01 t) + ε_t, ε ~ N(0, 0.2²), t = 1..n. */
void loom_task_sine_series(uint64_t seed, int64_t n, float *x);

#ifdef __cplusplus
}
#endif
#endif
