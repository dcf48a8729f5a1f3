"""The strategy registry: the paper's model types as ``mace_run_train`` command lines.

A strategy is data (``strategies:`` in the config): whether it starts from a foundation, whether
it is multihead (replay), which replay set, and its own ``mace_run_train`` flags with the paper's
hyperparameters. This module turns a strategy plus one run's context into the exact argument list,
guarding against mace-torch 0.3.16's traps (facts.md section 2):

- ``--multiheads_finetuning`` defaults to True and silently switches itself off without a
  ``--pt_train_file``: it is always written explicitly, and a multihead strategy without a
  replay file is an error here, not a silent naive fine-tune;
- multihead mode forces lr 1e-4 and EMA decay 0.99999 unless ``--force_mh_ft_lr True``: a
  multihead strategy that sets ``lr`` or ``ema_decay`` must also set ``force_mh_ft_lr``;
- ``--E0s average`` is refused with multihead: E0s are always passed as an explicit dictionary;
- replay files are always explicit paths (the ``omat``/``matpes`` keywords fall back to MP).

A flag's value is checked before any job (:func:`check_value`): mace's own type and choices, a
finite number (``lr: .inf`` converts, and trains with an infinite rate), the ranges of
:data:`RANGES`, and for the string flags mace evaluates itself (:data:`LITERALS`) the structure
of the evaluated value.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .keys import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from .mace_flags import TYPE_NAMES, TYPES, load_snapshot

# Flags the workflow owns: a strategy or the common block may not set them.
RESERVED = frozenset({
    "name", "seed", "train_file", "valid_file", "test_file", "foundation_model",
    "multiheads_finetuning", "pt_train_file", "E0s", "model_dir", "checkpoints_dir",
    "results_dir", "log_dir", "work_dir", "device", "default_dtype", "energy_key",
    "forces_key", "stress_key", "max_num_epochs", "batch_size", "num_samples_pt", "heads",
})
E0_MODES = ("average", "estimated", "foundation", "isolated")
#: Ranges mace's parser does not check (its types only convert): flag -> (operator, bound). mace
#: accepts a value outside and the run fails or trains nonsense later (an EMA decay of 1 never
#: moves the averaged weights), after its inputs were built.
RANGES = {
    **dict.fromkeys(("lr", "swa_lr", "stage_two_lr", "clip_grad", "lora_alpha", "r_max", "huber_delta"), (">", 0)),
    **dict.fromkeys(("lora_rank", "num_channels", "num_interactions", "correlation", "num_radial_basis",
                     "num_cutoff_basis", "eval_interval"), (">=", 1)),
    **dict.fromkeys(("max_L", "max_ell", "freeze", "start_swa", "start_stage_two", "scheduler_patience",
                     "weight_decay"), (">=", 0)),
    **dict.fromkeys([f"{prefix}{name}_weight" for prefix in ("", "swa_", "stage_two_")
                     for name in ("energy", "forces", "stress", "virials", "dipole", "polarizability")], (">=", 0)),
    "ema_decay": ("in (0, 1)", (0, 1)),
}




def _atomic_numbers(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "not a non-empty list"
    for z in value:
        if type(z) is not int or not 1 <= z <= 118:
            return f"{z!r} is not an atomic number (an int in 1..118)"
    repeated = sorted({z for z in value if value.count(z) > 1})
    return f"{repeated[0]} is listed twice" if repeated else None


def _positive_ints(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "not a non-empty list"
    bad = next((v for v in value if type(v) is not int or v < 1), None)
    return None if bad is None else f"{bad!r} is not a positive int"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"not a dictionary (got {type(value).__name__})"


def _factors(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"not a dictionary (got {type(value).__name__})"
    bad = next((k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))
                or not math.isfinite(v) or v < 0), None)
    return None if bad is None else f"{bad}: {value[bad]!r} is not a finite number >= 0"


#: String flags whose text mace-torch 0.3.16 evaluates itself, late (in the job, often after its
#: data are loaded): flag -> (parser, what is expected, check of the parsed value -> problem or
#: None). mace's argparse type is ``str``, so any text passes its parser. ``atomic_numbers``:
#: ``ast.literal_eval`` in run_train (then ``AtomicNumberTable``) and multihead_tools;
#: ``radial_MLP``: model_script_utils; ``foundation_model_kwargs``: run_train (then a key is
#: set on it); ``embedding_specs``: arg_parser_tools; ``config_type_weights``: scripts_utils,
#: where a bad value is only a warning and the weights silently fall back to the default;
#: ``lr_params_factors``: ``json.loads`` in scripts_utils (factors multiplied onto lr).
#: ``heads`` and ``E0s`` are also evaluated, but the workflow owns them (:data:`RESERVED`).
LITERALS = {
    "atomic_numbers": (ast.literal_eval, "a list of atomic numbers, e.g. '[1, 6, 8]'", _atomic_numbers),
    "radial_MLP": (ast.literal_eval, "a list of layer widths, e.g. '[64, 64, 64]'", _positive_ints),
    "foundation_model_kwargs": (ast.literal_eval, "a dictionary, e.g. '{}'", _mapping),
    "embedding_specs": (ast.literal_eval, "a dictionary of feature specs", _mapping),
    "config_type_weights": (ast.literal_eval, "a dictionary, e.g. '{\"Default\": 1.0}'", _mapping),
    "lr_params_factors": (json.loads, "a JSON object of factors, e.g. '{\"embedding_lr_factor\": 0.1}'", _factors),
}


class RegistryError(ValueError):
    """A strategy definition that cannot become a valid mace_run_train command."""


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str
    uses_foundation: bool
    multihead: bool
    replay: str | None = None
    e0s: str | None = None  # overrides the run's E0 mode (from scratch: isolated atoms)
    mace_args: dict[str, Any] = field(default_factory=dict)

    @property
    def trains_lora(self) -> bool:
        return bool(self.mace_args.get("lora", False))


@dataclass(frozen=True)
class RunSpec:
    """Everything a single fine-tune needs besides its strategy."""

    name: str
    seed: int
    train_file: str
    valid_file: str
    e0s: dict[int, float]
    out_dir: str
    max_num_epochs: int
    batch_size: int
    device: str = "cpu"
    default_dtype: str = "float64"
    foundation_model: str | None = None
    replay_file: str | None = None
    num_samples_pt: int | None = None
    test_file: str | None = None
    compute_stress: bool = False
    common: dict[str, Any] = field(default_factory=dict)
    scratch_model: dict[str, Any] = field(default_factory=dict)


def strategy_from_config(name: str, entry: dict) -> Strategy:
    """Build and check one strategy of the config's ``strategies`` block."""
    where = f"config entry strategies.{name}"
    strategy = Strategy(
        name=name,
        label=entry.get("label", name),
        uses_foundation=bool(entry["uses_foundation"]),
        multihead=bool(entry["multihead"]),
        replay=entry.get("replay"),
        e0s=entry.get("e0s"),
        mace_args=dict(entry.get("mace_args", {})),
    )
    check_flags(strategy.mace_args, where, f"{where}.mace_args")
    if strategy.multihead and not strategy.uses_foundation:
        raise RegistryError(f"{where}: multihead: true needs uses_foundation: true")
    if strategy.multihead and not strategy.replay:
        raise RegistryError(f"{where}: a multihead strategy needs a replay set (key `replay`)")
    if not strategy.multihead and strategy.replay:
        raise RegistryError(f"{where}: `replay` is only used by multihead strategies")
    if strategy.multihead and ({"lr", "ema_decay"} & set(strategy.mace_args)) and not strategy.mace_args.get("force_mh_ft_lr"):
        raise RegistryError(
            f"{where}: sets lr/ema_decay in multihead mode, which mace-torch 0.3.16 overrides to "
            "1e-4 / 0.99999 unless `force_mh_ft_lr: true` is also set"
        )
    if strategy.mace_args.get("pseudolabel_replay") and not strategy.multihead:
        raise RegistryError(f"{where}: pseudolabel_replay needs multihead: true")
    if not strategy.uses_foundation and ({"freeze", "lora"} & set(strategy.mace_args)):
        raise RegistryError(f"{where}: freeze/lora need a foundation model (uses_foundation: true)")
    if strategy.e0s is not None and strategy.e0s not in E0_MODES:
        raise RegistryError(f"{where}.e0s: {strategy.e0s!r} is not one of {E0_MODES}")
    if strategy.multihead and strategy.e0s == "average":
        raise RegistryError(f"{where}: mace-torch refuses average E0s with multihead fine-tuning")
    return strategy


def strategies_from_config(config: dict) -> dict[str, Strategy]:
    return {name: strategy_from_config(name, entry) for name, entry in config["strategies"].items()}


def check_flags(args: dict[str, Any], where: str, values_where: str | None = None) -> None:
    """Every key must be a mace_run_train flag the workflow does not own, and every value one
    mace's parser accepts (its type and choices, as :func:`_render` writes it on the command
    line) within :data:`RANGES`. Values are named ``{values_where}.{key}`` (default: ``where``)."""
    known = load_snapshot()
    for key, value in args.items():
        if key in RESERVED:
            raise RegistryError(f"{where}.{key}: this flag is set by the workflow, not by a strategy")
        if key not in known:
            close = [k for k in known if k.replace("_", "") == key.replace("_", "").lower()]
            close = close or difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(f"{where}.{key}: not a mace_run_train (mace-torch 0.3.16) flag{hint}")
        check_value(key, value, known[key], f"{values_where or where}.{key}")


def check_value(key: str, value: Any, spec: dict, where: str) -> None:
    """``value`` of flag ``key`` as mace's parser reads it (``spec``: its snapshot entry)."""
    flag = f"mace_run_train --{key}"
    if spec["kind"] in ("switch", "switch_off"):
        if not isinstance(value, bool):
            raise RegistryError(f"{where}: {value!r} is not true or false ({flag} is a switch)")
        return
    text = _render(key, value, {})[0].split("=", 1)[1]
    try:
        converted = TYPES[spec["type"]](text)
    except (ValueError, TypeError):
        raise RegistryError(f"{where}: {value!r} is not a valid {TYPE_NAMES[spec['type']]} ({flag})") from None
    choices = spec.get("choices")
    if choices is not None and converted not in choices:
        raise RegistryError(f"{where}: {value!r} is not a choice of {flag} (choices: {', '.join(map(str, choices))})")
    if isinstance(converted, float) and not math.isfinite(converted):
        raise RegistryError(f"{where}: {value!r} is not finite ({flag})")
    if key in LITERALS and converted is not None:
        parse, expected, check = LITERALS[key]
        how = "ast.literal_eval" if parse is ast.literal_eval else "json.loads"
        try:
            parsed = parse(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise RegistryError(f"{where}: {value!r} cannot be read by {how} ({flag} is evaluated by mace "
                                f"in the training job; expected {expected})") from None
        problem = check(parsed)
        if problem:
            raise RegistryError(f"{where}: {value!r}: {problem} ({flag}: expected {expected})")
    if key in RANGES and converted is not None:
        op, bound = RANGES[key]
        ok = {">": lambda: converted > bound, ">=": lambda: converted >= bound,
              "in (0, 1)": lambda: bound[0] < converted < bound[1]}[op]()
        if not ok:
            raise RegistryError(f"{where}: {value!r} must be {op}{'' if op.startswith('in') else f' {bound}'}")


def effective_e0_mode(strategy: Strategy, requested: str) -> str:
    """The E0 mode a run of this strategy really uses."""
    mode = strategy.e0s or requested
    if mode not in E0_MODES:
        raise RegistryError(f"E0 mode {mode!r} is not one of {E0_MODES}")
    if strategy.multihead and mode == "average":
        raise RegistryError(f"strategy {strategy.name}: average E0s cannot be used with multihead fine-tuning")
    if not strategy.uses_foundation and mode in ("estimated", "foundation"):
        raise RegistryError(f"strategy {strategy.name}: E0 mode {mode!r} needs a foundation model")
    return mode


def _render(key: str, value: Any, kinds: dict[str, dict]) -> list[str]:
    kind = (kinds.get(key) or {}).get("kind")
    if kind == "switch":
        return [f"--{key}"] if value else []
    if kind == "switch_off":  # store_false: the flag turns it off
        return [] if value else [f"--{key}"]
    if isinstance(value, bool):
        value = "True" if value else "False"
    return [f"--{key}={value}"]


def format_e0s(e0s: dict[int, float]) -> str:
    """mace's --E0s dictionary syntax, keys sorted, full precision."""
    return "{" + ", ".join(f"{int(z)}: {float(e)!r}" for z, e in sorted(e0s.items())) + "}"


def build_args(strategy: Strategy, run: RunSpec) -> list[str]:
    """The complete ``mace_run_train`` argument list (without the program name)."""
    kinds = load_snapshot()
    if strategy.uses_foundation and not run.foundation_model:
        raise RegistryError(f"run {run.name}: strategy {strategy.name} needs a foundation model")
    if strategy.multihead and not run.replay_file:
        raise RegistryError(f"run {run.name}: multihead strategy {strategy.name} needs a replay file")
    if not run.e0s:
        raise RegistryError(f"run {run.name}: no E0s given")

    merged: dict[str, Any] = {}
    merged.update(run.common)
    if not strategy.uses_foundation:
        merged.update(run.scratch_model)
    merged.update(strategy.mace_args)
    merged.setdefault("ema", True)  # ema_decay has no effect without --ema
    merged.setdefault("save_cpu", True)

    args = [
        f"--name={run.name}",
        f"--seed={run.seed}",
        f"--train_file={run.train_file}",
        f"--valid_file={run.valid_file}",
        f"--E0s={format_e0s(run.e0s)}",
        f"--energy_key={ENERGY_KEY}",
        f"--forces_key={FORCES_KEY}",
        f"--stress_key={STRESS_KEY}",
        f"--device={run.device}",
        f"--default_dtype={run.default_dtype}",
        f"--max_num_epochs={run.max_num_epochs}",
        f"--batch_size={run.batch_size}",
        f"--valid_batch_size={run.batch_size}",
        f"--work_dir={run.out_dir}",
        f"--model_dir={run.out_dir}",
        f"--checkpoints_dir={run.out_dir}/checkpoints",
        f"--results_dir={run.out_dir}/results",
        f"--log_dir={run.out_dir}/logs",
    ]
    if run.test_file:
        args.append(f"--test_file={run.test_file}")
    if run.compute_stress:
        args.append("--compute_stress=True")
    if strategy.uses_foundation:
        args.append(f"--foundation_model={run.foundation_model}")
        args.append(f"--multiheads_finetuning={'True' if strategy.multihead else 'False'}")
    if strategy.multihead:
        args.append(f"--pt_train_file={run.replay_file}")
        if run.num_samples_pt:
            args.append(f"--num_samples_pt={run.num_samples_pt}")
    for key, value in merged.items():
        args += _render(key, value, kinds)
    return args


def variant_entry(config: dict, strategy: str, variant: str) -> dict:
    """The strategy's config entry with a named variant applied: the variant's ``mace_args``
    over the strategy's, and its ``replay`` set (multihead strategies only). ``base`` is the
    strategy as registered. Epochs are not a mace flag of the registry (``max_num_epochs`` is
    the workflow's): the variant's ``epochs_factor`` is applied by the run's spec."""
    entry = copy.deepcopy(config["strategies"][strategy])
    if variant == "base":
        return entry
    spec = (config.get("variants") or {}).get(variant)
    if spec is None:
        raise RegistryError(f"unknown variant {variant!r} (defined: {sorted(config.get('variants') or {})})")
    entry["mace_args"] = {**entry.get("mace_args", {}), **(spec.get("mace_args") or {})}
    if spec.get("replay"):
        if not entry.get("multihead"):
            raise RegistryError(f"variant {variant} sets a replay set, but strategy {strategy} is not multihead")
        entry["replay"] = spec["replay"]
    return entry


def epochs_factor(config: dict, variant: str) -> float:
    return float(((config.get("variants") or {}).get(variant) or {}).get("epochs_factor", 1))
