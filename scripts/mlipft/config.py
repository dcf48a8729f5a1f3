"""Configuration: schema validation, cross-reference checks, and the experiment grid.

``check(config)`` runs before Snakemake builds the DAG: every bad input stops the run with a
message naming the config entry, before any job starts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .registry import RegistryError, check_flags, effective_e0_mode, strategies_from_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration entry that cannot work; the message names the entry."""


@dataclass(frozen=True)
class Run:
    """One fine-tune: the wildcards of its directory."""

    benchmark: str
    trainset: str
    fraction: str
    foundation: str
    strategy: str
    e0s: str
    seed: int

    @property
    def path(self) -> str:
        return (f"runs/{self.benchmark}/{self.trainset}/f{self.fraction}/{self.foundation}/"
                f"{self.strategy}/e0-{self.e0s}/seed{self.seed}")

    def as_dict(self) -> dict:
        return asdict(self)


def format_fraction(value: float) -> str:
    return f"{float(value):g}"


def load(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def validate_schema(config: dict, schema_path: str | Path = SCHEMA) -> None:
    """JSON-schema validation with a message that names the offending key path."""
    import jsonschema

    schema = load(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            unknown = sorted(k for k in err.instance if k not in known and not k.startswith("x-"))
            message = (f"unknown key(s) {unknown}; allowed: {sorted(known)}"
                       + (" (and x-* anchors)" if "^x-" in err.schema.get("patternProperties", {}) else ""))
        raise ConfigError(f"config entry {where}: {message}")


def corpus_parts(corpus: str | list[str] | None) -> list[str]:
    """The corpora of a foundation's ``corpus`` entry (one name, or a list trained on together),
    or of a union's folder name ``a+b`` (:func:`corpus_name`)."""
    if corpus is None:
        return [None]
    return corpus.split("+") if isinstance(corpus, str) else list(corpus)


def corpus_name(corpus: str | list[str]) -> str:
    """The folder of a (union) corpus: ``mptrj`` or ``mptrj+omat`` (where a union's E0s live)."""
    return "+".join(corpus_parts(corpus))


def strategy_names(config: dict, figure: str) -> list[str]:
    wanted = config["figures"][figure]["strategies"]
    return list(config["strategies"]) if wanted == "all" else list(wanted)


def check(config: dict, root: str | Path = ROOT) -> None:
    """Cross-reference checks the schema cannot express. Raises :class:`ConfigError`."""
    validate_schema(config)
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
    for name, strat in strategies.items():
        if strat.replay and strat.replay not in config["replay"]:
            raise ConfigError(f"config entry strategies.{name}.replay: unknown replay set {strat.replay!r} "
                              f"(defined: {sorted(config['replay'])})")
    for name, bench in config["benchmarks"].items():
        where = f"config entry benchmarks.{name}"
        if config["world"] == "mini" and importlib.util.find_spec(f"mlipft.mini.{bench['generator']}") is None:
            raise ConfigError(f"{where}.generator: no module mlipft.mini.{bench['generator']}")
        for trainset in bench["trainsets"]:
            if trainset not in bench["validsets"]:
                raise ConfigError(f"{where}.validsets: no validation set for training set {trainset!r}")
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
        elif "source" not in found:
            raise ConfigError(f"{where}.source: a downloaded foundation needs a source id")
    for name, rep in config["replay"].items():
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
    for name, fig in config["figures"].items():
        check_figure(config, name, fig, strategies)
    if "sources" in config and not (Path(root) / config["sources"]).exists():
        raise ConfigError(f"config entry sources: file not found: {config['sources']}")
    if config["world"] == "paper":
        check_paper(config, root)


def check_figure(config: dict, name: str, fig: dict, strategies) -> None:
    where = f"config entry figures.{name}"
    if fig["benchmark"] not in config["benchmarks"]:
        raise ConfigError(f"{where}.benchmark: unknown benchmark {fig['benchmark']!r} "
                          f"(defined: {sorted(config['benchmarks'])})")
    bench = config["benchmarks"][fig["benchmark"]]
    if fig["trainset"] not in bench["trainsets"]:
        raise ConfigError(f"{where}.trainset: {fig['trainset']!r} is not a training set of "
                          f"{fig['benchmark']} (defined: {bench['trainsets']})")
    if fig["foundation"] not in config["foundations"]:
        raise ConfigError(f"{where}.foundation: unknown foundation {fig['foundation']!r} "
                          f"(defined: {sorted(config['foundations'])})")
    if fig["strategies"] != "all":
        for strat in fig["strategies"]:
            if strat not in strategies:
                raise ConfigError(f"{where}.strategies: unknown strategy {strat!r} (defined: {sorted(strategies)})")
    for value in fig["fractions"]:
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"{where}.fractions: {value} is outside (0, 1]")
    for strat in strategy_names(config, name):
        try:
            effective_e0_mode(strategies[strat], fig["e0s"])
        except RegistryError as err:
            raise ConfigError(f"{where}: {err}") from err
    n_fractions = len(set(map(float, fig["fractions"])))
    if fig["kind"] == "learning_curve" and n_fractions < 2:
        raise ConfigError(f"{where}.fractions: a learning_curve figure needs at least two different fractions")
    if fig["kind"] == "test_errors" and n_fractions > 1:
        raise ConfigError(f"{where}.fractions: a test_errors figure compares strategies at one training-set "
                          f"size; for several fractions use kind: learning_curve")
    if fig["kind"] == "neb_profiles" and not fig.get("neb_reactions"):
        raise ConfigError(f"{where}.neb_reactions: a neb_profiles figure needs the reactions to compare")
    if "neb_reactions" in fig:
        if fig["benchmark"] != "sn2":
            raise ConfigError(f"{where}.neb_reactions: only the sn2 benchmark has reaction paths")
        if config["world"] == "mini":
            from .mini.sn2 import parse_reaction

            for reaction in fig["neb_reactions"]:
                try:
                    parse_reaction(reaction)
                except ValueError as err:
                    raise ConfigError(f"{where}.neb_reactions: {err}") from err
            generated = config["scales"][config["scale"]]["benchmarks"]["sn2"].get("reactions", [])
            missing = [r for r in fig["neb_reactions"] if generated and r not in generated]
            if missing:
                raise ConfigError(f"{where}.neb_reactions: {missing} are not generated at scale "
                                  f"{config['scale']!r} (scales.{config['scale']}.benchmarks.sn2.reactions)")


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
        source(f"config entry replay.{name}.corpus", rep["corpus"], ("replay", "archive"))
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
        for file in [*bench["trainsets"], *bench["validsets"].values(), bench["test"], "isolated_atoms"]:
            if file not in made:
                raise ConfigError(f"{where}: recipe {bench['recipe']} writes no {file}.xyz (it writes {sorted(made)})")
    for name, fig in config["figures"].items():
        for reaction in fig.get("neb_reactions", []):
            try:
                parse_paper_reaction(reaction)
            except ValueError as err:
                raise ConfigError(f"config entry figures.{name}.neb_reactions: {err}") from err
        if fig["kind"] == "neb_profiles" and "reference_neb" not in RECIPES[config["benchmarks"][fig["benchmark"]]["recipe"]]["files"]:
            raise ConfigError(f"config entry figures.{name}: benchmark {fig['benchmark']} has no reference NEB paths")


def runs_for_figure(config: dict, figure: str) -> list[Run]:
    """Every fine-tune a figure needs."""
    fig = config["figures"][figure]
    strategies = strategies_from_config(config)
    runs = []
    for strat in strategy_names(config, figure):
        e0 = effective_e0_mode(strategies[strat], fig["e0s"])
        for fraction in fig["fractions"]:
            for seed in fig["seeds"]:
                runs.append(Run(fig["benchmark"], fig["trainset"], format_fraction(fraction),
                                fig["foundation"], strat, e0, int(seed)))
    return runs
