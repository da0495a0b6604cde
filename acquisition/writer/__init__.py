"""The session writer: a process of its own fed through bounded shared-memory buffers."""

from __future__ import annotations

from acquisition.writer._client import WriterClient
from acquisition.writer._ring import VolumeRing, ring_too_big, shared_memory_free
from acquisition.writer._spec import WriterSpec

__all__ = [
    "VolumeRing",
    "WriterClient",
    "WriterSpec",
    "ring_too_big",
    "shared_memory_free",
]
