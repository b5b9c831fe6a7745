"""Restore: put the originals back for the user, also in streamed answers split at any character."""

from schleuse_dlp.domain.redaction import PLACEHOLDER, ThreadMapping

# "[" + type (<= 24 chars) + "_" + up to 6 digits + "]"
MAX_PLACEHOLDER_LEN = 33


def restore(text: str, mapping: ThreadMapping) -> str:
    """Replace every known placeholder of the thread by its original; unknown ones stay as they are."""
    if "[" not in text:
        return text
    restored: str = PLACEHOLDER.sub(lambda m: mapping.originals.get(m.group(0), m.group(0)), text)
    return restored


def _could_be_placeholder_prefix(tail: str) -> bool:
    """True if `tail` (starting with "[") may still grow into a placeholder."""
    if len(tail) > MAX_PLACEHOLDER_LEN:
        return False
    body = tail[1:]
    if not body:
        return True
    if not body[0].isupper():
        return False
    return all(c.isupper() or c.isdigit() or c == "_" for c in body)


class PlaceholderStreamBuffer:
    """Cuts a stream of chunks into pieces that never end inside a placeholder.

    Pure and transport-agnostic: `push` returns the text that is safe to restore now (locally or by a
    `dlp.restore` request), holding back a trailing "[PERS" until the next chunk shows how it ends.
    """

    def __init__(self) -> None:
        self._pending = ""

    def push(self, chunk: str) -> str:
        """Add a chunk; return the complete part (possibly empty)."""
        text = self._pending + chunk
        cut = text.rfind("[")
        if cut != -1 and _could_be_placeholder_prefix(text[cut:]):
            self._pending = text[cut:]
            return text[:cut]
        self._pending = ""
        return text

    def flush(self) -> str:
        """End of stream: return whatever is held back."""
        rest, self._pending = self._pending, ""
        return rest


class StreamRestorer:
    """Restores a streamed answer chunk by chunk with an in-memory mapping."""

    def __init__(self, mapping: ThreadMapping) -> None:
        self._mapping = mapping
        self._buffer = PlaceholderStreamBuffer()

    def feed(self, chunk: str) -> str:
        """Restored text that can be shown now."""
        return restore(self._buffer.push(chunk), self._mapping)

    def finish(self) -> str:
        """Restored remainder at the end of the stream."""
        return restore(self._buffer.flush(), self._mapping)
