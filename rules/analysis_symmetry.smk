# Analysis: symmetry check of a fine-tuned model (mlipft.analysis.symmetry): energies invariant and
# forces covariant under random rotations, reflections, translations (wrapped in periodic cells)
# and atom permutations of a few of its benchmark's test structures, through the target head.
# Always in float64, whatever the world's default_dtype: the check measures the model's symmetry,
# not the evaluation's rounding (float32 alone deviates by ~5e-6 eV/atom, ~5e-5 eV/A; the default
# tolerances, 1e-7 eV/atom and 1e-5 eV/A, are float64's: see mlipft.analysis.symmetry). Every model
# sees the same transformations (one seed for all runs). Settings: the scale's `symmetry` block, the command's defaults where unset.

_SYMMETRY = {
    "n_frames": 3,
    "n_transforms": 10,
    "seed": 0,
    "tolerance_energy": 1e-7,
    "tolerance_force": 1e-5,
    **(SC.get("symmetry") or {}),
}


rule run_symmetry:
    message:
        "Symmetry check of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        structures=lambda w: set_file(w.benchmark, config["benchmarks"][w.benchmark]["test"]),
    output:
        PATHS.pattern("symmetry"),
    params:
        symmetry=_SYMMETRY,
        device=config["device"],
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        run_log("run_symmetry"),
    benchmark:
        run_benchmark("run_symmetry")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.symmetry --model {input.model:q} --structures {input.structures:q} "
        "--n-frames {params.symmetry[n_frames]} --n-transforms {params.symmetry[n_transforms]} "
        "--seed {params.symmetry[seed]} --tolerance-energy {params.symmetry[tolerance_energy]} "
        "--tolerance-force {params.symmetry[tolerance_force]} --default-dtype float64 "
        "--device {params.device:q} --threads {threads} --head Default --output {output:q} > {log:q} 2>&1"
