# Checkpoint averaging: each trial's top-k checkpoints into results/<trial>/model.nemo.


rule average_checkpoints:
    input:
        metadata="results/{trial}/training_metadata.json",
        base="results/base/model.nemo",
        settings=settings_file("average_checkpoints", trials=trials_settings(), averaging=config["averaging"]),
    output:
        model="results/{trial}/model.nemo",
        report=report(
            "results/{trial}/averaging.json",
            caption="../report/averaging.rst",
            category="Averaging",
            subcategory="{trial}",
        ),
    params:
        trial_dir=lambda wildcards, output: os.path.dirname(output.model),
        device=device,
    wildcard_constraints:
        trial=TRIAL_PATTERN,
    threads: 2
    resources:
        gpu=0,
        mem_mb=16000,
        runtime=120,
    log:
        "logs/average/{trial}.log",
    benchmark:
        "benchmarks/average/{trial}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft average --settings {input.settings:q} --trial {wildcards.trial}"
        " --trial-dir {params.trial_dir:q} --base-model {input.base:q} --device {params.device}"
        " > {log:q} 2>&1"
