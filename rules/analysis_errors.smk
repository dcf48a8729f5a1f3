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
        head=lambda w: wf.eval_head(config, wf.run_of(w), w.evalset),  # pt_head: the replay head's errors
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
        "--batch-size {params.batch_size} --head {params.head} --run {params.run:q} "
        "--evalset {wildcards.evalset} --output {output.errors:q} > {log:q} 2>&1"


rule evaluate_zeroshot:
    message:
        "Zero-shot errors of foundation {wildcards.foundation} (not fine-tuned) on {wildcards.benchmark}/{wildcards.evalset}"
    input:
        model=lambda w: foundation_model(w.foundation),
        configs=evalset_file,
        validated=PATHS.pattern("evalset_validation"),
    output:
        predictions=temp(PATHS.pattern("zeroshot").replace(".csv", "_predictions.xyz")),
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
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.errors --configs {input.configs:q} --model {input.model:q} "
        "--predictions {output.predictions:q} --default-dtype {params.dtype:q} --device {params.device:q} "
        "--batch-size {params.batch_size} --run {params.run:q} --evalset {wildcards.evalset} "
        "--output {output.errors:q} > {log:q} 2>&1"
