"""Training data: which feedback counts as positive, and the two export formats."""

from __future__ import annotations

import json


def is_positive(thumbs: str | None, stars: int | None) -> bool:
    """Thumbs up, or four stars and more, without a contradicting thumbs down."""
    if thumbs == "down":
        return False
    return thumbs == "up" or (stars is not None and stars >= 4)


def openai_line(system_prompt: str | None, prompt: str, answer: str) -> str:
    """One line of OpenAI's fine-tuning chat format."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages}, ensure_ascii=False)


def qa_line(item_id: str, prompt: str, answer: str) -> str:
    """One line of the plain question/answer format for RAG."""
    return json.dumps({"id": item_id, "question": prompt, "answer": answer}, ensure_ascii=False)
