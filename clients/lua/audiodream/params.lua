--- Lua argument tables -> the request messages (DreamParams, Audio, ...).
--
-- A caller writes DreamParams fields as plain keys ({iterations = 20,
-- step_size = 0.02, ...}); layers are {name = , channels = , weight = }
-- tables, {name, channels, weight} arrays or "NAME[:CH,CH...][@WEIGHT]"
-- strings, the syntax of the command line.

local pcm = require "audiodream.pcm"
local schema = require "audiodream.schema"

local M = {}

-- DreamParams fields a caller may set directly, in proto order.
M.param_fields = {}
for _, row in ipairs(schema.DreamParams) do M.param_fields[row[2]] = true end

--- Parses "conv3", "conv3:1,5", "conv3@0.5", "conv3:1,5@-1".
-- Returns {name = , channels = {...}, weight = number or nil}, or nil, message.
function M.parse_layer(text)
  local body, weight_text = text:match("^(.-)@(.*)$")
  body = body or text
  local name, channel_text = body:match("^(.-):(.*)$")
  name = (name or body):match("^%s*(.-)%s*$")
  if name == "" then
    return nil, ("layer %q: missing name (syntax NAME[:CH,CH,...][@WEIGHT])"):format(text)
  end
  local channels = {}
  for item in (channel_text or ""):gmatch("[^,]*[^,%s][^,]*") do
    local c = math.tointeger(tonumber(item))
    if not c then
      return nil, ("layer %q: channels must be integers, e.g. conv3:1,5"):format(text)
    end
    channels[#channels + 1] = c
  end
  local weight
  if weight_text then
    weight = tonumber(weight_text)
    if not weight then
      return nil, ("layer %q: weight must be a number, e.g. conv3@0.5"):format(text)
    end
  end
  return {name = name, channels = channels, weight = weight}
end

--- One LayerSelection from any of the accepted forms; raises on bad input.
function M.layer(spec)
  if type(spec) == "string" then return assert(M.parse_layer(spec)) end
  if type(spec) ~= "table" then
    error("a layer is a string or a table, got " .. tostring(spec), 0)
  end
  return {
    name = spec.name or spec[1],
    channels = spec.channels or spec[2] or {},
    weight = spec.weight or spec[3],
  }
end

--- DreamParams from the DreamParams keys of `args`; keys in `others` are
-- left for the caller, any other key is an error naming the known ones.
function M.dream_params(args, others)
  local params = {}
  for key, value in pairs(args) do
    if M.param_fields[key] then
      params[key] = value
    elseif not (others and others[key]) then
      local known = {}
      for _, row in ipairs(schema.DreamParams) do known[#known + 1] = row[2] end
      error(("unknown dream parameter %q; known: %s")
        :format(tostring(key), table.concat(known, ", ")), 0)
    end
  end
  if params.layers then
    local layers = {}
    for i, spec in ipairs(params.layers) do layers[i] = M.layer(spec) end
    params.layers = layers
  end
  return params
end

--- An Audio message from samples (a table of numbers, interleaved, or a
-- string of float32 LE bytes) with their rate (Hz) and channel count.
function M.audio(samples, sample_rate, channels)
  if type(samples) == "table" then
    samples = pcm.pack(samples)
  elseif type(samples) ~= "string" then
    error("audio must be a table of samples or a string of float32 bytes, got "
      .. tostring(samples), 0)
  end
  if not sample_rate then error("audio needs its sample_rate (Hz)", 0) end
  return {pcm = samples, sample_rate = sample_rate, channels = channels or 1}
end

--- An Audio message from a target/option value: {encoded = file bytes} or
-- {audio = samples, sample_rate = , channels = }.
function M.audio_spec(spec)
  if spec.encoded then return {encoded = spec.encoded} end
  return M.audio(spec.audio or spec.samples, spec.sample_rate, spec.channels)
end

return M
