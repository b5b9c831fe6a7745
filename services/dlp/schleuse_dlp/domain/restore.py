"""Restore: put the originals back for the user, also in streamed answers split at any character."""

from schleuse_common.contracts.dlp import PLACEHOLDER, PlaceholderStreamBuffer
from schleuse_dlp.domain.redaction import ThreadMapping

__all__ = ["PlaceholderStreamBuffer", "StreamRestorer", "restore"]


def restore(text: str, mapping: ThreadMapping) -> str:
    """Replace every known placeholder of the thread by its original; unknown ones stay as they are."""
    if "[" not in text:
        return text
    restored: str = PLACEHOLDER.sub(lambda m: mapping.originals.get(m.group(0), m.group(0)), text)
    return restored


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
