# Analysis: errors of a fine-tuned model per structure on every evaluation set its figures select,
# in one job per model (mlipft.analysis.errors; predictions by mace's batched mace_eval_configs in
# process: importing mace is most of an evaluation's cost, paid once per model, not once per set).


rule evaluate_errors:
    message:
        "Errors of {wildcards.strategy} ({wildcards.variant}) on its figures' evaluation sets of {wildcards.benchmark} ({wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        unpack(run_evalset_inputs),
        model=PATHS.pattern("model"),
    output:
        errors=PATHS.pattern("errors"),
    params:
        run=run_keys,
        evalsets=run_evalset_args,  # every set a figure selects of the run; the replay head's for pt_head sets
        batch_size=32,
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        PATHS.pattern("log:evaluate_errors@errors"),
    benchmark:
        PATHS.pattern("benchmark:evaluate_errors@errors")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.errors --model {input.model:q} {params.evalsets} "
        "--default-dtype {params.dtype:q} --device {params.device:q} --batch-size {params.batch_size} "
        "--run {params.run:q} --output {output.errors:q} > {log:q} 2>&1"


rule evaluate_zeroshot:
    message:
        "Zero-shot errors of foundation {wildcards.foundation} (not fine-tuned) on {wildcards.benchmark}/{wildcards.evalset}"
    input:
        model=lambda w: foundation_model(w.foundation),
        configs=evalset_file,
        validated=PATHS.pattern("evalset_validation"),
    output:
        errors=PATHS.pattern("zeroshot"),
    params:
        run=lambda w: json.dumps({"benchmark": w.benchmark, "foundation": w.foundation}),
        batch_size=32,
        dtype=lambda w: wf.foundation_dtype(config, w.foundation),  # as it is stored: no cast
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        PATHS.log("evaluate_zeroshot", "{benchmark}/{foundation}/{evalset}"),
    benchmark:
        PATHS.bench("evaluate_zeroshot", "{benchmark}/{foundation}/{evalset}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.errors --model {input.model:q} "
        "--evalset {wildcards.evalset}={input.configs:q} --default-dtype {params.dtype:q} --device {params.device:q} "
        "--batch-size {params.batch_size} --run {params.run:q} --output {output.errors:q} > {log:q} 2>&1"
