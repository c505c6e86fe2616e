"""Shared test set-up: hypothesis keeps its files out of the working tree."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "tpeforge-hypothesis")
)
