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
        [--thermalize] [--equil-steps N] [--replicas R] [--processes P] --output traj.extxyz

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


def mace_calculator(model_path: str, device: str = "cpu", default_dtype: str = "float64", head: str | None = None):
    """mace's ``MACECalculator`` of a model file (through ``head`` of a multihead model)."""
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(model_path), device=device, default_dtype=default_dtype,
                          **({"head": head} if head is not None else {}))


def model_md(model_path, start: Atoms, n_steps: int, *, temperature_K: float, timestep_fs: float,
             friction_per_fs: float, seed: int, record_every: int = 1, thermalize: bool = False,
             device: str = "cpu", default_dtype: str = "float64", head: str | None = None,
             equil_steps: int = 0, replicas: int = 1, first_replica: int = 0, calc=None) -> list[Atoms]:
    """:func:`langevin_md` of a MACE model (``MACECalculator``, or ``calc`` when given) from
    ``start`` (not modified), ``replicas`` times: each replica equilibrates for ``equil_steps``
    (not recorded) and then runs ``n_steps`` of production, recorded every ``record_every``.

    Replica *k* draws its velocities and thermostat noise from ``numpy.random.default_rng([seed,
    k])``: independent streams, reproducible from ``seed``. The start's momenta are kept unless
    it has none or ``thermalize`` (replicas then differ by their thermostat noise only at first,
    so give them equilibration). Frames carry the start's info (less its reference labels) plus
    ``replica``, ``step`` (production step, 1-based), ``time_fs`` (production time) and
    ``model_energy`` (eV). ``first_replica`` numbers the replicas from there (one process per
    replica gives the same frames as one process for all: :func:`model_md_parallel`)."""
    if calc is None:
        calc = mace_calculator(model_path, device=device, default_dtype=default_dtype, head=head)
    protocol = dict(temperature_K=temperature_K, timestep_fs=timestep_fs, friction_per_fs=friction_per_fs)

    def snapshot(a: Atoms) -> Atoms:
        frame = a.copy()
        frame.info["model_energy"] = float(a.get_potential_energy())
        frame.calc = None
        return frame

    frames: list[Atoms] = []
    for replica in range(first_replica, first_replica + replicas):
        atoms = start.copy()
        for key in (ENERGY_KEY, STRESS_KEY):  # the start's labels are not those of the frames
            atoms.info.pop(key, None)
        atoms.arrays.pop(FORCES_KEY, None)
        rng = np.random.default_rng([int(seed), replica])
        init_velocities = thermalize or not atoms.get_momenta().any()
        if equil_steps > 0:
            log.info("replica %d: %d equilibration steps", replica, equil_steps)
            langevin_md(atoms, calc, equil_steps, rng=rng, record_every=equil_steps + 1,
                        init_velocities=init_velocities, **protocol)
            init_velocities = False
        produced = langevin_md(atoms, calc, n_steps, rng=rng, record_every=record_every,
                               init_velocities=init_velocities, snapshot=snapshot, **protocol)
        for frame in produced:
            frame.info["replica"] = replica
            frame.info["time_fs"] = frame.info["step"] * timestep_fs
        frames += produced
    return frames


def _one_replica(kwargs: dict) -> list[Atoms]:
    import torch

    torch.set_num_threads(1)
    return model_md(**kwargs)


def model_md_parallel(processes: int, replicas: int, **kwargs) -> list[Atoms]:
    """:func:`model_md` with its replicas spread over ``processes`` worker processes (spawned,
    one torch thread each); the frames are those of one process, in replica order."""
    if processes <= 1 or replicas <= 1:
        return model_md(replicas=replicas, **kwargs)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    jobs = [{**kwargs, "replicas": 1, "first_replica": k} for k in range(replicas)]
    with ProcessPoolExecutor(max_workers=min(processes, replicas), mp_context=get_context("spawn")) as pool:
        return [frame for frames in pool.map(_one_replica, jobs) for frame in frames]


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
    parser.add_argument("--steps", type=int, required=True, help="production steps of each replica")
    parser.add_argument("--equil-steps", type=int, default=0, help="equilibration steps before (not recorded)")
    parser.add_argument("--replicas", type=int, default=1, help="independent replicas (seeds [seed, k])")
    parser.add_argument("--record-every", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thermalize", action="store_true",
                        help="draw Maxwell-Boltzmann velocities even when the start has momenta")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--default-dtype", default="float64")
    parser.add_argument("--head", help="head of a multihead model (default: mace's choice, 'Default')")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="replicas run in this many processes at once")
    parser.add_argument("--output", required=True, help="trajectory (extxyz) to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    from ..train import resolve_device

    if args.steps < 0 or args.equil_steps < 0 or args.record_every < 1 or args.replicas < 1:
        raise SystemExit("--steps and --equil-steps must be >= 0, --record-every and --replicas >= 1")
    torch.set_num_threads(args.threads)
    starts = read_configs(args.start)
    if len(starts) != 1:
        raise SystemExit(f"{args.start}: {len(starts)} frames; the MD starts from a file of one frame")
    start = starts[0]
    frames = model_md_parallel(
        args.processes, args.replicas, model_path=args.model, start=start, n_steps=args.steps,
        temperature_K=_protocol(start, args.temperature, "md_temperature_K", "--temperature", args.start),
        timestep_fs=_protocol(start, args.timestep, "md_timestep_fs", "--timestep", args.start),
        friction_per_fs=_protocol(start, args.friction, "md_friction_per_fs", "--friction", args.start),
        seed=args.seed, record_every=args.record_every, thermalize=args.thermalize,
        device=resolve_device(args.device), default_dtype=args.default_dtype, head=args.head,
        equil_steps=args.equil_steps)
    write_atomic(args.output, frames)
    log.info("%d replica(s) x (%d + %d) MD steps of %s from %s: %d frames -> %s", args.replicas, args.equil_steps,
             args.steps, args.model, args.start, len(frames), args.output)


__all__ = ["langevin_md", "mace_calculator", "model_md", "model_md_parallel"]


if __name__ == "__main__":
    main()
