"""Let `python bench/<script>.py` run under the project's environment whatever `python` is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_project_venv() -> None:
    """Re-run this script with `.venv/bin/python` (made by `make install`) when started with another one."""
    venv = ROOT / ".venv"
    python = venv / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), *sys.argv])
