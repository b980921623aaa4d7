"""wesv: self-supervised speaker verification toolkit."""
from setuptools import find_packages, setup

setup(
    name="wesv",
    version="0.1.0",
    description="Self-supervised speaker verification: DINO, MoCo, pseudo-labels, C-DINO, DLG-LC, WavLM",
    packages=find_packages(include=["wesv", "wesv.*"]),
    # The recipes' shell tools (python -m wesv.bin.tools_dir prints where they are installed).
    package_data={"wesv": ["recipe_tools/*.sh", "recipe_tools/*.py"]},
    python_requires=">=3.10",
    install_requires=[
        # A range, not a pin: the README installs torch==2.13.0 first (a CPU build on the dev machines).
        "torch>=2.1,<2.15",
        "numpy>=1.24",
        "scipy>=1.10",
        "soundfile>=0.12",
        "kaldiio>=2.18",
        "scikit-learn>=1.3",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
        "transformers>=4.40",
        "faiss-cpu>=1.7.4",
        "pyroomacoustics>=0.7",
    ],
    extras_require={
        "dev": ["pytest>=7", "kaldi-native-fbank>=1.18"],
        # python -m wesv.bin.export --format onnx (onnxscript: torch's dynamo ONNX exporter) and ONNX models in verify
        "export": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.17"],
    },
    entry_points={
        "console_scripts": [
            "wesv-train=wesv.bin.train:main",
            "wesv-extract=wesv.bin.extract:main",
            "wesv-score=wesv.bin.score:main",
            "wesv-compute-metrics=wesv.bin.compute_metrics:main",
            "wesv-validate-data-dir=wesv.bin.validate_data_dir:main",
            "wesv-make-corpus=wesv.bin.make_corpus:main",
            "wesv-cluster=wesv.bin.cluster:main",
            "wesv-tools-dir=wesv.bin.tools_dir:main",
            "wesv-verify=wesv.bin.verify:main",
            "wesv-export=wesv.bin.export:main",
            "wesv-average-model=wesv.bin.average_model:main",
            "wesv-pretrain-ssl=wesv.bin.pretrain_ssl:main",
        ],
    },
)
