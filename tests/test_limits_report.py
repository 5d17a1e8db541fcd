"""``hcl-stats limits`` (hcl_stats.theory.limits_report): config validation and output."""

from pathlib import Path

import pytest

from hcl_stats.theory.limits_report import load_limits_config, write_limits_report

TINY = """
[limits]
seed = 1
[[limits.designs]]
name = "T"
dims = [6, 7, 8]
structure = "all:1"
noise_var = 1.0
n_samples = [100]
replications = {reps}
model_seed = 1
"""


def test_limits_report_writes_numbers_with_every_row(tmp_path: Path) -> None:
    cfg = tmp_path / "l.toml"
    cfg.write_text(TINY.format(reps=2))
    paths = write_limits_report(cfg, tmp_path / "out")
    text = (tmp_path / "out" / "numbers.md").read_text()
    assert [p.name for p in paths] == ["numbers.md"]
    for row in ("| ABC |", "| AB |", "| A |", "| overall |"):
        assert row in text
    assert "spectral_limit^2" in text
    assert "spectral_limit_finite_n^2" in text  # what simulations/limits_numbers.py reported
    spectral = [ln for ln in text.splitlines() if ln.startswith("| T |")]
    assert len(spectral) == 1
    assert spectral[0].count("|") == 9  # 8 columns, like its header


def test_limits_config_rejects_one_replication(tmp_path: Path) -> None:
    cfg = tmp_path / "l.toml"
    cfg.write_text(TINY.format(reps=1))
    with pytest.raises(ValueError, match="replications"):
        load_limits_config(cfg)
