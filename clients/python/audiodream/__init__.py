"""audiodream: dream sound with neural networks, through a gRPC service.

The client side: `Client` talks to a server; `audiodream` (the CLI) wraps it.
The generated protobuf/gRPC stubs live in their own package, `audiodream_proto.v1`.
"""

from audiodream_proto import __version__

from .client import Client, DreamOutput, ServerError
from .streaming import DreamStream
from .layers import parse_layer

__all__ = ["__version__", "Client", "DreamOutput", "DreamStream", "ServerError", "parse_layer"]
