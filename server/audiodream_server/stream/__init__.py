"""Real-time dreaming: stream sessions, their settings, and batched scheduling (SPEC §4.2)."""

from .hub import StreamHub
from .session import Job, StreamSession
from .settings import STREAM_DEFAULTS, StreamSettings

__all__ = ["StreamHub", "Job", "StreamSession", "StreamSettings", "STREAM_DEFAULTS"]
