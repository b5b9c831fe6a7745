from pathlib import Path

import pytest

from schleuse_dlp.domain.analyzer import Analyzer, build_default_analyzer
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.settings import DEFAULT_NER_MODEL


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return Gazetteer.load()


@pytest.fixture(scope="session")
def analyzer(gazetteer: Gazetteer) -> Analyzer:
    """The default pipeline; with the shipped NER model when it has been built (make models)."""
    model: Path | None = DEFAULT_NER_MODEL if DEFAULT_NER_MODEL.exists() else None
    return build_default_analyzer(model, gazetteer)
