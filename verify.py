r"""verify.py: is the final answer of a completion mathematically the gold answer?

Standard library only. The reward of an RLVR run is `reward(completion, gold)`: 1.0 or 0.0.

The reward is a security boundary: a policy learns whatever the checker pays for, so the
checker pays a committed answer for what it states and nothing more. Garbage, an unfinished,
hedged or retracted answer, a number merely mentioned, text hidden from the reader, and an
answer that would cover more than one gold (its own precision, a reordered tuple, a
tautology, several options) are paid 0. docs/verify.md states each rule in one sentence.
How it decides, in order:
  1. extract   drop hidden text (% comments, \phantom, strikethrough, HTML comments); take the
               last closed non-empty \boxed{} unless an answer statement closing the
               completion follows it; else that closing statement ("The answer is X",
               "Final answer: X", "#### X"); else GSM8K's closing sentence ("Thus, Janet
               makes $18 every day."). An unclosed box, a hedged or supposed answer ("I am
               not sure the answer is", "Suppose ...") and a retracted one ("... is wrong")
               commit to nothing.
  2. normalise LaTeX noise away: $, \left, spacing, \text{}, units, degrees, "x =",
               "\approx"; number words and scale words become digits ("forty-two",
               "5 hundred"), but words that change a number ("12 or more") stay and fail.
  3. compare   as strings; as structures (tuples keep their order, sets do not; intervals,
               inequalities, unions, matrices, equations up to a nonzero factor, one option
               letter); then as values: both sides are parsed into a small expression tree and
               evaluated exactly in rationals where they can be, else in complex floats, at
               sample points of both signs when they contain variables.
Every path does bounded work: inputs are capped in length, the parser limits its depth,
powers, factorials and exact numbers refuse huge sizes, nothing is ever eval'd, and every regex
is linear. Bad input gives 0.0, never an exception.
"""
from __future__ import annotations

import cmath
import functools
import math
import operator
import re
import zlib
from fractions import Fraction

MAX_TEXT = 100_000    # characters of a completion that are looked at (its tail)
MAX_COMPARED = 2_000  # longer answers are compared as whole strings, whitespace aside
MAX_ANSWER = 400      # longer answers are compared as text, not parsed
MAX_DEPTH = 60        # parser nesting limit
MAX_NODES = 2_000     # parser size limit
MAX_BITS = 50_000     # exact rationals stop at this size (about 15,000 digits)
MAX_ITEMS = 100       # most items compared in a tuple, list or matrix (half in a set)
REL_TOL = 1e-6        # an irrational gold is matched to this relative precision
ROUNDING = 1e-12      # a rational gold is matched exactly, up to float rounding of the answer
ZERO_TOL = 1e-15      # float rounding near zero: sin(pi) is 1.2e-16


# =====================================================================================
# The API
# =====================================================================================


def reward(completion: str, gold) -> float:
    r"""1.0 when the completion commits to a final answer that is the gold answer (or one of a
    list of golds), else 0.0. A gold may be a string, a number, or a list or tuple of them.

    >>> reward(r"Adding the halves, the answer is $\boxed{\dfrac{1}{2}}$.", "0.5")
    1.0
    >>> reward(r"\boxed{5} is wrong. The correct answer is 6.", 6)
    1.0
    >>> reward("I am not sure the answer is 42.", "42")
    0.0
    """
    try:
        pred = extract_answer(completion)
    except Exception:      # a checker that raises would stop a training run: bad input is 0
        return 0.0
    return 1.0 if pred is not None and is_equiv(pred, gold) else 0.0


def is_equiv(pred: str, gold) -> bool:
    r"""True when the answer `pred` is the gold answer. The gold decides what counts: its
    precision, its order, what a lower-case letter is. A list or tuple of golds (OlympiadBench's
    `final_answer`) accepts any of them; a number is read as its decimal spelling.

    >>> is_equiv(r"2\sqrt{3}", r"\sqrt{12}")
    True
    >>> is_equiv("3, -1", "(3, -1)"), is_equiv("-1, 3", "(3, -1)")
    (True, False)
    >>> is_equiv(r"5 \times 10^{2}", 500), is_equiv(r"5 \times 10^{2}", 451)
    (True, False)
    """
    try:
        return isinstance(pred, str) and any(_equiv(pred, g) for g in _gold_texts(gold))
    except Exception:      # the same safety net as reward
        return False


def extract_answer(text: str) -> str | None:
    r"""The final answer that a completion commits to, or None when it commits to none.

    >>> extract_answer(r"So $x = \boxed{5}$. I hope it is correct.")
    '5'
    >>> extract_answer(r"Put the answer in \boxed{}. The answer is 5, not 7.")
    '5'
    >>> print(extract_answer("Suppose the answer is 42. Then we reach a contradiction."))
    None
    """
    if not isinstance(text, str):
        return None
    text = _visible(text[-MAX_TEXT:])
    box = _final_box(text) if _BOX.search(text) else None
    if box is None:
        tail = text[-5000:]
        stated = _closing_statement(tail)
        return stated if stated is not None else _closing_number(tail)
    content, start, end = box
    if content is None:
        return None                                  # truncated inside its answer
    stated = _closing_statement(text[max(end, len(text) - 5000):])
    if stated is not None:                           # the last answer stated is the one
        return stated
    if _hedged(text[max(0, start - 300):start]) or _retracted(text[end:]):
        return None
    return content.strip()


# =====================================================================================
# 1. Extraction
# =====================================================================================

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_BRACE = re.compile(r"\\.|[{}]", re.S)          # an escaped char (\{, \}) or a brace
_BARE_BOX = re.compile(r"[^\s$]+")               # \boxed 9

# Text a reader does not see is no answer: a box in a % comment, \phantom, a strikethrough or
# an HTML comment would otherwise be the last one.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060\ufeff]")
_HIDDEN_OPEN = re.compile(r"<!--|<(s|del|strike)>|\\iffalse(?![a-zA-Z])", re.I)
_HIDDEN_CLOSE = {"<!--": re.compile("-->"), "\\iffalse": re.compile(r"\\fi(?![a-zA-Z])")}
_HIDDEN_CMD = re.compile(r"\\(?:[hv]?phantom|sout|st|xout|[bx]?cancel)(?![a-zA-Z])\s*(?=\{)")
_COMMENT = re.compile(r"(?<![\\\d])(?<!\d )%[^\n]*")   # 50% and 50 % are percentages, \% too
_STRIKE = re.compile(r"~~[^\n]*?~~")


def _visible(text: str) -> str:
    """The text a reader sees: invisible characters, comments, \\phantom{...}, struck-through
    text and HTML comments removed."""
    text = _INVISIBLE.sub("", text)
    if "<" in text or "\\iffalse" in text:
        out, pos = [], 0
        while m := _HIDDEN_OPEN.search(text, pos):
            opener = m.group(0).lower()
            close = _HIDDEN_CLOSE.get(opener) or re.compile(f"</{m.group(1)}>", re.I)
            out.append(text[pos:m.start()])
            end = close.search(text, m.end())
            pos = end.end() if end else len(text)    # never closed: hides the rest
        text = "".join(out) + text[pos:]
    if "%" in text:
        text = _COMMENT.sub("", text)
    if "\\" in text:
        out, pos = [], 0
        while m := _HIDDEN_CMD.search(text, pos):
            out.append(text[pos:m.start()])
            got = _braced(text, m.end())
            pos = got[1] if got else len(text)
        text = "".join(out) + text[pos:]
    return _STRIKE.sub("", text) if "~~" in text else text


def _braced(s: str, i: int) -> tuple[str, int] | None:
    """s[i] == '{': the text up to the matching '}' and the index after it; None if unclosed."""
    depth = 0
    for m in _BRACE.finditer(s, i):                  # jumps from brace to brace in C
        ch = m.group(0)
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1:m.start()], m.end()
    return None


def _final_box(text: str) -> tuple[str | None, int, int] | None:
    """(content, start, end) of the last box with content, None when there is none; content
    is None when that box was never closed. An empty \\boxed{} is the prompt's echo."""
    for m in list(_BOX.finditer(text))[::-1][:20]:
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            got = _braced(text, j)
            if got is None:
                return None, m.start(), len(text)   # an unclosed box is a truncated answer
            content, end = got
        else:
            bare = _BARE_BOX.match(text, j)
            content, end = (bare.group(0), bare.end()) if bare else ("", j)
        if content.strip():
            return content, m.start(), end
    return None


def _last_box(text: str) -> str | None:
    box = _final_box(text)
    return box[0] if box else None


# A fallback is paid only for a closing statement: a marker phrase, the answer it introduces,
# and after it nothing but a sign-off. A random string, or reasoning that mentions a number on
# the way, has to hit a whole phrase at the right place to be read as an answer.
_STATEMENT_START = (r"(?:^|(?<=\n)|(?<=[.!?]\s))[ \t>#*-]*"         # a line or a sentence,
                    r"(?:(?:so|thus|therefore|hence)\b,?[ \t*]*)?")     # "so **Answer:** 42"
_NEXT_LINE = r"[ \t*:]*(?:\n[ \t]*)?"                              # the answer may start below
_MARKER = re.compile(
    rf"\b(?:the|my|our)\s+(?:(?:final|correct|right)\s+)?answer\s+is\b{_NEXT_LINE}"
    rf"|{_STATEMENT_START}(?:final\s+)?answer\b[ \t*]*:{_NEXT_LINE}"  # "Answer: X", "Final answer:"
    rf"|{_STATEMENT_START}final\s+answer\b[ \t*#]*\n\s*"             # a heading, the answer below
    r"|(?:^|(?<=\n))[ \t]*####[ \t]*",                               # GSM8K's "#### 18", one line
    re.I)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_STATEMENT_END = re.compile(r"\n|\.(?=\s|$)")      # not the point of 2.5
_SIGN_OFF = re.compile(r"[\d=\\$^{}]")               # "I hope it is correct." has none of these
_JUNK = re.compile(r"[@#?\"`]|[\x00-\x08\x0b-\x1f\x7f]")   # never part of a math answer
_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# function words: after an answer they mean the sentence goes on, so the number was not stated
_STOP = {"the", "an", "is", "are", "was", "were", "be", "so", "thus", "therefore", "hence",
         "answer", "final", "because", "since", "if", "then", "we", "it", "this", "that", "to",
         "equals", "equal", "makes", "gives", "get", "gets", "not"}
# Commitment. Anywhere in an answer's sentence or the next one, _UNSURE words doubt it. In the
# clause that leads up to it, _SUPPOSED words suppose it ("Suppose the answer is", "Let's
# say the answer is"), a restated problem asks for it ("Prove that the answer is") and a
# _DENIAL denies it ("I don't think the answer is", "The answer is not \boxed{5}"); a clause
# before a comma does not count ("Since x cannot be negative, the answer is 5"). In a
# sign-off, _TAKEN_BACK words take it back. "n't" stands for every negated verb.
_UNSURE = {"maybe", "perhaps", "possibly", "probably", "unsure", "guess", "doubt", "wonder",
           "hypothetically", "imagine", "pretend"}
_UNSURE_PHRASE = re.compile(r"(?:\bnot|n't)\s+(?:sure|certain|confident)\b|\bno\s+idea\b", re.I)
_SUPPOSED = {"suppose", "supposing", "assume", "assuming", "if", "whether", "unless"}
_SUPPOSED_PHRASE = re.compile(r"^\W*(?:prove|show)\b|\blet(?:'s|\s+us)\s+say\b", re.I)
_DENIAL = re.compile(r"(?:\bnot|n't|\bnever|\bcannot)\s+(?:\w+\s+)?(?:think|believe|know|say|"
                     r"claim|true|the\s+case|clear|conclude)\b|(?:\bnot|n't|\bnever)\W*$", re.I)
_TAKEN_BACK = {"not", "n't", "but", "however", "wait", "actually", "hmm", "unless", "if",
               "impossible", "false"}
_RETRACTION = re.compile(r"\b(?:wrong|incorrect|mistaken?|errors?|contradict\w*)\b|(?:\bnot|n't)"
                         r"\s+(?:correct|right|the\s+(?:final\s+|correct\s+)?answer)\b", re.I)
_SENTENCE_BREAK = re.compile(r"[.!?](?=\s|$)|\n")
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]|\b(?:so|thus|therefore|hence|then|and|but)\b", re.I)
# "5, not 7" and "5 (not 7)" state 5
_CONTRAST = re.compile(r"(?:,\s*(?:and\s+|but\s+)?| ?\(\s*)not\s+[^,()]{1,40}\)?\s*$", re.I)
_CONTRAST_AFTER = re.compile(r"\s*(?:,\s*(?:and\s+|but\s+)?|\(\s*)not\s+"
                             r"(?:\$[^$]{1,40}\$|[^\s,()$]{1,40})\)?", re.I)


def _has_word(text: str, vocabulary: set[str]) -> bool:
    return any(w in vocabulary or w.endswith("n't") and "n't" in vocabulary
               for w in _WORD.findall(text.lower().replace("\u2019", "'")))


def _unsure(text: str) -> bool:
    return _has_word(text, _UNSURE) or bool(_UNSURE_PHRASE.search(text))


def _after_last(pattern: re.Pattern, text: str) -> str:
    """The text after the last match of pattern."""
    last = None
    for last in pattern.finditer(text):
        pass
    return text[last.end():] if last else text


def _hedged(before: str) -> bool:
    """Does the text leading up to an answer doubt, suppose or deny it?"""
    sentence = _after_last(_SENTENCE_BREAK, before[-300:])
    clause = _after_last(_CLAUSE_BREAK, sentence)
    return (_unsure(sentence) or _has_word(clause, _SUPPOSED)
            or bool(_SUPPOSED_PHRASE.search(clause) or _DENIAL.search(clause)))


def _retracted(after: str) -> bool:
    """Does the rest of a box's sentence, or the next one, doubt it or take it back ('\\boxed{5}
    is wrong.', '\\boxed{5}, but I am not sure.')?"""
    contrast = _CONTRAST_AFTER.match(after)          # "$\boxed{5}$, not 7."
    window = after[contrast.end() if contrast else 0:][:300]
    ends = [m.end() for m in _SENTENCE_BREAK.finditer(window)][:2]
    first, both = window[:ends[0]] if ends else window, window[:ends[-1]] if ends else window
    return (bool(_RETRACTION.search(both)) or _unsure(both)
            or _has_word(first, {"but", "however", "if", "unless"}))


def _doubts(sign_off: str) -> bool:
    """Does a sign-off take the answer back or cast doubt on it? ('Then we reach a
    contradiction.', 'But I am not sure.')"""
    return (bool(_RETRACTION.search(sign_off)) or _unsure(sign_off)
            or _has_word(sign_off, _TAKEN_BACK))


def _prose_words(s: str) -> list[str]:
    """The words of s, lower-cased: letters outside LaTeX commands and \\text{}."""
    return [w.lower() for w in _PROSE_WORD.findall(_TEXT_CMD.sub(" ", s))]


def _answer_like(ans: str) -> bool:
    """A stated answer is short math or a few words, not junk and not a sentence going on."""
    if len(ans) > 150 or not re.search(r"\w", ans) or _JUNK.search(ans) or not _balanced(ans):
        return False
    words = _prose_words(ans)
    return len(words) <= 5 and not _STOP.intersection(words)


def _closing_statement(text: str) -> str | None:
    """The answer of the last marker statement ("The answer is X") if it closes the text."""
    marker = None
    if "####" in text or "answer" in text.lower():   # a scan in C spares most text the regex
        for marker in _MARKER.finditer(text):        # the last statement is the one that counts
            pass
    return _stated_answer(text, marker) if marker else None


def _stated_answer(text: str, marker: re.Match) -> str | None:
    """The answer that a marker introduces, if the statement closes the text and commits to
    it; None for an unfinished, malformed, hedged, doubted or not-final statement."""
    rest = text[marker.end():]
    span = _MATH_SPAN.match(rest)
    if span:                                         # "is $x = 3$ (in cm)."
        ans = next(g for g in span.groups() if g is not None)
        after = rest[span.end():]
        contrast = _CONTRAST_AFTER.match(after)     # "is $5$, not 7."
        after = after[contrast.end():] if contrast else after
    else:
        stop = _STATEMENT_END.search(rest)
        ans, after = (rest[:stop.start()], rest[stop.start():]) if stop else (rest, "")
    ans = _CONTRAST.sub("", ans.replace("**", "").strip().rstrip(".").strip())
    if len(after) > 300 or _SIGN_OFF.search(after) or _doubts(after) or not _answer_like(ans):
        return None                                  # more math or a doubt follows: not final
    if "#" in marker.group(0) and _prose_words(ans):
        return None                                  # GSM8K's "#### 18" line holds the number alone
    if _hedged(text[max(0, marker.start() - 300):marker.start()]):
        return None
    return ans


# GSM8K style, with no marker: "Thus, Janet makes $18 every day." The last sentence of the
# completion, finished, in prose, opened by a conclusion word, whose last number is the object
# of a result verb and is followed by at most a few words ("every day", "dollars").
_OPENER = re.compile(r"(?:so|thus|therefore|hence|altogether|overall|finally|in\s+(?:total|all)"
                     r"|the\s+(?:final\s+)?(?:result|total|sum|answer|value|amount|number))\b",
                     re.I)
_PROSE_TOKEN = re.compile(r"\(?(?:[A-Za-z]+(?:['-][A-Za-z]+)*|\$?-?\d+(?:,\d{3})*(?:\.\d+)?%?"
                          r"|[-+*/=])\)?[,.:;!]?")      # a word, a number or an operator
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_CUE = re.compile(r"(?:\b(?:is|are|was|were|be|equals?|totals?|total\s+of|makes?|made|earns?|"
                  r"earned|has|have|had|gets?|got|needs?|costs?|pays?|paid|spends?|spent|saves?|"
                  r"saved|sells?|sold|buys?|bought)|=)\s*\$?\s*$", re.I)
_AFTER_NUMBER = re.compile(r"%?((?:\s+[A-Za-z]+){0,4})\s*[.!]")


def _closing_number(text: str) -> str | None:
    """The stated result of a completion's closing sentence, GSM8K style; else None."""
    tail = text[-600:].rstrip()
    if not tail.endswith((".", "!")):                # an unfinished sentence states nothing
        return None
    sentence = re.split(r"(?<=[.!?])\s+|\n", tail)[-1]
    tokens = sentence.split()
    if not _OPENER.match(sentence) or not all(_PROSE_TOKEN.fullmatch(t) for t in tokens):
        return None
    if 2 * len(_prose_words(sentence)) < max(len(tokens), 6):
        return None                                  # mostly words, and at least three
    if _unsure(sentence) or _has_word(sentence, _SUPPOSED | {"not", "no", "never", "n't"}):
        return None                                  # "So maybe Janet makes $18 every day."
    number = None
    for number in _NUMBER.finditer(sentence):
        pass
    if number is None or not _CUE.search(sentence[max(0, number.start() - 30):number.start()]):
        return None
    after = _AFTER_NUMBER.fullmatch(sentence, number.end())
    if after is None or (_STOP | _CHANGERS).intersection(after.group(1).lower().split()):
        return None
    return number.group(0)


# =====================================================================================
# 2. Normalisation: strip what a human grader ignores
# =====================================================================================

_UNICODE = {"−": "-", "–": "-", "×": r"\times ", "÷": r"\div ", "·": r"\cdot ",
            "≤": r"\le ", "≥": r"\ge ", "∞": r"\infty ", "π": r"\pi ",
            "°": r"^\circ ", "∪": r"\cup ", "≠": r"\ne ", "⋅": r"\cdot ", "√": r"\sqrt ",
            "≈": r"\approx ", "\u00a0": " ", "ℝ": r"\mathbb{R}"}
_SUPERSCRIPT = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+")                 # x² is x^2
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_REALS = re.compile(r"\\mathbb\s*\{?\s*R\s*\}?|(?i:\ball\s+real\s+numbers\b|\ball\s+reals\b)")
_UNITS = (r"(?:cm|mm|km|m|meters?|centimeters?|inches|inch|in|feet|foot|ft|miles?|mph|"
          r"units?|sq|square|cubic|degrees?|deg|dollars?|cents?|seconds?|minutes?|hours?|"
          r"days?|weeks?|years?|s|min|hr|kg|g|grams?|pounds?|lbs?|ounces?|oz|liters?|L|ml|"
          r"mL|people|students|ways|points|marbles|apples|times|percent)")
# words that change or withdraw the number they follow: never dropped as if they were a unit
_CHANGERS = {"or", "and", "nor", "but", "more", "less", "fewer", "least", "most", "over",
             "under", "above", "below", "than", "about", "around", "approximately", "approx",
             "roughly", "nearly", "almost", "ish", "maybe", "perhaps", "possibly", "probably",
             "plus", "minus", "squared", "cubed", "factorial", "no", "wrong", "incorrect",
             "false", "max", "maximum", "minimum", "up", "tops", "hundreds", "thousands",
             "millions", "dozens"}
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = {"dozen": 12, "hundred": 100, "thousand": 10 ** 3, "million": 10 ** 6,
           "billion": 10 ** 9, "trillion": 10 ** 12}
_NUMBER_WORD = {w: v for v, w in enumerate(_ONES)} | {w: 10 * v for v, w in enumerate(_TENS, 2)}
_SPELLED = re.compile(r"(?:(?:%s)\b[\s-]*)+" % "|".join(sorted(     # longest first: eighteen
    [*_NUMBER_WORD, *_SCALES, "and", "minus", "negative"], key=len, reverse=True)), re.I)
_SCALED = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(%s)\b" % "|".join(_SCALES), re.I)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname|rm|bf)"
                       r"\s*\{([^{}]*)\}")


def _spelled_number(phrase: str) -> int | None:
    """'one hundred twenty-three' -> 123, 'forty-two thousand' -> 42000; None when the words do
    not spell a number in the usual order ('two one', 'and')."""
    words = [w for w in re.split(r"[\s-]+", phrase.lower()) if w and w != "and"]
    sign = -1 if words and words[0] in ("minus", "negative") else 1
    total, group, last = 0, 0, None            # last: the previous ones/tens word, if any
    for w in words[sign < 0:]:
        if w in _NUMBER_WORD:
            v = _NUMBER_WORD[w]
            if last is not None and not (last >= 20 and v < 10):   # only "forty-two" joins
                return None
            group, last = group + v, v
        elif w == "hundred" and 0 < group < 100:          # "twelve hundred" too
            group, last = group * 100, None
        elif w in _SCALES and w != "hundred" and group:
            total, group, last = total + group * _SCALES[w], 0, None
        else:
            return None
    return sign * (total + group) if words[sign < 0:] else None


def _words_to_number(s: str) -> str:
    """Number words and scale words as digits: 'forty-two apples' -> '42 apples',
    '1.45 million' -> '1450000', '5 dozen' -> '60'."""
    m = _SPELLED.match(s)
    if m and (m.end() == len(s) or s[m.end() - 1] == " "):     # not the "one" of one-to-one
        value = _spelled_number(m.group(0))
        if value is not None:
            s = f"{value} {s[m.end():]}".strip()
    return _SCALED.sub(lambda m: str(Fraction(m.group(1)) * _SCALES[m.group(2).lower()]), s)


def _unit_tail(m: re.Match) -> str:
    """Words after a number are a unit ('18 cookies'), unless they go on with the sentence or
    change the number ('12 or more', '5 squared', '42 wrong')."""
    words = set(m.group(0).lower().split())
    return m.group(0) if words & (_STOP | _CHANGERS) else ""


def _rewrites(*pairs: tuple[str, str]) -> list[tuple[re.Pattern, str]]:
    """Compiled once: normalize runs twice per reward, and re's cache lookup is not free."""
    return [(re.compile(p), r) for p, r in pairs]


_LATEX_NOISE = _rewrites(                  # in order: each step relies on the ones before
    (r"\\\[|\\\]|\\\(|\\\)|\\?\$", ""),                          # math delimiters, \$
    (r"\\\\", r" \\cr "),                                        # matrix row break
    (r"(?<=\d)(?:\\,| )(?=\d{3}\b)", ""),                       # 1\,000\,000 and 1 000 000
    (r"\\varnothing|\\\{\s*\\\}|\\emptyset", r"\\emptyset "),
    (r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\b\s*", ""),
    (r"\\langle\b", "("), (r"\\rangle\b", ")"), (r"\\neq\b", r"\\ne"),   # vectors, \neq
    (r"\\\{", r"\\lbrace "), (r"\\\}", r"\\rbrace "),
    (r"(?<=\d),\s*\\!\s*(?=\d)", ","),                          # 11,\! 111 is 11,111
    (r"\\!", ""),                                                # 32,\!348 is 32348
    (r"\\(?:displaystyle|textstyle|,|;|:|quad|qquad| )|~", " "),
    (r"\\[dt]frac", r"\\frac"),
    (r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree)(?:\s*[CF]\b)?", ""),   # 30^\circ C
    (r"\\%|%|\\percent", ""),                                    # MATH convention: 10% is 10
)
_ROOT_OF_NUMBER = re.compile(r"√\s*(\d+(?:\.\d+)?)")
_ONE_LETTER_TEXT = re.compile(r"\\mathrm\s*(\w)|\\text\s*(\w)")
_SPACES = re.compile(r"\s+")
_APPROX = re.compile(r"^(?:\\approx|\\sim|approximately|about)\s*")
_UNIT_TAIL = re.compile(r"(?:(?<=[\d}\s])\s*\b|(?<=\d)(?=[a-zA-Z]{2}))" + _UNITS
                        + r"\b\s*(?:\^\s*\{?[23]\}?)?\.?\s*$")
_WORD_TAIL = re.compile(r"(?<=[\d}])\s+[a-zA-Z]{2,}(?:\s+[a-zA-Z]{2,})*\.?\s*$")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_ANSWER_IS = re.compile(r"^(?:the\s+)?(?:answer|solution)s?\s*(?:is|:)\s*", re.I)


def _until_stable(pattern: re.Pattern, repl, s: str, rounds: int = 3) -> str:
    """Apply a rewrite again while it changes s: \\text{\\textbf{x}}, "8 square feet"."""
    for _ in range(rounds):
        s, before = pattern.sub(repl, s), s
        if s == before:
            break
    return s


def normalize(s: str) -> str:
    """A canonical spelling of an answer string (still LaTeX-ish)."""
    s = _INVISIBLE.sub("", s)                                   # a zero-width space is nothing
    s = _SUPERSCRIPT.sub(lambda m: "^{%s}" % m.group(0).translate(_SUPERSCRIPT_DIGITS), s)
    s = _ROOT_OF_NUMBER.sub(r"\\sqrt{\1}", s)                   # √12 is the root of 12
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    for pattern, repl in _LATEX_NOISE:
        s = pattern.sub(repl, s)
    s = _until_stable(_TEXT_CMD, r" \1 ", s)                     # \text{(A)}, \textbf{\text{x}}
    s = _ONE_LETTER_TEXT.sub(r"\1\2", s)
    s = _REALS.sub(r"(-\\infty, \\infty)", s)                   # \mathbb{R}, all real numbers
    s = _SPACES.sub(" ", s).strip()
    s = _APPROX.sub("", s)                                      # the gold "\approx 3.14"
    s = _words_to_number(s)
    s = _until_stable(_UNIT_TAIL, "", s)                  # "8 square feet", "5cm", "30kg"
    s = _WORD_TAIL.sub(_unit_tail, s)                     # other words: "18 cookies", "4.5e33 ergs"
    s = _SPACES.sub(" ", s).strip().rstrip(".").strip()
    s = s.replace("{,}", "")
    if _THOUSANDS.fullmatch(s):                          # 1,000 is a number, not a list
        s = s.replace(",", "")
    return _ANSWER_IS.sub("", s)


# =====================================================================================
# 3. A bounded LaTeX expression parser -> small tree of tuples, and its values
# =====================================================================================


class _ParseError(Exception):
    pass


class _Inexact(Exception):
    """No cheap exact rational value: pi, e, i, a logarithm, an irrational root, a huge number."""


_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+(?![a-zA-Z]))?|\.\d+)|(\\[a-zA-Z]+)|"
                    r"([a-zA-Z])|(\S))")
_FUNCS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "cot": lambda z: 1 / cmath.tan(z),
          "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
          "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan, "sinh": cmath.sinh,
          "cosh": cmath.cosh, "tanh": cmath.tanh, "ln": cmath.log, "log": cmath.log,
          "exp": cmath.exp}
_CONSTS = {"pi": math.pi, "infty": math.inf, "inf": math.inf}
_GREEK = {"alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "nu", "rho", "sigma",
          "phi", "omega", "tau", "epsilon", "varepsilon", "varphi", "psi", "chi", "eta", "zeta",
          "xi", "kappa"}
_ARG_CMDS = set(_CONSTS) | _GREEK | {"frac", "sqrt"}   # may continue \sin's bare argument
_WORDS = re.compile(r"(?<![\\a-zA-Z])([a-zA-Z]{3,})")


def _tokens(s: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            break
        num, cmd, letter, other = m.groups()
        pos = m.end()
        if num is not None:
            out.append(("num", num))
        elif cmd is not None:
            out.append(("cmd", cmd[1:]))
        elif letter is not None:
            out.append(("var", letter))
        else:
            out.append(("op", other))
        if len(out) > MAX_NODES:
            raise _ParseError("too long")
    return out


def _number(text: str) -> Fraction:
    """A numeral, exactly: 0.1 is 1/10, not the float nearest to it."""
    exponent = text.lower().partition("e")[2]
    if exponent and abs(int(exponent)) > 400:
        raise _ParseError("huge exponent")
    return Fraction(text)


class _Parser:
    """Recursive descent: expr := term (+|- term)*; term := unary (*|/|implicit unary)* ..."""

    def __init__(self, s: str):
        self.t = _tokens(s)
        self.i = 0
        self.depth = 0

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("end", "")

    def take(self, kind=None, val=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (val is not None and tok[1] != val):
            raise _ParseError(f"expected {val or kind}, got {tok}")
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        if self.peek()[0] != "end":
            raise _ParseError(f"trailing {self.peek()}")
        return node

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _ParseError("too deep")
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):   # \pm is a set of values, not a sum
            op = self.take()[1]
            node = (op, node, self.term())
        self.depth -= 1
        return node

    def term(self):
        node = self.unary()
        while True:
            tok = self.peek()
            if tok in (("op", "*"), ("cmd", "cdot"), ("cmd", "times")):
                self.take()
                node = ("*", node, self.unary())
            elif tok in (("op", "/"), ("cmd", "div")):
                self.take()
                node = ("/", node, self.unary())
            elif self.starts_atom(tok):
                if tok[0] == "num" and node[0] == "num":
                    raise _ParseError("2 10 is two numbers, not 20")
                node = ("*", node, self.power())          # implicit multiplication: 2x, 2\pi
            else:
                return node

    def starts_atom(self, tok):
        kind, v = tok
        return (kind in ("num", "var") or (kind == "op" and v in "({[")
                or (kind == "cmd" and (v in _FUNCS or v in _CONSTS or v in _GREEK
                                       or v in ("frac", "sqrt"))))

    def unary(self):
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.unary())
        if self.peek() == ("op", "+"):
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.postfix()
        if self.peek() == ("op", "^"):
            self.take()
            return ("^", base, self.exponent())
        return base

    def exponent(self):
        if self.peek() == ("op", "{"):
            return self.group()
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.exponent())
        return self.digit_or_atom(self.take())            # x^23 is x^2 * 3 in LaTeX

    def postfix(self):
        node = self.atom()
        while self.peek() == ("op", "!"):
            self.take()
            node = ("!", node)
        return node

    def group(self):
        """{...} or a single token (LaTeX argument)."""
        if self.peek() == ("op", "{"):
            self.take()
            node = self.expr()
            self.take("op", "}")
            return node
        return self.digit_or_atom(self.take())            # \frac12: one digit per argument

    def digit_or_atom(self, tok):
        """A bare LaTeX argument takes one digit of a number: \\frac12, x^23."""
        if tok[0] == "num" and len(tok[1]) > 1 and tok[1].isdigit():
            self.t.insert(self.i, ("num", tok[1][1:]))
            return ("num", Fraction(int(tok[1][0])))
        return self.atom_from(tok)

    def atom(self):
        return self.atom_from(self.take())

    def atom_from(self, tok):
        kind, v = tok
        if kind == "num":
            return ("num", _number(v))
        if kind == "var":
            if v == "e":
                return ("num", math.e)
            if v == "i":
                return ("num", 1j)
            if self.peek() == ("op", "_"):                 # a_1, x_{n}
                self.take()
                sub = self.take()
                if sub == ("op", "{"):
                    depth, parts = 1, []
                    while depth:
                        t = self.take()
                        depth += (t == ("op", "{")) - (t == ("op", "}"))
                        parts.append(t[1])
                    v += "_" + "".join(parts[:-1])
                else:
                    v += "_" + sub[1]
            return ("var", v)
        if kind == "op" and v in "({[":
            close = {"(": ")", "{": "}", "[": "]"}[v]
            node = self.expr()
            self.take("op", close)
            return node
        if kind == "op" and v == "|":
            node = self.expr()
            self.take("op", "|")
            return ("abs", node)
        if kind == "cmd":
            if v in _GREEK:
                return ("var", v)
            if v in _CONSTS:
                return ("num", _CONSTS[v])
            if v == "frac":
                return ("/", self.group(), self.group())
            if v == "sqrt":
                if self.peek() == ("op", "["):
                    self.take()
                    n = self.expr()
                    self.take("op", "]")
                    return ("^", self.group(), ("/", ("num", Fraction(1)), n))
                return ("sqrt", self.group())
            if v in _FUNCS:
                power = None
                base = None
                if v == "log" and self.peek() == ("op", "_"):
                    self.take()
                    base = self.group()
                if self.peek() == ("op", "^"):            # \sin^2 x
                    self.take()
                    power = self.exponent()
                    if power == ("neg", ("num", 1)) and "arc" + v in _FUNCS:
                        v, power = "arc" + v, None           # \tan^{-1} is arctan
                if self.peek()[1] in "({[":
                    arg = self.atom()
                else:                                      # \cos 2x is cos(2x), not cos(2) x
                    arg = self.power()
                    while (self.peek()[0] in ("num", "var") or self.peek()[0] == "cmd"
                           and self.peek()[1] in _ARG_CMDS):
                        arg = ("*", arg, self.power())
                node = ("fn", v, arg)
                if base is not None:
                    node = ("/", node, ("fn", "ln", base))
                return node if power is None else ("^", node, power)
        raise _ParseError(f"unexpected {tok}")


_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _eval(node, env, budget) -> complex:
    """The value in complex floats; a finite input that overflows raises, so 10^{308} * 10 is
    no infinity."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _ParseError("budget")
    op = node[0]
    if op == "num":
        return complex(node[1])
    if op == "var":
        return env[node[1]]
    if op == "neg":
        return -_eval(node[1], env, budget)
    if op == "abs":
        return complex(abs(_eval(node[1], env, budget)))
    if op == "sqrt":
        return cmath.sqrt(_eval(node[1], env, budget))
    if op == "fn":
        return _FUNCS[node[1]](_eval(node[2], env, budget))
    if op == "!":
        x = _eval(node[1], env, budget)
        if x.imag or x.real < 0 or x.real > 170 or x.real != int(x.real):
            raise _ParseError("factorial")
        return complex(math.factorial(int(x.real)))
    a, b = _eval(node[1], env, budget), _eval(node[2], env, budget)
    if op in _ARITHMETIC:
        r = _ARITHMETIC[op](a, b)
    elif op == "^":
        if abs(b) > 1e4 and abs(a) not in (0.0, 1.0):
            raise _ParseError("huge power")
        if not b.imag and b.real == int(b.real) and not a.imag:
            r = complex(float(a.real) ** int(b.real))  # exact for (-8)^3, 2^-1
        else:
            r = a ** b
    else:
        raise _ParseError(op)
    if not cmath.isfinite(r) and cmath.isfinite(a) and cmath.isfinite(b):
        raise OverflowError(op)
    return r


def _exact(node, env, budget) -> Fraction:
    """The exact rational value; _Inexact where there is none that is cheap to find."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _ParseError("budget")
    op = node[0]
    if op == "num":
        if isinstance(node[1], Fraction):
            return node[1]
        raise _Inexact
    if op == "var":
        return env[node[1]]
    if op == "fn":
        raise _Inexact
    if op in ("neg", "abs", "sqrt", "!"):
        x = _exact(node[1], env, budget)
        if op == "neg":
            return -x
        if op == "abs":
            return abs(x)
        if op == "sqrt":
            return _exact_root(x, 2)
        if x.denominator != 1 or not 0 <= x <= 1000:
            raise _Inexact
        r = Fraction(math.factorial(int(x)))
    else:
        a, b = _exact(node[1], env, budget), _exact(node[2], env, budget)
        if op in _ARITHMETIC:
            r = _ARITHMETIC[op](a, b)                 # 1/0 raises: undefined, as in floats
        elif op == "^":
            r = _exact_power(a, b)
        else:
            raise _ParseError(op)
    if r.numerator.bit_length() + r.denominator.bit_length() > MAX_BITS:
        raise _Inexact
    return r


def _exact_power(a: Fraction, b: Fraction) -> Fraction:
    if b.denominator == 1:
        if abs(b.numerator) * max(a.numerator.bit_length(), a.denominator.bit_length()) > MAX_BITS:
            raise _Inexact
        return a ** b.numerator
    if b.denominator > 12 or a < 0:                   # (-8)^{1/3}: the complex branch, in floats
        raise _Inexact
    return _exact_power(_exact_root(a, b.denominator), Fraction(b.numerator))


def _exact_root(x: Fraction, q: int) -> Fraction:
    """The q-th root of x if it is rational."""
    if x < 0:
        raise _Inexact
    roots = []
    for n in (x.numerator, x.denominator):
        r = math.isqrt(n) if q == 2 else _integer_root(n, q)
        if r ** q != n:
            raise _Inexact
        roots.append(r)
    return Fraction(*roots)


def _integer_root(n: int, q: int) -> int:
    """The largest r with r**q <= n (Newton's method on integers)."""
    if n < 2:
        return n
    r = 1 << -(-n.bit_length() // q)                  # a power of two above the root
    while True:
        s = ((q - 1) * r + n // r ** (q - 1)) // q
        if s >= r:
            return r
        r = s


def _variables(node, out):
    if node[0] == "var":
        out.add(node[1])
    elif node[0] not in ("num",):
        for child in node[1:]:
            if isinstance(child, tuple):
                _variables(child, out)
    return out


def _parse_expr(s: str):
    try:
        if len(s) > MAX_ANSWER or _WORDS.search(re.sub(r"\\[a-zA-Z]+", " ", s)):
            return None                                  # words: compare as text
        return _Parser(s).parse()
    except (_ParseError, IndexError, ValueError, RecursionError, ZeroDivisionError):
        return None


# Sample points for variables: rational, not integers, of both signs, so that |x| is not x
# and ln|x| is not ln x. A variable's points follow from its name alone, so each side's
# values can be computed (and cached) on their own.
_POINTS = [Fraction(p) for p in ("7/5", "-13/8", "9/7", "-17/11", "23/13", "-5/3", "11/9",
                                 "-19/12", "29/16", "-7/6", "37/7", "-21/13", "17/10", "-41/6",
                                 "15/11", "-23/14")]
_TRIALS = 8                   # points per expression; a match needs half of them defined


def _point(name: str, k: int) -> Fraction:
    h = zlib.crc32(name.encode())
    return _POINTS[(k + h) % len(_POINTS)] + Fraction(h % 997, 4001)


def _value(tree, env: dict):
    """Exact where it can be (a Fraction), else a complex float; None where undefined."""
    try:
        return _exact(tree, env, [10_000])
    except _Inexact:
        pass
    except (ZeroDivisionError, OverflowError, ValueError, _ParseError):
        return None
    try:
        v = _eval(tree, {n: complex(x) for n, x in env.items()}, [10_000])
    except (ZeroDivisionError, OverflowError, ValueError, _ParseError):
        return None
    return None if cmath.isnan(v) else v


@functools.lru_cache(maxsize=1024)
def _values(s: str) -> tuple | None:
    """The values of an expression: one for a constant, else one per sample point."""
    tree = _parse_expr(_number_text(s))
    if tree is None:
        return None
    names = sorted(_variables(tree, set()))
    if not names:
        return (_value(tree, {}),)
    return tuple(_value(tree, {n: _point(n, k) for n in names}) for k in range(_TRIALS))


def _same(a, b) -> bool:
    """Is the answer's value a the gold's value b? Exact when both are rational; a rational
    gold allows the answer float rounding only, an irrational one REL_TOL."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    try:
        x, y = complex(a), complex(b)
    except OverflowError:
        return False
    if cmath.isinf(x) or cmath.isinf(y):
        return x == y
    rel = ROUNDING if isinstance(b, Fraction) else REL_TOL
    return abs(x - y) <= max(rel * max(abs(x), abs(y)), ZERO_TOL)


def _is_zero(v) -> bool:
    return v == 0 if isinstance(v, Fraction) else abs(v) <= ZERO_TOL


def _expr_equal(a: str, b: str, up_to_scale: bool = False) -> bool:
    """Do the answer a and the gold b take the same values (or, for the two sides of
    equations, proportional ones: x + y - 1 and 2x + 2y - 2)? Points where either side is
    undefined are skipped, but at least half of them must agree; a constant side is compared
    at every point of the other."""
    va, vb = _values(a), _values(b)
    if va is None or vb is None:
        return False
    n = max(len(va), len(vb))
    agreed, scale = 0, None
    for k in range(n):
        x, y = va[k % len(va)], vb[k % len(vb)]
        if x is None or y is None:
            continue
        if up_to_scale:
            if _is_zero(x) or _is_zero(y):
                if not (_is_zero(x) and _is_zero(y)):
                    return False
                continue                     # a point on both curves says nothing of scale
            if scale is None:
                scale = x / y                # nonzero: an identity (0 = 0) never gets one
                agreed += 1
                continue
            x, y = x / y, scale
        if not _same(x, y):
            return False
        agreed += 1
    return agreed >= (n + 1) // 2


# =====================================================================================
# 4. Comparison: golds, then structures (lists, tuples, sets, intervals, matrices,
#    equations, choices), then values
# =====================================================================================

_MAX_GOLDS = 50           # OlympiadBench lists a few; a longer list is not a gold answer


def _gold_texts(gold) -> list[str]:
    """The gold answers as strings: a number is its decimal spelling; anything else (None, a
    bool, a nan) is no gold."""
    out = []
    for g in list(gold[:_MAX_GOLDS]) if isinstance(gold, (list, tuple)) else [gold]:
        if isinstance(g, str):
            out.append(g)
        elif isinstance(g, (int, Fraction)) and not isinstance(g, bool):
            out.append(str(g))
        elif isinstance(g, float) and math.isfinite(g):
            out.append(repr(g))
    return out


def _squash(s: str) -> str:
    return re.sub(r"[\s$]+", "", _INVISIBLE.sub("", s))


def _equiv(pred: str, gold: str) -> bool:
    if len(pred) > MAX_TEXT or len(gold) > MAX_TEXT:
        return False                              # longer than any completion that is read
    pred = _last_box(pred) or pred if _BOX.search(pred) else pred
    gold = _last_box(gold) or gold if _BOX.search(gold) else gold
    if len(pred) > MAX_COMPARED or len(gold) > MAX_COMPARED:
        a, b = _squash(pred), _squash(gold)
        return bool(a) and a == b                 # in full: no prefix stands for the whole
    a, b = normalize(pred), normalize(gold)
    if not a or not b:
        return False
    if re.fullmatch(r"[a-d]", a) and _choice(b):     # "b" for the choice (B); e is Euler's e
        a = a.upper()
    if a == b:
        return True
    if len(a) > MAX_ANSWER or len(b) > MAX_ANSWER:
        return _simplify_text(a) == _simplify_text(b)
    return _equal(_structure(a), _structure(b))


_SPLITTERS: dict[tuple[str, ...], re.Pattern] = {}


def _split_top(s: str, seps=(",",)) -> list[str]:
    """Split on separators that are not inside (), [], {}."""
    if seps not in _SPLITTERS:                # brackets and separators, found in C
        _SPLITTERS[seps] = re.compile(r"[(\[{}\])]|" + "|".join(map(re.escape, seps)))
    parts, depth, start = [], 0, 0
    for m in _SPLITTERS[seps].finditer(s):
        tok = m.group(0)
        if tok in ("(", "[", "{"):
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
        elif depth == 0:
            parts.append(s[start:m.start()])
            start = m.end()
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return False
    return depth == 0


_INEQ = {r"\le": "<=", r"\leq": "<=", r"\ge": ">=", r"\geq": ">=", "<=": "<=", ">=": ">=",
         "<": "<", ">": ">"}
_INEQ_RE = re.compile(r"\\leq?\b|\\geq?\b|<=|>=|<|>")
_VARIABLE = r"[a-zA-Z]|\\(?:%s)\b" % "|".join(sorted(_GREEK))    # x, \lambda
_OR = re.compile(r"\\cup|\\lor\b|\\vee\b|\s+or\s+")
_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S)
_NAME = r"[a-zA-Z](?:_\{?\w+\}?)?(?:\^\{?-1\}?)?(?:\([a-zA-Z]\))?|\\[a-zA-Z]+"
_NAMED = re.compile(rf"\s*({_NAME})\s*=(?!=)")


def _inequality(s: str):
    """'x \\le 3', '5 > x', '-2 < x < 5', '3 \\ge x > 1' -> ('interval', lo_closed, lo, hi,
    hi_closed); None when the relations do not bound one variable ('1 < x > 3', '2 < 5 < x')."""
    ops = list(_INEQ_RE.finditer(s))
    if not 1 <= len(ops) <= 2:
        return None
    pieces = [p.strip() for p in _INEQ_RE.split(s)]
    kinds = [_INEQ[o.group(0)] for o in ops]
    var_at = [k for k, p in enumerate(pieces) if re.fullmatch(_VARIABLE, p)]
    if len(var_at) != 1 or len(kinds) == 2 and (var_at[0] != 1 or kinds[0][0] != kinds[1][0]):
        return None                              # a chain bounds its middle, in one direction
    v = var_at[0]
    lo, hi, lo_c, hi_c = "-\\infty", "\\infty", False, False
    for k, kind in enumerate(kinds):             # relation between pieces[k] and pieces[k+1]
        bound, closed = pieces[k] if k + 1 == v else pieces[k + 1], "=" in kind
        if (kind[0] == "<") == (k + 1 == v):     # left < x, or x > right: a lower bound
            lo, lo_c = bound, closed
        else:                                    # x < right, or left > x: an upper bound
            hi, hi_c = bound, closed
    return ("interval", lo_c, lo, hi, hi_c)


_CHOICE = re.compile(r"\(\s*([A-Ea-e])\s*\)(\s.*)?|([A-E])(?:\)(\s.*)?)?", re.S)
_ANOTHER_OPTION = re.compile(r"\(\s*[A-Ea-e]\s*\)|(?<![\w\\])[A-E]\)"
                             r"|\b(?:or|and|but|maybe|perhaps|possibly|probably)\b", re.I)


def _choice(s: str) -> str | None:
    """'(A)', '(a) 5', 'A', 'A)' -> 'A'. A bare lower-case letter is a variable, not a choice,
    and an answer that names a second option ('(A) or (B)') chooses none."""
    if len(s) > 60:
        return None
    m = _CHOICE.fullmatch(s.strip())
    if not m or _ANOTHER_OPTION.search(m.group(2) or m.group(4) or ""):
        return None
    return (m.group(1) or m.group(3)).upper()


def _strip_lhs(s: str) -> str:
    """'x = 3' -> '3'; 'f(x) = 2x' -> '2x'; keeps equations whose left side is not a name."""
    s = re.sub(rf"^(?:{_VARIABLE})\s*\\in\b\s*", "", s)        # x \in [1, 2], \lambda \in (3,4]
    parts = _split_top(s, ("=", "\\approx"))
    if len(parts) == 2 and re.fullmatch(rf"{_NAME}|\((?:\s*(?:{_NAME})\s*,)+\s*(?:{_NAME})\s*\)",
                                        parts[0].strip()):
        return parts[1]                                    # x = 3, (x, y) = (1, 2)
    return s


def _item(s: str):
    """('atom', value, as written): the name of 'x = 3' is dropped for comparing values and
    kept for equations and for naming the items of a list."""
    s = s.strip()
    return ("atom", _strip_lhs(s), s)


def _scaled(scale: str, cell: str):
    """A cell of k * matrix: the product, left for the evaluator."""
    return _item(f"({scale})({cell})" if scale else cell)


def _solutions(parts: list[str]) -> list:
    """The items of a set or a list of solutions; '1 \\pm \\sqrt5' stands for two of them."""
    out = []
    for p in filter(None, parts):
        if len(re.findall(r"\\(?:pm|mp)\b", p)) == 1:
            out += [_item(re.sub(r"\\(?:pm|mp)\b", op, p)) for op in "+-"]
        else:
            out.append(_item(p))
    return out


def _structure(s: str):
    """Parse a normalised answer into a comparable structure. A bracketed tuple is ordered; a
    brace set, a ± and a list joined by 'and', 'or' or ';' are not; a bare comma list is a
    list of solutions, ordered only against a tuple."""
    written = s.strip()
    s = _strip_lhs(written)
    # matrices and column vectors, with a scalar factored out in front: 4\begin{pmatrix}...
    begin = s.find("\\begin{")
    m = _MATRIX.fullmatch(s, max(begin, 0))
    scale = re.sub(r"(?:\\cdot|\\times|\*)\s*$", "", s[:max(begin, 0)]).strip()
    scale = {"-": "-1", "+": ""}.get(scale, scale)
    if m and not (scale and "v" in m.group(1).lower()):      # k|A| is not |kA|
        rows = [r for r in m.group(2).split("\\cr") if r.strip()]
        cells = [[_scaled(scale, c) for c in r.split("&")] for r in rows]
        if all(len(r) == 1 for r in cells):
            return ("tuple", "(", [r[0] for r in cells], ")")  # a column vector is a tuple
        return ("matrix", cells)
    # unions of intervals, and inequalities joined by "or": x < 2 or x > 3
    pieces = _OR.split(s)
    if len(pieces) >= 2:
        parts = [_structure(p) for p in pieces]
        if "\\cup" in s or all(p[0] == "interval" for p in parts):
            return ("union", parts)
    # brace sets: \{1, 2\} and a bare {1, 2}
    if s.startswith("\\lbrace") and s.endswith("\\rbrace"):
        return ("set", _solutions(_split_top(s[len("\\lbrace"):-len("\\rbrace")])))
    if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]) and "," in s:
        return ("set", _solutions(_split_top(s[1:-1])))
    # bracketed tuples / intervals: the outer brackets must enclose everything
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        parts = _split_top(s[1:-1])
        if len(parts) >= 2:
            if s[0] + s[-1] != "()" or any("infty" in p for p in parts):
                if len(parts) == 2:
                    return ("interval", s[0] == "[", parts[0], parts[1], s[-1] == "]")
            return ("tuple", s[0], [_item(p) for p in parts], s[-1])
    if _INEQ_RE.search(s):
        iv = _inequality(s)
        if iv:
            return iv
    # a bare list of solutions: "1, 2", "1 and 2", "x = 1 or x = 2", "1 \pm \sqrt2"
    joined = re.sub(r"\s+(?:and|or)\s+|;", ",", s)
    parts = _split_top(joined)
    items = _solutions(parts) if all(parts) else []
    if len(items) >= 2:
        unordered = joined != s or re.search(r"\\(?:pm|mp)\b", s)
        return ("set" if unordered else "list", items)
    return ("atom", s, written)


def _equal(a, b) -> bool:
    """Is the answer's structure a the gold's structure b? Not symmetric: a tuple gold keeps its
    order (a bare list in the same order matches it), a set or list gold does not."""
    ka, kb = a[0], b[0]
    if ka == kb == "atom":
        return _atom_equal(a[1], b[1]) or _equations_equal(a[2], b[2])
    if ka == kb == "interval":
        return (a[1] == b[1] and a[4] == b[4] and _atom_equal(a[2], b[2])
                and _atom_equal(a[3], b[3]))
    if ka == kb == "union":
        return _unordered(a[1], b[1])
    if kb in ("set", "list"):                       # solutions: in any order
        if ka in ("set", "list"):
            return _unordered(a[1], b[1])
        return ka == "tuple" and _unordered(a[2], b[1])
    if kb == "tuple" and ka == "tuple":
        return a[1] + a[3] == b[1] + b[3] and _in_order(a[2], b[2])
    if kb == "tuple" and ka == "list":
        return b[1] + b[3] == "()" and _in_order(a[1], b[2])
    if {ka, kb} == {"tuple", "interval"}:
        t, iv = (a, b) if ka == "tuple" else (b, a)
        return (t[1] + t[3] == ("[" if iv[1] else "(") + ("]" if iv[4] else ")")
                and len(t[2]) == 2 and _equal(t[2][0], _item(iv[2]))
                and _equal(t[2][1], _item(iv[3])))
    if ka == kb == "matrix":
        return (len(a[1]) == len(b[1]) and all(len(r) == len(q) for r, q in zip(a[1], b[1]))
                and _in_order([x for r in a[1] for x in r], [y for q in b[1] for y in q]))
    return False


def _item_equal(x, y) -> bool:
    """Items of a list, a set or a tuple: when both are named ('x = 3'), the names must agree."""
    if x[0] == y[0] == "atom":
        nx, ny = _NAMED.match(x[2]), _NAMED.match(y[2])
        if nx and ny and nx.group(1) != ny.group(1):
            return False
    return _equal(x, y)


def _in_order(xs, ys) -> bool:
    return (len(xs) == len(ys) <= MAX_ITEMS
            and all(_item_equal(x, y) for x, y in zip(xs, ys)))


def _unordered(xs, ys) -> bool:
    if len(xs) != len(ys) or len(xs) > MAX_ITEMS // 2:
        return False
    left = list(ys)
    for x in xs:
        hit = next((k for k, y in enumerate(left) if _item_equal(x, y)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


_BASED = re.compile(r"(?=[0-9A-Z]*\d)([0-9A-Z]+)_\{?\s*(\d+)\s*\}?")   # 1011_2, 2A_{16}
# a gold in scientific notation with a decimal mantissa states its precision: 4.5e33
_SCI = re.compile(r"-?\d\.(\d+)\s*(?:[eE]|\\(?:times|cdot)\s*10\s*\^)\s*\{?\s*[-+]?\d+\s*\}?")
_NUMERAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?")


def _atom_equal(a: str, b: str) -> bool:
    """Is the answer a the gold b, as one value? The gold's spelling decides precision."""
    a, b = a.strip(), b.strip()
    if a == b:
        return True
    ta, tb = _simplify_text(a), _simplify_text(b)
    if ta == tb and ta:
        return True
    ca, cb = _choice(a), _choice(b)
    if ca and cb:
        return ca == cb
    sci = _SCI.fullmatch(b)
    if sci:                                               # 4.53e33 given as 4.5 x 10^{33}
        va, vb, digits = _real_value(a), _real_value(b), 1 + len(sci.group(1))
        return None not in (va, vb) and _round_sig(va, digits) == _round_sig(vb, digits)
    ba, bb = _BASED.fullmatch(a), _BASED.fullmatch(b)
    if (ba is None) != (bb is None):                      # 52_8 for 52: the base on one side only
        based, other = (ba, b) if ba else (bb, a)
        return based.group(1) == other
    if _NUMERAL.fullmatch(a) and _NUMERAL.fullmatch(b):
        return Fraction(a) == Fraction(b)                 # long numerals too, in full
    return _expr_equal(a, b)


def _equations_equal(a: str, b: str) -> bool:
    """Two equations are the same when L - R of one is a nonzero constant times L - R of the
    other; an identity (0 = 0, x - x = 0) is the same as nothing."""
    if a.count("=") != 1 or b.count("=") != 1 or _INEQ_RE.search(a) or _INEQ_RE.search(b):
        return False
    (la, ra), (lb, rb) = a.split("="), b.split("=")
    return _expr_equal(f"({la})-({ra})", f"({lb})-({rb})", up_to_scale=True)


def _real_value(s: str) -> float | None:
    values = _values(s)
    if not values or len(values) != 1 or values[0] is None:
        return None
    try:
        v = complex(values[0])
    except OverflowError:
        return None
    return v.real if not v.imag and math.isfinite(v.real) else None


def _round_sig(x: float, digits: int) -> float:
    """x to `digits` significant digits."""
    return float(f"{x:.{digits - 1}e}")


def _simplify_text(s: str) -> str:
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    if re.fullmatch(r"[A-Za-z][A-Za-z\s'-]+", s):        # words: case does not matter
        s = s.lower()                                      # (but x is not X)
    return re.sub(r"[\s{}]", "", s).rstrip(".")


def _number_text(s: str) -> str:
    """Spellings the parser does not know: mixed numbers, function names without \\."""
    rep = re.fullmatch(r"(-?)(\d*)\.(\d*)\\overline\{?(\d{1,12})\}?", s)
    if rep:                                              # 0.1\overline{6} = 1/6
        sign, whole, pre, cyc = rep.groups()
        value = Fraction(int(whole or 0)) + Fraction(int(pre or 0), 10 ** len(pre)) + Fraction(
            int(cyc), (10 ** len(cyc) - 1) * 10 ** len(pre))
        s = f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"
    m = re.fullmatch(r"(-?)(\d+)\s*\\frac\s*\{?(\d+)\}?\s*\{?(\d+)\}?", s)
    if m and int(m.group(3)) < int(m.group(4)):       # mixed number 2\frac{1}{2} = 5/2
        s = f"{m.group(1)}({m.group(2)}+\\frac{{{m.group(3)}}}{{{m.group(4)}}})"
    return re.sub(r"(?<!\\)\b(sin|cos|tan|cot|sec|csc|ln|log|exp|sqrt|pi)\b", r"\\\1", s)
