# Fine-tuning MLIP foundation models: strategies for accuracy and transferability.
# One DAG: raw data -> E0 fitting -> one fine-tune per grid point -> analyses -> figures.
#   snakemake all_figures            # every figure that exists, mini world (default config)
#   snakemake fig06                  # one figure by its target
#   snakemake --profile slurm all_figures --configfile=config/paper.yaml   # paper world on SLURM
#   snakemake --report report.html   # every figure that exists, with its caption
# See README.md.

from snakemake.utils import min_version

min_version("9.0")


# Layered configuration: the world-independent layer (training defaults, strategy registry,
# variants, figure grids), then a world over it: the mini world by default, or the config files
# given with --configfile (config/paper.yaml, your own system's: config/examples/own_system.yaml), which replace it.
configfile: "config/shared.yaml"


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


if config["world"] == "mini":

    include: "rules/mini_world.smk"

elif config["world"] == "own":

    include: "rules/own_world.smk"

else:

    include: "rules/paper_world.smk"


include: "rules/training.smk"
include: "rules/analysis_errors.smk"
include: "rules/analysis_neb.smk"
include: "rules/analysis_torsion.smk"
include: "rules/analysis_md.smk"
include: "rules/analysis_symmetry.smk"
include: "rules/analysis_repulsion.smk"
include: "rules/analysis_rss.smk"
include: "rules/figures.smk"
