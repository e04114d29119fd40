--- StreamDream: real-time dreaming over one bidirectional call.
--
--   local s = assert(c:stream{sample_rate = 48000, channels = 1, block_size = 2048,
--                             model = "model2", layers = {"conv3"}, iterations = 2})
--   print(s.latency_samples)            -- output lags input by this many frames
--   local seq = assert(s:send(block))   -- block_size * channels samples
--   local msg, kind = s:receive(0.1)    -- kind: "audio" | "stats" | "warning" | "ready"
--   s:control{iterations = 4, reset = true}
--   s:close()
--
-- The server answers each chunk with a chunk of the same seq and size; stats
-- and warnings arrive in between. Only fatal errors end the call.
--
-- Each stream has a connection of its own, so that a unary call on the
-- client (or its cancellation, which retires a connection) never delays or
-- breaks the real-time one.

local grpc_method = "/audiodream.v1.DreamService/StreamDream"

local grpc = require "audiodream.grpc"
local pb = require "audiodream.pb"
local pcm = require "audiodream.pcm"
local params = require "audiodream.params"
local status = require "audiodream.status"

local M = {}

local Stream = {}
Stream.__index = Stream

-- StreamConfig fields given as plain keys; every other key but the options
-- below must be a DreamParams field.
local CONFIG_KEYS = {sample_rate = true, channels = true, block_size = true, window = true,
  mode = true, delay = true, offline = true}
local OPTION_KEYS = {target = true, timeout = true, ready_timeout = true}

local function stream_config(config)
  local others = {}
  for k in pairs(CONFIG_KEYS) do others[k] = true end
  for k in pairs(OPTION_KEYS) do others[k] = true end
  local message = {params = params.dream_params(config, others)}
  for k in pairs(CONFIG_KEYS) do message[k] = config[k] end
  if config.target then message.target = params.audio_spec(config.target) end
  return message
end

local function control_message(t)
  local others = {reset = true, mode = true, target = true}
  local message = {params = params.dream_params(t, others), reset = t.reset, mode = t.mode}
  if t.target then message.target = params.audio_spec(t.target) end
  return message
end

local function encode_request(kind, message)
  local ok, bytes = pcall(pb.encode, "StreamRequest", {[kind] = message})
  if not ok then return nil, status.error("INVALID_ARGUMENT", tostring(bytes)) end
  return bytes
end

--- Opens the call and sends the StreamConfig. `config`: sample_rate (Hz),
--- channels, block_size (frames), window (frames), delay (frames), mode
--- ("process" | "generate"), offline (never degrade), target, any
--- DreamParams field (iterations = per block), and
--- timeout (seconds for the whole call; default none) and ready_timeout
--- (seconds to wait for StreamReady; default the client's timeout or 30).
--- Returns the stream once the server's StreamReady arrived (s.ready holds
--- it, s.latency_samples its latency), or nil, err.
function M.open(client, config)
  config = config or {}
  local ok, message = pcall(stream_config, config)
  if not ok then return nil, status.error("INVALID_ARGUMENT", tostring(message)) end
  local bytes, err = encode_request("config", message)
  if not bytes then return nil, err end
  local channel, call
  channel, err = grpc.channel(client.address, client.channel.options)
  if not channel then return nil, err end
  call, err = channel:call(grpc_method, {timeout = config.timeout or false})
  if not call then channel:close(); return nil, err end
  local self = setmetatable({channel = channel, call = call, next_seq = 0}, Stream)
  ok, err = call:send(bytes)
  if not ok then channel:close(); return nil, err end

  local wait = config.ready_timeout or client.channel.timeout or 30
  local first, kind = self:receive(wait)
  if first ~= nil and kind ~= "ready" then
    self:cancel()
    if first == false then
      return nil, status.error("DEADLINE_EXCEEDED", ("no StreamReady within %g s"):format(wait))
    end
    return nil, status.error("INTERNAL", "StreamDream began with " .. kind .. ", not ready")
  end
  if not first then
    channel:close()
    return nil, kind or status.error("INTERNAL", "StreamDream ended at once")
  end
  self.ready = first
  self.latency_samples = first.latency_samples
  return self
end

--- Sends one block: samples (a table, interleaved) or float32 LE bytes.
--- `seq` defaults to one more than the last. Returns the seq, or nil, err.
function Stream:send(block, seq)
  seq = seq or self.next_seq
  local bytes = type(block) == "table" and pcm.pack(block) or block
  local request, err = encode_request("audio", {seq = seq, pcm = bytes})
  if not request then return nil, err end
  local ok
  ok, err = self.call:send(request)
  if not ok then return nil, err end
  self.next_seq = seq + 1
  return seq
end

--- Changes parameters at the next block boundary: any DreamParams field,
--- plus reset (boolean), mode, target. Returns true, or nil, err.
function Stream:control(t)
  local ok, message = pcall(control_message, t or {})
  if not ok then return nil, status.error("INVALID_ARGUMENT", tostring(message)) end
  local request, err = encode_request("control", message)
  if not request then return nil, err end
  return self.call:send(request)
end

--- The next server message and its kind ("ready", "audio", "stats",
--- "warning"); audio messages carry seq, pcm (bytes) and samples (a table).
--- `wait`: seconds to wait at most; nil = until the call ends.
--- Returns false when `wait` passed with nothing; nil when the call ended
--- OK; nil, err when it failed.
function Stream:receive(wait)
  local bytes, err = self.call:receive(wait)
  if bytes == nil then self.channel:close() end -- the call is over
  if not bytes then return bytes, err end
  local response, message = pb.decode("StreamResponse", bytes)
  if not response then
    self.call:cancel()
    return nil, status.error("INTERNAL", "bad response: " .. message)
  end
  local kind, value = pb.which("StreamResponse", response, "msg")
  if not kind then return self:receive(wait) end -- a kind newer than this client
  if kind == "audio" then value.samples = pcm.unpack(value.pcm) end
  return value, kind
end

--- Half-closes: no more blocks or controls; replies still arrive.
function Stream:close_send() return self.call:close_send() end

--- Ends the stream: half-closes, then drops the replies still in flight
--- until the server ends the call. Returns true, or nil, err.
function Stream:close(wait)
  local ok, err = self:close_send()
  if not ok then return nil, err end
  while true do
    local msg
    msg, err = self:receive(wait)
    if msg == false then
      self:cancel()
      return nil, status.error("DEADLINE_EXCEEDED", "the server did not end the stream in time")
    end
    if msg == nil then
      if err then return nil, err end
      return true
    end
  end
end

--- Abandons the stream at once (the server sees CANCELLED).
function Stream:cancel()
  self.call:cancel()
  self.channel:close()
end

return M
