"""audiodream's contract: the protobuf/gRPC stubs generated from
proto/audiodream/v1/audiodream.proto (`audiodream_proto.v1`).

The client (`audiodream`) and the server (`audiodream_server`) both import this
package and nothing of each other.
"""

from pathlib import Path

# The one place the version is written: both distributions' pyproject.toml
# read the same file, and so do `audiodream --version` and the server.
__version__ = (Path(__file__).with_name("VERSION")).read_text().strip()
