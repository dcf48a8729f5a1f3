# Your own system (world: own): each benchmark is its files (benchmarks.<b>.files), converted to the
# workflow's canonical extxyz (REF_* keys, eV, Angstrom) and checked against the foundation by
# mlipft.own (rule import_<b>), then validated by validate_data like every benchmark's; foundations
# are MACE model files, put in place in the configured dtype; replay sets are drawn from files.
# Specs and inputs: mlipft.own.

from mlipft import own as own_lib  # noqa: E402


for _bench in config["benchmarks"]:

    rule:
        name:
            f"import_{_bench}"
        message:
            f"Your benchmark {_bench}: files converted to REF_* keys, eV and Angstrom, elements and units checked against the foundation"
        input:
            **own_lib.source_files(config, _bench),
            **own_lib.foundation_inputs(config, _bench),
        output:
            **own_lib.output_files(config, PATHS, _bench),
        params:
            spec=own_lib.import_spec(config, PATHS, _bench),
        threads: 1
        resources:
            runtime=30,
            mem_mb=4000,
        log:
            PATHS.log("import_benchmark", _bench),
        benchmark:
            PATHS.bench("import_benchmark", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "OMP_NUM_THREADS={threads} python -m mlipft.own import --spec {params.spec:q} --summary {output.summary:q} "
            "> {log:q} 2>&1"


rule install_foundation:
    message:
        "Foundation {wildcards.foundation}: your model file in the configured dtype"
    input:
        lambda w: config["foundations"][w.foundation]["path"],
    output:
        foundation_model("{foundation}"),
    params:
        dtype=config["default_dtype"],
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    log:
        PATHS.log("install_foundation", "{foundation}"),
    benchmark:
        PATHS.bench("install_foundation", "{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.paper foundation --source {input:q} --output {output:q} --dtype {params.dtype:q} > {log:q} 2>&1"


rule own_replay_source:
    message:
        "Replay file of {wildcards.source} with REF_* label keys"
    input:
        lambda w: config["replay"][w.source]["file"],
    output:
        PATHS.replay_source("{source}"),
    wildcard_constraints:
        source=r"[A-Za-z0-9_]+",
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    log:
        PATHS.log("own_replay_source", "{source}"),
    benchmark:
        PATHS.bench("own_replay_source", "{source}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.paper canonicalize --input {input:q} --output {output:q} > {log:q} 2>&1"
