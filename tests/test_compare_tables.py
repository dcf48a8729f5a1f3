"""benchmarks/compare_tables.py: the reference-table comparison of the smoke workflow test."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_tables.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "t.csv", index=False)
    return folder


def test_round_off_around_zero_is_not_a_difference(compare, tmp_path):
    """A symmetric reaction's end image: -2.8e-13 eV on one CPU, +3.4e-13 on another (seen
    between an Intel and an AMD machine); the 1.0 eV row differs by 1e-4 relative."""
    ref = _write(tmp_path / "ref", [{"image": 4, "energy_ev": -2.8421709430404007e-13}, {"image": 2, "energy_ev": 1.0}])
    new = _write(tmp_path / "new", [{"image": 4, "energy_ev": 3.410605131648481e-13}, {"image": 2, "energy_ev": 1.0001}])
    rows, worst, exact = compare.differences(ref, new)["t.csv"]
    assert rows == 2 and not exact
    assert worst == pytest.approx(1e-4, rel=1e-6)


def test_a_real_difference_and_unequal_strings_are_reported(compare, tmp_path):
    ref = _write(tmp_path / "ref", [{"strategy": "naive", "x": 2.0e-6}])
    new = _write(tmp_path / "new", [{"strategy": "naive", "x": 3.0e-6}])
    assert compare.differences(ref, new)["t.csv"][1] == pytest.approx(0.5)
    other = _write(tmp_path / "other", [{"strategy": "lora", "x": 2.0e-6}])
    with pytest.raises(AssertionError, match="column strategy differs"):
        compare.differences(ref, other)


def test_pattern_and_rtol_gate_the_exit_status(compare, tmp_path, capsys):
    """The SLURM test's use: only the selected tables, exit 1 above --rtol."""
    ref = _write(tmp_path / "ref", [{"x": 1.0}])
    pd.DataFrame([{"y": 1.0}]).to_csv(ref / "other.csv", index=False)
    new = _write(tmp_path / "new", [{"x": 1.01}])  # no other.csv: not selected, not read
    compare.main([str(ref), str(new), "--pattern", "t*.csv", "--rtol", "0.1"])
    assert "t.csv" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"differ by more than 0.001 relative: t.csv"):
        compare.main([str(ref), str(new), "--pattern", "t*.csv", "--rtol", "1e-3"])
    with pytest.raises(SystemExit, match=r"no reference tables fig06c_\*.csv"):
        compare.main([str(ref), str(new), "--pattern", "fig06c_*.csv"])
