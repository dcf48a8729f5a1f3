# The mini world: pretraining corpora, benchmarks and foundation models generated from seeds,
# labelled by GFN1-xTB (foundation level) and GFN2-xTB (target level) with tblite.
import importlib


rule generate_corpus:
    message:
        "Corpus {wildcards.corpus} at the foundation level (GFN1-xTB)"
    output:
        train=f"{DATA}/corpora/{{corpus}}/train.xyz",
        valid=f"{DATA}/corpora/{{corpus}}/valid.xyz",
        isolated=f"{DATA}/corpora/{{corpus}}/isolated_atoms.xyz",
        summary=f"{DATA}/corpora/{{corpus}}/summary.json",
    params:
        generator=lambda w: json.dumps(SC["corpora"][w.corpus]),
        seed=config["seed"],
        out_dir=lambda w, output: str(Path(output.train).parent),
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        f"{RES}/logs/generate_corpus/{{corpus}}.log",
    benchmark:
        f"{RES}/benchmarks/generate_corpus/{{corpus}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.mini.build corpus {wildcards.corpus} "
        "--params {params.generator:q} --seed {params.seed} --out-dir {params.out_dir} "
        "--summary {output.summary} > {log} 2>&1"


for _bench, _spec in config["benchmarks"].items():
    _files = importlib.import_module(f"mlipft.mini.{_spec['generator']}").FILES

    rule:
        name:
            f"generate_benchmark_{_bench}"
        message:
            f"Benchmark {_bench} at the target level (GFN2-xTB)"
        output:
            **{f: f"{DATA}/benchmarks/{_bench}/{f}.xyz" for f in _files},
            summary=f"{DATA}/benchmarks/{_bench}/summary.json",
        params:
            generator=_spec["generator"],
            gen_params=json.dumps(SC["benchmarks"][_bench]),
            seed=config["seed"],
            out_dir=lambda w, output: str(Path(output.summary).parent),
        threads: 1
        resources:
            runtime=120,
            mem_mb=4000,
        log:
            f"{RES}/logs/generate_benchmark/{_bench}.log",
        benchmark:
            f"{RES}/benchmarks/generate_benchmark/{_bench}.tsv"
        conda:
            "../envs/mlipft.yaml"
        shell:
            "OMP_NUM_THREADS={threads} python -m mlipft.mini.build benchmark {params.generator} "
            "--params {params.gen_params:q} --seed {params.seed} --out-dir {params.out_dir} "
            "--summary {output.summary} > {log} 2>&1"


rule corpus_e0s:
    message:
        "E0s of corpus {wildcards.corpus} (average and isolated; pretraining uses average)"
    input:
        train=rules.generate_corpus.output.train,
        isolated=rules.generate_corpus.output.isolated,
    output:
        f"{DATA}/corpora/{{corpus}}/e0s.json",
    params:
        dtype=config["default_dtype"],
    log:
        f"{RES}/logs/corpus_e0s/{{corpus}}.log",
    benchmark:
        f"{RES}/benchmarks/corpus_e0s/{{corpus}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.e0s --train {input.train} --isolated {input.isolated} "
        "--default-dtype {params.dtype} --output {output} > {log} 2>&1"


rule pretrain_foundation:
    message:
        "Pretraining the mini foundation {wildcards.foundation} with mace_run_train"
    input:
        train=lambda w: f"{DATA}/corpora/{config['foundations'][w.foundation]['corpus']}/train.xyz",
        valid=lambda w: f"{DATA}/corpora/{config['foundations'][w.foundation]['corpus']}/valid.xyz",
        e0s=lambda w: f"{DATA}/corpora/{config['foundations'][w.foundation]['corpus']}/e0s.json",
    output:
        model=f"{RES}/foundations/{{foundation}}/model.model",
        loss_curves=f"{RES}/foundations/{{foundation}}/loss_curves.csv",
        trainable=f"{RES}/foundations/{{foundation}}/trainable.json",
    params:
        spec=pretrain_spec,
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=8000,
    log:
        f"{RES}/logs/pretrain_foundation/{{foundation}}.log",
    benchmark:
        f"{RES}/benchmarks/pretrain_foundation/{{foundation}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.train --spec {params.spec:q} --e0s {input.e0s} --model {output.model} "
        "--loss-curves {output.loss_curves} --trainable {output.trainable} "
        "--threads {threads} --log {log} 2>> {log}"


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
        n=SC["finetune"].get("num_samples_pt", 100),
        seed=config["seed"],
    log:
        f"{RES}/logs/replay_set/{{benchmark}}/{{replay}}.log",
    benchmark:
        f"{RES}/benchmarks/replay_set/{{benchmark}}/{{replay}}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.replay --corpus {input.corpus} --target {input.target} --mode {params.mode} "
        "--n {params.n} --seed {params.seed} --output {output} > {log} 2>&1"
