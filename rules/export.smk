# Export stage: every model (the base included) as a deployable ONNX graph, raw 16 kHz audio in and
# CTC log-probs out, in the formats export.formats names; each export benchmarked like the .nemo.

rule export_model:
    input:
        model="results/{model}/model.nemo",
        # parity with the .nemo is measured on the first export.parity_clips validation clips
        parity=f"{DATA}/quran_ayah_corpus/validation.jsonl",
        settings=settings_file("export_model", export=config["export"]),
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
        " --out-dir {params.out_dir:q} --parity-manifest {input.parity:q} --threads {threads} > {log:q} 2>&1"


# The same protocol, corpus and matchers as benchmark_model (the CTC matcher on the graph's
# log-probs), on onnxruntime with the job's threads. An export holds the CTC head only: editing
# benchmark.decoders does not re-run its benchmark.
rule benchmark_export:
    input:
        model=lambda wildcards: f"results/{wildcards.model}/export/{export_file(wildcards.fmt)}",
        corpus=benchmark_corpus_files(),
        code=scoring_code_files(),
        settings=settings_file("benchmark_export", benchmark={**config["benchmark"], "decoders": ["ctc"]}),
    output:
        "results/{model}/export/benchmark.{fmt}.json",
    wildcard_constraints:
        model=MODEL_PATTERN,
        fmt="fp32|int8|int4",
    threads: 2
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    log:
        "logs/export/benchmark_{model}_{fmt}.log",
    benchmark:
        "benchmarks/export/benchmark_{model}_{fmt}.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft benchmark --settings {input.settings:q} --model {input.model:q}"
        " --name {wildcards.model} --output {output:q} > {log:q} 2>&1"
