"""Data card (Markdown) of one scale of the mini world: benchmarks, corpora, foundations, quality.

Every number in the card is read from the files under ``--data-dir`` (extxyz frame headers,
``summary.json``, ``trainable.json``, ``loss_curves.csv``), from the foundation-quality CSV of
:mod:`mlipft.quality` and from the manifest of :mod:`mlipft.manifest`; the prose comes from the
generator modules' ``CARD`` dicts. Nothing is typed in.

Layout read (``<scale>`` = ``--data-dir``)::

    corpora/<corpus>/*.xyz, summary.json         (families/modes: summary.json, else the xyz info)
    benchmarks/<b>/<FILES>.xyz, <EXTRA_FILES>, summary.json
    foundations/<f>/model.model, loss_curves.csv, trainable.json

CLI::

    python -m mlipft.datacard --data-dir data/mini/mini --foundations JSON_OR_@FILE
        --benchmarks JSON_OR_@FILE [--quality quality.csv] [--manifest MANIFEST.tsv]
        --output data/mini/mini/README.md

``--foundations``: ``{name: foundation config}`` (``corpus``, optional ``corpus_fraction``,
``description``, ``model``: the architecture's mace arguments), e.g. the workflow config's
``foundations``. ``--benchmarks``: ``{name: {"generator": module of mlipft.mini, "test": file
name}}``. In the quality CSV the common test set is the dataset ``test`` and a benchmark's test
file is the dataset named after the benchmark (``<b>/<test>`` and ``<b>_<test>`` are accepted too).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import numbers
from pathlib import Path

import pandas as pd

from . import manifest as mf
from .io import atomic_path, read_configs, read_json
from .keys import CONFIG_TYPE_KEY

COMMON_TEST = "test"
CARD_ORDER = ["paper_counterpart", "level", "elements", "same", "different", "notes"]
CARD_LABELS = {
    "paper_counterpart": "Stands for (paper)", "level": "Level of theory", "elements": "Elements",
    "same": "Same as in the paper", "different": "Different from the paper", "notes": "Notes",
}
TRAINING_ARGS = {"lr", "ema_decay", "clip_grad", "weight_decay", "batch_size", "max_num_epochs", "ema",
                 "swa", "scheduler_patience", "patience", "loss", "energy_weight", "forces_weight"}
QUALITY_COLUMNS = [
    ("n_configs", "configs"), ("energy_rmse_mev_per_atom", "E RMSE raw (meV/atom)"),
    ("energy_rmse_refit_mev_per_atom", "E RMSE, E0s refitted (meV/atom)"),
    ("force_rmse_mev_per_A", "F RMSE (meV/Å)"), ("force_mae_mev_per_A", "F MAE (meV/Å)"),
]


# --------------------------------------------------------------------------- formatting

def fmt(value, digits: int = 1) -> str:
    """Numbers as the card prints them (floats with ``digits`` decimals, NaN/None as a dash)."""
    if value is None or value is pd.NA or (isinstance(value, numbers.Real) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.{digits}f}"
    return str(value)


def _cell(value) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _prose(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_prose(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_prose(v) for v in value)
    return fmt(value)


def _label(key: str) -> str:
    return CARD_LABELS.get(key, key.replace("_", " ").capitalize())


# --------------------------------------------------------------------------- file facts

def xyz_facts(path: Path) -> dict:
    """Configurations and atoms per configuration of an extxyz file (frame headers only)."""
    if not path.is_file():
        return {"configs": None, "atoms": "missing"}
    sizes = mf.xyz_frame_sizes(path)
    if not sizes:
        atoms = "—"
    elif min(sizes) == max(sizes):
        atoms = str(sizes[0])
    else:
        atoms = f"{min(sizes)}–{max(sizes)}"
    return {"configs": len(sizes), "atoms": atoms, "min": min(sizes, default=None), "max": max(sizes, default=None)}


def _file_row(path: Path) -> list:
    name = path.name
    if path.suffix == ".xyz":
        facts = xyz_facts(path)
        return [f"`{name}`", facts["configs"], "configurations", facts["atoms"]]
    if not path.is_file():
        return [f"`{name}`", None, "missing", "—"]
    unit = {".csv": "data rows", ".json": "top-level keys"}.get(path.suffix, "")
    return [f"`{name}`", mf.count(path) if unit else None, unit or f"{path.stat().st_size} bytes", "—"]


def _summary(directory: Path) -> dict:
    path = directory / "summary.json"
    return read_json(path) if path.is_file() else {}


def _seconds(summary: dict) -> str | None:
    if "seconds" not in summary:
        return None
    text = f"{fmt(float(summary['seconds']))} s"
    if "seed" in summary:
        text += f", seed {summary['seed']}"
    return text


# --------------------------------------------------------------------------- sections

def benchmark_section(data_dir: Path, name: str, spec: dict) -> str:
    module = importlib.import_module(f"mlipft.mini.{spec.get('generator', name)}")
    card = dict(getattr(module, "CARD", {}))
    scale = data_dir.name
    directory = data_dir / "benchmarks" / name
    out = [f"### {name}", ""]
    keys = [k for k in CARD_ORDER if k in card]
    keys += [k for k in card if k not in CARD_ORDER and k not in ("name", "sizes")]
    for key in keys:
        out.append(f"- **{_label(key)}:** {_prose(card[key])}")
    sizes = card.get("sizes")
    if isinstance(sizes, dict) and scale in sizes:
        out.append(f"- **Size at scale `{scale}`:** {_prose(sizes[scale])}")
    elif sizes:
        out.append(f"- **Sizes:** {_prose(sizes)}")
    seconds = _seconds(_summary(directory))
    if seconds:
        out.append(f"- **Generated in:** {seconds} (summary.json)")
    files = [f"{f}.xyz" for f in getattr(module, "FILES", ())]
    if not files:  # a generator without FILES: whatever xyz it wrote
        files = sorted(p.name for p in directory.glob("*.xyz"))
    labelled = [directory / f for f in files if f != "isolated_atoms.xyz"]
    levels = info_counts(labelled, ("level",))["level"]
    if levels:
        out.append(f"- **Level (`level` of the xyz files):** {', '.join(levels)}")  # files overlap: no counts
    test = spec.get("test")
    if test:
        out.append(f"- **Zero-shot test file:** `{Path(test).stem}.xyz`")
    out.append("")
    files += sorted(p.name for p in directory.glob("*.xyz") if p.name not in files)  # written beyond FILES
    files += list(getattr(module, "EXTRA_FILES", ()))
    rows = [_file_row(directory / f) for f in files]
    out.append(markdown_table(["file", "count", "unit", "atoms per configuration"], rows))
    return "\n".join(out) + "\n"


def info_counts(paths: list[Path], keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """``{key: {value: configurations}}`` over the ``atoms.info`` of extxyz files (one read each)."""
    counts: dict[str, dict[str, int]] = {k: {} for k in keys}
    for path in paths:
        if not path.is_file() or path.stat().st_size == 0:
            continue
        for atoms in read_configs(path):
            for key in keys:
                value = atoms.info.get(key)
                if value is not None:
                    counts[key][str(value)] = counts[key].get(str(value), 0) + 1
    return {k: dict(sorted(v.items())) for k, v in counts.items()}


def _counts_text(counts: dict, unit: str = "") -> str:
    if unit:
        return ", ".join(f"{k} ({fmt(v)} {unit})" for k, v in counts.items())
    return ", ".join(f"{k} {fmt(v)}" for k, v in counts.items())


def corpus_section(directory: Path) -> str:
    summary = _summary(directory)
    out = [f"### {directory.name}", ""]
    seconds = _seconds(summary)
    if seconds:
        out.append(f"- **Generated in:** {seconds} (summary.json)")
    files = summary.get("files") if isinstance(summary.get("files"), dict) else summary.get("summary", {})
    if isinstance(files, dict) and "failed" in files:
        out.append(f"- **Failed labels (skipped and replaced):** {fmt(files['failed'])} (summary.json)")
    xyz = sorted(directory.glob("*.xyz"))
    labelled = [p for p in xyz if p.name != "isolated_atoms.xyz"]
    info = info_counts(labelled, (CONFIG_TYPE_KEY, "mode", "level"))
    if info["level"]:
        out.append(f"- **Level (`level` of the xyz files):** {_counts_text(info['level'], 'configurations')}")
    for key, info_key in (("families", CONFIG_TYPE_KEY), ("modes", "mode")):
        counts, source = summary.get(key), "summary.json"
        if not isinstance(counts, dict):
            counts, source = info[info_key], f"`{info_key}` of the xyz files"
        if counts:
            out.append(f"- **{key.capitalize()}** ({source}): {_counts_text(counts)}")
    out.append("")
    facts = {p: xyz_facts(p) for p in xyz}
    out.append(markdown_table(["file", "configurations", "atoms per configuration"],
                              [[f"`{p.name}`", f["configs"], f["atoms"]] for p, f in facts.items()])
               if xyz else "_no xyz file_")
    return "\n".join(out) + "\n"


def _architecture(config: dict) -> str:
    model = config.get("model") or {}
    return ", ".join(f"{k}={_prose(v)}" for k, v in model.items() if k not in TRAINING_ARGS) or "—"


def foundations_section(data_dir: Path, foundations: dict) -> str:
    rows = []
    for name, config in foundations.items():
        directory = data_dir / "foundations" / name
        corpus = config.get("corpus", "—")
        corpus = " + ".join(corpus) if isinstance(corpus, list) else corpus
        if config.get("corpus_fraction") is not None:
            corpus = f"{corpus} (first {float(config['corpus_fraction']):.0%} of train.xyz)"
        trainable = directory / "trainable.json"
        counts = read_json(trainable) if trainable.is_file() else {}
        curves = directory / "loss_curves.csv"
        epochs = None
        if curves.is_file():
            frame = pd.read_csv(curves)
            if "epoch" in frame and frame["epoch"].notna().any():
                epochs = int(frame["epoch"].max())
        rows.append([name, corpus, _architecture(config), counts.get("trainable"), counts.get("total"), epochs,
                     "" if (directory / "model.model").is_file() else "missing"])
    table = markdown_table(["foundation", "corpus", "architecture", "trainable parameters", "total parameters",
                            "last epoch", "model.model"], rows)
    described = [f"- **{n}**: {c['description']}" for n, c in foundations.items() if c.get("description")]
    return table + ("\n\n" + "\n".join(described) if described else "") + "\n"


def _quality_rows(quality: pd.DataFrame, foundation: str, candidates: list[str]) -> pd.Series | None:
    for dataset in candidates:
        hit = quality[(quality["foundation"] == foundation) & (quality["dataset"] == dataset)]
        if len(hit):
            return hit.iloc[0]
    return None


def _metrics(row: pd.Series) -> list:
    """The metric cells of a quality row; a refit with no degree of freedom left is starred."""
    cells = [row.get(c) for c, _ in QUALITY_COLUMNS]
    rank = row.get("refit_rank")
    if rank is not None and not pd.isna(rank) and int(row["n_configs"]) <= int(rank):
        i = [c for c, _ in QUALITY_COLUMNS].index("energy_rmse_refit_mev_per_atom")
        cells[i] = f"{fmt(cells[i])} *"
    return cells


def quality_section(quality: pd.DataFrame, foundations: dict, benchmarks: dict) -> str:
    metrics = [label for _, label in QUALITY_COLUMNS]
    rows_a = []
    for name in foundations:
        row = _quality_rows(quality, name, [COMMON_TEST])
        if row is not None:
            rows_a.append([name, *_metrics(row)])
    rows_b = []
    for bench, spec in benchmarks.items():
        test = Path(spec.get("test", "test")).stem
        candidates = [bench, f"{bench}/{test}", f"{bench}_{test}", f"{bench}:{test}"]
        for name in foundations:
            row = _quality_rows(quality, name, candidates)
            if row is not None:
                level = row.get("level", "")
                rows_b.append([bench, f"`{test}.xyz`", "—" if pd.isna(level) or level == "" else level,
                               name, *_metrics(row)])
    intro = ("Zero-shot errors of each foundation, evaluated in batches with mace-torch "
             "(`python -m mlipft.quality`). *Raw*: the model as it is, with its own E0s. *E0s "
             "refitted*: after a per-element least-squares refit of the energy offsets to the dataset, "
             "the meaningful energy error when the dataset's level of theory is not the foundation's; "
             "`*`: no more configurations than fitted offsets (the refit is exact, not a measure of "
             "quality).")
    out = [intro, "",
           f"#### (a) Common test set (`corpora/test/test.xyz`, dataset `{COMMON_TEST}`)", ""]
    out.append(markdown_table(["foundation", *metrics], rows_a) if rows_a else "_not evaluated_")
    out += ["", "#### (b) Benchmark test files", ""]
    out.append(markdown_table(["benchmark", "file", "level", "foundation", *metrics], rows_b)
               if rows_b else "_not evaluated_")
    return "\n".join(out) + "\n"


def manifest_section(data_dir: Path, manifest_path: Path) -> str:
    frame = mf.read(manifest_path)
    problems = mf.check(data_dir, manifest_path, strict=True)
    status = (f"all {len(frame)} files match `{manifest_path.name}` (sha256), and no file is unlisted"
              if not problems else f"{len(problems)} problem(s): " + "; ".join(problems))
    commands = list(dict.fromkeys(c for c in frame["command"] if c))
    rows = [[f"`{r.file}`", r.count or "—", r.bytes, r.level or "—", f"`{r.sha256[:12]}`",
             f"[{commands.index(r.command) + 1}]" if r.command else "—"] for r in frame.itertuples(index=False)]
    out = [f"Check at rendering time: {status}.", "",
           markdown_table(["file", "count", "bytes", "level", "sha256 (first 12)", "command"], rows), "",
           "Commands:", ""]
    out += [f"{i}. `{c}`" for i, c in enumerate(commands, 1)]
    return "\n".join(out) + "\n"


def render(data_dir: str | Path, foundations: dict, benchmarks: dict,
           quality: pd.DataFrame | str | Path | None = None, manifest_path: str | Path | None = None) -> str:
    """The Markdown data card of ``data_dir`` (one scale of the mini world)."""
    data_dir = Path(data_dir)
    if quality is not None and not isinstance(quality, pd.DataFrame):
        quality = pd.read_csv(quality, keep_default_na=True)
    intro = ("Rendered by `python -m mlipft.datacard` from the files in this folder; every number is read "
             "from them. Corpora are labelled at the foundation level (GFN1-xTB), benchmarks at the "
             "level each card names.")
    out = [f"# Mini world, scale `{data_dir.name}`: data card", "", intro, "", "## Benchmarks", ""]
    out += [benchmark_section(data_dir, name, spec) for name, spec in benchmarks.items()]
    # generated corpora (a union's folder, e.g. mptrj+omat, holds only its E0s)
    corpora = sorted(p for p in (data_dir / "corpora").glob("*") if (p / "summary.json").exists())
    out += ["## Corpora", ""] + ([corpus_section(p) for p in corpora] or ["_none_\n"])
    out += ["## Foundations", "", foundations_section(data_dir, foundations)]
    if quality is not None:
        out += ["## Foundation quality", "", quality_section(quality, foundations, benchmarks)]
    if manifest_path is not None:
        out += ["## Manifest", "", manifest_section(data_dir, Path(manifest_path))]
    return "\n".join(out).rstrip() + "\n"


def _json_arg(text: str) -> dict:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit(f"expected a JSON object, got {type(value).__name__}")
    return value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="one scale of the mini world, e.g. data/mini/mini")
    parser.add_argument("--foundations", required=True, help="JSON {name: foundation config} or @file.json")
    parser.add_argument("--benchmarks", required=True, help='JSON {name: {"generator", "test"}} or @file.json')
    parser.add_argument("--quality", help="foundation-quality CSV (python -m mlipft.quality table)")
    parser.add_argument("--manifest", help="MANIFEST.tsv of the data dir (python -m mlipft.manifest build)")
    parser.add_argument("--output", required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    text = render(args.data_dir, _json_arg(args.foundations), _json_arg(args.benchmarks), args.quality, args.manifest)
    with atomic_path(args.output) as tmp:
        tmp.write_text(text)


if __name__ == "__main__":
    main()
