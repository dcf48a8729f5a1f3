"""Your own system in one config file (``world: own``): benchmarks defined by their files alone.

An own-world benchmark names its extxyz files (``benchmarks.<b>.files``: name -> path, or
``{path, keys, units}`` for a file that differs from the rest), where they keep their labels
(``keys``: energy, forces, stress; default the workflow's ``REF_*``) and in which units
(``units``: energy, length; default eV and Angstrom). The names are those the usual benchmark keys
use (``trainsets``, ``validsets``, ``test``, ``evalsets``, ``md.start``); ``isolated_atoms`` (optional)
holds the isolated-atom energies. A foundation is any MACE model file
(``foundations.<f>: {kind: file, path: ...}``), installed in the world's dtype. Relative paths
are read from the working directory (where snakemake runs, or its ``-d``).

Rule ``import_<b>`` (rules/own_world.smk) runs :func:`import_benchmark`: every file is read by
:func:`mlipft.convert.read_keyed` (no other reader) and written in the workflow's canonical form
(``REF_*`` keys, eV, Angstrom) to ``data/own/<scale>/benchmarks/<b>/<name>.xyz``; from there rule
``validate_data`` checks them as it checks every benchmark, before any training. Before writing
anything the import stops, naming the config entry, the file and the frame, on

- a label missing from a frame (the key it looked for and the keys the frame has);
- an element that a foundation of the benchmark's figures lacks, or that the isolated atoms lack
  (without isolated atoms, one that no training or validation file has: nothing to take its E0 from);
- units that disagree with what the data should look like (:func:`judge_units`, on a few frames of
  each file): first the geometry, then the foundation's zero-shot forces, then its energies.
  Nearest-neighbour distances are about the sum of the two covalent radii in any bonded structure
  (:func:`bond_ratio`): 1.89 times that means positions in Bohr read as Angstrom. With the
  geometry right, forces carry the energy unit and no reference energy: a file in Hartree/Bohr
  declared as eV/Angstrom, once its positions are declared in Bohr, has forces 1/27.2 of the
  foundation's, kcal/mol 23.06 times, Hartree declared as kcal/mol 1/627.5 (zero-shot foundations
  are softer than the data, a slope of 0.7-0.85 here: the bounds are 1/3 and 3). Per-atom energies
  are compared too and reported, but decide only when the forces cannot (no forces to speak of, or
  uncorrelated with the foundation's): total energies depend on the code's reference (all-electron
  and pseudopotential energies per atom are tens to thousands of eV below the foundation's,
  legitimately, and the E0s absorb that), so a ratio like 20 is no proof of kcal/mol. Forces in
  another length unit than the positions (a gradient in Hartree/Bohr beside coordinates in
  Angstrom) are not caught: one ``length`` serves both. ``units: {check: false}`` switches the
  comparison off.

Isolated-atom rows (``config_type=IsolatedAtom``) inside a data file are taken out of it (mace's
convention, not configurations to train on); without an ``isolated_atoms`` file they are the
isolated atoms when they cover every element, else the isolated atoms are least-squares stand-ins
fitted on the training and validation files (:func:`mlipft.paper.least_squares_e0s`, marked
``e0_source=least_squares``: the from-scratch baseline's ``isolated`` E0s are then mace's
``average``).

    python -m mlipft.own import --spec JSON --summary summary.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

log = logging.getLogger(__name__)

ISOLATED = "isolated_atoms"
#: Benchmark-folder names the import writes itself.
RESERVED = ("summary",)
DEFAULT_KEYS = {"energy": ENERGY_KEY, "forces": FORCES_KEY, "stress": STRESS_KEY}
DEFAULT_UNITS = {"energy": "eV", "length": "angstrom", "check": True}
#: Keys of the other worlds' benchmarks (a generator module, a recipe and its sources).
OTHER_WORLDS_KEYS = ("generator", "recipe", "format", "sources", "threads")
#: Scale blocks the analyses of a figure kind read (scales.<scale>.<block>).
KIND_BLOCKS = {"neb_profiles": ("neb",), "near_transfer": ("neb",), "md_rdfs": ("md",),
               "md_stability": ("stability",), "torsion_scans": ("torsion",)}

# the comparison with the foundation (module docstring)
CHECK_FRAMES = 8  # frames of each file predicted by the foundation
SLOPE_RANGE = (1 / 3, 3.0)  # forces (least-squares slope, file on foundation) and per-atom energies
MIN_CORRELATION = 0.5  # of force components: below it the slope says nothing
MIN_FORCE_RMS = 0.05  # eV/A, the foundation's: below it (relaxed frames) the forces say nothing
SUGGEST_WITHIN = 1.5  # a unit is suggested when it explains the force factor within this ratio
ENERGY_WITHIN = 1.25  # ... the per-atom energy ratio (the references of two codes differ)
BOND_RANGE = (0.6, 1.45)  # nearest-neighbour distance over the covalent radii's sum (:func:`bond_ratio`)
LENGTH_WITHIN = 1.3  # a length unit is suggested when it explains that ratio within this


class OwnDataError(ValueError):
    """Your files cannot become a benchmark; the message names the config entry and the file."""


# ---- the config (used at DAG time: no torch, no ase reads) ----

def file_entries(config: dict, benchmark: str) -> dict[str, dict]:
    """``{name: {"path", "keys", "units"}}`` of an own benchmark's files, each file's own keys and
    units over the benchmark's, over the defaults (:data:`DEFAULT_KEYS`, :data:`DEFAULT_UNITS`)."""
    bench = config["benchmarks"][benchmark]
    keys = {**DEFAULT_KEYS, **(bench.get("keys") or {})}
    units = {**DEFAULT_UNITS, **(bench.get("units") or {})}
    out = {}
    for name, entry in (bench.get("files") or {}).items():
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        out[name] = {"path": str(entry["path"]), "keys": {**keys, **(entry.get("keys") or {})},
                     "units": {**units, **(entry.get("units") or {})}}
    return out


def referenced_files(config: dict, benchmark: str) -> dict[str, str]:
    """The file names a benchmark's entries use, each with the first entry using it (for messages)."""
    bench = config["benchmarks"][benchmark]
    derived = bench.get("derived") or {}
    used: dict[str, str] = {}
    where = f"benchmarks.{benchmark}"
    for name in bench["trainsets"]:
        used.setdefault(name, f"{where}.trainsets")
    for trainset, name in bench["validsets"].items():
        used.setdefault(name, f"{where}.validsets.{trainset}")
    used.setdefault(bench["test"], f"{where}.test")
    for evalset, spec in (bench.get("evalsets") or {}).items():
        if isinstance(spec, str) or "file" in spec:
            used.setdefault(spec if isinstance(spec, str) else spec["file"], f"{where}.evalsets.{evalset}")
    md = bench.get("md") or {}
    if md.get("start"):
        used.setdefault(md["start"], f"{where}.md.start")
    for name in md.get("reference_trainsets") or []:
        used.setdefault(name, f"{where}.md.reference_trainsets")
    for set_name, entry in derived.items():
        if "file" in entry:
            used.setdefault(entry["file"], f"{where}.derived.{set_name}.file")
    return {name: entry for name, entry in used.items() if name not in derived}


def output_files(config: dict, paths, benchmark: str) -> dict[str, str]:
    """What rule import_<b> writes: every file of ``files`` (canonical), the isolated atoms
    (given, or the stand-ins) and ``summary`` (what was converted, checked and filled in)."""
    names = [n for n in file_entries(config, benchmark) if n != ISOLATED]
    out = {name: paths.bench_file(benchmark, name) for name in names}
    out[ISOLATED] = paths.bench_file(benchmark, ISOLATED)
    out["summary"] = paths.bench_file(benchmark, "summary.json")
    return out


def source_files(config: dict, benchmark: str) -> dict[str, str]:
    """Your files of a benchmark, by name (the import's inputs)."""
    return {name: entry["path"] for name, entry in file_entries(config, benchmark).items()}


def foundations_for(config: dict, benchmark: str) -> list[str]:
    """The foundations a benchmark is fine-tuned from (its figures' grids), each of which must
    know every element of its files; the main foundation when no figure uses the benchmark."""
    from . import config as cfg

    found = []
    for figure in config["figures"]:
        axes = cfg.grid(config, figure)
        if benchmark in axes["benchmark"]:
            found += [f for f in axes["foundation"] if f not in found]
    return found or [config["main_foundation"]]


def foundation_inputs(config: dict, benchmark: str) -> dict[str, str]:
    """``{foundation: its model file}`` for the import's element and unit checks."""
    return {f"foundation_{name}": config["foundations"][name]["path"] for name in foundations_for(config, benchmark)}


def import_spec(config: dict, paths, benchmark: str) -> str:
    """The JSON spec of rule import_<b> (:func:`import_benchmark`)."""
    bench = config["benchmarks"][benchmark]
    outputs = output_files(config, paths, benchmark)
    found = foundations_for(config, benchmark)
    main = config["main_foundation"] if config["main_foundation"] in found else found[0]
    return json.dumps({
        "benchmark": benchmark,
        "files": {name: {**entry, "output": outputs.get(name, outputs[ISOLATED]),
                         "entry": f"benchmarks.{benchmark}.files.{name}"}
                  for name, entry in file_entries(config, benchmark).items()},
        "isolated_output": outputs[ISOLATED],
        "fit_files": sorted({*bench["trainsets"], *bench["validsets"].values()} - set(bench.get("derived") or {})),
        "foundations": {name: config["foundations"][name]["path"] for name in found},
        "unit_foundation": main,
        "compute_stress": bool(bench.get("compute_stress", False)),
        "dtype": config["default_dtype"],
    }, sort_keys=True)


def replay_inputs(config: dict, paths, benchmark: str, replay: str) -> dict:
    """A replay set's inputs: its parts (``combine``), or its file with REF_* keys
    (``replay_sources/<replay>.xyz``, rule own_replay_source) and the benchmark's first training file."""
    rep = config["replay"][replay]
    if "combine" in rep:
        return {"parts": [paths.replay(benchmark, part) for part in rep["combine"]]}
    bench = config["benchmarks"][benchmark]
    return {"corpus": paths.replay_source(replay), "target": paths.bench_file(benchmark, bench["trainsets"][0])}


def check_config(config: dict) -> None:
    """The own world's cross-references (``mlipft.config.check`` calls it after the schema and
    the generic checks); a :class:`mlipft.config.ConfigError` names the entry."""
    from . import config as cfg
    from .registry import variant_entry

    error = cfg.ConfigError
    scale_name = config["scale"]
    scale = config["scales"][scale_name]
    cwd = Path.cwd()

    def exists(where: str, path: str) -> None:
        if not Path(path).is_file():
            raise error(f"config entry {where}: file not found: {path} (relative paths are read from the working "
                        f"directory, {cwd})")

    for name, bench in config["benchmarks"].items():
        where = f"config entry benchmarks.{name}"
        other = [k for k in OTHER_WORLDS_KEYS if k in bench]
        if other:
            raise error(f"{where}: {other} belong to the mini or paper world; an own benchmark is its files "
                        f"(benchmarks.{name}.files)")
        files = file_entries(config, name)
        for file_name in files:
            if file_name in RESERVED:
                raise error(f"{where}.files.{file_name}: the name {file_name!r} is the import's own "
                            f"({file_name}.json); give the file another name")
        for file_name, used_by in referenced_files(config, name).items():
            if file_name not in files or file_name == ISOLATED:
                raise error(f"config entry {used_by}: {file_name!r} is not a file of {where}.files "
                            f"(defined: {sorted(n for n in files if n != ISOLATED)})")
        for file_name, entry in files.items():
            exists(f"benchmarks.{name}.files.{file_name}", entry["path"])
        for set_name, entry in (bench.get("derived") or {}).items():
            if "corpus" in entry:
                raise error(f"{where}.derived.{set_name}.corpus: world own has no pretraining corpora; give the "
                            f"set as a file of {where}.files")
        if (bench.get("md") or {}).get("reference_rdf") and "reference" not in scale:
            raise error(f"config entry scales.{scale_name}.reference: needed by benchmarks.{name}.md.reference_rdf "
                        "(the reference MLIP and its long MD)")
    for name, found in config["foundations"].items():
        where = f"config entry foundations.{name}"
        if found["kind"] != "file":
            raise error(f"{where}.kind: world own takes foundations by their model files (kind: file, path: ...), "
                        f"not {found['kind']!r}")
        if "path" not in found:
            raise error(f"{where}.path: a foundation of kind file needs the path of its model file")
        exists(f"foundations.{name}.path", found["path"])
    for name, rep in config["replay"].items():
        if "corpus" in rep:
            raise error(f"config entry replay.{name}.corpus: world own has no corpora; give the replay set as a "
                        f"file: {{file: PATH, mode: {rep.get('mode', 'element_matched')}}}")
        if "file" in rep:
            exists(f"replay.{name}.file", rep["file"])
    for figure, fig in config["figures"].items():
        where = f"config entry figures.{figure}"
        for block in KIND_BLOCKS.get(fig["kind"], ()):
            if block not in scale:
                raise error(f"config entry scales.{scale_name}.{block}: figure {figure} (kind {fig['kind']}) needs "
                            f"it (as config/config.yaml's scales.mini.{block})")
        for run in cfg.runs_for_figure(config, figure):
            entry = variant_entry(config, run.strategy, run.variant)
            if entry.get("multihead") and entry.get("replay") not in config["replay"]:
                raise error(f"{where}: strategy {run.strategy} (variant {run.variant}) replays the set "
                            f"{entry.get('replay')!r}, which replay does not define (defined: "
                            f"{sorted(config['replay'])}): add replay.{entry.get('replay')}: {{file: PATH, mode: "
                            "element_matched}} (a sample of the foundation's training data), or leave the multihead "
                            "strategies out of the figure")
            if not entry.get("uses_foundation") and not config["foundations"][run.foundation].get("model"):
                raise error(f"config entry foundations.{run.foundation}.model: strategy {run.strategy} (figure "
                            f"{figure}) trains from scratch with the foundation's architecture; give it (r_max, "
                            "num_channels, max_L, num_interactions, correlation), or leave scratch out of the figure")


# ---- the import job ----

def _symbols(numbers) -> str:
    from ase.data import chemical_symbols

    return ", ".join(chemical_symbols[z] for z in sorted(numbers))


def _is_isolated(atoms) -> bool:
    return atoms.info.get(CONFIG_TYPE_KEY) == ISOLATED_ATOM


def _first_frames(frames) -> dict[int, tuple[int, int]]:
    """``{Z: (first frame, frames with it)}``."""
    out: dict[int, tuple[int, int]] = {}
    for i, atoms in enumerate(frames):
        for z in set(atoms.numbers.tolist()):
            first, count = out.get(z, (i, 0))
            out[z] = (first, count + 1)
    return out


def _read(name: str, entry: dict, stress: bool):
    """Read one of your files with its keys and units (mlipft.convert.read_keyed, no bounds yet)."""
    from .convert import ConversionError, read_keyed

    keys, units = entry["keys"], entry["units"]
    try:
        return read_keyed(entry["path"], keys["energy"], keys["forces"], keys["stress"],
                          energy_unit=units["energy"], length_unit=units["length"],
                          require_stress=stress and name != ISOLATED, isolated_atoms=name == ISOLATED, check=False)
    except ConversionError as err:
        hint = ""
        text = str(err)
        for label in ("energy", "forces", "stress"):
            if f"{label} key {keys[label]!r}" in text:
                hint = (f" (set {entry['entry'].rsplit('.files.', 1)[0]}.keys.{label}, or {entry['entry']}.keys.{label}"
                        f" for this file alone, to the key your file keeps its {label} under)")
        raise OwnDataError(f"config entry {entry['entry']} ({entry['path']}): {text}{hint}") from None


def _unit_factor(kind: str, units: dict) -> float:
    from .convert import ENERGY_UNITS, LENGTH_UNITS

    energy, length = ENERGY_UNITS[units["energy"]], LENGTH_UNITS[units["length"]]
    return {"energy": energy, "length": length, "forces": energy / length}[kind]


def suggest_units(kind: str, observed: float, declared: dict, within: float = SUGGEST_WITHIN) -> list[dict]:
    """The units that would explain a factor ``observed`` between your converted numbers and what
    they should be (``kind``: ``energy``, ``length`` or ``forces``: energy/length at the declared
    length, which the geometry check has confirmed), closest first, within ``within``: read with
    ``declared`` units, numbers truly in ``units`` come out ``factor(declared) / factor(units)``
    times too large."""
    from .convert import ENERGY_UNITS, LENGTH_UNITS

    out = []
    for unit in (LENGTH_UNITS if kind == "length" else ENERGY_UNITS):
        units = {**declared, "length" if kind == "length" else "energy": unit}
        implied = _unit_factor(kind, declared) / _unit_factor(kind, units)
        distance = abs(math.log(observed / implied)) if observed > 0 else math.inf
        if distance < math.log(within) and unit != declared["length" if kind == "length" else "energy"]:
            out.append({"energy": units["energy"], "length": units["length"], "factor": implied, "distance": distance})
    return sorted(out, key=lambda u: u["distance"])


def bond_ratio(frames) -> float | None:
    """Median over atoms of the nearest-neighbour distance over the sum of the two covalent radii
    (ase.data.covalent_radii): about 1 for any bonded structure (molecules, liquids, solids: C-H
    1.02, O-H in water 0.99, Na-O 1.03), 1.89 for positions in Bohr read as Angstrom; None when no
    atom has a neighbour within 12 A."""
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    ratios = []
    for atoms in frames:
        if len(atoms) < 2:
            continue
        i, j, d = neighbor_list("ijd", atoms, 12.0)
        if not len(i):
            continue
        best = np.full(len(atoms), np.inf)
        np.minimum.at(best, i, d / (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]))
        ratios += best[np.isfinite(best)].tolist()
    return float(np.median(ratios)) if ratios else None


def compare_with_foundation(frames, model, n_frames: int = CHECK_FRAMES) -> dict:
    """Up to ``n_frames`` configurations of a file (evenly spread), against what they should look
    like: ``bond_ratio`` (:func:`bond_ratio`, the length unit), and the foundation's zero-shot
    forces and energies: ``force_slope`` (least squares of the file's force components on the
    foundation's, through 0), ``force_correlation``, RMS forces, mean energies per atom and their
    ratio."""
    from .analysis.predict import predict

    configs = [a for a in frames if not _is_isolated(a)]
    index = sorted(set(np.linspace(0, len(configs) - 1, min(n_frames, len(configs))).round().astype(int).tolist()))
    chosen = [configs[i] for i in index]
    pred = predict(model, chosen, "cpu", batch_size=n_frames)
    data = np.concatenate([a.arrays[FORCES_KEY].ravel() for a in chosen])
    model_f = np.concatenate([f.ravel() for f in pred.forces])
    denom = float(model_f @ model_f)
    n_atoms = np.array([len(a) for a in chosen])
    e_data = float(np.mean([a.info[ENERGY_KEY] for a in chosen] / n_atoms))
    e_model = float(np.mean(pred.energy / n_atoms))
    corr = float(np.corrcoef(data, model_f)[0, 1]) if data.std() > 0 and model_f.std() > 0 else 0.0
    return {"frames": [int(i) for i in index], "bond_ratio": bond_ratio(chosen),
            "force_slope": float(data @ model_f) / denom if denom > 0 else math.nan,
            "force_correlation": corr, "force_rms": float(np.sqrt(np.mean(data**2))),
            "force_rms_foundation": float(np.sqrt(np.mean(model_f**2))), "energy_per_atom": e_data,
            "energy_per_atom_foundation": e_model, "energy_ratio": e_data / e_model if e_model else math.nan}


def _outside(value: float | None, bounds: tuple[float, float] = SLOPE_RANGE) -> bool:
    return value is not None and not (bounds[0] <= value <= bounds[1])


def judge_units(stats: dict, declared: dict, where: str, foundation: str) -> tuple[str | None, list[str]]:
    """``(problem, notes)`` of :func:`compare_with_foundation`'s numbers (module docstring): the
    geometry decides the length unit, then the forces (at that length) the energy unit; the
    per-atom energies decide only where the forces cannot."""
    units = f"energy {declared['energy']}, length {declared['length']}"
    bench_entry = where.split(" (")[0].rsplit(".files.", 1)[0]
    file_entry = where.split(" (")[0]
    ratio = stats["energy_ratio"]
    energy_line = (f"per-atom energies {stats['energy_per_atom']:.4g} eV/atom against the foundation's "
                   f"{stats['energy_per_atom_foundation']:.4g} ({ratio:.3g}x)")
    energy_units = suggest_units("energy", ratio, declared, ENERGY_WITHIN) if ratio > 0 and _outside(ratio) else []
    energy_hint = (f"; that ratio is {energy_units[0]['energy']} read as {declared['energy']} "
                   f"({energy_units[0]['factor']:.4g}x)" if energy_units else "")
    off = f"If the units are right, set {bench_entry}.units.check: false."

    def fix(suggested: dict) -> str:
        pairs = ", ".join(f"{k}: {suggested[k]}" for k in ("energy", "length") if suggested[k] != declared[k])
        return f"set units: {{{pairs}}} in {bench_entry} (every file) or {file_entry} (this file)."

    bonds = stats.get("bond_ratio")
    if _outside(bonds, BOND_RANGE):
        lengths = suggest_units("length", bonds, declared, LENGTH_WITHIN)
        if lengths:
            suggested = {**declared, "length": lengths[0]["length"],
                         **({"energy": energy_units[0]["energy"]} if energy_units else {})}
            advice = f"They look like {lengths[0]['length']} ({lengths[0]['factor']:.4g}x): {fix(suggested)}"
        else:
            advice = "No length unit we know explains that factor."
        return (f"config entry {where}: read as {units}, its interatomic distances are {bonds:.3g}x the covalent "
                f"bond lengths (median nearest neighbour over {len(stats['frames'])} frames; about 1 in any bonded "
                f"structure): positions not in {declared['length']}. {advice} Also {energy_line}{energy_hint}. "
                f"{off}"), []
    forces_speak = stats["force_rms_foundation"] >= MIN_FORCE_RMS and stats["force_correlation"] >= MIN_CORRELATION
    if forces_speak and _outside(stats["force_slope"]):
        found = suggest_units("forces", stats["force_slope"], declared)
        if energy_units:  # the energies' unit first where it explains the forces too
            found.sort(key=lambda u: u["energy"] != energy_units[0]["energy"])
        looks = " or ".join(f"{u['energy']}/{u['length']} ({u['factor']:.4g}x)" for u in found[:2])
        advice = f"They look like {looks}: {fix(found[0])}" if found else "No energy unit we know explains that factor."
        return (f"config entry {where}: read as {units}, its forces are {stats['force_slope']:.4g}x those foundation "
                f"{foundation} predicts for {len(stats['frames'])} of its frames (least-squares slope, correlation "
                f"{stats['force_correlation']:.2f}; RMS {stats['force_rms']:.3g} against "
                f"{stats['force_rms_foundation']:.3g} eV/A): not eV/A. {advice} Also {energy_line}{energy_hint}. "
                f"{off}"), []
    if not forces_speak and energy_units:
        return (f"config entry {where}: read as {units}, its {energy_line}, the factor between "
                f"{declared['energy']} and {energy_units[0]['energy']}, and its forces cannot tell (RMS "
                f"{stats['force_rms_foundation']:.3g} eV/A from foundation {foundation}, correlation "
                f"{stats['force_correlation']:.2f}): {fix(energy_units[0])} {off}"), []
    notes = []
    if not forces_speak:
        notes.append(f"{where}: forces of foundation {foundation} too small or uncorrelated (RMS "
                     f"{stats['force_rms_foundation']:.3g} eV/A, correlation {stats['force_correlation']:.2f}) to "
                     "check units by")
    if ratio > 0 and _outside(ratio):
        notes.append(f"{where}: {energy_line}{energy_hint}; forces agree with the foundation (slope "
                     f"{stats['force_slope']:.3g}), so this is taken for another energy reference (all-electron, "
                     "pseudopotential), which the E0s absorb")
    return None, notes


def import_benchmark(spec: dict) -> dict:
    """Rule import_<b>: convert, check and write an own benchmark's files (module docstring);
    returns the summary. Nothing is written unless every file passes."""
    from ase.data import chemical_symbols

    from .analysis.predict import load_model
    from .convert import ConversionError, check_units
    from .io import write_atomic
    from .paper import e0_standin_rows, least_squares_e0s

    start = time.perf_counter()
    bench = spec["benchmark"]
    files = spec["files"]
    read = {name: _read(name, entry, spec["compute_stress"]) for name, entry in files.items()}
    data, isolated_rows = {}, {}
    for name, frames in read.items():
        if name == ISOLATED:
            continue
        data[name] = [a for a in frames if not _is_isolated(a)]
        isolated_rows[name] = [a for a in frames if _is_isolated(a)]
        if not data[name]:
            raise OwnDataError(f"config entry {files[name]['entry']} ({files[name]['path']}): no configuration "
                               f"(only {len(isolated_rows[name])} isolated-atom rows)")
    summary = {"benchmark": bench, "files": {}, "notes": [], "foundations": spec["foundations"]}

    # the isolated atoms: given, the data files' own rows, or least-squares stand-ins
    elements = {z for frames in data.values() for a in frames for z in a.numbers.tolist()}
    if ISOLATED in read:
        isolated = read[ISOLATED]
        source = f"config entry {files[ISOLATED]['entry']} ({files[ISOLATED]['path']})"
        summary["isolated_atoms"] = "given"
    else:
        rows = {}
        for name, frames in isolated_rows.items():
            for a in frames:
                rows.setdefault(int(a.numbers[0]), a)
        if rows and elements <= set(rows):
            isolated = [rows[z] for z in sorted(rows)]
            summary["isolated_atoms"] = "IsolatedAtom rows of the data files"
        else:
            fit = [a for name in spec["fit_files"] for a in data[name]]
            fitted = {z for a in fit for z in a.numbers.tolist()}
            for name, frames in data.items():
                for z, (first, count) in _first_frames(frames).items():
                    if z not in fitted:
                        raise OwnDataError(
                            f"config entry {files[name]['entry']} ({files[name]['path']}): frame {first} has element "
                            f"{chemical_symbols[z]} ({count} frames), which no training or validation file has, and "
                            f"benchmarks.{bench}.files has no isolated_atoms: no E0 can be had for it (give "
                            f"benchmarks.{bench}.files.isolated_atoms)")
            isolated = e0_standin_rows(least_squares_e0s(fit, f"benchmark {bench}"), f"own benchmark {bench}")
            summary["isolated_atoms"] = "least-squares stand-ins of the training and validation files"
            summary["notes"].append("no isolated-atom energies: the isolated atoms are least-squares per-element "
                                    "energies of the training and validation files (E0 mode isolated = average)")
        source = f"benchmarks.{bench}.files (no isolated_atoms file; {summary['isolated_atoms']})"
    iso_elements = {int(a.numbers[0]) for a in isolated}

    # every element known to every foundation and to the isolated atoms
    models = {}
    for found, path in spec["foundations"].items():
        models[found] = load_model(path, "cpu", spec["dtype"])
    for name, frames in data.items():
        where = f"config entry {files[name]['entry']} ({files[name]['path']})"
        first = _first_frames(frames)
        for found, model in models.items():
            known = {int(z) for z in model.atomic_numbers}
            for z in sorted(set(first) - known, key=lambda z: first[z][0]):
                raise OwnDataError(f"{where}: frame {first[z][0]} has element {chemical_symbols[z]} ({first[z][1]} "
                                   f"frames), which foundation {found} (foundations.{found}.path: "
                                   f"{spec['foundations'][found]}) lacks (its elements: {_symbols(known)})")
        for z in sorted(set(first) - iso_elements, key=lambda z: first[z][0]):
            raise OwnDataError(f"{where}: frame {first[z][0]} has element {chemical_symbols[z]} ({first[z][1]} "
                               f"frames), which the isolated atoms lack ({source} has {_symbols(iso_elements)})")

    # units: the foundation's zero-shot forces and energies, then the converter's bounds
    unit_model = models[spec["unit_foundation"]]
    for name, frames in data.items():
        entry = files[name]
        info = {"path": entry["path"], "frames": len(frames), "keys": entry["keys"], "units": entry["units"],
                "isolated_rows_removed": len(isolated_rows[name])}
        if entry["units"].get("check", True):
            stats = compare_with_foundation(frames, unit_model)
            problem, notes = judge_units(stats, entry["units"], entry["entry"] + f" ({entry['path']})",
                                         spec["unit_foundation"])
            if problem:
                raise OwnDataError(problem)
            info["foundation_check"] = {**stats, "foundation": spec["unit_foundation"]}
            summary["notes"] += notes
        try:
            check_units(frames, entry["path"])
        except ConversionError as err:
            raise OwnDataError(f"config entry {entry['entry']}: {err}") from None
        summary["files"][name] = info

    for name, frames in data.items():
        write_atomic(files[name]["output"], frames)
    write_atomic(spec["isolated_output"], isolated)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    for note in summary["notes"]:
        log.warning("%s", note)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlipft.own", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="convert and check an own benchmark's files (rule import_<benchmark>)")
    imp.add_argument("--spec", required=True, help="JSON of mlipft.own.import_spec")
    imp.add_argument("--summary", required=True, help="JSON summary to write (last, on success)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .io import write_json

    try:
        summary = import_benchmark(json.loads(args.spec))
    except OwnDataError as err:
        print(f"own benchmark not imported: {err}", file=sys.stderr)
        return 1
    write_json(args.summary, summary)
    log.info("benchmark %s imported: %s", summary["benchmark"], {k: v["frames"] for k, v in summary["files"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
