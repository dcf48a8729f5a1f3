# Analysis: relaxed torsion scans of a fine-tuned model (mlipft.analysis.torsion --relax): each
# reference scan geometry relaxed by the model with its dihedral fixed, against the reference.


rule run_torsions:
    message:
        "Torsion scans of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        scan=lambda w: bench_file(w.benchmark, "torsions"),
    output:
        PATHS.pattern("torsions"),
    params:
        torsion=SC.get("torsion"),
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        run_log("run_torsions"),
    benchmark:
        run_benchmark("run_torsions")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.torsion --model {input.model:q} --scan {input.scan:q} --relax "
        "--fmax {params.torsion[fmax]} --steps {params.torsion[steps]} --default-dtype {params.dtype:q} "
        "--device {params.device:q} --threads {threads} --head Default --output {output:q} > {log:q} 2>&1"
