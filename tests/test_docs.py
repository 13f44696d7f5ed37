"""The README and the documentation site say what the code does.

- README: exactly two ```sh blocks, one line each (the set-up commands that
  ``.ci/run`` also runs), no other shell blocks, and its Python example runs
  with the outputs it shows (doctest).
- docs/api.md documents every name in ``qops.__all__``.
- ``mkdocs build --strict`` succeeds (skipped where mkdocs is not installed).
"""

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qops

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def _blocks(text):
    """(info string, body) of every fenced code block."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def test_readme_has_exactly_two_one_line_sh_blocks():
    blocks = _blocks(README.read_text(encoding="utf-8"))
    sh = [body for lang, body in blocks if lang == "sh"]
    assert len(sh) == 2, f"README must have exactly two ```sh blocks, found {len(sh)}"
    for body in sh:
        lines = body.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].strip(), f"each ```sh block must be one command line, got {body!r}"
    assert "pytest" in sh[1], "the second ```sh block is the test command that .ci/run runs"
    other_shells = [lang for lang, _ in blocks if lang in ("bash", "shell", "console", "shell-session", "zsh")]
    assert not other_shells, f"README must not have other shell blocks, found {other_shells}"


def test_readme_python_example_runs():
    blocks = [body for lang, body in _blocks(README.read_text(encoding="utf-8")) if lang == "python"]
    assert blocks, "README has no ```python example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for i, body in enumerate(blocks):
        test = parser.get_doctest(body, {}, f"README.md python block {i}", str(README), 0)
        assert test.examples, f"README python block {i} has no >>> examples to run"
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} README examples failed (see output above)"


def test_api_docs_name_every_public_name():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [
        name for name in qops.__all__
        if not re.search(r"`(?:qops\.)?" + re.escape(name) + r"[`(]", text)
    ]
    assert not missing, f"docs/api.md does not document {missing}"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
