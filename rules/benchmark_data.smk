# Benchmark data the workflow makes itself: the verse-identification corpus and its long-form
# sessions, built from datasets when benchmark.build is set (before the leakage guard and the benchmarks read it), and the ASR
# test set with every model's WER and CER, when asr_benchmark is set.

if config["benchmark"]["build"]:

    rule build_benchmark_corpus:
        input:
            data=[path for source in built_corpus_sources() for path in local_files(source)],
            settings=settings_file(
                "build_benchmark_corpus",
                benchmark={key: config["benchmark"][key] for key in ("corpus", "build")},
            ),
        output:
            manifest=built_corpus_manifest(),
            sessions=built_corpus_sessions(),
            report=report(
                os.path.join(config["benchmark"]["corpus"], "build_report.json"),
                caption="../report/benchmark_corpus.rst",
                category="Benchmarks",
            ),
        params:
            corpus=lambda wildcards, output: os.path.dirname(output.manifest),
        threads: 1
        resources:
            mem_mb=8000,
            runtime=240,
        log:
            "logs/benchmark/build_benchmark_corpus.log",
        benchmark:
            "benchmarks/benchmark/build_benchmark_corpus.tsv"
        conda:
            "../envs/quranft.yaml"
        shell:
            "python -m quranft build-corpus --settings {input.settings:q} --output {params.corpus:q}"
            " > {log:q} 2>&1"


if config["asr_benchmark"]:

    rule prepare_asr_benchmark:
        input:
            data=local_files(config["asr_benchmark"]),
            # batch_size only sets how the models transcribe: editing it re-scores, never re-reads
            settings=settings_file(
                "prepare_asr_benchmark",
                asr_benchmark={k: v for k, v in config["asr_benchmark"].items() if k != "batch_size"},
            ),
        output:
            manifest=f"{ASR_SET}/manifest.jsonl",
            report=f"{ASR_SET}/report.json",
        params:
            out_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        threads: 1
        resources:
            mem_mb=8000,
            runtime=120,
        log:
            "logs/benchmark/prepare_asr_benchmark.log",
        benchmark:
            "benchmarks/benchmark/prepare_asr_benchmark.tsv"
        conda:
            "../envs/quranft.yaml"
        shell:
            "python -m quranft prepare-asr-benchmark --settings {input.settings:q} --out-dir {params.out_dir:q}"
            " > {log:q} 2>&1"

    rule asr_benchmark_model:
        input:
            model="results/{model}/model.nemo",
            test_set=f"{ASR_SET}/manifest.jsonl",
            code=code_record("asr_benchmark_code", ASR_BENCHMARK),
            # the heads judged (benchmark.decoders) as in the verse benchmark
            settings=settings_file(
                "asr_benchmark_model",
                asr_benchmark={"batch_size": config["asr_benchmark"]["batch_size"]},
                benchmark={"decoders": config["benchmark"]["decoders"]},
            ),
        output:
            report(
                "results/{model}/asr_benchmark.json",
                caption="../report/asr_benchmark.rst",
                category="ASR benchmark",
                subcategory="{model}",
            ),
        params:
            test_set=lambda wildcards, input: os.path.dirname(input.test_set),
            device=device,
        wildcard_constraints:
            model=MODEL_PATTERN,
        threads: 2
        resources:
            gpu=0,
            mem_mb=8000,
            runtime=120,
        log:
            "logs/benchmark/asr_{model}.log",
        benchmark:
            "benchmarks/benchmark/asr_{model}.tsv"
        conda:
            "../envs/quranft.yaml"
        shell:
            "python -m quranft asr-benchmark --settings {input.settings:q} --model {input.model:q}"
            " --name {wildcards.model} --test-set {params.test_set:q} --output {output:q}"
            " --device {params.device} > {log:q} 2>&1"
