# Analysis: NEB profiles of a fine-tuned model between the reference end points of the
# benchmark's reactions (mlipft.analysis.neb; all images of a band in one batched MACE call).


rule run_neb:
    message:
        "NEB profiles of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        reference=lambda w: bench_file(w.benchmark, "reference_neb"),
    output:
        PATHS.pattern("neb"),
    params:
        reactions=neb_reactions,
        neb=SC.get("neb"),
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        run_log("run_neb"),
    benchmark:
        run_benchmark("run_neb")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.neb --model {input.model:q} --reference {input.reference:q} "
        "--reactions {params.reactions} --n-images {params.neb[n_images]} --fmax {params.neb[fmax]} "
        "--steps {params.neb[steps]} --default-dtype {params.dtype:q} --device {params.device:q} --threads {threads} "
        "--output {output:q} > {log:q} 2>&1"
