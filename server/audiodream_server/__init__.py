"""audiodream server: the dream engine, the model registry and the gRPC service.

Dependencies run one way: service -> engine -> models. The engine knows nothing
of gRPC; the service only converts messages and maps errors.
"""

from audiodream_proto import __version__

__all__ = ["__version__"]
