"""Nudged-elastic-band energy profiles (ASE NEB, climbing image) for models and references.

A model's profile for a reaction is computed between the *reference* end points (fixed), from
an IDPP interpolation, so that every model is compared on the same reactant and product; the
profile is reported against the normalised path length (the reaction coordinate).

The model's forces on every image come from one batched forward pass per NEB step
(:class:`BatchedMACE`, through :func:`mlipft.analysis.predict.predict`).

CLI::

    python -m mlipft.analysis.neb --model M --reference reference_neb.xyz --reactions Cl_Br ...
        [--n-images 5] [--fmax 0.05] [--steps 200] [--device cpu|cuda|auto (cpu)]
        [--default-dtype float64] [--threads 1] --output neb.csv
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from ..io import atomic_path, read_configs
from ..keys import ENERGY_KEY
from .predict import load_model, predict, select_head

log = logging.getLogger(__name__)


def neb_path(reactant: Atoms, product: Atoms, n_images: int, make_calc, fmax: float,
             steps: int) -> tuple[list[Atoms], list[float], bool]:
    """Climbing-image NEB (IDPP interpolation, FIRE) between fixed end points.

    ``make_calc(atoms)`` returns the calculator of one image. Returns the images (calculators
    detached), their energies (eV) and whether the band converged.
    """
    from ase.mep import NEB
    from ase.optimize import FIRE

    images = [reactant.copy() for _ in range(n_images + 1)] + [product.copy()]
    for atoms in images:
        atoms.calc = make_calc(atoms)
    neb = NEB(images, climb=True)
    neb.interpolate(method="idpp")
    converged = bool(FIRE(neb, logfile=None).run(fmax=fmax, steps=steps))
    energies = [float(a.get_potential_energy()) for a in images]
    out = []
    for atoms in images:
        a = atoms.copy()
        a.calc = None
        a.info.update(reactant.info)
        out.append(a)
    return out, energies, converged


def reaction_coordinate(images: list[Atoms]) -> np.ndarray:
    """Cumulative distance along the path, normalised to [0, 1]."""
    steps = [np.linalg.norm(b.positions - a.positions) for a, b in zip(images[:-1], images[1:])]
    path = np.concatenate([[0.0], np.cumsum(steps)])
    return path / path[-1] if path[-1] > 0 else path


def profile_frame(images: list[Atoms], energies: list[float], reaction: str, source: str,
                  converged: bool = True) -> pd.DataFrame:
    energies = np.asarray(energies)
    return pd.DataFrame({
        "reaction": reaction, "source": source, "image": np.arange(len(images)),
        "reaction_coordinate": reaction_coordinate(images),
        "energy_ev": energies - energies[0], "converged": converged,
    })


def reference_profiles(reference_file: str | Path, reactions: list[str] | None = None) -> dict[str, list[Atoms]]:
    """Reference NEB images grouped by ``info['reaction']`` in image order."""
    groups: dict[str, list[Atoms]] = {}
    for atoms in read_configs(reference_file):
        groups.setdefault(atoms.info["reaction"], []).append(atoms)
    if reactions:
        missing = sorted(set(reactions) - set(groups))
        if missing:
            raise ValueError(f"{reference_file}: no reference NEB for reactions {missing} "
                             f"(available: {sorted(groups)})")
        groups = {r: groups[r] for r in reactions}
    return {r: sorted(imgs, key=lambda a: a.info["image"]) for r, imgs in groups.items()}


class BatchedMACE:
    """Evaluates every NEB image in one batched MACE forward pass.

    ASE's NEB asks each image for its forces in turn; with one small molecule per call the cost
    is all overhead. Each image gets a light :meth:`calculator` proxy; the first proxy asked after
    the positions changed triggers one batch over all registered images, the others read the
    cached result.
    """

    def __init__(self, model_path: str, device: str = "cpu", default_dtype: str = "float64",
                 head: str | None = None):
        self.device = device
        self.model = load_model(model_path, device, default_dtype)
        self.head = select_head(self.model, head)
        self.images: list[Atoms] = []
        self._cache: list[tuple[np.ndarray, float, np.ndarray]] = []
        self.n_batches = 0

    def calculator(self, atoms: Atoms):
        from ase.calculators.calculator import Calculator, all_changes

        evaluator, index = self, len(self.images)
        self.images.append(atoms)

        class _Proxy(Calculator):
            implemented_properties = ["energy", "forces", "free_energy"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                energy, forces = evaluator.result(index)
                self.results = {"energy": energy, "free_energy": energy, "forces": forces}

        return _Proxy()

    def result(self, index: int) -> tuple[float, np.ndarray]:
        stale = len(self._cache) != len(self.images) or any(
            not np.array_equal(cached[0], atoms.positions) for cached, atoms in zip(self._cache, self.images))
        if stale:
            self._cache = self.evaluate(self.images)
        _, energy, forces = self._cache[index]
        return energy, forces

    def evaluate(self, atoms_list: list[Atoms]) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """(positions, energy, forces) of every image, all in one batch."""
        pred = predict(self.model, atoms_list, self.device, batch_size=None, head=self.head)
        self.n_batches += 1
        return [(a.positions.copy(), float(e), f) for a, e, f in zip(atoms_list, pred.energy, pred.forces)]


def model_profiles(model_path: str, reference_file: str, reactions: list[str], n_images: int,
                   fmax: float, steps: int, device: str = "cpu", default_dtype: str = "float64") -> pd.DataFrame:
    """Model NEB and reference profiles of each reaction, one tidy frame."""
    frames = []
    for reaction, ref in reference_profiles(reference_file, reactions).items():
        frames.append(profile_frame(ref, [a.info[ENERGY_KEY] for a in ref], reaction, "reference"))
        batched = BatchedMACE(model_path, device, default_dtype)
        images, energies, converged = neb_path(ref[0], ref[-1], n_images, batched.calculator, fmax, steps)
        if not converged:
            log.warning("model NEB of %s did not converge in %d steps", reaction, steps)
        frames.append(profile_frame(images, energies, reaction, "model", converged))
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> None:
    from .. import allocator

    allocator.tune()  # no page faults on every batch (mlipft.allocator)
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.neb",
                                     description="NEB profiles of a MACE model against reference paths")
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True, help="reference NEB images (extxyz)")
    parser.add_argument("--reactions", nargs="+", required=True)
    parser.add_argument("--n-images", type=int, default=5)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    from ..train import resolve_device

    torch.set_num_threads(args.threads)
    frame = model_profiles(args.model, args.reference, args.reactions, args.n_images, args.fmax,
                           args.steps, resolve_device(args.device), args.default_dtype)
    with atomic_path(args.output) as tmp:
        frame.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
