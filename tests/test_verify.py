"""verify.py: a table of cases per category, extraction, and adversarial inputs."""
import time

import pytest

import verify

EQUIV = [
    # numbers
    ("1,000", "1000"), ("1{,}000", "1000"), ("-5", "-5"), ("+5", "5"), ("0.5", "\\frac{1}{2}"),
    ("0.50", "0.5"), ("4.5e33", "4.5\\times10^{33}"), ("4.5 \\times 10^{33}", "4.5e33"),
    ("\\frac12", "0.5"), ("\\dfrac{3}{4}", "\\frac34"), ("\\tfrac{3}{4}", "3/4"),
    ("2\\frac{1}{2}", "\\frac52"), ("-\\frac{1}{3}", "\\frac{-1}{3}"), ("1/3", "\\frac{1}{3}"),
    ("10\\%", "10"), ("25\\%", "25"), ("12.0", "12"), ("3", "3.0"), ("1\\,000\\,000", "10^6"),
    # LaTeX noise
    ("$\\frac{1}{2}$", "\\frac{1}{2}"), ("\\left( 3, 4 \\right)", "(3,4)"), ("\\!5", "5"),
    ("\\text{5}", "5"), ("\\mathrm{5}", "5"), ("5.", "5"), ("x = 3", "3"), ("x=3", "3"),
    ("30^\\circ", "30"), ("30^{\\circ}", "30"), ("30°", "30"), ("5 \\text{ cm}", "5"),
    ("\\$ 5", "5"), ("5\\text{ dollars}", "5"), ("12 \\text{ cm}^2", "12"), ("\\mbox{7}", "7"),
    # expressions
    ("2\\sqrt{3}", "\\sqrt{12}"), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt3"),
    ("2\\pi", "\\pi \\cdot 2"), ("\\pi r^2", "r^2\\pi"), ("x^2+2x+1", "(x+1)^2"),
    ("2x", "x+x"), ("\\frac{x}{2}", "0.5x"), ("a^2 b", "b a^2"), ("\\sqrt[3]{8}", "2"),
    ("3^{2}", "9"), ("2^{10}", "1024"), ("e^{2}", "e^2"), ("\\ln(e^3)", "3"),
    ("\\sin^2 x + \\cos^2 x", "1"), ("y = 2x + 3", "2x+3"), ("f(x) = x^2", "x^2"),
    ("3+4i", "4i+3"), ("5!", "120"), ("\\log_2 8", "3"), ("|-3|", "3"),
    # structures
    ("(1, 2)", "(1,2)"), ("1, 2", "2, 1"), ("\\{1, 2\\}", "\\{2,1\\}"), ("x=1, x=2", "2, 1"),
    ("(-\\infty, 3]", "x \\le 3"), ("x \\leq 3", "(-\\infty,3]"), ("[2, 5)", "2 \\le x < 5"),
    ("(0,1) \\cup (2,3)", "(2,3)\\cup(0,1)"), ("x > 2", "(2, \\infty)"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}", "(1,2,3)"),
    ("1 \\text{ and } 2", "1, 2"), ("(\\frac12, 3)", "(0.5, 3)"),
    # multiple choice and words
    ("(A)", "A"), ("A", "\\text{(A)}"), ("A)", "(A)"), ("\\textbf{(B)}", "B"),
    ("Tuesday", "\\text{Tuesday}"), ("yes", "Yes"), ("\\text{east}", "East"),
    # unicode
    ("√12", "2\\sqrt{3}"), ("2π", "2\\pi"), ("−3", "-3"), ("3×4", "12"), ("12÷4", "3"),
    ("x ≤ 3", "(-\\infty, 3]"), ("(-∞, 2)", "x < 2"),
]

NOT_EQUIV = [
    ("0.1", "10\\%"), ("3", "4"), ("0.333", "\\frac13"), ("3.14", "\\pi"), ("(1, 2)", "(2, 1)"),
    ("[1, 2]", "(1, 2)"), ("(-\\infty, 3)", "x \\le 3"), ("2\\sqrt{3}", "\\sqrt{13}"),
    ("x^2+1", "(x+1)^2"), ("2x", "2y"), ("A", "B"), ("(C)", "A"), ("Tuesday", "Tuseday"),
    ("1, 2", "1, 2, 3"), ("\\{1,2\\}", "\\{1,3\\}"), ("\\frac{1}{2}", "2"), ("1000", "100"),
    ("-5", "5"), ("3+4i", "3-4i"), ("2\\frac12", "1"), ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
    "\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}"), ("x > 2", "[2,\\infty)"), ("", "3"), ("3", ""),
    ("0", "1e-12"), ("1e-10", "2e-10"), ("4.5e33", "4.6e33"), ("yes", "no"),
]


@pytest.mark.parametrize("pred,gold", EQUIV)
def test_equivalent(pred, gold):
    assert verify.is_equiv(pred, gold)
    assert verify.is_equiv(gold, pred)


@pytest.mark.parametrize("pred,gold", NOT_EQUIV)
def test_not_equivalent(pred, gold):
    assert not verify.is_equiv(pred, gold)
    assert not verify.is_equiv(gold, pred)


EXTRACT = [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{\\{2, \\{3\\}\\}}", "\\{2, \\{3\\}\\}"),
    ("we get \\boxed 9 at last", "9"), ("\\fbox{7}", "7"),
    ("nested \\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("The answer is 42.", "42"), ("Final answer: $x = 3$", "x = 3"), ("blah\n#### 1,234", "1,234"),
    ("Answer: (B)", "(B)"), ("so **Answer:** 42", "42"), ("no answer here", None), ("\\boxed{3 + ", None), ("", None),
    ("\\boxed{}", None), ("within \\boxed{}. So \\boxed{5}. Use \\boxed{}.", "5"),
    ("\\boxed{5} then \\boxed{3", None),
    ("She sells 16 - 3 - 4 = 9 eggs.\nThus, Janet makes $18 every day.", "18"),
    ("So the total is 1,250 dollars.", "1,250"), ("We tried 3 ways.", None),
    ("The result is -2.5.", "-2.5"), ("I am not sure.", None),
]


@pytest.mark.parametrize("text,want", EXTRACT)
def test_extract(text, want):
    assert verify.extract_answer(text) == want


def test_reward():
    assert verify.reward("... so $\\boxed{\\dfrac{1}{2}}$", "0.5") == 1.0
    assert verify.reward("... so $\\boxed{\\dfrac{1}{2}}$", "\\boxed{\\frac12}") == 1.0
    assert verify.reward("... so $\\boxed{3}$", "4") == 0.0
    assert verify.reward("truncated \\boxed{3", "3") == 0.0
    assert verify.reward("no box", "3") == 0.0


ADVERSARIAL = [
    "x" * 50_000, "{" * 5000 + "1" + "}" * 5000, "{" * 20_000, "}" * 20_000, "(" * 3000,
    "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}", "10^{10^{10}}", "2^{2^{2^{2^{2^{2}}}}}",
    "9^{9^{9}}", "NaN", "nan", "inf", "-inf", "\\infty", "1e999999", "99999!", "10^{-10^{10}}",
    "import os; os.system('rm -rf /')", "__import__('os')", "lambda: 0", "def f(): pass",
    "\\frac{" * 500, "\\sqrt{" * 1000 + "2" + "}" * 1000, "a" * 10_000 + "=" + "b" * 10_000,
    "(" + ",".join(["1"] * 5000) + ")", "\\{" + ",".join(map(str, range(3000))) + "\\}",
    "x^" * 2000 + "2", "-" * 10_000 + "1", "\\begin{pmatrix}" + "1&" * 2000 + "\\end{pmatrix}",
    "\x00\x01\x02", "😀" * 1000, "$" * 10_000, "\\" * 10_000, "1/0", "0/0", "\\log(0)",
    "\\boxed{" * 3000, "((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))",
    "x" * 300 + "^" + "2" * 300, "1" * 5000, "0." + "3" * 5000, "1" + "0" * 400,
]


@pytest.mark.parametrize("junk", ADVERSARIAL)
def test_adversarial_inputs_are_fast_and_safe(junk):
    calls = []
    for pred, gold in [(junk, "3"), ("3", junk), (junk, junk), (junk, "x^2+1")]:
        calls += [(verify.reward, ("\\boxed{" + pred + "}", gold)), (verify.is_equiv, (pred, gold)),
                  (verify.extract_answer, (pred,))]
    for fn, args in calls:
        best = float("inf")
        for _ in range(3):                 # best of 3: a busy machine can stall any one call
            t0 = time.perf_counter()
            out = fn(*args)
            best = min(best, time.perf_counter() - t0)
        want = {verify.reward: float, verify.is_equiv: bool, verify.extract_answer: (str, type(None))}
        assert isinstance(out, want[fn]) and (fn is not verify.reward or out in (0.0, 1.0))
        assert best < 0.05, f"{fn.__name__}: {best * 1e3:.1f} ms"


def test_non_string_inputs():
    assert verify.reward(None, "3") == 0.0
    assert verify.is_equiv(3, "3") is False
    assert verify.extract_answer(None) is None


MORE_EQUIV = [
    ("32,\\!348", "32348"), ("\\$32,\\!348", "32348"), ("x \\in [-2,7]", "[-2, 7]"),
    ("(x, y) = (1, 2)", "(1,2)"), ("\\pm 2", "2, -2"), ("1 \\pm \\sqrt{2}", "1-\\sqrt2, 1+\\sqrt2"),
    ("x^2 + y^2 = 1", "y^2 + x^2 = 1"), ("2x + 2y = 2", "x + y = 1"), ("y = 1 - 2x", "y=-2x+1"),
    ("2\\alpha", "\\alpha + \\alpha"), ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("1011_2", "1011_{2}"), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"),
    ("6 - 5i", "6-5i"), ("2^{100}", "1267650600228229401496703205376"),
    ("\\text{(C) } 8", "C"), ("(a)", "A"), ("B) 12", "(B)"), ("1.3 \\times 10^{-5} \\mathrm{~m}", "1.3e-5"),
    ("0.\\overline{3}", "\\frac13"), ("0.1\\overline{6}", "\\frac16"), ("1 000 000", "10^6"),
    ("\\varnothing", "\\emptyset"), ("f^{-1}(x) = 2x+1", "2x+1"), ("18.00", "18"),
    ("\\sqrt{2}", "2^{1/2}"), ("6.02 \\cdot 10^{23}", "6.02e23"), ("50 percent", "50\\%"),
    ("25^\\circ C", "25"), ("{1, 2}", "\\{2,1\\}"),
    ("\\cos 2x", "\\cos^2 x - \\sin^2 x"), ("\\sin x \\cos x", "\\frac{1}{2}\\sin 2x"),
    ("\\tan^{-1}(1)", "\\frac{\\pi}{4}"), ("\\sin 2\\theta", "2\\sin\\theta\\cos\\theta"),
    ("4.53 \\times 10^{33}", "4.5e33"), ("7.46e-7", "7.5 \\times 10^{-7}"), ("4.5e33", "45e32"),
]
MORE_NOT_EQUIV = [
    ("123456789012", "123456789013"), ("x + y = 1", "x - y = 1"), ("\\pm 2", "2"),
    ("1.30e-5", "1.32e-5"), ("2\\alpha", "2\\beta"), ("0.\\overline{3}", "0.3"),
    ("e", "E"), ("2x", "2X"), ("(a)", "(b)"), ("4.56e33", "4.5e33"), ("7.4e-7", "7.5e-7"),
    ("4.5e33", "4.5e34"),
]


# Real model outputs the checker used to miss, by category: each equivalent case has a twin
# that must stay not equivalent.
REAL_EQUIV = [
    (r"\lambda \in (3,4]", "(3,4]"),                                        # membership
    ("11,\\! 111", "11111"), ("1,\\!000,\\! 000", "10^6"),                  # thin spaces
    ("forty-two", "42"), ("one hundred twenty-three", "123"),               # number words
    ("twelve thousand five hundred", "12500"), ("minus seven", "-7"),
    ("1.45 million", "1450000"), ("2 billion", "2 \\times 10^9"), ("3.5 thousand", "3500"),
    ("5cm", "5"), ("30°C", "30"), ("90^\\circ", "90"), ("12kg", "12"),      # units, degrees
    ("3.14", "\\approx 3.14"), ("\\approx 0.33", "0.33"),                   # approximations
    ("52_8", "52"), ("1011_2", "1011"), ("2A_{16}", "2A"),                  # base subscripts
    (r"\{1\pm\sqrt{5}, -2\}", r"-2, 1+\sqrt5, 1-\sqrt5"),                   # sets with a ±
    (r"x = 3 \pm \sqrt{2}, 0", r"\{0, 3-\sqrt2, 3+\sqrt2\}"),
    (r"3 < \lambda \le 4", "(3,4]"), (r"-1 \le \theta < 2", "[-1, 2)"),     # inequalities
    (r"x < 2 \text{ or } x > 3", r"(-\infty,2)\cup(3,\infty)"),
    (r"x \le -1 \text{ or } x \ge 1", r"(-\infty,-1]\cup[1,\infty)"),
    (r"4\begin{pmatrix}2&3\\-1&5\end{pmatrix}", r"\begin{pmatrix}8&12\\-4&20\end{pmatrix}"),
    (r"\frac{1}{2}\begin{pmatrix}2\\4\end{pmatrix}", "(1, 2)"),            # scalar * vector
    (r"-\begin{pmatrix}1&0\\0&1\end{pmatrix}", r"\begin{pmatrix}-1&0\\0&-1\end{pmatrix}"),
]
REAL_NOT_EQUIV = [
    (r"\lambda \in (3,4)", "(3,4]"),
    ("11,\\! 111", "1111"), ("1,\\!000,\\! 000", "10^5"),
    ("forty-two", "24"), ("one hundred twenty-three", "100"),
    ("twelve thousand five hundred", "1250"), ("minus seven", "7"),
    ("1.45 million", "1.45"), ("2 billion", "2 \\times 10^6"), ("3.5 thousand", "35"),
    ("5cm", "50"), ("30°C", "3"), ("90^\\circ", "9"), ("12kg", "1"),
    ("3.15", "\\approx 3.14"), ("\\approx 0.33", "0.3"),
    ("52_8", "42"), ("1011_2", "11"), ("2A_{16}", "2B"),
    (r"\{1\pm\sqrt{5}, -2\}", r"2, 1+\sqrt5, 1-\sqrt5"), (r"\{1\pm\sqrt{5}, -2\}", r"-2, 1+\sqrt5"),
    (r"x = 3 \pm \sqrt{2}, 0", r"\{3-\sqrt2, 3+\sqrt2\}"),
    (r"3 < \lambda \le 4", "(3,4)"), (r"-1 \le \theta < 2", "(-1, 2)"),
    (r"x < 2 \text{ or } x \ge 3", r"(-\infty,2)\cup(3,\infty)"),
    (r"x \le -1 \text{ or } x \ge 1", r"(-\infty,-1)\cup(1,\infty)"),
    (r"4\begin{pmatrix}2&3\\-1&5\end{pmatrix}", r"\begin{pmatrix}2&3\\-1&5\end{pmatrix}"),
    (r"\frac{1}{2}\begin{pmatrix}2\\4\end{pmatrix}", "(2, 4)"),
    (r"-\begin{pmatrix}1&0\\0&1\end{pmatrix}", r"\begin{pmatrix}1&0\\0&1\end{pmatrix}"),
]
# one direction only: the gold decides what a lower-case letter is
ORIENTED = [  # (pred, gold, equivalent)
    ("b", "B", True), ("b", "(B)", True), ("c", "\\text{(C)}", True), ("(d)", "D", True),
    ("b", "C", False), ("B", "b", False), ("x", "X", False), ("e", "E", False),
]


@pytest.mark.parametrize("pred,gold", MORE_EQUIV + REAL_EQUIV)
def test_more_equivalent(pred, gold):
    assert verify.is_equiv(pred, gold) and verify.is_equiv(gold, pred)


@pytest.mark.parametrize("pred,gold", MORE_NOT_EQUIV + REAL_NOT_EQUIV)
def test_more_not_equivalent(pred, gold):
    assert not verify.is_equiv(pred, gold) and not verify.is_equiv(gold, pred)


@pytest.mark.parametrize("pred,gold,want", ORIENTED)
def test_option_letters_follow_the_gold(pred, gold, want):
    assert verify.is_equiv(pred, gold) is want


FILLER = ("We expand both sides, collect like terms and simplify the fraction. Trying x = 2 "
          "first, the constraint holds, so we move on to the second case. ")
# whole completions: the reward pays a committed final answer, and only that
CLOSINGS = [  # (completion, gold, reward)
    ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "0.5", 1.0),
    ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "2", 0.0),
    ("The answer is $3$. Wait, 2 + 2 = 4, so I was wrong. So the answer is $4$.", "4", 1.0),
    ("The answer is $3$. Wait, 2 + 2 = 4, so I was wrong. So the answer is $4$.", "3", 0.0),
    ("Hence the answer is $\\lambda \\in (3,4]$.", "(3,4]", 1.0),
    ("Hence the answer is $\\lambda \\in (3,4]$.", "[3,4]", 0.0),
    ("So the answer is $11,\\! 111$.", "11111", 1.0),
    ("So the answer is $11,\\! 111$.", "111", 0.0),
    ("The final answer is forty-two.", "42", 1.0), ("The final answer is forty-two.", "40", 0.0),
    ("**Final Answer**\n$\\frac{3}{4}$", "0.75", 1.0), ("My final answer is \\(7\\).", "7", 1.0),
    ("In total, he spends $1,200 on rent.", "1200", 1.0),
    # a number mentioned on the way, an unfinished statement, garbage: nothing is paid
    (FILLER * 8 + "Then the remaining case gives", "2", 0.0),
    (FILLER * 8 + "So x = 2 and then we", "2", 0.0),
    ("The answer is 5. Let me double check: 2 + 3 = 5.", "5", 0.0),
    ("So the answer is \\frac{1}{", "\\frac12", 0.0), ("The answer is", "0", 0.0),
    ("jbu'QO<o Y?6\"[5 F-K4.^Ac=tiW`eq+ 2q /KgdZ", "2", 0.0),
    ("total = sum(range(4))  # so the total is 6.", "6", 0.0),
    ("the answer is 5 the final", "5", 0.0),
    ("We get 2 10", "20", 0.0), ("#### 2 step", "2", 0.0),
]


@pytest.mark.parametrize("completion,gold,want", CLOSINGS)
def test_closing_statements(completion, gold, want):
    assert verify.reward(completion, gold) == want


def test_a_list_of_golds_accepts_any():
    assert verify.reward("... so $\\boxed{\\frac{1}{2}}$", ["1/3", "0.5"]) == 1.0
    assert verify.reward("... so $\\boxed{\\frac{1}{2}}$", ("1/3", "2")) == 0.0
    assert verify.is_equiv("x+1", ("y", "1+x")) and not verify.is_equiv("x+1", [])
    assert verify.is_equiv("3", ["3", None]) and not verify.is_equiv("3", [None, 4])
