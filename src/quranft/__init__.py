"""Fine-tuning NVIDIA's Arabic FastConformer on Quran recitation, stage by stage."""

__version__ = "0.1.0"
