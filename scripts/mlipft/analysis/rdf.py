"""Radial distribution functions of MD trajectories and the earth mover's distance between two.

The paper compares models on liquid structure: the Cl-O and Na-O RDFs of aqueous NaCl from
model MD against a reference RDF, by the earth mover's (1-Wasserstein) distance. The RDFs are
MDAnalysis ``InterRDF`` histograms (:func:`compute_rdf`) and the distance is
``scipy.stats.wasserstein_distance`` with g(r) as weights (:func:`earth_movers_distance`); the
reference RDF of the mini world (:mod:`mlipft.mini.nacl`) and a model's RDF go through the same
functions, and the same CSV format (``pair,r_angstrom,g_r``: :func:`write_rdf_csv`).

CLI::

    python -m mlipft.analysis.rdf rdf --trajectory traj.extxyz [more.extxyz ...] --pairs Cl-O Na-O
        [--r-max 4.15] [--nbins 40] [--parts] --output rdf.csv
    python -m mlipft.analysis.rdf emd --reference rdf_reference.csv --model rdf.csv
        [--pairs Cl-O Na-O] --output emd.csv

``rdf`` takes every frame of the trajectories (same atoms in each; a 3D cell); with ``--parts``
it writes the parts of :func:`split_parts` too (a ``part`` column: all, the two halves whose EMD
is the noise floor, each replica); ``--r-max`` and
``--nbins`` default to the ``rdf_r_max`` and ``rdf_nbins`` of the first frame's info (the keys
the mini world's ``md_start.xyz``, and so a model MD started from it, carry). ``emd`` writes one
row per pair (columns ``pair,emd_angstrom``) between the files' ``all`` parts, on the pairs of the
reference unless ``--pairs``.
"""

from __future__ import annotations

import argparse
import csv
import logging

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers

from ..io import atomic_path, read_configs

log = logging.getLogger(__name__)


def max_rdf_range(atoms: Atoms) -> float:
    """Largest r (A) for which minimum-image pair counting is complete: half the smallest
    perpendicular width of the cell."""
    cell = np.asarray(atoms.cell)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return float(min(widths) / 2.0)


def _parse_pair(pair: str) -> tuple[str, str]:
    try:
        a, b = pair.split("-")
    except ValueError:
        raise ValueError(f"RDF pair {pair!r} is not of the form A-B (e.g. 'Cl-O')") from None
    for s in (a, b):
        if s not in atomic_numbers:
            raise ValueError(f"RDF pair {pair!r}: {s!r} is not an element symbol")
    return a, b


def trajectory_universe(frames: list[Atoms]):
    """An in-memory MDAnalysis Universe of ASE frames (same atoms in every frame).

    Atom ``type`` and ``name`` are the element symbols; per-frame box dimensions come from the
    ASE cells (orthorhombic or triclinic).
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    if not frames:
        raise ValueError("no frames")
    symbols = frames[0].get_chemical_symbols()
    for i, f in enumerate(frames):
        if f.get_chemical_symbols() != symbols:
            raise ValueError(f"frame {i} has different atoms from frame 0")
        if not f.pbc.all():
            raise ValueError(f"frame {i} is not periodic in 3D; the RDF needs a cell")
    u = mda.Universe.empty(len(symbols), trajectory=False)
    u.add_TopologyAttr("type", symbols)
    u.add_TopologyAttr("name", symbols)
    coords = np.stack([f.positions for f in frames]).astype(np.float32)
    dims = np.array([f.cell.cellpar() for f in frames], dtype=np.float32)
    u.load_new(coords, format=MemoryReader, dimensions=dims)
    return u


def compute_rdf(
    trajectory_atoms_list: list[Atoms],
    pair: str,
    r_max: float,
    nbins: int,
    r_min: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function g_AB(r) of ``pair`` ("A-B") with MDAnalysis ``InterRDF``.

    Returns ``(r, g)``: bin centres (A) and g(r), averaged over all frames with the standard
    ``norm='rdf'`` normalisation (ideal-gas pair density N_A N_B / V of each frame). For a
    same-species pair (``"O-O"``) self pairs are excluded and the normalisation uses
    N (N - 1) / V, so the coordination number is (N - 1)/V * sum_bins g * shell volume. ``r_max`` must not exceed
    :func:`max_rdf_range` of the first frame (beyond it the minimum-image count is incomplete).
    """
    from MDAnalysis.analysis.rdf import InterRDF

    a, b = _parse_pair(pair)
    limit = max_rdf_range(trajectory_atoms_list[0])
    if r_max > limit + 1e-9:
        raise ValueError(f"r_max = {r_max:.3f} A exceeds half the cell width ({limit:.3f} A)")
    u = trajectory_universe(trajectory_atoms_list)
    g1 = u.select_atoms(f"type {a}")
    g2 = u.select_atoms(f"type {b}")
    if len(g1) == 0 or len(g2) == 0:
        raise ValueError(f"RDF pair {pair}: no {a if len(g1) == 0 else b} atoms in the frames")
    kwargs = {"exclusion_block": (1, 1)} if a == b else {}
    rdf = InterRDF(g1, g2, nbins=int(nbins), range=(float(r_min), float(r_max)), **kwargs)
    rdf.run()
    return np.asarray(rdf.results.bins, dtype=float), np.asarray(rdf.results.rdf, dtype=float)


def earth_movers_distance(r, g_ref, g_model) -> float:
    """Earth mover's (1-Wasserstein) distance, in A, between two RDFs on the same r grid.

    ``scipy.stats.wasserstein_distance(r, r, u_weights=g_ref, v_weights=g_model)``: each g(r)
    is used as a weight on its bin centre and scipy normalises the weights to unit sum, so the
    two RDFs are compared as probability distributions over [r_min, r_max] (shape, not
    absolute height). Identical RDFs give 0; shifting a peak that lies inside the range by
    dr gives dr. Negative values (noise) are not allowed.
    """
    from scipy.stats import wasserstein_distance

    r = np.asarray(r, dtype=float)
    g_ref = np.asarray(g_ref, dtype=float)
    g_model = np.asarray(g_model, dtype=float)
    if not (r.shape == g_ref.shape == g_model.shape) or r.ndim != 1:
        raise ValueError("r, g_ref and g_model must be 1-D arrays of the same length")
    if (g_ref < 0).any() or (g_model < 0).any():
        raise ValueError("g(r) must be non-negative")
    if g_ref.sum() <= 0 or g_model.sum() <= 0:
        raise ValueError("an RDF is zero everywhere; the EMD is undefined")
    return float(wasserstein_distance(r, r, u_weights=g_ref, v_weights=g_model))


def write_rdf_csv(path, rdfs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``{pair: (r, g)}`` as CSV with columns ``pair,r_angstrom,g_r`` (atomically)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["pair", "r_angstrom", "g_r"])
            for pair, (r, g) in rdfs.items():
                for ri, gi in zip(r, g):
                    writer.writerow([pair, f"{ri:.6f}", f"{gi:.8f}"])


def read_rdf_csv(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read an RDF CSV of :func:`write_rdf_csv` (e.g. ``rdf_reference.csv``) back into ``{pair: (r, g)}``."""
    rows: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows.setdefault(row["pair"], []).append((float(row["r_angstrom"]), float(row["g_r"])))
    return {p: (np.array([x[0] for x in v]), np.array([x[1] for x in v])) for p, v in rows.items()}


def split_parts(frames: list[Atoms]) -> dict[str, list[Atoms]]:
    """The frames of a multi-replica MD (``info['replica']``, default 0) as the parts the
    figures compare: ``all`` (every frame), ``half1``/``half2`` (the first and second half of
    each replica's frames in order, pooled over replicas: two independent estimates whose EMD is
    the noise floor of the whole) and ``replica<k>`` (each replica alone: the spread)."""
    by_replica: dict[int, list[Atoms]] = {}
    for frame in frames:
        by_replica.setdefault(int(frame.info.get("replica", 0)), []).append(frame)
    parts: dict[str, list[Atoms]] = {"all": list(frames), "half1": [], "half2": []}
    for replica, own in sorted(by_replica.items()):
        if len(own) < 2:
            raise ValueError(f"replica {replica} has {len(own)} frame(s); halves need at least 2")
        half = len(own) // 2
        parts["half1"] += own[:half]
        parts["half2"] += own[half:2 * half]
        parts[f"replica{replica}"] = own
    return parts


def rdf_parts(frames: list[Atoms], pairs: list[str], r_max: float, nbins: int) -> dict[str, dict[str, tuple]]:
    """``{part: {pair: (r, g)}}`` of :func:`split_parts` with :func:`compute_rdf`."""
    return {part: {pair: compute_rdf(own, pair, r_max, nbins) for pair in pairs}
            for part, own in split_parts(frames).items()}


def write_rdf_parts_csv(path, parts: dict[str, dict[str, tuple]]) -> None:
    """Write ``{part: {pair: (r, g)}}`` as CSV with columns ``part,pair,r_angstrom,g_r`` (atomically)."""
    rows = [{"part": part, "pair": pair, "r_angstrom": round(float(ri), 6), "g_r": round(float(gi), 8)}
            for part, rdfs in parts.items() for pair, (r, g) in rdfs.items() for ri, gi in zip(r, g)]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=["part", "pair", "r_angstrom", "g_r"]).to_csv(tmp, index=False)


def read_rdf_parts(path) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{part: {pair: (r, g)}}`` of a CSV of :func:`write_rdf_parts_csv`; a CSV without a
    ``part`` column (:func:`write_rdf_csv`) is the single part ``all``."""
    frame = pd.read_csv(path)
    missing = {"pair", "r_angstrom", "g_r"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not an RDF CSV (columns {sorted(missing)} missing)")
    if "part" not in frame.columns:
        frame["part"] = "all"
    return {part: {pair: (sub.r_angstrom.to_numpy(float), sub.g_r.to_numpy(float))
                   for pair, sub in own.groupby("pair", sort=False)}
            for part, own in frame.groupby("part", sort=False)}


def rdf_emds(reference: dict[str, tuple[np.ndarray, np.ndarray]],
             model: dict[str, tuple[np.ndarray, np.ndarray]], pairs: list[str] | None = None) -> dict[str, float]:
    """``{pair: EMD}`` (A) between two sets of RDFs (as :func:`read_rdf_csv` returns them) on
    the same r grids; ``pairs`` defaults to the pairs of ``reference``, all of which ``model``
    must have."""
    pairs = list(reference) if pairs is None else list(pairs)
    missing = [p for p in pairs if p not in reference or p not in model]
    if missing:
        raise ValueError(f"RDF pairs {missing} missing (reference has {sorted(reference)}, model has {sorted(model)})")
    out = {}
    for pair in pairs:
        (r_ref, g_ref), (r_model, g_model) = reference[pair], model[pair]
        if r_ref.shape != r_model.shape or not np.allclose(r_ref, r_model, atol=1e-5):
            raise ValueError(f"RDF pair {pair}: the two RDFs are not on the same r grid "
                             f"({len(r_ref)} bins up to {r_ref[-1]:.4f} A against {len(r_model)} up to "
                             f"{r_model[-1]:.4f} A)")
        out[pair] = earth_movers_distance(r_ref, g_ref, g_model)
    return out


def _from_info(frame: Atoms, value, key: str, option: str, where: str):
    if value is not None:
        return value
    if key not in frame.info:
        raise SystemExit(f"{where}: give {option} (the first frame has no info['{key}'])")
    return frame.info[key]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlipft.analysis.rdf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rd = sub.add_parser("rdf", help="RDFs of trajectory frames -> CSV (pair, r_angstrom, g_r)")
    rd.add_argument("--trajectory", nargs="+", required=True, help="extxyz trajectories (frames concatenated)")
    rd.add_argument("--pairs", nargs="+", required=True, help="element pairs, e.g. Cl-O Na-O")
    rd.add_argument("--r-max", type=float, help="upper edge (A); default info['rdf_r_max'] of the first frame")
    rd.add_argument("--nbins", type=int, help="histogram bins; default info['rdf_nbins'] of the first frame")
    rd.add_argument("--parts", action="store_true",
                    help="write every part of split_parts (all, half1, half2, replica<k>) with a part column")
    rd.add_argument("--output", required=True)
    em = sub.add_parser("emd", help="EMD between the RDFs of two CSVs -> CSV (pair, emd_angstrom)")
    em.add_argument("--reference", required=True, help="reference RDF CSV")
    em.add_argument("--model", required=True, help="model RDF CSV")
    em.add_argument("--pairs", nargs="+", help="pairs to compare (default: the reference's)")
    em.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "rdf":
        frames = [a for path in args.trajectory for a in read_configs(path)]
        if not frames:
            raise SystemExit(f"{args.trajectory}: no frames")
        where = str(args.trajectory[0])
        r_max = float(_from_info(frames[0], args.r_max, "rdf_r_max", "--r-max", where))
        nbins = int(_from_info(frames[0], args.nbins, "rdf_nbins", "--nbins", where))
        log.info("RDFs %s of %d frames (r_max %.3f A, %d bins) -> %s", args.pairs, len(frames), r_max, nbins,
                 args.output)
        try:
            if args.parts:
                write_rdf_parts_csv(args.output, rdf_parts(frames, args.pairs, r_max, nbins))
            else:
                write_rdf_csv(args.output, {pair: compute_rdf(frames, pair, r_max, nbins) for pair in args.pairs})
        except ValueError as err:
            raise SystemExit(f"{args.trajectory[0]}: {err}") from None
    else:
        emds = rdf_emds(read_rdf_parts(args.reference)["all"], read_rdf_parts(args.model)["all"], args.pairs)
        frame = pd.DataFrame({"pair": list(emds), "emd_angstrom": list(emds.values())})
        with atomic_path(args.output) as tmp:
            frame.to_csv(tmp, index=False)


__all__ = ["compute_rdf", "earth_movers_distance", "max_rdf_range", "trajectory_universe", "read_rdf_csv",
           "write_rdf_csv", "rdf_emds", "split_parts", "rdf_parts", "read_rdf_parts", "write_rdf_parts_csv"]


if __name__ == "__main__":
    main()
