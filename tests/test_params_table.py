"""The parameter table is the one description of a dream parameter: the proto,
the engine, the command line, the Lua schema and the C hosts agree with it."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
import re

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD

from conftest import serve_shipped
from sounds import tone

from audiodream import Client, ServerError, cli, dream_flags
from audiodream.client import PARAM_FIELDS, dream_params
from audiodream_proto.params import BY_NAME, PARAMS, STRUCTURED, STRUCTURED_LIVE
from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_server.engine import gradients, initial, loudness, morph, objectives, updates
from audiodream_server.engine.params import DreamParams, Limits, allowed
from audiodream_server.errors import InvalidArgument, OutOfRange
from audiodream_server.service import convert

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIELDS = pb.DreamParams.DESCRIPTOR.fields_by_name
KINDS = {FD.TYPE_INT32: int, FD.TYPE_UINT64: int, FD.TYPE_UINT32: int, FD.TYPE_FLOAT: float,
         FD.TYPE_STRING: str, FD.TYPE_BOOL: bool}
NUMERIC = [row for row in PARAMS if row.kind in (int, float) and not row.choices
           and (row.low is not None or row.high is not None or row.limit)]


def test_every_proto_field_has_a_row_or_is_structured():
    rows = [row.name for row in PARAMS]
    assert len(rows) == len(set(rows)), "a field has two rows"
    assert not set(rows) & set(STRUCTURED)
    assert sorted(rows + list(STRUCTURED)) == sorted(FIELDS), \
        "the table and DreamParams in the proto differ"


@pytest.mark.parametrize("row", PARAMS, ids=lambda r: r.name)
def test_a_row_agrees_with_its_proto_field(row):
    field = FIELDS[row.name]
    assert not field.is_repeated and field.message_type is None
    assert KINDS[field.type] is row.kind
    if row.choices:
        assert row.kind is str and row.default in row.choices
    if row.default is not None and row.kind in (int, float) and not row.choices:
        assert (row.low is None or row.low <= row.default) and \
            (row.high is None or row.default <= row.high)
    if row.flags:
        assert all(flag.startswith("--") for flag in row.flags) and row.cli_help
    assert not row.host or row.live, "a host message names a live control"
    assert not row.per_model or row.deferred


def test_the_engine_dataclass_holds_every_field_with_the_table_default():
    fields = {f.name: f.default for f in dataclasses.fields(DreamParams)}
    assert sorted(fields) == sorted(FIELDS)
    for row in PARAMS:
        assert fields[row.name] == (None if row.deferred else row.default), row.name


def test_choice_names_are_the_engine_registries():
    registries = {"objective": objectives.OBJECTIVES, "update": updates.UPDATES,
                  "init": initial.INITS, "grad_norm": gradients.GRAD_NORMS,
                  "loudness": loudness.LOUDNESS, "morph_interpolation": morph.INTERPOLATIONS}
    for name, registry in registries.items():
        assert BY_NAME[name].choices == tuple(registry), name
        assert allowed(name) == tuple(registry)


@pytest.mark.parametrize("row", NUMERIC, ids=lambda r: r.name)
def test_validation_follows_the_row_range(row):
    limits = Limits()
    high = getattr(limits, row.limit) if row.limit else row.high
    for edge in (row.low, high):
        if edge is not None:
            DreamParams(**_valid(row.name, row.kind(edge))).validate(limits)
    step = 1 if row.kind is int else max(abs(high or 1.0), 1.0) * 1e-3
    for outside in ((row.low - step) if row.low is not None else None,
                    (high + step) if high is not None else None):
        if outside is None:
            continue
        with pytest.raises(OutOfRange, match=rf"^{row.name} must be in "):
            DreamParams(**{row.name: row.kind(outside)}).validate(limits)
    if row.kind is float:
        with pytest.raises(InvalidArgument, match="finite"):
            DreamParams(**{row.name: math.nan}).validate(limits)


def _valid(name: str, value) -> dict:
    """`name` = value, with the fields it constrains made compatible (hop <= n_fft,
    odd kernel, even n_fft)."""
    values = {name: value}
    if name == "hop":
        values["n_fft"] = 16384
    if name == "smoothing_kernel" and value % 2 == 0:
        values[name] = value - 1 if value > 1 else value
    if name == "n_fft":
        values["hop"] = min(512, value)
    return values


@pytest.mark.parametrize("row", [r for r in PARAMS if r.choices], ids=lambda r: r.name)
def test_validation_lists_the_allowed_names(row):
    for name in row.choices:
        DreamParams(**{row.name: name}).validate()
    with pytest.raises(InvalidArgument, match=rf"unknown {row.name} 'nonsense'; allowed: "
                       + re.escape(", ".join(row.choices))):
        DreamParams(**{row.name: "nonsense"}).validate()


def _changed(row):
    """A valid value of `row` other than its default."""
    if row.choices:
        return next(c for c in row.choices if c and c != row.default)
    if row.kind is bool:
        return True
    if row.kind is str:
        return "x"
    if row.name == "smoothing_kernel":
        return 7
    if row.name == "n_fft":
        return 1024
    if row.name == "class_index":
        return 3
    low = row.low if row.low is not None else 0
    if row.kind is int:
        return low + 1 if low + 1 != row.default else low
    value = float(np.float32(low + 0.5))  # exact in the proto's float32
    return value if value != row.default else float(np.float32(low))


def test_proto_conversion_round_trips_every_row():
    values = {row.name: _changed(row) for row in PARAMS}
    params = DreamParams(model="m", **values)
    back = convert.params_from_proto(convert.params_to_proto(params))
    assert back == params
    # Unset fields keep the base (a stream's settings in force): a Control
    # setting one field changes only it.
    control = convert.params_from_proto(pb.DreamParams(mix=0.25), params)
    assert control == dataclasses.replace(params, mix=0.25)


@pytest.mark.parametrize("row", [r for r in PARAMS if r.flags], ids=lambda r: r.name)
def test_each_flag_sets_its_field(row):
    value = _changed(row)
    if row.const is not None:
        argv, value = [row.flags[0]], row.const
    else:
        argv = [row.flags[0], str(value)]
    args = cli.get_parser().parse_args(["dream", "in.wav", "out.wav", *argv])
    params = dream_flags.dream_params(args)
    assert params[row.name] == value
    assert all(v is None for k, v in params.items() if k not in (row.name, "objective"))
    assert set(params) <= set(PARAM_FIELDS)
    assert getattr(dream_params("", [], {row.name: value}), row.name) == value


def test_streams_refuse_exactly_the_offline_rows(capsys):
    offline = dict(dream_flags.offline_flags())
    assert offline == {row.name: row.flags[0] for row in PARAMS if row.offline} != {}
    for flag, value in (("--ceiling", "-1"), ("--loudness", "peak"),
                        ("--output-format", "wav"), ("--highpass", "40")):
        code = cli.main(["stream", "in.wav", "out.wav", flag, value])
        err = capsys.readouterr().err
        if flag in offline.values():
            assert code == 2 and f"{flag} applies to offline dreams" in err
        else:  # past the check: the missing file is what stops it
            assert "applies to offline" not in err and "in.wav" in err


def test_the_lua_schema_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("gen_lua_schema",
                                                  ROOT / "scripts" / "gen_lua_schema.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (ROOT / "clients" / "lua" / "audiodream" / "schema.lua").read_text()
    assert committed == gen.schema(), "schema.lua is stale: run `make proto`"


# The C hosts: the core's params_to_pb is the list of DreamParams fields a host
# sends live; Pd's dream~ has a message for each.

def _c_function(path: pathlib.Path, name: str) -> str:
    text = path.read_text()
    start = text.index(f"static void {name}(")
    end = text.index("\n}\n", start)
    return text[start:end]


def test_the_c_core_sends_exactly_the_live_rows():
    body = _c_function(ROOT / "clients" / "core" / "dream_client.c", "params_to_pb")
    named = set(re.findall(r"out->msg\.(\w+)\s*=", body))
    named |= set(re.findall(r"PB_SET\(out->msg,\s*(\w+),", body))
    named -= {f"n_{name}" for name in STRUCTURED}  # repeated fields' counts
    assert named, "params_to_pb not parsed"
    live = {row.name for row in PARAMS if row.live} | set(STRUCTURED_LIVE)
    assert named - live == set(), "the C core sends fields the table does not call live"
    assert live - named == set(), "live rows the C core cannot send"


def test_pd_has_a_message_for_each_live_row():
    text = (ROOT / "clients" / "pd" / "dream~.c").read_text()
    messages = set(re.findall(r'class_addmethod\(dream_class,[^;]*?gensym\("([^"]+)"\)',
                              text, re.S))
    for row in PARAMS:
        if row.live:
            assert row.host in messages, f"dream~ has no message {row.host!r} for {row.name}"


# The example the table exists for: `highpass_hz` was added as one proto field,
# one row and its engine code (engine/lowpass.py, ascent.py, melspace.py).

def _low_share(change: np.ndarray, rate: int, below_hz: float) -> float:
    """Share of `change`'s energy at or below `below_hz`."""
    # A Hann window: the FFT's wrap from the last sample to the first would
    # otherwise leak into every band.
    power = np.abs(np.fft.rfft(change.astype(np.float64) * np.hanning(change.size))) ** 2
    freqs = np.fft.rfftfreq(change.size, 1.0 / rate)
    return float(power[freqs <= below_hz].sum() / power.sum())


@pytest.fixture(scope="module")
def mel_address():
    """A real server holding the shipped mel-domain model, instruments-mel."""
    yield from serve_shipped("instruments-mel")


@pytest.mark.parametrize("domain", ["waveform", "mel"])
def test_highpass_keeps_the_dream_out_of_the_low_band(request, domain):
    address = request.getfixturevalue("server_address" if domain == "waveform"
                                      else "mel_address")
    with Client(address) as client:
        _check_highpass(client)


def _check_highpass(client):

    rate, corner = 44100, 1000.0
    x = tone(2.0, rate)[:, 0]
    common = dict(iterations=6, seed=1, output="change", loudness="off")
    plain = client.dream(x, rate, **common)
    cut = client.dream(x, rate, highpass_hz=corner, **common)
    assert cut.params.highpass_hz == corner and plain.params.highpass_hz == 0.0
    # The tone's fundamental and second harmonic (220, 440 Hz) lie in the stop
    # band (<= corner / 2): the plain dream changes them, the high-passed one does
    # not: the whole change is filtered once (offline), leaving float32 round-off.
    before = _low_share(plain.audio, rate, corner / 2)
    after = _low_share(cut.audio, rate, corner / 2)
    print(f"change's energy at or below {corner / 2:g} Hz: {before:.3g} -> {after:.3g}")
    assert before > 0.5 and after < 1e-6 * before
    # Above the corner the dream goes on (about as strong as without the filter).
    above = [(1 - _low_share(y.audio, rate, corner)) * np.sum(y.audio.astype(np.float64) ** 2)
             for y in (plain, cut)]
    assert above[1] > 0.1 * above[0] > 0


def test_a_bad_highpass_is_refused_with_its_range(client):
    with pytest.raises(ServerError) as err:
        client.dream(np.zeros(4410, np.float32), 44100, iterations=1, highpass_hz=-5.0)
    assert err.value.code == "OUT_OF_RANGE" and "highpass_hz must be in 0..1e+06" in str(err.value)
    assert client.models()  # the server goes on


def test_supercollider_names_only_live_rows_and_has_each_numeric_one():
    sc = (ROOT / "clients" / "supercollider" / "classes" / "Dream.sc").read_text()
    inputs = re.search(r"classvar <numbers = #\[([^\]]*)\]", sc).group(1)
    numbers = {name.strip().lstrip("\\") for name in inputs.split(",")}
    cpp = (ROOT / "clients" / "supercollider" / "Dream.cpp").read_text()
    commands = set(re.findall(r'!strcmp\(c->name, "([^"]+)"\)', cpp))
    hosts = {row.host for row in PARAMS if row.live}
    assert numbers and numbers <= hosts, "a Dream UGen input is not a live row"
    for row in PARAMS:
        if row.live and row.kind in (int, float):
            assert row.host in numbers | commands, f"Dream has no input or command for {row.name}"
