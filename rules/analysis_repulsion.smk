# Analysis: short-range repulsion (mlipft.analysis.repulsion): dimer curves of every element pair
# of a benchmark (MLIP Arena's grid) and isotropic compressions of its first test structures, of
# each fine-tuned model (run_repulsion), of each foundation before fine-tuning
# (repulsion_foundation, for figures with repulsion_foundation: true) and of the reference, once per
# benchmark (repulsion_reference): the mini world's benchmark level (GFN2-xTB, or GFN1-xTB where
# a generator's CARD says so), the paper world's main foundation. Curves share one grid: the
# scale's `repulsion` parameters.


rule repulsion_reference:
    message:
        "Repulsion reference curves of {wildcards.benchmark} (mini: its xTB level; paper: the main foundation)"
    input:
        unpack(repulsion_reference_inputs),
    output:
        f"{RES}/repulsion/{{benchmark}}/reference.csv",
    params:
        repulsion=json.dumps(SC.get("repulsion", {})),
        args=lambda w, input, threads: repulsion_reference_args(w, input, threads),
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        PATHS.log("repulsion_reference", "{benchmark}"),
    benchmark:
        PATHS.bench("repulsion_reference", "{benchmark}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.repulsion {params.args} --structures {input.structures:q} "
        "--params {params.repulsion:q} --threads {threads} --output {output:q} > {log:q} 2>&1"


rule repulsion_foundation:
    message:
        "Repulsion curves of foundation {wildcards.foundation} (not fine-tuned) on {wildcards.benchmark}"
    input:
        model=lambda w: foundation_model(w.foundation),
        structures=repulsion_structures,
    output:
        f"{RES}/repulsion/{{benchmark}}/foundation-{{foundation}}.csv",
    params:
        repulsion=json.dumps(SC.get("repulsion", {})),
        dtype=lambda w: wf.foundation_dtype(config, w.foundation),  # as it is stored: no cast
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=20,
        mem_mb=4000,
    log:
        PATHS.log("repulsion_foundation", "{benchmark}/{foundation}"),
    benchmark:
        PATHS.bench("repulsion_foundation", "{benchmark}/{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.repulsion model --model {input.model:q} "
        "--structures {input.structures:q} --params {params.repulsion:q} --label 'foundation {wildcards.foundation}' "
        "--default-dtype {params.dtype:q} --device {params.device:q} --threads {threads} "
        "--output {output:q} > {log:q} 2>&1"


rule run_repulsion:
    message:
        "Repulsion curves of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        structures=repulsion_structures,
    output:
        PATHS.pattern("repulsion"),
    params:
        repulsion=json.dumps(SC.get("repulsion", {})),
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=20,
        mem_mb=4000,
    log:
        run_log("run_repulsion"),
    benchmark:
        run_benchmark("run_repulsion")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.repulsion model --model {input.model:q} "
        "--structures {input.structures:q} --params {params.repulsion:q} --head Default "
        "--default-dtype {params.dtype:q} --device {params.device:q} --threads {threads} "
        "--output {output:q} > {log:q} 2>&1"
