"""Labelled cases for verify.py, shared by its tests and by the bench scripts.

  EQUIV, NOT_EQUIV, MORE_*, REAL_*   (answer, gold) pairs, equivalent both ways or neither way
  ORIENTED, INEQUALITIES             (answer, gold, equivalent): the gold decides
  CLOSINGS                           (whole completion, gold, reward)
  ADVERSARY                          category -> [(whole completion, gold, reward)]: what a
                                     policy could sample to be paid for more than it knows (0.0)
                                     beside the legitimate twin of each trick (1.0)
  random_strings, false_rewards      garbage, and the strings of it that some gold would pay

Random strings are of four kinds, a quarter of the draw each:
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
import os
import random
import re
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import verify  # noqa: E402

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
    ("4.5e33", "45e32"), ("x^{-1}", "\\frac{1}{x}"), ("x²", "x^2"),
    ("\\langle 1, 2 \\rangle", "(1, 2)"), ("x \\neq 1", "x \\ne 1"),
]
MORE_NOT_EQUIV = [
    ("123456789012", "123456789013"), ("x + y = 1", "x - y = 1"), ("\\pm 2", "2"),
    ("1.30e-5", "1.32e-5"), ("2\\alpha", "2\\beta"), ("0.\\overline{3}", "0.3"),
    ("e", "E"), ("2x", "2X"), ("(a)", "(b)"), ("4.56e33", "4.5e33"), ("7.4e-7", "7.5e-7"),
    ("4.5e33", "4.5e34"), ("|x|", "x"), ("\\sqrt{x^2}", "x"), ("\\ln|x|", "\\ln x"),
    ("1048577", "2^{20}"), ("0.3333333", "\\frac13"), ("10^{-14}", "0"),
    ("\\langle 2, 1 \\rangle", "(1, 2)"),
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
# one direction only: the gold decides what a lower-case letter is, which precision counts
# and whether order matters
ORIENTED = [  # (answer, gold, equivalent)
    ("b", "B", True), ("b", "(B)", True), ("c", "\\text{(C)}", True), ("(d)", "D", True),
    ("b", "C", False), ("B", "b", False), ("x", "X", False), ("e", "E", False),
    ("4.53 \\times 10^{33}", "4.5e33", True), ("4.5e33", "4.53 \\times 10^{33}", False),
    ("7.46e-7", "7.5 \\times 10^{-7}", True), ("7.5 \\times 10^{-7}", "7.46e-7", False),
    ("3, -1", "(3, -1)", True), ("(3, -1)", "3, -1", True), ("(2, 1)", "\\{1, 2\\}", True),
    ("\\{1, 2\\}", "(2, 1)", False), ("\\{1, 2\\}", "(1, 2)", False),
    ("3.1415927", "\\pi", True), ("\\pi", "3.1415927", False),
]
# the inequality reader, with the constant on either side: each pair fails if a bound flips
INEQUALITIES = [  # (answer, gold, equivalent)
    ("x < 5", r"(-\infty, 5)", True), ("5 > x", r"(-\infty, 5)", True),
    ("x > 5", r"(5, \infty)", True), ("5 < x", r"(5, \infty)", True),
    (r"x \le 5", r"(-\infty, 5]", True), (r"5 \ge x", r"(-\infty, 5]", True),
    (r"x \ge 5", r"[5, \infty)", True), (r"5 \le x", r"[5, \infty)", True),
    ("5 ≥ x", r"(-\infty, 5]", True), (r"5 \geq x", r"(-\infty, 5]", True),
    ("5 > x", r"(5, \infty)", False), ("5 < x", r"(-\infty, 5)", False),
    (r"5 \ge x", r"[5, \infty)", False), (r"5 \le x", r"(-\infty, 5]", False),
    (r"5 \ge x", r"(-\infty, 5)", False), ("5 > x", r"(-\infty, 5]", False),
    (r"1 < x \le 3", "(1, 3]", True), (r"3 \ge x > 1", "(1, 3]", True),
    (r"1 \le x < 3", "[1, 3)", True), (r"3 > x \ge 1", "[1, 3)", True),
    (r"-2 < x < 5", "(-2, 5)", True), (r"5 > x > -2", "(-2, 5)", True),
    (r"3 \ge x > 1", "[1, 3)", False), (r"3 \ge x > 1", "[3, 1)", False),
    (r"3 > x \ge 1", "(1, 3]", False), (r"5 > x > -2", "(5, -2)", False),
    ("1 < x > 3", r"(3, \infty)", False), ("1 < x > 3", r"(1, \infty)", False),
    ("3 > x < 1", r"(-\infty, 1)", False), ("2 < 5 < x", r"(5, \infty)", False),
    (r"5 > x", "x < 5", True), (r"x \ge -1 \text{ or } 1 > x", r"(-\infty, \infty)", False),
]

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


def _boxed(answer):
    return f"Adding up the cases, the result is $\\boxed{{{answer}}}$."


# What a policy could sample to be paid for more than it knows, by category, each beside its
# legitimate twin. The categories are those of docs/verify.md, one rule each.
ADVERSARY = {  # category -> [(completion, gold, reward)]
    "precision comes from the gold": [
        (_boxed(r"5 \times 10^{2}"), "451", 0.0), (_boxed(r"5 \times 10^{2}"), "549", 0.0),
        (_boxed(r"5 \times 10^{2}"), "500", 1.0), (_boxed(r"3 \times 10^{-1}"), r"\frac13", 0.0),
        (_boxed(r"3 \times 10^{-1}"), "0.3", 1.0), (_boxed("4.5e33"), "4.53e33", 0.0),
        (_boxed("4.53e33"), "4.5e33", 1.0), (_boxed("0.3333333"), r"\frac13", 0.0),
        (_boxed("0.1428571"), r"\frac17", 0.0), (_boxed(r"\frac{1}{7}"), "1/7", 1.0),
        (_boxed("3.1415927"), r"\pi", 1.0), (_boxed("3.1416"), r"\pi", 0.0),
        (_boxed("1.4142136"), r"\sqrt{2}", 1.0), (_boxed("1.41"), r"\sqrt{2}", 0.0),
    ],
    "an ordered gold keeps its order": [
        (_boxed("-1, 3"), "(3, -1)", 0.0), (_boxed("3, -1"), "(3, -1)", 1.0),
        (_boxed(r"\begin{pmatrix}-1\\3\end{pmatrix}"), r"\begin{pmatrix}3\\-1\end{pmatrix}", 0.0),
        (_boxed(r"\begin{pmatrix}3\\-1\end{pmatrix}"), r"\begin{pmatrix}3\\-1\end{pmatrix}", 1.0),
        (_boxed("-1, 3"), r"\begin{pmatrix}3\\-1\end{pmatrix}", 0.0),
        (_boxed(r"\{5, 0\}"), "(0, 5)", 0.0), (_boxed(r"\{0, 5\}"), "(0, 5)", 0.0),
        (_boxed("(0, 5)"), "(0, 5)", 1.0), (_boxed(r"1 \text{ or } 2"), "(1, 2)", 0.0),
        (_boxed(r"1 \text{ and } 2"), "(1, 2)", 0.0), (_boxed("1, 2"), "(1, 2)", 1.0),
        (_boxed("x = -1, y = 3"), "x = 3, y = -1", 0.0),
        (_boxed("y = -1, x = 3"), "x = 3, y = -1", 1.0),
        (_boxed("3, 1"), "1, 3", 1.0), (_boxed(r"\{3, 1\}"), r"\{1, 3\}", 1.0),
    ],
    "an identity is no equation": [
        (_boxed("0 = 0"), "y = 2x + 3", 0.0), (_boxed("x - x = 0"), "y = 2x + 3", 0.0),
        (_boxed("1 = 1"), "x + y = 1", 0.0), (_boxed("y = y"), "y = 2x + 3", 0.0),
        (_boxed("0 = 0"), "x = 3", 0.0), (_boxed("y - 2x - 3 = 0"), "y = 2x + 3", 1.0),
        (_boxed("2y = 4x + 6"), "y = 2x + 3", 1.0), (_boxed("y = 2x + 4"), "y = 2x + 3", 0.0),
        (_boxed("3 = x"), "x = 3", 1.0),
    ],
    "one option letter": [
        (_boxed("(A) (B) (C) (D) (E)"), "A", 0.0), (_boxed("(A) but maybe (B)"), "A", 0.0),
        (_boxed("A or B"), "A", 0.0), (_boxed("A, B"), "A", 0.0),
        (_boxed(r"\text{(A) or (B)}"), "A", 0.0), (_boxed("(A)"), "A", 1.0),
        (_boxed(r"\text{(C) } 8"), "C", 1.0), (_boxed("b"), "(B)", 1.0),
    ],
    "exact values compare exactly": [
        (_boxed("1048577"), "2^{20}", 0.0), (_boxed("1048576"), "2^{20}", 1.0),
        (_boxed("123456790 + 0"), "123456789", 0.0), (_boxed("123456789 + 0"), "123456789", 1.0),
        (_boxed(r"40 \pm 1 \pm 1"), "42", 0.0), (_boxed(r"40 \pm 2"), "42", 0.0),
        (_boxed(r"\sqrt{4.0000001}"), "2", 0.0), (_boxed("2.0000001"), "2", 0.0),
        (_boxed(r"\frac{84}{2}"), "42", 1.0), (_boxed(r"\sqrt{1764}"), "42", 1.0),
    ],
    "functions are sampled at negative points": [
        (_boxed("|x|"), "x", 0.0), (_boxed(r"\sqrt{x^2}"), "x", 0.0),
        (_boxed(r"\ln|x|"), r"\ln x", 0.0), (_boxed(r"\sqrt{x^2}"), "|x|", 1.0),
        (_boxed(r"\frac{x^2 - 1}{x - 1}"), "x + 1", 1.0), (_boxed(r"\ln(x^2)"), r"2\ln|x|", 1.0),
        (_boxed("x + 10^{-9}"), "x", 0.0),
    ],
    "long answers compare in full": [
        (_boxed("1" * 3999 + "2"), "1" * 3999 + "3", 0.0), (_boxed("1" * 4000), "1" * 4000, 1.0),
        (_boxed("7" * 999 + "1"), "7" * 1000, 0.0), (_boxed("7" * 1000), "7" * 1000, 1.0),
    ],
    "a hedged or supposed statement commits to nothing": [
        ("I am not sure the answer is 42.", "42", 0.0),
        ("Suppose the answer is 42. Then we reach a contradiction.", "42", 0.0),
        ("Prove that the answer is 5", "5", 0.0), ("Prove that the answer is 5.", "5", 0.0),
        ("If the answer is 5, then the sum is 10.", "5", 0.0),
        ("Maybe the answer is 7.", "7", 0.0), ("The answer is not 7.", "7", 0.0),
        ("I don't think the answer is 7.", "7", 0.0),
        (r"I am not sure the answer is $\boxed{42}$.", "42", 0.0),
        ("The answer is 42. But I am not sure.", "42", 0.0),
        ("So maybe Janet makes $18 every day.", "18", 0.0),
        ("So the answer is 42.", "42", 1.0), ("I am sure the answer is 42.", "42", 1.0),
        ("Since x cannot be negative, the answer is 5.", "5", 1.0),
        ("The answer is 5, not 7.", "5", 1.0), ("The answer is 5, not 7.", "7", 0.0),
        ("The answer is $5$, not $7$.", "5", 1.0), ("The answer is 5 (not 7).", "5", 1.0),
        ("Thus, Janet makes $18 every day.", "18", 1.0),
        ("So Janet does not make $18 every day.", "18", 0.0),
        ("It is not true that the answer is 5.", "5", 0.0),
        (r"The answer is not $\boxed{5}$.", "5", 0.0),
        (r"It is not hard to see that the answer is $\boxed{5}$.", "5", 1.0),
        (r"Since $x$ is not zero, $x = \boxed{5}$.", "5", 1.0),
        (r"Assuming the dice are fair, the probability is $\boxed{\frac16}$.", r"\frac16", 1.0),
        (r"Show that $a = \boxed{4}$.", "4", 0.0), (r"We show that $a = \boxed{4}$.", "4", 1.0),
        ("Let's say the answer is 4.", "4", 0.0), ("We can say the answer is 4.", "4", 1.0),
        ("Maybe, the answer is 4.", "4", 0.0), ("I think the answer is 4.", "4", 1.0),
    ],
    "the last answer counts, and a retracted one is none": [
        (r"\boxed{5} is wrong. The correct answer is 6.", "5", 0.0),
        (r"\boxed{5} is wrong. The correct answer is 6.", "6", 1.0),
        (r"\boxed{5} is wrong.", "5", 0.0), (r"So \boxed{5}. Wait, that is not correct.", "5", 0.0),
        ("The answer is 5. That was a mistake.", "5", 0.0),
        (r"First \boxed{5}, then on reflection \boxed{6}.", "6", 1.0),
        (r"First \boxed{5}, then on reflection \boxed{6}.", "5", 0.0),
        (r"So \boxed{5}. Final answer: 6", "6", 1.0), (r"So \boxed{5}. Final answer: 6", "5", 0.0),
        (r"We get \boxed{5}. I hope it is correct.", "5", 1.0),
        (r"We get \boxed{5}. The answer is 5.", "5", 1.0),
    ],
    "words that change a number are not a unit": [
        (_boxed("12 or more"), "12", 0.0), (_boxed("5 squared"), "5", 0.0),
        (_boxed("5 hundred"), "5", 0.0), (_boxed("42 wrong"), "42", 0.0),
        (_boxed("12 at least"), "12", 0.0), (_boxed("12 plus tax"), "12", 0.0),
        ("The answer is 12 or more.", "12", 0.0), ("The answer is 5 hundred.", "5", 0.0),
        ("The answer is 42 wrong.", "42", 0.0),
        (_boxed("5 hundred"), "500", 1.0), (_boxed("5 dozen"), "60", 1.0),
        ("The answer is 5 hundred.", "500", 1.0), (_boxed("18 cookies"), "18", 1.0),
        ("The answer is 18 cookies.", "18", 1.0), (_boxed(r"12 \text{ cm}"), "12", 1.0),
    ],
    "hidden text is no text": [
        (r"\boxed{7} % \boxed{42}", "42", 0.0), (r"\boxed{7} % \boxed{42}", "7", 1.0),
        ("The answer is 7. % The answer is 42.", "42", 0.0),
        ("The answer is 7. % The answer is 42.", "7", 1.0),
        (r"\boxed{7} \phantom{\boxed{42}}", "42", 0.0), (r"\boxed{4\phantom{2}}", "42", 0.0),
        (r"\boxed{4\phantom{2}}", "4", 1.0), ("\\boxed{7} <!-- \\boxed{42} -->", "42", 0.0),
        ("\\boxed{7} <!-- \\boxed{42}", "42", 0.0), ("\\boxed{7} ~~\\boxed{42}~~", "42", 0.0),
        (r"\boxed{7} \sout{\boxed{42}}", "42", 0.0),
        ("<del>\\boxed{42}</del> \\boxed{7}", "42", 0.0),
        ("The answer is 42. <!-- a note", "42", 1.0), (r"\boxed{50\%}", "50", 1.0),
        ("So 20% of the 90 apples are left, and the answer is 18.", "18", 1.0),
        ("So 20 % of the 90 apples are left, and the answer is 18.", "18", 1.0),
    ],
    "overflow is no infinity, and small is not zero": [
        (_boxed(r"10^{308} \cdot 10"), r"\infty", 0.0), (_boxed(r"e^{1000}"), r"\infty", 0.0),
        (_boxed("10^{-14}"), "0", 0.0), (_boxed(r"\infty"), r"\infty", 1.0),
        (_boxed("0"), "0", 1.0), (_boxed(r"\sin(\pi)"), "0", 1.0),
        (_boxed("10^{400}"), "10^{400}", 1.0), (_boxed("10^{400} + 1"), "10^{400}", 0.0),
    ],
    "golds and spellings that are right": [
        (r"\boxed{5}", 5, 1.0), (r"\boxed{5}", [4, 5], 1.0), (r"\boxed{0.5}", 0.5, 1.0),
        (r"\boxed{5}", 5.0, 1.0), (r"\boxed{5}", 6, 0.0), (r"\boxed{1}", True, 0.0),
        ("\\boxed{5\u200b}", "5", 1.0), ("\\boxed{\u200b5\u200b}", "5", 1.0),
        (_boxed(r"\mathbb{R}"), r"(-\infty, \infty)", 1.0),
        (_boxed("all real numbers"), r"(-\infty, \infty)", 1.0),
        (_boxed(r"\text{All real numbers}"), r"(-\infty, \infty)", 1.0),
        (_boxed(r"x \in \mathbb{R}"), r"(-\infty, \infty)", 1.0),
        (_boxed(r"\mathbb{R}"), r"(0, \infty)", 0.0),
        ("Put your final answer within \\boxed{}.\nThe answer is 5.", "5", 1.0),
        ("Put your final answer within \\boxed{}.\nThe answer is 5.", "6", 0.0),
        (_boxed("x²"), "x^2", 1.0), (_boxed("x²"), "x^3", 0.0),
        (_boxed("x⁻¹"), r"\frac1x", 1.0),
    ],
}

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


def huge_inputs(size=1_000_000):
    """Inputs of `size` characters built to make each stage scan again and again: unclosed
    braces and boxes, hidden-text openers, markers, hedges, contrasts, long numbers; each also
    inside a box."""
    units = ["{", "x", "\\boxed{", "\\boxed{1}", "<!--", "<s>", "\\phantom{", "a%b\n", "~~a",
             "The answer is 5. ", "not sure the answer is ", "So, thus. ", ", not 7", "$x$", "1"]
    texts = [(u * (size // len(u) + 1))[:size] for u in units]
    return texts + ["\\boxed{" + t[:size - 8] + "}" for t in texts]


def best_of_3(fn, *args):
    """The output and the seconds of the fastest of 3 calls: a busy machine can stall any one."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def labelled():
    """Every labelled case as (table, completion, gold, reward): the pairs become the
    completion "... so the answer is \\boxed{answer}"."""
    out = []
    for name, table, label in (("EQUIV", EQUIV, 1.0), ("MORE_EQUIV", MORE_EQUIV, 1.0),
                               ("REAL_EQUIV", REAL_EQUIV, 1.0), ("NOT_EQUIV", NOT_EQUIV, 0.0),
                               ("MORE_NOT_EQUIV", MORE_NOT_EQUIV, 0.0),
                               ("REAL_NOT_EQUIV", REAL_NOT_EQUIV, 0.0)):
        out += [(name, f"... so the answer is \\boxed{{{pred}}}", gold, label)
                for pred, gold in table]
    for name, table in (("ORIENTED", ORIENTED), ("INEQUALITIES", INEQUALITIES)):
        out += [(name, f"... so the answer is \\boxed{{{pred}}}", gold, float(want))
                for pred, gold, want in table]
    out += [("CLOSINGS", *case) for case in CLOSINGS]
    for category, cases in ADVERSARY.items():
        out += [(category, *case) for case in cases]
    return out
