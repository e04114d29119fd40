"""audiodream's contract: the protobuf/gRPC stubs generated from
proto/audiodream/v1/audiodream.proto (`audiodream_proto.v1`).

The client (`audiodream`) and the server (`audiodream_server`) both import this
package and nothing of each other.
"""
