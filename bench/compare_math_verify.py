"""verify.py side by side with math-verify on the labelled cases of bench/verify_cases.py
(optional).

    pip install math-verify
    python bench/compare_math_verify.py

math-verify (Hugging Face's checker: sympy with an ANTLR LaTeX parser) is never a dependency of
this repo: when it is not installed this script says so and exits 0. Each labelled (answer,
gold) pair becomes the completion "... so the answer is \\boxed{answer}" against the gold,
which math-verify gets as "$gold$", as its README asks (parse both, then verify(gold, answer),
in that order); whole completions (CLOSINGS and the adversarial categories) are given as they
are. Prints every disagreement with the label and who is right, then each checker's accuracy
against the labels overall and per table or category, their agreement, and their cases/s.
"""
import os
import sys
import time

try:
    import math_verify
except ImportError:
    print("math-verify is not installed (pip install math-verify): nothing to compare")
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import verify  # noqa: E402
from verify_cases import labelled  # noqa: E402


def ours(completion, gold):
    return verify.reward(completion, gold) == 1.0


def theirs(completion, gold):
    golds = gold if isinstance(gold, (list, tuple)) else [gold]    # any one of a list counts
    try:
        answer = math_verify.parse(completion)
        return any(math_verify.verify(math_verify.parse(f"${g}$"), answer) for g in golds)
    except Exception:          # a checker that raises pays nothing, as verify.py's safety net
        return False


def timed(checker, todo):
    t0 = time.perf_counter()
    verdicts = [checker(text, gold) for _, text, gold, _ in todo]
    return verdicts, len(todo) / (time.perf_counter() - t0)


def _short(text, width=80):
    return text if len(text) <= width else text[:40] + "..." + text[-(width - 43):]


def main():
    todo = [(name, text, gold, label == 1.0) for name, text, gold, label in labelled()]
    mine, my_rate = timed(ours, todo)
    hf, hf_rate = timed(theirs, todo)
    n = len(todo)
    print("disagreements (label: should it be paid; who is right):")
    for (name, text, gold, label), a, b in zip(todo, mine, hf):
        if a != b:
            right = "verify.py" if a == label else "math-verify"
            shown = _short(text.removeprefix("... so the answer is "))
            print(f"  [{name}] {shown!r} vs gold {_short(repr(gold), 40)}: label {label}, "
                  f"verify.py {a}, math-verify {b} -> {right} is right")
    print("accuracy against the labels, by table or category (verify.py, math-verify):")
    for table in dict.fromkeys(name for name, *_ in todo):
        rows = [k for k, case in enumerate(todo) if case[0] == table]
        ok = [sum(v[k] == todo[k][3] for k in rows) for v in (mine, hf)]
        print(f"  {table:<52} {ok[0]:>3}/{len(rows):<3} {ok[1]:>3}/{len(rows)}")
    paid = [sum(v[k] for k in range(n) if not todo[k][3]) for v in (mine, hf)]
    refused = [sum(not v[k] for k in range(n) if todo[k][3]) for v in (mine, hf)]
    print(f"{n} labelled cases: {sum(not c[3] for c in todo)} that must not be paid, "
          f"{sum(c[3] for c in todo)} that must")
    for name, verdicts, rate, p, r in (("verify.py", mine, my_rate, paid[0], refused[0]),
                                       ("math-verify", hf, hf_rate, paid[1], refused[1])):
        right = sum(v == case[3] for v, case in zip(verdicts, todo))
        print(f"{name:<12} accuracy {right}/{n} ({right / n:.1%}): {p} wrongly paid, "
              f"{r} wrongly refused; {rate:,.0f} cases/s")
    agree = sum(a == b for a, b in zip(mine, hf))
    print(f"agreement    {agree}/{n} ({agree / n:.1%})")


if __name__ == "__main__":
    main()
