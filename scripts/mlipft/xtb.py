"""Electronic-structure labels for the mini world, from tblite's GFN-xTB methods.

Two levels play the two roles of the paper:
- the *foundation level* (GFN1-xTB) stands for PBE / the OMat24 and MPtrj labels;
- the *target level* (GFN2-xTB) stands for MP2, revPBE-D3, wB97M-D3BJ.

A configuration's total charge and spin multiplicity are read from ``atoms.info['charge']``
and ``atoms.info['multiplicity']`` (defaults 0 and the lowest spin state).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .keys import CONFIG_TYPE_KEY, ENERGY_KEY, FORCES_KEY, ISOLATED_ATOM, STRESS_KEY

LEVELS = {"foundation": "GFN1-xTB", "target": "GFN2-xTB"}
METHODS = ("GFN1-xTB", "GFN2-xTB")

# Ground-state spin multiplicities of the free atoms (Hund's rule).
ATOM_MULTIPLICITY = {
    "H": 2, "Li": 2, "C": 3, "N": 4, "O": 3, "F": 2,
    "Na": 2, "P": 4, "S": 3, "Cl": 2, "Br": 2,
}

log = logging.getLogger(__name__)


class LabellingError(RuntimeError):
    """A configuration could not be labelled (SCF failure); carries its index."""


def method_for(level_or_method: str) -> str:
    """Map ``foundation``/``target`` or a method name to a tblite method name."""
    if level_or_method in LEVELS:
        return LEVELS[level_or_method]
    if level_or_method in METHODS:
        return level_or_method
    raise ValueError(
        f"unknown level of theory {level_or_method!r}; expected one of "
        f"{sorted(LEVELS)} or {list(METHODS)}"
    )


def calculator(method: str, charge: int = 0, multiplicity: int = 1, electronic_temperature: float = 300.0):
    """A tblite ASE calculator, silent."""
    from tblite.ase import TBLite

    return TBLite(
        method=method_for(method),
        charge=charge,
        multiplicity=multiplicity,
        electronic_temperature=electronic_temperature,
        verbosity=0,
    )


def _default_multiplicity(atoms: Atoms, charge: int) -> int:
    n_electrons = int(sum(atoms.numbers)) - charge
    return 1 if n_electrons % 2 == 0 else 2


def label(
    configs: Iterable[Atoms],
    method: str,
    compute_stress: bool | None = None,
    skip_failed: bool = False,
) -> list[Atoms]:
    """Label configurations with energy, forces (and stress for periodic cells).

    Returns copies carrying ``REF_energy`` (eV), ``REF_forces`` (eV/A), ``REF_stress``
    (eV/A^3, periodic cells only unless ``compute_stress`` says otherwise) and
    ``info['level'] = method``. The input objects are not modified.
    """
    method = method_for(method)
    out: list[Atoms] = []
    for index, atoms in enumerate(configs):
        charge = int(atoms.info.get("charge", 0))
        multiplicity = int(atoms.info.get("multiplicity", _default_multiplicity(atoms, charge)))
        labelled = atoms.copy()
        labelled.calc = calculator(method, charge, multiplicity)
        want_stress = bool(labelled.pbc.all()) if compute_stress is None else compute_stress
        try:
            energy = labelled.get_potential_energy()
            forces = labelled.get_forces()
            stress = labelled.get_stress(voigt=False) if want_stress else None
        except Exception as err:  # tblite raises a bare RuntimeError on SCF failure
            if skip_failed:
                log.warning("skipping configuration %d: %s", index, err)
                continue
            raise LabellingError(f"configuration {index} ({atoms.get_chemical_formula()}): {err}") from err
        labelled.calc = None
        labelled.info[ENERGY_KEY] = float(energy)
        labelled.arrays[FORCES_KEY] = np.asarray(forces, dtype=float)
        if stress is not None:
            labelled.info[STRESS_KEY] = np.asarray(stress, dtype=float).reshape(3, 3)
        labelled.info["level"] = method
        out.append(labelled)
    return out


def isolated_atoms(elements: Iterable[str], method: str) -> list[Atoms]:
    """Isolated-atom rows (``config_type=IsolatedAtom``) in their ground spin state."""
    rows = []
    for symbol in sorted(set(elements), key=lambda s: atomic_numbers[s]):
        atom = Atoms(symbol, positions=[[0.0, 0.0, 0.0]], pbc=False)
        atom.info["multiplicity"] = ATOM_MULTIPLICITY.get(symbol, _default_multiplicity(atom, 0))
        atom.info[CONFIG_TYPE_KEY] = ISOLATED_ATOM
        rows.append(atom)
    labelled = label(rows, method, compute_stress=False)
    for atom in labelled:
        atom.arrays[FORCES_KEY][:] = 0.0  # exactly zero by symmetry; remove SCF noise
    return labelled


def isolated_atom_energies(elements: Iterable[str], method: str) -> dict[str, float]:
    """``{symbol: E0 in eV}`` from :func:`isolated_atoms`."""
    return {a.get_chemical_symbols()[0]: a.info[ENERGY_KEY] for a in isolated_atoms(elements, method)}
