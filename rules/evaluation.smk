# Evaluation of each fine-tuned model: test-set errors (batched mace_eval_configs) and NEB profiles.


rule evaluate_errors:
    message:
        "Test-set errors of {wildcards.strategy} ({wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, seed {wildcards.seed})"
    input:
        model=rules.finetune.output.model,
        test=lambda w: bench_file(w.benchmark, config["benchmarks"][w.benchmark]["test"]),
    output:
        predictions=temp(f"{RES}/{RUN}/predictions_test.xyz"),
        errors=f"{RES}/{RUN}/errors_test.csv",
    params:
        run=lambda w: json.dumps({k: w[k] for k in ("benchmark", "trainset", "fraction", "foundation", "strategy", "e0s", "seed")}),
        batch_size=32,
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        f"{RES}/logs/evaluate_errors/{RUN}.log",
    benchmark:
        f"{RES}/benchmarks/evaluate_errors/{RUN}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.evaluate run --configs {input.test} --model {input.model} "
        "--predictions {output.predictions} --default-dtype {params.dtype} --device {params.device} "
        "--batch-size {params.batch_size} --head Default --run {params.run:q} "
        "--testset test --output {output.errors} > {log} 2>&1"


rule run_neb:
    message:
        "NEB profiles of {wildcards.strategy} ({wildcards.benchmark}/{wildcards.trainset}, seed {wildcards.seed})"
    input:
        model=rules.finetune.output.model,
        reference=lambda w: bench_file(w.benchmark, "reference_neb"),
    output:
        f"{RES}/{RUN}/neb.csv",
    params:
        reactions=neb_reactions,
        neb=SC["neb"],
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        f"{RES}/logs/run_neb/{RUN}.log",
    benchmark:
        f"{RES}/benchmarks/run_neb/{RUN}.tsv"
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.neb --model {input.model} --reference {input.reference} "
        "--reactions {params.reactions} --n-images {params.neb[n_images]} --fmax {params.neb[fmax]} "
        "--steps {params.neb[steps]} --default-dtype {params.dtype} --device {params.device} --threads {threads} "
        "--output {output} > {log} 2>&1"
