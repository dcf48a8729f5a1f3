"""Conventions shared by every dataset the workflow writes (extxyz, eV, Angstrom)."""

ENERGY_KEY = "REF_energy"  # total energy, eV
FORCES_KEY = "REF_forces"  # eV / Angstrom, per atom
STRESS_KEY = "REF_stress"  # eV / Angstrom^3, Voigt-6 or 3x3 (ASE convention)
CONFIG_TYPE_KEY = "config_type"
ISOLATED_ATOM = "IsolatedAtom"  # mace-torch's config_type for isolated-atom rows
PRED_PREFIX = "MACE_"  # prefix mace_eval_configs gives predictions

HARTREE_TO_EV = 27.211386245988  # CODATA 2018
BOHR_TO_ANGSTROM = 0.529177210903  # CODATA 2018
