"""Torsion scans: relaxed dihedral scans with any ASE calculator, and a model's energy profile on them.

The paper tests transferability on torsion scans of drug-like molecules (SPICE benchmark). The
reference scans are *relaxed* scans at the target level (:func:`relaxed_scan`: at each angle the
geometry is relaxed with that dihedral fixed, ASE ``FixInternals`` and ``BFGS``; forward and
backward sweeps, the lower energy kept at each angle); the mini world builds them with xTB
(:func:`mlipft.mini.spice.torsion_scan`). Models are compared on them in one of two ways:

- single points (default; :func:`torsion_profiles`): the model's energy of each reference
  geometry, batched with :func:`mlipft.analysis.predict.predict`;
- model-relaxed (``--relax``; :func:`relaxed_profiles`, the paper's Fig. 9): each reference
  geometry relaxed with the model, its dihedral ``info['dihedral_atoms']`` fixed at
  ``info['angle_deg']`` (``FixInternals``, BFGS with max step 0.1 A to ``--fmax`` or
  ``--steps``, as :func:`relax`), then the model's energy of the relaxed geometry. One start
  per angle (the reference's geometry), no sweeps: the model's profile on the reference's path
  of minima. All frames relax in lock step (:func:`relax_together`) so that each round of
  model evaluations is one batch (:class:`ModelEvaluator`).

CLI::

    python -m mlipft.analysis.torsion --model M --scan torsions.xyz [--torsions NAME ...]
        [--relax [--fmax 0.05] [--steps 100]]
        [--device cpu|cuda|auto (cpu)] [--default-dtype float64] [--batch-size 32] [--head NAME]
        [--threads 1] --output torsion.csv

The scan frames carry their target angle in ``info['angle_deg']`` and the scan they belong to
in ``info['torsion']`` (frames without it form one scan named ``scan``). Columns of the CSV:
``torsion``, ``angle_deg``, ``source`` (``model``, and ``reference`` where every frame of the
scan has ``REF_energy``), ``energy_ev`` (total energy: with ``--relax`` the model's energy of
its relaxed geometry) and ``relative_energy_ev`` (against the lowest energy of that scan and
source), in the order of the frames, ``reference`` rows of a scan before its ``model`` rows.
``--relax`` adds, on ``model`` rows (empty on ``reference`` rows):

- ``single_point_energy_ev``: the model's energy of the unrelaxed reference geometry (the
  single-point mode's number; ``energy_ev`` minus it is what the relaxation gained);
- ``rmsd_to_reference_A``: RMSD of the relaxed from the reference geometry over all atoms after
  the best rigid superposition (:func:`aligned_rmsd`): large values (> 0.5 A) mean the model
  took the molecule to another conformer, or broke it;
- ``relax_steps``: BFGS steps taken;
- ``relax_status``: ``converged`` (largest constrained force below ``--fmax``), ``step_limit``
  (``--steps`` reached first) or ``constraint_failed`` (a step ``FixInternals`` could not
  follow, typically a model pulling the molecule apart; stopped at the last geometry);
- ``relax_fmax_ev_A``: the largest remaining force (eV/A, the constrained dihedral's
  component removed); tens of eV/A after ``--steps`` flag a model with a hole.

With ``--relax`` every frame needs ``info['dihedral_atoms']`` (four atom indices ``"i j k l"``),
checked before the model is loaded; an error names the file and the frame number.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

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


def relax_together(items: Sequence[tuple[Atoms, object]], make_calc: Callable[[], object], fmax: float,
                   steps: int, prefetch: Callable[[list[Atoms]], None] | None = None,
                   names: Sequence[str] | None = None) -> list[dict]:
    """:func:`relax` of many ``(atoms, constraint)`` pairs in lock step, each with its own
    ``make_calc()`` calculator: every round evaluates the structures still relaxing, then each
    takes its BFGS step (the same steps, convergence test and step count as :func:`relax`, which
    runs one structure through ``BFGS.run``). ``prefetch(atoms_list)``, when given, is called
    with the structures of a round before any is asked for its forces, and may fill their
    calculators' results in one batch (:meth:`ModelEvaluator.prefetch`): the reason for lock step.

    A step the constraint cannot follow (``FixInternals`` does not converge: :func:`relax` raises)
    ends that relaxation at its last geometry, status ``constraint_failed``, and is logged (with
    its entry of ``names``, default ``relaxation <index>``).

    Returns per pair a dict: ``atoms`` (relaxed, without calculator or constraint),
    ``start_energy`` and ``energy`` (eV, before and after), ``steps`` (BFGS steps taken),
    ``converged`` (reached ``fmax``), ``status`` (``converged``, ``step_limit`` or
    ``constraint_failed``) and ``fmax`` (largest remaining force, eV/A, constraint applied).
    """
    from ase.optimize import BFGS

    states = []
    for atoms, constraint in items:
        a = atoms.copy()
        a.set_constraint(constraint)
        a.calc = make_calc()
        opt = BFGS(a, logfile=None, maxstep=0.1)
        opt.fmax = fmax  # what BFGS.run sets; the convergence test reads it
        states.append({"atoms": a, "opt": opt, "converged": False, "done": False, "constraint_failed": False})
    active = list(states)
    while active:
        if prefetch is not None:
            prefetch([st["atoms"] for st in active])
        for st in active:
            a, opt = st["atoms"], st["opt"]
            if opt.nsteps == 0:
                st["start_energy"] = float(a.get_potential_energy())
            st["converged"] = bool(opt.converged())
            st["done"] = st["converged"] or opt.nsteps >= steps
        active = [st for st in active if not st["done"]]
        for st in active:
            try:
                st["opt"].step()
            except ValueError as err:  # the constraint cannot follow the step: stop at the last geometry
                if "FixInternals" not in str(err):
                    raise
                st["done"], st["constraint_failed"] = True, True
                n = states.index(st)
                log.warning("%s stopped after %d steps: %s", names[n] if names else f"relaxation {n}",
                            st["opt"].nsteps, err)
                continue
            st["opt"].nsteps += 1
        active = [st for st in active if not st["done"]]
    out = []
    for st in states:
        a = st["atoms"]
        energy = float(a.get_potential_energy())  # cached: evaluated in the last round
        left = float(np.sqrt((a.get_forces() ** 2).sum(axis=1)).max()) if len(a) else 0.0
        a.set_constraint()
        a.calc = None
        status = "converged" if st["converged"] else "constraint_failed" if st["constraint_failed"] else "step_limit"
        out.append({"atoms": a, "start_energy": st["start_energy"], "energy": energy,
                    "steps": int(st["opt"].nsteps), "converged": st["converged"], "status": status, "fmax": left})
    return out


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


def _scans(frames: list[Atoms], where: str, torsions: list[str] | None = None) -> dict[str, list[int]]:
    """Frame indices of each scan (``info['torsion']``), in file order; every frame needs an
    angle. ``torsions`` restricts to those scans (an error names the missing ones)."""
    groups: dict[str, list[int]] = {}
    for n, atoms in enumerate(frames):
        if "angle_deg" not in atoms.info:
            raise ValueError(f"{where}: frame {n} has no info['angle_deg'] (the scan's dihedral angle)")
        groups.setdefault(str(atoms.info.get("torsion", DEFAULT_SCAN)), []).append(n)
    if torsions is not None:
        missing = sorted(set(torsions) - set(groups))
        if missing:
            raise ValueError(f"{where}: no scan {missing} (available: {sorted(groups)})")
        groups = {t: groups[t] for t in torsions}
    return groups


def _reference(frames: list[Atoms], idx: list[int]) -> np.ndarray | None:
    """Reference energies of a scan's frames, or None unless every frame has one."""
    if all(ENERGY_KEY in frames[n].info for n in idx):
        return np.array([float(frames[n].info[ENERGY_KEY]) for n in idx])
    return None


def torsion_profiles(model, frames: list[Atoms], device: str = "cpu", batch_size: int | None = 32,
                     head: str | None = None, torsions: list[str] | None = None,
                     where: str = "scan frames") -> pd.DataFrame:
    """Model (and reference) energies of torsion-scan frames: the tidy frame of the module
    docstring. ``model`` is a loaded MACE model (:func:`mlipft.analysis.predict.load_model`);
    ``torsions`` restricts to those scans (all by default)."""
    from .predict import predict

    groups = _scans(frames, where, torsions)
    order = [n for idx in groups.values() for n in idx]
    energies = dict(zip(order, predict(model, [frames[n] for n in order], device, batch_size, head,
                                       compute_force=False).energy))
    parts = []
    for torsion, idx in groups.items():
        sources = {"model": np.array([energies[n] for n in idx])}
        reference = _reference(frames, idx)
        if reference is not None:
            sources = {"reference": reference, **sources}
        for source, values in sources.items():
            parts.append(pd.DataFrame({
                "torsion": torsion, "angle_deg": [float(frames[n].info["angle_deg"]) for n in idx],
                "source": source, "energy_ev": values, "relative_energy_ev": values - values.min(),
            }))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


# ----------------------------------------------------------------------------- model-relaxed scans
#: Columns the relaxed mode adds (empty on ``reference`` rows); see the module docstring.
RELAXED_COLUMNS = ["single_point_energy_ev", "rmsd_to_reference_A", "relax_steps", "relax_status",
                   "relax_fmax_ev_A"]


def dihedral_atoms(atoms: Atoms, n: int, where: str) -> tuple[int, int, int, int]:
    """The scanned dihedral ``(i, j, k, l)`` of frame ``n``, from ``info['dihedral_atoms']`` (four
    distinct atom indices of the frame, as an array or a string ``"i j k l"``)."""
    value = atoms.info.get("dihedral_atoms")
    if value is None:
        raise ValueError(f"{where}: frame {n} has no info['dihedral_atoms'] (the four atoms i j k l of the "
                         f"scanned dihedral; a model-relaxed scan fixes it)")
    try:
        items = value.split() if isinstance(value, str) else np.atleast_1d(value).tolist()
        idx = tuple(int(x) for x in items)
        if any(float(x) != int(x) for x in items):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{where}: frame {n}: info['dihedral_atoms'] = {value!r} is not four atom indices") from None
    if len(idx) != 4 or len(set(idx)) != 4 or not all(0 <= x < len(atoms) for x in idx):
        raise ValueError(f"{where}: frame {n}: info['dihedral_atoms'] = {value!r} must be four distinct atom "
                         f"indices of its {len(atoms)} atoms")
    return idx  # type: ignore[return-value]


def aligned_rmsd(atoms: Atoms, target: Atoms) -> float:
    """RMSD (A) of ``atoms`` from ``target`` over all atoms after the best rigid superposition
    (Kabsch; translation only for periodic structures)."""
    from ase.build import minimize_rotation_and_translation

    moved = atoms.copy()
    minimize_rotation_and_translation(target, moved)
    return float(np.sqrt(((moved.positions - target.positions) ** 2).sum(axis=1).mean()))


def relaxed_profiles(frames: list[Atoms], make_calc: Callable[[], object], fmax: float = 0.05, steps: int = 100,
                     torsions: list[str] | None = None, where: str = "scan frames",
                     prefetch: Callable[[list[Atoms]], None] | None = None) -> pd.DataFrame:
    """Model-relaxed torsion profiles: each frame's geometry relaxed with ``make_calc()`` (any ASE
    calculator) with its dihedral ``info['dihedral_atoms']`` fixed at ``info['angle_deg']``
    (``FixInternals``, BFGS to ``fmax`` eV/A or ``steps``: :func:`relax_together`, every frame
    in lock step so that ``prefetch`` can evaluate them in batches), then that calculator's energy
    of the relaxed geometry. Every frame is checked before any relaxation.

    Returns the tidy frame of the module docstring: :data:`COLUMNS` then :data:`RELAXED_COLUMNS`,
    ``reference`` rows (where the scan has ``REF_energy``) before ``model`` rows, scans in file order.
    """
    from ase.constraints import FixInternals

    groups = _scans(frames, where, torsions)
    order = [n for idx in groups.values() for n in idx]
    dihedrals = {n: dihedral_atoms(frames[n], n, where) for n in order}
    items = [(frames[n], FixInternals(dihedrals_deg=[[float(frames[n].info["angle_deg"]) % 360.0, list(dihedrals[n])]]))
             for n in order]
    names = [f"{where}: frame {n} ({frames[n].info.get('torsion', DEFAULT_SCAN)}, "
             f"{float(frames[n].info['angle_deg']):g} deg)" for n in order]
    results = dict(zip(order, relax_together(items, make_calc, fmax, steps, prefetch, names)))
    parts = []
    for torsion, idx in groups.items():
        model = pd.DataFrame([{
            "angle_deg": float(frames[n].info["angle_deg"]), "energy_ev": results[n]["energy"],
            "single_point_energy_ev": results[n]["start_energy"],
            "rmsd_to_reference_A": aligned_rmsd(results[n]["atoms"], frames[n]),
            "relax_steps": results[n]["steps"], "relax_status": results[n]["status"],
            "relax_fmax_ev_A": results[n]["fmax"]} for n in idx]).assign(torsion=torsion, source="model")
        model["relative_energy_ev"] = model.energy_ev - model.energy_ev.min()
        reference = _reference(frames, idx)
        if reference is not None:
            parts.append(pd.DataFrame({"torsion": torsion, "angle_deg": model.angle_deg, "source": "reference",
                                       "energy_ev": reference, "relative_energy_ev": reference - reference.min()}))
        parts.append(model)
    out = pd.concat(parts, ignore_index=True)[COLUMNS + RELAXED_COLUMNS]
    return out.astype({"relax_steps": "Int64"})


class ModelCalculator(Calculator):
    """An ASE calculator (energy, forces) around an already-loaded MACE model
    (:func:`mlipft.analysis.predict.load_model`) held by a :class:`ModelEvaluator`, evaluated with
    :func:`mlipft.analysis.predict.predict` through the evaluator's head: the numbers and head
    choice of the single-point mode, the model loaded once, no stress."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, evaluator: ModelEvaluator):
        super().__init__()
        self.evaluator = evaluator

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = self.evaluator.evaluate([self.atoms])[0]


class ModelEvaluator:
    """The model of the relaxed mode: ``evaluator()`` makes a :class:`ModelCalculator` (the
    ``make_calc`` of :func:`relaxed_profiles`) and :meth:`prefetch` evaluates the structures of a
    lock-step round in batches of ``batch_size`` and fills their calculators. On one core, the 72
    frames of the mini SPICE scans (9-22 atoms) relax in about half the time of one structure at a
    time through :class:`ModelCalculator`, and a quarter of mace's ``MACECalculator`` (which also
    computes stresses)."""

    def __init__(self, model, device: str = "cpu", head: str | None = None, batch_size: int | None = 32):
        from .predict import select_head

        self.model, self.device, self.head = model, device, select_head(model, head)
        self.batch_size = batch_size
        self.n_structures = 0
        self.n_batches = 0

    def __call__(self) -> ModelCalculator:
        return ModelCalculator(self)

    def evaluate(self, atoms_list: list[Atoms]) -> list[dict]:
        """ASE results (energy, free_energy, forces) of each structure."""
        from .predict import predict

        pred = predict(self.model, atoms_list, self.device, self.batch_size, head=self.head)
        self.n_structures += len(atoms_list)
        self.n_batches += -(-len(atoms_list) // (self.batch_size or max(len(atoms_list), 1)))
        return [{"energy": float(e), "free_energy": float(e), "forces": f} for e, f in zip(pred.energy, pred.forces)]

    def prefetch(self, atoms_list: list[Atoms]) -> None:
        """Evaluate every structure whose :class:`ModelCalculator` is out of date, in batches, and
        store the results in it as if it had computed them."""
        stale = [a for a in atoms_list
                 if isinstance(a.calc, ModelCalculator) and a.calc.calculation_required(a, ["energy", "forces"])]
        if not stale:
            return
        for a, results in zip(stale, self.evaluate(stale)):
            a.calc.atoms = a.copy()
            a.calc.results = results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.torsion", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MACE model (.model)")
    parser.add_argument("--scan", required=True, help="torsion-scan frames (extxyz, info['angle_deg'])")
    parser.add_argument("--torsions", nargs="+", help="scans to evaluate (info['torsion']; default: all)")
    parser.add_argument("--relax", action="store_true",
                        help="relax each frame with the model, its dihedral (info['dihedral_atoms']) fixed at "
                             "info['angle_deg'], before taking its energy (default: single points)")
    parser.add_argument("--fmax", type=float, default=0.05, help="--relax: force threshold (eV/A)")
    parser.add_argument("--steps", type=int, default=100, help="--relax: largest number of BFGS steps per frame")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--batch-size", type=int, default=32, help="single points: configurations per batch")
    parser.add_argument("--head", help="head of a multihead model (default: 'Default', else the last)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True, help="CSV to write")
    args = parser.parse_args(argv)
    if args.fmax <= 0 or args.steps < 0:
        parser.error(f"--fmax must be > 0 and --steps >= 0 (got {args.fmax}, {args.steps})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import time

    import torch

    from ..train import resolve_device
    from .predict import load_model

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    frames = read_configs(args.scan)
    if not frames:
        raise SystemExit(f"{args.scan}: no frames")
    if args.relax:  # every frame checked before the model is loaded
        groups = _scans(frames, str(args.scan), args.torsions)
        for n in (n for idx in groups.values() for n in idx):
            dihedral_atoms(frames[n], n, str(args.scan))
    model = load_model(args.model, device, args.default_dtype)
    start = time.perf_counter()
    if args.relax:
        from threadpoolctl import threadpool_limits

        evaluator = ModelEvaluator(model, device, args.head, args.batch_size)
        # BLAS on --threads too: BFGS diagonalises a small Hessian every step, and a multithreaded
        # BLAS next to torch's threads made that the bulk of the run (30 ms instead of 0.5 ms per step)
        with threadpool_limits(limits=args.threads, user_api="blas"):
            frame = relaxed_profiles(frames, evaluator, args.fmax, args.steps, args.torsions, where=str(args.scan),
                                     prefetch=evaluator.prefetch)
        model_rows = frame[frame.source == "model"]
        log.info("model-relaxed %d frames in %.1f s: %d structure evaluations in %d batches, %d of %d "
                 "relaxations converged (fmax %.3g eV/A, at most %d steps)", len(model_rows),
                 time.perf_counter() - start, evaluator.n_structures, evaluator.n_batches,
                 int((model_rows.relax_status == "converged").sum()), len(model_rows), args.fmax, args.steps)
    else:
        frame = torsion_profiles(model, frames, device, args.batch_size, args.head, args.torsions, where=str(args.scan))
    with atomic_path(args.output) as tmp:
        frame.to_csv(tmp, index=False)
    log.info("torsion profiles of %s on %s -> %s", args.model, args.scan, args.output)


__all__ = [
    "ModelCalculator",
    "ModelEvaluator",
    "aligned_rmsd",
    "dihedral_atoms",
    "relax",
    "relax_together",
    "relaxed_profiles",
    "relaxed_scan",
    "torsion_profiles",
]


if __name__ == "__main__":
    main()
