"""Figure tables and plots: the learning curve's training-set sizes, its merge and its figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mlipft import plots, tables
from mlipft.io import write_atomic

STRATEGIES = {"naive": "Naive", "lora": "LoRA"}


def _trainsets(tmp_path, sizes):
    files = []
    for fraction, n in sizes.items():
        path = tmp_path / "results" / "trainsets" / "sn2" / "train" / f"f{fraction}" / "seed0.xyz"
        path.parent.mkdir(parents=True)
        write_atomic(path, [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74 + 0.01 * i]]) for i in range(n)])
        files.append(path)
    return files


def _errors(sizes):
    rows = []
    for fraction, n in sizes.items():
        for k, strategy in enumerate(STRATEGIES):
            for metric, scale in (("energy_rmse", 10.0 * (1 + k)), ("force_rmse", 100.0 * (1 + k))):
                rows.append({"benchmark": "sn2", "trainset": "train", "fraction": fraction, "foundation": "f",
                             "strategy": strategy, "e0s": "estimated", "seed": 0, "testset": "test",
                             "metric": metric, "value": scale / np.sqrt(n)})
    return pd.DataFrame(rows)


def test_learning_curve_table_counts_each_training_subset(tmp_path):
    sizes = {"0.01": 2, "0.1": 18, "1": 179}
    counted = tables.training_set_sizes(_trainsets(tmp_path, sizes))
    assert dict(zip(counted.fraction, counted.n_train)) == sizes
    table = tables.learning_curve(_errors(sizes), counted)
    assert len(table) == len(_errors(sizes))
    assert (table.groupby("fraction").n_train.first() == pd.Series(sizes)).all()


def test_learning_curve_without_its_training_subset_names_the_run(tmp_path):
    sizes = {"0.1": 18, "1": 179}
    counted = tables.training_set_sizes(_trainsets(tmp_path, {"1": 179}))
    with pytest.raises(ValueError, match=r"no training subset file for runs .*'fraction': '0.1'"):
        tables.learning_curve(_errors(sizes), counted)
    with pytest.raises(ValueError, match="not a training subset"):
        bad = tmp_path / "trainsets" / "sn2" / "train" / "x.xyz"
        bad.parent.mkdir(parents=True)
        bad.write_text("")
        tables.training_set_sizes([bad])


def test_learning_curve_figure(tmp_path):
    sizes = {"0.01": 2, "0.1": 18, "1": 179}
    table = tables.learning_curve(_errors(sizes), tables.training_set_sizes(_trainsets(tmp_path, sizes)))
    trainable = pd.DataFrame({"strategy": ["naive", "lora"], "trainable_fraction": [1.0, 0.15]})
    out = [str(tmp_path / "lc.png"), str(tmp_path / "lc.pdf")]
    plots.plot_learning_curve(table, trainable, STRATEGIES, out, "SN2 learning curve")
    assert (tmp_path / "lc.png").stat().st_size > 10_000 and (tmp_path / "lc.pdf").stat().st_size > 5_000
