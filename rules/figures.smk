# Figures and tables, one loop over the configured figures with no branch on their kind: the
# kind module (mlipft.figures.<kind>) names the per-run files it reads, collects them into tidy
# tables and plots them. Each figure gets a collect rule (runs -> tables), a plot rule (tables ->
# PNG and PDF, in the report with its caption; editing a plot re-runs no training) and a target.


for _fig in FIGURES:
    _inputs = FIGURE_INPUTS[_fig]  # role -> files, or selections of a run's errors table (<file>::<evalset>)
    _tables = wf.figure_tables(config, PATHS, _fig)
    _spec = json.dumps(figure_kinds.spec(config, _fig))

    rule:
        name:
            f"collect_{_fig}"
        message:
            f"Tables of {_fig}"
        input:
            **wf.input_files(_inputs),
        output:
            **_tables,
        params:
            spec=_spec,
            inputs=wf.role_args(_inputs),
            outputs=wf.role_args(_tables),
        log:
            PATHS.log("collect", _fig),
        benchmark:
            PATHS.bench("collect", _fig)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.figures collect --spec {params.spec:q} --inputs {params.inputs} "
            "--outputs {params.outputs} > {log:q} 2>&1"

    rule:
        name:
            f"plot_{_fig}"
        message:
            f"Figure {_fig}"
        input:
            **_tables,
        output:
            png=report(
                PATHS.figure(_fig, "png"),
                caption="../report/figure.rst",
                category="Figures",
                subcategory=config["figures"][_fig]["kind"],
                labels={"figure": _fig, "world": config["world"], "scale": SCALE},
            ),
            pdf=PATHS.figure(_fig, "pdf"),
        params:
            spec=_spec,
            tables=wf.role_args(_tables),
            caption=figure_kinds.caption(config, _fig),
        log:
            PATHS.log("plot", _fig),
        benchmark:
            PATHS.bench("plot", _fig)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.figures plot --spec {params.spec:q} --tables {params.tables} "
            "--outputs {output.png:q} {output.pdf:q} > {log:q} 2>&1"

    rule:
        name:
            _fig
        localrule: True
        input:
            PATHS.figure_outputs(_fig),


for _group, _panels in wf.figure_groups(FIGURES).items():

    rule:
        name:
            _group
        localrule: True
        input:
            [PATHS.figure_outputs(f) for f in _panels],


rule all_figures:
    localrule: True
    input:
        [PATHS.figure_outputs(f) for f in FIGURES],
    default_target: True
