"""E0 (isolated-atom reference energy) fitting: one JSON per (training set, foundation).

The paper compares E0 initialisations (facts.md sections 1-3). For a training set and a
foundation model this module computes every mode with mace-torch's own code and writes them
side by side, so that each fine-tune receives an explicit ``--E0s`` dictionary:

- ``average``: least squares of total energies on element counts
  (``mace.data.utils.compute_average_E0s``);
- ``estimated``: model-aware, the foundation's E0s plus per-element corrections fitted to its
  residuals on the training set (``mace.data.estimate_e0s_from_foundation``);
- ``foundation``: the foundation's own E0s (its level of theory, not the target's);
- ``isolated``: isolated-atom energies at the target level, where the data has them.

Elements absent from the training set (a small training subset, e.g. 1 % of SN2 with no Cl,
while mace's element table is that of the training and validation sets) have no data to fit an
E0 on. Their ``average`` E0 is the isolated-atom energy at the target level (a least-squares fit
has nothing else at the target level). Their ``estimated`` E0 is chosen by ``fill``
(:data:`FILLS`): ``foundation`` (default; what mace's ``estimate_e0s_from_foundation`` leaves
for an element it has no data on) the foundation's own E0, with no correction; ``isolated`` the
target-level isolated-atom energy; or ``refuse``, an error naming the training set and the
elements (for any mode). Neither fill is right in general: the foundation's E0 carries no
level-of-theory correction (at 1 % of the mini SN2 set, with no Cl, this fill cost 2,150
meV/atom), while an isolated-atom energy is not on the footing of E0s fitted to a model's residuals
(at 1 % of the smoke SN2 set it gave 485 meV/atom test energy RMSE after fine-tuning, against
118 with the foundation's). The JSON says which elements were filled and how (``filled``:
``{mode: {element: source}}``).

It also records the *initial* energy error (meV/atom) a fine-tune would start from with each
mode: foundation interaction energy + that mode's E0s against the reference. The paper's rule of
thumb: above 500 meV/atom signals an E0 mismatch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from .io import path_list, read_configs, write_json
from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, ISOLATED_ATOM

log = logging.getLogger(__name__)
MISMATCH_MEV_PER_ATOM = 500.0
#: What an element absent from the training set gets as its estimated E0 (module docstring).
FILLS = ("foundation", "isolated", "refuse")


def isolated_from_file(path: str | Path) -> dict[int, float]:
    """``{Z: E}`` from rows with ``config_type=IsolatedAtom`` (one atom each)."""
    out = {}
    for atoms in read_configs(path):
        if atoms.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM:
            continue
        if len(atoms) != 1:
            raise ValueError(f"{path}: an IsolatedAtom row has {len(atoms)} atoms")
        out[int(atoms.numbers[0])] = float(atoms.info[ENERGY_KEY])
    return out


def _mace_configs(path: str | Path):
    from mace.data.utils import KeySpecification, load_from_xyz

    keyspec = KeySpecification(info_keys={"energy": ENERGY_KEY, "stress": "REF_stress", "head": "head"},
                               arrays_keys={"forces": "REF_forces"})
    _, configs = load_from_xyz(str(path), keyspec, extract_atomic_energies=False)
    return configs


def foundation_e0s(model) -> dict[int, float]:
    """The E0s stored in a MACE model (first head when it has several)."""
    energies = model.atomic_energies_fn.atomic_energies.detach().cpu().numpy()
    if energies.ndim == 2:
        energies = energies[0]
    return {int(z): float(e) for z, e in zip(model.atomic_numbers.tolist(), energies)}


def fit(train_file: str | Path, foundation_model: str | Path | None = None,
        isolated_file: str | Path | None = None, device: str = "cpu",
        default_dtype: str = "float64", elements: list[str] | None = None, fill: str = "foundation") -> dict:
    """Compute every available E0 mode for the elements of ``train_file``.

    ``elements`` (symbols) extends the table beyond the training set's own elements (the
    validation set's, which mace's element table includes). The ``average`` E0 of an element
    absent from the training set is its isolated-atom energy (``isolated_file`` is then
    required); its ``estimated`` E0 comes from ``fill`` (:data:`FILLS`: the foundation's E0, the
    isolated-atom energy, or an error for any mode), recorded under ``filled``."""
    if fill not in FILLS:
        raise ValueError(f"E0 fill {fill!r} is not one of {FILLS}")
    from mace.data.utils import compute_average_E0s, estimate_e0s_from_foundation
    from mace.tools import torch_tools
    from mace.tools.utils import AtomicNumberTable

    torch_tools.set_default_dtype(default_dtype)
    configs = [c for f in path_list(train_file) for c in _mace_configs(f) if c.properties.get("energy") is not None]
    if not configs:
        raise ValueError(f"{train_file}: no configuration with {ENERGY_KEY}")
    present = sorted({int(z) for c in configs for z in c.atomic_numbers})
    extra = sorted({atomic_numbers[s] for s in (elements or [])} - set(present))
    zs = sorted(set(present) | set(extra))
    z_table = AtomicNumberTable(present)
    modes: dict[str, dict[int, float] | None] = {
        "average": {int(z): float(e) for z, e in compute_average_E0s(configs, z_table).items()},
        "isolated": None, "foundation": None, "estimated": None,
    }
    absent = [chemical_symbols[z] for z in extra]
    if extra and fill == "refuse":
        raise ValueError(f"{train_file} has no configuration with {absent}, which the run needs (its validation "
                         "set has them): no E0 can be fitted for them and the E0 fill is 'refuse' (e0_fill in "
                         "the config: isolated or foundation fill them)")
    if extra and isolated_file is None:
        raise ValueError(f"{train_file} lacks {absent}: filling their E0s with isolated-atom energies needs an "
                         "isolated-atom file")
    if isolated_file is not None:
        iso = isolated_from_file(isolated_file)
        missing = [chemical_symbols[z] for z in zs if z not in iso]
        if missing:
            raise ValueError(f"{isolated_file}: no IsolatedAtom row for {missing}")
        modes["isolated"] = {z: iso[z] for z in zs}
    fill_values: dict[int, float] = {}  # the estimated E0s of absent elements
    if extra and fill == "isolated":
        fill_values = {z: modes["isolated"][z] for z in extra}
    initial = {}
    if foundation_model is not None:
        # in the run's dtype, as mace_run_train gets it (mlipft.train.foundation_in_dtype)
        from .analysis.predict import load_model

        model = load_model(foundation_model, device, default_dtype)
        found = foundation_e0s(model)
        missing = [z for z in zs if z not in found]
        if missing:
            raise ValueError(f"foundation {foundation_model} has no E0s for {[chemical_symbols[z] for z in missing]}"
                             f" (it cannot be fine-tuned on them): {_first_frames(train_file, missing)}")
        modes["foundation"] = {z: found[z] for z in zs}
        if extra and fill == "foundation":
            fill_values = {z: found[z] for z in extra}
        estimated = estimate_e0s_from_foundation(model, found, configs, z_table, device=device)
        modes["estimated"] = {z: float(estimated[z]) if z in present else fill_values[z] for z in zs}
    filled = {}
    if extra:
        for z in extra:
            modes["average"][z] = modes["isolated"][z]
        filled["average"] = {chemical_symbols[z]: "isolated" for z in extra}
        if modes["estimated"] is not None:
            filled["estimated"] = {chemical_symbols[z]: fill for z in extra}
        log.warning("%s has no %s: their average E0s are the isolated-atom energies%s", train_file, absent,
                    f", their estimated E0s the {'foundation' if fill == 'foundation' else 'isolated-atom'} ones"
                    if "estimated" in filled else "")
    if foundation_model is not None:
        initial = initial_errors(model, configs, modes, found, device)
    for mode, values in initial.items():
        if values > MISMATCH_MEV_PER_ATOM:
            log.warning("E0 mode %s starts %.0f meV/atom off (> %.0f): E0 mismatch", mode, values,
                        MISMATCH_MEV_PER_ATOM)
    return {
        "train_file": str(train_file),
        "foundation_model": None if foundation_model is None else str(foundation_model),
        "elements": [chemical_symbols[z] for z in zs],
        "filled": filled,
        "modes": {m: (None if v is None else {str(z): e for z, e in v.items()}) for m, v in modes.items()},
        "initial_energy_rmse_mev_per_atom": initial,
    }


def _first_frames(train_file, zs: list[int]) -> str:
    """Where each element first occurs in the training file(s), for a message: ``element Si:
    train.xyz frame 6`` (or that only the covered validation elements have it)."""
    first: dict[int, str] = {}
    for path in path_list(train_file):
        for i, atoms in enumerate(read_configs(path)):
            for z in set(atoms.numbers.tolist()) & set(zs) - set(first):
                first[z] = f"{path} frame {i}"
    return "; ".join(f"element {chemical_symbols[z]}: " + first.get(z, "not in the training file, asked for by "
                                                                       "--elements/--cover (the validation set)")
                     for z in zs)


def initial_errors(model, configs, modes, found: dict[int, float], device: str) -> dict[str, float]:
    """Energy RMSE (meV/atom) of the foundation with each mode's E0s swapped in, before training.

    The foundation is evaluated through its first head, the head whose E0s :func:`foundation_e0s`
    reads (``configs``: mace ``Configuration`` objects of mace's own loader)."""
    from .analysis.predict import model_heads, predict

    predicted = predict(model, configs, device, batch_size=32, head=model_heads(model)[0],
                        compute_force=False).energy
    reference = np.array([c.properties["energy"] for c in configs])
    counts = [np.bincount(c.atomic_numbers, minlength=119) for c in configs]
    n_atoms = np.array([len(c.atomic_numbers) for c in configs])
    base = np.array([sum(found[z] * n[z] for z in found if z < len(n)) for n in counts])
    errors = {}
    for mode, e0 in modes.items():
        if e0 is None:
            continue
        shifted = predicted - base + np.array([sum(e0[z] * n[z] for z in e0) for n in counts])
        errors[mode] = float(1000.0 * np.sqrt(np.mean(((shifted - reference) / n_atoms) ** 2)))
    return errors


def e0s_for_mode(e0_json: dict, mode: str, where: str = "") -> dict[int, float]:
    """The ``{Z: E0}`` of one mode from a JSON written by :func:`fit`."""
    values = e0_json["modes"].get(mode)
    if values is None:
        raise ValueError(f"{where or 'E0 file'}: E0 mode {mode!r} is not available "
                         f"(available: {[m for m, v in e0_json['modes'].items() if v]})")
    return {int(z): float(e) for z, e in values.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, nargs="+",
                        help="training set (extxyz, REF_energy); several files are fitted as one set")
    parser.add_argument("--foundation", help="foundation model (.model); omit for none")
    parser.add_argument("--isolated", help="extxyz with IsolatedAtom rows at the target level")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda when torch sees a GPU)")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--elements", nargs="+", help="element symbols to cover even when the training "
                        "set lacks them (average E0 = isolated-atom energy)")
    parser.add_argument("--cover", nargs="+", metavar="XYZ",
                        help="also cover every element of these files (the run's validation set): mace's element "
                        "table is that of the training and validation sets, and a small training fraction can "
                        "lack one of them (E0s from --isolated, see --elements)")
    parser.add_argument("--fill", choices=FILLS, default="foundation",
                        help="estimated E0 of an element absent from the training set (module docstring; default "
                        "foundation)")
    parser.add_argument("--output", required=True, help="JSON to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from .train import resolve_device

    elements = list(args.elements or [])
    for path in args.cover or []:
        elements += sorted({s for a in read_configs(path) if a.info.get(CONFIG_TYPE_KEY) != ISOLATED_ATOM
                            for s in a.get_chemical_symbols()})
    result = fit(args.train if len(args.train) > 1 else args.train[0], args.foundation, args.isolated,
                 resolve_device(args.device), args.default_dtype, sorted(set(elements)) or None, args.fill)
    write_json(args.output, result)
    log.info("E0s for %s -> %s: initial errors %s", args.train, args.output,
             result["initial_energy_rmse_mev_per_atom"])


if __name__ == "__main__":
    main()
