# Analysis: molecular dynamics of fine-tuned models (mlipft.analysis.md: ASE Langevin NVT,
# replicas), the RDFs of that MD (mlipft.analysis.rdf: MDAnalysis InterRDF; parts all, halves,
# replicas), MD stability (mlipft.analysis.stability: a hold and a ramp, detectors), and the
# reference liquid structure a benchmark's RDFs are compared with: a reference MLIP trained from
# scratch on every target-level frame and its long MD (the paper's Behler-Parrinello reference).


rule run_md:
    message:
        "MD of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, {wildcards.foundation}, E0s {wildcards.e0s}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        start=lambda w: md_start(w.benchmark),
    output:
        PATHS.pattern("md"),
    params:
        md=SC.get("md"),  # an own world's scale has it only when a figure runs MD (mlipft.own)
        dtype=config["default_dtype"],
        device=config["device"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    log:
        run_log("run_md"),
    benchmark:
        run_benchmark("run_md")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.md --model {input.model:q} --start {input.start:q} "
        "--replicas {params.md[replicas]} --equil-steps {params.md[equil_steps]} --steps {params.md[prod_steps]} "
        "--record-every {params.md[record_every]} --seed {wildcards.seed} --default-dtype {params.dtype:q} "
        "--device {params.device:q} --threads {threads} --head Default --output {output:q} > {log:q} 2>&1"


rule rdf:
    message:
        "RDFs of the MD of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark} f{wildcards.fraction}, seed {wildcards.seed})"
    input:
        PATHS.pattern("md"),
    output:
        PATHS.pattern("rdf"),
    params:
        pairs=lambda w: md_entry(w.benchmark)["pairs"],
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        run_log("rdf"),
    benchmark:
        run_benchmark("rdf")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.rdf rdf --trajectory {input:q} --pairs {params.pairs} --parts "
        "--output {output:q} > {log:q} 2>&1"


rule run_stability:
    message:
        "MD stability of {wildcards.strategy} ({wildcards.variant}; {wildcards.benchmark}/{wildcards.trainset} f{wildcards.fraction}, seed {wildcards.seed})"
    input:
        model=PATHS.pattern("model"),
        start=lambda w: md_start(w.benchmark),
    output:
        PATHS.pattern("stability"),
    params:
        stability=json.dumps(SC.get("stability")),
        replicas=(SC.get("stability") or {}).get("replicas"),
        frame=lambda w: md_entry(w.benchmark).get("frame", 0),
        dtype=config["default_dtype"],
        device=config["device"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    log:
        run_log("run_stability"),
    benchmark:
        run_benchmark("run_stability")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.analysis.stability --model {input.model:q} --start {input.start:q} --frame {params.frame} "
        "--protocols hold ramp --params {params.stability:q} --replicas {params.replicas} --seed {wildcards.seed} "
        "--default-dtype {params.dtype:q} --device {params.device:q} --threads {threads} --head Default "
        "--output {output:q} > {log:q} 2>&1"


# The reference of a benchmark's liquid structure, next to its files (committed in the mini
# world, with the manifest): inputs are ancient() so that a fresh clone never retrains it.
for _bench in REFERENCE_BENCHMARKS:
    _ref = wf.reference_files(config, PATHS, _bench)
    _md = config["benchmarks"][_bench]["md"]

    rule:
        name:
            f"reference_mlip_{_bench}"
        message:
            f"Reference MLIP of {_bench}: MACE from scratch on every target-level frame"
        input:
            train=[ancient(set_file(_bench, f)) for f in _md["reference_trainsets"]],
            valid=ancient(set_file(_bench, config["benchmarks"][_bench]["validsets"]["train"])),
            isolated=ancient(bench_file(_bench, "isolated_atoms")),
        output:
            model=_ref["model"],
            loss_curves=_ref["loss_curves"],
            trainable=_ref["trainable"],
            e0s=_ref["e0s"],
        params:
            spec=lambda w, input, _b=_bench: wf.reference_spec(config, _b, list(input.train), [input.valid]),
            work=f"{RES}/reference/{_bench}/mace",
            dtype=config["default_dtype"],
        threads: config["threads"]
        resources:
            runtime=240,
            mem_mb=8000,
        log:
            PATHS.log("reference_mlip", _bench),
        benchmark:
            PATHS.bench("reference_mlip", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "(python -m mlipft.e0s --train {input.train:q} --isolated {input.isolated:q} "
            "--default-dtype {params.dtype:q} --output {output.e0s:q} && "
            "python -m mlipft.train --spec {params.spec:q} --e0s {output.e0s:q} --model {output.model:q} "
            "--loss-curves {output.loss_curves:q} --trainable {output.trainable:q} --threads {threads} "
            "--work-dir {params.work:q} --log {log:q}) 2>> {log:q}"

    rule:
        name:
            f"reference_rdf_{_bench}"
        message:
            f"Reference RDFs of {_bench}: long MD of its reference MLIP"
        input:
            model=ancient(_ref["model"]),
            start=ancient(md_start(_bench)),
        output:
            _ref["rdf"],
        params:
            md=SC["reference"]["md"],
            pairs=_md["pairs"],
            seed=config["seed"],
            trajectory=f"{RES}/reference/{_bench}/md.extxyz",  # kept for inspection, not committed
            dtype=config["default_dtype"],
            device=config["device"],
        threads: config["threads"]
        resources:
            runtime=240,
            mem_mb=4000,
        log:
            PATHS.log("reference_rdf", _bench),
        benchmark:
            PATHS.bench("reference_rdf", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "(python -m mlipft.analysis.md --model {input.model:q} --start {input.start:q} "
            "--replicas {params.md[replicas]} --equil-steps {params.md[equil_steps]} --steps {params.md[prod_steps]} "
            "--record-every {params.md[record_every]} --seed {params.seed} --default-dtype {params.dtype:q} "
            "--device {params.device:q} --threads {threads} --processes {threads} --output {params.trajectory:q} && "
            "python -m mlipft.analysis.rdf rdf --trajectory {params.trajectory:q} --pairs {params.pairs} --parts "
            "--output {output:q}) > {log:q} 2>&1"
