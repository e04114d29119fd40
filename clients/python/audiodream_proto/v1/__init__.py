"""Generated from proto/audiodream/v1/audiodream.proto; do not edit."""
