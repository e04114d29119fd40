--- WAV files in pure Lua: RIFF/WAVE with integer PCM (8, 16, 24, 32 bit) or
-- IEEE float (32, 64 bit) samples, WAVE_FORMAT_EXTENSIBLE included.
--
--   local wav = require "audiodream.wav"
--   local sound = assert(wav.read("in.wav"))   -- .samples, .sample_rate, .channels
--   assert(wav.write("out.wav", sound.samples, sound.sample_rate, sound.channels, "pcm16"))
--
-- Samples are Lua numbers, channels interleaved, full scale = 1.0. Integer
-- PCM scales by 2^(bits-1) both ways, so 16-bit files round-trip exactly;
-- writing clamps to the integer range (a float file keeps values above 1).

local spack, sunpack, rep = string.pack, string.unpack, string.rep
local tunpack, concat = table.unpack, table.concat
local floor = math.floor

local M = {}

local PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
local SLICE = 200

-- Sample codings: string.pack code, bytes per sample, scale to +-1.0.
local CODINGS = {
  [PCM] = {
    [8] = {code = "B", size = 1, scale = 128, offset = 128},  -- 8-bit WAV is unsigned
    [16] = {code = "<i2", size = 2, scale = 32768},
    [24] = {code = "<i3", size = 3, scale = 8388608},
    [32] = {code = "<i4", size = 4, scale = 2147483648},
  },
  [FLOAT] = {
    [32] = {code = "<f", size = 4, scale = 1},
    [64] = {code = "<d", size = 8, scale = 1},
  },
}

--- Formats wav.encode can write.
M.formats = {
  float = {tag = FLOAT, bits = 32}, double = {tag = FLOAT, bits = 64},
  pcm16 = {tag = PCM, bits = 16}, pcm24 = {tag = PCM, bits = 24},
  pcm32 = {tag = PCM, bits = 32}, pcm8 = {tag = PCM, bits = 8},
}

local function format_name(tag, bits)
  for name, f in pairs(M.formats) do
    if f.tag == tag and f.bits == bits then return name end
  end
end

-- Reads `count` samples of `coding` from s at pos into a new array.
local function decode_samples(s, pos, count, coding)
  local out, k = {}, 0
  local fmt = coding.code:gsub("^<", "")
  local slice_format = "<" .. rep(fmt, SLICE)
  local scale, offset = coding.scale, coding.offset or 0
  while count > 0 do
    local m = count < SLICE and count or SLICE
    local values = {sunpack(m == SLICE and slice_format or "<" .. rep(fmt, m), s, pos)}
    for i = 1, m do out[k + i] = (values[i] - offset) / scale end
    k, pos, count = k + m, pos + m * coding.size, count - m
  end
  return out
end

local function encode_samples(samples, coding, is_float)
  local n = #samples
  local fmt = coding.code:gsub("^<", "")
  local parts = {}
  local scale, offset = coding.scale, coding.offset or 0
  local lo, hi = -scale, scale - 1
  local values = {}
  for first = 1, n, SLICE do
    local last = math.min(first + SLICE - 1, n)
    for i = first, last do
      local x = samples[i]
      if is_float then
        values[i - first + 1] = x
      else
        local v = floor(x * scale + 0.5)
        if v ~= v then v = 0 elseif v < lo then v = lo elseif v > hi then v = hi end
        values[i - first + 1] = math.tointeger(v) + offset
      end
    end
    local m = last - first + 1
    parts[#parts + 1] = spack("<" .. rep(fmt, m), tunpack(values, 1, m))
  end
  return concat(parts)
end

--- Decodes the bytes of a WAV file. Returns {samples = , sample_rate = ,
-- channels = , frames = , format = "pcm16"|"float"|...}, or nil, message.
function M.decode(bytes)
  if #bytes < 12 or bytes:sub(1, 4) ~= "RIFF" or bytes:sub(9, 12) ~= "WAVE" then
    return nil, "not a RIFF/WAVE file"
  end
  local pos, fmt, data_pos, data_len = 13, nil, nil, nil
  while pos + 7 <= #bytes do
    local id, size = bytes:sub(pos, pos + 3), sunpack("<I4", bytes, pos + 4)
    local body = pos + 8
    if id == "fmt " then
      if size < 16 then return nil, "fmt chunk too short" end
      local tag, channels, rate, _, block_align, bits = sunpack("<I2I2I4I4I2I2", bytes, body)
      if tag == EXTENSIBLE and size >= 40 then
        tag = sunpack("<I2", bytes, body + 24) -- first two bytes of the sub-format GUID
      end
      fmt = {tag = tag, channels = channels, rate = rate, block_align = block_align, bits = bits}
    elseif id == "data" then
      -- A writer that streamed the file may leave 0xFFFFFFFF: take what is there.
      data_pos = body
      data_len = math.min(size, #bytes - body + 1)
      break
    end
    pos = body + size + size % 2 -- chunks are padded to even length
  end
  if not fmt then return nil, "no fmt chunk" end
  if not data_pos then return nil, "no data chunk" end
  local coding = CODINGS[fmt.tag] and CODINGS[fmt.tag][fmt.bits]
  if not coding then
    return nil, ("unsupported WAV sample format (format tag %d, %d bits)"):format(fmt.tag, fmt.bits)
  end
  if fmt.channels < 1 or fmt.rate < 1 then return nil, "WAV header has no channels or rate" end
  local frame_bytes = coding.size * fmt.channels
  local frames = data_len // frame_bytes
  return {
    samples = decode_samples(bytes, data_pos, frames * fmt.channels, coding),
    sample_rate = fmt.rate, channels = fmt.channels, frames = frames,
    format = format_name(fmt.tag, fmt.bits),
  }
end

--- Encodes interleaved samples as a WAV file; format is a key of
--- wav.formats ["float"]. Returns the bytes, or nil, message.
function M.encode(samples, sample_rate, channels, format)
  local f = M.formats[format or "float"]
  if not f then return nil, ("unknown WAV format %q"):format(tostring(format)) end
  channels = channels or 1
  if #samples % channels ~= 0 then
    return nil, ("%d samples do not make whole frames of %d channels"):format(#samples, channels)
  end
  local coding = CODINGS[f.tag][f.bits]
  local data = encode_samples(samples, coding, f.tag == FLOAT)
  local block_align = coding.size * channels
  local fmt_body = spack("<I2I2I4I4I2I2", f.tag, channels, sample_rate,
    sample_rate * block_align, block_align, f.bits)
  local chunks = {}
  if f.tag == FLOAT then
    -- Non-PCM formats carry an extension size and a fact chunk (frame count).
    chunks[#chunks + 1] = "fmt " .. spack("<I4", #fmt_body + 2) .. fmt_body .. spack("<I2", 0)
    chunks[#chunks + 1] = "fact" .. spack("<I4I4", 4, #samples // channels)
  else
    chunks[#chunks + 1] = "fmt " .. spack("<I4", #fmt_body) .. fmt_body
  end
  chunks[#chunks + 1] = "data" .. spack("<I4", #data) .. data .. (#data % 2 == 1 and "\0" or "")
  local body = concat(chunks)
  return "RIFF" .. spack("<I4", 4 + #body) .. "WAVE" .. body
end

--- Reads a WAV file; see decode.
function M.read(path)
  local file, err = io.open(path, "rb")
  if not file then return nil, err end
  local bytes = file:read("a")
  file:close()
  local sound, message = M.decode(bytes)
  if not sound then return nil, path .. ": " .. message end
  return sound
end

--- Writes a WAV file; see encode. Returns true or nil, message.
function M.write(path, samples, sample_rate, channels, format)
  local bytes, err = M.encode(samples, sample_rate, channels, format)
  if not bytes then return nil, err end
  local file
  file, err = io.open(path, "wb")
  if not file then return nil, err end
  local ok
  ok, err = file:write(bytes)
  file:close()
  if not ok then return nil, err end
  return true
end

return M
