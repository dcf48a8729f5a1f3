"""Langevin NVT molecular dynamics with any ASE calculator (a MACE model, or xTB for references).

The paper runs MD with each fine-tuned model and compares the liquid structure (RDFs,
:mod:`mlipft.analysis.rdf`) with the reference. Model and reference MD must follow one
protocol; :func:`langevin_md` is that protocol (ASE's ``Langevin``, thermostat noise and initial
velocities drawn from one ``numpy`` generator, so a run is reproducible from its seed), used by
the mini world's reference MD (:mod:`mlipft.mini.nacl`, :mod:`mlipft.mini.ice`,
:mod:`mlipft.mini.spice`) and by the command line below for models.

CLI::

    python -m mlipft.analysis.md --model model.model --start md_start.xyz [--temperature K]
        [--timestep FS] [--friction PER_FS] --steps N [--record-every 1] [--seed 0]
        [--device cpu|cuda|auto (cpu)] [--default-dtype float64] [--head NAME] [--threads 1]
        [--thermalize] --output traj.extxyz

The model drives the dynamics through mace's ``MACECalculator``. ``--temperature``,
``--timestep`` and ``--friction`` default to the ``md_temperature_K``, ``md_timestep_fs`` and
``md_friction_per_fs`` of the start frame's info (the protocol the mini world's
``md_start.xyz`` carries); the start frame's masses (e.g. deuterium) are used, and its momenta
are kept when it has any (``--thermalize``, or a start without momenta: Maxwell-Boltzmann
velocities drawn from ``--seed``). Every ``--record-every``-th step is written with the start
frame's info (less its ``REF_`` labels) plus ``step``, ``time_fs`` and ``model_energy`` (eV).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import numpy as np
from ase import Atoms, units

from ..io import read_configs, write_atomic
from ..keys import ENERGY_KEY, FORCES_KEY, STRESS_KEY

log = logging.getLogger(__name__)


def langevin_md(
    atoms: Atoms,
    calc,
    n_steps: int,
    *,
    temperature_K: float,
    timestep_fs: float,
    friction_per_fs: float,
    rng: np.random.Generator,
    record_every: int = 1,
    init_velocities: bool = True,
    snapshot: Callable[[Atoms], Atoms] | None = None,
) -> list[Atoms]:
    """Run Langevin NVT MD in place on ``atoms`` and return the recorded frames.

    ``calc`` drives the dynamics (any ASE calculator: tblite, or a MACE model for model MD).
    Frames are taken every ``record_every`` steps (after the step): ``snapshot(atoms)`` when
    given (e.g. a copy carrying the calculator's results as labels), else a copy without
    calculator. ``init_velocities`` draws Maxwell-Boltzmann velocities from ``rng``; otherwise
    the momenta in ``atoms`` are kept. The thermostat noise is drawn from ``rng`` too
    (deterministic). Each frame has ``info['step']`` (1-based step of this call).
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms.calc = calc
    if init_velocities:
        thermalize_momenta(atoms, temperature_K, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames: list[Atoms] = []

    def record():
        step = dyn.nsteps  # ASE also calls observers before the first step (nsteps = 0): skip it
        if step > 0 and step % 100 == 0:
            log.info("MD step %d of %d", step, n_steps)
        if step > 0 and step % record_every == 0:
            if snapshot is not None:
                frame = snapshot(atoms)
            else:
                frame = atoms.copy()
                frame.calc = None
            frame.info["step"] = int(step)
            frames.append(frame)

    dyn.attach(record, interval=1)
    if n_steps > 0:
        dyn.run(n_steps)
    return frames


def model_md(model_path: str, start: Atoms, n_steps: int, *, temperature_K: float, timestep_fs: float,
             friction_per_fs: float, seed: int, record_every: int = 1, thermalize: bool = False,
             device: str = "cpu", default_dtype: str = "float64", head: str | None = None) -> list[Atoms]:
    """:func:`langevin_md` of a MACE model (``MACECalculator``) from ``start`` (not modified).

    The start's momenta are kept unless it has none or ``thermalize``. Frames carry the start's
    info (less its reference labels) plus ``step``, ``time_fs`` and ``model_energy`` (eV)."""
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device=device, default_dtype=default_dtype,
                          **({"head": head} if head is not None else {}))
    atoms = start.copy()
    for key in (ENERGY_KEY, STRESS_KEY):  # the start's labels are not those of the frames
        atoms.info.pop(key, None)
    atoms.arrays.pop(FORCES_KEY, None)
    init_velocities = thermalize or not atoms.get_momenta().any()

    def snapshot(a: Atoms) -> Atoms:
        frame = a.copy()
        frame.info["model_energy"] = float(a.get_potential_energy())
        frame.calc = None
        return frame

    frames = langevin_md(atoms, calc, n_steps, temperature_K=temperature_K, timestep_fs=timestep_fs,
                         friction_per_fs=friction_per_fs, rng=np.random.default_rng(seed),
                         record_every=record_every, init_velocities=init_velocities, snapshot=snapshot)
    for frame in frames:
        frame.info["time_fs"] = frame.info["step"] * timestep_fs
    return frames


def _protocol(start: Atoms, value, key: str, option: str, where: str) -> float:
    if value is not None:
        return float(value)
    if key not in start.info:
        raise SystemExit(f"{where}: give {option} (the start frame has no info['{key}'])")
    return float(start.info[key])


def main(argv=None) -> None:
    from .. import allocator

    allocator.tune()  # no page faults on every batch (mlipft.allocator)
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.md", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MACE model (.model)")
    parser.add_argument("--start", required=True, help="extxyz of one frame, the start of the MD")
    parser.add_argument("--temperature", type=float, help="K (default: info['md_temperature_K'] of the start)")
    parser.add_argument("--timestep", type=float, help="fs (default: info['md_timestep_fs'])")
    parser.add_argument("--friction", type=float, help="1/fs (default: info['md_friction_per_fs'])")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--record-every", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thermalize", action="store_true",
                        help="draw Maxwell-Boltzmann velocities even when the start has momenta")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--head", help="head of a multihead model (default: mace's choice, 'Default')")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True, help="trajectory (extxyz) to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    from ..train import resolve_device

    if args.steps < 0 or args.record_every < 1:
        raise SystemExit("--steps must be >= 0 and --record-every >= 1")
    torch.set_num_threads(args.threads)
    starts = read_configs(args.start)
    if len(starts) != 1:
        raise SystemExit(f"{args.start}: {len(starts)} frames; the MD starts from a file of one frame")
    start = starts[0]
    frames = model_md(
        args.model, start, args.steps,
        temperature_K=_protocol(start, args.temperature, "md_temperature_K", "--temperature", args.start),
        timestep_fs=_protocol(start, args.timestep, "md_timestep_fs", "--timestep", args.start),
        friction_per_fs=_protocol(start, args.friction, "md_friction_per_fs", "--friction", args.start),
        seed=args.seed, record_every=args.record_every, thermalize=args.thermalize,
        device=resolve_device(args.device), default_dtype=args.default_dtype, head=args.head)
    write_atomic(args.output, frames)
    log.info("%d MD steps of %s from %s: %d frames -> %s", args.steps, args.model, args.start, len(frames),
             args.output)


__all__ = ["langevin_md", "model_md"]


if __name__ == "__main__":
    main()
