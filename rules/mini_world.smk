# The mini world: pretraining corpora, benchmarks and foundation models generated from seeds,
# labelled by GFN1-xTB (foundation level) and GFN2-xTB (target level) with tblite. Everything
# here is committed under data/mini/<scale>/ with a manifest; `snakemake mini_world` regenerates
# it. Inputs of committed artifacts are ancient(): a fresh clone's checkout mtimes never trigger
# a regeneration. Paths and input functions: rules/common.smk.


rule generate_corpus:
    message:
        "Corpus {wildcards.corpus} at the foundation level (GFN1-xTB)"
    output:
        train=corpus_file("{corpus}", "train.xyz"),
        valid=corpus_file("{corpus}", "valid.xyz"),
        isolated=corpus_file("{corpus}", "isolated_atoms.xyz"),
        summary=corpus_file("{corpus}", "summary.json"),
    wildcard_constraints:
        corpus="mptrj|omat",
    params:
        generator=lambda w: json.dumps(SC["corpora"][w.corpus]),
        seed=config["seed"],
        out_dir=lambda w, output: str(Path(output.train).parent),
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        PATHS.log("generate_corpus", "{corpus}"),
    benchmark:
        PATHS.bench("generate_corpus", "{corpus}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.mini.build corpus {wildcards.corpus} "
        "--params {params.generator:q} --seed {params.seed:q} --out-dir {params.out_dir:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


rule generate_testset:
    message:
        "Common held-out test set {wildcards.corpus} of the foundations (GFN1-xTB)"
    output:
        test=corpus_file("{corpus}", "test.xyz"),
        isolated=corpus_file("{corpus}", "isolated_atoms.xyz"),
        summary=corpus_file("{corpus}", "summary.json"),
    wildcard_constraints:
        corpus="test",
    params:
        generator=lambda w: json.dumps(SC["corpora"][w.corpus]),
        seed=config["seed"],
        out_dir=lambda w, output: str(Path(output.test).parent),
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        PATHS.log("generate_testset", "{corpus}"),
    benchmark:
        PATHS.bench("generate_testset", "{corpus}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.mini.build corpus {wildcards.corpus} "
        "--params {params.generator:q} --seed {params.seed:q} --out-dir {params.out_dir:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


for _bench in config["benchmarks"]:

    rule:
        name:
            f"generate_benchmark_{_bench}"
        message:
            f"Benchmark {_bench} at the target level"
        output:
            **benchmark_outputs(_bench),
            summary=PATHS.bench_file(_bench, "summary.json"),
        params:
            generator=config["benchmarks"][_bench]["generator"],
            gen_params=json.dumps(SC["benchmarks"][_bench]),
            seed=config["seed"],
            out_dir=lambda w, output: str(Path(output.summary).parent),
        threads: config["benchmarks"][_bench].get("threads", 1)
        resources:
            runtime=120,
            mem_mb=4000,
        log:
            PATHS.log("generate_benchmark", _bench),
        benchmark:
            PATHS.bench("generate_benchmark", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "OMP_NUM_THREADS=1 python -m mlipft.mini.build benchmark {params.generator:q} "
            "--params {params.gen_params:q} --seed {params.seed:q} --out-dir {params.out_dir:q} "
            "--summary {output.summary:q} > {log:q} 2>&1"


rule corpus_e0s:
    message:
        "E0s of corpus {wildcards.corpus} (pretraining uses average; elements it lacks get isolated-atom E0s)"
    input:
        unpack(corpus_e0s_inputs),
    output:
        corpus_file("{corpus}", "e0s.json"),
    params:
        dtype=config["pretrain_dtype"],
        elements=" ".join(MINI_ELEMENTS),
    log:
        PATHS.log("corpus_e0s", "{corpus}"),
    benchmark:
        PATHS.bench("corpus_e0s", "{corpus}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.e0s --train {input.train:q} --isolated {input.isolated:q} --elements {params.elements} "
        "--default-dtype {params.dtype:q} --output {output:q} > {log:q} 2>&1"


rule pretrain_foundation:
    message:
        "Pretraining the mini foundation {wildcards.foundation} with mace_run_train"
    input:
        train=lambda w: foundation_corpus(w, "train.xyz"),
        valid=lambda w: foundation_corpus(w, "valid.xyz"),
        e0s=foundation_e0s,
    output:
        model=foundation_model("{foundation}"),
        loss_curves=PATHS.foundation_file("{foundation}", "loss_curves.csv"),
        trainable=PATHS.foundation_file("{foundation}", "trainable.json"),
    params:
        spec=pretrain_spec,
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=8000,
    log:
        PATHS.log("pretrain_foundation", "{foundation}"),
    benchmark:
        PATHS.bench("pretrain_foundation", "{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.train --spec {params.spec:q} --e0s {input.e0s:q} --model {output.model:q} "
        "--loss-curves {output.loss_curves:q} --trainable {output.trainable:q} "
        "--threads {threads} --log {log:q} --work-dir {log:q}.mace 2>> {log:q}"


rule foundation_quality:
    message:
        "Foundation {wildcards.foundation}: errors on the common test set and zero-shot on every benchmark"
    input:
        unpack(quality_datasets),
        model=ancient(foundation_model("{foundation}")),
    output:
        PATHS.foundation_file("{foundation}", "quality.csv"),
    params:
        datasets=quality_args,
        dtype=config["pretrain_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        PATHS.log("foundation_quality", "{foundation}"),
    benchmark:
        PATHS.bench("foundation_quality", "{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.quality evaluate --model {input.model:q} --name {wildcards.foundation} "
        "{params.datasets} --device {params.device:q} --default-dtype {params.dtype:q} --threads {threads} "
        "--output {output:q} > {log:q} 2>&1"


rule foundation_quality_table:
    message:
        "Foundation quality table"
    input:
        ancient(expand(rules.foundation_quality.output[0], foundation=list(config["foundations"]))),
    output:
        PATHS.data_file("foundation_quality.csv"),
    log:
        PATHS.log("foundation_quality_table"),
    benchmark:
        PATHS.bench("foundation_quality_table")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.quality table --inputs {input:q} --output {output:q} > {log:q} 2>&1"


rule data_card:
    message:
        "Data card of the mini world ({DATA}/README.md)"
    input:
        files=[ancient(p) for p in mini_world_files()],
    output:
        card=PATHS.data_file("README.md"),
        manifest=PATHS.data_file("MANIFEST.tsv"),
    params:
        root=lambda w, output: str(Path(output.manifest).parent),
        entries=manifest_entries,
        foundations=json.dumps(config["foundations"]),
        benchmarks=json.dumps(config["benchmarks"]),
        quality=lambda w, input: next(f for f in input.files if f.endswith("foundation_quality.csv")),
    log:
        PATHS.log("data_card"),
    benchmark:
        PATHS.bench("data_card")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "(python -m mlipft.manifest build --root {params.root:q} --entries {params.entries:q} "
        "--output {output.manifest:q} && "
        "python -m mlipft.datacard --data-dir {params.root:q} --foundations {params.foundations:q} "
        "--benchmarks {params.benchmarks:q} --quality {params.quality:q} --manifest {output.manifest:q} "
        "--output {output.card:q}) > {log:q} 2>&1"


rule mini_world:
    message:
        "The mini world: corpora, benchmarks, foundations, their quality, data card and manifest"
    localrule: True
    input:
        rules.data_card.output,
