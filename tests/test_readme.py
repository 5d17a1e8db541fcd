"""The README's Python quick start runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_block_runs(capsys):
    text = README.read_text(encoding="utf-8")
    match = re.search(r"## Quick start \(Python\)\n\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its Python quick start"
    namespace: dict = {}
    exec(compile(match.group(1), str(README), "exec"), namespace)
    fit, model = namespace["fit"], namespace["model"]
    assert fit.diagnostics.converged
    assert fit.structure == model.structure
    out = capsys.readouterr().out
    assert "Identifiability: identified" in out
    assert "Hierarchical factor model fit" in out


def test_setup_commands_are_the_documented_two():
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Setup (two commands)")[1].split("## ")[0]
    assert 'pip install -e ".[all]"' in setup
    assert "hcl-stats run simulations/quick.toml && hcl-stats report simulations/quick.toml" in setup
    assert "python -m pytest -q" in setup
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install --quiet -e ".[all]"' in ci
    assert "python -m pytest -q" in ci
    assert "-eq 5" in ci  # no tests collected is a failure


