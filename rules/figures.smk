# Figures and tables. Each configured figure gets a collect rule (runs -> tidy tables), a plot
# rule (tables -> PNG and PDF; editing a plot re-runs no training) and a named target.

REFERENCE_LABEL = {"mini": "GFN2-xTB reference", "paper": "reference"}[config["world"]]


for _fig, _spec in config["figures"].items():
    _runs = runs_of(_fig)
    if _spec["kind"] in ("test_errors", "learning_curve"):
        _tables = {
            "table": f"{RES}/tables/{_fig}_errors.csv",
            "extra": f"{RES}/tables/{_fig}_trainable.csv",
        }
        _inputs = {
            "results": [f"{RES}/{r.path}/errors_test.csv" for r in _runs],
            "trainable": [f"{RES}/{r.path}/trainable.json" for r in _runs],
        }
        if _spec["kind"] == "learning_curve":
            _inputs["trainsets"] = sorted({trainset_file(r) for r in _runs})
    else:
        _tables = {
            "table": f"{RES}/tables/{_fig}_neb_profiles.csv",
            "extra": f"{RES}/tables/{_fig}_neb_barriers.csv",
        }
        _inputs = {"results": [f"{RES}/{r.path}/neb.csv" for r in _runs]}

    rule:
        name:
            f"collect_{_fig}"
        message:
            f"Tables of {_fig}"
        input:
            **_inputs,
        output:
            **_tables,
        params:
            kind=_spec["kind"],
        log:
            f"{RES}/logs/collect/{_fig}.log",
        benchmark:
            f"{RES}/benchmarks/collect/{_fig}.tsv"
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.tables {params.kind} --inputs {input} --output {output.table} "
            "--extra {output.extra} > {log} 2>&1"

    rule:
        name:
            f"plot_{_fig}"
        message:
            f"Figure {_fig}"
        input:
            **_tables,
        output:
            png=f"{RES}/figures/{_fig}.png",
            pdf=f"{RES}/figures/{_fig}.pdf",
        params:
            kind=_spec["kind"],
            labels=strategy_labels(_fig),
            title=_spec["description"],
            reference=REFERENCE_LABEL,
        log:
            f"{RES}/logs/plot/{_fig}.log",
        benchmark:
            f"{RES}/benchmarks/plot/{_fig}.tsv"
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.plots {params.kind} --table {input.table} --extra {input.extra} "
            "--labels {params.labels:q} --title {params.title:q} --reference-label {params.reference:q} "
            "--outputs {output.png} {output.pdf} > {log} 2>&1"

    rule:
        name:
            _fig
        localrule: True
        input:
            figure_outputs(_fig),


rule all_figures:
    localrule: True
    input:
        [figure_outputs(f) for f in FIGURES],
    default_target: True
