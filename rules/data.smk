# Data stage: raw Hugging Face audio datasets to 16 kHz mono audio and NeMo JSONL manifests.


# The leakage guard's index: every benchmark clip's audio fingerprint (quranft.data.benchmark_index),
# the long-form sessions' and the ASR test set's clips too, and the benchmark's speakers; the data
# stage drops the rows whose audio is, contains or lies inside one of those clips, and the rows of
# those speakers.
rule index_benchmark:
    input:
        audio=benchmark_audio(),
        asr_set=[f"{ASR_SET}/manifest.jsonl"] if config["asr_benchmark"] else [],
        settings=settings_file("index_benchmark", corpus=config["benchmark"]["corpus"]),
    output:
        f"{DATA}/benchmark_fingerprints.npz",
    params:
        corpus=lambda wildcards: config["benchmark"]["corpus"],
        asr_set=lambda wildcards, input: f"--asr-set {os.path.dirname(input.asr_set[0])}" if input.asr_set else "",
    log:
        "logs/data/index_benchmark.log",
    benchmark:
        "benchmarks/data/index_benchmark.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft index-benchmark --corpus {params.corpus:q} {params.asr_set} --output {output:q}"
        " > {log:q} 2>&1"


# One job per source writes all of its splits: a row repeated across splits is kept only once.
rule prepare_retasy:
    input:
        data=source_files("retasy"),
        fingerprints=rules.index_benchmark.output[0],
        settings=settings_file("prepare_retasy", data=data_settings("retasy"), sources={"retasy": config["sources"]["retasy"]})
        if "retasy" in config["sources"]
        else [],
    output:
        train=f"{DATA}/retasy/train.jsonl",
        report=f"{DATA}/retasy/report.json",
    params:
        source="retasy",
        out_dir=lambda wildcards, output: os.path.dirname(output.report),
    threads: 4
    priority: TRAINING_PRIORITY
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        "logs/data/prepare_retasy.log",
    benchmark:
        "benchmarks/data/prepare_retasy.tsv"
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft prepare-source --settings {input.settings:q} --source {params.source}"
        " --out-dir {params.out_dir:q} --benchmark-index {input.fingerprints:q} --workers {threads}"
        " > {log:q} 2>&1"


use rule prepare_retasy as prepare_quran_ayah_corpus with:
    input:
        data=source_files("quran_ayah_corpus"),
        fingerprints=rules.index_benchmark.output[0],
        settings=settings_file(
            "prepare_quran_ayah_corpus",
            data=data_settings("quran_ayah_corpus"),
            sources={"quran_ayah_corpus": config["sources"]["quran_ayah_corpus"]},
        ),
    output:
        train=f"{DATA}/quran_ayah_corpus/train.jsonl",
        validation=f"{DATA}/quran_ayah_corpus/validation.jsonl",
        report=f"{DATA}/quran_ayah_corpus/report.json",
    params:
        source="quran_ayah_corpus",
        out_dir=lambda wildcards, output: os.path.dirname(output.report),
    log:
        "logs/data/prepare_quran_ayah_corpus.log",
    benchmark:
        "benchmarks/data/prepare_quran_ayah_corpus.tsv"


# What the data stage prepared, in one report: each source's report, and the composition of the
# blend of everything prepared (each trial blends its own caps from the per-source manifests).
rule data_report:
    input:
        reports=expand(f"{DATA}/{{source}}/report.json", source=sources_used()),
        manifests=source_manifests(),
        settings=settings_file("data_report", data=data_settings()),
    output:
        f"{DATA}/report.json",
    params:
        sources=lambda wildcards, input: " ".join(
            f"--{Path(report).parent.name.replace('_', '-')} {Path(report).parent}"
            for report in input.reports
        ),
    log:
        "logs/data/data_report.log",
    benchmark:
        "benchmarks/data/data_report.tsv"
    localrule: True
    conda:
        "../envs/quranft.yaml"
    shell:
        "python -m quranft data-report --settings {input.settings:q} {params.sources}"
        " --output {output:q} > {log:q} 2>&1"
