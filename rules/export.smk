# Export stage: every model (the base included) as a deployable ONNX graph, raw 16 kHz audio in and
# CTC log-probs out, in the formats export.formats names; each export benchmarked like the .nemo.

# The front end (the preprocessor as ONNX) depends on the preprocessor alone, which fine-tuning
# leaves as it is: exported once from the base model, reused by each export whose preprocessor has
# its fingerprint (any other makes its own; export.json says which).
rule export_front_end:
    input:
        model="results/base/model.nemo",
        code=FRONT_END_CODE,
    output:
        FRONT_END,
    threads: 1
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=30,
    log:
        "logs/export/front_end.log",
    benchmark:
        "benchmarks/export/front_end.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft export-front-end --model {input.model:q} --output {output:q} > {log:q} 2>&1"


rule export_model:
    input:
        model="results/{model}/model.nemo",
        front_end=FRONT_END,
        # parity with the .nemo is measured on the first export.parity_clips validation clips
        parity=VALIDATION_MANIFEST,
        code=EXPORT_CODE,
        # not the browser check's keys, which decide which checks run, nor the margin each export is
        # held to (the leaderboard's): neither is what an export is
        settings=settings_file(
            "export_model",
            export={
                key: value
                for key, value in config["export"].items()
                if not key.startswith("browser") and key != "max_seqacc_loss"
            },
        ),
    output:
        graphs=[f"results/{{model}}/export/{export_file(fmt)}" for fmt in EXPORT_FORMATS],
        tokenizer="results/{model}/export/tokenizer.model",
        record="results/{model}/export/export.json",
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.record),
    wildcard_constraints:
        model=MODEL_PATTERN,
    threads: 2
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=60,
    log:
        "logs/export/{model}.log",
    benchmark:
        "benchmarks/export/{model}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft export --settings {input.settings:q} --model {input.model:q}"
        " --out-dir {params.out_dir:q} --parity-manifest {input.parity:q} --front-end {input.front_end:q}"
        " --threads {threads} > {log:q} 2>&1"


# The same protocol, corpus and matchers as benchmark_model (the CTC matcher on the graph's
# log-probs), on onnxruntime with the job's threads: one job per model benchmarks each of its
# formats in turn (one process, one verse index). An export holds the CTC head only, and an app
# identifies one recording at a time: editing benchmark.decoders or benchmark.batch_size does not
# re-run these benchmarks, which have no batch-throughput pass.
# The settings an export's benchmark and its browser check read.
EXPORT_BENCHMARK_SETTINGS = settings_file(
    "benchmark_export", benchmark={**config["benchmark"], "decoders": ["ctc"], "batch_size": None}
)


rule benchmark_export:
    input:
        models=[f"results/{{model}}/export/{export_file(fmt)}" for fmt in EXPORT_FORMATS],
        corpus=benchmark_corpus_files(),
        code=BENCHMARK_CODE,
        settings=EXPORT_BENCHMARK_SETTINGS,
        validation=VALIDATION_MANIFEST,
    output:
        [f"results/{{model}}/export/benchmark.{fmt}.json" for fmt in EXPORT_FORMATS],
    wildcard_constraints:
        model=MODEL_PATTERN,
    threads: 2
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    log:
        "logs/export/benchmark_{model}.log",
    benchmark:
        "benchmarks/export/benchmark_{model}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft benchmark --settings {input.settings:q} --model {input.models:q}"
        " --name {wildcards.model} --output {output:q} --validation-manifest {input.validation:q} > {log:q} 2>&1"


# Each export run where the app runs it: onnxruntime-web (WASM, one thread) in headless Chromium,
# driven through the reference page (web/), the benchmark corpus's log-probs computed there and
# scored by the benchmark's own matchers, beside onnxruntime's in Python (export.browser,
# export.browser_models). One browser, one core: Chromium's WASM runs on one thread.
rule browser_check:
    input:
        models=[f"results/{{model}}/export/{export_file(fmt)}" for fmt in EXPORT_FORMATS],
        corpus=benchmark_corpus_files(),
        code=BROWSER_CODE,
        page=[f"{workflow.basedir}/web/{name}" for name in WEB_PAGE],
        settings=EXPORT_BENCHMARK_SETTINGS,
        validation=VALIDATION_MANIFEST,
    output:
        "results/{model}/export/browser.json",
    params:
        web_dir=lambda wildcards, input: os.path.dirname(input.page[0]),
    wildcard_constraints:
        model=MODEL_PATTERN,
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    log:
        "logs/export/browser_{model}.log",
    benchmark:
        "benchmarks/export/browser_{model}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft browser-check --settings {input.settings:q} --model {input.models:q}"
        " --name {wildcards.model} --output {output:q} --validation-manifest {input.validation:q}"
        " --web-dir {params.web_dir:q} > {log:q} 2>&1"
