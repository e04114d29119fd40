--- gRPC over HTTP/2 on lua-http: a channel (one connection) and calls on it.
--
-- A gRPC call is one HTTP/2 stream: request headers (POST to
-- /package.Service/Method, content-type application/grpc, te: trailers), then
-- DATA carrying length-prefixed messages (1 byte "compressed" flag = 0, 4 bytes
-- big-endian length, the protobuf bytes), and from the server headers, the
-- same framed messages and trailers with grpc-status and grpc-message. A
-- server that fails before answering sends only one header block holding
-- grpc-status ("trailers-only").
--
-- Everything here blocks the calling coroutine/process until done or until the
-- call's deadline; lua-http's cqueues loop runs inside the waits.

local cqueues = require "cqueues"
local ce = require "cqueues.errno"
local http_client = require "http.client"
local http_headers = require "http.headers"
local h2_error = require "http.h2_error"
local status = require "audiodream.status"
require "audiodream.http_fixes"

local monotime = cqueues.monotime
local spack, sunpack = string.pack, string.unpack
local concat = table.concat

local M = {}

local USER_AGENT = "audiodream-lua/0.1.0"

-- Receive windows we grant the server: the HTTP/2 default of 64 KiB would
-- cost one round trip per 64 KiB of a multi-megabyte response.
local WINDOW = 4 * 1024 * 1024
local DEFAULT_WINDOW = 65535

---------------------------------------------------------------- framing

--- One gRPC message frame: uncompressed flag, big-endian length, bytes.
function M.frame(message)
  return spack(">BI4", 0, #message) .. message
end

-- grpc-timeout: at most 8 digits and a unit; milliseconds, or seconds if long.
local function grpc_timeout(seconds)
  local ms = math.ceil(seconds * 1000)
  if ms < 1 then ms = 1 end
  if ms <= 99999999 then return ("%dm"):format(ms) end
  return ("%dS"):format(math.min(math.ceil(seconds), 99999999))
end

-- Calls a lua-http operation, turning an error it raises (some of its
-- protocol checks do) into the usual nil, err return.
local function guard(f, ...)
  local results = table.pack(pcall(f, ...))
  if not results[1] then return nil, results[2] end
  return table.unpack(results, 2, results.n)
end

---------------------------------------------------------------- channel

local Channel = {}
Channel.__index = Channel

--- Parses "host:port", "[v6]:port"; returns host, port or nil, message.
function M.parse_address(address)
  local host, port = tostring(address):match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = tostring(address):match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return nil, ("address %q is not host:port"):format(tostring(address))
  end
  return host, port
end

--- A channel to `address` ("host:port").
-- Options (all optional):
--   timeout   seconds per call (a deadline sent to the server too); nil = none
--   connect_timeout  seconds to open the connection [10]
--   tls       true = HTTPS with certificate verification; or an
--             openssl.ssl.context to use as is
--   ca_file   PEM file of the certificate authority to trust (implies tls)
--   authority the :authority header [address]
--   metadata  table of extra request headers (e.g. authorization)
-- Returns the channel, or nil and an UNAVAILABLE/INVALID_ARGUMENT error.
function M.channel(address, options)
  options = options or {}
  local host, port = M.parse_address(address)
  if not host then return nil, status.error("INVALID_ARGUMENT", port) end
  local self = setmetatable({
    host = host, port = port, options = options,
    timeout = options.timeout,
    authority = options.authority or address,
    scheme = (options.tls or options.ca_file) and "https" or "http",
    metadata = options.metadata or {},
  }, Channel)
  if self.scheme == "https" then
    local ctx = options.tls
    if type(ctx) ~= "userdata" then
      ctx = require "http.tls".new_client_context()
      if options.ca_file then
        local ok, err = pcall(function() ctx:getStore():add(options.ca_file) end)
        if not ok then return nil, status.error("INVALID_ARGUMENT", tostring(err)) end
      end
    end
    self.tls_context = ctx
  end
  local ok, err = self:connection(options.connect_timeout or 10)
  if not ok then return nil, err end
  return self
end

-- The open connection, reopened when the server has closed it or said GOAWAY.
function Channel:connection(timeout)
  local conn = self.conn
  if conn and not conn.recv_goaway_lowest and not conn.socket:eof("r") then
    return conn
  end
  self:close()
  conn = nil
  local opened, err = guard(http_client.connect, {
    host = self.host, port = self.port, version = 2,
    tls = self.scheme == "https", ctx = self.tls_context,
    h2_settings = {ENABLE_PUSH = false, INITIAL_WINDOW_SIZE = WINDOW},
  }, timeout)
  if opened then
    local ok
    ok, err = guard(opened.connect, opened, timeout)
    if ok then
      conn = opened
    else
      opened:close()
    end
  end
  if not conn then
    return nil, status.error("UNAVAILABLE", ("cannot connect to %s:%d: %s")
      :format(self.host, self.port, tostring(err)))
  end
  -- The connection-level window only grows by WINDOW_UPDATE frames.
  conn:write_window_update(WINDOW - DEFAULT_WINDOW, timeout)
  self.conn = conn
  self.finished_streams, self.finished_count = {}, 0
  return conn
end

--- Closes the connection; the next call opens a new one.
function Channel:close()
  local conn = self.conn
  self.conn = nil
  if conn then pcall(conn.close, conn) end
end

-- lua-http forgets streams nobody references (a weak table) and then takes a
-- frame the server may still send on one (a late WINDOW_UPDATE or RST_STREAM,
-- which HTTP/2 allows) for a protocol error that ends the connection. So the
-- last KEEP finished streams stay referenced here.
local KEEP = 64
function Channel:keep(stream)
  self.finished_count = self.finished_count + 1
  self.finished_streams[self.finished_count % KEEP + 1] = stream
end

---------------------------------------------------------------- calls

local Call = {}
Call.__index = Call

local function remaining(deadline)
  if not deadline then return nil end
  local left = deadline - monotime()
  return left > 0 and left or 0
end

-- A transport failure as a gRPC error: a lapsed deadline, an HTTP/2 reset,
-- or a broken connection.
function Call:failure(err, errno)
  if errno == ce.ETIMEDOUT and self.deadline and monotime() >= self.deadline then
    self:cancel()
    return status.error("DEADLINE_EXCEEDED",
      ("no answer from %s within %g s"):format(self.method, self.timeout))
  end
  local h2 = h2_error.is(err)
    and ("HTTP/2 %s: %s"):format(tostring(err.name), tostring(err.message))
  if h2 and err.stream_error then -- the server reset this stream only
    if err.code == h2_error.errors.CANCEL.code then return status.error("CANCELLED", h2) end
    if err.code == h2_error.errors.REFUSED_STREAM.code then
      return status.error("UNAVAILABLE", h2)
    end
    return status.error("INTERNAL", h2)
  end
  -- Anything else broke the connection.
  if self.channel.conn == self.conn then self.channel:close() end
  if h2 then return status.error("UNAVAILABLE", h2) end
  return status.error("UNAVAILABLE", tostring(err or "connection lost"))
end

--- Starts a call of `method` ("/audiodream.v1.DreamService/Dream").
-- options.timeout overrides the channel's; false = no deadline.
-- Returns the call, or nil and an error.
function Channel:call(method, options)
  options = options or {}
  local timeout = options.timeout
  if timeout == nil then timeout = self.timeout end
  local deadline = timeout and monotime() + timeout or nil
  local conn, err = self:connection(remaining(deadline) or self.options.connect_timeout or 10)
  if not conn then return nil, err end

  local headers = http_headers.new()
  headers:append(":method", "POST")
  headers:append(":scheme", self.scheme)
  headers:append(":authority", self.authority)
  headers:append(":path", method)
  headers:append("content-type", "application/grpc")
  headers:append("te", "trailers")
  headers:append("grpc-accept-encoding", "identity")
  headers:append("user-agent", USER_AGENT)
  if timeout then headers:append("grpc-timeout", grpc_timeout(timeout)) end
  for name, value in pairs(self.metadata) do headers:append(name:lower(), tostring(value)) end

  local self_call = setmetatable({
    channel = self, conn = conn, stream = conn:new_stream(), method = method,
    timeout = timeout, deadline = deadline,
    pending = {}, pending_len = 0, need = 5,
  }, Call)
  local ok, errno
  ok, err, errno = guard(self_call.stream.write_headers, self_call.stream, headers, false,
    remaining(deadline))
  if not ok then return nil, self_call:failure(err, errno) end
  return self_call
end

--- Sends one message (protobuf bytes); `last` = true half-closes the call.
-- Returns true, or nil and an error.
function Call:send(message, last)
  if self.finished then
    return nil, self.finished_error or status.error("FAILED_PRECONDITION", "the call has ended")
  end
  local ok, err, errno = guard(self.stream.write_chunk, self.stream, M.frame(message),
    last == true, remaining(self.deadline))
  if not ok then return nil, self:failure(err, errno) end
  if last then self.sent_all = true end
  return true
end

--- Tells the server that no more messages follow.
function Call:close_send()
  if self.sent_all or self.finished then return true end
  local ok, err, errno = guard(self.stream.write_chunk, self.stream, "", true,
    remaining(self.deadline))
  if not ok then return nil, self:failure(err, errno) end
  self.sent_all = true
  return true
end

--- Resets the call (RST_STREAM CANCEL); the server sees CANCELLED.
-- Frames the server sent before it saw the reset may still arrive, and
-- lua-http 0.4 takes DATA or HEADERS on a reset stream for a connection
-- error (without decoding the headers, which desynchronises HPACK). So the
-- connection is retired: this call's channel opens a new one when needed.
function Call:cancel()
  if self.finished then return end
  self:finish(status.error("CANCELLED", "cancelled by the client"))
  guard(self.stream.rst_stream, self.stream,
    h2_error.errors.CANCEL:new {message = "cancelled by the client"}, 0)
  if self.channel.conn == self.conn then self.channel:close() end
end

-- Ends the call with `err` (nil = OK) and returns nil, err for the caller.
function Call:finish(err)
  if not self.finished and self.channel.conn == self.conn then self.channel:keep(self.stream) end
  self.finished = true
  self.finished_error = err
  return nil, err
end

-- The status of a header block holding grpc-status; nil if it has none.
local function status_of(headers)
  local code = headers:get("grpc-status")
  if code == nil then return nil end
  local number = tonumber(code)
  if number == 0 then return "OK" end
  local message = headers:get("grpc-message")
  return status.error(number or "UNKNOWN",
    message and status.decode_message(message) or ("grpc-status " .. code))
end

-- The next complete message in the receive buffer, or nil.
function Call:take_message()
  if self.pending_len < self.need then return nil end
  local data = #self.pending == 1 and self.pending[1] or concat(self.pending)
  local flag, length = sunpack(">BI4", data)
  if #data < 5 + length then -- wait for the rest of this message
    self.pending, self.pending_len, self.need = {data}, #data, 5 + length
    return nil
  end
  if flag ~= 0 then
    return nil, status.error("INTERNAL", "compressed message, but no compression was agreed")
  end
  local message = data:sub(6, 5 + length)
  local rest = data:sub(6 + length)
  self.pending, self.pending_len, self.need = {rest}, #rest, 5
  return message
end

--- Receives the next message (protobuf bytes).
-- `wait` = seconds to wait at most (nil = until the call's deadline).
-- Returns the bytes; false if `wait` passed first (the call goes on);
-- nil when the call ended OK; nil, err when it failed.
function Call:receive(wait)
  local wait_until = wait and monotime() + wait
  local function budget()
    local a, b = remaining(self.deadline), remaining(wait_until)
    if a and b then return math.min(a, b) end
    return a or b
  end
  while true do
    if self.finished then return nil, self.finished_error end
    local message, ferr = self:take_message()
    if ferr then self:cancel(); return self:finish(ferr) end
    if message then return message end

    local err, errno
    if not self.headers then
      local headers
      headers, err, errno = guard(self.stream.get_headers, self.stream, budget())
      if headers == nil and err == nil then
        return self:finish(status.error("UNAVAILABLE", "the stream closed before any response"))
      end
      -- Informational (1xx) blocks are skipped: the real headers follow.
      if headers and headers:get(":status"):sub(1, 1) ~= "1" then
        self.headers = headers
        local trailers_only = status_of(headers)
        if trailers_only then
          return self:finish(trailers_only ~= "OK" and trailers_only or nil)
        end
        local http_status = headers:get(":status")
        if http_status ~= "200" then return self:finish(status.from_http(http_status)) end
      end
    else
      local chunk
      chunk, err, errno = guard(self.stream.get_next_chunk, self.stream, budget())
      if chunk then
        self.pending[#self.pending + 1] = chunk
        self.pending_len = self.pending_len + #chunk
      elseif err == nil then
        return self:finish(self:end_of_stream())
      end
    end
    if err ~= nil then
      if errno == ce.ETIMEDOUT and wait_until and monotime() >= wait_until
          and not (self.deadline and monotime() >= self.deadline) then
        return false
      end
      return self:finish(self:failure(err, errno))
    end
  end
end

-- The body ended: the trailers say how the call went.
function Call:end_of_stream()
  if self.pending_len > 0 then
    return status.error("INTERNAL", ("response ended inside a message (%d bytes left)")
      :format(self.pending_len))
  end
  local trailers = guard(self.stream.get_headers, self.stream, 0)
  local result = trailers and status_of(trailers)
  if not result then
    return status.error("INTERNAL", "the server ended the call without a grpc-status")
  end
  return result ~= "OK" and result or nil
end

--- A unary call: sends `request` (bytes), returns the response bytes or nil, err.
function Channel:unary(method, request, options)
  local call, err = self:call(method, options)
  if not call then return nil, err end
  local ok
  ok, err = call:send(request, true)
  if not ok then return nil, err end
  local response
  response, err = call:receive()
  if not response then
    return nil, err or status.error("INTERNAL", method .. " ended without a response")
  end
  local extra
  extra, err = call:receive()
  if extra then
    call:cancel()
    return nil, status.error("INTERNAL", method .. " sent more than one response")
  end
  if err then return nil, err end
  return response
end

M.Channel, M.Call = Channel, Call
return M
