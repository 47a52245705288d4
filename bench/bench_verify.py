"""Cases per second of verify.reward over a few thousand mixed, generated cases, and how
many random strings it pays (it must pay none).

    python bench/bench_verify.py [--cases 4000] [--seed 0] [--random 100000]

Each case is a full completion (a paragraph of reasoning ending in a boxed answer, or a
fallback phrase, or garbage) and a gold answer, spelled in one of many ways: integers with
separators, decimals, fractions, mixed numbers, radicals, polynomials, tuples, sets,
intervals and unions, matrices (some with a scalar factored out), multiple choice, words.
Half of the cases are correct. Prints the rate, the slowest single call, and the share of
correct verdicts on cases whose truth is known by construction; then the false rewards on the
random strings of bench/verify_cases.py (printable junk, word salad, digits and operators,
random token decodes), each scored against every gold 0..20; then, on the labelled
adversarial cases of verify_cases.ADVERSARY, how many tricks are paid and how many of their
legitimate twins are refused; last, the slowest call on adversarial inputs of 100,000
characters (the most of a completion that is read) and of 1 MB.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import verify  # noqa: E402
from verify_cases import (ADVERSARY, best_of_3, false_rewards, huge_inputs,  # noqa: E402
                          random_strings)


def spellings(rng):
    """(gold, a correct spelling, a wrong spelling) in one of several categories."""
    a, b = rng.randint(1, 99), rng.randint(2, 99)
    n = rng.randint(1000, 999999)
    kind = rng.randrange(12)
    if kind == 0:
        return str(n), f"{n:,}", f"{n + rng.randint(1, 9):,}"
    if kind == 1:
        return f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{2 * a}}}{{{2 * b}}}", f"\\frac{{{a + 1}}}{{{b}}}"
    if kind == 2:
        return f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{{{b + 1}}}"
    if kind == 3:
        return f"x^2 + {a + b}x + {a * b}", f"(x+{a})(x+{b})", f"(x+{a})(x-{b})"
    if kind == 4:
        return f"({a}, {b})", f"\\left( {a},{b} \\right)", f"({b}, {a})" if a != b else "(0, 0)"
    if kind == 5:
        return f"{a}, {b}, {a + b}", f"\\{{{a + b}, {b}, {a}\\}}", f"{a}, {b}"
    if kind == 6:
        return f"(-\\infty, {a}]", f"x \\le {a}", f"x < {a}"
    if kind == 7:
        return ("\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % (a, b, b, a),
                "\\begin{bmatrix}%d&%d\\\\%d&%d\\end{bmatrix}" % (a, b, b, a),
                "\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % (b + 1, a, a, b))
    if kind == 8:
        c = rng.choice("ABCDE")
        return f"\\text{{({c})}}", f"({c})", "(" + ("A" if c != "A" else "B") + ")"
    if kind == 9:
        lo, hi = min(a, b) - 1, max(a, b)
        return (f"(-\\infty, {lo})\\cup({hi}, \\infty)", f"x < {lo} \\text{{ or }} x > {hi}",
                f"x < {lo} \\text{{ or }} x \\ge {hi}")
    if kind == 10:
        return ("\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % (2 * a, 2 * b, 2, 2 * a),
                "2\\begin{pmatrix} %d & %d \\\\ 1 & %d \\end{pmatrix}" % (a, b, a),
                "\\begin{pmatrix} %d & %d \\\\ 1 & %d \\end{pmatrix}" % (a, b, a))
    return f"{a}.{b:02d}", f"{a}.{b:02d}0", f"{a}.{b + 1:02d}"


FILLER = ("We expand both sides, collect like terms and simplify the fraction. "
          "Substituting back, the constraint holds, so ")


def completion(rng, answer):
    style = rng.randrange(5)
    body = FILLER * rng.randint(1, 6)
    if style == 0:
        return body + f"the result is $\\boxed{{{answer}}}$.", True
    if style == 1:
        return body + f"The answer is {answer}", True
    if style == 2:
        return body + f"$$\\boxed{{{answer}}}$$ and we are done.", True
    if style == 3:
        return body + f"Final Answer: The final answer is ${answer}$. I hope it is correct.", True
    return body + f"\\boxed{{{answer}", False   # truncated: no answer


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=4000, help="number of generated cases")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--random", type=int, default=100_000, help="random strings to score")
    args = p.parse_args()
    rng = random.Random(args.seed)
    cases = []
    for _ in range(args.cases):
        gold, good, bad = spellings(rng)
        correct = rng.random() < 0.5
        text, complete = completion(rng, good if correct else bad)
        cases.append((text, gold, 1.0 if correct and complete else 0.0))
    t0 = time.perf_counter()
    worst, right = 0.0, 0
    for text, gold, want in cases:
        t = time.perf_counter()
        got = verify.reward(text, gold)
        worst = max(worst, time.perf_counter() - t)
        right += got == want
    dt = time.perf_counter() - t0
    print(f"{len(cases)} cases in {dt:.2f} s: {len(cases) / dt:,.0f} cases/s; "
          f"slowest call {worst * 1e3:.2f} ms; verdicts as constructed: {right}/{len(cases)}")
    strings = random_strings(args.random, args.seed)
    t0 = time.perf_counter()
    paid = false_rewards(strings)
    dt = time.perf_counter() - t0
    found = sum(verify.extract_answer(s) is not None for s in strings)
    print(f"false rewards on {len(strings):,} random strings: {len(paid)} "
          f"({len(strings) / dt:,.0f} strings/s; an answer extracted from {found})")
    for s in paid[:10]:
        print("  paid:", repr(s))
    cases = [case for table in ADVERSARY.values() for case in table]
    tricks, twins = sum(not want for *_, want in cases), sum(want == 1.0 for *_, want in cases)
    paid = sum(verify.reward(text, gold) == 1.0 for text, gold, want in cases if not want)
    refused = sum(verify.reward(text, gold) == 0.0 for text, gold, want in cases if want)
    print(f"adversarial cases in {len(ADVERSARY)} categories: {paid}/{tricks} tricks paid, "
          f"{refused}/{twins} legitimate twins refused")
    for size in (verify.MAX_TEXT, 1_000_000):       # the longest text read, and more
        huge = huge_inputs(size)
        slowest = max(best_of_3(fn, text, gold)[1] for text in huge for gold in ("5", text[:300])
                      for fn in (verify.reward, verify.is_equiv))
        print(f"slowest call on {len(huge)} adversarial inputs of {size:,} characters: "
              f"{slowest * 1e3:.1f} ms (best of 3 runs, reward and is_equiv)")


if __name__ == "__main__":
    main()
