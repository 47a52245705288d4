"""verify.py: is the final answer of a completion mathematically the gold answer?

Standard library only. The reward of an RLVR run is `reward(completion, gold)`: 1.0 or 0.0.
`gold` may also be a list of answers that all count (OlympiadBench's `final_answer`).

The reward is a security boundary: a policy learns whatever the checker pays for. Garbage, an
unfinished answer or a number merely mentioned on the way is never paid, so extraction wants a
committed answer. How it decides, in order:
  1. extract   the last non-empty \\boxed{...} (or \\fbox, \\boxed 9); a box that was never
               closed is a truncated answer: none. Without a box, the last closing statement:
               "the (final) answer is X", or at the start of a line or sentence "Answer: X",
               "Final answer: X", a "Final Answer" heading with X below it, GSM8K's "#### X".
               X runs to the end of its sentence or line (or is the first $...$ after the
               marker) and must look like an answer: short, no junk characters, balanced
               brackets, a few words at most and none of them function words ("the", "is",
               "because": a sentence that goes on). After it only a sign-off may follow, with
               no digit or math ("I hope it is correct."): a statement followed by more work
               was not final. Last, GSM8K style, the closing sentence: the completion ends with
               a finished prose sentence opened by a conclusion word (So, Thus, In total, The
               result ...) whose last number is the object of a result verb (is, =, makes,
               costs ...) followed by a few words at most: "Thus, Janet makes $18 every day."
  2. normalise LaTeX noise away: $, \\left, spacing, \\text{}, units (also 5cm, 30°C), degrees,
               "x =", "\\approx"; number words and scale words become digits ("forty-two",
               "1.45 million").
  3. compare   as strings; then as structures (tuples, sets with ± items, intervals,
               inequalities and their unions, matrices with a scalar factored out, multiple
               choice, base subscripts on one side); then numerically: both sides are parsed
               into a small expression tree and evaluated with complex floats, at several random
               points when they contain variables.
Every path does bounded work: inputs are capped in length, the parser limits its depth,
powers and factorials refuse huge arguments, nothing is ever eval'd, and every regex is
linear. Bad input gives 0.0, never an exception.
"""
from __future__ import annotations

import cmath
import math
import random
import re
from fractions import Fraction

MAX_TEXT = 100_000    # characters of a completion that are looked at (its tail)
MAX_ANSWER = 400      # longer answers are compared as strings only
MAX_DEPTH = 60        # parser nesting limit
MAX_NODES = 2_000     # parser size limit
REL_TOL = 1e-6        # numbers agree to this relative precision (abs 1e-13 near zero)

# =====================================================================================
# 1. Extraction
# =====================================================================================

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_BRACE = re.compile(r"\\.|[{}]", re.S)          # an escaped char (\{, \}) or a brace

# A fallback is paid only for a closing statement: a marker phrase, the answer it introduces,
# and after it nothing but a sign-off. A random string, or reasoning that mentions a number on
# the way, has to hit a whole phrase at the right place to be read as an answer.
_STATEMENT_START = (r"(?:^|(?<=\n)|(?<=[.!?]\s))[ \t>#*-]*"         # a line or a sentence,
                    r"(?:(?:so|thus|therefore|hence)\b,?[ \t*]*)?")     # "so **Answer:** 42"
_NEXT_LINE = r"[ \t*:]*(?:\n[ \t]*)?"                              # the answer may start below
_MARKER = re.compile(
    rf"\b(?:the|my|our)\s+(?:final\s+)?answer\s+is\b{_NEXT_LINE}"    # "so the final answer is X"
    rf"|{_STATEMENT_START}(?:final\s+)?answer\b[ \t*]*:{_NEXT_LINE}"  # "Answer: X", "Final answer:"
    rf"|{_STATEMENT_START}final\s+answer\b[ \t*#]*\n\s*"             # a heading, the answer below
    r"|(?:^|(?<=\n))[ \t]*####[ \t]*",                               # GSM8K's "#### 18", one line
    re.I)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_STATEMENT_END = re.compile(r"\n|\.(?=\s|$)")      # not the point of 2.5
_SIGN_OFF = re.compile(r"[\d=\\$^{}]")               # "I hope it is correct." has none of these
_JUNK = re.compile(r"[@#?\"`]|[\x00-\x08\x0b-\x1f\x7f]")   # never part of a math answer
_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
# function words: after an answer they mean the sentence goes on, so the number was not stated
_STOP = {"the", "an", "is", "are", "was", "were", "be", "so", "thus", "therefore", "hence",
         "answer", "final", "because", "since", "if", "then", "we", "it", "this", "that", "to",
         "equals", "equal", "makes", "gives", "get", "gets"}

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


def _last_box(text: str) -> str | None:
    """The content of the last non-empty box; None if that box was never closed."""
    for m in list(_BOX.finditer(text))[::-1][:20]:   # an empty \boxed{} is the prompt's echo
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            got = _braced(text, j)
            if got is None:
                return None                          # an unclosed box is a truncated answer
            content = got[0]
        else:
            tail = re.match(r"[^\s$]+", text[j:])      # \boxed 9
            content = tail.group(0) if tail else ""
        if content.strip():
            return content
    return None


def _prose_words(s: str) -> list[str]:
    """The words of s, lower-cased: letters outside LaTeX commands and \\text{}."""
    return [w.lower() for w in _PROSE_WORD.findall(_TEXT_CMD.sub(" ", s))]


def _answer_like(ans: str) -> bool:
    """A stated answer is short math or a few words, not junk and not a sentence going on."""
    if len(ans) > 150 or not re.search(r"\w", ans) or _JUNK.search(ans) or not _balanced(ans):
        return False
    words = _prose_words(ans)
    return len(words) <= 5 and not _STOP.intersection(words)


def _stated_answer(text: str, marker: re.Match) -> str | None:
    """The answer that a marker introduces, if the statement closes the completion; None for
    an unfinished, malformed or not-final statement."""
    rest = text[marker.end():]
    span = _MATH_SPAN.match(rest)
    if span:                                         # "is $x = 3$ (in cm)."
        ans = next(g for g in span.groups() if g is not None)
        after = rest[span.end():]
    else:
        stop = _STATEMENT_END.search(rest)
        ans, after = (rest[:stop.start()], rest[stop.start():]) if stop else (rest, "")
    ans = ans.replace("**", "").strip().rstrip(".").strip()
    if len(after) > 300 or _SIGN_OFF.search(after) or not _answer_like(ans):
        return None                                  # more math follows: it was not final
    if "#" in marker.group(0) and _prose_words(ans):
        return None                                  # GSM8K's "#### 18" line holds the number alone
    return ans


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
    number = None
    for number in _NUMBER.finditer(sentence):
        pass
    if number is None or not _CUE.search(sentence[max(0, number.start() - 30):number.start()]):
        return None
    after = _AFTER_NUMBER.fullmatch(sentence, number.end())
    if after is None or _STOP.intersection(after.group(1).lower().split()):
        return None
    return number.group(0)


def extract_answer(text: str) -> str | None:
    """The final answer of a model completion, or None when it commits to none."""
    if not isinstance(text, str):
        return None
    text = text[-MAX_TEXT:]
    if _BOX.search(text):
        ans = _last_box(text)
        return ans.strip() if ans and ans.strip() else None
    tail = text[-5000:]
    marker = None
    if "####" in tail or "answer" in tail.lower():   # a scan in C spares most text the regex
        for marker in _MARKER.finditer(tail):        # the last statement is the one that counts
            pass
    stated = _stated_answer(tail, marker) if marker else None
    return stated if stated is not None else _closing_number(tail)


# =====================================================================================
# 2. Normalisation: strip what a human grader ignores
# =====================================================================================

_UNICODE = {"−": "-", "–": "-", "×": r"\times ", "÷": r"\div ", "·": r"\cdot ",
            "≤": r"\le ", "≥": r"\ge ", "∞": r"\infty ", "π": r"\pi ",
            "°": r"^\circ ", "∪": r"\cup ", "≠": r"\ne ", "⋅": r"\cdot ", "√": r"\sqrt ",
            "≈": r"\approx "}
_UNITS = (r"(?:cm|mm|km|m|meters?|centimeters?|inches|inch|in|feet|foot|ft|miles?|mph|"
          r"units?|sq|square|cubic|degrees?|deg|dollars?|cents?|seconds?|minutes?|hours?|"
          r"days?|weeks?|years?|s|min|hr|kg|g|grams?|pounds?|lbs?|ounces?|oz|liters?|L|ml|"
          r"mL|people|students|ways|points|marbles|apples|times|percent)")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_NUMBER_WORD = {w: v for v, w in enumerate(_ONES)} | {w: 10 * v for v, w in enumerate(_TENS, 2)}
_SPELLED = re.compile(r"(?:(?:%s)\b[\s-]*)+" % "|".join(sorted(     # longest first: eighteen
    [*_NUMBER_WORD, *_SCALES, "hundred", "and", "minus", "negative"], key=len, reverse=True)), re.I)
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
        elif w in _SCALES and group:
            total, group, last = total + group * _SCALES[w], 0, None
        else:
            return None
    return sign * (total + group) if words[sign < 0:] else None


def _words_to_number(s: str) -> str:
    """Number words and scale words as digits: 'forty-two apples' -> '42 apples',
    '1.45 million' -> '1450000'."""
    m = _SPELLED.match(s)
    if m and (m.end() == len(s) or s[m.end() - 1] == " "):     # not the "one" of one-to-one
        value = _spelled_number(m.group(0))
        if value is not None:
            s = f"{value} {s[m.end():]}".strip()
    return _SCALED.sub(lambda m: str(Fraction(m.group(1)) * _SCALES[m.group(2).lower()]), s)


def _unit_tail(m: re.Match) -> str:
    """Words after a number are a unit ('18 cookies'), unless they go on with the sentence."""
    return m.group(0) if _STOP.intersection(m.group(0).lower().split()) else ""


def _rewrites(*pairs: tuple[str, str]) -> list[tuple[re.Pattern, str]]:
    """Compiled once: normalize runs twice per reward, and re's cache lookup is not free."""
    return [(re.compile(p), r) for p, r in pairs]


_LATEX_NOISE = _rewrites(                  # in order: each step relies on the ones before
    (r"\\\[|\\\]|\\\(|\\\)|\\?\$", ""),                          # math delimiters, \$
    (r"\\\\", r" \\cr "),                                        # matrix row break
    (r"(?<=\d)(?:\\,| )(?=\d{3}\b)", ""),                       # 1\,000\,000 and 1 000 000
    (r"\\varnothing|\\\{\s*\\\}|\\emptyset", r"\\emptyset "),
    (r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\b\s*", ""),
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
    s = _ROOT_OF_NUMBER.sub(r"\\sqrt{\1}", s[:MAX_ANSWER * 4])   # √12 is the root of 12
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    for pattern, repl in _LATEX_NOISE:
        s = pattern.sub(repl, s)
    s = _until_stable(_TEXT_CMD, r" \1 ", s)                     # \text{(A)}, \textbf{\text{x}}
    s = _ONE_LETTER_TEXT.sub(r"\1\2", s)
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
# 3. A bounded LaTeX expression parser -> small tree of tuples
# =====================================================================================


class _ParseError(Exception):
    pass


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
        while self.peek() in (("op", "+"), ("op", "-"), ("cmd", "pm")):
            op = self.take()[1]
            node = (op if op != "pm" else "+", node, self.term())
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
        tok = self.take()
        if tok[0] == "num" and len(tok[1]) > 1 and tok[1].isdigit():
            self.t.insert(self.i, ("num", tok[1][1:]))  # x^23 is x^2 * 3 in LaTeX
            return ("num", float(tok[1][0]))
        return self.atom_from(tok)

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
        tok = self.take()
        if tok[0] == "num" and tok[1].isdigit() and len(tok[1]) > 1:
            self.t.insert(self.i, ("num", tok[1][1:]))   # \frac12: one digit per argument
            return ("num", float(tok[1][0]))
        return self.atom_from(tok)

    def atom(self):
        return self.atom_from(self.take())

    def atom_from(self, tok):
        kind, v = tok
        if kind == "num":
            return ("num", float(v))
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
                    return ("^", self.group(), ("/", ("num", 1.0), n))
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
                    if power == ("neg", ("num", 1.0)) and "arc" + v in _FUNCS:
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


def _eval(node, env, budget):
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
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    if op == "^":
        if abs(b) > 1e4 and abs(a) not in (0.0, 1.0):
            raise _ParseError("huge power")
        if not b.imag and b.real == int(b.real) and not a.imag:
            return complex(float(a.real) ** int(b.real))  # exact for (-8)^3, 2^-1
        return a ** b
    raise _ParseError(op)


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
    except (_ParseError, IndexError, ValueError, RecursionError):
        return None


def _close(a: complex, b: complex) -> bool:
    if cmath.isnan(a) or cmath.isnan(b):
        return False
    if cmath.isinf(a) or cmath.isinf(b):
        return a == b
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), 1e-13)


_RNG = random.Random(7)                                   # fixed points: reproducible rewards
_POINTS = [_RNG.uniform(0.6, 2.4) for _ in range(30)]


def _expr_equal(ta, tb, up_to_scale: bool = False) -> bool:
    """Equal values (or, for equations, proportional ones); with variables, at 6 random
    points, skipping points where either side is undefined."""
    names = sorted(_variables(ta, set()) | _variables(tb, set()))
    trials = 1 if not names else 6
    agreed, scale = 0, None
    for k in range(trials):
        env = {n: complex(_POINTS[(k * 5 + j) % len(_POINTS)] + 0.37 * j)
               for j, n in enumerate(names)}
        try:
            a, b = _eval(ta, env, [10_000]), _eval(tb, env, [10_000])
            if up_to_scale:
                scale = a / b if scale is None else scale     # x + y = 1 is 2x + 2y = 2
                b = b * scale
        except (ZeroDivisionError, OverflowError, ValueError, _ParseError):
            continue
        if not _close(a, b):
            return False
        agreed += 1
    return agreed >= (1 if not names else 3)


# =====================================================================================
# 4. Structures: lists, tuples, sets, intervals, matrices, equations, choices
# =====================================================================================


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


def _inequality(s: str):
    """'x \\le 3', '-2 < x < 5' -> ('interval', lo_closed, lo, hi, hi_closed); else None."""
    ops = list(_INEQ_RE.finditer(s))
    if not 1 <= len(ops) <= 2:
        return None
    pieces = _INEQ_RE.split(s)
    pieces = [p.strip() for p in pieces]
    kinds = [_INEQ[o.group(0)] for o in ops]
    var_at = [k for k, p in enumerate(pieces) if re.fullmatch(_VARIABLE, p)]
    if len(var_at) != 1:
        return None
    v = var_at[0]
    lo, hi, lo_c, hi_c = "-\\infty", "\\infty", False, False
    for k, kind in enumerate(kinds):             # relation between pieces[k] and pieces[k+1]
        left, right = pieces[k], pieces[k + 1]
        closed = "=" in kind
        if kind.startswith("<"):
            if k + 1 == v:
                lo, lo_c = left, closed          # left < x
            elif k == v:
                hi, hi_c = right, closed         # x < right
        else:
            if k + 1 == v:
                hi, hi_c = left, closed          # left > x
            elif k == v:
                lo, lo_c = right, closed         # x > right
    return ("interval", lo_c, lo, hi, hi_c)


def _choice(s: str) -> str | None:
    """'(A)', '(a) 5', 'A', 'A)' -> 'A'. A bare lower-case letter is a variable, not a choice."""
    if len(s) > 60:
        return None
    m = re.fullmatch(r"\(\s*([A-Ea-e])\s*\)(?:\s.*)?|([A-E])(?:\)(?:\s.*)?)?", s.strip())
    return (m.group(1) or m.group(2)).upper() if m else None


def _strip_lhs(s: str) -> str:
    """'x = 3' -> '3'; 'f(x) = 2x' -> '2x'; keeps equations whose left side is not a name."""
    s = re.sub(rf"^(?:{_VARIABLE})\s*\\in\b\s*", "", s)        # x \in [1, 2], \lambda \in (3,4]
    parts = _split_top(s, ("=", "\\approx"))
    name = r"[a-zA-Z](?:_\{?\w+\}?)?(?:\^\{?-1\}?)?(?:\([a-zA-Z]\))?|\\[a-zA-Z]+"
    if len(parts) == 2 and re.fullmatch(rf"{name}|\((?:\s*(?:{name})\s*,)+\s*(?:{name})\s*\)",
                                        parts[0].strip()):
        return parts[1]                                    # x = 3, (x, y) = (1, 2)
    return s


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
    """Parse a normalised answer into a comparable structure."""
    s = _strip_lhs(s.strip())
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
    # a bare list of solutions, or one with a \pm: order does not matter
    parts = _split_top(re.sub(r"\s+(?:and|or)\s+|;", ",", s))
    items = _solutions(parts) if all(parts) else []
    return ("set", items) if len(items) >= 2 else _item(s)


def _item(s: str):
    s = _strip_lhs(s.strip())
    return ("atom", s)


def _atom_equal(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    if a == b:
        return True
    ta, tb = _simplify_text(a), _simplify_text(b)
    if ta == tb and ta:
        return True
    ca, cb = _choice(a), _choice(b)
    if ca and cb:
        return ca == cb
    sig = min((d for d in (_sci_digits(a), _sci_digits(b)) if d), default=0)
    if sig:                                               # 4.53e33 given as 4.5 x 10^{33}
        va, vb = _real_value(a), _real_value(b)
        return va is not None and vb is not None and _round_sig(va, sig) == _round_sig(vb, sig)
    ba, bb = _BASED.fullmatch(a), _BASED.fullmatch(b)
    if (ba is None) != (bb is None):                      # 52_8 for 52: the base on one side only
        based, other = (ba, b) if ba else (bb, a)
        return based.group(1) == other
    na, nb = _numeral(a), _numeral(b)
    if na is not None and nb is not None:
        return na == nb                                   # exact: 10^12 + 1 is not 10^12
    if a.count("=") == 1 and b.count("=") == 1:           # equations: L - R up to a factor
        (la, ra), (lb, rb) = a.split("="), b.split("=")
        ea = _parse_expr(_number_text(f"({la})-({ra})"))
        eb = _parse_expr(_number_text(f"({lb})-({rb})"))
        return ea is not None and eb is not None and _expr_equal(ea, eb, up_to_scale=True)
    ea, eb = _parse_expr(_number_text(a)), _parse_expr(_number_text(b))
    if ea is None or eb is None:
        return False
    return _expr_equal(ea, eb)


_BASED = re.compile(r"(?=[0-9A-Z]*\d)([0-9A-Z]+)_\{?\s*(\d+)\s*\}?")   # 1011_2, 2A_{16}
_SCI = re.compile(r"-?(\d)(?:\.(\d+))?\s*(?:[eE]|\\times\s*10\s*\^|\\cdot\s*10\s*\^)\s*\{?\s*[-+]?\d+\s*\}?")


def _sci_digits(s: str) -> int:
    """Significant digits of an answer in scientific notation (4.5e33, 4.50 \\times 10^{33})."""
    m = _SCI.fullmatch(s.strip())
    return 1 + len(m.group(2) or "") if m else 0


def _real_value(s: str) -> float | None:
    tree = _parse_expr(_number_text(s))
    try:
        v = _eval(tree, {}, [10_000]) if tree is not None else None
    except (ZeroDivisionError, OverflowError, ValueError, KeyError, _ParseError):
        return None
    return v.real if v is not None and not v.imag and math.isfinite(v.real) else None


def _round_sig(x: float, digits: int) -> float:
    """x to `digits` significant digits: a scientific-notation answer states its precision."""
    return float(f"{x:.{digits - 1}e}")


def _numeral(s: str) -> Fraction | None:
    m = re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE]([-+]?\d{1,3}))?", s.strip())
    return Fraction(s.strip()) if m else None


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


def _equal(a, b) -> bool:
    if a[0] == "atom" and b[0] == "atom":
        return _atom_equal(a[1], b[1])
    if a[0] == "interval" and b[0] == "interval":
        return (a[1] == b[1] and a[4] == b[4] and _atom_equal(a[2], b[2])
                and _atom_equal(a[3], b[3]))
    if a[0] == "union" and b[0] == "union":
        return _unordered(a[1], b[1])
    if a[0] == "set" and b[0] in ("set", "tuple"):
        return _unordered(a[1], b[2] if b[0] == "tuple" else b[1])
    if b[0] == "set" and a[0] == "tuple":
        return _unordered(a[2], b[1])
    if a[0] == "tuple" and b[0] == "tuple":
        return (a[1] + a[3] == b[1] + b[3] and len(a[2]) == len(b[2])
                and all(_equal(x, y) for x, y in zip(a[2], b[2])))
    if a[0] == "tuple" and b[0] == "interval" or a[0] == "interval" and b[0] == "tuple":
        t, iv = (a, b) if a[0] == "tuple" else (b, a)
        return (t[1] + t[3] == ("[" if iv[1] else "(") + ("]" if iv[4] else ")")
                and len(t[2]) == 2 and _equal(t[2][0], ("atom", iv[2]))
                and _equal(t[2][1], ("atom", iv[3])))
    if a[0] == "matrix" and b[0] == "matrix":
        return (len(a[1]) == len(b[1]) and all(len(r) == len(q) for r, q in zip(a[1], b[1]))
                and all(_equal(x, y) for r, q in zip(a[1], b[1]) for x, y in zip(r, q)))
    return False


def _unordered(xs, ys) -> bool:
    if len(xs) != len(ys) or len(xs) > 50:
        return False
    left = list(ys)
    for x in xs:
        hit = next((k for k, y in enumerate(left) if _equal(x, y)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


# =====================================================================================
# 5. The API
# =====================================================================================


_MAX_GOLDS = 50           # OlympiadBench lists a few; a longer list is not a gold answer


def is_equiv(pred: str, gold: str | list[str] | tuple[str, ...]) -> bool:
    """True when the two answers are the same mathematical object. A list or tuple of golds
    (OlympiadBench's `final_answer`) accepts any of them."""
    if isinstance(gold, (list, tuple)):
        return any(isinstance(g, str) and is_equiv(pred, g) for g in gold[:_MAX_GOLDS])
    try:
        if not isinstance(pred, str) or not isinstance(gold, str):
            return False
        pred = _last_box(pred) or pred if _BOX.search(pred) else pred
        gold = _last_box(gold) or gold if _BOX.search(gold) else gold
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
    except Exception:      # a checker that raises would stop a training run: bad input is 0
        return False


def reward(completion: str, gold: str | list[str] | tuple[str, ...]) -> float:
    """1.0 when the completion's final answer equals the gold answer (or one of a list of
    golds), else 0.0."""
    try:
        pred = extract_answer(completion)
    except Exception:      # the same safety net as is_equiv
        return 0.0
    return 1.0 if pred is not None and is_equiv(pred, gold) else 0.0
