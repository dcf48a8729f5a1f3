"""Figure kinds as a registry: one module per kind, selected by a figure's ``kind``.

A kind module defines

- ``DESCRIPTION``: one line, what the kind computes and draws;
- ``TABLES``: the names of the tidy tables its collect step writes (``tables/<figure>_<name>.csv``);
- ``check(config, name, fig, axes) -> str | None``: kind-specific checks of a figure entry
  beyond the generic grid checks (``None``: fine; else ``".key: message"``);
- ``inputs(config, name, runs, paths) -> dict[str, list[str]]``: the per-run files (and any
  others) it reads, by role, built with :class:`mlipft.paths.Paths` (errors as ``Paths.errors``'
  selections of a run's table, read with ``common.collect_runs``);
- ``collect(inputs, spec) -> dict[str, DataFrame]``: the tables from those files;
- ``plot(tables, spec, outputs)``: the figure (PNG and PDF) from the tables only.

and has one branch in ``config/schemas/config.schema.yaml`` (``$defs/figure_<kind>``, listed
in the ``oneOf`` of ``figures``). Adding a kind is that module plus that branch; nothing in
``rules/`` changes (``rules/figures.smk`` loops over figures without looking at their kind).

    python -m mlipft.figures collect --spec JSON --inputs role=path ... --outputs table=path ...
    python -m mlipft.figures plot --spec JSON --tables table=path ... --outputs fig.png fig.pdf
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from types import ModuleType

REQUIRED = ("DESCRIPTION", "TABLES", "check", "inputs", "collect", "plot")


def kinds() -> dict[str, ModuleType]:
    """Every kind module of this package (a module is a kind when it has all of ``REQUIRED``)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in REQUIRED):
            found[info.name] = module
    return found


def kind(name: str) -> ModuleType:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        module = None
    if module is None or not all(hasattr(module, attr) for attr in REQUIRED):
        raise KeyError(f"no figure kind {name!r} (defined: {sorted(kinds())})")
    return module


def spec(config: dict, name: str, world_label: str | None = None) -> dict:
    """What collect and plot need to know of a figure: its entry, its grid, the strategy labels
    (in registry order), the evaluation sets (and the file each one reads), the derived sets of
    its benchmarks (mlipft.derive), the world and the scale."""
    from .. import config as cfg

    fig = config["figures"][name]
    axes = cfg.grid(config, name)
    labels = {s: config["strategies"][s].get("label", s) for s in config["strategies"] if s in axes["strategy"]}
    variants = config.get("variants") or {}
    benches = [config["benchmarks"][b] for b in axes["benchmark"]]
    derived = {k: v for b in benches for k, v in (b.get("derived") or {}).items()}
    files = {}
    for b in axes["benchmark"]:
        for set_name, set_spec in cfg.benchmark_evalsets(config, b).items():
            files.setdefault(set_name, set_spec.get("file", set_name))
    return {
        "derived": derived, "evalset_files": {e: files.get(e, e) for e in cfg.evalsets(config, name)},
        "conditions": cfg.conditions(config, name),
        "figure": name, "kind": fig["kind"], "description": fig["description"], "entry": fig, "axes": axes,
        "labels": labels, "evalsets": cfg.evalsets(config, name), "world": config["world"], "scale": config["scale"],
        "variant_labels": {v: (fig.get("variant_labels") or {}).get(v) or (variants.get(v) or {}).get("label", v)
                           for v in dict.fromkeys(axes["variant"] + [v for c in cfg.conditions(config, name)
                                                                     for v in c["variant"]])},
        "reference_label": world_label or {"mini": "GFN2-xTB reference"}.get(config["world"], "reference"),
    }


def caption(config: dict, name: str) -> str:
    """The report caption (reStructuredText): what the figure shows, the paper's version, the
    world, the scale and the grid behind it."""
    s = spec(config, name)
    fig = config["figures"][name]
    grid = "; ".join(f"{axis}: {', '.join(map(str, values))}" for axis, values in s["axes"].items() if values)
    if fig.get("conditions"):
        grid += ". *Conditions:* " + "; ".join(
            f"{c['label']} (fraction {', '.join(c['fraction'])}; variant {', '.join(c['variant'])}; seeds "
            f"{', '.join(map(str, c['seed']))})" for c in s["conditions"])
    lines = [f"**{name}** ({s['kind']}): {s['description']}.", ""]
    if fig.get("paper"):
        lines += [f"*The paper's version:* {fig['paper']}", ""]
    lines += [f"*World:* {s['world']}, scale {s['scale']}. *Grid:* {grid}. *Evaluation sets:* "
              f"{', '.join(s['evalsets'])}. *Kind:* {kind(s['kind']).DESCRIPTION}"]
    return "\n".join(lines)


def _pairs(items: list[str], what: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{what}: expected role=path, got {item!r}")
        out.setdefault(key, []).append(value)
    return out


def main(argv=None) -> None:
    from ..io import atomic_path

    parser = argparse.ArgumentParser(prog="python -m mlipft.figures", description="Collect or plot one figure")
    parser.add_argument("step", choices=["collect", "plot"])
    parser.add_argument("--spec", required=True, help="JSON of mlipft.figures.spec")
    parser.add_argument("--inputs", nargs="*", default=[], help="collect: role=path of every input file")
    parser.add_argument("--tables", nargs="*", default=[], help="plot: table=path of every collected table")
    parser.add_argument("--outputs", nargs="+", required=True, help="collect: table=path; plot: PNG and PDF paths")
    args = parser.parse_args(argv)
    figure = json.loads(args.spec)
    module = kind(figure["kind"])
    if args.step == "collect":
        outputs = {k: v[0] for k, v in _pairs(args.outputs, "--outputs").items()}
        if set(outputs) != set(module.TABLES):
            raise SystemExit(f"--outputs: kind {figure['kind']} writes the tables {module.TABLES}, got {sorted(outputs)}")
        tables = module.collect(_pairs(args.inputs, "--inputs"), figure)
        for table, path in outputs.items():
            with atomic_path(path) as tmp:
                tables[table].to_csv(tmp, index=False)
    else:
        import pandas as pd

        tables = {k: pd.read_csv(v[0]) for k, v in _pairs(args.tables, "--tables").items()}
        module.plot(tables, figure, args.outputs)


if __name__ == "__main__":
    main()
