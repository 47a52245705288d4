"""verify.py: tables of cases by category, extraction, adversarial inputs, and its doctests.

The labelled tables live in bench/verify_cases.py, shared with the bench scripts."""
import doctest
import os
import string
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))
import verify  # noqa: E402
from verify_cases import (ADVERSARY, CLOSINGS, EQUIV, INEQUALITIES, MORE_EQUIV,  # noqa: E402
                          MORE_NOT_EQUIV, NOT_EQUIV, ORIENTED, REAL_EQUIV, REAL_NOT_EQUIV,
                          best_of_3, huge_inputs)


def test_the_api_examples_run():
    result = doctest.testmod(verify)
    assert (result.attempted, result.failed) == (9, 0)      # 3 examples per API function


@pytest.mark.parametrize("pred,gold", EQUIV + MORE_EQUIV + REAL_EQUIV)
def test_equivalent(pred, gold):
    assert verify.is_equiv(pred, gold) is True
    assert verify.is_equiv(gold, pred) is True


@pytest.mark.parametrize("pred,gold", NOT_EQUIV + MORE_NOT_EQUIV + REAL_NOT_EQUIV)
def test_not_equivalent(pred, gold):
    assert verify.is_equiv(pred, gold) is False
    assert verify.is_equiv(gold, pred) is False


@pytest.mark.parametrize("pred,gold,want", ORIENTED)
def test_the_gold_decides_letters_precision_and_order(pred, gold, want):
    assert verify.is_equiv(pred, gold) is want


@pytest.mark.parametrize("pred,gold,want", INEQUALITIES)
def test_inequalities_written_either_way(pred, gold, want):
    assert verify.is_equiv(pred, gold) is want


@pytest.mark.parametrize("completion,gold,want", CLOSINGS)
def test_closing_statements(completion, gold, want):
    assert verify.reward(completion, gold) == want


@pytest.mark.parametrize("completion,gold,want", [
    pytest.param(*case, id=f"{category}-{k}") for category, cases in ADVERSARY.items()
    for k, case in enumerate(cases)])
def test_adversary_by_category(completion, gold, want):
    assert verify.reward(completion, gold) == want


def test_every_category_has_tricks_and_twins():
    for category, cases in ADVERSARY.items():
        assert {want for _, _, want in cases} == {0.0, 1.0}, category


EXTRACT = [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{\\{2, \\{3\\}\\}}", "\\{2, \\{3\\}\\}"),
    ("we get \\boxed 9 at last", "9"), ("\\fbox{7}", "7"),
    ("nested \\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("The answer is 42.", "42"), ("Final answer: $x = 3$", "x = 3"), ("blah\n#### 1,234", "1,234"),
    ("Answer: (B)", "(B)"), ("so **Answer:** 42", "42"), ("no answer here", None),
    ("\\boxed{3 + ", None), ("", None),
    ("\\boxed{}", None), ("within \\boxed{}. So \\boxed{5}. Use \\boxed{}.", "5"),
    ("\\boxed{5} then \\boxed{3", None),
    ("She sells 16 - 3 - 4 = 9 eggs.\nThus, Janet makes $18 every day.", "18"),
    ("So the total is 1,250 dollars.", "1,250"), ("We tried 3 ways.", None),
    ("The result is -2.5.", "-2.5"), ("I am not sure.", None),
    # the last answer counts: a statement closing the completion after the last box
    ("\\boxed{5} is wrong. The correct answer is 6.", "6"), ("So \\boxed{5}. Final answer: 6", "6"),
    ("We get \\boxed{5}. The answer is 5.", "5"), ("Put it in \\boxed{}.\nThe answer is 5.", "5"),
    # commitment
    ("The answer is 5, not 7.", "5"), ("The answer is $5$, not $7$.", "5"),
    ("The answer is 5 (not 7).", "5"), ("So $\\boxed{5}$ (not 7).", "5"),
    ("I am not sure the answer is 42.", None), ("Prove that the answer is 5", None),
    ("Suppose the answer is 42. Then we reach a contradiction.", None),
    ("\\boxed{5} is wrong.", None), ("So \\boxed{5}, but I am not sure.", None),
    ("Since x cannot be negative, the answer is 5.", "5"),
    # hidden text
    ("\\boxed{7} % \\boxed{42}", "7"), ("\\boxed{7} <!-- \\boxed{42} -->", "7"),
    ("\\boxed{4\\phantom{2}}", "4"), ("\\boxed{7} ~~\\boxed{42}~~", "7"),
    ("<s>\\boxed{42}</s> \\boxed{7}", "7"), ("\\boxed{7} \\sout{\\boxed{42}}", "7"),
    ("\\boxed{7} \\iffalse \\boxed{42} \\fi", "7"), ("\\boxed{5\u200b}", "5"),
    ("\\boxed{50\\%}", "50\\%"),
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


def test_only_the_tail_of_a_completion_is_read():
    box = "\\boxed{5}"
    assert verify.extract_answer(box + " " * (verify.MAX_TEXT - len(box))) == "5"
    assert verify.extract_answer(box + " " * verify.MAX_TEXT) is None


def test_a_list_of_golds_accepts_any():
    assert verify.reward("... so $\\boxed{\\frac{1}{2}}$", ["1/3", "0.5"]) == 1.0
    assert verify.reward("... so $\\boxed{\\frac{1}{2}}$", ("1/3", "2")) == 0.0
    assert verify.is_equiv("x+1", ("y", "1+x")) is True and verify.is_equiv("x+1", []) is False
    assert verify.is_equiv("3", ["3", None]) is True and verify.is_equiv("3", [None, 4]) is False
    golds = [str(g) for g in range(100, 160)]       # a list longer than 50 is cut at 50
    assert verify.reward("\\boxed{149}", golds) == 1.0
    assert verify.reward("\\boxed{150}", golds) == 0.0


def test_numbers_as_golds():
    assert verify.reward("\\boxed{5}", 5) == 1.0 and verify.reward("\\boxed{5}", 6) == 0.0
    assert verify.reward("\\boxed{0.5}", 0.5) == 1.0 and verify.reward("\\boxed{1/2}", 0.5) == 1.0
    assert verify.reward("\\boxed{5}", [4, 5.0]) == 1.0
    # a float is its shortest decimal, exactly; True is not 1, nan and inf are no gold
    assert verify.reward("\\boxed{1/3}", 1 / 3) == 0.0
    assert verify.reward("\\boxed{0.3333333333333333}", 1 / 3) == 1.0
    assert verify.reward("\\boxed{1}", True) == 0.0
    assert verify.reward("\\boxed{\\infty}", float("inf")) == 0.0
    assert verify.reward("\\boxed{nan}", float("nan")) == 0.0


def test_non_string_inputs():
    assert verify.reward(None, "3") == 0.0
    assert verify.is_equiv(3, "3") is False
    assert verify.extract_answer(None) is None


def test_every_variable_gets_its_own_sample_values_of_both_signs():
    names = list(string.ascii_letters) + sorted(verify._GREEK) + ["x_1", "x_2", "a_n", "a_{n+1}"]
    values = {n: tuple(verify._point(n, k) for k in range(verify._TRIALS)) for n in names}
    assert len(set(values.values())) == len(names)
    assert all(sum(v < 0 for v in vs) == verify._TRIALS // 2 for vs in values.values())
    assert all(v.denominator > 1 for vs in values.values() for v in vs)
    assert verify.is_equiv("x - y", "0") is False and verify.is_equiv("a_1 - a_2", "0") is False


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
    "2^{50000} - 2^{50000}", "1000!^{100}", "\\sqrt[12]{" * 30 + "2" + "}" * 30,
    "<!--" * 5000, "\\phantom{" * 5000, "~~" * 5000 + "a", "%" * 5000, "\u200b" * 10_000,
    "The answer is " * 5000, "not sure " * 5000, ", not 7" * 5000, "(A) " * 5000,
]


@pytest.mark.parametrize("junk", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs_are_fast_and_safe(junk):
    boxed = "\\boxed{" + junk + "}"
    itself = bool(junk.strip("$\u200b"))             # every answer is itself, unless empty
    closed = junk.count("{") == junk.count("}")      # else its box never closes
    shown = not any(h in junk for h in ("<!--", "~~", "%"))   # else the box hides it
    inner = junk[7:-1] if junk.startswith("\\boxed{{") else None
    calls = [(verify.is_equiv, (junk, "3"), False), (verify.is_equiv, ("3", junk), False),
             (verify.is_equiv, (junk, "x^2+1"), False), (verify.is_equiv, (junk, junk), itself),
             (verify.extract_answer, (junk,), inner),
             (verify.reward, (boxed, junk), float(itself and closed and shown))]
    for text in (boxed, junk, "The answer is " + junk + ".", "Final Answer:\n" + junk,
                 "So the total is " + junk + ".", "\\boxed{} " + junk):
        calls += [(verify.reward, (text, "3"), 0.0), (verify.reward, (text, "x^2+1"), 0.0)]
    for fn, args, want in calls:
        out, best = best_of_3(fn, *args)
        assert out == want and type(out) is type(want), (fn.__name__, args[1:])
        assert best < 0.05, f"{fn.__name__}: {best * 1e3:.1f} ms"


def test_a_megabyte_takes_milliseconds():
    for text in huge_inputs(1_000_000):
        for fn, want in ((verify.reward, 0.0), (verify.is_equiv, False)):
            out, best = best_of_3(fn, text, "x^2+1")
            assert out == want and best < 1.0, f"{fn.__name__}: {best * 1e3:.1f} ms"
