# Benchmark stage: every model, the untouched base included, on the verse-identification corpus;
# then the leaderboard that compares each trial with the base, the model to ship (best.json) and
# every model's card.


rule benchmark_model:
    input:
        model="results/{model}/model.nemo",
        corpus=benchmark_corpus_files(),
        code=BENCHMARK_CODE,
        # a trial's training data: which benchmark speakers it was trained on (none for the base)
        training=lambda wildcards: [] if wildcards.model == "base" else [f"results/{wildcards.model}/training_metadata.json"],
        settings=settings_file("benchmark_model", benchmark=config["benchmark"]),
        # the model's confidence threshold is chosen on validation clips, never on the corpus
        validation=VALIDATION_MANIFEST,
    output:
        benchmark=report(
            "results/{model}/benchmark.json",
            caption="../report/benchmark.rst",
            category="Benchmarks",
            subcategory="{model}",
        ),
        log_probs="results/{model}/log_probs.npz",
    params:
        device=device,
        training=lambda wildcards, input: f"--training-metadata {input.training[0]}" if input.training else "",
    wildcard_constraints:
        model=MODEL_PATTERN,
    threads: 2
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=120,
    log:
        "logs/benchmark/{model}.log",
    benchmark:
        "benchmarks/benchmark/{model}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft benchmark --settings {input.settings:q} --model {input.model:q}"
        " --name {wildcards.model} --output {output.benchmark:q} --log-probs {output.log_probs:q}"
        " --device {params.device} {params.training} --validation-manifest {input.validation:q} > {log:q} 2>&1"


# Continuous recitation: each of a model's files (longform.formats) on the corpus's long-form
# sessions, heard whole and streamed in chunks as an app hears a microphone, in one job per model
# (one process, one verse index). A .nemo's confidence threshold is the one its benchmark chose on
# the validation clips; an export carries its own.
rule benchmark_longform:
    input:
        models=longform_files,
        sessions=corpus_sessions(),
        code=LONGFORM_CODE,
        settings=settings_file("benchmark_longform", longform=config["longform"]),
        # the .nemo's confidence threshold, which its benchmark chose (an export carries its own)
        benchmark=lambda wildcards: [f"results/{wildcards.model}/benchmark.json"] if "nemo" in longform_formats() else [],
    output:
        report(
            "results/{model}/longform.json",
            caption="../report/longform.rst",
            category="Benchmarks",
            subcategory="{model}",
        ),
    params:
        corpus=lambda wildcards, input: os.path.dirname(input.sessions[0]),  # the folder of sessions.json
        device=device,
        threshold=lambda wildcards, input: f"--threshold-from {input.benchmark[0]}" if input.benchmark else "",
    wildcard_constraints:
        model=MODEL_PATTERN,
    threads: 2
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=120,
    log:
        "logs/benchmark/longform_{model}.log",
    benchmark:
        "benchmarks/benchmark/longform_{model}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft benchmark-longform --settings {input.settings:q} --model {input.models:q}"
        " --name {wildcards.model} --corpus {params.corpus:q} --output {output:q}"
        " {params.threshold} --threads {threads} --device {params.device} > {log:q} 2>&1"


rule leaderboard:
    input:
        benchmarks=expand("results/{model}/benchmark.json", model=MODELS),
        # how each extends_best trial's parent was chosen: one chosen on this corpus is marked
        choices=[f"results/{name}/extends_best.json" for name, trial in TRIALS.items() if trial.best_of],
        asr=asr_outputs(),
        curves=validation_curves_output(),
        exports=export_outputs(),
        longform=longform_outputs(),
        browser=browser_outputs(),
        # the margin each export's SeqAcc loss against its .nemo is bounded by (the Deployable table)
        settings=settings_file("leaderboard", export={"max_seqacc_loss": config["export"]["max_seqacc_loss"]}),
    output:
        markdown=report("results/leaderboard.md", caption="../report/leaderboard.rst", category="Leaderboard"),
        json="results/leaderboard.json",
        png=report("results/leaderboard.png", caption="../report/leaderboard.rst", category="Leaderboard"),
    params:
        benchmarks=lambda wildcards, input: " ".join(
            f"{Path(path).parent.name}={path}" for path in input.benchmarks
        ),
        choices=lambda wildcards, input: " ".join(
            f"{Path(path).parent.name}={path}" for path in input.choices
        ),
        asr=lambda wildcards, input: " ".join(f"{Path(path).parent.name}={path}" for path in input.asr),
        curves=lambda wildcards, input: f"--validation-curves {input.curves[0]}" if input.curves else "",
        exports=lambda wildcards, input: " ".join(
            f"{Path(path).parent.parent.name}:{Path(path).name.split('.')[1]}={path}" for path in input.exports
        ),
        longform=lambda wildcards, input: " ".join(f"{Path(path).parent.name}={path}" for path in input.longform),
        browser=lambda wildcards, input: " ".join(f"{Path(path).parent.parent.name}={path}" for path in input.browser),
        max_seqacc_loss=config["export"]["max_seqacc_loss"],
    log:
        "logs/benchmark/leaderboard.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft leaderboard --benchmarks {params.benchmarks} --choices {params.choices} --asr {params.asr}"
        " --markdown {output.markdown:q}"
        " --json {output.json:q} --png {output.png:q} {params.curves} --exports {params.exports}"
        " --longform {params.longform} --max-seqacc-loss {params.max_seqacc_loss} --browser {params.browser}"
        " > {log:q} 2>&1"


# The best trial that beats the base significantly (after Holm), else the base, with the reason
# and its files: the .nemo, the model card and the exports of the configured formats. It names
# the export files, and does not wait for them.
rule best_model:
    input:
        leaderboard="results/leaderboard.json",
        settings=settings_file("best_model", export={"formats": EXPORT_FORMATS}),
    output:
        report("results/best.json", caption="../report/best.rst", category="Leaderboard"),
    params:
        models=" ".join(f"{model}=results/{model}/model.nemo" for model in MODELS),
        formats=" ".join(EXPORT_FORMATS),
    log:
        "logs/benchmark/best_model.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft best-model --leaderboard {input.leaderboard:q} --models {params.models}"
        " --export-formats {params.formats} --output {output:q} > {log:q} 2>&1"


rule model_card:
    input:
        leaderboard="results/leaderboard.json",
        # what a trial was trained on and how its checkpoints were averaged (nothing for the base)
        training=lambda wildcards: trial_record(wildcards.model, "training_metadata.json"),
        averaging=lambda wildcards: trial_record(wildcards.model, "averaging.json"),
        settings=settings_file(
            "model_card",
            base_model=config["base_model"],
            base_model_license=config["base_model_license"],
            sources=config["sources"],
            # the card names the benchmark corpus, and the datasets it is built from
            benchmark={"corpus": config["benchmark"]["corpus"], "build": config["benchmark"]["build"]},
        ),
    output:
        report(
            "results/{model}/MODEL_CARD.md",
            caption="../report/model_card.rst",
            category="Model cards",
            subcategory="{model}",
        ),
    params:
        trial=lambda wildcards, input: (
            f"--training-metadata {input.training[0]} --averaging {input.averaging[0]}" if input.training else ""
        ),
    wildcard_constraints:
        model=MODEL_PATTERN,
    log:
        "logs/benchmark/model_card_{model}.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft model-card --settings {input.settings:q} --leaderboard {input.leaderboard:q}"
        " --model {wildcards.model} {params.trial} --output {output:q} > {log:q} 2>&1"
