-- LuaRocks package of the audiodream Lua client. Install from this folder
-- with `luarocks make` (the source URL below is only used by `luarocks install`
-- from a published rock).
rockspec_format = "3.0"
package = "audiodream"
version = "0.1.0-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Client for audiodream, DeepDream-style activation maximisation on audio",
  detailed = [[
A thin gRPC client over HTTP/2 (lua-http) for the audiodream service:
ListModels, ListLayers, Dream (with progress) and real-time StreamDream, a
hand-written protobuf codec for the service's messages, and a pure-Lua WAV
reader and writer. Includes the `audiodream-dream` command line example.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.3, < 5.5",
  "http >= 0.4",
}
build = {
  type = "builtin",
  modules = {
    ["audiodream"] = "audiodream/init.lua",
    ["audiodream.grpc"] = "audiodream/grpc.lua",
    ["audiodream.http_fixes"] = "audiodream/http_fixes.lua",
    ["audiodream.params"] = "audiodream/params.lua",
    ["audiodream.pb"] = "audiodream/pb.lua",
    ["audiodream.pcm"] = "audiodream/pcm.lua",
    ["audiodream.schema"] = "audiodream/schema.lua",
    ["audiodream.status"] = "audiodream/status.lua",
    ["audiodream.stream"] = "audiodream/stream.lua",
    ["audiodream.wav"] = "audiodream/wav.lua",
  },
  install = {
    bin = {
      ["audiodream-dream"] = "examples/dream.lua",
      ["audiodream-latency"] = "examples/latency.lua",
    },
  },
}
