#!/usr/bin/env lua
--- Measures unary round trips from Lua: ListModels and 0-iteration Dreams.
--
-- usage: lua latency.lua [HOST:PORT] [COUNT]
-- Prints median, 90th percentile and mean in milliseconds. A 0-iteration
-- dream returns its input, so its time is transport, (de)coding and
-- validation, not gradient ascent.

local ad = require "audiodream"
local monotime = require "cqueues".monotime

local address = arg[1] or "127.0.0.1:50051"
local count = math.tointeger(tonumber(arg[2] or "200")) or 200

local client = assert(ad.connect(address, {timeout = 60}))

local function measure(name, f)
  for _ = 1, 5 do assert(f()) end -- warm up: connection, server caches
  local times = {}
  for i = 1, count do
    local t0 = monotime()
    assert(f())
    times[i] = (monotime() - t0) * 1000
  end
  table.sort(times)
  local sum = 0
  for _, t in ipairs(times) do sum = sum + t end
  print(("%-28s median %7.3f ms  p90 %7.3f ms  mean %7.3f ms  (n=%d)"):format(
    name, times[(count + 1) // 2], times[math.ceil(count * 0.9)], sum / count, count))
end

local function sound(seconds)
  local x = {}
  for i = 1, math.floor(44100 * seconds) do x[i] = 0.3 * math.sin(i * 0.05) end
  return ad.pcm.pack(x) -- packed once: the loop measures the call, not the packing
end

measure("ListModels", function() return client:models() end)
for _, seconds in ipairs({0.1, 1.0}) do
  local pcm = sound(seconds)
  measure(("Dream 0 it., %.1f s mono"):format(seconds), function()
    return client:dream{audio = pcm, sample_rate = 44100, iterations = 0}
  end)
end
client:close()
