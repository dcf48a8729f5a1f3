"""Overview of the benchmarks (the paper's Fig. 2): a representative structure and the key
attributes of each benchmark, ordered by their departure from the foundation's pretraining
domain, measured as the foundation's zero-shot error (no fine-tuning) on each test set.

No fine-tunes: the figure reads each benchmark's files (training, validation and test sets,
``summary.json``) and the foundation's per-structure zero-shot errors on the test set
(``zeroshot/<benchmark>/<foundation>/test.csv``, the table of :mod:`mlipft.analysis.errors`).
One column per benchmark, ordered by the zero-shot force RMSE (which does not depend on the E0
reference): the structure (ASE's matplotlib renderer), an attribute block, and bars of the
zero-shot force and energy RMSE beneath.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .common import STYLE, pyplot, save

DESCRIPTION = ("Benchmark overview: a representative test structure and the dataset attributes of each benchmark "
               "(configurations per split, atoms, elements, level of theory, periodicity), columns ordered by the "
               "foundation's zero-shot force RMSE on the test set, with bars of its zero-shot force and energy RMSE.")
TABLES = ("benchmarks",)
#: Columns of the ``benchmarks`` table, in order (``structure``: the representative frame as JSON).
COLUMNS = ("benchmark", "foundation", "trainset", "validset", "testset", "n_train", "n_valid", "n_test",
           "atoms_min", "atoms_max", "elements", "level", "periodic", "zeroshot_energy_rmse", "zeroshot_force_rmse",
           "zeroshot_n_configs", "representative_index", "representative_formula", "representative_config_type",
           "structure")
#: Names shown for the benchmarks of the paper (mathtext); any other benchmark shows its key.
LABELS = {"lpsc": r"Li$_6$PS$_5$Cl argyrodite", "nacl": "Aqueous NaCl", "ice": "Ice polymorphs",
          "sn2": r"S$_\mathrm{N}$2 reactions", "spice": "SPICE biomolecules"}
#: ``config_type`` values of a transition state: shown in preference to any other frame.
TS_TYPES = ("ts", "transition_state", "transition-state", "transitionstate")
#: Keys of a frame's info (or of summary.json, at its top or under ``params``) naming the level of theory.
LEVEL_KEYS = ("level", "level_of_theory", "method")
#: A bar axis spanning more than this ratio of largest to smallest value is logarithmic.
LOG_RATIO = 10.0
#: Camera of a periodic cell (ASE rotation string): tilted so the cell reads as a box.
CELL_ROTATION = "-70x,-20y,-5z"
#: Height of the band under each structure that holds its scale bar (share of the structure's height).
SCALE_BAND = 0.1
#: Cameras tried for a molecule (after aligning its principal axes with x, y, z): tilts about x
#: and y in degrees; the one whose drawn atoms overlap least is used (:func:`best_view`).
MOLECULE_TILTS = tuple(range(-60, 61, 15))


def check(config, name, fig, axes):
    if not axes["benchmark"] or axes["benchmark"] == [None]:
        return ".benchmark: a benchmarks_overview figure needs at least one benchmark (e.g. [lpsc, nacl, ice, sn2, spice])"
    if len(axes["foundation"]) != 1 or axes["foundation"] == [None]:
        return (f".foundation: a benchmarks_overview figure measures the zero-shot error of one foundation, "
                f"got {axes['foundation']}")
    if len(axes.get("trainset", ["train"])) != 1:
        return f".trainset: a benchmarks_overview figure counts one training set per benchmark, got {axes['trainset']}"
    chosen = fig.get("representative") or {}
    unknown = sorted(set(chosen) - set(axes["benchmark"]))
    if unknown:
        return f".representative: {unknown} are not benchmarks of this figure ({axes['benchmark']})"
    return None


def figure_axes(config, name) -> dict[str, list]:
    """Benchmarks, foundation (``main_foundation`` when unset) and training set (``train`` when
    unset) of the figure, read from its entry as :func:`mlipft.config.grid` reads them (which a
    figure without fine-tunes need not satisfy: it has no strategies, fractions or seeds)."""
    from ..config import as_list

    fig = config["figures"][name]
    foundation = fig.get("foundation", config.get("main_foundation"))
    if foundation == "all":
        foundation = list(config["foundations"])
    return {"benchmark": as_list(fig.get("benchmark")), "foundation": as_list(foundation),
            "trainset": as_list(fig.get("trainset", "train"))}


def inputs(config, name, runs, paths):
    """Per role, one file per benchmark of the figure (grid order); ``runs`` is unused (no fine-tunes)."""
    axes = figure_axes(config, name)
    foundation, trainset, benchmarks = axes["foundation"][0], axes["trainset"][0], axes["benchmark"]
    bench = config["benchmarks"]
    return {
        "structures": [paths.bench_file(b, bench[b]["test"]) for b in benchmarks],
        "trainsets": [paths.bench_file(b, trainset) for b in benchmarks],
        "validsets": [paths.bench_file(b, bench[b]["validsets"][trainset]) for b in benchmarks],
        "tests": [paths.bench_file(b, bench[b]["test"]) for b in benchmarks],
        "summaries": [paths.bench_file(b, "summary.json") for b in benchmarks],
        "zeroshot": [paths.zeroshot(b, foundation, "test") for b in benchmarks],
    }


# ---------------------------------------------------------------------------------------------
# collect


def _is_isolated(atoms) -> bool:
    from ..keys import CONFIG_TYPE_KEY, ISOLATED_ATOM

    return atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM


def scan(path: str | Path) -> dict:
    """Facts of an extxyz file's configurations, isolated atoms excluded: their count, sizes,
    atomic numbers, periodicity (any periodic direction) and the ``level`` values they carry."""
    from ase.io import iread

    sizes, numbers, pbc, levels = [], set(), [], []
    for atoms in iread(str(path), index=":", format="extxyz"):
        if _is_isolated(atoms):
            continue
        sizes.append(len(atoms))
        numbers.update(int(z) for z in atoms.numbers)
        pbc.append(bool(np.any(atoms.pbc)))
        level = next((atoms.info[k] for k in LEVEL_KEYS if atoms.info.get(k) not in (None, "")), None)
        if level is not None and str(level) not in levels:
            levels.append(str(level))
    return {"n": len(sizes), "sizes": sizes, "numbers": numbers, "pbc": pbc, "levels": levels}


def summary_level(path: str | Path | None) -> str | None:
    """The level of theory a benchmark's summary.json names (None when it names none, or is
    missing or unreadable: the files' own ``level`` comes first anyway)."""
    if not path or not Path(path).is_file():
        return None
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    for block in (summary, summary.get("params") if isinstance(summary.get("params"), dict) else {}):
        for key in LEVEL_KEYS:
            if isinstance(block.get(key), str) and block[key]:
                return block[key]
    return None


def representative(frames: list, choose: int | None = None) -> int:
    """The index (in the file) of the frame a benchmark is shown by: ``choose`` when given;
    else a transition state when the set has one (the SN2 complex), then the frame with the most
    distinct elements, then the most atoms, then the lowest reference energy per atom (the most
    relaxed of equal candidates), then the first."""
    from ..keys import CONFIG_TYPE_KEY, ENERGY_KEY

    if choose is not None:
        if not 0 <= int(choose) < len(frames) or _is_isolated(frames[int(choose)]):
            raise ValueError(f"representative frame {choose}: not a configuration of the test set "
                             f"({len(frames)} frames)")
        return int(choose)
    candidates = [i for i, a in enumerate(frames) if not _is_isolated(a)]
    if not candidates:
        raise ValueError("no configuration to show (only isolated atoms)")
    ts = [i for i in candidates if str(frames[i].info.get(CONFIG_TYPE_KEY, "")).lower() in TS_TYPES]
    candidates = ts or candidates

    def key(i):
        a = frames[i]
        energy = a.info.get(ENERGY_KEY)
        per_atom = float(energy) / len(a) if energy is not None else math.inf
        return (-len(set(a.numbers)), -len(a), per_atom, i)

    return min(candidates, key=key)


def structure_json(atoms) -> str:
    """A frame as compact JSON (numbers, positions, cell, pbc): the table carries it to the plot."""
    return json.dumps({"numbers": [int(z) for z in atoms.numbers],
                       "positions": np.round(atoms.positions, 4).tolist(),
                       "cell": np.round(np.asarray(atoms.cell), 4).tolist(),
                       "pbc": [bool(p) for p in atoms.pbc]}, separators=(",", ":"))


def structure_atoms(text: str):
    from ase import Atoms

    d = json.loads(text)
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])


def zeroshot_errors(path: str | Path, benchmark: str) -> dict:
    """Zero-shot energy and force RMSE of a per-structure error table (mlipft.analysis.errors)."""
    import pandas as pd

    from ..analysis.errors import summary

    frame = pd.read_csv(path)
    if "benchmark" in frame.columns and set(frame.benchmark.astype(str)) - {benchmark}:
        raise ValueError(f"{path}: errors of benchmark(s) {sorted(set(frame.benchmark.astype(str)))}, expected "
                         f"{benchmark} (the inputs are given in the figure's benchmark order)")
    if frame.empty:
        raise ValueError(f"{path}: no structure evaluated")
    rows = summary(frame.assign(_all=0), ["_all"])
    values = dict(zip(rows.metric, rows.value))
    return {"zeroshot_energy_rmse": values["energy_rmse"], "zeroshot_force_rmse": values["force_rmse"],
            "zeroshot_n_configs": int(rows.n_configs.iloc[0])}


def _one_each(inputs, role: str, n: int, optional: bool = False) -> list:
    files = list(inputs.get(role) or [])
    if optional and not files:
        return [None] * n
    if len(files) != n:
        raise ValueError(f"inputs {role}: {len(files)} files for {n} benchmarks (one per benchmark, in the "
                         "figure's order)")
    return files


def collect(inputs, spec):
    """The ``benchmarks`` table: one row per benchmark, ordered by the zero-shot force RMSE."""
    import pandas as pd
    from ase.data import chemical_symbols
    from ase.io import read

    benchmarks = [str(b) for b in spec["axes"]["benchmark"]]
    foundation = str(spec["axes"]["foundation"][0])
    chosen = (spec.get("entry") or {}).get("representative") or {}
    n = len(benchmarks)
    roles = {r: _one_each(inputs, r, n) for r in ("trainsets", "validsets", "tests", "zeroshot")}
    roles["structures"] = _one_each(inputs, "structures", n, optional=True)
    roles["summaries"] = _one_each(inputs, "summaries", n, optional=True)
    rows = []
    for i, bench in enumerate(benchmarks):
        files = {r: roles[r][i] for r in roles}
        facts = {split: scan(files[role]) for split, role in (("train", "trainsets"), ("valid", "validsets"),
                                                                ("test", "tests"))}
        sizes = [s for f in facts.values() for s in f["sizes"]]
        if not sizes:
            raise ValueError(f"benchmark {bench}: no configuration in {[files[r] for r in ('trainsets', 'validsets', 'tests')]}")
        numbers = set().union(*(f["numbers"] for f in facts.values()))
        pbc = [p for f in facts.values() for p in f["pbc"]]
        levels = list(dict.fromkeys(lv for f in facts.values() for lv in f["levels"]))
        level = " / ".join(levels) or summary_level(files["summaries"]) or "not recorded"
        frames = read(str(files["structures"] or files["tests"]), index=":", format="extxyz")
        index = representative(frames, chosen.get(bench))
        shown = frames[index]
        rows.append({
            "benchmark": bench, "foundation": foundation, "trainset": Path(files["trainsets"]).stem,
            "validset": Path(files["validsets"]).stem, "testset": Path(files["tests"]).stem,
            "n_train": facts["train"]["n"], "n_valid": facts["valid"]["n"], "n_test": facts["test"]["n"],
            "atoms_min": min(sizes), "atoms_max": max(sizes),
            "elements": " ".join(chemical_symbols[z] for z in sorted(numbers)), "level": level,
            "periodic": all(pbc) if pbc else False,
            **zeroshot_errors(files["zeroshot"], bench),
            "representative_index": index, "representative_formula": shown.get_chemical_formula(mode="hill"),
            "representative_config_type": str(shown.info.get("config_type", "")),
            "structure": structure_json(shown),
        })
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return {"benchmarks": table.sort_values("zeroshot_force_rmse", kind="stable", na_position="last")
            .reset_index(drop=True)}


# ---------------------------------------------------------------------------------------------
# plot


def label(benchmark: str) -> str:
    return LABELS.get(str(benchmark), str(benchmark))


def aligned(atoms):
    """A molecule turned so that its principal axes lie along x (longest extent), y and z."""
    out = atoms.copy()
    pos = out.positions - out.positions.mean(axis=0)
    if len(out) > 1:
        _, _, vt = np.linalg.svd(pos, full_matrices=False)
        axes = np.zeros((3, 3))
        axes[: len(vt)] = vt
        if len(vt) < 3 or np.linalg.norm(axes[2]) < 1e-8:
            axes[2] = np.cross(axes[0], axes[1]) if np.linalg.norm(axes[1]) > 1e-8 else [0, 0, 1]
        if np.linalg.det(axes) < 0:  # keep it a rotation, not a mirror image
            axes[2] = -axes[2]
        if np.linalg.matrix_rank(axes) == 3:
            pos = pos @ axes.T
    out.positions = pos
    return out


def _rotation(tilt_x: float, tilt_y: float) -> np.ndarray:
    a, b = np.radians(tilt_x), np.radians(tilt_y)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return ry @ rx


def best_view(positions: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The rotation (of :data:`MOLECULE_TILTS` about x then y) under which the drawn discs of a
    molecule overlap least in projection (sum of squared overlaps; the smallest tilt on a tie)."""
    n = len(positions)
    if n < 2:
        return np.eye(3)
    i, j = np.triu_indices(n, 1)
    reach = r[i] + r[j]
    best, best_key = np.eye(3), None
    for tx in MOLECULE_TILTS:
        for ty in MOLECULE_TILTS:
            rot = _rotation(tx, ty)
            xy = (positions @ rot.T)[:, :2]
            d = np.linalg.norm(xy[i] - xy[j], axis=1)
            key = (round(float(np.sum(np.clip(reach - d, 0, None) ** 2)), 6), abs(tx) + abs(ty))
            if best_key is None or key < best_key:
                best, best_key = rot, key
    return best


def radii(numbers, periodic: bool) -> np.ndarray:
    """Drawn radii (Å): a share of the covalent radius, capped so that large ions and alkali
    atoms (Li, Na) do not hide the rest of a cell."""
    from ase.data import covalent_radii

    r = covalent_radii[np.asarray(numbers)]
    return np.minimum(0.75 * r, 0.8) if periodic else np.minimum(0.7 * r, 0.75)


def draw_structure(ax, atoms) -> bool:
    """ASE's matplotlib renderer (in Å): a periodic frame wrapped into its cell, the cell drawn,
    seen obliquely; a molecule along its principal axes, slightly tilted. True when periodic."""
    from ase.visualize.plot import plot_atoms

    periodic = bool(np.any(atoms.pbc)) and atoms.cell.rank == 3
    if periodic:
        shown = atoms.copy()
        shown.wrap()
        plot_atoms(shown, ax, rotation=CELL_ROTATION, show_unit_cell=2, radii=radii(shown.numbers, True))
    else:
        shown = aligned(atoms)
        shown.pbc = False
        shown.cell = None
        r = radii(shown.numbers, False)
        shown.positions = shown.positions @ best_view(shown.positions, r).T
        plot_atoms(shown, ax, show_unit_cell=0, radii=r)
    return periodic


def common_scale(axes, periodic: list[bool]) -> None:
    """Equal boxes (titles in line), the cells drawn to one length scale and the molecules to
    another (a 6-atom complex beside a 10 Å cell would be a speck): each axes spans the same
    data range as the others of its group, centred on its structure (ASE draws in Å)."""
    boxes = [(ax.get_xlim(), ax.get_ylim()) for ax in axes]
    aspect = max(abs(y[1] - y[0]) / abs(x[1] - x[0]) for x, y in boxes)
    for group in (True, False):
        members = [i for i, p in enumerate(periodic) if p == group]
        if not members:
            continue
        width = max(max(abs(boxes[i][0][1] - boxes[i][0][0]), abs(boxes[i][1][1] - boxes[i][1][0]) / aspect)
                    for i in members)
        for i in members:
            (x0, x1), (y0, y1) = boxes[i]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            axes[i].set_xlim(cx - width / 2, cx + width / 2)
            band = SCALE_BAND * width * aspect  # below the structure: room for the scale bar
            axes[i].set_ylim(cy - width * aspect / 2 - band, cy + width * aspect / 2)
            axes[i].set_aspect("equal", adjustable="box")  # equal spans: equal boxes
            scale_bar(axes[i], width, band)


def scale_bar(ax, width: float, band: float) -> None:
    """A bar of a round length (Å) in the band under a structure, at its left."""
    length = next(v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if v >= width / 6)
    x0, y0 = ax.get_xlim()[0], ax.get_ylim()[0]
    x, y = x0 + 0.03 * width, y0 + 0.3 * band
    ax.plot([x, x + length], [y, y], color="0.2", lw=1.5, solid_capstyle="butt")
    ax.text(x + length + 0.02 * width, y, f"{length} Å", ha="left", va="center", fontsize=6.5, color="0.2")


def element_legend(ax, numbers, title: str = "") -> None:
    """The colours of the elements drawn (ASE's Jmol colours), in a row under the structure."""
    from ase.data import chemical_symbols
    from ase.data.colors import jmol_colors
    from matplotlib.lines import Line2D

    zs = sorted({int(z) for z in numbers})
    handles = [Line2D([], [], ls="", marker="o", ms=6, mfc=jmol_colors[z], mec="0.2", mew=0.6,
                      label=chemical_symbols[z]) for z in zs]
    legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(zs), frameon=False,
                       fontsize=7.5, handletextpad=0.1, columnspacing=0.7, borderaxespad=0.2, title=title or None,
                       title_fontsize=7)
    legend.get_title().set_color("0.35")


def _atoms_text(row) -> str:
    lo, hi = int(row.atoms_min), int(row.atoms_max)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def attributes(row) -> str:
    """The attribute block under a structure."""
    periodic = str(row.periodic).lower() in ("true", "1")
    return "\n".join([
        f"train / valid / test: {int(row.n_train)} / {int(row.n_valid)} / {int(row.n_test)}",
        f"atoms per configuration: {_atoms_text(row)}",
        f"elements: {row.elements}",
        f"level: {row.level}",
        "periodic (bulk cell)" if periodic else "non-periodic (gas phase)",
    ])


def shown(row) -> str:
    """Which frame the structure is: its index in the test file, formula and config_type."""
    kind = str(row.representative_config_type)
    return (f"test frame {int(row.representative_index)}: {row.representative_formula}"
            + ("" if kind in ("", "nan") else f" ({kind})"))


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _bars(ax, x, values, color, ylabel):
    values = np.asarray(values, float)
    finite = values[np.isfinite(values) & (values > 0)]
    log = len(finite) > 1 and finite.max() / finite.min() > LOG_RATIO
    ax.bar(x, np.where(np.isfinite(values), values, 0.0), width=0.55, color=color, edgecolor="0.2", lw=0.5)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(finite.min() / 2.5, finite.max() * 4.0)
    elif len(finite):
        ax.set_ylim(0, finite.max() * 1.25)
    for xi, v in zip(x, values):
        ax.text(xi, v if np.isfinite(v) and v > 0 else (ax.get_ylim()[0]), _fmt(v) if np.isfinite(v) else "n/a",
                ha="center", va="bottom", fontsize=7.5)
    ax.set_ylabel(ylabel + (" (log)" if log else ""))
    ax.grid(axis="y", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)


def plot(tables, spec, outputs):
    table = tables["benchmarks"].sort_values("zeroshot_force_rmse", kind="stable", na_position="last")
    table = table.reset_index(drop=True)
    if table.empty:
        raise ValueError("no benchmark in the benchmarks table")
    plt = pyplot()
    n = len(table)
    foundation = str(table.foundation.iloc[0]) if "foundation" in table.columns else str(spec["axes"]["foundation"][0])
    x = np.arange(n)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(max(2.5 * n, 5.0), 8.0), layout="constrained")
        grid = fig.add_gridspec(4, n, height_ratios=[3.0, 1.0, 1.3, 0.9])
        structures, periodic = [], []
        for i, row in table.iterrows():
            ax = fig.add_subplot(grid[0, i])
            atoms = structure_atoms(row.structure)
            periodic.append(draw_structure(ax, atoms))
            ax.set_title(label(row.benchmark), fontsize=10, fontweight="bold")
            element_legend(ax, atoms.numbers, shown(row))
            structures.append(ax)
            text = fig.add_subplot(grid[1, i])
            text.set_axis_off()
            block = text.text(0.03, 0.97, attributes(row), transform=text.transAxes, ha="left", va="top",
                              fontsize=7.8, linespacing=1.45)
            block.set_in_layout(False)  # a long line must not shrink the column's structure
        common_scale(structures, periodic)
        forces = fig.add_subplot(grid[2, :])
        _bars(forces, x, table.zeroshot_force_rmse, "#4c72b0", "zero-shot force\nRMSE (meV/Å)")
        forces.set_xlim(-0.5, n - 0.5)
        forces.tick_params(axis="x", labelbottom=False)
        energies = fig.add_subplot(grid[3, :], sharex=forces)
        _bars(energies, x, table.zeroshot_energy_rmse, "#dd8452", "zero-shot energy\nRMSE (meV/atom)")
        energies.set_xticks(x, [label(b) for b in table.benchmark])
        energies.set_xlim(-0.5, n - 0.5)
        energies.set_xlabel(f"increasing departure from the pretraining domain: zero-shot force error of "
                            f"{foundation} →")
        fig.suptitle(f"{spec['description']}\nfoundation {foundation}, zero-shot (not fine-tuned) on each "
                     f"benchmark's test set", fontsize=10)
        n_configs = ", ".join(f"{label(b)} {int(c)}" for b, c in zip(table.benchmark, table.zeroshot_n_configs))
        fig.text(0.5, -0.005,
                 "Configurations exclude isolated atoms. Columns ordered by the zero-shot force RMSE, which does not "
                 "depend on the E0 reference; the energy RMSE across levels of theory mostly measures the offset "
                 "of the foundation's reference energies (E0s) from the benchmark's level, not the shape of the "
                 f"potential energy surface. Test configurations evaluated: {n_configs}.",
                 ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        save(fig, outputs)
