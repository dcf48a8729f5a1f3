# Fine-tuning MLIP foundation models: strategies for accuracy and transferability.
# One DAG: raw data -> E0 fitting -> one fine-tune per strategy -> evaluation -> figures.
#   snakemake all_figures            # every figure that exists, mini world (default config)
#   snakemake fig06                  # one figure by its target
#   snakemake --profile slurm all_figures --configfile=config/paper.yaml   # paper world on SLURM
# See README.md.

from snakemake.utils import min_version

min_version("9.0")


# The mini world is the default; `--configfile config/paper.yaml` replaces it (not merged into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



include: "rules/common.smk"


if config["world"] == "mini":

    include: "rules/mini_world.smk"

else:

    include: "rules/paper_world.smk"


include: "rules/training.smk"
include: "rules/evaluation.smk"
include: "rules/figures.smk"
