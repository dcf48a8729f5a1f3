# Training sets, replay sets, E0 fitting and one fine-tune per
# (benchmark, training set, fraction, foundation, strategy, E0 mode, seed).

RUN = (
    "runs/{benchmark}/{trainset}/f{fraction}/{foundation}/{strategy}/e0-{e0s}/seed{seed}"
)


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


rule replay_set:
    message:
        "Replay set {wildcards.replay} for {wildcards.benchmark}"
    input:
        corpus=lambda w: f"{DATA}/corpora/{config['replay'][w.replay]['corpus']}/train.xyz",
        target=lambda w: bench_file(w.benchmark, config["benchmarks"][w.benchmark]["trainsets"][0]),
    output:
        f"{RES}/replay/{{benchmark}}/{{replay}}.xyz",
    params:
        mode=lambda w: config["replay"][w.replay]["mode"],
        seed=config["seed"],
    log:
        f"{RES}/logs/replay_set/{{benchmark}}/{{replay}}.log",
    benchmark:
        f"{RES}/benchmarks/replay_set/{{benchmark}}/{{replay}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.replay --corpus {input.corpus} --target {input.target} --mode {params.mode} "
        "--seed {params.seed} --output {output} > {log} 2>&1"


rule fit_e0s:
    message:
        "E0s (average, estimated, foundation, isolated) of {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction} for {wildcards.foundation}"
    input:
        train=rules.subsample_trainset.output[0],
        foundation=lambda w: foundation_model(w.foundation),
        isolated=lambda w: bench_file(w.benchmark, "isolated_atoms"),
    output:
        f"{RES}/e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.json",
    threads: config["threads"]
    log:
        f"{RES}/logs/fit_e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.log",
    benchmark:
        f"{RES}/benchmarks/fit_e0s/{{benchmark}}/{{trainset}}/f{{fraction}}/seed{{seed}}/{{foundation}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.e0s --train {input.train} --foundation {input.foundation} "
        "--isolated {input.isolated} --default-dtype {config[default_dtype]} --output {output} > {log} 2>&1"


def finetune_inputs(w):
    strategy = STRATEGIES[w.strategy]
    bench = config["benchmarks"][w.benchmark]
    inputs = {
        "train": f"{RES}/trainsets/{w.benchmark}/{w.trainset}/f{w.fraction}/seed{w.seed}.xyz",
        "valid": bench_file(w.benchmark, bench["validsets"][w.trainset]),
        "e0s": f"{RES}/e0s/{w.benchmark}/{w.trainset}/f{w.fraction}/seed{w.seed}/{w.foundation}.json",
        "foundation": foundation_model(w.foundation),
    }
    if strategy.multihead:
        inputs["replay"] = f"{RES}/replay/{w.benchmark}/{strategy.replay}.xyz"
    return inputs


def finetune_spec(w, input):
    strategy = STRATEGIES[w.strategy]
    found = config["foundations"][w.foundation]
    return json.dumps({
        "strategy_name": w.strategy, "strategy": config["strategies"][w.strategy],
        "e0_mode": w.e0s, "name": w.strategy, "seed": int(w.seed),
        "train_file": input.train, "valid_file": input.valid,
        "foundation_model": input.foundation if strategy.uses_foundation else None,
        "replay_file": input.get("replay"),
        "num_samples_pt": SC["finetune"].get("num_samples_pt"),
        "max_num_epochs": SC["finetune"]["max_num_epochs"], "batch_size": SC["finetune"]["batch_size"],
        "device": config["device"], "default_dtype": config["default_dtype"],
        "common": config["training"]["common"],
        "scratch_model": found.get("model", {}),
    })


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
