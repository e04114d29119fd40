--- gRPC status codes and the error values this client returns.
--
-- Every failing call returns nil plus an error table {code = NAME,
-- number = N, message = TEXT}; tostring(err) gives "NAME: TEXT".

local M = {}

M.names = {
  [0] = "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
  "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
  "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

M.numbers = {}
for number = 0, #M.names do M.numbers[M.names[number]] = number end

local Error = {}
Error.__index = Error
function Error:__tostring() return self.code .. ": " .. self.message end

--- An error value for status `code` (a name or a number) with `message`.
function M.error(code, message)
  local number = type(code) == "number" and code or M.numbers[code]
  local name = M.names[number] or "UNKNOWN"
  return setmetatable({code = name, number = number or 2, message = message or ""}, Error)
end

--- True when `value` is an error made by M.error.
function M.is_error(value) return getmetatable(value) == Error end

-- When a response is not gRPC at all, its HTTP status says what happened
-- (the mapping of gRPC's "HTTP to gRPC status code mapping" document).
local from_http = {
  [400] = "INTERNAL", [401] = "UNAUTHENTICATED", [403] = "PERMISSION_DENIED",
  [404] = "UNIMPLEMENTED", [429] = "UNAVAILABLE", [502] = "UNAVAILABLE",
  [503] = "UNAVAILABLE", [504] = "UNAVAILABLE",
}

function M.from_http(http_status)
  return M.error(from_http[tonumber(http_status)] or "UNKNOWN",
    "HTTP status " .. tostring(http_status) .. " in a gRPC response")
end

--- grpc-message is percent-encoded (only bytes outside printable ASCII and '%').
function M.decode_message(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

return M
