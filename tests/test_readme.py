"""The README's Python examples run as written (in order, in one namespace)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_examples_run():
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    ns = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), ns)
    roll = ns["roll"]
    assert roll.tokens.shape[0] == 2 and ns["out"].sequences.shape[0] == 2
