"""verify.py side by side with math-verify on the repo's labelled cases (optional).

    pip install math-verify
    python bench/compare_math_verify.py

math-verify (Hugging Face's checker: sympy with an ANTLR LaTeX parser) is never a dependency of
this repo: when it is not installed this script says so and exits 0. The cases are the labelled
lists of tests/test_verify.py: each (pred, gold) pair becomes the completion
"... so the answer is \\boxed{pred}" against the gold, which math-verify gets as "$gold$", as
its README asks (parse both, then verify(gold, answer), in that order); the whole completions
of CLOSINGS are given as they are. Prints every disagreement with the label and who is right,
then each checker's accuracy against the labels, their agreement, and their cases/s.
"""
import os
import sys
import time

try:
    import math_verify
except ImportError:
    print("math-verify is not installed (pip install math-verify): nothing to compare")
    sys.exit(0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
import test_verify as labelled  # noqa: E402
import verify  # noqa: E402

PAIRS = {"EQUIV": True, "MORE_EQUIV": True, "REAL_EQUIV": True,
         "NOT_EQUIV": False, "MORE_NOT_EQUIV": False, "REAL_NOT_EQUIV": False}


def cases():
    """(list name, completion, gold, label): True when the completion should be paid."""
    out = [(name, f"... so the answer is \\boxed{{{pred}}}", gold, label)
           for name, label in PAIRS.items() for pred, gold in getattr(labelled, name)]
    out += [("ORIENTED", f"... so the answer is \\boxed{{{pred}}}", gold, label)
            for pred, gold, label in labelled.ORIENTED]
    out += [("CLOSINGS", text, gold, paid == 1.0) for text, gold, paid in labelled.CLOSINGS]
    return out


def ours(completion, gold):
    return verify.reward(completion, gold) == 1.0


def theirs(completion, gold):
    try:
        return bool(math_verify.verify(math_verify.parse(f"${gold}$"),
                                       math_verify.parse(completion)))
    except Exception:          # a checker that raises pays nothing, as verify.py's safety net
        return False


def timed(checker, todo):
    t0 = time.perf_counter()
    verdicts = [checker(text, gold) for _, text, gold, _ in todo]
    return verdicts, len(todo) / (time.perf_counter() - t0)


def main():
    todo = cases()
    mine, my_rate = timed(ours, todo)
    hf, hf_rate = timed(theirs, todo)
    n = len(todo)
    print("disagreements (label: should it be paid; who is right):")
    for (name, text, gold, label), a, b in zip(todo, mine, hf):
        if a != b:
            right = "verify.py" if a == label else "math-verify"
            shown = text.removeprefix("... so the answer is ")
            shown = shown if len(shown) <= 80 else "..." + shown[-70:]
            print(f"  [{name}] {shown!r} vs gold {gold!r}: label {label}, verify.py {a}, "
                  f"math-verify {b} -> {right} is right")
    agree = sum(a == b for a, b in zip(mine, hf))
    print(f"{n} labelled cases ({n - len(labelled.CLOSINGS)} boxed pairs, "
          f"{len(labelled.CLOSINGS)} whole completions)")
    for name, verdicts, rate in (("verify.py", mine, my_rate), ("math-verify", hf, hf_rate)):
        right = sum(v == case[3] for v, case in zip(verdicts, todo))
        print(f"{name:<12} accuracy {right}/{n} ({right / n:.1%}), {rate:,.0f} cases/s")
    print(f"agreement    {agree}/{n} ({agree / n:.1%})")


if __name__ == "__main__":
    main()
