"""MD stability of each strategy's model: how long its MD runs before it fails (atoms flying apart,
a temperature blow-up, a broken molecule, ... as one of the stability detectors sees it).

Per run, ``stability.csv`` of :mod:`mlipft.analysis.stability` (the run's keys come from its path),
one row per protocol and replica, of which this kind reads ``protocol,replica,target_steps,
steps_survived,time_to_failure_ps,survived_fraction,failed,detector,detail,final_temperature_K``
(and ``timestep_fs``, ``failure_step``, ``ensemble`` where present). The ``stability`` table is
every row with the run's keys, two derived columns and the convergence of the run:

- ``time_survived_ps``: ``time_to_failure_ps`` of a failed replica (the time of the step at which
  the failure was seen), else ``steps_survived`` times the protocol's time step;
- ``target_time_ps``: ``target_steps`` times the time step.

The time step of a protocol (ps per step) is ``timestep_fs / 1000`` when the file has that column,
else the median over the protocol's rows of ``time_to_failure_ps / failure_step`` (``steps_survived``
without that column); without either, both columns are empty and the panel shows steps instead.

Plot: one panel per benchmark (rows) and protocol (columns); per strategy a bar of the mean time
survived over its replicas and seeds, the replicas as dots (a failed one drawn with its detector's
marker), the target time dashed, and how many replicas failed above each bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import (
    STYLE,
    collect_runs,
    convergence,
    convergence_note,
    pyplot,
    save,
    settings,
    title_legend_note,
    with_convergence,
)

DESCRIPTION = ("MD stability: time survived (ps) by each model's MD per protocol, mean over replicas and seeds "
               "(bars), each replica a dot (failed: the marker of the detector that stopped it), target time "
               "dashed.")
TABLES = ("stability",)
COLUMNS = ("protocol", "replica", "target_steps", "steps_survived", "time_to_failure_ps", "survived_fraction",
           "failed", "detector", "detail", "final_temperature_K")
#: Grid axes that may vary besides the strategy and the benchmark: their labels join the strategy's.
HUE_AXES = ("trainset", "foundation", "e0s", "variant")
DETECTOR_MARKERS = ("X", "^", "s", "D", "v", "P", "*", "<", ">", "h")


def _protocols(fig) -> list[str]:
    from ..config import as_list

    return [str(p) for p in as_list(fig.get("stability_protocols") or [])]


def check(config, name, fig, axes):
    benches = config.get("benchmarks") or {}
    missing = [b for b in axes["benchmark"] if not (benches.get(b) or {}).get("md")]
    if missing:
        return (f".benchmark: {missing} declare no MD (benchmarks.<b>.md: its start structure and protocols); an "
                f"md_stability figure runs MD with every model")
    protocols = _protocols(fig)
    if len(set(protocols)) != len(protocols):
        return f".stability_protocols: listed twice: {sorted({p for p in protocols if protocols.count(p) > 1})}"
    return None


def inputs(config, name, runs, paths):
    return {"stability": [paths.run_file(r, "stability") for r in runs],
            "loss_curves": [paths.run_file(r, "loss_curves") for r in runs]}


def _bool(values: pd.Series) -> pd.Series:
    def one(v):
        if isinstance(v, str):
            if v.strip().lower() in ("true", "1", "yes"):
                return True
            if v.strip().lower() in ("false", "0", "no", ""):
                return False
            raise ValueError(f"stability: 'failed' is {v!r}, not true or false")
        return bool(v) if pd.notna(v) else False

    return values.map(one).astype(bool)


def timesteps_ps(frame: pd.DataFrame) -> pd.Series:
    """The time step (ps) of each row's protocol (see the module's docstring); NaN when unknown."""
    if "timestep_fs" in frame.columns and frame.timestep_fs.notna().all():
        return frame.timestep_fs.astype(float) / 1000.0
    steps = (frame.failure_step if "failure_step" in frame.columns else frame.steps_survived).astype(float)
    ratio = frame.time_to_failure_ps.astype(float) / steps.where(steps > 0)
    per_protocol = ratio.groupby(frame.protocol).median()
    return frame.protocol.map(per_protocol).astype(float)


def stability(files) -> pd.DataFrame:
    """The per-run stability rows with the run's keys, ``failed`` as a bool and the times in ps."""
    frame = collect_runs(files)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"stability files lack the columns {missing} (have {list(frame.columns)})")
    frame = frame.astype({"protocol": str})
    frame["failed"] = _bool(frame.failed)
    dt = timesteps_ps(frame)
    ttf = frame.time_to_failure_ps.astype(float)
    frame["time_survived_ps"] = np.where(frame.failed & ttf.notna(), ttf, frame.steps_survived.astype(float) * dt)
    frame["target_time_ps"] = frame.target_steps.astype(float) * dt
    return frame


def collect(inputs, spec):
    frame = stability(inputs["stability"])
    wanted = _protocols(spec["entry"])
    if wanted:
        absent = sorted(set(wanted) - set(frame.protocol))
        if absent:
            raise ValueError(f"stability: no rows of the protocols {absent} (the files have {sorted(set(frame.protocol))})")
        frame = frame[frame.protocol.isin(wanted)].reset_index(drop=True)
    return {"stability": with_convergence(frame, convergence(inputs.get("loss_curves")))}


def hues(frame: pd.DataFrame, spec: dict) -> pd.Series:
    """An x category per row: the strategy's label, with the settings that vary besides it (and
    the fraction when several)."""
    setting = settings(frame, {**spec, "axes": {a: spec["axes"].get(a, []) for a in HUE_AXES}})
    if len(spec["axes"].get("fraction", [])) > 1:
        frac = "fraction " + frame.fraction.astype(str)
        setting = frac.where(setting == "", setting + ", " + frac)
    name = frame.strategy.astype(str).map(lambda s: spec["labels"].get(s, s))
    return name.where(setting == "", name + ", " + setting)


def summary(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """Per benchmark, protocol and x category (strategy and varying settings): the mean time
    survived (ps; steps where the time step is unknown) over replicas and seeds, its min and max,
    the target, the replicas run and failed, and the detectors that stopped them (``;``-joined)."""
    frame = frame.assign(hue=hues(frame, spec), failed=_bool(frame.failed))
    rows = []
    for (bench, protocol, hue), sub in frame.groupby(["benchmark", "protocol", "hue"], sort=False):
        in_ps = bool(sub.time_survived_ps.notna().all())
        value = sub.time_survived_ps if in_ps else sub.steps_survived
        target = sub.target_time_ps if in_ps else sub.target_steps
        rows.append({"benchmark": bench, "protocol": protocol, "hue": hue, "unit": "ps" if in_ps else "steps",
                     "survived_mean": float(value.astype(float).mean()), "survived_min": float(value.min()),
                     "survived_max": float(value.max()), "target": float(target.astype(float).max()),
                     "n_replicas": len(sub), "n_failed": int(sub.failed.sum()), "n_seeds": int(sub.seed.nunique()),
                     "detectors": ";".join(sorted({str(d) for d in sub[sub.failed].detector.dropna()}))})
    return pd.DataFrame(rows)


def plot(tables, spec, outputs):
    plt = pyplot()
    import seaborn as sns

    frame = tables["stability"].copy()
    frame["failed"] = _bool(frame.failed)
    frame = frame.assign(hue=hues(frame, spec), protocol=frame.protocol.astype(str), benchmark=frame.benchmark.astype(str))
    rank = {s: i for i, s in enumerate(spec["labels"])}
    order = list(dict.fromkeys(frame.assign(_r=frame.strategy.astype(str).map(rank).fillna(len(rank)))
                               .sort_values("_r", kind="stable").hue))
    colours = dict(zip(order, sns.color_palette("colorblind", max(len(order), 3))))
    benches = [str(b) for b in spec["axes"]["benchmark"] if str(b) in set(frame.benchmark)]
    protocols = _protocols(spec["entry"]) or list(dict.fromkeys(frame.protocol))
    detectors = sorted({str(d) for d in frame[frame.failed].detector.dropna() if str(d).strip()})
    markers = {d: DETECTOR_MARKERS[i % len(DETECTOR_MARKERS)] for i, d in enumerate(detectors)}
    marks, note = convergence_note(frame)
    names = {h: h + (" †" if any(str(s) in marks for s in frame[frame.hue == h].strategy.unique()) else "") for h in order}
    rng = np.random.default_rng(0)

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(benches), len(protocols), squeeze=False,
                                 figsize=(max(2.2, 0.7 * len(order) + 1.2) * len(protocols) + 0.4,
                                          2.7 * len(benches) + 1.3))
        for i, bench in enumerate(benches):
            for j, protocol in enumerate(protocols):
                ax = axes[i, j]
                sub = frame[(frame.benchmark == bench) & (frame.protocol == protocol)]
                in_ps = sub.time_survived_ps.notna().all() and len(sub) > 0
                value = "time_survived_ps" if in_ps else "steps_survived"
                target = "target_time_ps" if in_ps else "target_steps"
                for x, hue in enumerate(order):
                    rows = sub[sub.hue == hue]
                    if rows.empty:
                        continue
                    y = rows[value].astype(float).to_numpy()
                    ax.bar(x, y.mean(), width=0.65, color=colours[hue], alpha=0.55, edgecolor=colours[hue], lw=1.2)
                    jitter = rng.uniform(-0.18, 0.18, len(rows))
                    for xj, yj, failed, det in zip(x + jitter, y, rows.failed, rows.detector):
                        if failed:
                            ax.plot(xj, yj, ls="none", marker=markers.get(str(det), "X"), ms=6, color="k",
                                    mfc="#d62728", mew=0.6, zorder=4)
                        else:
                            ax.plot(xj, yj, ls="none", marker="o", ms=3.2, color="k", zorder=4)
                    n_failed = int(rows.failed.sum())
                    top = float(rows[target].astype(float).max()) if rows[target].notna().any() else float(y.max())
                    ax.text(x, top * 1.03, f"{n_failed}/{len(rows)} failed", ha="center", va="bottom", fontsize=6.5,
                            color="#d62728" if n_failed else "0.3")
                if sub[target].notna().any():
                    ax.axhline(float(sub[target].astype(float).max()), color="k", ls="--", lw=1.0, zorder=1)
                ax.set_xticks(range(len(order)), [names[h] for h in order], rotation=30, ha="right")
                ax.set_xlim(-0.6, len(order) - 0.4)
                top = np.nanmax(np.r_[sub[target].astype(float).to_numpy(), sub[value].astype(float).to_numpy(), 1e-9])
                ax.set_ylim(0, top * 1.18)
                ensembles = sorted({str(e).upper() for e in sub.get("ensemble", pd.Series(dtype=str)).dropna()})
                ax.set_title(f"{bench}: {protocol}" + (f" ({', '.join(ensembles)})" if ensembles else ""))
                if j == 0 or not in_ps:
                    ax.set_ylabel("time survived (ps)" if in_ps else "steps survived")
        handles = [plt.Line2D([], [], color="k", ls="--"), plt.Line2D([], [], ls="none", marker="o", ms=3.2, color="k")]
        labels = ["target time", "replica that survived"]
        for d in detectors:
            handles.append(plt.Line2D([], [], ls="none", marker=markers[d], ms=6, color="k", mfc="#d62728", mew=0.6))
            labels.append(f"failed: {d}")
        title_legend_note(fig, spec["description"], handles, labels, 1.8, note, wrap=90)
        save(fig, outputs)
