# Training sets, E0 fitting and one fine-tune per point of the figures' grids:
# (benchmark, training set, fraction, foundation, strategy, E0 mode, variant, seed).
# Paths: mlipft.paths (PATHS); specs: mlipft.workflow.

rule validate_data:
    message:
        "Data of {wildcards.benchmark}: finite labels of the right shape, elements covered, units, disjoint splits"
    input:
        unpack(validation_inputs),
    output:
        PATHS.pattern("validation"),
    params:
        args=validation_args,
    log:
        PATHS.log("validate_data", "{benchmark}"),
    benchmark:
        PATHS.bench("validate_data", "{benchmark}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.validate_data {params.args} --report {output:q} > {log:q} 2>&1"


rule validate_evalset:
    message:
        "Evaluation set {wildcards.evalset} of {wildcards.benchmark}: finite labels of the right shape, elements covered, units"
    input:
        unpack(evalset_validation_inputs),
    output:
        PATHS.pattern("evalset_validation"),
    params:
        args=validation_args,
    log:
        PATHS.log("validate_evalset", "{benchmark}/{evalset}"),
    benchmark:
        PATHS.bench("validate_evalset", "{benchmark}/{evalset}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.validate_data {params.args} --report {output:q} > {log:q} 2>&1"


rule select_replay:
    message:
        "Replay set {wildcards.replay} for {wildcards.benchmark}: its structures chosen and validated"
    input:
        unpack(replay_sources),
    output:
        PATHS.pattern("replay_selection"),
    params:
        args=replay_select_args,
    threads: 1
    resources:
        runtime=60,
        mem_mb=32000 if config["world"] == "paper" else 8000,
    log:
        PATHS.log("select_replay", "{benchmark}/{replay}"),
    benchmark:
        PATHS.bench("select_replay", "{benchmark}/{replay}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.replay {params.args} --selection {output:q} > {log:q} 2>&1"


# Written from a selection in a second job, so that a failing check (select_replay) never removes
# the replay set already written: Snakemake removes a job's outputs before it reruns the job.
rule replay_set:
    message:
        "Replay set {wildcards.replay} for {wildcards.benchmark}"
    input:
        unpack(replay_set_inputs),
    output:
        PATHS.pattern("replay"),
    params:
        args=replay_set_args,
    threads: 1
    resources:
        runtime=60,
        mem_mb=32000 if config["world"] == "paper" else 8000,
    log:
        PATHS.log("replay_set", "{benchmark}/{replay}"),
    benchmark:
        PATHS.bench("replay_set", "{benchmark}/{replay}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.replay {params.args} --output {output:q} > {log:q} 2>&1"


rule derive_set:
    message:
        "Derived set {wildcards.benchmark}/{wildcards.name}"
    input:
        unpack(lambda w: wf.derive_inputs(config, PATHS, w.benchmark, w.name)),
        validated=PATHS.pattern("validation"),  # drawn from checked files only
    output:
        PATHS.pattern("derived"),
    params:
        args=lambda w, input: wf.derive_args(config, w.benchmark, w.name, input),
    log:
        PATHS.log("derive_set", "{benchmark}/{name}"),
    benchmark:
        PATHS.bench("derive_set", "{benchmark}/{name}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.derive --input {input.data:q} {params.args} --output {output:q} > {log:q} 2>&1"


rule subsample_trainset:
    message:
        "Training set {wildcards.benchmark}/{wildcards.trainset}: fraction {wildcards.fraction}, seed {wildcards.seed}"
    input:
        data=lambda w: set_file(w.benchmark, w.trainset),
        validated=PATHS.pattern("validation"),  # no job reads a benchmark before its data is checked
    output:
        PATHS.pattern("trainset"),
    log:
        PATHS.pattern("log:subsample_trainset@trainset"),
    benchmark:
        PATHS.pattern("benchmark:subsample_trainset@trainset")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.subsample --input {input.data:q} --fraction {wildcards.fraction} "
        "--seed {wildcards.seed} --output {output:q} > {log:q} 2>&1"


rule fit_e0s:
    message:
        "E0s (average, estimated, foundation, isolated) of {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction} for {wildcards.foundation}"
    input:
        train=rules.subsample_trainset.output[0],
        foundation=lambda w: foundation_model(w.foundation),
        isolated=lambda w: bench_file(w.benchmark, "isolated_atoms"),
        valid=lambda w: set_file(w.benchmark, config["benchmarks"][w.benchmark]["validsets"][w.trainset]),
    output:
        PATHS.pattern("e0s"),
    params:
        dtype=config["default_dtype"],
        fill=config["e0_fill"],
        device=config["device"],
    threads: config["threads"]
    log:
        PATHS.pattern("log:fit_e0s@e0s"),
    benchmark:
        PATHS.pattern("benchmark:fit_e0s@e0s")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.e0s --train {input.train:q} --foundation {input.foundation:q} "
        "--isolated {input.isolated:q} --cover {input.valid:q} --default-dtype {params.dtype:q} --fill {params.fill:q} "
        "--device {params.device:q} --output {output:q} > {log:q} 2>&1"


rule finetune:
    message:
        "Fine-tune {wildcards.strategy} ({wildcards.variant}): {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed}"
    input:
        unpack(finetune_inputs),
    output:
        model=PATHS.pattern("model"),
        loss_curves=PATHS.pattern("loss_curves"),
        trainable=PATHS.pattern("trainable"),
    params:
        spec=finetune_spec,
        resume="--resume" if config["resume_finetunes"] else "",
    priority: finetune_priority  # the longest fine-tunes first
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        run_log("finetune"),
    benchmark:
        run_benchmark("finetune")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.train --spec {params.spec:q} --e0s {input.e0s:q} --model {output.model:q} "
        "--loss-curves {output.loss_curves:q} --trainable {output.trainable:q} "
        "--threads {threads} {params.resume} --log {log:q} 2>> {log:q}"
