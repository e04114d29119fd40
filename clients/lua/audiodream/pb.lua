--- A protobuf (proto3) wire-format codec driven by the tables of schema.lua.
--
--   local pb = require "audiodream.pb"
--   local bytes = pb.encode("ListLayersRequest", {model = "bisig_model1"})
--   local msg = pb.decode("ListLayersResponse", bytes)
--
-- Messages are Lua tables keyed by field name. Integers are Lua integers
-- (64-bit; a uint64 >= 2^63 reads back negative), floats are Lua floats,
-- bytes and strings are Lua strings. See schema.lua for presence rules.
-- Encoding raises an error naming the field on a wrong value or unknown key;
-- decoding raises on malformed input and skips unknown fields.

local schema = require "audiodream.schema"
local pcm = require "audiodream.pcm"

local byte, char, sub = string.byte, string.char, string.sub
local spack, sunpack = string.pack, string.unpack
local concat = table.concat
local tointeger, ult = math.tointeger, math.ult

local VARINT, I64, LEN, I32 = 0, 1, 2, 5

local WIRE = {
  bool = VARINT, int32 = VARINT, uint32 = VARINT, uint64 = VARINT,
  float = I32, double = I64, string = LEN, bytes = LEN,
}

local DEFAULT = {
  bool = false, int32 = 0, uint32 = 0, uint64 = 0, float = 0.0, double = 0.0,
  string = "", bytes = "",
}

-- Per message: fields in number order, by name and by number.
local index = {}
for message, rows in pairs(schema) do
  local fields, by_name, by_number = {}, {}, {}
  for _, row in ipairs(rows) do
    local number, name, typ, label = row[1], row[2], row[3], row[4]
    local field = {
      number = number, name = name, type = typ,
      message = schema[typ] and typ or nil,
      repeated = label == "repeated",
      optional = label == "optional",
      oneof = label and label:match("^oneof:(.+)$"),
    }
    if not field.message and not WIRE[typ] then
      error(("schema: %s.%s has unknown type %s"):format(message, name, typ))
    end
    field.wire = field.message and LEN or WIRE[typ]
    -- proto3 packs repeated scalars that are not length-delimited
    field.packed = field.repeated and not field.message and field.wire ~= LEN
    fields[#fields + 1] = field
    by_name[name], by_number[number] = field, field
  end
  table.sort(fields, function(a, b) return a.number < b.number end)
  index[message] = {fields = fields, by_name = by_name, by_number = by_number}
end

local M = {}

---------------------------------------------------------------- encoding

-- Base-128 varint of a 64-bit two's-complement integer; negative int32
-- values thus take 10 bytes, as protobuf requires.
local function varint(v)
  if v >= 0 and v < 0x80 then return char(v) end
  local out = {}
  while ult(0x7f, v) do
    out[#out + 1] = (v & 0x7f) | 0x80
    v = v >> 7
  end
  out[#out + 1] = v
  return char(table.unpack(out))
end
M.varint = varint

local function fail(path, fmt, ...)
  error(path .. ": " .. fmt:format(...), 0)
end

local function integer(path, v, lo, hi)
  local i = type(v) == "number" and tointeger(v)
  if not i then fail(path, "expected an integer, got %s", tostring(v)) end
  if (lo and i < lo) or (hi and i > hi) then
    fail(path, "%d is outside %s..%s", i, tostring(lo), tostring(hi))
  end
  return i
end

local scalar = {
  int32 = function(p, v) return varint(integer(p, v, -0x80000000, 0x7fffffff)) end,
  uint32 = function(p, v) return varint(integer(p, v, 0, 0xffffffff)) end,
  uint64 = function(p, v) return varint(integer(p, v)) end,
  bool = function(p, v)
    if type(v) ~= "boolean" then fail(p, "expected a boolean, got %s", tostring(v)) end
    return v and "\1" or "\0"
  end,
  float = function(p, v)
    if type(v) ~= "number" then fail(p, "expected a number, got %s", tostring(v)) end
    return spack("<f", v)
  end,
  double = function(p, v)
    if type(v) ~= "number" then fail(p, "expected a number, got %s", tostring(v)) end
    return spack("<d", v)
  end,
  string = function(p, v)
    if type(v) ~= "string" then fail(p, "expected a string, got %s", tostring(v)) end
    return varint(#v) .. v
  end,
}
scalar.bytes = scalar.string

-- Implicit-presence scalars are omitted when they hold the default; for
-- floats the test is on the bits, so -0.0 is still written (as protobuf does).
local function is_default(typ, v)
  if typ == "float" then return spack("<f", v) == "\0\0\0\0" end
  if typ == "double" then return spack("<d", v) == "\0\0\0\0\0\0\0\0" end
  return v == DEFAULT[typ]
end

local encode_into

local function packed_payload(path, f, list)
  if f.type == "float" then
    for i = 1, #list do
      if type(list[i]) ~= "number" then
        fail(path, "element %d: expected a number, got %s", i, tostring(list[i]))
      end
    end
    return pcm.pack(list)
  end
  local parts = {}
  local encode = scalar[f.type]
  for i = 1, #list do parts[i] = encode(path .. "[" .. i .. "]", list[i]) end
  return concat(parts)
end

local function encode_field(out, path, f, v)
  local key = varint(f.number << 3 | f.wire)
  if f.message then
    if type(v) ~= "table" then fail(path, "expected a %s table, got %s", f.message, tostring(v)) end
    local body = {}
    encode_into(body, f.message, v, path)
    local bytes = concat(body)
    out[#out + 1] = key .. varint(#bytes)
    out[#out + 1] = bytes
  else
    out[#out + 1] = key
    out[#out + 1] = scalar[f.type](path, v)
  end
end

function encode_into(out, message, t, path)
  local ix = index[message]
  for k in pairs(t) do
    if not ix.by_name[k] then fail(path, "%s has no field %q", message, tostring(k)) end
  end
  local chosen = {}
  for _, f in ipairs(ix.fields) do
    local v = t[f.name]
    local fpath = path .. "." .. f.name
    if v ~= nil then
      if f.oneof then
        if chosen[f.oneof] then
          fail(path, "%s and %s are both set, but only one of oneof %s may be",
            chosen[f.oneof], f.name, f.oneof)
        end
        chosen[f.oneof] = f.name
      end
      if f.repeated then
        if type(v) ~= "table" then fail(fpath, "expected an array, got %s", tostring(v)) end
        if f.packed then
          if #v > 0 then
            local payload = packed_payload(fpath, f, v)
            out[#out + 1] = varint(f.number << 3 | LEN) .. varint(#payload)
            out[#out + 1] = payload
          end
        else
          for i = 1, #v do encode_field(out, fpath .. "[" .. i .. "]", f, v[i]) end
        end
      elseif f.message or f.optional or f.oneof or not is_default(f.type, v) then
        encode_field(out, fpath, f, v)
      end
    end
  end
end

--- Encodes table `t` as message `message`; returns the bytes. Raises an
--- error "Message.field: what is wrong" on a bad value.
function M.encode(message, t)
  if not index[message] then error("unknown message " .. tostring(message), 2) end
  local out = {}
  encode_into(out, message, t or {}, message)
  return concat(out)
end

---------------------------------------------------------------- decoding

local function read_varint(s, pos, stop)
  local v, shift = 0, 0
  while true do
    if pos > stop then error("truncated varint", 0) end
    local b = byte(s, pos)
    pos = pos + 1
    v = v | ((b & 0x7f) << shift)
    if b < 0x80 then return v, pos end
    shift = shift + 7
    if shift > 63 then error("varint longer than 10 bytes", 0) end
  end
end

local from_varint = {
  int32 = function(v)
    v = v & 0xffffffff
    return v >= 0x80000000 and v - 0x100000000 or v
  end,
  uint32 = function(v) return v & 0xffffffff end,
  uint64 = function(v) return v end,
  bool = function(v) return v ~= 0 end,
}

-- Reads one value of wire type `wire` at pos; returns value, next pos.
-- For LEN the value is the pair (first, last) of the payload.
local function read_value(s, pos, stop, wire)
  if wire == VARINT then return read_varint(s, pos, stop) end
  if wire == I32 then
    if pos + 3 > stop then error("truncated fixed32", 0) end
    return pos, pos + 4
  end
  if wire == I64 then
    if pos + 7 > stop then error("truncated fixed64", 0) end
    return pos, pos + 8
  end
  if wire == LEN then
    local n
    n, pos = read_varint(s, pos, stop)
    if n < 0 or pos + n - 1 > stop then error("truncated length-delimited field", 0) end
    return pos, pos + n
  end
  error("unsupported wire type " .. wire, 0)
end

local decode_range

local function scalar_at(s, typ, v, pos)
  if typ == "float" then return (sunpack("<f", s, v)) end
  if typ == "double" then return (sunpack("<d", s, v)) end
  if typ == "string" or typ == "bytes" then return sub(s, v, pos - 1) end
  return from_varint[typ](v)
end

function decode_range(message, s, pos, stop)
  local ix = index[message]
  local t = {}
  for _, f in ipairs(ix.fields) do
    if f.repeated then t[f.name] = {}
    elseif not (f.message or f.optional or f.oneof) then t[f.name] = DEFAULT[f.type] end
  end
  while pos <= stop do
    local key
    key, pos = read_varint(s, pos, stop)
    local number, wire = key >> 3, key & 7
    local f = ix.by_number[number]
    local v, next_pos = read_value(s, pos, stop, wire)
    if not f then
      pos = next_pos -- unknown field: skipped, for compatibility with newer servers
    elseif f.packed and wire == LEN then
      local list = t[f.name]
      if f.type == "float" then
        for _, x in ipairs(pcm.unpack(s, v, next_pos - 1)) do list[#list + 1] = x end
      else
        local p = v
        while p < next_pos do
          local x
          x, p = read_value(s, p, next_pos - 1, f.wire)
          list[#list + 1] = scalar_at(s, f.type, x, p)
        end
      end
      pos = next_pos
    else
      if wire ~= f.wire then
        error(("%s.%s: wire type %d, expected %d"):format(message, f.name, wire, f.wire), 0)
      end
      local value
      if f.message then
        value = decode_range(f.message, s, v, next_pos - 1)
      else
        value = scalar_at(s, f.type, v, next_pos)
      end
      if f.repeated then
        local list = t[f.name]
        list[#list + 1] = value
      else
        if f.oneof then -- the last member seen wins, as in protobuf
          for _, g in ipairs(ix.fields) do
            if g.oneof == f.oneof then t[g.name] = nil end
          end
        end
        t[f.name] = value
      end
      pos = next_pos
    end
  end
  return t
end

--- Decodes `bytes` as message `message`; returns the table, or nil and an
--- error string when the bytes are malformed.
function M.decode(message, bytes)
  if not index[message] then error("unknown message " .. tostring(message), 2) end
  local ok, result = pcall(decode_range, message, bytes, 1, #bytes)
  if not ok then return nil, message .. ": " .. tostring(result) end
  return result
end

--- The oneof member set in `t` for oneof `oneof` of `message`: name, value.
function M.which(message, t, oneof)
  for _, f in ipairs(index[message].fields) do
    if f.oneof == oneof and t[f.name] ~= nil then return f.name, t[f.name] end
  end
end

--- The schema rows, for tests and tools.
M.schema = schema

return M
