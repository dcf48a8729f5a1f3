"""E0 fitting: every mode, with mace-torch's own estimators."""

import numpy as np
import pytest
from ase import Atoms

from mlipft import e0s
from mlipft.io import write_atomic
from mlipft.keys import ENERGY_KEY, FORCES_KEY


def _synthetic(tmp_path, e0={1: -13.0, 8: -430.0}):
    rng = np.random.default_rng(1)
    configs = []
    for n_h, n_o in [(2, 1), (4, 2), (2, 2), (6, 3), (1, 1)]:
        a = Atoms("H" * n_h + "O" * n_o, positions=rng.normal(0, 2, (n_h + n_o, 3)))
        a.info[ENERGY_KEY] = n_h * e0[1] + n_o * e0[8]
        a.arrays[FORCES_KEY] = np.zeros((len(a), 3))
        configs.append(a)
    path = tmp_path / "train.xyz"
    write_atomic(path, configs)
    return path


def test_average_recovers_exact_e0s(tmp_path):
    result = e0s.fit(_synthetic(tmp_path))
    assert e0s.e0s_for_mode(result, "average") == pytest.approx({1: -13.0, 8: -430.0})
    assert result["modes"]["estimated"] is None and result["elements"] == ["H", "O"]


def test_average_of_a_union_of_files_is_one_least_squares_fit(tmp_path):
    """Two corpora trained on together (e.g. mptrj + omat): one fit over both files, through the CLI."""
    import json

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _synthetic(tmp_path / "a", {1: -13.0, 8: -430.0})
    second = _synthetic(tmp_path / "b", {1: -14.0, 8: -428.0})
    e0s.main(["--train", str(first), str(second), "--output", str(tmp_path / "e0s.json")])
    union = e0s.e0s_for_mode(json.loads((tmp_path / "e0s.json").read_text()), "average")
    assert union[1] == pytest.approx(-13.5) and union[8] == pytest.approx(-429.0)


def test_missing_mode_is_a_clear_error(tmp_path):
    result = e0s.fit(_synthetic(tmp_path))
    with pytest.raises(ValueError, match="E0 mode 'estimated' is not available"):
        e0s.e0s_for_mode(result, "estimated", where="x.json")


def test_isolated_file_must_cover_elements(tmp_path, tiny_data):
    with pytest.raises(ValueError, match=r"no IsolatedAtom row for \['O'\]"):
        e0s.fit(_synthetic(tmp_path), isolated_file=tiny_data["iso_target"])


@pytest.mark.slow
def test_all_modes_with_a_foundation(tiny_data, tiny_foundation):
    result = e0s.fit(tiny_data["train"], tiny_foundation, tiny_data["iso_target"])
    modes = result["modes"]
    assert all(modes[m] is not None for m in ("average", "estimated", "foundation", "isolated"))
    iso = e0s.isolated_from_file(tiny_data["iso_target"])
    assert e0s.e0s_for_mode(result, "isolated") == pytest.approx(iso)
    found = e0s.e0s_for_mode(result, "foundation")
    assert found == pytest.approx(e0s.isolated_from_file(tiny_data["iso_foundation"]))
    initial = result["initial_energy_rmse_mev_per_atom"]
    # the model-aware estimate is the least-squares optimum of exactly this error
    assert initial["estimated"] <= min(initial["foundation"], initial["isolated"]) + 1e-6


def test_elements_absent_from_the_training_set_get_isolated_energies(tiny_data, tmp_path):
    from mlipft import xtb
    from mlipft.e0s import fit
    from mlipft.io import write_atomic

    iso_path = tmp_path / "iso.xyz"
    iso = xtb.isolated_atoms(["H", "C", "Cl", "Br", "Na"], "foundation")
    write_atomic(iso_path, iso)
    out = fit(tiny_data["corpus_train"], isolated_file=iso_path, elements=["Na", "H"])
    assert out["filled"] == {"average": {"Na": "isolated"}}  # no foundation: no estimated mode
    na = next(a for a in iso if a.get_chemical_symbols() == ["Na"])
    assert out["modes"]["average"]["11"] == pytest.approx(na.info["REF_energy"])
    assert out["modes"]["average"]["6"] != out["modes"]["isolated"]["6"]  # fitted, not copied
    with pytest.raises(ValueError, match="lacks \\['Na'\\]: filling their E0s with isolated-atom energies needs"):
        fit(tiny_data["corpus_train"], elements=["Na"])
    with pytest.raises(ValueError, match="no configuration with \\['Na'\\].*E0 fill is 'refuse'"):
        fit(tiny_data["corpus_train"], isolated_file=iso_path, elements=["Na"], fill="refuse")
    with pytest.raises(ValueError, match="E0 fill 'nearest' is not one of"):
        fit(tiny_data["corpus_train"], isolated_file=iso_path, fill="nearest")
    assert fit(tiny_data["corpus_train"], isolated_file=iso_path, fill="refuse")["filled"] == {}


@pytest.mark.slow
def test_cover_gives_every_mode_the_validation_set_elements(tiny_data, tiny_foundation, tmp_path):
    """A small training fraction can lack an element of the validation set (SN2 at 1 %: no Cl);
    mace's element table is that of the training plus validation sets, and it refuses a run
    with an E0 missing, or with one more (a LoRA fine-tune fails on the shapes). The fit_e0s
    rule's --cover VALID gives every mode exactly those elements."""
    import json

    from mlipft.io import read_configs, write_atomic

    configs = read_configs(tiny_data["train"])[:3]
    for a in configs:
        del a[[i for i, s in enumerate(a.get_chemical_symbols()) if s == "Br"]]
    write_atomic(tmp_path / "no_br.xyz", configs)
    out = tmp_path / "e0s.json"
    args = ["--train", str(tmp_path / "no_br.xyz"), "--foundation", tiny_foundation,
            "--isolated", tiny_data["iso_target"], "--output", str(out)]
    e0s.main(args + ["--cover", tiny_data["valid"]])  # the validation set has Br
    result = json.loads(out.read_text())
    assert result["filled"] == {"average": {"Br": "isolated"}, "estimated": {"Br": "foundation"}}
    for mode in ("average", "estimated", "foundation", "isolated"):
        assert sorted(map(int, result["modes"][mode])) == [1, 6, 17, 35], mode
    assert result["modes"]["estimated"]["35"] == result["modes"]["foundation"]["35"]
    assert result["modes"]["average"]["35"] == result["modes"]["isolated"]["35"]
    e0s.main(args + ["--cover", tiny_data["valid"], "--fill", "isolated"])  # the target-level atom instead
    result = json.loads(out.read_text())
    assert result["filled"]["estimated"] == {"Br": "isolated"}
    assert result["modes"]["estimated"]["35"] == result["modes"]["isolated"]["35"]
    assert result["modes"]["estimated"]["1"] != result["modes"]["isolated"]["1"]  # present: estimated, not filled
    with pytest.raises(ValueError, match="no configuration with \\['Br'\\].*E0 fill is 'refuse'"):
        e0s.main(args + ["--cover", tiny_data["valid"], "--fill", "refuse"])
    e0s.main(args + ["--cover", str(tmp_path / "no_br.xyz")])  # nothing beyond the training set's own
    assert sorted(map(int, json.loads(out.read_text())["modes"]["average"])) == [1, 6, 17]
