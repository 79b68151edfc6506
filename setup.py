"""tfbin: binary neural networks in Keras (larq) with verified LCE/TFLite export."""
import re

from setuptools import setup

# One version: tfbin/__init__.py's, read as text (importing tfbin would need TensorFlow).
VERSION = re.search(r'^__version__ = "([^"]+)"', open("tfbin/__init__.py", encoding="utf-8").read(), re.M).group(1)

# models/, export/ and tuning/ sit at the top level of the repository but are installed as
# subpackages of tfbin, so nothing generic ("models", "export") lands in site-packages.
setup(
    name="tfbin",
    version=VERSION,
    description="Training binary neural networks in Keras/larq and shipping them through LCE",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=["tfbin", "tfbin.jobs", "tfbin.keras3", "tfbin.models", "tfbin.export", "tfbin.tuning"],
    package_dir={
        "tfbin": "tfbin",
        "tfbin.models": "models",
        "tfbin.export": "export",
        "tfbin.tuning": "tuning",
    },
    # The Keras 3 path (`tfbin.keras3`) needs only TensorFlow and LCE. Tested: TF 2.19.1 + Keras 3.15
    # (make test) and TF 2.20.0 + Keras 3.15.1 with no Keras 2 installed (make test-keras3).
    # numpy<2: LCE 0.16's interpreter reads no input under NumPy 2 ("Expected N bytes but got 0").
    install_requires=[
        "tensorflow>=2.16,<2.21",
        "larq-compute-engine==0.16.*",
        "numpy<2",
    ],
    extras_require={
        # The Keras 2 path (`import tfbin`): larq and larq-zoo (no longer maintained). larq-zoo 2.4
        # pins protobuf<3.21, which rules out TF 2.20. Tested: TF 2.19.1 + tf-keras 2.19.0 (make test),
        # TF 2.16 + tf-keras 2.16 (make test-compat).
        "larq": [
            "tensorflow>=2.16,<2.20",
            "tf-keras>=2.16,<2.20",
            "larq==0.14.*",
            "larq-zoo==2.4.*",
            "keras-tuner==1.4.*",
            "tensorflow-datasets>=4.8,<4.9",
            "importlib_resources",
            "matplotlib",
            "scikit-learn",
            "scipy",
        ],
        "test": ["pytest>=7", "pytest-xdist>=3.5,<4", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["tfbin=tfbin.cli:main"]},
)
