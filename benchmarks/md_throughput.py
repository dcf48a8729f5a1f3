"""MD throughput of a mini model on one core: our analysis against a bare ASE loop.

The RDF figures (Fig. 6a/b, 20) run Langevin NVT MD with every fine-tuned model
(:mod:`mlipft.analysis.md`). This prints, for one model and the benchmark's MD start structure,
steps/s and atom-steps/s of

- ``analysis``: :func:`mlipft.analysis.md.model_md` (ASE ``Langevin`` + mace's
  ``MACECalculator``, every recorded frame copied with its energy), as the ``run_md`` rule runs it;
- ``bare ASE``: the same ``MACECalculator`` driven by a plain ASE ``Langevin(...).run(n)``, nothing
  recorded: the floor our analysis can reach;

and the ratio of the two. torch-sim-atomistic (0.3.0, the newest installable here) is not used:
on these CPUs its batched Langevin gave 650 atom-steps/s for one replica and 409 per
replica-atom for 32 replicas against ASE's 534 (``/work/shared/paper/facts.md`` section 6), so
batching replicas does not pay on a CPU; the workflow runs replicas side by side as processes.

Run alone (the load average is printed): the numbers are wall seconds of one torch thread.

    .venv/bin/python benchmarks/md_throughput.py                       # a committed mini foundation
    .venv/bin/python benchmarks/md_throughput.py --model results/mini/runs/.../model.model --steps 400
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data/mini/mini/foundations/omat_medium/model.model"))
    parser.add_argument("--start", default=str(ROOT / "data/mini/mini/benchmarks/nacl/md_start.xyz"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--record-every", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from ase import units
    from ase.md.langevin import Langevin

    from mlipft.analysis.md import mace_calculator, model_md
    from mlipft.io import read_configs

    torch.set_num_threads(1)
    start = read_configs(args.start)[0]
    protocol = dict(temperature_K=float(start.info.get("md_temperature_K", 300.0)),
                    timestep_fs=float(start.info.get("md_timestep_fs", 1.0)),
                    friction_per_fs=float(start.info.get("md_friction_per_fs", 0.01)))
    calc = mace_calculator(args.model, default_dtype=args.dtype)
    n_atoms = len(start)

    def ours():
        model_md(args.model, start, args.steps, seed=0, record_every=args.record_every, calc=calc, **protocol)

    def bare():
        atoms = start.copy()
        atoms.calc = calc
        Langevin(atoms, timestep=protocol["timestep_fs"] * units.fs, temperature_K=protocol["temperature_K"],
                 friction=protocol["friction_per_fs"] / units.fs, rng=np.random.default_rng(0)).run(args.steps)

    def best(fn) -> float:
        fn()  # warm-up (first-call set-up of the model)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    load = os.getloadavg()[0]
    t_ours, t_bare = best(ours), best(bare)
    print(f"model {args.model}\nstart {args.start}: {n_atoms} atoms, {args.steps} steps, dtype {args.dtype}, "
          f"1 torch thread, load average {load:.2f}")
    for name, t in (("analysis (mlipft.analysis.md)", t_ours), ("bare ASE Langevin loop", t_bare)):
        print(f"{name:32s} {args.steps / t:8.1f} steps/s {n_atoms * args.steps / t:9.0f} atom-steps/s")
    print(f"ratio analysis / bare ASE (time): {t_ours / t_bare:.3f}")


if __name__ == "__main__":
    main()
