# Analysis: errors of a fine-tuned model on an evaluation set of its benchmark, per structure
# (mlipft.analysis.errors; predictions by mace's batched mace_eval_configs, in process).


rule evaluate_errors:
    message:
        "Errors of {wildcards.strategy} ({wildcards.variant}) on {wildcards.benchmark}/{wildcards.evalset} ({wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        configs=evalset_file,
        validated=PATHS.pattern("evalset_validation"),
    output:
        predictions=temp(PATHS.pattern("predictions")),
        errors=PATHS.pattern("errors"),
    params:
        run=run_keys,
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
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.errors --configs {input.configs:q} --model {input.model:q} "
        "--predictions {output.predictions:q} --default-dtype {params.dtype:q} --device {params.device:q} "
        "--batch-size {params.batch_size} --head Default --run {params.run:q} "
        "--evalset {wildcards.evalset} --output {output.errors:q} > {log:q} 2>&1"
