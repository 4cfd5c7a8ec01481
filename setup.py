"""Installation script for sklearn-crtcl."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "sklearn_crtcl" / "__init__.py").read_text()).group(1)

setup(
    name="sklearn-crtcl",
    version=VERSION,
    description=("Critic Loss for Image Classification (CrtCl) and deep active learning "
                 "for scikit-learn, skorch and modAL"),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    packages=find_packages(include=["sklearn_crtcl", "sklearn_crtcl.*"]),
    python_requires=">=3.9",
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "scikit-learn>=1.4",
        "torch>=2.0",
        "skorch>=1.1",
        "modAL-python>=0.4.1",
        # the runner's store and its checkpoints (which cannot run code)
        "SQLAlchemy>=2.1",
        "safetensors>=0.4",
    ],
    extras_require={
        "plot": ["matplotlib>=3.5"],
        "vision": ["torchvision"],
        "images": ["pillow>=9"],
        "progress": ["tqdm"],
        "skactiveml": ["scikit-activeml>=1.0,<1.1"],
        # a PostgreSQL store for workers on several machines (SQLAlchemy's postgresql://)
        "postgresql": ["psycopg[binary]>=3.1"],
        # the test suite builds the docs, example gallery included
        "test": ["pytest>=7", "matplotlib>=3.5", "sphinx>=7", "numpydoc>=1.6",
                 "sphinx-gallery>=0.17", "myst-parser>=3", "torchmetrics>=1.0",
                 "scikit-activeml>=1.0,<1.1", "psycopg[binary]>=3.1"],
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-gallery>=0.17", "myst-parser>=3",
                 "matplotlib>=3.5", "scikit-activeml>=1.0,<1.1"],
    },
    entry_points={
        "console_scripts": [
            "sklearn-crtcl-experiment = sklearn_crtcl.experiments.cli:main",
        ],
    },
    classifiers=[
        "License :: OSI Approved :: BSD License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
