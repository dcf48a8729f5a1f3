"""Kind strategy_blocks (the paper's Fig. 1 schematic, measured): mlipft.analysis.blocks on
synthetic runs at real run paths (a tiny model with MACE's top-level blocks, a real Adam
checkpoint with mace's named groups after one step), the figure's collect/plot and checks, and
one real SN2 run when present."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlipft import figures
from mlipft.analysis import blocks
from mlipft.config import grid
from mlipft.figures import strategy_blocks
from mlipft.paths import Paths, Run
from torch import nn

REAL = Path(__file__).resolve().parents[1] / "results/mini/runs/sn2/train/f1/omat_medium/freeze5/e0-estimated/v-base/seed0"
LABELS = {"naive": "Naive", "freeze5": "Freeze (emb.+int.)", "lora": "LoRA", "replay": "Multihead replay",
          "partial": "Partly frozen"}
MODULES = ("node_embedding", "interactions", "products", "readouts")


class LoRA(nn.Module):
    """A base layer (frozen) plus a rank-1 adapter whose layers carry an ``output_mask`` buffer,
    like e3nn's Linear under mace's LoRAO3Linear."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, 1, bias=False)
        self.lora_B = nn.Linear(1, base.out_features, bias=False)
        self.lora_A.register_buffer("output_mask", torch.ones(1))
        self.lora_B.register_buffer("output_mask", torch.ones(base.out_features))
        for p in self.base.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x))


def tiny(heads=("Default",)) -> nn.Module:
    """MACE's top-level blocks in miniature (plain modules, so that torch.load needs no test
    class): node_embedding 4->3 (15), radial_embedding's 2 Bessel weights (in no optimiser group),
    interactions linear 3->3 (12, mace's decay group) and up 3->3 (12), products 3->2 (8),
    readouts 2->heads (3 per head)."""
    torch.manual_seed(0)
    m = nn.Module()
    m.node_embedding = nn.Linear(4, 3)
    m.radial_embedding = nn.Module()
    m.radial_embedding.bessel_weights = nn.Parameter(torch.ones(2))
    m.interactions = nn.Module()
    m.interactions.linear = nn.Linear(3, 3)
    m.interactions.up = nn.Linear(3, 3)
    m.products = nn.Linear(3, 2)
    m.readouts = nn.Linear(2, len(heads))
    m.heads = list(heads)
    return m


def forward(m, x):
    h = m.node_embedding(x)
    h = m.interactions.up(m.interactions.linear(h))
    return m.readouts(m.products(h))


def mace_groups(m) -> list[dict]:
    """mace 0.3.16's groups (mace.tools.scripts_utils.get_params_options): radial_embedding in none."""
    decay = [p for n, p in m.interactions.named_parameters() if "linear.weight" in n]
    no_decay = [p for n, p in m.interactions.named_parameters() if "linear.weight" not in n]
    return [{"name": "embedding", "params": list(m.node_embedding.parameters())},
            {"name": "interactions_decay", "params": decay}, {"name": "interactions_no_decay", "params": no_decay},
            {"name": "products", "params": list(m.products.parameters())},
            {"name": "readouts", "params": list(m.readouts.parameters())}]


def make_run(root: Path, strategy: str, frozen=(), lora=(), heads=("Default",), freeze_params=(),
             checkpoint=True) -> Path:
    """A run directory at its real path: the final model (LoRA merged: the plain model) and
    checkpoints of epochs 2 (before any step: no Adam state) and 10 (after one step)."""
    run = Run("sn2", "train", 1.0, "omat_medium", strategy, "estimated", "base", 0)
    run_dir = Path(Paths(root / "results").run_dir(run))
    final = tiny(heads)
    train = copy.deepcopy(final)
    for name in lora:  # interactions: each of its layers (so that none is named linear.weight: no decay group)
        owner, names = (train.interactions, ("linear", "up")) if name == "interactions" else (train, (name,))
        for layer in names:
            setattr(owner, layer, LoRA(getattr(owner, layer)))
    for name in frozen:
        for p in getattr(train, name).parameters():
            p.requires_grad_(False)
    for name, p in train.named_parameters():
        if name in freeze_params:
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(mace_groups(train), lr=1e-3)
    folder = run_dir / "mace" / "checkpoints"
    folder.mkdir(parents=True)
    if checkpoint:
        torch.save({"model": train.state_dict(), "optimizer": optimizer.state_dict()},
                   folder / f"{strategy}_run-0_epoch-2.pt")
        forward(train, torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()
        torch.save({"model": train.state_dict(), "optimizer": optimizer.state_dict()},
                   folder / f"{strategy}_run-0_epoch-10.pt")
    torch.save(final, run_dir / "model.model")
    return run_dir


def _by_block(frame):
    assert list(frame.block) == list(blocks.BLOCKS)
    return frame.set_index("block")


def test_naive_trains_every_block_but_the_radial_weights(tmp_path):
    t = _by_block(blocks.block_states(make_run(tmp_path, "naive")))
    assert t.parameters.to_dict() == {"embedding": 17, "interactions": 24, "products": 8, "readouts": 3}
    # the highest epoch (10, not the lexically later 2) is read: every group has state
    assert t.trained.to_dict() == {"embedding": 15, "interactions": 24, "products": 8, "readouts": 3}
    assert t.not_optimised.to_dict() == {"embedding": 2, "interactions": 0, "products": 0, "readouts": 0}
    assert set(t.state) == {"trained"} and (t.lora_parameters == 0).all()
    assert t.loc["embedding", "trained_fraction"] == pytest.approx(15 / 17)
    assert set(t.heads) == {"Default"}


def test_freeze_leaves_embedding_and_interactions_without_state(tmp_path):
    t = _by_block(blocks.block_states(make_run(tmp_path, "freeze5", frozen=("node_embedding", "interactions"))))
    assert t.state.to_dict() == {"embedding": "frozen", "interactions": "frozen", "products": "trained",
                                 "readouts": "trained"}
    assert t.trained.to_dict() == {"embedding": 0, "interactions": 0, "products": 8, "readouts": 3}
    assert t.loc["interactions", "trained_fraction"] == 0 and t.loc["readouts", "trained_fraction"] == 1


def test_lora_counts_the_adapters_not_their_masks(tmp_path):
    t = _by_block(blocks.block_states(make_run(tmp_path, "lora", lora=("node_embedding", "products", "readouts"))))
    # rank-1 adapters: in x 1 + 1 x out; the output_mask buffers are not counted
    adapters = {"embedding": 4 + 3, "interactions": 0, "products": 3 + 2, "readouts": 2 + 1}
    assert t.lora_parameters.to_dict() == adapters
    assert t.trained.to_dict() == {**adapters, "interactions": 24}  # interactions not wrapped: trained fully
    assert t.state.to_dict() == {"embedding": "lora", "interactions": "trained", "products": "lora",
                                 "readouts": "lora"}
    assert t.parameters.to_dict() == {"embedding": 17, "interactions": 24, "products": 8, "readouts": 3}  # merged
    assert t.loc["products", "trained_fraction"] == pytest.approx(5 / 8)


def test_replay_head_and_partly_trained_block(tmp_path):
    t = _by_block(blocks.block_states(make_run(tmp_path, "replay", heads=("pt_head", "Default"))))
    assert set(t.heads) == {"pt_head+Default"}
    assert t.loc["readouts", "parameters"] == 6 and t.loc["readouts", "trained"] == 6
    t = _by_block(blocks.block_states(make_run(tmp_path, "partial", freeze_params=("interactions.up.weight",))))
    assert t.loc["interactions", "state"] == "partly trained" and t.loc["interactions", "trained"] == 12 + 3


def test_missing_checkpoint_and_unnamed_groups_are_clear_errors(tmp_path):
    run_dir = make_run(tmp_path, "naive", checkpoint=False)
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        blocks.block_states(run_dir)
    optimizer = torch.optim.Adam(nn.Linear(2, 2).parameters())
    bad = run_dir / "mace" / "checkpoints" / "naive_run-0_epoch-3.pt"
    torch.save({"model": {}, "optimizer": optimizer.state_dict()}, bad)
    with pytest.raises(ValueError, match=f"{bad.name}.*named parameter groups"):
        blocks.block_states(run_dir)
    with pytest.raises(FileNotFoundError, match="model.model"):
        blocks.block_states(tmp_path / "nowhere")


def test_pct_keeps_small_and_almost_full_shares_visible():
    assert strategy_blocks.pct(1.0) == "100 %" and strategy_blocks.pct(0) == "0 %"
    assert strategy_blocks.pct(0.99982) == "99.98 %" and strategy_blocks.pct(0.137) == "14 %"
    assert strategy_blocks.pct(0.054) == "5.4 %" and strategy_blocks.pct(0.0064) == "0.6 %"


def _spec(strategies):
    return {"figure": "fig01", "kind": "strategy_blocks", "description": "Fine-tuning strategies as MACE blocks",
            "entry": {}, "axes": {"benchmark": ["sn2"], "trainset": ["train"], "foundation": ["omat_medium"],
                                  "strategy": list(strategies), "e0s": ["estimated"], "fraction": ["1"],
                                  "variant": ["base"], "seed": ["0"]},
            "labels": {s: LABELS[s] for s in LABELS if s in strategies}, "evalsets": ["test"], "world": "mini",
            "scale": "smoke", "variant_labels": {"base": "as registered"}, "reference_label": "reference"}


def test_collect_and_plot_from_run_paths(tmp_path):
    make_run(tmp_path, "naive")
    make_run(tmp_path, "freeze5", frozen=("node_embedding", "interactions"))
    make_run(tmp_path, "lora", lora=MODULES)
    make_run(tmp_path, "replay", heads=("pt_head", "Default"))
    make_run(tmp_path, "partial", freeze_params=("interactions.up.weight",))
    order = ["replay", "lora", "naive", "partial", "freeze5"]  # run order; the plot takes registry order
    spec = _spec(order)
    runs = [Run("sn2", "train", 1.0, "omat_medium", s, "estimated", "base", 0) for s in order]
    inputs = strategy_blocks.inputs({}, "fig01", runs, Paths(tmp_path / "results"))
    assert inputs["models"][0].endswith("/replay/e0-estimated/v-base/seed0/model.model")
    tables = strategy_blocks.collect(inputs, spec)
    assert set(tables) == set(strategy_blocks.TABLES)
    path = tmp_path / "blocks.csv"
    tables["blocks"].to_csv(path, index=False)
    table = pd.read_csv(path)
    assert list(table.columns[:8]) == ["benchmark", "trainset", "fraction", "foundation", "strategy", "e0s",
                                       "variant", "seed"]
    assert len(table) == 5 * 4 and set(table.state) == {"trained", "frozen", "lora", "partly trained"}
    lora = table[table.strategy == "lora"].set_index("block")
    assert (lora.state == "lora").all() and lora.loc["interactions", "lora_parameters"] == 3 + 3 + 3 + 3
    assert strategy_blocks.strategies(table, spec) == ["naive", "freeze5", "lora", "replay", "partial"]
    out = [str(tmp_path / "fig01.png"), str(tmp_path / "fig01.pdf")]
    strategy_blocks.plot({"blocks": table}, spec, out)
    assert Path(out[0]).stat().st_size > 20_000 and Path(out[1]).stat().st_size > 5_000


def test_plot_refuses_two_runs_of_one_strategy(tmp_path):
    make_run(tmp_path, "naive")
    table = strategy_blocks.collect({"models": [str(p) for p in tmp_path.rglob("model.model")]},
                                    _spec(["naive"]))["blocks"]
    table = pd.concat([table, table.assign(seed="1")], ignore_index=True)
    with pytest.raises(ValueError, match="strategy naive: 2 runs"):
        strategy_blocks.plot({"blocks": table}, _spec(["naive"]), [str(tmp_path / "x.png")])


def _check(entry):
    config = {"figures": {"x": {"kind": "strategy_blocks", "description": "d", "benchmark": "sn2",
                                "strategies": ["naive", "lora"], "e0s": "estimated", "fractions": [1.0],
                                "seeds": [0], **entry}},
              "main_foundation": "omat_medium"}
    return strategy_blocks.check(config, "x", config["figures"]["x"], grid(config, "x"))


def test_check_wants_one_run_per_strategy():
    assert _check({}) is None
    assert _check({"seeds": [0, 1]}).startswith(".seeds: ")
    assert _check({"fractions": [0.1, 1.0]}).startswith(".fractions: ")
    assert _check({"foundation": ["omat_small", "omat_medium"]}).startswith(".foundation: ")
    assert _check({"benchmark": ["sn2", "ice"]}).startswith(".benchmark: ")
    assert _check({"variants": ["base", "x4"]}).startswith(".variants: ")
    assert _check({"e0s": ["estimated", "average"]}).startswith(".e0s: ")


def test_is_a_kind():
    assert figures.kind("strategy_blocks") is strategy_blocks
    assert strategy_blocks.TABLES == ("blocks",)


@pytest.mark.skipif(not (REAL / "model.model").exists(), reason="no real SN2 freeze5 run under results/mini")
def test_real_freeze5_run():
    t = _by_block(blocks.block_states(REAL))
    assert t.loc["embedding", "state"] == "frozen" and t.loc["interactions", "state"] == "frozen"
    assert t.loc["readouts", "state"] == "trained" and t.loc["products", "state"] == "trained"
    assert (t.trained[["embedding", "interactions"]] == 0).all() and (t.lora_parameters == 0).all()
    assert t.loc["readouts", "trained_fraction"] == 1.0
