#!/usr/bin/env lua
--- Dreams a WAV file through an audiodream server.
--
-- usage: lua dream.lua IN.wav OUT.wav [--server HOST:PORT] [--model M]
--          [--layer NAME[:CH,..][@W]]... [--iterations N] [--step-size X]
--          [--seed N] [--timeout S] [--format float|pcm16|pcm24]
--
-- OUT.wav has the rate, channel count and length of IN.wav, in IN.wav's
-- sample format unless --format says otherwise.

local ad = require "audiodream"
local wav = require "audiodream.wav"

local USAGE = [==[
usage: dream.lua IN.wav OUT.wav [--server HOST:PORT] [--model M]
                 [--layer NAME[:CH,..][@W]]... [--iterations N]
                 [--step-size X] [--seed N] [--timeout S] [--format F]]==]

local function fail(message)
  io.stderr:write("dream.lua: ", message, "\n")
  os.exit(2)
end

-- Option name -> {key, parse}; every value option takes one argument.
local function number(text, flag)
  return tonumber(text) or fail(flag .. " needs a number, got " .. tostring(text))
end
local function integer(text, flag)
  return math.tointeger(tonumber(text)) or fail(flag .. " needs an integer, got " .. tostring(text))
end
local OPTIONS = {
  ["--server"] = {"server", tostring},
  ["--model"] = {"model", tostring},
  ["--iterations"] = {"iterations", integer},
  ["--step-size"] = {"step_size", number},
  ["--seed"] = {"seed", integer},
  ["--timeout"] = {"timeout", number},
  ["--format"] = {"format", tostring},
}

local function parse(argv)
  local args = {server = "127.0.0.1:50051", layers = {}, timeout = 600}
  local positional = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    flag = flag or a
    local value = inline or argv[i + 1]
    local step = inline and 1 or 2
    if flag == "-h" or flag == "--help" then
      io.write(USAGE, "\n")
      os.exit(0)
    elseif flag == "--layer" then
      if not value then fail("--layer needs NAME[:CH,..][@W]") end
      local layer, err = ad.parse_layer(value)
      if not layer then fail(err) end
      args.layers[#args.layers + 1] = layer
      i = i + step
    elseif OPTIONS[flag] then
      if not value then fail(flag .. " needs a value") end
      args[OPTIONS[flag][1]] = OPTIONS[flag][2](value, flag)
      i = i + step
    elseif a:sub(1, 2) == "--" then
      fail("unknown option " .. a .. "\n" .. USAGE)
    else
      positional[#positional + 1] = a
      i = i + 1
    end
  end
  if #positional ~= 2 then fail("need IN.wav and OUT.wav\n" .. USAGE) end
  args.input, args.output = positional[1], positional[2]
  return args
end

local args = parse(arg)
if args.format and not wav.formats[args.format] then
  fail("unknown --format " .. args.format .. " (float, double, pcm16, pcm24, pcm32, pcm8)")
end
local sound, err = wav.read(args.input)
if not sound then fail(err) end

local client
client, err = ad.connect(args.server, {timeout = args.timeout})
if not client then fail(tostring(err)) end

local result
result, err = client:dream{
  audio = sound.samples, sample_rate = sound.sample_rate, channels = sound.channels,
  model = args.model, layers = args.layers, iterations = args.iterations,
  step_size = args.step_size, seed = args.seed,
}
client:close()
if not result then fail(tostring(err)) end

local ok
ok, err = wav.write(args.output, result.audio, result.sample_rate, result.channels,
  args.format or (sound.format == "double" and "float" or sound.format))
if not ok then fail(err) end

local loss = result.loss
print(("%s: %d frames, %d Hz, %d ch; model %s, %d iterations, loss %s -> %s, gain %.3f, %.2f s")
  :format(args.output, result.frames, result.sample_rate, result.channels, result.model,
    #loss, loss[1] and ("%.4g"):format(loss[1]) or "-",
    loss[#loss] and ("%.4g"):format(loss[#loss]) or "-",
    result.output_gain, result.timing.total_seconds))
