# Fine-tune NVIDIA's Arabic FastConformer on Quran recitation and benchmark verse identification.
#
#   snakemake -c2                                   # the real run (config/config.yaml)
#   snakemake -c2 --configfile config/demo.yaml     # the embedded demo corpus
#
# The logic lives in the quranft package (src/); rules call its command line. This file and the
# rule files never import torch or NeMo, so that a dry run stays fast.

from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/average.smk"
include: "rules/export.smk"
include: "rules/benchmark.smk"
include: "rules/benchmark_data.smk"


onstart:
    record_settings()


rule all:
    input:
        data_outputs(),
        trial_outputs(),
        model_outputs(),
        benchmark_outputs(),
        export_outputs(),
        longform_outputs(),
        browser_outputs(),
        validation_curves_output(),
        ship_outputs(),
    default_target: True
