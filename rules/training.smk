# Training sets, replay sets, E0 fitting and one fine-tune per
# (benchmark, training set, fraction, foundation, strategy, E0 mode, seed).

rule subsample_trainset:
    message:
        "Training set {wildcards.benchmark}/{wildcards.trainset}: fraction {wildcards.fraction}, seed {wildcards.seed}"
    input:
        lambda w: bench_file(w.benchmark, w.trainset),
    output:
        f"{RES}/trainsets/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}.xyz",
    log:
        f"{RES}/logs/subsample_trainset/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/subsample_trainset/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.subsample --input {input} --fraction {wildcards.fraction} "
        "--seed {wildcards.seed} --output {output} > {log} 2>&1"


rule fit_e0s:
    message:
        "E0s (average, estimated, foundation, isolated) of {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction} for {wildcards.foundation}"
    input:
        train=rules.subsample_trainset.output[0],
        foundation=lambda w: foundation_model(w.foundation),
        isolated=lambda w: bench_file(w.benchmark, "isolated_atoms"),
        valid=lambda w: bench_file(w.benchmark, config["benchmarks"][w.benchmark]["validsets"][w.trainset]),
    output:
        f"{RES}/e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.json",
    params:
        dtype=config["default_dtype"],
    threads: config["threads"]
    log:
        f"{RES}/logs/fit_e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.log",
    benchmark:
        f"{RES}/benchmarks/fit_e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.e0s --train {input.train} --foundation {input.foundation} "
        "--isolated {input.isolated} --cover {input.valid} --default-dtype {params.dtype} --output {output} > {log} 2>&1"


rule finetune:
    message:
        "Fine-tune {wildcards.strategy}: {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed}"
    input:
        unpack(finetune_inputs),
    output:
        model=f"{RES}/{RUN}/model.model",
        loss_curves=f"{RES}/{RUN}/loss_curves.csv",
        trainable=f"{RES}/{RUN}/trainable.json",
    params:
        spec=finetune_spec,
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        f"{RES}/logs/finetune/{RUN}.log",
    benchmark:
        f"{RES}/benchmarks/finetune/{RUN}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.train --spec {params.spec:q} --e0s {input.e0s} --model {output.model} "
        "--loss-curves {output.loss_curves} --trainable {output.trainable} "
        "--threads {threads} --log {log} 2>> {log}"
