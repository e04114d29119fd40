--- PCM: Lua arrays of numbers <-> float32 little-endian bytes.
--
-- The contract carries audio as float32 LE, channels interleaved. string.pack
-- takes many values per call, so the work is done in slices of SLICE values:
-- large enough to amortise the call, small enough for Lua's C stack limit.

local pack, unpack, rep = string.pack, string.unpack, string.rep
local tunpack, concat = table.unpack, table.concat

local SLICE = 200
local SLICE_FORMAT = "<" .. rep("f", SLICE)

local M = {}

--- Packs numbers t[1..#t] as float32 LE; returns a string of 4 * #t bytes.
function M.pack(t)
  local n = #t
  local parts = {}
  local full = n - n % SLICE
  for i = 1, full, SLICE do
    parts[#parts + 1] = pack(SLICE_FORMAT, tunpack(t, i, i + SLICE - 1))
  end
  if full < n then
    parts[#parts + 1] = pack("<" .. rep("f", n - full), tunpack(t, full + 1, n))
  end
  return concat(parts)
end

--- Unpacks float32 LE bytes s[i..j] (default: all of s) into a new array.
function M.unpack(s, i, j)
  i, j = i or 1, j or #s
  local count = (j - i + 1) // 4
  if (j - i + 1) % 4 ~= 0 then
    error(("float32 data of %d bytes is not a multiple of 4"):format(j - i + 1), 2)
  end
  local out = {}
  local k = 0
  local pos = i
  while count > 0 do
    local m = count < SLICE and count or SLICE
    local values = {unpack(m == SLICE and SLICE_FORMAT or "<" .. rep("f", m), s, pos)}
    for v = 1, m do out[k + v] = values[v] end
    k, pos, count = k + m, pos + 4 * m, count - m
  end
  return out
end

return M
