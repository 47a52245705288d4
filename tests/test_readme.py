"""The Python blocks of the README and of docs/ run as written (in order, one namespace per
file), and every file the README links to exists."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def blocks(path):
    return re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, path)).read(), re.S)


def test_readme_examples_run():
    ns = {}
    code = blocks("README.md")
    assert len(code) >= 2
    for block in code:
        exec(compile(block, "README.md", "exec"), ns)
    assert ns["roll"].tokens.shape[0] == 2 and ns["out"].sequences.shape[0] == 2


@pytest.mark.parametrize("path", [p for p in DOCS if p != "README.md" and blocks(p)])
def test_docs_examples_run(path):
    ns = {}
    for block in blocks(path):
        exec(compile(block, path, "exec"), ns)


@pytest.mark.parametrize("path", DOCS)
def test_links_point_at_files(path):
    here = os.path.dirname(os.path.join(ROOT, path))
    for target in re.findall(r"\]\(([^)#:]+)\)", open(os.path.join(ROOT, path)).read()):
        assert os.path.exists(os.path.join(here, target)), f"{path} links to missing {target}"
