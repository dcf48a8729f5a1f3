# Analysis: random structure search for holes in the potential energy surface
# (mlipft.analysis.rss; Fig. 11, 16). Random crystals of a benchmark's formula units
# (benchmarks.<b>.rss.units; PyXtal, rule rss_structures, once per benchmark) are relaxed at each
# pressure with relax-rattle cycles by every fine-tuned model (run_rss), by each foundation before
# fine-tuning (rss_foundation) and by the reference level (rss_reference, whose relaxations give
# the energy floor of each composition). Each model is judged against the level it models: a
# fine-tuned model against the benchmark's level (mini: GFN2-xTB), a foundation against the
# foundation level (mini: GFN1-xTB); in the paper world, where neither can be computed, the main
# foundation stands in (rss_level). Parameters: scales.<scale>.rss over the module's DEFAULTS.


rule rss_structures:
    message:
        "Random crystals of {wildcards.benchmark}'s formula units for the random structure search"
    output:
        f"{RES}/rss/{{benchmark}}/structures.extxyz",
    params:
        rss=lambda w: rss_params(w.benchmark),
        seed=config["seed"],
    threads: 1
    resources:
        runtime=20,
        mem_mb=2000,
    log:
        PATHS.log("rss_structures", "{benchmark}"),
    benchmark:
        PATHS.bench("rss_structures", "{benchmark}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.rss generate --params {params.rss:q} --seed {params.seed} "
        "--output {output:q} > {log:q} 2>&1"


rule rss_reference:
    message:
        "Random structure search of {wildcards.benchmark} at the reference level {wildcards.level}"
    input:
        unpack(rss_reference_inputs),
    output:
        f"{RES}/rss/{{benchmark}}/reference-{{level}}.csv",
    wildcard_constraints:
        level="gfn1|gfn2|main",
    params:
        rss=lambda w: rss_params(w.benchmark),
        args=lambda w, input, threads: rss_reference_args(w, input, threads),
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        PATHS.log("rss_reference", "{benchmark}/{level}"),
    benchmark:
        PATHS.bench("rss_reference", "{benchmark}/{level}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.rss {params.args} --structures {input.structures:q} "
        "--params {params.rss:q} --threads {threads} --output {output:q} > {log:q} 2>&1"


rule rss_foundation:
    message:
        "Random structure search of {wildcards.benchmark} with foundation {wildcards.foundation} (not fine-tuned)"
    input:
        model=lambda w: foundation_model(w.foundation),
        structures=f"{RES}/rss/{{benchmark}}/structures.extxyz",
        reference=lambda w: rss_reference_table(w.benchmark, "foundation"),
        reference_model=rss_reference_model,
    output:
        f"{RES}/rss/{{benchmark}}/foundation-{{foundation}}.csv",
    params:
        rss=lambda w: rss_params(w.benchmark),
        dtype=lambda w: wf.foundation_dtype(config, w.foundation),  # as it is stored: no cast
        reference=lambda w, input: rss_single_points(w, "foundation", input),
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        PATHS.log("rss_foundation", "{benchmark}/{foundation}"),
    benchmark:
        PATHS.bench("rss_foundation", "{benchmark}/{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.rss model --model {input.model:q} "
        "--label 'foundation {wildcards.foundation}' --structures {input.structures:q} "
        "--reference-table {input.reference:q} {params.reference} --params {params.rss:q} "
        "--default-dtype {params.dtype:q} --device {params.device:q} --threads {threads} "
        "--output {output:q} > {log:q} 2>&1"


rule run_rss:
    message:
        "Random structure search with {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        structures=f"{RES}/rss/{{benchmark}}/structures.extxyz",
        reference=lambda w: rss_reference_table(w.benchmark, "target"),
        reference_model=rss_reference_model,
        e0s=rss_run_e0s,
    output:
        PATHS.pattern("rss"),
    params:
        rss=lambda w: rss_params(w.benchmark),
        reference=lambda w, input: rss_single_points(w, "target", input),
        dtype=config["default_dtype"],
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        run_log("run_rss"),
    benchmark:
        run_benchmark("run_rss")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m mlipft.analysis.rss model --model {input.model:q} --head Default "
        "--structures {input.structures:q} --reference-table {input.reference:q} {params.reference} "
        "--params {params.rss:q} --default-dtype {params.dtype:q} --device {params.device:q} "
        "--threads {threads} --output {output:q} > {log:q} 2>&1"
