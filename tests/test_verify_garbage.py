"""The reward is a security boundary: a policy learns whatever the checker pays for.

Random strings must never be paid. The generator (four kinds: printable junk, word salad,
digits and operators, random token decodes) lives in bench/verify_cases.py, shared with
bench/bench_verify.py, which prints the same count."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))
import verify  # noqa: E402
from verify_cases import GOLDS, VOCAB, false_rewards, random_strings  # noqa: E402


def test_random_strings_are_never_paid():
    strings = random_strings(100_000)
    assert len(strings) == 100_000
    assert false_rewards(strings) == []


def test_the_tokenizer_makes_answers_from_its_pieces():
    # the decode can spell a real closing statement: the test above is not trivially safe
    assert verify.reward("".join(["Final", " Answer", ":", " 7"]), GOLDS) == 1.0
    assert {"Answer", ":", " is", "$", "####", "\n"} <= set(VOCAB)
