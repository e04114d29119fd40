--- Two run-time fixes to lua-http 0.4 that a gRPC client needs.
--
-- 1. Response trailers. lua-http checks every received header block with a
--    local validate_headers() that demands ":status" in any block of a
--    response, so the trailing block, where gRPC puts grpc-status and
--    grpc-message, is refused as a protocol error (upstream issue 236). We
--    wrap that function (an upvalue of the HEADERS frame handler, reached
--    through the debug library): a response block that ends the stream and has
--    no ":status" is checked by the rules lua-http applies to request trailers
--    (lower-case names, no pseudo-headers). Other blocks are untouched.
--
-- 2. HPACK integers. Its encode_integer() writes a value of exactly 2^N - 1
--    (N = prefix bits) as the bare prefix, without the continuation byte 0
--    that RFC 7541 section 5.1 requires. The decoder then reads the next byte
--    as part of the integer and the whole header block is corrupt. It happens
--    as soon as a header refers to dynamic-table index 63 (the second call on
--    a connection) or a header value is 127 bytes long. We replace the
--    function wherever hpack.lua's encoders share it.
--
-- 3. Waiting after a write. An HTTP/2 connection is polled with the events of
--    its socket's last operation. After a read that found nothing, a write
--    (a DATA frame, a RST_STREAM) leaves it asking for none, so the next wait
--    for a response sleeps through the response until its timeout. Here the
--    connection always asks to be woken when there is something to read.
--
-- Each fix checks that the code it wraps is there (and for 2, that the bug
-- is); on another lua-http it does nothing. M.trailers, M.hpack, M.events tell.

local h2_connection = require "http.h2_connection"
local h2_stream = require "http.h2_stream"
local hpack = require "http.hpack"

local M = {trailers = false, hpack = false, events = false}

local function upvalue(fn, wanted)
  for i = 1, 255 do
    local name, value = debug.getupvalue(fn, i)
    if name == nil then return nil end
    if name == wanted then return i, value end
  end
end

---------------------------------------------------------------- trailers

local handler = h2_stream.frame_handlers[h2_stream.frame_types.HEADERS]
local _, process_end_headers = upvalue(handler, "process_end_headers")
local slot, validate
if type(process_end_headers) == "function" then
  slot, validate = upvalue(process_end_headers, "validate_headers")
end
if slot and type(validate) == "function" then
  local function validate_allowing_trailers(headers, is_request, nth_header, ended_stream)
    if not is_request and nth_header > 1 and ended_stream and not headers:has(":status") then
      return validate(headers, true, 2, ended_stream)
    end
    return validate(headers, is_request, nth_header, ended_stream)
  end
  -- One upvalue cell is shared by every function of h2_stream that validates.
  debug.setupvalue(process_end_headers, slot, validate_allowing_trailers)
  M.trailers = true
end

---------------------------------------------------------------- HPACK

-- RFC 7541 5.1: values below 2^N - 1 fit the prefix; others fill the prefix
-- and continue in 7-bit groups, least significant first.
local function encode_integer(i, prefix_len, mask)
  local max_prefix = (1 << prefix_len) - 1
  i = math.tointeger(i)
  if i < max_prefix then return string.char(mask | i) end
  local bytes = {mask | max_prefix}
  i = i - max_prefix
  while i >= 128 do
    bytes[#bytes + 1] = (i & 127) | 128
    i = i >> 7
  end
  bytes[#bytes + 1] = i
  return string.char(table.unpack(bytes))
end

if #hpack.encode_integer(63, 6, 0x40) == 1 then
  local hpack_slot = upvalue(hpack.encode_string, "encode_integer")
  if hpack_slot then
    -- encode_string and the header encoders all share this upvalue cell.
    debug.setupvalue(hpack.encode_string, hpack_slot, encode_integer)
    hpack.encode_integer = encode_integer
    M.hpack = true
  end
end

---------------------------------------------------------------- events

local socket_events = h2_connection.methods.events
if type(socket_events) == "function" then
  function h2_connection.methods:events()
    local events = socket_events(self)
    if events and not events:find("r", 1, true) then events = events .. "r" end
    return events
  end
  M.events = true
end

return M
