"""The gRPC service: thin adapters from protobuf to the engine."""
