"""Every path of the workflow, formatted and parsed in one place (showyourwork's ``paths``,
PyPSA's path providers).

Rules, tables, figures and tests build paths with :class:`Paths` and read the run keys back out
of them with :func:`parse_run` / :func:`parse_trainset`; no other code composes or parses a path.
Each path exists in two forms: a concrete one for a :class:`Run` (or keys), and a Snakemake
pattern with ``{wildcards}`` (``Paths.pattern(...)``), built from the same template.

Layout under the results root (``results/<scale>/`` by default)::

    validation/<benchmark>.json, validation/<benchmark>/<evalset>.json   its files checked (before any job)
    trainsets/<benchmark>/<trainset>/f<fraction>/seed<seed>.xyz          subsampled training set
    e0s/<benchmark>/<trainset>/f<fraction>/seed<seed>/<foundation>.json  every E0 mode of it
    replay/<benchmark>/<replay>.xyz                                      replay set of a benchmark
    replay/<benchmark>/<replay>.selection.json                           its structures, chosen and validated
    runs/<benchmark>/<trainset>/f<fraction>/<foundation>/<strategy>/e0-<e0s>/v-<variant>/seed<seed>/
        model.model  loss_curves.csv  trainable.json                     the fine-tune
        errors.csv        per-structure errors on every evaluation set a figure asks of the run
        neb.csv                                                          an analysis's table
    tables/<figure>_<table>.csv    figures/<figure>.{png,pdf}
    logs/<rule>/<key>.log          benchmarks/<rule>/<key>.tsv
    logs/pretrain_foundation/<foundation>.log.mace/    mace's working files of a pretraining (beside
        its log, not a param: a param naming the results root would re-run the committed
        foundations whenever results_dir changes)
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath

#: The axes of a run, in directory order.
RUN_KEYS = ("benchmark", "trainset", "fraction", "foundation", "strategy", "e0s", "variant", "seed")
TRAINSET_KEYS = ("benchmark", "trainset", "fraction", "seed")

RUN = ("runs/{benchmark}/{trainset}/f{fraction}/{foundation}/{strategy}/e0-{e0s}/v-{variant}/"
       "seed{seed}")
TRAINSET = "trainsets/{benchmark}/{trainset}/f{fraction}/seed{seed}.xyz"
E0S = "e0s/{benchmark}/{trainset}/f{fraction}/seed{seed}/{foundation}.json"
REPLAY = "replay/{benchmark}/{replay}.xyz"
REPLAY_SELECTION = "replay/{benchmark}/{replay}.selection.json"
VALIDATION = "validation/{benchmark}.json"
EVALSET_VALIDATION = "validation/{benchmark}/{evalset}.json"
#: Files of a run directory: the fine-tune's artifacts and each analysis's table.
RUN_FILES = {
    "model": "model.model",
    "loss_curves": "loss_curves.csv",
    "trainable": "trainable.json",
    # per-structure errors, one row per structure and evaluation set: every set some figure asks of
    # the run, from one job (one interpreter: mace's imports are most of an evaluation's cost)
    "errors": "errors.csv",
    "neb": "neb.csv",
    "torsions": "torsions.csv",
    "md": "md.extxyz",            # model MD: every replica's recorded frames (info replica, step, time_fs)
    "rdf": "rdf.csv",             # RDFs of that MD: part (all, half1, half2, replica<k>), pair, r, g(r)
    "stability": "stability.csv",  # MD stability: one row per protocol and replica
    "symmetry": "symmetry.csv",    # invariance/covariance check: max deviations per transformation
    "repulsion": "repulsion.csv",  # dimer and compression curves of the model
    "rss": "rss.csv",              # random structure search: one row per structure x pressure x cycle, flags
}
#: Separates a per-run table from the rows a reader selects of it (``Paths.errors``).
SELECT = "::"
#: Errors of a foundation before any fine-tuning (zero-shot) on an evaluation set of a benchmark.
ZEROSHOT = "zeroshot/{benchmark}/{foundation}/{evalset}.csv"
#: A derived set of a benchmark (mlipft.derive): a subset of one of its files chosen by frame keys.
DERIVED = "derived/{benchmark}/{name}.xyz"
TABLE = "tables/{figure}_{table}.csv"
FIGURE = "figures/{figure}.{ext}"

#: Wildcard constraints of every pattern (Snakemake's ``wildcard_constraints``).
CONSTRAINTS = {
    "benchmark": r"[A-Za-z0-9]+",
    "trainset": r"[A-Za-z0-9_]+",
    "fraction": r"[0-9.e-]+",
    "foundation": r"[A-Za-z0-9_]+",
    "strategy": r"[A-Za-z0-9_]+",
    "e0s": r"average|estimated|foundation|isolated",
    "variant": r"[A-Za-z0-9_]+",
    "seed": r"\d+",
    "evalset": r"[A-Za-z0-9_]+",
    "replay": r"[A-Za-z0-9_]+",
    "name": r"[A-Za-z0-9_]+",  # a derived set
    "corpus": r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*",  # a corpus, or a union a+b (its E0s only)
}


def format_fraction(value: float | str) -> str:
    """The directory form of a training-set fraction: ``1.0`` -> ``1``, ``0.10`` -> ``0.1``."""
    return f"{float(value):g}"


@dataclass(frozen=True, order=True)
class Run:
    """One fine-tune: a point of a figure's grid, and the keys of its directory."""

    benchmark: str
    trainset: str
    fraction: str
    foundation: str
    strategy: str
    e0s: str
    variant: str
    seed: int

    def __post_init__(self):
        object.__setattr__(self, "fraction", format_fraction(self.fraction))
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def path(self) -> str:
        return RUN.format(**self.as_dict())

    def as_dict(self) -> dict:
        return asdict(self)

    def keys(self) -> dict[str, str]:
        """The run's keys as strings (the columns every per-run table carries)."""
        return {k: str(v) for k, v in asdict(self).items()}

    @property
    def trainset_keys(self) -> dict:
        return {k: getattr(self, k) for k in TRAINSET_KEYS}


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _parse(template: str, path: str | Path, anchor: str) -> dict[str, str]:
    """Keys of ``path`` under ``template`` (anchored at the last ``anchor`` folder), exact or error."""
    import re

    parts = PurePosixPath(Path(path).as_posix()).parts
    if anchor not in parts:
        raise ValueError(f"{path}: not under a {anchor}/ folder ({template})")
    i = len(parts) - 1 - parts[::-1].index(anchor)
    rest = "/".join(parts[i:])
    regex = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        regex += re.escape(literal)
        if name:
            regex += f"(?P<{name}>{CONSTRAINTS.get(name, '[^/]+')})"
    match = re.match(regex + "(?:/|$)", rest)
    if not match:
        raise ValueError(f"{path}: does not match {template}")
    return match.groupdict()


def parse_run(path: str | Path) -> Run:
    """The run whose directory holds ``path`` (a file of it, or the directory itself)."""
    keys = _parse(RUN, path, "runs")
    return Run(**{f.name: keys[f.name] for f in fields(Run)})


def split_selection(path: str | Path) -> tuple[str, str | None]:
    """A file and the evaluation set selected of it: ``(file, evalset)`` for ``Paths.errors``'
    ``<run>/errors.csv::<evalset>``, ``(path, None)`` for any other path."""
    file, sep, evalset = str(path).partition(SELECT)
    if sep and not evalset:
        raise ValueError(f"{path}: no evaluation set after {SELECT!r}")
    return file, (evalset if sep else None)


def parse_trainset(path: str | Path) -> dict[str, str]:
    """Benchmark, training set, fraction and seed of a training subset's path."""
    return _parse(TRAINSET, path, "trainsets")


class Paths:
    """Paths under one results root (and, for inputs, one data root)."""

    def __init__(self, results: str | Path, data: str | Path = "data"):
        self.results = str(results).rstrip("/")
        self.data = str(data).rstrip("/")

    def _res(self, template: str, **keys) -> str:
        return f"{self.results}/{template.format(**keys)}"

    # ---- Snakemake patterns (wildcards left in) ----
    def pattern(self, name: str, **fixed) -> str:
        """A pattern of :data:`RUN_FILES` (``run/<file>``), ``run``, ``trainset``, ``e0s``,
        ``replay``, ``log:<rule>``, ``benchmark:<rule>`` (for a run rule) with wildcards in
        braces; ``fixed`` fills some of them."""
        template = self.template(name)
        keep = {k: "{" + k + "}" for k in _fields(template)}
        keep.update(fixed)
        return f"{self.results}/{template.format(**keep)}"

    def template(self, name: str) -> str:
        kinds = {"run": RUN, "trainset": TRAINSET, "e0s": E0S, "replay": REPLAY, "replay_selection": REPLAY_SELECTION, "table": TABLE, "figure": FIGURE,
                 "validation": VALIDATION, "evalset_validation": EVALSET_VALIDATION, "zeroshot": ZEROSHOT, "derived": DERIVED}
        if name in kinds:
            return kinds[name]
        if name in RUN_FILES:
            return f"{RUN}/{RUN_FILES[name]}"
        for prefix, root, ext in (("log:", "logs", "log"), ("benchmark:", "benchmarks", "tsv")):
            if name.startswith(prefix):
                rule, _, of = name[len(prefix):].partition("@")
                base = self.template(of or "run")
                return f"{root}/{rule}/{PurePosixPath(base).with_suffix('')}.{ext}"
        raise KeyError(f"no path template {name!r}")

    # ---- concrete paths ----
    def run_dir(self, run: Run) -> str:
        return f"{self.results}/{run.path}"

    def run_file(self, run: Run, name: str, **keys) -> str:
        return f"{self.run_dir(run)}/{RUN_FILES[name].format(**keys)}"

    def errors(self, run: Run, evalset: str) -> str:
        """The errors of a run on one evaluation set: the rows of ``evalset`` in the run's
        ``errors.csv``, written ``<run>/errors.csv::<evalset>`` (:func:`split_selection`). Figures
        list these; rule inputs are the files (``mlipft.workflow.input_files``), and the run's
        evaluation job covers every set the figures select of it (``mlipft.workflow.run_evalsets``)."""
        return f"{self.run_file(run, 'errors')}{SELECT}{evalset}"

    def trainset(self, run: Run | None = None, **keys) -> str:
        keys = run.trainset_keys if run is not None else keys
        return self._res(TRAINSET, **{**keys, "fraction": format_fraction(keys["fraction"])})

    def e0s(self, run: Run) -> str:
        return self._res(E0S, **run.as_dict())

    def validation(self, benchmark: str) -> str:
        """The data-validation report of a benchmark's files (mlipft.validate_data)."""
        return self._res(VALIDATION, benchmark=benchmark)

    def evalset_validation(self, benchmark: str, evalset: str) -> str:
        """The data-validation report of one evaluation set of a benchmark."""
        return self._res(EVALSET_VALIDATION, benchmark=benchmark, evalset=evalset)

    def replay(self, benchmark: str, replay: str) -> str:
        return self._res(REPLAY, benchmark=benchmark, replay=replay)

    def replay_selection(self, benchmark: str, replay: str) -> str:
        """The structures of a drawn replay set (corpus file and frame), chosen and validated by
        rule select_replay before rule replay_set writes them."""
        return self._res(REPLAY_SELECTION, benchmark=benchmark, replay=replay)

    def zeroshot(self, benchmark: str, foundation: str, evalset: str) -> str:
        """Per-structure errors of a foundation, not fine-tuned, on an evaluation set of a benchmark
        (the table of mlipft.analysis.errors with benchmark, foundation and evalset as keys)."""
        return self._res(ZEROSHOT, benchmark=benchmark, foundation=foundation, evalset=evalset)

    def derived(self, benchmark: str, name: str) -> str:
        """A derived set of a benchmark (``benchmarks.<b>.derived``, written by mlipft.derive)."""
        return self._res(DERIVED, benchmark=benchmark, name=name)

    def table(self, figure: str, table: str) -> str:
        return self._res(TABLE, figure=figure, table=table)

    def figure(self, figure: str, ext: str) -> str:
        return self._res(FIGURE, figure=figure, ext=ext)

    def figure_outputs(self, figure: str) -> list[str]:
        return [self.figure(figure, "png"), self.figure(figure, "pdf")]

    def log(self, rule: str, key: str | None = None) -> str:
        """A job's log: ``logs/<rule>/<key>.log`` (``logs/<rule>.log`` for a one-job rule)."""
        return f"{self.results}/logs/{rule}{'/' + key if key else ''}.log"

    def bench(self, rule: str, key: str | None = None) -> str:
        """A job's Snakemake ``benchmark:`` file, beside its log under ``benchmarks/``."""
        return f"{self.results}/benchmarks/{rule}{'/' + key if key else ''}.tsv"


    # ---- inputs (data/) ----
    def bench_file(self, benchmark: str, name: str) -> str:
        """A file of a benchmark: ``name`` is an extxyz stem (``test``) or a file name with suffix."""
        return f"{self.data}/benchmarks/{benchmark}/{name if '.' in name else name + '.xyz'}"

    def foundation_model(self, name: str) -> str:
        return self.foundation_file(name, "model.model")

    def foundation_file(self, name: str, file: str) -> str:
        """A file of a foundation's folder (model, loss curves, trainable counts, quality)."""
        return f"{self.data}/foundations/{name}/{file}"

    def data_file(self, name: str) -> str:
        """A file at the top of the world's data folder (data card, manifest, quality table)."""
        return f"{self.data}/{name}"

    def converted(self, benchmark: str, role: str) -> str:
        """Paper world: one raw input of a benchmark's recipe converted to canonical extxyz."""
        return f"{self.data}/converted/{benchmark}/{role}.xyz"

    def replay_source(self, source_id: str) -> str:
        """Paper world: a downloaded replay file rewritten with REF_* keys."""
        return f"{self.data}/replay_sources/{source_id}.xyz"

    @staticmethod
    def raw(world: str, dest: str) -> str:
        """A raw download, shared by every scale: ``data/<world>/raw/<dest of the source>``."""
        return f"data/{world}/raw/{dest}"

    def corpus_file(self, corpus: str, name: str) -> str:
        return f"{self.data}/corpora/{corpus}/{name}"
