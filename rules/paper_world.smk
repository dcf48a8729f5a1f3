# The paper world: raw sources downloaded with sha256 checks (mlipft.download), converted to
# canonical extxyz (mlipft.convert), built into each benchmark's files (mlipft.paper); downloaded
# foundation models put in place in the configured dtype; replay sets drawn from the downloaded
# replay files. Paths and input functions: rules/paper_common.smk.


include: "paper_common.smk"


rule download:
    message:
        "Fetching {wildcards.dest} (sha256 pinned in the sources lock)"
    output:
        PATHS.raw(config["world"], "{dest}"),
    wildcard_constraints:
        dest=DEST_PATTERN,
    params:
        source_id=lambda w: DEST_TO_ID[w.dest],
        sources=SOURCES_FILE,
        lock=LOCK_FILE,
        raw=raw_root,
        local_dirs=LOCAL_DIR_ARGS,
        accept=ACCEPT_ARG,
    # on the host running snakemake: cluster compute nodes often have no internet
    localrule: True
    threads: 1
    resources:
        runtime=240,
        mem_mb=2000,
    log:
        PATHS.log("download", "{dest}"),
    benchmark:
        PATHS.bench("download", "{dest}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.download --sources {params.sources:q} --lock {params.lock:q} --dest {params.raw:q} "
        "{params.local_dirs} {params.accept} {params.source_id:q} > {log:q} 2>&1"


rule convert_source:
    message:
        "Converting the {wildcards.role} source of {wildcards.benchmark} to canonical extxyz"
    input:
        convert_input,
    output:
        converted_file("{benchmark}", "{role}"),
    wildcard_constraints:
        role=r"[A-Za-z0-9_]+",
    params:
        format=lambda w: config["benchmarks"][w.benchmark]["format"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    log:
        PATHS.log("convert_source", "{benchmark}/{role}"),
    benchmark:
        PATHS.bench("convert_source", "{benchmark}/{role}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.convert {params.format:q} {output:q} {input:q} > {log:q} 2>&1"


for _bench, _spec in config["benchmarks"].items():
    _recipe = RECIPES[_spec["recipe"]]

    rule:
        name:
            f"build_benchmark_{_bench}"
        message:
            f"Benchmark {_bench} from its converted sources (recipe {_spec['recipe']})"
        input:
            **{role: converted_file(_bench, role) for role in _recipe["roles"]},
        output:
            **{f: bench_file(_bench, f) for f in _recipe["files"]},
            summary=PATHS.bench_file(_bench, "summary.json"),
        params:
            recipe=_spec["recipe"],
            inputs=recipe_inputs(_bench),
            recipe_params=json.dumps(SC["benchmarks"].get(_bench, {})),
            neb_reactions=" ".join(bench_neb_reactions(_bench)),
            seed=config["seed"],
            out_dir=lambda w, output: str(Path(output.summary).parent),
        threads: 1
        resources:
            runtime=60,
            mem_mb=8000,
        log:
            PATHS.log("build_benchmark", _bench),
        benchmark:
            PATHS.bench("build_benchmark", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.paper benchmark {params.recipe:q} --input {params.inputs} "
            "--params {params.recipe_params:q} --neb-reactions {params.neb_reactions} --seed {params.seed:q} "
            "--out-dir {params.out_dir:q} --summary {output.summary:q} > {log:q} 2>&1"


rule install_foundation:
    message:
        "Foundation {wildcards.foundation}: the downloaded checkpoint in the configured dtype"
    input:
        foundation_source_file,
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


rule convert_replay:
    message:
        "Replay source {wildcards.source} with REF_* label keys"
    input:
        lambda w: raw_file(w.source),
    output:
        replay_source_file("{source}"),
    wildcard_constraints:
        source=REPLAY_SOURCE_PATTERN,
    threads: 1
    resources:
        runtime=120,
        mem_mb=32000,
    log:
        PATHS.log("convert_replay", "{source}"),
    benchmark:
        PATHS.bench("convert_replay", "{source}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.paper canonicalize --input {input:q} --output {output:q} > {log:q} 2>&1"


rule replay_set:
    message:
        "Replay set {wildcards.replay} for {wildcards.benchmark}"
    input:
        unpack(replay_inputs),
    output:
        PATHS.pattern("replay"),
    params:
        args=replay_set_args,
    threads: 1
    resources:
        runtime=60,
        mem_mb=32000,
    log:
        PATHS.log("replay_set", "{benchmark}/{replay}"),
    benchmark:
        PATHS.bench("replay_set", "{benchmark}/{replay}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.replay {params.args} --output {output:q} > {log:q} 2>&1"
