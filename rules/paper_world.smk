# The paper world: raw sources downloaded with sha256 checks (mlipft.download), tarballs unpacked
# (the MACE-OFF split), converted to canonical extxyz (mlipft.convert), built into each benchmark's
# files (mlipft.paper); downloaded foundation models put in place in the configured dtype; replay
# sets drawn from the downloaded replay files, less a held-out pretraining-distribution test set
# (scales.<scale>.corpora: Fig. 10). Paths and input functions: rules/paper_common.smk.


include: "paper_common.smk"


from mlipft import paper as paper_lib  # noqa: E402

# tar archives among the sources (the MACE-OFF split): extracted path (under raw/) -> their dest
TARBALLS = {paper_lib.extracted_dest(s.dest): s.dest for s in SOURCES.values() if paper_lib.is_tarball(s.dest)}
# replay sources split into a held-out pretraining test set and the pool replay sets are drawn from
CORPORA = sorted(SC.get("corpora") or {})


rule download:
    message:
        "Fetching {wildcards.dest} (sha256 pinned in the sources lock)"
    output:
        PATHS.raw(config["world"], "{dest}"),
    wildcard_constraints:
        dest=DEST_PATTERN,
    params:
        source_id=lambda w: DEST_TO_ID[w.dest],
        sources=SOURCES_FILE,
        lock=LOCK_FILE,
        raw=raw_root,
        local_dirs=LOCAL_DIR_ARGS,
        accept=ACCEPT_ARG,
    # on the host running snakemake: cluster compute nodes often have no internet
    localrule: True
    threads: 1
    resources:
        runtime=240,
        mem_mb=2000,
    log:
        PATHS.log("download", "{dest}"),
    benchmark:
        PATHS.bench("download", "{dest}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.download --sources {params.sources:q} --lock {params.lock:q} --dest {params.raw:q} "
        "{params.local_dirs} {params.accept} {params.source_id:q} > {log:q} 2>&1"


if TARBALLS:

    rule extract_archive:
        message:
            "Unpacking the extxyz members of {wildcards.extracted} (a tar archive source)"
        input:
            lambda w: PATHS.raw(config["world"], TARBALLS[f"extracted/{w.extracted}.xyz"]),
        output:
            PATHS.raw(config["world"], "extracted/{extracted}.xyz"),
        wildcard_constraints:
            extracted="|".join(re.escape(k[len("extracted/") : -len(".xyz")]) for k in sorted(TARBALLS)),
        threads: 1
        resources:
            runtime=60,
            mem_mb=2000,
        log:
            PATHS.log("extract_archive", "{extracted}"),
        benchmark:
            PATHS.bench("extract_archive", "{extracted}")
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.paper extract --input {input:q} --output {output:q} > {log:q} 2>&1"


rule convert_source:
    message:
        "Converting the {wildcards.role} source of {wildcards.benchmark} to canonical extxyz"
    input:
        # the downloaded file, or a tarball's extracted members (rule extract_archive)
        lambda w: PATHS.raw(
            config["world"],
            paper_lib.source_input_dest(SOURCES[config["benchmarks"][w.benchmark]["sources"][w.role]].dest),
        ),
    output:
        converted_file("{benchmark}", "{role}"),
    wildcard_constraints:
        role=r"[A-Za-z0-9_]+",
    params:
        format=lambda w: config["benchmarks"][w.benchmark]["format"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=lambda w: RECIPES[config["benchmarks"][w.benchmark]["recipe"]].get("mem_mb", 8000),
    log:
        PATHS.log("convert_source", "{benchmark}/{role}"),
    benchmark:
        PATHS.bench("convert_source", "{benchmark}/{role}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.convert {params.format:q} {output:q} {input:q} > {log:q} 2>&1"


for _bench, _spec in config["benchmarks"].items():
    _recipe = RECIPES[_spec["recipe"]]

    rule:
        name:
            f"build_benchmark_{_bench}"
        message:
            f"Benchmark {_bench} from its converted sources (recipe {_spec['recipe']})"
        input:
            **{role: converted_file(_bench, role) for role in _recipe["roles"]},
        output:
            **{f: bench_file(_bench, f) for f in _recipe["files"]},
            summary=PATHS.bench_file(_bench, "summary.json"),
        params:
            recipe=_spec["recipe"],
            inputs=recipe_inputs(_bench),
            recipe_params=json.dumps(SC["benchmarks"].get(_bench, {})),
            neb_reactions=" ".join(bench_neb_reactions(_bench)),
            seed=config["seed"],
            out_dir=lambda w, output: str(Path(output.summary).parent),
        threads: 1
        resources:
            runtime=60,
            mem_mb=_recipe.get("mem_mb", 8000),
        log:
            PATHS.log("build_benchmark", _bench),
        benchmark:
            PATHS.bench("build_benchmark", _bench)
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.paper benchmark {params.recipe:q} --input {params.inputs} "
            "--params {params.recipe_params:q} --neb-reactions {params.neb_reactions} --seed {params.seed:q} "
            "--out-dir {params.out_dir:q} --summary {output.summary:q} > {log:q} 2>&1"


rule install_foundation:
    message:
        "Foundation {wildcards.foundation}: the downloaded checkpoint in the configured dtype"
    input:
        foundation_source_file,
    output:
        foundation_model("{foundation}"),
    params:
        dtype=config["default_dtype"],
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    log:
        PATHS.log("install_foundation", "{foundation}"),
    benchmark:
        PATHS.bench("install_foundation", "{foundation}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.paper foundation --source {input:q} --output {output:q} --dtype {params.dtype:q} > {log:q} 2>&1"


rule convert_replay:
    message:
        "Replay source {wildcards.source} with REF_* label keys"
    input:
        lambda w: raw_file(w.source),
    output:
        replay_source_file("{source}"),
    wildcard_constraints:
        # the replay sets' sources and the corpora split into held-out test sets
        source="|".join(filter(None, [REPLAY_SOURCE_PATTERN, *(re.escape(c) for c in CORPORA)])),
    threads: 1
    resources:
        runtime=120,
        mem_mb=32000,
    log:
        PATHS.log("convert_replay", "{source}"),
    benchmark:
        PATHS.bench("convert_replay", "{source}")
    conda:
        "../envs/mlipft.yaml"
    shell:
        "python -m mlipft.paper canonicalize --input {input:q} --output {output:q} > {log:q} 2>&1"


if CORPORA:

    rule split_pretraining_corpus:
        message:
            "Held-out pretraining-distribution test set of replay source {wildcards.corpus}, and the pool its replay sets are drawn from"
        input:
            lambda w: replay_source_file(w.corpus),
        output:
            pool=corpus_file("{corpus}", "train.xyz"),
            test=corpus_file("{corpus}", "test.xyz"),
            isolated=corpus_file("{corpus}", "isolated_atoms.xyz"),
            summary=corpus_file("{corpus}", "summary.json"),
        wildcard_constraints:
            corpus="|".join(re.escape(c) for c in CORPORA),
        params:
            split=lambda w: json.dumps(SC["corpora"][w.corpus] or {}),
            seed=config["seed"],
        threads: 1
        resources:
            runtime=120,
            mem_mb=8000,
        log:
            PATHS.log("split_pretraining_corpus", "{corpus}"),
        benchmark:
            PATHS.bench("split_pretraining_corpus", "{corpus}")
        conda:
            "../envs/mlipft.yaml"
        shell:
            "python -m mlipft.paper split-corpus --input {input:q} --params {params.split:q} --seed {params.seed:q} "
            "--pool {output.pool:q} --test {output.test:q} --isolated {output.isolated:q} "
            "--summary {output.summary:q} > {log:q} 2>&1"
