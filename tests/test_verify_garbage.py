"""The reward is a security boundary: a policy learns whatever the checker pays for.

Random strings must never be paid. Four kinds, each a quarter of the draw:
  (a) random printable characters,
  (b) random words, biased to the ones the fallbacks look for ("the", "answer", "is", "final",
      "thus", ":", "=", "####", digits), joined by spaces, nothing, or line breaks,
  (c) random digits and operators,
  (d) random token ids decoded by a tiny word-piece tokenizer built here from a few closing
      statements, so that pieces of real answers ("Answer", ":", " is", "$") come glued.
Every string is scored against all the small-integer golds 0..20 at once (a list gold).
A closed \\boxed{} is left out of the vocabularies: a box is an explicit commitment, paid
whatever surrounds it.
"""
import random
import re
import string

import verify

GOLDS = [str(g) for g in range(21)]
PRINTABLE = string.printable[:-5]                   # no \t\n\r\x0b\x0c
DIGITS_OPS = "0123456789" * 3 + "+-*/=.,^()"
CORPUS = ("Let x be the number of apples. We expand both sides, collect like terms and simplify "
          "the fraction, so the equation holds. Substituting back, the constraint is satisfied "
          "and the total cost per day is known. Therefore we check each case and the final step.\n"
          "First, note that the triangle has two equal angles, which means its sides opposite "
          "them are equal as well. Squaring gives a quadratic whose roots we find by factoring; "
          "dividing by the common factor leaves a linear relation between the remaining variables. "
          "Since the sum of the probabilities must be one, the missing value follows directly. "
          "Wait, let me recompute: multiplying instead of adding would double count the pairs, "
          "because order does not matter here. Hence only half of them are distinct, assuming "
          "every choice is independent of the previous ones.\n"
          "The answer is $3$. I hope it is correct.\n"
          "Final Answer: The final answer is $7$. I hope it is correct.\n"
          "Thus, Janet makes $18 every day.\n#### 12\nSo the total is 1,250 dollars.\n"
          "Answer: (B)\nWe get x = 2 + 3 = 5, so \\frac{1}{2} of 20 is 10.")
PUNCTUATION = sorted(set(re.findall(r"[^\w\s]+", CORPUS)) | set(re.findall(r"[^\w\s]", CORPUS)))
# (b): the corpus's words and punctuation as separate words, and the numbers 0..20
WORDS = sorted(set(re.findall(r"[A-Za-z]+", CORPUS))) + PUNCTUATION + GOLDS
# (d): a word-level tokenizer's vocabulary: each word with and without its leading space, as
# a BPE vocabulary has them, every punctuation run and character, the line break, the digits
VOCAB = sorted({p for w in re.findall(r"[A-Za-z]+|\d", CORPUS) for p in (w, " " + w)}
               | set(PUNCTUATION) | {" ", "\n"})


def random_strings(n, seed=0):
    """n strings, a quarter of each kind (a)..(d), reproducible from the seed."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            out.append("".join(rng.choices(PRINTABLE, k=64)))
        elif kind == 1:
            words = rng.choices(WORDS, k=rng.randint(6, 24))
            out.append("".join(w + " " if rng.random() < 0.8 else w for w in words).strip())
        elif kind == 2:
            out.append("".join(rng.choices(DIGITS_OPS, k=rng.randint(4, 40))))
        else:
            ids = [rng.randrange(len(VOCAB)) for _ in range(rng.randint(4, 40))]
            out.append("".join(VOCAB[i] for i in ids))      # the tokenizer's decode
    return out


def false_rewards(strings):
    """The strings that some small-integer gold would pay."""
    return [s for s in strings if verify.reward(s, GOLDS)]


def test_random_strings_are_never_paid():
    strings = random_strings(100_000)
    assert false_rewards(strings) == []


def test_the_tokenizer_makes_answers_from_its_pieces():
    # the decode can spell a real closing statement: the test above is not trivially safe
    assert verify.reward("".join(["Final", " Answer", ":", " 7"]), GOLDS) == 1.0
    assert {"Answer", ":", " is", "$", "####", "\n"} <= set(VOCAB)
