# Benchmark stage: every model, the untouched base included, on the verse-identification corpus;
# then the leaderboard that compares each trial with the base.


rule benchmark_model:
    input:
        model="results/{model}/model.nemo",
        corpus=benchmark_corpus_files(),
        code=scoring_code_files(),
        # a trial's training data: which benchmark speakers it was trained on (none for the base)
        training=lambda wildcards: [] if wildcards.model == "base" else [f"results/{wildcards.model}/training_metadata.json"],
        settings=settings_file("benchmark_model", benchmark=config["benchmark"]),
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
        " --device {params.device} {params.training} > {log:q} 2>&1"


rule leaderboard:
    input:
        benchmarks=expand("results/{model}/benchmark.json", model=MODELS),
        # how each extends_best trial's parent was chosen: one chosen on this corpus is marked
        choices=[f"results/{name}/extends_best.json" for name, trial in TRIALS.items() if trial.best_of],
        asr=asr_outputs(),
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
    log:
        "logs/benchmark/leaderboard.log",
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft leaderboard --benchmarks {params.benchmarks} --choices {params.choices} --asr {params.asr}"
        " --markdown {output.markdown:q}"
        " --json {output.json:q} --png {output.png:q} > {log:q} 2>&1"
