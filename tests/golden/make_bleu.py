#!/usr/bin/python3
"""Writes tests/golden/bleu.txt: BLEU reference values from NLTK's corpus_bleu
and sentence_bleu (no smoothing, uniform weights) and from d2l's bleu(), on
seeded random token sequences (small vocabularies, so n-grams repeat and
match) and on d2l's translation examples.

  /usr/bin/python3 tests/golden/make_bleu.py     (needs Debian's python3-nltk)

Format, one case per block:
  case corpus|d2l MAX_N VALUE
  h LEN ids...          a hypothesis (corpus) or the prediction (d2l)
  r LEN ids...          its references (d2l: the one label)
  ...
  end"""
import collections
import math
import os
import random
import warnings

from nltk.translate.bleu_score import corpus_bleu

warnings.filterwarnings("ignore")  # NLTK warns when a precision is 0


def d2l_bleu(pred, label, k):
    """d2l's bleu() (Dive into Deep Learning, the seq2seq section), on token lists."""
    len_pred, len_label = len(pred), len(label)
    score = math.exp(min(0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, collections.defaultdict(int)
        for i in range(len_label - n + 1):
            label_subs[tuple(label[i:i + n])] += 1
        for i in range(len_pred - n + 1):
            if label_subs[tuple(pred[i:i + n])] > 0:
                num_matches += 1
                label_subs[tuple(pred[i:i + n])] -= 1
        score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


def seq(rng, vocab, lo, hi):
    return [rng.randrange(vocab) for _ in range(rng.randint(lo, hi))]


def block(kind, max_n, value, hyps, refs):
    lines = ["case %s %d %.17g" % (kind, max_n, value)]
    for h, rs in zip(hyps, refs):
        lines.append("h %d %s" % (len(h), " ".join(map(str, h))))
        lines += ["r %d %s" % (len(r), " ".join(map(str, r))) for r in rs]
    return "\n".join(lines) + "\nend\n"


rng = random.Random(20261127)
out = []
for case in range(60):
    vocab = rng.choice([3, 5, 8])
    n = 1 if case < 20 else rng.randint(2, 6)  # sentence BLEU, then corpora
    max_n = rng.choice([1, 2, 4, 4])
    hyps = [seq(rng, vocab, 1 if case % 7 else 0, 14) for _ in range(n)]
    refs = [[seq(rng, vocab, 1, 14) for _ in range(rng.randint(1, 3))] for _ in range(n)]
    value = corpus_bleu(refs, hyps, weights=[1.0 / max_n] * max_n) if any(hyps) else 0.0
    out.append(block("corpus", max_n, value, hyps, refs))

words = {}
def ids(sentence):
    return [words.setdefault(w, len(words)) for w in sentence.split(" ")]

for pred, label in [("va !", "va !"), ("j'ai perdu .", "j'ai perdu ."), ("il est riche .", "il est calme ."),
                    ("je suis en retard .", "je suis chez moi ."), ("il court .", "il est calme ."),
                    ("je suis chez moi .", "je suis chez moi ."), ("moi .", "je suis chez moi .")]:
    for k in (2, 3):
        out.append(block("d2l", k, d2l_bleu(ids(pred), ids(label), k), [ids(pred)], [[ids(label)]]))
for case in range(20):
    vocab = rng.choice([3, 5])
    pred, label = seq(rng, vocab, 1, 12), seq(rng, vocab, 1, 12)
    k = rng.randint(1, 4)
    out.append(block("d2l", k, d2l_bleu(pred, label, k), [pred], [[label]]))

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bleu.txt"), "w") as f:
    f.write("".join(out))
