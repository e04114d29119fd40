"""The Lua client's Morph call and morph-mode stream, in real Lua interpreters against a
real server holding the shipped autoencoder."""

from __future__ import annotations

import pytest
import torch

from audiodream_server.models.catalog import build_registry
from conftest import start_server
from test_lua_client import lua  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def ae_address():
    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), ["instruments-ae"])
    server, address = start_server(models)
    yield address
    server.stop(None)


def test_lua_morph_and_live_morph(lua, ae_address):  # noqa: F811 - the fixture
    r = lua.json('''
local c = assert(ad.connect(arg[1], {timeout = 60}))
local a, b = {}, {}
for i = 1, 22050 do
  local t = i / 44100
  a[i] = 0.3 * math.sin(2 * math.pi * 220 * t)
  b[i] = 0.0
  for k = 1, 12 do b[i] = b[i] + 0.04 * math.sin(2 * math.pi * 220 * k * t) end
end
local zero = assert(c:morph{a = {audio = a, sample_rate = 44100},
  b = {audio = b, sample_rate = 44100}, amount = 0})
local a32 = ad.pcm.unpack(ad.pcm.pack(a))
local worst = 0
for i = 1, #a do worst = math.max(worst, math.abs(zero.audio[i] - a32[i])) end
local glide = assert(c:morph{a = {audio = a, sample_rate = 44100},
  b = {audio = b, sample_rate = 44100}, curve = {0, 1}, interpolation = "spherical"})
local _, bad = c:morph{a = {audio = a, sample_rate = 44100},
  b = {audio = b, sample_rate = 44100}, amount = 2}
local _, unknown = c:morph{a = {audio = a, sample_rate = 44100},
  b = {audio = b, sample_rate = 44100}, amout = 0.5}
-- live: morph mode, the amount changed by a control
local B = 2048
local s = assert(c:stream{sample_rate = 44100, channels = 1, block_size = B,
  model = "instruments-ae", mode = "morph", morph_amount = 0, offline = true,
  target = {audio = b, sample_rate = 44100}})
local blocks = 0
for k = 0, 7 do
  local block = {}
  for i = 1, B do block[i] = a[(k * B + i - 1) % #a + 1] end
  assert(s:send(block))
  if k == 3 then assert(s:control{morph_amount = 1}) end
end
assert(s:close_send())
while true do
  local m, kind = s:receive(30)
  assert(m ~= false, "no reply in 30 s")
  if m == nil then break end
  if kind == "audio" then blocks = blocks + 1 end
end
print(json({worst = worst, frames = zero.frames, rate = zero.sample_rate,
  amounts_first = glide.amounts[1], amounts_last = glide.amounts[#glide.amounts],
  latent_size = glide.latent_size, bad = errjson(bad), unknown = errjson(unknown),
  blocks = blocks, latency = s.latency_samples}))''', ae_address)
    assert r["worst"] < 1e-4, "amount 0 must return A"
    assert (r["frames"], r["rate"], r["latent_size"]) == (22050, 44100, 128)
    assert r["amounts_first"] == 0 and r["amounts_last"] == 1
    assert r["bad"]["code"] == "OUT_OF_RANGE"
    assert r["unknown"]["code"] == "INVALID_ARGUMENT"
    assert r["blocks"] == 8 and r["latency"] == 2048
