"""Cheap per-message language guess (German vs English) from function-word counts."""

import re

_WORD = re.compile(r"[a-zäöüß]+")
_DE_WORDS = """
    der die das und ist nicht ich sie es ein eine mit von zu den dem auf für sich auch wir bitte ihr
    mein meine haben wird werden kann oder aber wie noch nach bei im wenn dass über hallo danke
"""
_DE = frozenset(_DE_WORDS.split())
_EN_WORDS = """
    the and is not you it of to in that for with on are this be have will can or but as at please my
    your we our from hello thanks would could should there which
"""
_EN = frozenset(_EN_WORDS.split())


def detect_language(text: str, default: str = "de") -> str:
    """Return "de" or "en"; German wins ties because this is a German-first product."""
    de = en = 0
    for word in _WORD.findall(text[:2000].lower()):
        if word in _DE:
            de += 1
        elif word in _EN:
            en += 1
    if en > de:
        return "en"
    if de > en:
        return "de"
    return default
