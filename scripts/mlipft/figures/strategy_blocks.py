"""The fine-tuning strategies as blocks of MACE (the paper's Fig. 1 schematic), measured from the
runs: one row per strategy, its blocks embedding -> interactions -> products -> readouts coloured
by what the optimiser did to them (trained, frozen, LoRA adapters, partly trained), each with the
share of its parameters trained, the replay head ``pt_head`` where the model has one, and the
share of the whole model trained at the right (:mod:`mlipft.analysis.blocks`)."""

from __future__ import annotations

from pathlib import Path

from ..paths import RUN_KEYS, parse_run
from .common import STYLE, pyplot, save, span

DESCRIPTION = ("Per strategy, which MACE blocks (embedding, interactions, products, readouts) the optimiser "
               "trained, froze or adapted with LoRA, measured from the Adam state of each run's last checkpoint, "
               "with the share of each block's parameters trained, the replay head pt_head where present and "
               "the share of the whole model trained.")
TABLES = ("blocks",)
#: Grid axes that must hold one value: one run, so one schematic row, per strategy.
SINGLE = ("benchmark", "trainset", "foundation", "e0s", "fraction", "variant", "seed")
REPLAY_HEAD = "pt_head"
COLOURS = {"trained": "#2e8b57", "frozen": "#c8d3df", "lora": "#f0a030", "partly trained": "#a8d8a0",
           "head": "#7b5ea7"}
LEGEND = {"trained": "trained", "frozen": "frozen", "lora": "LoRA adapters (base frozen)",
          "partly trained": "partly trained", "head": f"replay head ({REPLAY_HEAD})"}
DARK = {"trained", "head"}  # white text on these


def check(config, name, fig, axes):
    from ..config import GRID_AXES

    for axis in SINGLE:
        if len(axes.get(axis, [])) > 1:
            return (f".{GRID_AXES[axis]}: a strategy_blocks figure draws one schematic row per strategy from one "
                    f"run each, so it needs one {axis}, got {axes[axis]}")
    return None


def inputs(config, name, runs, paths):
    # the checkpoints beside each model (<run>/mace/checkpoints) are mace's working files, not
    # declared outputs: collect finds them from the model's folder
    return {"models": [paths.run_file(r, "model") for r in runs]}


def collect(inputs, spec):
    import pandas as pd

    from ..analysis.blocks import block_states

    frames = []
    for path in inputs["models"]:
        frame = block_states(Path(path).parent)
        keys = parse_run(path).keys()
        frames.append(frame.assign(**keys)[list(keys) + list(frame.columns)])
    if not frames:
        raise ValueError("no models to collect")
    return {"blocks": pd.concat(frames, ignore_index=True)}


def pct(fraction: float) -> str:
    """A share as a percentage that keeps what matters visible: ``100 %``, ``99.98 %``, ``14 %``,
    ``0.6 %``, ``0 %``."""
    v = 100.0 * float(fraction)
    if v == 0 or v == 100:
        return f"{v:.0f} %"
    if 99.0 <= v < 100 or v < 1:
        return f"{v:.2f} %" if v >= 99.0 else f"{v:.1g} %"
    return f"{v:.0f} %" if v >= 10 else f"{v:.1f} %"


def strategies(table, spec) -> list[str]:
    """The strategies of the table in registry order (``spec["labels"]``), others after."""
    present = list(dict.fromkeys(table.strategy.astype(str)))
    return [s for s in spec["labels"] if s in present] + [s for s in present if s not in spec["labels"]]


def _subtitle(table) -> str:
    one = {k: "/".join(sorted(set(table[k].astype(str)))) for k in ("benchmark", "trainset", "foundation", "fraction",
                                                                    "variant", "seed")}
    parts = [f"benchmark {one['benchmark']}", f"training set {one['trainset']}"
             + (f" (fraction {one['fraction']})" if one["fraction"] != "1" else ""),
             f"foundation {one['foundation']}", f"seed {one['seed']}"]
    if one["variant"] != "base":
        parts.append(f"variant {one['variant']}")
    return ("Counted from the Adam state of each run's last checkpoint (" + ", ".join(parts)
            + ")\n% = share of the block's parameters the optimiser trained")


def plot(tables, spec, outputs):
    from matplotlib.patches import FancyBboxPatch, Patch

    from ..analysis.blocks import BLOCKS

    table = tables["blocks"]
    plt = pyplot()
    order = strategies(table, spec)
    if not order:
        raise ValueError("no runs in the blocks table")
    rows = {}
    for s in order:
        sub = table[table.strategy.astype(str) == s]
        runs = sub[[k for k in RUN_KEYS if k in sub.columns]].drop_duplicates()
        if len(runs) > 1:
            raise ValueError(f"strategy {s}: {len(runs)} runs in the blocks table, a schematic row needs one "
                             f"(runs: {runs.to_dict('records')})")
        rows[s] = sub.set_index("block").reindex(list(BLOCKS))

    width, gap, height = 1.0, 0.32, 0.72
    x = {b: i * (width + gap) for i, b in enumerate(BLOCKS)}
    x_head = len(BLOCKS) * (width + gap) + 0.15
    x_total = x_head + width + 0.45
    fixed = int(table.not_optimised.max()) if "not_optimised" in table.columns else 0
    used = set()

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10.0, 1.4 + 0.62 * len(order)), layout="constrained")
        for i, s in enumerate(order):
            y = -i
            frame = rows[s]
            for j, block in enumerate(BLOCKS):
                r = frame.loc[block]
                state = str(r.state)
                used.add(state)
                ax.add_patch(FancyBboxPatch((x[block], y - height / 2), width, height,
                                            boxstyle="round,pad=0,rounding_size=0.08", lw=0.8, edgecolor="0.35",
                                            facecolor=COLOURS.get(state, "white")))
                label = pct(r.trained_fraction)
                if state == "lora":
                    label = f"LoRA {label}"
                if fixed and int(r.get("not_optimised", 0) or 0) and state != "frozen":
                    label += "*"
                ax.text(x[block] + width / 2, y, label, ha="center", va="center", fontsize=8.5,
                        color="white" if state in DARK else "black", fontweight="bold" if state != "frozen" else None)
                if j < len(BLOCKS) - 1:
                    ax.annotate("", xy=(x[block] + width + gap - 0.03, y), xytext=(x[block] + width + 0.03, y),
                                arrowprops={"arrowstyle": "->", "color": "0.45", "lw": 0.8})
            heads = str(frame.heads.dropna().iloc[0]) if frame.heads.notna().any() else ""
            if REPLAY_HEAD in heads.split("+"):
                used.add("head")
                ax.add_patch(FancyBboxPatch((x_head, y - height / 2), width, height,
                                            boxstyle="round,pad=0,rounding_size=0.08", lw=0.8, edgecolor="0.35",
                                            facecolor=COLOURS["head"]))
                ax.text(x_head + width / 2, y, REPLAY_HEAD, ha="center", va="center", fontsize=8.5, color="white",
                        fontweight="bold")
            else:
                ax.add_patch(FancyBboxPatch((x_head, y - height / 2), width, height,
                                            boxstyle="round,pad=0,rounding_size=0.08", lw=0.8, edgecolor="0.75",
                                            facecolor="0.97", linestyle=(0, (3, 2))))
                ax.text(x_head + width / 2, y, "none", ha="center", va="center", fontsize=7.5, color="0.6")
            total = frame.trained.sum() / frame.parameters.sum()
            ax.text(x_total, y, pct(total), ha="left", va="center", fontsize=9, fontweight="bold")
            ax.text(-0.12, y, spec["labels"].get(s, s), ha="right", va="center", fontsize=9)

        top = 0.5 * height + 0.12
        for block in BLOCKS:
            n = span(table[table.block == block].parameters)
            ax.text(x[block] + width / 2, top, f"{block}\n{n} params", ha="center", va="bottom", fontsize=8.5)
        ax.text(x_head + width / 2, top, "replay head", ha="center", va="bottom", fontsize=8.5)
        ax.text(x_total, top, "trained\n(whole model)", ha="left", va="bottom", fontsize=8.5)
        ax.axvline(x_head - 0.16, color="0.8", lw=0.8, ls=":")
        ax.set_xlim(-0.15, x_total + 1.0)
        ax.set_ylim(-(len(order) - 1) - height / 2 - 0.12, top + 0.42)
        ax.set_axis_off()

        handles = [Patch(facecolor=COLOURS[k], edgecolor="0.35", label=LEGEND[k]) for k in LEGEND]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False,
                  handlelength=1.4, columnspacing=1.2)
        notes = []
        if fixed:
            notes.append(f"* the embedding counts the foundation's {fixed} radial-basis (Bessel) weights, which mace "
                         "puts in no optimiser group: no strategy trains them")
        if "lora" in used:
            notes.append("LoRA: % = adapter parameters against the block's own (merged into the final model)")
        if "head" in used:
            notes.append(f"{REPLAY_HEAD}: the replay head of a multihead fine-tune, its readout outputs counted "
                         "in readouts")
        if notes:
            ax.annotate("\n".join(notes), xy=(0.5, 0.0), xycoords="axes fraction", xytext=(0, -24),
                        textcoords="offset points", ha="center", va="top", fontsize=7, color="0.3")
        fig.suptitle(spec["description"], fontsize=10)
        ax.set_title(_subtitle(table), fontsize=8, color="0.25")
        save(fig, outputs)
