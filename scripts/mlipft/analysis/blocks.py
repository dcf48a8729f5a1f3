"""Which blocks of a fine-tuned MACE model trained, measured from the run's own files (the
paper's Fig. 1 schematic, as the runs really did it).

Per block (embedding, interactions, products, readouts):

- ``parameters``: its parameters in the final ``model.model`` (LoRA already merged; the
  embedding block is ``node_embedding`` and ``radial_embedding``);
- ``trained``: what the optimiser really updated, the Adam-state sizes of the block's groups in
  the run's last checkpoint (``mace/checkpoints/*_epoch-<N>.pt``, highest N). mace 0.3.16 names
  its groups (``mace.tools.scripts_utils.get_params_options``): ``embedding`` (node embedding
  only), ``interactions_decay`` and ``interactions_no_decay``, ``products``, ``readouts``; a
  parameter frozen by ``--freeze`` (or a LoRA base weight) stays in its group without state.
  For LoRA this counts the adapters, trained beside their frozen base layers;
- ``lora_parameters``: the LoRA adapters of the block in the checkpoint's model (entries
  ``...lora_A...``/``...lora_B...``, but not e3nn's ``output_mask`` buffers of the adapters'
  linear layers: with them excluded, the adapters are exactly what the optimiser trained);
- ``not_optimised``: parameters of the block that mace puts in no optimiser group at all (a
  foundation's ``radial_embedding`` Bessel weights), so never trained by any strategy;
- ``state``: ``frozen`` (nothing trained), ``lora`` (adapters trained), ``trained`` (every
  parameter mace optimises) or ``partly trained``; ``trained_fraction`` = trained / parameters;
- ``heads``: the final model's heads joined by ``+`` (``pt_head+Default``: a replay head).

    python -m mlipft.analysis.blocks RUN_DIR ...     # the table of each run, printed
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

BLOCKS = ("embedding", "interactions", "products", "readouts")
STATES = ("trained", "frozen", "lora", "partly trained")
#: The model's top-level submodules (first part of a parameter name) and their block.
MODULES = {"node_embedding": "embedding", "radial_embedding": "embedding", "joint_embedding": "embedding",
           "interactions": "interactions", "products": "products",
           "readouts": "readouts", "embedding_readout": "readouts", "les_readouts": "readouts"}
#: Submodules whose parameters mace's optimiser never holds (no group takes them).
NOT_OPTIMISED = ("radial_embedding",)
#: mace's optimiser groups and their block.
GROUPS = {"embedding": "embedding", "joint_embedding": "embedding",
          "interactions_decay": "interactions", "interactions_no_decay": "interactions",
          "products": "products", "readouts": "readouts", "embedding_readout": "readouts", "les_readouts": "readouts"}
#: State-dict entries under a LoRA adapter that are buffers, not trained weights.
LORA_BUFFERS = ("output_mask",)
CHECKPOINT = re.compile(r"_epoch-(\d+)(_swa)?\.pt$")
COLUMNS = ("block", "parameters", "trained", "lora_parameters", "not_optimised", "state", "trained_fraction", "heads")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "mace" / "checkpoints"


def last_checkpoint(run_dir: str | Path) -> Path:
    """The run's checkpoint of the highest epoch (a Stage-Two ``_swa`` one after a plain one of
    the same epoch)."""
    folder = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), bool(m.group(2)), p) for p in folder.glob("*.pt") if (m := CHECKPOINT.search(p.name))]
    if not found:
        raise FileNotFoundError(f"{folder}: no mace checkpoint (*_epoch-<N>.pt) to read the trained parameters from")
    return max(found)[2]


def _block(name: str, where: str) -> str:
    top = name.split(".", 1)[0]
    if top not in MODULES:
        raise ValueError(f"{where}: parameter {name!r} is in no known block (submodules: {sorted(MODULES)})")
    return MODULES[top]


def is_lora(key: str) -> bool:
    """A state-dict entry that is a trained LoRA adapter weight (not a buffer of one)."""
    return "lora_" in key and key.rsplit(".", 1)[-1] not in LORA_BUFFERS


def trained_per_block(optimizer: dict, where: str) -> dict[str, int]:
    """Adam-state sizes (``exp_avg``) of each block's optimiser groups."""
    groups = optimizer.get("param_groups") or []
    if not groups or any("name" not in g for g in groups):
        raise ValueError(f"{where}: the optimiser has no named parameter groups (mace's embedding, "
                         f"interactions_decay, ...); cannot tell which block a parameter belongs to")
    state = optimizer.get("state", {})
    out = dict.fromkeys(BLOCKS, 0)
    for group in groups:
        if group["name"] not in GROUPS:
            raise ValueError(f"{where}: unknown optimiser group {group['name']!r} (known: {sorted(GROUPS)})")
        out[GROUPS[group["name"]]] += sum(int(state[i]["exp_avg"].numel()) for i in group["params"]
                                          if i in state and "exp_avg" in state[i])
    return out


def state_of(parameters: int, trained: int, lora: int, not_optimised: int) -> str:
    if trained == 0:
        return "frozen"
    if lora > 0:
        return "lora"
    return "trained" if trained >= parameters - not_optimised else "partly trained"


def block_states(run_dir: str | Path) -> pd.DataFrame:
    """One row per block (:data:`BLOCKS` order) of the run in ``run_dir``: see the module's doc."""
    import pandas as pd
    import torch

    run_dir = Path(run_dir)
    model_path = run_dir / "model.model"
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path}: no final model of the run")
    checkpoint = last_checkpoint(run_dir)
    model = torch.load(str(model_path), map_location="cpu", weights_only=False)
    saved = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or "optimizer" not in saved or "model" not in saved:
        raise ValueError(f"{checkpoint}: not a mace checkpoint (a dict with model and optimizer state dicts)")

    parameters, fixed, lora = (dict.fromkeys(BLOCKS, 0) for _ in range(3))
    for name, p in model.named_parameters():
        block = _block(name, str(model_path))
        parameters[block] += p.numel()
        if name.split(".", 1)[0] in NOT_OPTIMISED:
            fixed[block] += p.numel()
    for key, value in saved["model"].items():
        if is_lora(key):
            lora[_block(key, str(checkpoint))] += value.numel()
    trained = trained_per_block(saved["optimizer"], str(checkpoint))
    heads = "+".join(getattr(model, "heads", None) or ["Default"])
    rows = [{"block": b, "parameters": parameters[b], "trained": trained[b], "lora_parameters": lora[b],
             "not_optimised": fixed[b], "state": state_of(parameters[b], trained[b], lora[b], fixed[b]),
             "trained_fraction": trained[b] / parameters[b] if parameters[b] else float("nan"), "heads": heads}
            for b in BLOCKS]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def main(argv=None) -> None:
    import pandas as pd

    for run_dir in (argv if argv is not None else sys.argv[1:]):
        print(run_dir)
        with pd.option_context("display.width", 200):
            print(block_states(run_dir).to_string(index=False))


if __name__ == "__main__":
    main()
