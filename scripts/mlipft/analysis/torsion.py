"""Torsion scans: relaxed dihedral scans with any ASE calculator, and a model's energy profile on them.

The paper tests transferability on torsion scans of drug-like molecules (SPICE benchmark). The
reference scans are *relaxed* scans at the target level (:func:`relaxed_scan`: at each angle the
geometry is relaxed with that dihedral fixed, ASE ``FixInternals`` and ``BFGS``; forward and
backward sweeps, the lower energy kept at each angle); the mini world builds them with xTB
(:func:`mlipft.mini.spice.torsion_scan`). Models are compared on these fixed geometries, by
single points (:func:`torsion_profiles`, batched with :func:`mlipft.analysis.predict.predict`).

CLI::

    python -m mlipft.analysis.torsion --model M --scan torsions.xyz [--torsions NAME ...]
        [--device cpu|cuda|auto (cpu)] [--default-dtype float64] [--batch-size 32] [--head NAME]
        [--threads 1] --output torsion.csv

The scan frames carry their target angle in ``info['angle_deg']`` and the scan they belong to
in ``info['torsion']`` (frames without it form one scan named ``scan``). Columns of the CSV:
``torsion``, ``angle_deg``, ``source`` (``model``, and ``reference`` where every frame of the
scan has ``REF_energy``), ``energy_ev`` (total energy) and ``relative_energy_ev`` (against the
lowest energy of that scan and source), in the order of the frames.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from ase import Atoms

from ..io import atomic_path, read_configs
from ..keys import ENERGY_KEY

log = logging.getLogger(__name__)

COLUMNS = ["torsion", "angle_deg", "source", "energy_ev", "relative_energy_ev"]
DEFAULT_SCAN = "scan"


def relax(atoms: Atoms, make_calc: Callable[[], object], fmax: float, steps: int, constraint=None) -> Atoms:
    """A relaxed copy of ``atoms`` (BFGS, max step 0.1 A, to ``fmax`` or ``steps``) with a fresh
    calculator ``make_calc()`` and an optional constraint; returned without calculator or
    constraint."""
    from ase.optimize import BFGS

    a = atoms.copy()
    a.set_constraint(constraint)
    a.calc = make_calc()
    BFGS(a, logfile=None, maxstep=0.1).run(fmax=fmax, steps=steps)
    a.set_constraint()
    a.calc = None
    return a


def relaxed_scan(start: Atoms, dihedral: Sequence[int], moving: Sequence[int], angles: Sequence[float],
                 make_calc: Callable[[], object], fmax: float, steps: int) -> tuple[list[Atoms], list[float]]:
    """Relaxed scan of the dihedral ``(i, j, k, l)`` over ``angles`` (degrees) from ``start``.

    At each angle the previous relaxed geometry is rotated about the j-k bond (the atoms
    ``moving``, the l side of the bond, move) and relaxed with the dihedral fixed
    (:func:`relax` with ``FixInternals``); its energy is a single point with a fresh
    ``make_calc()``. The sweep runs forward over ``angles``, then backward from its end, and
    the lower energy is kept at each angle (a relaxed scan can jump between basins; two
    directions remove most of that hysteresis). Returns the kept geometries (without
    calculator) and their energies (eV), in the order of ``angles``.
    """
    from ase.constraints import FixInternals

    i, j, k, l = (int(x) for x in dihedral)

    def relax_at(geometry: Atoms, angle: float) -> tuple[Atoms, float]:
        guess = geometry.copy()
        guess.set_dihedral(i, j, k, l, angle % 360.0, indices=list(moving))
        fix = FixInternals(dihedrals_deg=[[float(angle % 360.0), [i, j, k, l]]])
        relaxed = relax(guess, make_calc, fmax, steps, constraint=fix)
        relaxed.calc = make_calc()
        energy = relaxed.get_potential_energy()
        relaxed.calc = None
        return relaxed, energy

    current = start
    forward = []
    for angle in angles:
        current, energy = relax_at(current, angle)
        forward.append((current, energy))
    best = list(forward)
    for n in range(len(angles) - 1, -1, -1):
        current, energy = relax_at(current, angles[n])
        if energy < best[n][1] - 1e-6:
            best[n] = (current, energy)
    return [a for a, _ in best], [e for _, e in best]


def _scans(frames: list[Atoms], where: str) -> dict[str, list[int]]:
    """Frame indices of each scan (``info['torsion']``), in file order; every frame needs an angle."""
    groups: dict[str, list[int]] = {}
    for n, atoms in enumerate(frames):
        if "angle_deg" not in atoms.info:
            raise ValueError(f"{where}: frame {n} has no info['angle_deg'] (the scan's dihedral angle)")
        groups.setdefault(str(atoms.info.get("torsion", DEFAULT_SCAN)), []).append(n)
    return groups


def torsion_profiles(model, frames: list[Atoms], device: str = "cpu", batch_size: int | None = 32,
                     head: str | None = None, torsions: list[str] | None = None,
                     where: str = "scan frames") -> pd.DataFrame:
    """Model (and reference) energies of torsion-scan frames: the tidy frame of the module
    docstring. ``model`` is a loaded MACE model (:func:`mlipft.analysis.predict.load_model`);
    ``torsions`` restricts to those scans (all by default)."""
    from .predict import predict

    groups = _scans(frames, where)
    if torsions is not None:
        missing = sorted(set(torsions) - set(groups))
        if missing:
            raise ValueError(f"{where}: no scan {missing} (available: {sorted(groups)})")
        groups = {t: groups[t] for t in torsions}
    order = [n for idx in groups.values() for n in idx]
    energies = dict(zip(order, predict(model, [frames[n] for n in order], device, batch_size, head,
                                       compute_force=False).energy))
    parts = []
    for torsion, idx in groups.items():
        sources = {"model": np.array([energies[n] for n in idx])}
        if all(ENERGY_KEY in frames[n].info for n in idx):
            sources = {"reference": np.array([float(frames[n].info[ENERGY_KEY]) for n in idx]), **sources}
        for source, values in sources.items():
            parts.append(pd.DataFrame({
                "torsion": torsion, "angle_deg": [float(frames[n].info["angle_deg"]) for n in idx],
                "source": source, "energy_ev": values, "relative_energy_ev": values - values.min(),
            }))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.torsion", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MACE model (.model)")
    parser.add_argument("--scan", required=True, help="torsion-scan frames (extxyz, info['angle_deg'])")
    parser.add_argument("--torsions", nargs="+", help="scans to evaluate (info['torsion']; default: all)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head", help="head of a multihead model (default: 'Default', else the last)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True, help="CSV to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    from ..train import resolve_device
    from .predict import load_model

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    frames = read_configs(args.scan)
    if not frames:
        raise SystemExit(f"{args.scan}: no frames")
    model = load_model(args.model, device, args.default_dtype)
    frame = torsion_profiles(model, frames, device, args.batch_size, args.head, args.torsions, where=str(args.scan))
    with atomic_path(args.output) as tmp:
        frame.to_csv(tmp, index=False)
    log.info("torsion profiles of %s on %s -> %s", args.model, args.scan, args.output)


__all__ = ["relax", "relaxed_scan", "torsion_profiles"]


if __name__ == "__main__":
    main()
