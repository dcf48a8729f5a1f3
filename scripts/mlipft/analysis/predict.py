"""Batched predictions of a MACE model: energies, forces and stresses of many configurations.

The one place where the workflow evaluates a model outside mace's own scripts (zero-shot quality,
the E0 modes' initial errors, NEB bands, torsion profiles). It uses mace-torch's data pipeline
as ``mace_eval_configs`` does (``config_from_atoms``, ``AtomicData.from_config``, the
``torch_geometric`` ``DataLoader``) and only batches and splits the outputs.

No label of the configurations is read (an empty ``KeySpecification``): the predictions depend
on positions, cell, periodicity, atomic numbers and the head only. A model with several heads
(a multihead fine-tune: ``["Default", "pt_head"]``) is evaluated through one head,
:func:`select_head`: ``Default`` when the model has it, else its last head, the choice mace's
own data pipeline falls back to.

Numbers are reproducible to the last bit for the same model, dtype, device and batches: the
batch size is part of the computation (``batch_size=None`` puts every configuration in one
batch, as the NEB does for its images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols


@dataclass
class Prediction:
    """Predictions of :func:`predict`, in the order of the configurations.

    ``energy``: total energies (eV), shape ``(n_configs,)``; ``forces``: one ``(n_i, 3)`` array
    (eV/A) per configuration, or None when not computed; ``stress``: one 3x3 array (eV/A^3,
    mace's sign convention, as ``MACECalculator.get_stress(voigt=False)``) per configuration,
    or None when not computed; ``head``: the head the model was evaluated through.
    """

    energy: np.ndarray
    forces: list[np.ndarray] | None
    stress: list[np.ndarray] | None
    head: str


def load_model(path: str | Path, device: str = "cpu", default_dtype: str = "float64"):
    """A MACE model on ``device`` in ``default_dtype`` (also made torch's default dtype, as mace
    does), in eval mode, with gradients of its parameters off."""
    import torch
    from mace.tools import torch_tools

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MACE model not found: {path}")
    torch_tools.set_default_dtype(default_dtype)
    model = torch.load(str(path), map_location=device, weights_only=False)
    model = model.to(device=device, dtype=getattr(torch, default_dtype))
    model.eval()
    for param in model.parameters():
        param.requires_grad = False
    return model


def model_heads(model) -> list[str]:
    """The heads of a model (``["Default"]`` for a model without heads)."""
    return list(getattr(model, "heads", ["Default"]))


def select_head(model, head: str | None = None) -> str:
    """``head`` when the model has it (an error otherwise); without one ``Default`` when the
    model has it, else its last head."""
    heads = model_heads(model)
    if head is None:
        return "Default" if "Default" in heads else heads[-1]
    if head not in heads:
        raise ValueError(f"the model has no head {head!r} (its heads: {heads})")
    return head


def _configuration(item, index: int, head: str, known: set[int]):
    """A mace ``Configuration`` of an ``ase.Atoms`` (no labels) or of a mace ``Configuration``
    (e.g. from mace's own loader), set to be evaluated through ``head``."""
    from mace import data

    if isinstance(item, Atoms):
        config = data.config_from_atoms(item, key_specification=data.KeySpecification(), head_name=head)
    elif isinstance(item, data.Configuration):
        config = dataclasses.replace(item, head=head)
    else:
        raise TypeError(f"configuration {index}: expected ase.Atoms or a mace Configuration, "
                        f"got {type(item).__name__}")
    unknown = sorted({int(z) for z in config.atomic_numbers} - known)
    if unknown:
        raise ValueError(f"configuration {index}: elements {[chemical_symbols[z] for z in unknown]} are unknown "
                         f"to the model (it knows {[chemical_symbols[z] for z in sorted(known)]})")
    return config


def predict(model, atoms_list: Sequence, device: str = "cpu", batch_size: int | None = 32,
            head: str | None = None, compute_force: bool = True, compute_stress: bool = False) -> Prediction:
    """Energies (and forces, stresses) of ``atoms_list`` with a loaded MACE model (:func:`load_model`).

    ``atoms_list`` holds ``ase.Atoms`` or mace ``Configuration`` objects; only their geometry
    enters. ``batch_size=None`` evaluates everything in one batch. ``head``: see
    :func:`select_head`. Stresses are those mace computes (zero for a configuration without a
    3D cell).
    """
    from mace import data
    from mace.tools import torch_geometric
    from mace.tools.utils import AtomicNumberTable

    head = select_head(model, head)
    heads = model_heads(model)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, not {batch_size}")
    known = {int(z) for z in model.atomic_numbers}
    configs = [_configuration(item, i, head, known) for i, item in enumerate(atoms_list)]
    if not configs:
        empty = [] if compute_force else None
        return Prediction(np.zeros(0), empty, [] if compute_stress else None, head)
    z_table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
    dataset = [data.AtomicData.from_config(c, z_table=z_table, cutoff=float(model.r_max), heads=heads)
               for c in configs]
    loader = torch_geometric.dataloader.DataLoader(
        dataset=dataset, batch_size=len(dataset) if batch_size is None else batch_size,
        shuffle=False, drop_last=False)
    energies, forces, stresses = [], [], []
    for batch in loader:
        batch = batch.to(device)
        out = model(batch.to_dict(), training=False, compute_force=compute_force, compute_stress=compute_stress)
        energies.append(out["energy"].detach().cpu().numpy())
        if compute_force:
            forces.append(out["forces"].detach().cpu().numpy())
        if compute_stress:
            stresses.append(out["stress"].detach().cpu().numpy())
    n_atoms = [len(c.atomic_numbers) for c in configs]
    return Prediction(
        energy=np.concatenate(energies),
        forces=np.split(np.concatenate(forces), np.cumsum(n_atoms)[:-1]) if compute_force else None,
        stress=list(np.concatenate(stresses)) if compute_stress else None,
        head=head,
    )


__all__ = ["Prediction", "load_model", "model_heads", "select_head", "predict"]
