"""Kind loss_curves (the paper's Figs. 12-14): tables from per-run loss_curves.csv, and the plot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlipft import figures
from mlipft.figures import loss_curves
from mlipft.paths import RUN_KEYS, Paths, Run

#: An excerpt (epochs 0, 3, ..., 27, 28, 29) of a real multihead-replay fine-tune's loss_curves.csv
#: (results/mini/runs/sn2/train/f1/omat_medium/replay/e0-estimated/v-base/seed0, mace 0.3.16; results/
#: is not committed): head ``all`` = the training loss of every head, ``Default`` = the target head,
#: ``pt_head`` = the replay head; errors in eV (per atom) and eV/Å as mace writes them.
REAL = """\
epoch,head,split,loss,rmse_e_per_atom,rmse_f,mae_e_per_atom,mae_f
0.0,all,train,0.038020149047952145,,,,
3.0,all,train,0.033368345408234745,,,,
6.0,all,train,0.03159201063681394,,,,
9.0,all,train,0.030157252156641334,,,,
12.0,all,train,0.029168915847549215,,,,
15.0,all,train,0.028499889536760747,,,,
18.0,all,train,0.027962368971202523,,,,
21.0,all,train,0.0269681389327161,,,,
24.0,all,train,0.02627804083749652,,,,
27.0,all,train,0.02524960256414488,,,,
28.0,all,train,0.02586797028197907,,,,
29.0,all,train,0.02588039616239257,,,,
0.0,Default,valid,0.00368580617941916,0.06318284571170807,0.44118013978004456,0.05403701588511467,0.23821748793125153
3.0,Default,valid,0.0030306237749755383,0.05645594373345375,0.3715803623199463,0.04674883931875229,0.19507554173469543
6.0,Default,valid,0.0027340990491211414,0.05305038392543793,0.34662318229675293,0.044811856001615524,0.17437542974948883
9.0,Default,valid,0.0024896389804780483,0.05106928572058678,0.32141804695129395,0.043673306703567505,0.15679238736629486
12.0,Default,valid,0.0022920132614672184,0.04907491058111191,0.29974889755249023,0.042180825024843216,0.14317686855793
15.0,Default,valid,0.0021366309374570847,0.04728309065103531,0.2819116711616516,0.040763746947050095,0.13266471028327942
18.0,Default,valid,0.002007933333516121,0.04588731750845909,0.2662944495677948,0.039650846272706985,0.12386075407266617
21.0,Default,valid,0.0019001951441168785,0.04459907487034798,0.25280317664146423,0.03865692391991615,0.11656498908996582
24.0,Default,valid,0.0017930996837094426,0.04326809570193291,0.23896372318267822,0.037499137222766876,0.10958492755889893
27.0,Default,valid,0.0017050025053322315,0.04197470471262932,0.2283422350883484,0.0364164337515831,0.10394080728292465
28.0,Default,valid,0.001679891487583518,0.0415847972035408,0.22539107501506805,0.03608327731490135,0.10235036164522171
29.0,Default,valid,0.0016553715104237199,0.04116275534033775,0.22247961163520813,0.035723477602005005,0.10085424035787582
0.0,pt_head,valid,0.008252974599599838,0.07150106877088547,1.0758845806121826,0.05458087846636772,0.6133986711502075
3.0,pt_head,valid,0.008098560385406017,0.06287182867527008,1.0711634159088135,0.04789238050580025,0.6074075102806091
6.0,pt_head,valid,0.008021071553230286,0.05923810973763466,1.0682770013809204,0.0461895689368248,0.6031604409217834
9.0,pt_head,valid,0.007997128181159496,0.05781494081020355,1.0684518814086914,0.045576926320791245,0.6015757918357849
12.0,pt_head,valid,0.007984564639627934,0.0563468262553215,1.0705466270446777,0.04356624186038971,0.6022433042526245
15.0,pt_head,valid,0.007964988239109516,0.05574585124850273,1.0714465379714966,0.04264353960752487,0.6019259691238403
18.0,pt_head,valid,0.007965032942593098,0.05607717111706734,1.0718950033187866,0.04322231560945511,0.6015557646751404
21.0,pt_head,valid,0.00795766431838274,0.056396421045064926,1.0726481676101685,0.0431864857673645,0.6010076999664307
24.0,pt_head,valid,0.00795616302639246,0.057217296212911606,1.074295163154602,0.042972106486558914,0.6010136604309082
27.0,pt_head,valid,0.007973127998411655,0.05786013603210449,1.07725989818573,0.043326109647750854,0.6018433570861816
28.0,pt_head,valid,0.007979576475918293,0.05823438614606857,1.0777066946029663,0.04380080848932266,0.6018385887145996
29.0,pt_head,valid,0.00798316951841116,0.05851683020591736,1.0786434412002563,0.04383474215865135,0.6020638942718506
"""
VARIANTS = {"lr_low": "lr 1e-4", "base": "lr 1e-3", "lr_high": "lr 1e-2"}


def _real() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(REAL))


def _spec(variants=("base",), strategies=("replay",), seeds=("0",)):
    axes = {"benchmark": ["sn2"], "trainset": ["train"], "foundation": ["omat_medium"], "strategy": list(strategies),
            "e0s": ["estimated"], "fraction": ["1"], "variant": list(variants), "seed": list(seeds)}
    return {"figure": "fig13", "kind": "loss_curves", "description": "Multihead replay: learning-rate sensitivity",
            "entry": {}, "axes": axes, "labels": {"replay": "Multihead replay", "naive": "Naive"},
            "evalsets": ["test"], "world": "mini", "scale": "smoke",
            "variant_labels": {v: VARIANTS.get(v, v) for v in variants}, "reference_label": "reference"}


def _run_files(tmp_path, run: Run, curves: pd.DataFrame) -> tuple[str, str]:
    """A run directory with its loss_curves.csv and trainable.json, as the training rule leaves them."""
    p = Paths(tmp_path / "results")
    path = Path(p.run_file(run, "loss_curves"))
    path.parent.mkdir(parents=True, exist_ok=True)
    curves.to_csv(path, index=False)
    heads = sorted(set(curves["head"]) - {"all"})
    trainable = Path(p.run_file(run, "trainable"))
    trainable.write_text(json.dumps({"trainable": 45312, "total": 45320, "fraction": 45312 / 45320, "heads": heads}))
    return str(path), str(trainable)


def _last(curves, head, column):
    rows = curves[(curves["head"] == head) & (curves.split == ("train" if head == "all" else "valid"))]
    return float(rows.sort_values("epoch")[column].iloc[-1])


def test_final_values_are_the_last_epochs_in_mev(tmp_path):
    """Multihead and single-head runs: the final table's values are the last epoch's (errors
    x 1000: mace logs eV), the best the lowest, every head with its role."""
    real = _real()
    single = real[real["head"] != "pt_head"]
    multi_run = Run("sn2", "train", 1, "omat_medium", "replay", "estimated", "base", 0)
    single_run = Run("sn2", "train", 1, "omat_medium", "naive", "estimated", "base", 0)
    files = [_run_files(tmp_path, multi_run, real), _run_files(tmp_path, single_run, single)]
    tables = loss_curves.collect({"loss_curves": [f for f, _ in files], "trainable": [t for _, t in files]},
                                 _spec(strategies=("replay", "naive")))
    curves, final = tables["curves"], tables["final"]
    assert list(curves.columns[:8]) == list(RUN_KEYS) and len(curves) == len(real) + len(single)
    assert list(final.columns) == [*RUN_KEYS, *loss_curves.FINAL_COLUMNS]

    def value(strategy, head, metric, what="final"):
        row = final[(final.strategy == strategy) & (final["head"] == head) & (final.metric == metric)]
        assert len(row) == 1, (strategy, head, metric)
        return float(row[what].iloc[0])

    for strategy, source in (("replay", real), ("naive", single)):
        assert value(strategy, "Default", "energy_rmse") == pytest.approx(1000 * _last(source, "Default", "rmse_e_per_atom"))
        assert value(strategy, "Default", "force_rmse") == pytest.approx(1000 * _last(source, "Default", "rmse_f"))
        assert value(strategy, "Default", "force_mae") == pytest.approx(1000 * _last(source, "Default", "mae_f"))
        assert value(strategy, "Default", "loss") == pytest.approx(_last(source, "Default", "loss"))
        assert value(strategy, "all", "loss") == pytest.approx(_last(source, "all", "loss"))
    # the real run's numbers (mace's own log: epoch 29, Default RMSE_E_per_atom 41.16 meV, RMSE_F 222.48 meV / A)
    assert value("replay", "Default", "energy_rmse") == pytest.approx(41.16, abs=0.01)
    assert value("replay", "Default", "force_rmse") == pytest.approx(222.48, abs=0.01)
    assert value("replay", "pt_head", "force_rmse") == pytest.approx(1000 * _last(real, "pt_head", "rmse_f"))
    # the replay head's force RMSE has its best before the end (forgetting); the target's at the end
    pt = real[real["head"] == "pt_head"]
    assert value("replay", "pt_head", "force_rmse", "best") == pytest.approx(1000 * pt.rmse_f.min())
    assert value("replay", "pt_head", "force_rmse", "best_epoch") == float(pt.loc[pt.rmse_f.idxmin(), "epoch"])
    assert value("replay", "Default", "force_rmse", "best_epoch") == 29.0
    assert not (final.strategy.eq("naive") & final["head"].eq("pt_head")).any()
    roles = dict(zip(final["head"], final.role))
    assert roles == {"all": "all heads", "Default": "target", "pt_head": "replay"}
    assert set(final[final.metric == "loss"].unit) == {"-"} and set(final[final.metric == "energy_rmse"].unit) == {"meV/atom"}
    assert (final.last_epoch == 29.0).all() and (final.n_epochs == 12).all()
    assert (final.stage_two_epochs.fillna("") == "").all()  # constant loss weights: no reweighting
    assert set(tables["trainable"].strategy) == {"replay", "naive"}
    assert {"converged", "convergence", "trainable_fraction"} <= set(tables["trainable"].columns)


def test_stage_two_is_found_and_the_best_loss_taken_after_it(tmp_path):
    """A 30-fold jump of the validation loss with steady RMSEs (Stage Two's weights) is a
    reweighting: marked, and the best loss is the best of the epochs after it."""
    real = _real()
    valid = real.split == "valid"
    real.loc[valid & (real.epoch >= 15), "loss"] *= 30
    run = Run("ice", "train", 1, "mp0", "naive", "estimated", "two_stage", 0)
    path, train = _run_files(tmp_path, run, real)
    final = loss_curves.collect({"loss_curves": [path], "trainable": [train]}, _spec(variants=("two_stage",)))["final"]
    target = final[(final["head"] == "Default") & (final.metric == "loss")].iloc[0]
    assert str(target.stage_two_epochs) == "15" and target.from_epoch == 15.0
    after = real[(real["head"] == "Default") & (real.epoch >= 15)]
    assert target.best == pytest.approx(after.loss.min()) and target.best > 20 * real[real["head"] == "Default"].loss.min()
    rmse = final[(final["head"] == "Default") & (final.metric == "force_rmse")].iloc[0]
    assert rmse.from_epoch == 0.0  # errors compare across the whole run


def test_model_labels_name_what_varies():
    frame = pd.DataFrame([{**dict.fromkeys(RUN_KEYS, "x"), "strategy": s, "variant": v, "fraction": "1", "seed": "0"}
                          for s in ("replay", "naive") for v in ("lr_low", "base")])
    labels = loss_curves.models(frame, _spec(variants=("lr_low", "base"), strategies=("replay", "naive")))
    assert labels.tolist() == ["Multihead replay, lr 1e-4", "Multihead replay, lr 1e-3", "Naive, lr 1e-4",
                               "Naive, lr 1e-3"]
    single = loss_curves.models(frame.iloc[:1], _spec(variants=("base",)))
    assert single.tolist() == ["Multihead replay"]  # one model: the strategy names it
    assert loss_curves.check({}, "fig13", {}, _spec()["axes"]) is None


def test_three_learning_rates_two_seeds_through_the_command_line(tmp_path):
    """collect and plot as the workflow's rules run them (python -m mlipft.figures): three lr
    variants x 2 seeds of a multihead replay fine-tune; then a single-head figure."""
    real = _real()
    rng = np.random.default_rng(0)
    files = []
    for k, variant in enumerate(VARIANTS):
        for seed in (0, 1):
            curves = real.copy()
            scale = {"lr_low": 1.6, "base": 1.0, "lr_high": 0.7}[variant] * (1 + 0.05 * seed)
            values = ["loss", "rmse_e_per_atom", "rmse_f", "mae_e_per_atom", "mae_f"]
            curves[values] = curves[values] * scale * rng.uniform(0.97, 1.03, size=(len(curves), 1))
            files.append(_run_files(tmp_path, Run("sn2", "train", 1, "omat_medium", "replay", "estimated", variant,
                                                   seed), curves))
    spec = json.dumps(_spec(variants=tuple(VARIANTS), seeds=("0", "1")))
    tables = {t: str(tmp_path / f"fig13_{t}.csv") for t in loss_curves.TABLES}
    figures.main(["collect", "--spec", spec, "--inputs", *[f"loss_curves={f}" for f, _ in files],
                  *[f"trainable={t}" for _, t in files], "--outputs", *[f"{k}={v}" for k, v in tables.items()]])
    final = pd.read_csv(tables["final"])
    assert len(final.drop_duplicates(["variant", "seed"])) == 6
    out = [str(tmp_path / "fig13.png"), str(tmp_path / "fig13.pdf")]
    figures.main(["plot", "--spec", spec, "--tables", *[f"{k}={v}" for k, v in tables.items()], "--outputs", *out])
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000

    # a single-head figure (no replay head: two columns of panels) of Fig. 12's kind: constant loss
    # weights against a two-stage schedule whose loss jumps at Stage Two (marked, dotted), one seed
    single = real[real["head"] != "pt_head"].reset_index(drop=True)
    two_stage = single.copy()
    two_stage.loc[two_stage.epoch >= 15, "loss"] *= 30
    two_stage[["rmse_e_per_atom", "rmse_f"]] *= 0.9  # (not hidden behind the other line)
    runs = [_run_files(tmp_path, Run("ice", "train", 1, "mp0", "naive", "estimated", v, 0), c)
            for v, c in (("base", single), ("two_stage", two_stage))]
    spec = _spec(variants=("base", "two_stage"), strategies=("naive",))
    spec["variant_labels"] = {"base": "constant weights", "two_stage": "two-stage weights"}
    tables = loss_curves.collect({"loss_curves": [f for f, _ in runs], "trainable": [t for _, t in runs]}, spec)
    assert set(tables["final"].stage_two_epochs.fillna("")) == {"", "15"}
    out = [str(tmp_path / "single.png"), str(tmp_path / "single.pdf")]
    loss_curves.plot(tables, spec, out)
    assert Path(out[0]).stat().st_size > 10_000


def test_is_a_registered_kind():
    assert figures.kind("loss_curves") is loss_curves
    assert "loss_curves" in figures.kinds()
