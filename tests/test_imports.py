"""Importing the package stays light and the ``raise_`` alias exposes the same API."""

from __future__ import annotations

import subprocess
import sys


def test_import_skips_heavy_modules() -> None:
    code = (
        "import sys, raise_jupyter; "
        "print(','.join(m for m in ('torch', 'transformers', 'altair', 'ipywidgets', 'IPython') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == ""


def test_inference_module_skips_torch() -> None:
    code = (
        "import sys, raise_jupyter.inference; "
        "print(','.join(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == ""


def test_alias_exports_public_api() -> None:
    import raise_
    import raise_jupyter

    assert raise_.FeatureStore is raise_jupyter.FeatureStore
    assert set(raise_.__all__) == set(raise_jupyter.__all__)
