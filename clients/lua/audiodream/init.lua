--- audiodream: a Lua client for the audiodream DeepDream-on-audio service.
--
--   local ad = require "audiodream"
--   local c = assert(ad.connect("127.0.0.1:50051", {timeout = 60}))
--   -- or replicas of one service: ad.connect("10.0.0.5:50051,10.0.0.6:50051")
--   local models = assert(c:models())
--   local out = assert(c:dream{audio = samples, sample_rate = 44100, channels = 1,
--                               layers = {"conv3:1,5@0.5"}, iterations = 20})
--
-- Every method returns its result, or nil and an error table
-- {code = "NOT_FOUND", number = 5, message = "..."} (tostring gives
-- "NOT_FOUND: ..."). Mistakes in the arguments come back the same way, with
-- code INVALID_ARGUMENT, before anything is sent.

local grpc = require "audiodream.grpc"
local pb = require "audiodream.pb"
local pcm = require "audiodream.pcm"
local params = require "audiodream.params"
local status = require "audiodream.status"

local M = {VERSION = "0.1.0"}
M.status, M.pb, M.pcm = status, pb, pcm
M.parse_layer = params.parse_layer

local SERVICE = "/audiodream.v1.DreamService/"

local Client = {}
Client.__index = Client

--- Connects to a server at "host:port", or to the first that answers of
--- several replicas of one service, "host:port,host:port,...". Options: see
--- grpc.channel (timeout in seconds per call, connect_timeout, tls, ca_file,
--- metadata).
---
--- With several replicas, a call that fails UNAVAILABLE (the replica is gone
--- or shutting down) moves the client to the next replica and is made again
--- there, each replica tried once. That is safe for every call this client
--- retries: ListModels and ListLayers only read, and a Dream is seeded (seed 0
--- unless given), so any replica dreams the same sound. A stream is opened on
--- the current replica (the next ones if it cannot be); one that breaks later
--- is the caller's to reopen.
function M.connect(address, options)
  local targets = {}
  for target in tostring(address):gmatch("[^,%s]+") do targets[#targets + 1] = target end
  if #targets == 0 then
    return nil, status.error("INVALID_ARGUMENT", "no server address given")
  end
  for _, target in ipairs(targets) do
    local host, message = grpc.parse_address(target)
    if not host then return nil, status.error("INVALID_ARGUMENT", message) end
  end
  local self = setmetatable({targets = targets, current = 0, options = options or {}}, Client)
  local ok, err = self:next_replica()
  if not ok then return nil, err end
  return self
end

--- Moves to the next replica that accepts a connection (each tried once).
--- Returns true, or nil and the last error.
function Client:next_replica()
  local err
  for _ = 1, #self.targets do
    self.current = self.current % #self.targets + 1
    local channel
    channel, err = grpc.channel(self.targets[self.current], self.options)
    if channel then
      if self.channel then self.channel:close() end
      self.channel, self.address = channel, self.targets[self.current]
      return true
    end
    if err.code ~= "UNAVAILABLE" then return nil, err end
  end
  return nil, err
end

-- Runs f() (a call safe to repeat); while it fails UNAVAILABLE and replicas
-- remain untried, moves to the next replica and runs it again.
function Client:on_any_replica(f)
  local result, extra = f()
  local tries = 1
  while result == nil and type(extra) == "table" and extra.code == "UNAVAILABLE"
      and tries < #self.targets do
    local ok, err = self:next_replica()
    if not ok then return nil, err end
    result, extra = f()
    tries = tries + 1
  end
  return result, extra
end

function Client:close() self.channel:close() end

-- Runs f(...) and turns a raised argument error into nil, INVALID_ARGUMENT.
local function checked(f, ...)
  local ok, result = pcall(f, ...)
  if ok then return result end
  return nil, status.error("INVALID_ARGUMENT", tostring(result))
end

-- One unary call: encode, call, decode. Every unary call of the service is safe
-- to repeat, so one that finds its replica UNAVAILABLE moves to the next.
function Client:unary(method, request_type, request, response_type, options)
  local bytes, err = checked(pb.encode, request_type, request)
  if not bytes then return nil, err end
  return self:on_any_replica(function()
    local reply, failure = self.channel:unary(SERVICE .. method, bytes, options)
    if not reply then return nil, failure end
    local response, message = pb.decode(response_type, reply)
    if not response then return nil, status.error("INTERNAL", "bad response: " .. message) end
    return response
  end)
end

--- The server's models: an array of ModelInfo tables (name, sample_rate,
--- fixed_input_samples, description, device, num_classes, trained,
--- default_layer, domain, parameters, is_default), then the default's name.
function Client:models()
  local r, err = self:unary("ListModels", "ListModelsRequest", {}, "ListModelsResponse")
  if not r then return nil, err end
  for _, m in ipairs(r.models) do m.is_default = m.name == r.default_model end
  return r.models, r.default_model
end

--- The dreamable layers of `model` ("" or nil = the default model):
--- {model, sample_rate, default_layer, layers = {{name, module_type,
--- channels, frame_rate, stride}...}, classes = {...}}.
function Client:layers(model)
  return self:unary("ListLayers", "ListLayersRequest", {model = model or ""},
    "ListLayersResponse")
end

--- What a classifier hears: {audio = | encoded =, sample_rate, channels,
--- model, top [5], output}. Returns {model, output, activation, windows,
--- scores = {{name, index, score}, ...}} best first, or nil, err.
function Client:classify(args)
  local audio
  if args.encoded then
    audio = {encoded = args.encoded}
  else
    audio = params.audio(args.audio, args.sample_rate, args.channels)
  end
  return self:unary("Classify", "ClassifyRequest",
    {audio = audio, model = args.model or "", top = args.top or 5, output = args.output or ""},
    "ClassifyResponse")
end

-- Keys of dream{} that are not DreamParams fields.
local DREAM_KEYS = {
  audio = true, sample_rate = true, channels = true, encoded = true,
  target = true, timeout = true, progress = true,
}

local function dream_request(args)
  local audio
  if args.encoded then
    audio = {encoded = args.encoded}
  else
    audio = params.audio(args.audio, args.sample_rate, args.channels)
  end
  return {
    audio = audio,
    params = params.dream_params(args, DREAM_KEYS),
    target = args.target and params.audio_spec(args.target) or nil,
  }
end

-- A DreamResponse in the shape callers use: samples unpacked.
local function dream_result(r)
  local audio = r.audio or {}
  local result = {
    sample_rate = audio.sample_rate, channels = audio.channels, format = audio.format,
    loss = r.loss, input_features = r.input_features, output_features = r.output_features,
    output_gain = r.output_gain, model = r.model, model_sample_rate = r.model_sample_rate,
    windows = r.windows, timing = r.timing, params = r.params,
    class_changes = r.class_changes, others_before = r.others_before,
    others_after = r.others_after,
    replica = r.replica,  -- the server replica that dreamed it ("host:port")
  }
  if audio.pcm then
    result.pcm = audio.pcm
    result.audio = pcm.unpack(audio.pcm)
    result.frames = #result.audio // math.max(audio.channels, 1)
  else
    result.encoded = audio.encoded
  end
  return result
end

--- Dreams a sound. Arguments (a table):
---   audio        samples, a table of numbers (channels interleaved) or a
---                string of float32 LE bytes; or instead
---   encoded      the bytes of a sound file (WAV, FLAC, OGG)
---   sample_rate  Hz (with audio); channels [1]
---   model, layers, iterations, step_size, seed, ...  any DreamParams field
---   target       {audio = , sample_rate = , channels = } or {encoded = }
---   progress     function(update) called with DreamProgressUpdate tables
---                (stage, iteration, iterations, loss, elapsed_seconds)
---   timeout      seconds for this call (overrides the client's)
--- Returns {audio = samples, pcm = bytes, sample_rate, channels, frames,
--- loss = {...}, input_features, output_features, output_gain, model,
--- model_sample_rate, windows, timing, params, replica}; with output_format "wav"
--- etc. `encoded` replaces audio/pcm.
function Client:dream(args)
  local request, err = checked(dream_request, args)
  if not request then return nil, err end
  local options = {timeout = args.timeout}
  if not args.progress then
    local r
    r, err = self:unary("Dream", "DreamRequest", request, "DreamResponse", options)
    if not r then return nil, err end
    return dream_result(r)
  end
  return self:on_any_replica(function()
    return self:dream_progress(request, args.progress, options)
  end)
end

function Client:dream_progress(request, progress, options)
  local call, err = self.channel:call(SERVICE .. "DreamProgress", options)
  if not call then return nil, err end
  local ok
  ok, err = call:send(pb.encode("DreamRequest", request), true)
  if not ok then return nil, err end
  while true do
    local bytes
    bytes, err = call:receive()
    if not bytes then
      return nil, err or status.error("INTERNAL", "DreamProgress ended without a result")
    end
    local event, message = pb.decode("DreamEvent", bytes)
    if not event then
      call:cancel()
      return nil, status.error("INTERNAL", "bad response: " .. message)
    end
    if event.result then
      local extra
      extra, err = call:receive() -- the trailers: the call must end OK
      if extra then
        call:cancel()
        return nil, status.error("INTERNAL", "DreamProgress sent messages after its result")
      end
      if err then return nil, err end
      return dream_result(event.result)
    end
    if event.progress then progress(event.progress) end
  end
end

-- The MorphParams fields morph{} takes.
local MORPH_FIELDS = {}
for _, row in ipairs(require("audiodream.schema").MorphParams) do MORPH_FIELDS[row[2]] = true end

local function morph_request(args)
  local function sound(spec, what)
    if type(spec) ~= "table" then error(what .. " must be a table: {audio =, sample_rate =} "
      .. "or {encoded =}", 0) end
    return params.audio_spec(spec)
  end
  local request = {a = sound(args.a, "a"), b = sound(args.b, "b"), params = {}}
  for key, value in pairs(args) do
    if MORPH_FIELDS[key] then
      request.params[key] = value
    elseif key ~= "a" and key ~= "b" and key ~= "timeout" then
      error(("unknown morph parameter %q"):format(tostring(key)), 0)
    end
  end
  return request
end

--- Morphs sound A toward sound B through an autoencoder model. Arguments (a table):
---   a, b         {audio = samples, sample_rate = , channels = } or {encoded = file bytes}
---   amount       0 = A .. 1 = B [0.5]; or curve = {0, 1} (amounts over time),
---                or group_amounts = {...} (per latent channel group)
---   model, interpolation ("linear", "spherical"), phase ("blend", "griffinlim"),
---   gl_iters, detail (0..1), output_format; timeout (seconds)
--- Returns {audio = samples, pcm, sample_rate, channels, frames, amounts,
--- latent_frames, latent_frame_rate, latent_size, a_features, b_features,
--- output_features, output_gain, model, timing, params}.
function Client:morph(args)
  local request, err = checked(morph_request, args)
  if not request then return nil, err end
  local r
  r, err = self:unary("Morph", "MorphRequest", request, "MorphResponse",
    {timeout = args.timeout})
  if not r then return nil, err end
  local result = dream_result(r)
  result.loss, result.windows, result.model_sample_rate = nil, nil, nil
  result.input_features = nil
  result.a_features, result.b_features = r.a_features, r.b_features
  result.amounts, result.latent_frames = r.amounts, r.latent_frames
  result.latent_frame_rate, result.latent_size = r.latent_frame_rate, r.latent_size
  return result
end

--- Opens a StreamDream call on the current replica (or the next that takes
--- it); see audiodream.stream.
function Client:stream(config)
  return self:on_any_replica(function()
    return require("audiodream.stream").open(self, config)
  end)
end

M.Client = Client
return M
