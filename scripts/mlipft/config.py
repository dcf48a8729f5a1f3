"""Configuration: schema validation, cross-reference checks, and the experiment grid.

``check(config)`` runs before Snakemake builds the DAG: every bad input stops the run with a
message naming the config entry, before any job starts.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import importlib.util
import re
import sys
from pathlib import Path

import yaml

from .paths import CONSTRAINTS, Run, format_fraction
from .registry import (
    RegistryError,
    check_flags,
    effective_e0_mode,
    strategies_from_config,
    strategy_from_config,
    variant_entry,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schemas" / "config.schema.yaml"
#: The world-independent layer (strategy registry, variants, training defaults, figure grids),
#: loaded first; a world's file (config/config.yaml, config/paper.yaml, your own) goes over it.
SHARED = ROOT / "config" / "shared.yaml"
#: Figure-grid axes, and the config key of each (a scalar or a list).
GRID_AXES = {"benchmark": "benchmark", "trainset": "trainset", "foundation": "foundation",
             "strategy": "strategies", "e0s": "e0s", "fraction": "fractions", "variant": "variants",
             "seed": "seeds"}


class ConfigError(ValueError):
    """A configuration entry that cannot work; the message names the entry."""


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML, and Snakemake
    reading a ``--configfile``, silently keep the last one). A merge key's keys (``<<: *anchor``)
    may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: construct_mapping says so
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1}; YAML would keep "
                        "only the last one)", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load(path: str | Path) -> dict:
    """A YAML file, read strictly (:class:`StrictLoader`): a duplicate key or a syntax error is a
    :class:`ConfigError` naming the file, line and column."""
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"config file {path}" + (f", line {mark.line + 1}, column {mark.column + 1}" if mark else "")
        context = ""
        if err.context and err.context_mark is not None and err.context_mark is not mark:
            context = f" ({err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
        elif err.context:
            context = f" ({err.context})"
        raise ConfigError(f"{where}: {err.problem or err.context}{context if err.problem else ''}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: {err}") from None


def check_files(paths) -> None:
    """Re-read every config file strictly (:func:`load`): Snakemake has already loaded them with
    a YAML reader that keeps the last of two equal keys without a word. ``paths``: Snakemake's
    ``workflow.configfiles``."""
    for path in dict.fromkeys(str(p) for p in paths):
        data = load(path)
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: not a mapping of config keys (got {type(data).__name__})")


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, dictionaries merged key by key (Snakemake's ``update_config``)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_world(*paths: str | Path, shared: str | Path = SHARED) -> dict:
    """The configuration Snakemake builds: ``config/shared.yaml``, then each world file over it
    (``load_world(ROOT / "config/config.yaml")`` is the mini world), then :func:`resolve`."""
    config = load(shared)
    for path in paths:
        config = merge(config, load(path))
    return resolve(config)


def resolve(config: dict) -> dict:
    """Drop the figures a world declares unavailable (``unavailable_figures``, with the reason),
    then lay the chosen scale's figure overrides (``scales.<scale>.figures.<name>``: a smaller
    grid, e.g. two ice phases at smoke scale) over the figures, in place, and return the config.
    Run after layering, before validation."""
    figures = config.get("figures", {})
    for name in config.get("unavailable_figures", {}) or {}:
        figures.pop(name, None)
    if config.get("world") == "own":  # your own system's figures only: the shared grids name the paper's benchmarks
        for name, entry in (load(SHARED).get("figures") or {}).items():
            if figures.get(name) == entry:  # one the own file names is kept, its keys over the shared entry's
                figures.pop(name)
    scale = (config.get("scales") or {}).get(config.get("scale")) or {}
    for name, overrides in (scale.get("figures") or {}).items():
        if name in figures and isinstance(overrides, dict):
            figures[name] = merge(figures[name], overrides)
    return config


def validate_schema(config: dict, schema_path: str | Path = SCHEMA) -> None:
    """JSON-schema validation with a message that names the offending key path."""
    import jsonschema

    schema = load(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    # a misspelt key is also a missing required one: report the unknown key (with its hint)
    errors = sorted(validator.iter_errors(config),
                    key=lambda e: (list(e.absolute_path), e.validator != "additionalProperties"))
    if errors:
        err = errors[0]
        if err.validator == "oneOf" and list(err.absolute_path)[:1] == ["figures"] and isinstance(err.instance, dict):
            err = _figure_branch_error(err, schema)
        err = _unique_items_error(err)
        where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            unknown = sorted(k for k in err.instance if k not in known and not k.startswith("x-"))
            message = (f"unknown key(s) {unknown}; allowed: {sorted(known)}"
                       + (" (and x-* anchors)" if "^x-" in err.schema.get("patternProperties", {}) else "")
                       + did_you_mean(unknown, known))
        raise ConfigError(f"config entry {where}: {message}")


def did_you_mean(unknown, known) -> str:
    """``; did you mean 'figures'?`` for the unknown keys that look like a known one (difflib)."""
    hints = {}
    for key in unknown:
        close = [k for k in known if k.replace("_", "").lower() == str(key).replace("_", "").lower()]
        close = close or difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.75)
        if close:
            hints[key] = close[0]
    if not hints:
        return ""
    if len(unknown) == 1:
        return f"; did you mean {hints[unknown[0]]!r}?"
    return "; did you mean " + ", ".join(f"{v!r} for {k!r}" for k, v in hints.items()) + "?"


def _unique_items_error(err):
    """A list with a repeated value (``uniqueItems``, also inside a ``oneOf`` of a string or a
    list): name the value, not jsonschema's "has non-unique elements"."""
    if err.validator == "oneOf" and isinstance(err.instance, list):
        inner = [e for e in err.context if e.validator == "uniqueItems"]
        if inner:
            err = inner[0]
    if err.validator == "uniqueItems" and isinstance(err.instance, list):
        seen = []
        for value in err.instance:
            if value in seen:
                return _Message(list(err.absolute_path), f"{value!r} is listed twice")
            seen.append(value)
    return err


def _figure_branch_error(err, schema: dict):
    """A figure failed every kind's branch: report the error of the branch of its own kind (or
    that its kind is unknown), not jsonschema's "is not valid under any of the given schemas"."""
    import jsonschema

    kinds = {}
    for ref in err.schema["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        branch = schema["$defs"][name]
        kinds[branch["properties"]["kind"]["const"]] = name
    kind = err.instance.get("kind")
    if kind not in kinds:
        return _Message(list(err.absolute_path) + ["kind"], f"{kind!r} is not a figure kind (schema branches: {sorted(kinds)})")
    sub = {**schema, "$ref": f"#/$defs/{kinds[kind]}"}
    sub.pop("properties", None), sub.pop("required", None), sub.pop("allOf", None)
    sub.pop("additionalProperties", None), sub.pop("patternProperties", None)
    inner = sorted(jsonschema.Draft202012Validator(sub).iter_errors(err.instance), key=lambda e: list(e.absolute_path))
    if not inner:
        return err
    # an invalid value (or a missing required key) also makes every key "unevaluated": report the
    # value's own error first, then an unknown key (with its hint: a misspelt key is also a missing
    # required one), then a missing key
    branch = schema["$defs"][kinds[kind]]
    allowed = (set(schema["$defs"]["figure_base"]["properties"]) | set(branch.get("properties", {}))
               | (set(schema["$defs"]["figure_grid"]["properties"])
                  if {"$ref": "#/$defs/figure_grid"} in branch.get("allOf", []) else set()))
    unknown = sorted(set(err.instance) - allowed)
    first = next((e for e in inner if e.validator not in ("unevaluatedProperties", "required")), None)
    if first is None and unknown:
        message = (f"unknown key(s) {unknown} for a figure of kind {kind}; allowed: {sorted(allowed)}"
                   + did_you_mean(unknown, allowed))
        return _Message(list(err.absolute_path), message)
    first = first or next((e for e in inner if e.validator == "required"), inner[0])
    return _Message(list(err.absolute_path) + list(first.absolute_path), first.message)


class _Message:
    def __init__(self, path, message):
        self.absolute_path, self.message, self.validator, self.instance, self.schema = path, message, None, None, {}


#: The keys of a figure that list values: a value listed twice is a typo or two spellings of one
#: value (fractions compare as numbers, by their run directory: 0.1 and 0.10 are one fraction).
LIST_KEYS = ("benchmark", "trainset", "foundation", "strategies", "e0s", "fractions", "variants", "seeds",
             "evalsets", "neb_reactions")


def check_duplicates(config: dict) -> None:
    """No figure lists a value twice (before the schema: its own message names the value)."""
    figures = config.get("figures")
    for name, fig in (figures.items() if isinstance(figures, dict) else ()):
        if not isinstance(fig, dict):
            continue
        for key in LIST_KEYS:
            values = fig.get(key)
            if not isinstance(values, list):
                continue
            seen = {}
            for value in values:
                if key == "fractions":
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        continue  # the schema says what is wrong with it
                    ident = format_fraction(value)
                else:
                    try:
                        hash(value)
                    except TypeError:
                        continue
                    ident = value  # 0 and 0.0: one seed
                if ident in seen:
                    where = f"config entry figures.{name}.{key}"
                    if key == "fractions" and repr(seen[ident]) != repr(value):
                        raise ConfigError(f"{where}: {seen[ident]!r} and {value!r} are the same fraction "
                                          f"(run directory f{ident}), listed twice")
                    raise ConfigError(f"{where}: {value!r} is listed twice")
                seen[ident] = value


def corpus_parts(corpus: str | list[str] | None) -> list[str]:
    """The corpora of a foundation's ``corpus`` entry (one name, or a list trained on together),
    or of a union's folder name ``a+b`` (:func:`corpus_name`)."""
    if corpus is None:
        return [None]
    return corpus.split("+") if isinstance(corpus, str) else list(corpus)


def corpus_name(corpus: str | list[str]) -> str:
    """The folder of a (union) corpus: ``mptrj`` or ``mptrj+omat`` (where a union's E0s live)."""
    return "+".join(corpus_parts(corpus))


def as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def strategy_names(config: dict, figure: str) -> list[str]:
    return grid(config, figure)["strategy"]


def grid(config: dict, figure: str) -> dict[str, list]:
    """The axes of a figure's experiment grid, each a list: benchmark, trainset, foundation (the
    world's ``main_foundation`` when unset), strategy (``all``: the registry), e0s, fraction,
    variant (``base`` when unset) and seed. A figure without strategies, E0s, fractions or seeds
    (the schema allows it for kinds that fine-tune nothing) has an empty axis: no runs."""
    fig = config["figures"][figure]
    axes = {}
    for axis, key in GRID_AXES.items():
        value = fig.get(key)
        if value is None and axis == "foundation":
            value = config.get("main_foundation")
        if value is None and axis == "variant":
            value = "base"
        if value is None and axis == "trainset":
            value = "train"
        if value == "all" and axis in ("strategy", "foundation"):
            value = list(config["strategies" if axis == "strategy" else "foundations"])
        if value is None and axis in ("strategy", "e0s", "fraction", "seed"):
            value = []  # a figure of no fine-tunes (kind benchmarks_overview)
        axes[axis] = as_list(value)
    axes["fraction"] = [format_fraction(f) for f in axes["fraction"]]
    return axes


def conditions(config: dict, figure: str) -> list[dict]:
    """The conditions of a figure (``conditions:``, e.g. Fig. 20's "10 %", "10 %, 10x epochs",
    "100 %"; Fig. 16's replay variants on the multihead strategy only): each a label and the grid
    axes strategy, fraction, variant and seed it overrides, resolved against the figure's own axes. A figure without conditions is one condition (label "") of
    its whole grid. The figure's runs are the union over its conditions."""
    axes = grid(config, figure)
    entry = config["figures"][figure]
    out = []
    for cond in entry.get("conditions") or [{"label": ""}]:
        resolved = {"label": cond.get("label", "")}
        for axis, key in (("strategy", "strategies"), ("fraction", "fractions"), ("variant", "variants"),
                          ("seed", "seeds")):
            value = cond.get(key)
            if value is None:
                resolved[axis] = axes[axis]
            else:
                resolved[axis] = [format_fraction(v) for v in as_list(value)] if axis == "fraction" \
                    else [int(v) for v in as_list(value)] if axis == "seed" else as_list(value)
        out.append(resolved)
    return out


def evalsets(config: dict, figure: str) -> list[str]:
    """Evaluation sets a figure's error analyses run on (``test`` when unset)."""
    return as_list(config["figures"][figure].get("evalsets", "test"))


def benchmark_evalsets(config: dict, benchmark: str) -> dict[str, dict]:
    """A benchmark's evaluation sets: ``test`` (its test file) and every entry of ``evalsets``,
    each as ``{"file": <benchmark file stem>}`` or ``{"corpus": <corpus>}`` (its test.xyz)."""
    bench = config["benchmarks"][benchmark]
    sets = {"test": {"file": bench["test"]}}
    for name, spec in (bench.get("evalsets") or {}).items():
        sets[name] = {"file": spec} if isinstance(spec, str) else dict(spec)
    return sets


def check_names(config: dict) -> None:
    """Names that become path components (benchmarks, foundations, strategies, variants, replay
    sets, a benchmark's training and evaluation sets) must match their wildcard pattern
    (:data:`mlipft.paths.CONSTRAINTS`); otherwise Snakemake reports only a missing input file."""
    sections = {"benchmarks": "benchmark", "foundations": "foundation", "strategies": "strategy",
                "variants": "variant", "replay": "replay"}
    names = [(f"{section}.{name}", wildcard, name) for section, wildcard in sections.items()
             for name in config.get(section) or {}]
    for bench, entry in (config.get("benchmarks") or {}).items():
        names += [(f"benchmarks.{bench}.trainsets", "trainset", t) for t in entry.get("trainsets") or []]
        names += [(f"benchmarks.{bench}.evalsets.{e}", "evalset", e) for e in entry.get("evalsets") or {}]
        names += [(f"benchmarks.{bench}.derived.{d}", "name", d) for d in entry.get("derived") or {}]
    for where, wildcard, name in names:
        if not re.fullmatch(CONSTRAINTS[wildcard], str(name)):
            raise ConfigError(f"config entry {where}: the name {name!r} becomes part of file paths and must "
                              f"match {CONSTRAINTS[wildcard]} (letters, digits{', _' if '_' in CONSTRAINTS[wildcard] else ''})")


def check(config: dict, root: str | Path = ROOT) -> None:
    """Cross-reference checks the schema cannot express. Raises :class:`ConfigError`."""
    check_duplicates(config)
    validate_schema(config)
    check_names(config)
    if not config["figures"]:
        dropped = sorted(config.get("unavailable_figures") or {})
        raise ConfigError("config entry figures: no figure to build"
                          + (f" (this world's unavailable_figures drops every one: {dropped})" if dropped
                             else " (figures is empty)"))
    scales = config["scales"]
    if config["scale"] not in scales:
        raise ConfigError(f"config entry scale: {config['scale']!r} is not one of {sorted(scales)}")
    scale = scales[config["scale"]]
    try:
        strategies = strategies_from_config(config)
    except RegistryError as err:
        raise ConfigError(str(err)) from err
    blocks = {f"training.{k}": config["training"].get(k) for k in ("common", "pretrain")}
    blocks.update({f"foundations.{n}.model": f.get("model") for n, f in config["foundations"].items()})
    for where, args in blocks.items():
        try:
            check_flags(args or {}, f"config entry {where}")
        except RegistryError as err:
            raise ConfigError(str(err)) from err
    for scale_name, block in scales.items():
        known = set(config["figures"]) | set(config.get("unavailable_figures") or {})
        for name in block.get("figures") or {}:
            if name not in known:
                raise ConfigError(f"config entry scales.{scale_name}.figures.{name}: no figure {name!r} to "
                                  f"override{did_you_mean([name], sorted(known))}")
        for name in (block.get("finetune") or {}).get("epochs_by_strategy") or {}:
            if name not in strategies:
                raise ConfigError(f"config entry scales.{scale_name}.finetune.epochs_by_strategy.{name}: not a strategy"
                                  f" (defined: {sorted(strategies)}){did_you_mean([name], strategies)}")
    for name, strat in strategies.items():
        # own world: a replay set is needed only where a figure uses it (mlipft.own.check_config)
        if strat.replay and strat.replay not in config["replay"] and config["world"] != "own":
            raise ConfigError(f"config entry strategies.{name}.replay: unknown replay set {strat.replay!r} "
                              f"(defined: {sorted(config['replay'])})")
    for name, bench in config["benchmarks"].items():
        where = f"config entry benchmarks.{name}"
        if config["world"] == "mini" and importlib.util.find_spec(f"mlipft.mini.{bench['generator']}") is None:
            raise ConfigError(f"{where}.generator: no module mlipft.mini.{bench['generator']}")
        for trainset in bench["trainsets"]:
            if trainset not in bench["validsets"]:
                raise ConfigError(f"{where}.validsets: no validation set for training set {trainset!r}")
        check_derived(name, bench)
        if config["world"] == "mini" and name not in scale["benchmarks"]:
            raise ConfigError(f"config entry scales.{config['scale']}.benchmarks: no parameters for benchmark {name!r}")
    for name, found in config["foundations"].items():
        where = f"config entry foundations.{name}"
        if found["kind"] == "pretrain":
            corpora = scale.get("corpora", {})
            parts = corpus_parts(found.get("corpus"))
            for part in parts:
                if part not in corpora or part == config.get("foundation_testset"):
                    raise ConfigError(f"{where}.corpus: {part!r} is not a training corpus of scale "
                                      f"{config['scale']!r} (defined: {sorted(set(corpora) - {config.get('foundation_testset')})})")
            if len(parts) > 1 and found.get("corpus_fraction") is not None:
                raise ConfigError(f"{where}.corpus_fraction: only a single corpus can be cut to a fraction "
                                  f"(corpus is {parts})")
            if "model" not in found:
                raise ConfigError(f"{where}.model: a pretrained foundation needs its architecture")
            if "pretrain" not in scale:
                raise ConfigError(f"config entry scales.{config['scale']}.pretrain: needed by the pretrained "
                                  f"foundation {name!r}")
        elif found["kind"] == "file" and config["world"] != "own":
            raise ConfigError(f"{where}.kind: a foundation given by its file (kind: file) belongs to world own")
        elif found["kind"] == "download" and "source" not in found:
            raise ConfigError(f"{where}.source: a downloaded foundation needs a source id")
    for name, rep in config["replay"].items():
        if "file" in rep and config["world"] != "own":
            raise ConfigError(f"config entry replay.{name}.file: replay sets given by a file belong to world own "
                              f"(this world draws them from a corpus)")
        if "combine" in rep:
            unknown = [p for p in rep["combine"] if p not in config["replay"] or p == name
                       or "combine" in config["replay"][p]]
            if unknown:
                raise ConfigError(f"config entry replay.{name}.combine: {unknown} are not other, non-combined "
                                  f"replay sets (defined: {sorted(config['replay'])})")
        elif config["world"] == "mini" and rep["corpus"] not in scale.get("corpora", {}):
            raise ConfigError(f"config entry replay.{name}.corpus: {rep['corpus']!r} is not a corpus of scale "
                              f"{config['scale']!r}")
    testset = config.get("foundation_testset")
    if testset is not None and testset not in scale.get("corpora", {}):
        raise ConfigError(f"config entry foundation_testset: {testset!r} is not a corpus of scale "
                          f"{config['scale']!r} (defined: {sorted(scale.get('corpora', {}))})")
    check_variants(config)
    for name, bench in config["benchmarks"].items():
        for evalset, spec in benchmark_evalsets(config, name).items():
            corpus = spec.get("corpus")
            if corpus is not None and (config["world"] != "mini" or corpus not in scale.get("corpora", {})):
                raise ConfigError(f"config entry benchmarks.{name}.evalsets.{evalset}.corpus: {corpus!r} is not a "
                                  f"corpus of scale {config['scale']!r}")
    main = config.get("main_foundation")
    if main is not None and main not in config["foundations"]:
        raise ConfigError(f"config entry main_foundation: unknown foundation {main!r} (defined: {sorted(config['foundations'])})")
    for name in config.get("unavailable_figures") or {}:
        if name in config["figures"]:
            raise ConfigError(f"config entry unavailable_figures.{name}: the figure is still defined (resolve() drops it)")
    for name, fig in config["figures"].items():
        check_figure(config, name, fig, strategies)
    if "sources" in config and not (Path(root) / config["sources"]).exists():
        raise ConfigError(f"config entry sources: file not found: {config['sources']}")
    if config["world"] == "paper":
        check_paper(config, root)
    elif config["world"] == "own":
        from .own import check_config

        check_config(config)


def check_derived(name: str, bench: dict) -> None:
    """A derived set is drawn from a file of the benchmark itself (not from another derived set)
    and does not shadow one."""
    derived = bench.get("derived") or {}
    own = ({*bench["trainsets"], *bench["validsets"].values(), bench["test"]}
           | {e for e in (bench.get("evalsets") or {}).values() if isinstance(e, str)}) - set(derived)
    for set_name, entry in derived.items():
        where = f"config entry benchmarks.{name}.derived.{set_name}"
        if "corpus" in entry:
            if entry["elements_of"] not in own:
                raise ConfigError(f"{where}.elements_of: {entry['elements_of']!r} is not a file of {name} ({sorted(own)})")
            continue
        if entry["file"] in derived:
            raise ConfigError(f"{where}.file: {entry['file']!r} is itself a derived set; draw from a file of the "
                              f"benchmark ({sorted(own)})")
        if entry["file"] not in own:
            raise ConfigError(f"{where}.file: {entry['file']!r} is not a training, validation, test or evaluation "
                              f"file of {name} ({sorted(own)})")


def check_figure(config: dict, name: str, fig: dict, strategies) -> None:
    """Every axis value of the grid exists, every combination can run, and the kind's own checks."""
    from . import figures

    where = f"config entry figures.{name}"
    axes = grid(config, name)
    for i, cond in enumerate(fig.get("conditions") or []):  # conditions' axes are checked as the grid's
        for value in as_list(cond.get("strategies", [])):
            if value not in axes["strategy"]:
                raise ConfigError(f"{where}.conditions[{i}].strategies: {value!r} is not among the figure's "
                                  f"strategies ({axes['strategy']})")
        for axis, key in (("fraction", "fractions"), ("variant", "variants"), ("seed", "seeds")):
            for value in as_list(cond.get(key, [])):
                value = format_fraction(value) if axis == "fraction" else value
                if axis == "variant" and value not in {"base", *(config.get("variants") or {})}:
                    raise ConfigError(f"{where}.conditions[{i}].variants: unknown variant {value!r} "
                                      f"(defined: {sorted({'base', *(config.get('variants') or {})})})")
                if value not in axes[axis]:
                    axes[axis].append(value)
    known = {"benchmark": config["benchmarks"], "foundation": config["foundations"], "strategy": strategies,
             "variant": {"base": None, **(config.get("variants") or {})}}
    for axis, values in axes.items():
        if axis in known:
            for value in values:
                if value not in known[axis]:
                    key = GRID_AXES[axis] if axis != "foundation" or "foundation" in fig else "foundation (main_foundation)"
                    raise ConfigError(f"{where}.{key}: unknown {axis} {value!r} (defined: {sorted(known[axis])})")
    labelled = sorted(set(fig.get("variant_labels") or {}) - set(known["variant"]))  # a scale may trim the grid
    if labelled:
        raise ConfigError(f"{where}.variant_labels: unknown variant(s) {labelled} (defined: {sorted(known['variant'])})")
    for bench in axes["benchmark"]:
        trainsets = config["benchmarks"][bench]["trainsets"]
        for trainset in axes["trainset"]:
            if trainset not in trainsets:
                raise ConfigError(f"{where}.trainset: {trainset!r} is not a training set of {bench} "
                                  f"(defined: {trainsets})")
        defined = benchmark_evalsets(config, bench)
        for evalset in evalsets(config, name):
            if evalset not in defined:
                raise ConfigError(f"{where}.evalsets: {evalset!r} is not an evaluation set of {bench} "
                                  f"(defined: {sorted(defined)}; benchmarks.{bench}.evalsets)")
    for value in axes["fraction"]:
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"{where}.fractions: {value} is outside (0, 1]")
    for strat in axes["strategy"]:
        for mode in axes["e0s"]:
            try:
                effective_e0_mode(strategies[strat], mode)
            except RegistryError as err:
                raise ConfigError(f"{where}: {err}") from err
    for i, cond in enumerate(conditions(config, name)):  # the combinations that run
        key = f"conditions[{i}].variants" if fig.get("conditions") else "variants"
        for strat in cond["strategy"]:
            for variant in cond["variant"]:
                try:
                    strategy_from_config(strat, variant_entry(config, strat, variant))
                except RegistryError as err:
                    raise ConfigError(f"{where}.{key}: {variant} on strategy {strat}: {err}") from err
    try:
        kind = figures.kind(fig["kind"])
    except KeyError as err:
        raise ConfigError(f"{where}.kind: {err.args[0]}") from None
    message = kind.check(config, name, fig, axes)
    if message:
        raise ConfigError(f"{where}{message}")


def check_variants(config: dict) -> None:
    variants = config.get("variants") or {}
    for name, spec in variants.items():
        where = f"config entry variants.{name}"
        if name == "base" and (spec.get("mace_args") or spec.get("replay") or spec.get("epochs_factor", 1) != 1):
            raise ConfigError(f"{where}: the base variant is the strategy as registered; it takes no overrides")
        try:
            check_flags(spec.get("mace_args") or {}, f"{where}.mace_args")
        except RegistryError as err:
            raise ConfigError(str(err)) from err
        if spec.get("replay") and spec["replay"] not in config["replay"] and config["world"] != "own":
            raise ConfigError(f"{where}.replay: unknown replay set {spec['replay']!r} (defined: {sorted(config['replay'])})")


def check_paper(config: dict, root: str | Path = ROOT) -> None:
    """Paper world: every source id exists with the right kind, every benchmark's recipe exists."""
    from .convert import FORMATS
    from .download import SourcesError, load_sources
    from .paper import RECIPES
    from .paper import parse_reaction as parse_paper_reaction

    try:
        sources = load_sources(Path(root) / config["sources"])
    except SourcesError as err:
        raise ConfigError(f"config entry sources: {err}") from err

    def source(where: str, sid: str, kinds: tuple[str, ...]) -> None:
        if sid not in sources:
            raise ConfigError(f"{where}: {sid!r} is not a source id of {config['sources']}")
        if sources[sid].kind not in kinds:
            raise ConfigError(f"{where}: source {sid!r} is of kind {sources[sid].kind!r}, expected {' or '.join(kinds)}")

    for name, found in config["foundations"].items():
        if found["kind"] != "download":
            raise ConfigError(f"config entry foundations.{name}.kind: the paper world downloads its foundations "
                              f"(kind: download), nothing is pretrained")
        source(f"config entry foundations.{name}.source", found["source"], ("foundation",))
    for name, rep in config["replay"].items():
        if "combine" not in rep:  # a union of other replay sets has no source of its own
            source(f"config entry replay.{name}.corpus", rep["corpus"], ("replay", "archive"))
    # pretraining corpora: replay files split into a held-out test set and the replay pool
    from .paper import check_corpus_params

    for scale_name, block in config["scales"].items():
        for corpus, params in (block.get("corpora") or {}).items():
            where = f"config entry scales.{scale_name}.corpora.{corpus}"
            source(where, corpus, ("replay", "archive"))
            try:
                check_corpus_params(params or {}, where)
            except ValueError as err:
                raise ConfigError(str(err)) from None
    corpora = config["scales"][config["scale"]].get("corpora") or {}
    for name, bench in config["benchmarks"].items():
        for set_name, entry in (bench.get("derived") or {}).items():
            if "corpus" in entry and entry["corpus"] not in corpora:
                raise ConfigError(f"config entry benchmarks.{name}.derived.{set_name}.corpus: {entry['corpus']!r} is "
                                  f"not a corpus of scale {config['scale']!r} (scales.{config['scale']}.corpora: "
                                  f"{sorted(corpora)}; each a replay source split into a held-out test set)")
    for name, bench in config["benchmarks"].items():
        where = f"config entry benchmarks.{name}"
        if bench["recipe"] not in RECIPES:
            raise ConfigError(f"{where}.recipe: {bench['recipe']!r} is not a recipe of mlipft.paper "
                              f"(defined: {sorted(RECIPES)})")
        recipe = RECIPES[bench["recipe"]]
        if bench["format"] not in FORMATS:
            raise ConfigError(f"{where}.format: {bench['format']!r} is not a format of mlipft.convert")
        if set(bench["sources"]) != set(recipe["roles"]):
            raise ConfigError(f"{where}.sources: recipe {bench['recipe']} needs the roles {sorted(recipe['roles'])}, "
                              f"got {sorted(bench['sources'])}")
        for role, sid in bench["sources"].items():
            source(f"{where}.sources.{role}", sid, ("dataset", "archive"))
        made = set(recipe["files"])
        derived = bench.get("derived") or {}
        for file in [f for f in [*bench["trainsets"], *bench["validsets"].values(), bench["test"], "isolated_atoms"]
                     if f not in derived]:
            if file not in made:
                raise ConfigError(f"{where}: recipe {bench['recipe']} writes no {file}.xyz (it writes {sorted(made)})")
    for name, fig in config["figures"].items():
        for reaction in fig.get("neb_reactions", []):
            try:
                parse_paper_reaction(reaction)
            except ValueError as err:
                raise ConfigError(f"config entry figures.{name}.neb_reactions: {err}") from err
        if fig["kind"] == "neb_profiles":
            for bench in as_list(fig["benchmark"]):
                if "reference_neb" not in RECIPES[config["benchmarks"][bench]["recipe"]]["files"]:
                    raise ConfigError(f"config entry figures.{name}: benchmark {bench} has no reference NEB paths")


def runs_for_figure(config: dict, figure: str) -> list[Run]:
    """Every fine-tune of a figure: the product of its grid's axes (a strategy's own E0 mode
    replaces the figure's, so from-scratch runs collapse onto isolated E0s), without repeats;
    with ``conditions``, the union of each condition's product (:func:`conditions`)."""
    import itertools

    axes = grid(config, figure)
    strategies = strategies_from_config(config)
    runs = []
    for cond in conditions(config, figure):
        cond_axes = {**axes, **{a: cond[a] for a in ("strategy", "fraction", "variant", "seed")}}
        # strategy-major, fractions and seeds innermost: the order of the figures' table rows
        for bench, trainset, found, strat, e0, variant, fraction, seed in itertools.product(
                *(cond_axes[a] for a in ("benchmark", "trainset", "foundation", "strategy", "e0s", "variant",
                                         "fraction", "seed"))):
            run = Run(bench, trainset, fraction, found, strat, effective_e0_mode(strategies[strat], e0), variant,
                      int(seed))
            if run not in runs:
                runs.append(run)
    return runs


def unique_runs(config: dict) -> list[Run]:
    """Every fine-tune over all figures, each once (a run shared by figures is trained once)."""
    return sorted({run for fig in config["figures"] for run in runs_for_figure(config, fig)})


def main(argv=None) -> int:
    """``python -m mlipft.config [FILE ...]``: check config files as the Snakefile does, before
    Snakemake reads them. Snakemake parses every ``--configfile`` itself before the Snakefile
    runs, and its message for a YAML syntax error names neither the file nor the line; this
    prints ours (file, line and column), or any other config defect, and exits 1, else prints
    ``ok``. FILEs are the world files as given to ``--configfile`` (default: config/config.yaml),
    layered over config/shared.yaml in order."""
    parser = argparse.ArgumentParser(prog="python -m mlipft.config", description="Check config files as the "
                                     "Snakefile does; a YAML error is named by file, line and column.")
    parser.add_argument("files", nargs="*", metavar="FILE", default=[str(ROOT / "config" / "config.yaml")],
                        help="config files, as given to snakemake --configfile (default: config/config.yaml)")
    args = parser.parse_args(argv)
    try:
        check_files([SHARED, *args.files])
        check(load_world(*args.files), root=ROOT)
    except ConfigError as err:
        print(f"invalid configuration: {err}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
