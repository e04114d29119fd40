--- The protobuf messages of audiodream.v1, as data for the codec in pb.lua.
--
-- Generated from proto/audiodream/v1/audiodream.proto by
-- scripts/gen_lua_schema.py (`make proto`); do not edit. A test fails when
-- this file differs from what the script writes.
--
-- Each message is a list of fields {number, name, type, label}:
--   type   a scalar ("string", "bytes", "bool", "int32", "uint32", "uint64",
--          "float", "double") or the name of another message here;
--   label  nil        proto3 implicit presence: the default (0, "", false) is
--                     not written and is filled in on decode;
--          "optional" explicit presence: written whenever the Lua value is
--                     non-nil (0 included), nil on decode when absent;
--          "repeated" a Lua array; int32/float are written packed;
--          "oneof:N"  member of oneof N: written when non-nil, one at a time.
-- Message-typed fields always have presence (nil = absent, {} = empty).

local S = {}

S.Audio = {
  {1, "encoded", "bytes", "oneof:data"},
  {2, "pcm", "bytes", "oneof:data"},
  {3, "sample_rate", "uint32"},
  {4, "channels", "uint32"},
  {5, "format", "string"},
}

S.LayerSelection = {
  {1, "name", "string"},
  {2, "channels", "int32", "repeated"},
  {3, "weight", "float", "optional"},
}

S.DreamParams = {
  {1, "model", "string"},
  {2, "layers", "LayerSelection", "repeated"},
  {3, "objective", "string"},
  {4, "update", "string"},
  {5, "iterations", "int32", "optional"},
  {6, "step_size", "float", "optional"},
  {7, "seed", "uint64", "optional"},
  {8, "init", "string"},
  {9, "init_frequency_hz", "float", "optional"},
  {10, "init_gain", "float", "optional"},
  {11, "time_jitter", "int32", "optional"},
  {12, "lowpass_hz", "float", "optional"},
  {13, "mix_original", "float", "optional"},
  {14, "smoothing_coefficient", "float", "optional"},
  {15, "smoothing_kernel", "int32", "optional"},
  {16, "grad_norm", "string"},
  {17, "mix", "float", "optional"},
  {18, "class_index", "int32", "optional"},
  {19, "class_name", "string"},
  {20, "negate", "bool"},
  {21, "window_overlap", "float", "optional"},
  {22, "output_format", "string"},
  {23, "threshold", "float", "optional"},
  {24, "power", "float", "optional"},
  {25, "n_fft", "int32", "optional"},
  {26, "hop", "int32", "optional"},
  {27, "content_weight", "float", "optional"},
  {28, "octaves", "int32", "optional"},
  {29, "octave_scale", "float", "optional"},
  {30, "phase", "string"},
  {31, "gl_iters", "int32", "optional"},
  {32, "follow_input", "float", "optional"},
  {33, "output", "string"},
  {50, "morph_amount", "float", "optional"},
  {51, "morph_interpolation", "string"},
  {52, "morph_detail", "float", "optional"},
  {80, "loudness", "string"},
  {81, "ceiling_db", "float", "optional"},
  {40, "classes", "ClassTarget", "repeated"},
  {41, "class_output", "string"},
  {42, "exclusive", "bool"},
  {43, "auto_class", "string"},
  {100, "highpass_hz", "float", "optional"},
}

S.ClassTarget = {
  {1, "name", "string"},
  {2, "index", "int32", "optional"},
  {3, "weight", "float", "optional"},
}

S.ClassChange = {
  {1, "name", "string"},
  {2, "index", "uint32"},
  {3, "before", "float"},
  {4, "after", "float"},
}

S.DreamRequest = {
  {1, "audio", "Audio"},
  {2, "params", "DreamParams"},
  {3, "target", "Audio"},
}

S.Features = {
  {1, "rms", "float"},
  {2, "spectral_centroid_hz", "float"},
  {3, "spectral_flatness", "float"},
  {4, "spectral_flux", "float"},
}

S.Timing = {
  {1, "queue_seconds", "double"},
  {2, "prepare_seconds", "double"},
  {3, "dream_seconds", "double"},
  {4, "total_seconds", "double"},
}

S.DreamResponse = {
  {1, "audio", "Audio"},
  {2, "loss", "float", "repeated"},
  {3, "input_features", "Features"},
  {4, "output_features", "Features"},
  {5, "timing", "Timing"},
  {6, "output_gain", "float"},
  {7, "model", "string"},
  {8, "model_sample_rate", "uint32"},
  {9, "windows", "uint32"},
  {10, "params", "DreamParams"},
  {40, "class_changes", "ClassChange", "repeated"},
  {41, "others_before", "float"},
  {42, "others_after", "float"},
  {71, "replica", "string"},
}

S.ClassifyRequest = {
  {1, "audio", "Audio"},
  {2, "model", "string"},
  {3, "top", "uint32"},
  {4, "output", "string"},
}

S.ClassScore = {
  {1, "name", "string"},
  {2, "index", "uint32"},
  {3, "score", "float"},
}

S.ClassifyResponse = {
  {1, "model", "string"},
  {2, "output", "string"},
  {3, "scores", "ClassScore", "repeated"},
  {4, "activation", "string"},
  {5, "windows", "uint32"},
}

S.DreamProgressUpdate = {
  {1, "stage", "string"},
  {2, "iteration", "int32"},
  {3, "iterations", "int32"},
  {4, "loss", "float"},
  {5, "elapsed_seconds", "double"},
  {72, "replica", "string"},
}

S.DreamEvent = {
  {1, "progress", "DreamProgressUpdate", "oneof:event"},
  {2, "result", "DreamResponse", "oneof:event"},
}

S.ListModelsRequest = {}

S.ModelInfo = {
  {1, "name", "string"},
  {2, "sample_rate", "uint32"},
  {3, "fixed_input_samples", "uint32"},
  {4, "description", "string"},
  {5, "device", "string"},
  {6, "num_classes", "uint32"},
  {7, "trained", "bool"},
  {8, "default_layer", "string"},
  {9, "domain", "string"},
  {10, "parameters", "uint64"},
  {11, "error", "string"},
  {80, "pending", "bool"},
}

S.ListModelsResponse = {
  {1, "models", "ModelInfo", "repeated"},
  {2, "default_model", "string"},
}

S.ListLayersRequest = {
  {1, "model", "string"},
}

S.LayerInfo = {
  {1, "name", "string"},
  {2, "module_type", "string"},
  {3, "channels", "uint32"},
  {4, "frame_rate", "float"},
  {5, "stride", "uint32"},
}

S.ListLayersResponse = {
  {1, "model", "string"},
  {2, "layers", "LayerInfo", "repeated"},
  {3, "classes", "string", "repeated"},
  {4, "sample_rate", "uint32"},
  {5, "default_layer", "string"},
  {6, "domain", "string"},
}

S.StreamConfig = {
  {1, "params", "DreamParams"},
  {2, "sample_rate", "uint32"},
  {3, "channels", "uint32"},
  {4, "block_size", "uint32"},
  {5, "window", "uint32"},
  {6, "mode", "string"},
  {7, "target", "Audio"},
  {8, "delay", "uint32"},
  {9, "offline", "bool"},
  {90, "slack", "uint32"},
  {91, "transport_ms", "float"},
}

S.AudioChunk = {
  {1, "seq", "uint64"},
  {2, "pcm", "bytes"},
}

S.Control = {
  {1, "params", "DreamParams"},
  {2, "reset", "bool"},
  {3, "mode", "string"},
  {4, "target", "Audio"},
}

S.StreamRequest = {
  {1, "config", "StreamConfig", "oneof:msg"},
  {2, "audio", "AudioChunk", "oneof:msg"},
  {3, "control", "Control", "oneof:msg"},
}

S.StreamReady = {
  {1, "config", "StreamConfig"},
  {2, "latency_samples", "uint32"},
  {3, "model", "string"},
  {4, "model_sample_rate", "uint32"},
  {70, "replica", "string"},
}

S.StreamStats = {
  {1, "blocks", "uint64"},
  {2, "mean_block_seconds", "double"},
  {3, "max_block_seconds", "double"},
  {4, "real_time_factor", "double"},
  {5, "late_blocks", "uint64"},
  {6, "iterations_run", "float"},
  {90, "capacity_used", "float"},
}

S.StreamWarning = {
  {1, "code", "string"},
  {2, "message", "string"},
  {3, "seq", "uint64"},
}

S.StreamResponse = {
  {1, "ready", "StreamReady", "oneof:msg"},
  {2, "audio", "AudioChunk", "oneof:msg"},
  {3, "stats", "StreamStats", "oneof:msg"},
  {4, "warning", "StreamWarning", "oneof:msg"},
}

S.MorphParams = {
  {1, "model", "string"},
  {2, "amount", "float", "optional"},
  {3, "curve", "float", "repeated"},
  {4, "group_amounts", "float", "repeated"},
  {5, "interpolation", "string"},
  {6, "phase", "string"},
  {7, "gl_iters", "int32", "optional"},
  {8, "detail", "float", "optional"},
  {9, "output_format", "string"},
}

S.MorphRequest = {
  {1, "a", "Audio"},
  {2, "b", "Audio"},
  {3, "params", "MorphParams"},
}

S.MorphResponse = {
  {1, "audio", "Audio"},
  {2, "a_features", "Features"},
  {3, "b_features", "Features"},
  {4, "output_features", "Features"},
  {5, "timing", "Timing"},
  {6, "output_gain", "float"},
  {7, "model", "string"},
  {8, "latent_frames", "uint32"},
  {9, "latent_frame_rate", "float"},
  {10, "latent_size", "uint32"},
  {11, "params", "MorphParams"},
  {12, "amounts", "float", "repeated"},
}

return S
