"""The README's measured tables are generated from benchmarks/results/ (benchmarks/readme_tables.py): they say
what the results files say, and its two commands are the ones .ci/run and a new user run."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme_tables  # noqa: E402


def test_generated_sections_match_the_results_files():
    text = readme_tables.README.read_text()
    names = [m.group("name") for m in readme_tables.SECTION.finditer(text)]
    assert set(names) == set(readme_tables.WRITERS), names
    assert readme_tables.render(text) == text, "stale: run python benchmarks/readme_tables.py"


def test_a_changed_result_makes_the_readme_stale(tmp_path, monkeypatch):
    import json
    import shutil
    shutil.copytree(readme_tables.RESULTS, tmp_path / "results")
    f = tmp_path / "results" / "calibration.json"
    doc = {"build_default": {"steps": 1, "calibration": 1}, "host": {"cpus": 2, "machine": "x"}, "largest": {},
           "rows": [{"calibration": 1, "steps": 1, "qat_seconds": 1.0, "worst_drop": 9.999, "psnr_vs_largest": None}]}
    f.write_text(json.dumps(doc))
    monkeypatch.setattr(readme_tables, "RESULTS", tmp_path / "results")
    text = readme_tables.README.read_text()
    assert "9.999" in readme_tables.render(text) and readme_tables.render(text) != text


def test_the_two_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = "python3.11 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && python -m pytest -q"
    build_cmd = "python3.11 -m venv .venv && . .venv/bin/activate && pip install -q -e . && anyir build"
    assert test_cmd in readme.split("```")[1] and build_cmd in readme.split("```")[1]
    assert test_cmd in ci
