"""The Lua client (clients/lua) run by real Lua interpreters against a real server.

Each test runs under every installed interpreter (lua5.4, lua5.3) that can load
lua-http; one without it is skipped and says which Debian packages to install.
The protobuf codec is checked against the generated Python descriptor and
byte for byte against the Python protobuf implementation.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess

from concurrent import futures

import grpc
import numpy as np
import pytest
import soundfile as sf

from audiodream_proto.v1 import audiodream_pb2 as pb
from google.protobuf.descriptor import FieldDescriptor as FD
from sounds import tone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA_DIR = os.path.join(ROOT, "clients", "lua")
EXAMPLE = os.path.join(LUA_DIR, "examples", "dream.lua")
INTERPRETERS = ("lua5.4", "lua5.3")
PACKAGES = "apt-get install lua5.3 lua5.4 lua-http"


# ---------------------------------------------------------------- running Lua

def _own_path(interpreter: str, env: dict) -> tuple[str, str]:
    """The interpreter's version ("5.4") and default package.path."""
    out = subprocess.run(
        [interpreter, "-e", "io.write(_VERSION:match('%d+%.%d+'), '\\n', package.path)"],
        env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    version, path = out.split("\n", 1)
    return version, path


@functools.cache
def lua_env(interpreter: str) -> dict | None:
    """Environment whose LUA_PATH finds the client and lua-http, or None.

    LUA_PATH = the client, the interpreter's own directories, then the same
    directories for Lua 5.3 and 5.1, where Debian installs lua-http (packaged
    for 5.1-5.3) and its pure-Lua dependencies.
    """
    if shutil.which(interpreter) is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUA_PATH")}
    version, own = _own_path(interpreter, env)
    templates = [t for t in own.split(";") if t]
    extra = [t.replace(f"/{version}/", f"/{v}/") for v in ("5.3", "5.1") for t in templates]
    client = [os.path.join(LUA_DIR, "?.lua"), os.path.join(LUA_DIR, "?", "init.lua")]
    env["LUA_PATH"] = ";".join(dict.fromkeys(client + templates + extra))
    probe = subprocess.run([interpreter, "-e", 'require "http.client"; require "audiodream"'],
                           env=env, capture_output=True, timeout=30)
    return env if probe.returncode == 0 else None


# Helpers every test script gets: hex, and JSON out of Lua tables.
PRELUDE = r'''
local ad = require "audiodream"
local pb = require "audiodream.pb"

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
end

local function json(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return ("%d"):format(v) end
    assert(v == v and v ~= math.huge and v ~= -math.huge, "not a JSON number")
    return ("%.17g"):format(v)
  end
  if t == "string" then return json_string(v) end
  local parts = {}
  if #v > 0 or next(v) == nil then
    for i = 1, #v do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do
    if type(x) ~= "function" then parts[#parts + 1] = json_string(tostring(k)) .. ":" .. json(x) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- A decoded message as JSON, guided by the schema: bytes as hex, absent
-- fields left out, arrays as arrays even when empty.
local function json_message(name, t)
  local parts = {}
  for _, row in ipairs(pb.schema[name]) do
    local field, typ, label = row[2], row[3], row[4]
    local v = t[field]
    local function one(x)
      if pb.schema[typ] then return json_message(typ, x) end
      if typ == "bytes" then return json_string(hex(x)) end
      return json(x)
    end
    if v ~= nil then
      local text
      if label == "repeated" then
        local items = {}
        for i, x in ipairs(v) do items[i] = one(x) end
        text = "[" .. table.concat(items, ",") .. "]"
      else
        text = one(v)
      end
      parts[#parts + 1] = json_string(field) .. ":" .. text
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function errjson(err)
  return {code = err.code, number = err.number, message = err.message}
end
'''


class Lua:
    """Runs Lua code with the client on LUA_PATH; `arg` holds the arguments."""

    def __init__(self, interpreter: str, env: dict, tmp_path):
        self.interpreter, self.env, self.tmp_path = interpreter, env, tmp_path

    def run(self, code: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        script = self.tmp_path / "script.lua"
        script.write_text(PRELUDE + code)
        return self.run_file(str(script), *args, stdin=stdin)

    def run_file(self, path: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        result = subprocess.run([self.interpreter, path, *args], input=stdin, env=self.env,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{self.interpreter} failed:\n{result.stderr}"
        return result

    def json(self, code: str, *args: str, **kwargs):
        return json.loads(self.run(code, *args, **kwargs).stdout)


@pytest.fixture(params=INTERPRETERS)
def lua(request, tmp_path) -> Lua:
    env = lua_env(request.param)
    if env is None:
        pytest.skip(f"{request.param} with lua-http is not installed ({PACKAGES})")
    return Lua(request.param, env, tmp_path)


# ---------------------------------------------------------------- schema

SCALAR_NAMES = {
    FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes", FD.TYPE_BOOL: "bool",
    FD.TYPE_INT32: "int32", FD.TYPE_UINT32: "uint32", FD.TYPE_UINT64: "uint64",
    FD.TYPE_FLOAT: "float", FD.TYPE_DOUBLE: "double",
}


def real_oneof(field):
    """The field's oneof, unless it is the synthetic one of a proto3 `optional`."""
    oneof = field.containing_oneof
    return oneof if oneof is not None and oneof.name != "_" + field.name else None


def schema_row(field) -> list:
    """A field as schema.lua writes it: [number, name, type, label or None]."""
    typ = field.message_type.name if field.message_type else SCALAR_NAMES[field.type]
    if field.is_repeated:
        label = "repeated"
    elif real_oneof(field):
        label = "oneof:" + real_oneof(field).name
    elif field.has_presence and not field.message_type:
        label = "optional"
    else:
        label = None
    return [field.number, field.name, typ, label]


def test_lua_schema_matches_the_proto(lua):
    rows = lua.json('''
local out = {}
for name, fields in pairs(pb.schema) do
  local list = {}
  for i, r in ipairs(fields) do list[i] = {r[1], r[2], r[3], r[4] or false} end
  out[name] = list
end
print(json(out))''')
    lua_schema = {name: sorted([n, f, t, label or None] for n, f, t, label in fields)
                  for name, fields in rows.items()}
    proto = {name: sorted(schema_row(f) for f in d.fields)
             for name, d in pb.DESCRIPTOR.message_types_by_name.items()}
    assert sorted(lua_schema) == sorted(proto), "messages differ between schema.lua and the proto"
    for name in proto:
        assert lua_schema[name] == proto[name], f"{name} differs between schema.lua and the proto"


# ---------------------------------------------------------------- codec round trips

VALUES = {
    FD.TYPE_STRING: "naïve ☂", FD.TYPE_BYTES: b"\x00\xff\x10 pcm", FD.TYPE_BOOL: True,
    FD.TYPE_INT32: -7, FD.TYPE_UINT32: 4_000_000_000, FD.TYPE_UINT64: 2 ** 40 + 3,
    FD.TYPE_FLOAT: 0.15625, FD.TYPE_DOUBLE: -2.5e-3,
}
SECOND = {
    FD.TYPE_STRING: "b", FD.TYPE_BYTES: b"", FD.TYPE_BOOL: False, FD.TYPE_INT32: 2 ** 31 - 1,
    FD.TYPE_UINT32: 0, FD.TYPE_UINT64: 1, FD.TYPE_FLOAT: -1.25, FD.TYPE_DOUBLE: 1e300,
}
ZEROS = {
    FD.TYPE_STRING: "", FD.TYPE_BYTES: b"", FD.TYPE_BOOL: False, FD.TYPE_INT32: 0,
    FD.TYPE_UINT32: 0, FD.TYPE_UINT64: 0, FD.TYPE_FLOAT: 0.0, FD.TYPE_DOUBLE: 0.0,
}


def filled(descriptor, choice: int = 0, zero: bool = False):
    """A message with every field set (non-defaults, or zeros where a field has
    presence), taking member `choice` of each oneof."""
    msg = getattr(pb, descriptor.name)()
    for f in descriptor.fields:
        oneof = real_oneof(f)
        if oneof and f is not oneof.fields[choice % len(oneof.fields)]:
            continue
        if f.message_type:
            sub = filled(f.message_type, choice, zero)
            if f.is_repeated:
                for _ in range(2):
                    getattr(msg, f.name).add().CopyFrom(sub)
            else:
                getattr(msg, f.name).SetInParent()
                getattr(msg, f.name).CopyFrom(sub)
        elif f.is_repeated:
            getattr(msg, f.name).extend([VALUES[f.type], SECOND[f.type]])
        elif zero:
            if f.has_presence:
                setattr(msg, f.name, ZEROS[f.type])
        else:
            setattr(msg, f.name, VALUES[f.type])
    return msg


def samples() -> list:
    """(name, message) for every message of the proto: empty, full (once per
    oneof member), and with the presence fields set to zero."""
    out = []
    for name, d in pb.DESCRIPTOR.message_types_by_name.items():
        choices = max([len(o.fields) for o in d.oneofs if not o.name.startswith("_")] or [1])
        out.append((name, getattr(pb, name)()))
        out += [(name, filled(d, choice)) for choice in range(choices)]
        out.append((name, filled(d, zero=True)))
    return out


def as_json(msg) -> dict:
    """What json_message prints for a decoded message."""
    out = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)

        def one(x, f=f):
            return as_json(x) if f.message_type else x.hex() if f.type == FD.TYPE_BYTES else x
        if f.is_repeated:
            out[f.name] = [one(x) for x in value]
        elif not f.has_presence or msg.HasField(f.name):
            out[f.name] = one(value)
    return out


def lua_literal(msg) -> str:
    """The message as a Lua table constructor (floats in exact hex notation)."""
    parts = []
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if not f.is_repeated and f.has_presence and not msg.HasField(f.name):
            continue

        def one(x, f=f):
            if f.message_type:
                return lua_literal(x)
            if isinstance(x, bool):
                return "true" if x else "false"
            if isinstance(x, float):
                return float.hex(x)
            if isinstance(x, int):
                return str(x)
            data = x.encode() if isinstance(x, str) else x
            return '"' + "".join(f"\\x{b:02x}" for b in data) + '"'
        text = "{" + ", ".join(one(x) for x in value) + "}" if f.is_repeated else one(value)
        parts.append(f"{f.name} = {text}")
    return "{" + ", ".join(parts) + "}"


def test_codec_decodes_and_reencodes_python_messages_exactly(lua):
    """Python bytes -> Lua decode -> the same values, and re-encoded to the same bytes."""
    cases = samples()
    stdin = "".join(f"{name} {msg.SerializeToString().hex()}\n" for name, msg in cases)
    out = lua.run('''
for line in io.lines() do
  local name, h = line:match("^(%S+) (%x*)$")
  local t = assert(pb.decode(name, unhex(h)))
  print(json_message(name, t) .. "\\t" .. hex(pb.encode(name, t)))
end''', stdin=stdin).stdout.splitlines()
    assert len(out) == len(cases)
    for (name, msg), line in zip(cases, out, strict=True):
        decoded, reencoded = line.split("\t")
        assert json.loads(decoded) == as_json(msg), name
        assert bytes.fromhex(reencoded) == msg.SerializeToString(), name


def test_codec_encodes_lua_tables_as_python_does(lua):
    """Lua tables -> Lua encode -> Python parses the same message, byte for byte."""
    cases = samples()
    table = ",\n".join(f'{{"{name}", {lua_literal(msg)}}}' for name, msg in cases)
    out = lua.run(f'''
local cases = {{
{table}
}}
for _, case in ipairs(cases) do
  print(":" .. hex(pb.encode(case[1], case[2])))
end''').stdout.split()
    assert len(out) == len(cases)
    for (name, msg), h in zip(cases, out, strict=True):
        data = bytes.fromhex(h[1:])
        assert data == msg.SerializeToString(), name
        assert getattr(pb, name).FromString(data) == msg, name


def test_optional_fields_are_present_exactly_when_set(lua):
    """0 in an `optional` is a real value (0 iterations); nil leaves it unset."""
    h = lua.run('''
io.write(hex(pb.encode("DreamRequest", {params = {iterations = 0, mix = 0.0, seed = 0,
  layers = {{name = "conv3", channels = {}}, {name = "conv1", weight = 0}}}})))''').stdout
    params = pb.DreamRequest.FromString(bytes.fromhex(h)).params
    assert params.HasField("iterations") and params.iterations == 0
    assert params.HasField("mix") and params.HasField("seed")
    assert not params.HasField("step_size") and not params.HasField("class_index")
    assert not params.layers[0].HasField("weight")
    assert params.layers[1].HasField("weight") and params.layers[1].weight == 0.0


def test_codec_refuses_wrong_values_naming_the_field(lua):
    errors = lua.json('''
local function try(name, t) local ok, e = pcall(pb.encode, name, t); assert(not ok); return e end
print(json({
  try("DreamParams", {iterations = 2.5}),
  try("DreamParams", {iteration = 3}),
  try("LayerSelection", {channels = {1, "x"}}),
  try("Audio", {pcm = "a", encoded = "b"}),
  try("Audio", {sample_rate = -1}),
  select(2, pb.decode("ModelInfo", "\\x08")),
}))''')
    assert "DreamParams.iterations" in errors[0] and "integer" in errors[0]
    assert '"iteration"' in errors[1]
    assert "LayerSelection.channels[2]" in errors[2]
    assert "only one of oneof data" in errors[3]
    assert "Audio.sample_rate" in errors[4]
    assert "truncated" in errors[5]


# ---------------------------------------------------------------- WAV

@pytest.mark.parametrize("subtype,fmt,channels", [
    ("PCM_16", "pcm16", 1), ("PCM_16", "pcm16", 2), ("FLOAT", "float", 2),
    ("PCM_24", "pcm24", 1), ("FLOAT", "float", 3)])
def test_wav_reads_what_soundfile_writes_and_back(lua, tmp_path, subtype, fmt, channels):
    """Exact both ways: integer PCM scales by 2^(bits-1) like libsndfile; 3
    channels make soundfile write WAVE_FORMAT_EXTENSIBLE."""
    x = tone(0.25, 22050, channels)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, 22050, subtype=subtype)
    info = lua.json('''
local wav = require "audiodream.wav"
local s = assert(wav.read(arg[1]))
assert(wav.write(arg[2], s.samples, s.sample_rate, s.channels, s.format))
print(json({rate = s.sample_rate, channels = s.channels, frames = s.frames, format = s.format,
            first = s.samples[1], last = s.samples[#s.samples]}))''', str(src), str(dst))
    expected, _ = sf.read(src, dtype="float64", always_2d=True)
    assert info == {"rate": 22050, "channels": channels, "frames": len(x), "format": fmt,
                    "first": expected[0, 0], "last": expected[-1, -1]}
    back, rate = sf.read(dst, dtype="float64", always_2d=True)
    assert rate == 22050 and sf.info(dst).subtype == subtype
    np.testing.assert_array_equal(back, expected)


def test_wav_writing_clamps_integer_formats_and_keeps_floats(lua, tmp_path):
    lua.run('''
local wav = require "audiodream.wav"
local x = {0.5, -0.5, 1.5, -1.5, 0.0, 1.0}
assert(wav.write(arg[1], x, 8000, 2, "pcm16"))
assert(wav.write(arg[2], x, 8000, 2, "float"))
assert(select(2, wav.write(arg[1], {1, 2, 3}, 8000, 2)):match("whole frames"))''',
            str(tmp_path / "a.wav"), str(tmp_path / "b.wav"))
    a, _ = sf.read(tmp_path / "a.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert a.tolist() == [[16384, -16384], [32767, -32768], [0, 32767]]
    assert b.ravel().tolist() == [0.5, -0.5, 1.5, -1.5, 0.0, 1.0]


# ---------------------------------------------------------------- against the server

def test_models_and_layers_match_the_python_client(lua, server_address, client):
    got = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 30}))
local models, default = assert(c:models())
local layers = {}
for _, m in ipairs(models) do layers[m.name] = assert(c:layers(m.name)) end
print(json({models = models, default = default, layers = layers,
            default_layers = assert(c:layers())}))''', server_address)
    models = client.models()
    assert [m["name"] for m in got["models"]] == [m.name for m in models]
    for lm, pm in zip(got["models"], models, strict=True):
        assert lm["is_default"] == pm.is_default
        assert (lm["sample_rate"], lm["fixed_input_samples"], lm["num_classes"],
                lm["parameters"], lm["trained"], lm["default_layer"], lm["description"]) == \
            (pm.sample_rate, pm.fixed_input_samples, pm.num_classes, pm.parameters,
             pm.trained, pm.default_layer, pm.description)
    assert got["default"] == next(m.name for m in models if m.is_default)
    assert got["default_layers"]["model"] == got["default"]
    for m in models:
        expected = client.layers(m.name)
        lua_layers = got["layers"][m.name]
        assert lua_layers["default_layer"] == expected.default_layer
        assert lua_layers["classes"] == expected.classes
        assert [(x["name"], x["module_type"], x["channels"], x["stride"])
                for x in lua_layers["layers"]] == \
            [(x.name, x.module_type, x.channels, x.stride) for x in expected.layers]
        assert [x["frame_rate"] for x in lua_layers["layers"]] == \
            pytest.approx([x.frame_rate for x in expected.layers], rel=1e-6)


@pytest.mark.parametrize("subtype,rate,channels", [("PCM_16", 44100, 2), ("FLOAT", 22050, 1)])
def test_example_dreams_a_wav_end_to_end(lua, server_address, client, tmp_path,
                                         subtype, rate, channels):
    x = tone(0.6, rate, channels)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, rate, subtype=subtype)
    out = lua.run_file(EXAMPLE, str(src), str(dst),
                  "--server", server_address, "--layer", "conv3:1,2@0.5", "--layer", "conv2",
                  "--iterations", "3", "--step-size", "0.05", "--seed", "7").stdout
    assert str(dst) in out and "3 iterations" in out
    info = sf.info(dst)
    assert (info.frames, info.samplerate, info.channels, info.subtype) == \
        (len(x), rate, channels, subtype)
    dreamed, _ = sf.read(dst, dtype="float32", always_2d=True)
    original, _ = sf.read(src, dtype="float32", always_2d=True)
    assert np.abs(dreamed - original).max() > 1e-3
    assert np.abs(dreamed).max() <= 1.0
    # The Python client, same request and seed: the same sound, up to one step of
    # a 16-bit file (rounding is half a step; a peak of +1.0 is stored as 32767).
    python = client.dream(original, rate, layers=["conv3:1,2@0.5", "conv2"], iterations=3,
                          step_size=0.05, seed=7).audio
    step = 1 / 32768 if subtype == "PCM_16" else 0.0
    np.testing.assert_allclose(dreamed, python, atol=step + 1e-7, rtol=0)


def test_dream_returns_a_full_result_and_progress(lua, server_address):
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 60}))
local x = {}
for i = 1, 8000 do x[i] = 0.3 * math.sin(i * 0.07) end
local plain = assert(c:dream{audio = x, sample_rate = 16000, iterations = 0})
local updates = {}
local r = assert(c:dream{audio = ad.pcm.pack(x), sample_rate = 16000, channels = 1,
  iterations = 4, seed = 1, step_size = 0.05, progress = function(u) updates[#updates + 1] = u end})
local x32 = ad.pcm.unpack(ad.pcm.pack(x)) -- what float32 transport makes of x
local same = #plain.audio == #x
for i = 1, #x do same = same and plain.audio[i] == x32[i] end
print(json({zero_is_input = same, frames = r.frames, n = #r.audio, rate = r.sample_rate,
  channels = r.channels, loss = r.loss, gain = r.output_gain, model = r.model,
  rms_in = r.input_features.rms, total = r.timing.total_seconds, iterations = r.params.iterations,
  updates = #updates, last_stage = updates[#updates].stage,
  last_iteration = updates[#updates].iteration,
  pcm_bytes = #r.pcm}))''', server_address)
    assert r["zero_is_input"], "a 0-iteration dream must return the input exactly"
    assert (r["frames"], r["n"], r["rate"], r["channels"], r["pcm_bytes"]) == \
        (8000, 8000, 16000, 1, 32000)
    assert len(r["loss"]) == 4 and r["iterations"] == 4 and r["model"]
    assert 0 < r["gain"] <= 1.0 and r["rms_in"] > 0.1 and r["total"] > 0
    assert r["updates"] >= 1 and r["last_iteration"] <= 4


def test_bad_requests_come_back_as_status_names(lua, server_address):
    errors = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 30}))
local x = {}
for i = 1, 4410 do x[i] = 0.1 end
local function err(r, e)
  assert(r == nil and e, "expected an error")
  return errjson(e)
end
local nan = {table.unpack(x)}
nan[100] = 0/0
print(json({
  unknown_model = err(c:dream{audio = x, sample_rate = 44100, model = "no-such-model"}),
  unknown_layers_model = err(c:layers("no-such-model")),
  nan = err(c:dream{audio = nan, sample_rate = 44100}),
  channel = err(c:dream{audio = x, sample_rate = 44100, layers = {"conv3:9999"}}),
  unknown_layer = err(c:dream{audio = x, sample_rate = 44100, layers = {{name = "nope"}}}),
  typo = err(c:dream{audio = x, sample_rate = 44100, iteration = 3}),
  no_rate = err(c:dream{audio = x}),
  after = #assert(c:models()),
}))''', server_address)
    assert errors["unknown_model"]["code"] == "NOT_FOUND"
    assert "no-such-model" in errors["unknown_model"]["message"]
    assert errors["unknown_model"]["number"] == 5
    assert errors["unknown_layers_model"]["code"] == "NOT_FOUND"
    assert errors["nan"]["code"] == "INVALID_ARGUMENT" and "NaN" in errors["nan"]["message"]
    assert errors["channel"]["code"] == "OUT_OF_RANGE"
    assert errors["unknown_layer"]["code"] == "NOT_FOUND"
    assert errors["typo"]["code"] == "INVALID_ARGUMENT"
    assert '"iteration"' in errors["typo"]["message"]
    assert errors["no_rate"]["code"] == "INVALID_ARGUMENT"
    assert errors["after"] >= 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_transport_survives_deadlines_cancels_and_long_headers(lua, server_address):
    """A lapsed deadline is DEADLINE_EXCEEDED and the connection stays usable;
    many calls on one connection (HPACK dynamic-table indices past 63) and a
    127-byte header value (lua-http 0.4 encodes both wrongly unless fixed)."""
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 30, metadata = {["x-padding"] = ("p"):rep(127)}}))
local x = {}
for i = 1, 44100 * 4 do x[i] = 0.2 * math.sin(i * 0.01) end
local _, late = c:dream{audio = x, sample_rate = 44100, iterations = 1000, timeout = 0.2}
local call = assert(c.channel:call("/audiodream.v1.DreamService/Dream", {timeout = false}))
assert(call:send(pb.encode("DreamRequest", {audio = {pcm = ad.pcm.pack(x), sample_rate = 44100,
  channels = 1}, params = {iterations = 1000}}), true))
local waited = call:receive(0.1)
call:cancel()
local _, cancelled = call:receive()
local names = {}
for i = 1, 40 do names[i] = assert(c:layers(i % 2 == 0 and "" or nil)).model end
local down, refused = ad.connect("127.0.0.1:" .. arg[2], {connect_timeout = 5})
print(json({late = errjson(late), waited = waited, cancelled = errjson(cancelled),
  names = #names, fixes = require "audiodream.http_fixes", refused = errjson(refused),
  bad_address = errjson(select(2, ad.connect("nowhere")))}))''',
                 server_address, str(free_port()))
    assert r["late"]["code"] == "DEADLINE_EXCEEDED"
    assert r["waited"] is False, "receive(wait) returns false while the call goes on"
    assert r["cancelled"]["code"] == "CANCELLED"
    assert r["names"] == 40
    assert r["refused"]["code"] == "UNAVAILABLE"
    assert r["bad_address"]["code"] == "INVALID_ARGUMENT"
    assert r["fixes"] == {"trailers": True, "hpack": True, "events": True}


def test_connection_outlives_calls_the_server_ends_first(lua, server_address):
    """A bidi call refused before the client half-closes ends with trailers and
    then RST_STREAM; lua-http must not take that late frame on a stream it has
    garbage-collected for a protocol error (the client keeps finished streams)."""
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 30}))
local bad = pb.encode("StreamRequest", {config = {sample_rate = 48000, block_size = 10}})
local codes = {}
for i = 1, 20 do
  local call = assert(c.channel:call("/audiodream.v1.DreamService/StreamDream"))
  assert(call:send(bad))
  local _, err = call:receive()
  call = nil
  collectgarbage()
  local models, err2 = c:models()
  codes[i] = models and err.code or tostring(err2)
end
print(json(codes))''', server_address)
    assert r == ["OUT_OF_RANGE"] * 20


def test_stream_dreams_blocks_in_order_and_takes_controls(lua, server_address):
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 30}))
local B = 1024
local s = assert(c:stream{sample_rate = 48000, channels = 1, block_size = B, iterations = 1,
  layers = {"conv3"}, offline = true})
local block = {}
for i = 1, B do block[i] = 0.2 * math.sin(i * 0.03) end
local seqs, sizes, kinds, warnings = {}, {}, {}, {}
local function collect(m, kind)
  kinds[kind] = (kinds[kind] or 0) + 1
  if kind == "audio" then seqs[#seqs + 1] = m.seq; sizes[#sizes + 1] = #m.samples end
  if kind == "warning" then warnings[#warnings + 1] = m.code end
end
for k = 1, 12 do
  assert(s:send(k % 2 == 0 and block or ad.pcm.pack(block)))
  if k == 6 then assert(s:control{iterations = 2, step_size = 0.01}) end
  if k == 8 then assert(s:control{mode = "no-such-mode"}) end
end
assert(s:close_send())
while true do
  local m, kind = s:receive(30)
  assert(m ~= false, "no reply in 30 s")
  if m == nil then assert(kind == nil, tostring(kind)); break end
  collect(m, kind)
end
local bad_config = select(2, c:stream{sample_rate = 48000, block_size = 10})
local bad_control = select(2, s:control{bogus = 1})
print(json({latency = s.latency_samples, ready_rate = s.ready.config.sample_rate,
  ready_block = s.ready.config.block_size, seqs = seqs, sizes = sizes, kinds = kinds,
  warnings = warnings, bad_config = errjson(bad_config), bad_control = errjson(bad_control)}))''',
                 server_address)
    assert r["ready_rate"] == 48000 and r["ready_block"] == 1024 and r["latency"] >= 1024
    assert r["seqs"] == list(range(12)) and r["sizes"] == [1024] * 12
    assert r["warnings"] and all(isinstance(w, str) for w in r["warnings"])
    assert r["bad_config"]["code"] == "OUT_OF_RANGE"
    assert r["bad_control"]["code"] == "INVALID_ARGUMENT"


@pytest.fixture()
def tls_server(tmp_path):
    """A TLS gRPC server (self-signed certificate for 127.0.0.1) answering ListModels."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    handler = grpc.method_handlers_generic_handler("audiodream.v1.DreamService", {
        "ListModels": grpc.unary_unary_rpc_method_handler(
            lambda request, context: pb.ListModelsResponse(default_model="over-tls"),
            request_deserializer=pb.ListModelsRequest.FromString,
            response_serializer=pb.ListModelsResponse.SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}", str(cert)
    server.stop(None)


def test_tls_verifies_the_server_certificate(lua, tls_server):
    address, cert = tls_server
    r = lua.json('''
local trusted = assert(ad.connect(arg[1], {ca_file = arg[2], timeout = 10}))
local _, default = assert(trusted:models())
local _, untrusted = ad.connect(arg[1], {tls = true, timeout = 10})
print(json({default = default, untrusted = errjson(untrusted)}))''', address, cert)
    assert r["default"] == "over-tls"
    assert r["untrusted"]["code"] == "UNAVAILABLE"
    assert "certificate verify failed" in r["untrusted"]["message"]


def test_classify_and_class_targets_from_lua(lua, server_address, client):
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 60}))
local x = {}
for i = 1, 44100 do x[i] = 0.3 * math.sin(i * 0.05) end
local heard = assert(c:classify{audio = x, sample_rate = 44100, model = "model2", top = 3})
local r = assert(c:dream{audio = x, sample_rate = 44100, model = "model2", iterations = 2,
  objective = "class", classes = {{name = "untrained_3", weight = 2}, {index = 5}},
  exclusive = true})
local names = {}
for i, s in ipairs(heard.scores) do names[i] = s.name end
local changes = {}
for i, ch in ipairs(r.class_changes) do changes[i] = ch.name end
print(json({names = names, activation = heard.activation, changes = changes,
  weight = r.params.classes[1].weight, exclusive = r.params.exclusive}))''', server_address)
    python = client.classify(0.3 * np.sin(np.arange(1, 44101) * 0.05).astype(np.float32),
                             44100, model="model2", top=3)
    assert r["names"] == [name for name, _, _ in python.scores]
    assert r["activation"] == "softmax"
    assert r["changes"] == ["untrained_3", "untrained_5"]
    assert r["weight"] == 2 and r["exclusive"] is True


# ---------------------------------------------------------------- several replicas

def test_several_replicas_a_failed_call_moves_to_the_next(lua, models):
    """Replicas "down, draining, up": connect skips the one that is down; Dream and
    StreamDream, refused UNAVAILABLE by the draining one, are made on the next."""
    from conftest import start_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there
    draining, draining_address = start_server(models)
    up, up_address = start_server(models)
    try:
        draining.drain(60.0)
        got = lua.json('''
local addresses = arg[1]
local samples = {}
for i = 1, 22050 do samples[i] = 0.3 * math.sin(2 * math.pi * 220 * i / 44100) end
local c = assert(ad.connect(addresses, {timeout = 60}))
local first = c.address
local models = assert(c:models())
local out = assert(c:dream{audio = samples, sample_rate = 44100, channels = 1, iterations = 1})
local c2 = assert(ad.connect(addresses, {timeout = 60}))
local s = assert(c2:stream{sample_rate = 44100, channels = 1, block_size = 2048, iterations = 1})
local stream_replica = s.ready.replica
s:close()
print(json({first = first, models = #models, replica = out.replica, after = c.address,
            frames = out.frames, stream_replica = stream_replica}))''',
                       ",".join([down, draining_address, up_address]))
    finally:
        draining.stop(None)
        up.stop(None)
    assert got["first"] == draining_address  # the one that is down was skipped
    assert got["models"] > 0  # the draining replica still answers questions
    assert got["after"] == up_address and got["frames"] == 22050
    port = up_address.rsplit(":", 1)[1]
    assert got["replica"].endswith(":" + port) and got["stream_replica"].endswith(":" + port)


def test_an_address_list_with_a_bad_entry_is_refused(lua):
    got = lua.json('''
local c, err = ad.connect("127.0.0.1:1,nonsense")
print(json({ok = c ~= nil, code = err and err.code, message = err and err.message}))''')
    assert not got["ok"] and got["code"] == "INVALID_ARGUMENT" and "nonsense" in got["message"]
