# Training stage: the base model, the demo's stand-in for it, and one fine-tuning job per trial.


# The demo base model is committed; its inputs are ancient source files, so that a fresh clone uses
# it as it is. Rebuild it with: snakemake -c2 --configfile config/demo.yaml -f demo/base_model.nemo
rule pretrain_demo_base:
    input:
        demo_base_inputs(),
        settings=ancient(
            settings_file(
                "pretrain_demo_base",
                data=data_settings("quran_ayah_corpus"),
                benchmark=config["benchmark"],
                demo_base=config["demo_base"],
            )
        ),
    output:
        DEMO_BASE,
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        "logs/train/pretrain_demo_base.log",
    benchmark:
        "benchmarks/train/pretrain_demo_base.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft pretrain-demo-base --settings {input.settings:q} --output {output:q}"
        " --threads {threads} > {log:q} 2>&1"


rule base_model:
    input:
        model=base_model_file(),
        settings=settings_file("base_model", base_model=config["base_model"]),
    output:
        "results/base/model.nemo",
    log:
        "logs/train/base_model.log",
    benchmark:
        "benchmarks/train/base_model.tsv"
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft base-model --settings {input.settings:q} --output {output:q} > {log:q} 2>&1"


rule resolve_trial:
    input:
        unpack(best_of_inputs),
        settings=settings_file("resolve_trial", trials=trials_settings()),
    output:
        trial="results/{trial}/trial.yaml",
        choice="results/{trial}/extends_best.json",
    params:
        scores=lambda wildcards, input: " ".join(
            f"{Path(path).parent.name}={path}" for path in input.scores
        ),
    wildcard_constraints:
        trial=BEST_OF_PATTERN,
    priority: TRAINING_PRIORITY
    log:
        "logs/train/resolve_{trial}.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft resolve-trial --settings {input.settings:q} --trial {wildcards.trial}"
        " --scores {params.scores} --output {output.trial:q} --choice {output.choice:q} > {log:q} 2>&1"


rule train_trial:
    input:
        trial=trial_files,
        base="results/base/model.nemo",
        manifests=source_manifests(),
        settings=settings_file("train_trial", trials=trials_settings(), sources=config["sources"]),
    output:
        metadata="results/{trial}/training_metadata.json",
        curves=report(
            "results/{trial}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{trial}",
        ),
    params:
        data_dir=lambda wildcards, input: os.path.dirname(os.path.dirname(input.manifests[0])),
        out_dir=lambda wildcards, output: os.path.dirname(output.metadata),
    wildcard_constraints:
        trial=TRIAL_PATTERN,
    # Data-loading workers follow the threads: threads - 1 of them per training process (the
    # processes of a DDP job share them). Snakemake caps threads at --cores (-c2: 2), and the
    # profiles raise them (set-threads train_trial: 8); on Slurm the job's CPUs follow the threads,
    # per task (one task per device, each training process using its own task's CPUs), so ask for
    # more of both with --set-threads train_trial=16. (Threads cannot follow a resource: Snakemake
    # evaluates them first.)
    threads: 2
    priority: TRAINING_PRIORITY
    resources:
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=0,
        # processes on the CPU (gloo DDP) when gpu is 0; with GPUs, one process per GPU. Under
        # Slurm the training command starts them as tasks of the job (quranft.training.launch).
        tasks=1,
        mem_mb=16000,
        runtime=24 * 60,
    log:
        "logs/train/{trial}.log",
    benchmark:
        "benchmarks/train/{trial}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft train --settings {input.settings:q} --trial {wildcards.trial}"
        " --base-model {input.base:q} --data-dir {params.data_dir:q} --out-dir {params.out_dir:q}"
        " --gpus {resources.gpu} --cpu-processes {resources.tasks} --threads {threads} > {log:q} 2>&1"


# Every trial's validation WER by step on one plot (each trial's own curves are its
# training_curves.png); read from the metrics.csv beside each trial's training metadata.
rule validation_curves:
    input:
        metadata=trial_outputs(),
    output:
        report(VALIDATION_CURVES, caption="../report/validation_curves.rst", category="Training"),
    params:
        metrics=lambda wildcards, input: " ".join(
            f"{Path(path).parent.name}={Path(path).parent / METRICS_CSV}" for path in input.metadata
        ),
    log:
        "logs/train/validation_curves.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft validation-curves --metrics {params.metrics} --output {output:q} > {log:q} 2>&1"
