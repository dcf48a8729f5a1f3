"""The committed mini world (data/mini/mini): foundation quality and size budget."""

from __future__ import annotations

import pandas as pd
import pytest

from mlipft.config import load_world


@pytest.fixture(scope="module")
def mini(root):
    data = root / "data" / "mini" / "mini"
    if not (data / "MANIFEST.tsv").exists():
        pytest.skip("no committed mini world")
    return data

def test_foundation_errors_fall_by_generation(mini, root):
    """On the common held-out test set, energy and force RMSE fall mp0 > mpa > omat_small >
    omat_medium (the paper's MP-0 < MPA-0 < OMat-0 small < medium quality order)."""
    config = load_world(root / "config" / "config.yaml")
    quality = pd.read_csv(mini / "foundation_quality.csv")
    test = quality[quality.dataset == config["foundation_testset"]].set_index("foundation")
    order = ["mp0", "mpa", "omat_small", "omat_medium"]
    assert list(config["foundations"]) == order
    for metric in ("force_rmse_mev_per_A", "energy_rmse_mev_per_atom", "energy_rmse_refit_mev_per_atom"):
        errors = test.loc[order, metric].tolist()
        assert errors == sorted(errors, reverse=True) and len(set(errors)) == 4, (metric, errors)

def test_every_foundation_scored_on_every_benchmark(mini, root):
    config = load_world(root / "config" / "config.yaml")
    quality = pd.read_csv(mini / "foundation_quality.csv")
    expected = {(f, d) for f in config["foundations"] for d in [config["foundation_testset"], *config["benchmarks"]]}
    assert set(zip(quality.foundation, quality.dataset)) == expected
    assert quality.force_rmse_mev_per_A.notna().all() and (quality.n_configs > 0).all()

def test_every_benchmark_has_fractions_over_two_decades(mini, root):
    """Each benchmark has a training set of at least 100 configurations, so its fractions span
    0.01 .. 1 with at least one configuration at the smallest (the issue's two decades)."""
    config = load_world(root / "config" / "config.yaml")
    manifest = pd.read_csv(mini / "MANIFEST.tsv", sep="\t").set_index("file")
    for name, bench in config["benchmarks"].items():
        sizes = {t: int(manifest.loc[f"benchmarks/{name}/{t}.xyz", "count"]) for t in bench["trainsets"]
                 if t not in (bench.get("derived") or {})}  # derived sets are subsets of these
        assert max(sizes.values()) >= 100, (name, sizes)


def test_committed_data_were_generated_with_the_configured_parameters(mini, root):
    """A generator parameter changed in config/config.yaml without `snakemake mini_world -R
    <rule>` (committed files carry no Snakemake metadata, so its params trigger cannot see the
    change) fails here, naming the dataset: each summary.json records the parameters and seed
    its files were generated with."""
    import json

    config = load_world(root / "config" / "config.yaml")
    scale = config["scales"]["mini"]
    stale = []
    for kind, names in (("benchmarks", config["benchmarks"]), ("corpora", scale["corpora"])):
        for name in names:
            summary = json.loads((mini / kind / name / "summary.json").read_text())
            if summary["params"] != scale[kind][name] or summary["seed"] != config["seed"]:
                stale.append(f"{kind}/{name}: generated with {summary['params']} (seed {summary['seed']}), "
                             f"configured scales.mini.{kind}.{name} = {scale[kind][name]} (seed {config['seed']})")
    assert not stale, "regenerate with snakemake mini_world -R <its rule>:\n" + "\n".join(stale)


def test_committed_artifacts_within_budget(mini):
    manifest = pd.read_csv(mini / "MANIFEST.tsv", sep="\t")
    assert manifest.bytes.sum() < 30e6
    assert set(manifest.level) >= {"GFN1-xTB (tblite)", "GFN2-xTB"}


@pytest.mark.slow
def test_regenerating_sn2_reproduces_the_committed_labels(mini, root, tmp_path):
    """Same seed, same parameters: the SN2 benchmark's labels come back (to 1e-6 eV; bytes may
    differ in the last digit on another CPU's BLAS)."""
    import json

    import numpy as np
    from ase.io import read

    from mlipft.mini import sn2

    config = load_world(root / "config" / "config.yaml")
    summary = json.loads((mini / "benchmarks" / "sn2" / "summary.json").read_text())
    params = config["scales"]["mini"]["benchmarks"]["sn2"]
    assert summary["params"] == params and summary["seed"] == config["seed"]
    sn2.generate(params, config["seed"], tmp_path)
    for name in ("train", "test", "reference_neb"):
        new = read(tmp_path / f"{name}.xyz", ":")
        old = read(mini / "benchmarks" / "sn2" / f"{name}.xyz", ":")
        assert len(new) == len(old), name
        np.testing.assert_allclose([a.info["REF_energy"] for a in new], [a.info["REF_energy"] for a in old],
                                   atol=1e-6, err_msg=name)
        np.testing.assert_allclose(np.concatenate([a.positions for a in new]),
                                   np.concatenate([a.positions for a in old]), atol=1e-6, err_msg=name)
