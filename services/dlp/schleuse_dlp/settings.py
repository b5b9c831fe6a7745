"""DLP settings (prefix `SCHLEUSE_DLP_`, section `dlp:` in schleuse.yaml)."""

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings

DEFAULT_NER_MODEL = Path(__file__).resolve().parent / "models" / "ner_de.crfsuite"


class DlpSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_DLP_", extra="ignore")
    yaml_section = "dlp"

    # a site with a larger model points this elsewhere; a missing file degrades to rules + gazetteers
    ner_model: Path = DEFAULT_NER_MODEL
    use_name_rules: bool = True
    policy_cache_seconds: float = 10.0
    mapping_cache_size: int = 5_000
    mapping_cache_seconds: float = 300.0
    max_text_chars: int = 200_000
    # texts longer than this are analysed in a worker thread so the event loop keeps answering
    inline_max_chars: int = 4_000
