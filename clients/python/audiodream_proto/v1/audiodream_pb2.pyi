from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Audio(_message.Message):
    __slots__ = ("encoded", "pcm", "sample_rate", "channels", "format")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: bytes
    sample_rate: int
    channels: int
    format: str
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class LayerSelection(_message.Message):
    __slots__ = ("name", "channels", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    channels: _containers.RepeatedScalarFieldContainer[int]
    weight: float
    def __init__(self, name: _Optional[str] = ..., channels: _Optional[_Iterable[int]] = ..., weight: _Optional[float] = ...) -> None: ...

class DreamParams(_message.Message):
    __slots__ = ("model", "layers", "objective", "update", "iterations", "step_size", "seed", "init", "init_frequency_hz", "init_gain", "time_jitter", "lowpass_hz", "mix_original", "smoothing_coefficient", "smoothing_kernel", "grad_norm", "mix", "class_index", "class_name", "negate", "window_overlap", "output_format", "threshold", "power", "n_fft", "hop", "content_weight", "octaves", "octave_scale", "phase", "gl_iters", "follow_input", "output", "morph_amount", "morph_interpolation", "morph_detail", "loudness", "ceiling_db", "classes", "class_output", "exclusive", "auto_class", "highpass_hz")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    INIT_FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    INIT_GAIN_FIELD_NUMBER: _ClassVar[int]
    TIME_JITTER_FIELD_NUMBER: _ClassVar[int]
    LOWPASS_HZ_FIELD_NUMBER: _ClassVar[int]
    MIX_ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_KERNEL_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    MIX_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    N_FFT_FIELD_NUMBER: _ClassVar[int]
    HOP_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    OCTAVES_FIELD_NUMBER: _ClassVar[int]
    OCTAVE_SCALE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    GL_ITERS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MORPH_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MORPH_INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    MORPH_DETAIL_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_FIELD_NUMBER: _ClassVar[int]
    CEILING_DB_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLASS_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    AUTO_CLASS_FIELD_NUMBER: _ClassVar[int]
    HIGHPASS_HZ_FIELD_NUMBER: _ClassVar[int]
    model: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerSelection]
    objective: str
    update: str
    iterations: int
    step_size: float
    seed: int
    init: str
    init_frequency_hz: float
    init_gain: float
    time_jitter: int
    lowpass_hz: float
    mix_original: float
    smoothing_coefficient: float
    smoothing_kernel: int
    grad_norm: str
    mix: float
    class_index: int
    class_name: str
    negate: bool
    window_overlap: float
    output_format: str
    threshold: float
    power: float
    n_fft: int
    hop: int
    content_weight: float
    octaves: int
    octave_scale: float
    phase: str
    gl_iters: int
    follow_input: float
    output: str
    morph_amount: float
    morph_interpolation: str
    morph_detail: float
    loudness: str
    ceiling_db: float
    classes: _containers.RepeatedCompositeFieldContainer[ClassTarget]
    class_output: str
    exclusive: bool
    auto_class: str
    highpass_hz: float
    def __init__(self, model: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerSelection, _Mapping]]] = ..., objective: _Optional[str] = ..., update: _Optional[str] = ..., iterations: _Optional[int] = ..., step_size: _Optional[float] = ..., seed: _Optional[int] = ..., init: _Optional[str] = ..., init_frequency_hz: _Optional[float] = ..., init_gain: _Optional[float] = ..., time_jitter: _Optional[int] = ..., lowpass_hz: _Optional[float] = ..., mix_original: _Optional[float] = ..., smoothing_coefficient: _Optional[float] = ..., smoothing_kernel: _Optional[int] = ..., grad_norm: _Optional[str] = ..., mix: _Optional[float] = ..., class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., negate: _Optional[bool] = ..., window_overlap: _Optional[float] = ..., output_format: _Optional[str] = ..., threshold: _Optional[float] = ..., power: _Optional[float] = ..., n_fft: _Optional[int] = ..., hop: _Optional[int] = ..., content_weight: _Optional[float] = ..., octaves: _Optional[int] = ..., octave_scale: _Optional[float] = ..., phase: _Optional[str] = ..., gl_iters: _Optional[int] = ..., follow_input: _Optional[float] = ..., output: _Optional[str] = ..., morph_amount: _Optional[float] = ..., morph_interpolation: _Optional[str] = ..., morph_detail: _Optional[float] = ..., loudness: _Optional[str] = ..., ceiling_db: _Optional[float] = ..., classes: _Optional[_Iterable[_Union[ClassTarget, _Mapping]]] = ..., class_output: _Optional[str] = ..., exclusive: _Optional[bool] = ..., auto_class: _Optional[str] = ..., highpass_hz: _Optional[float] = ...) -> None: ...

class ClassTarget(_message.Message):
    __slots__ = ("name", "index", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    index: int
    weight: float
    def __init__(self, name: _Optional[str] = ..., index: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class ClassChange(_message.Message):
    __slots__ = ("name", "index", "before", "after")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    index: int
    before: float
    after: float
    def __init__(self, name: _Optional[str] = ..., index: _Optional[int] = ..., before: _Optional[float] = ..., after: _Optional[float] = ...) -> None: ...

class DreamRequest(_message.Message):
    __slots__ = ("audio", "params", "target")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    params: DreamParams
    target: Audio
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., params: _Optional[_Union[DreamParams, _Mapping]] = ..., target: _Optional[_Union[Audio, _Mapping]] = ...) -> None: ...

class Features(_message.Message):
    __slots__ = ("rms", "spectral_centroid_hz", "spectral_flatness", "spectral_flux")
    RMS_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_CENTROID_HZ_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_FLATNESS_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_FLUX_FIELD_NUMBER: _ClassVar[int]
    rms: float
    spectral_centroid_hz: float
    spectral_flatness: float
    spectral_flux: float
    def __init__(self, rms: _Optional[float] = ..., spectral_centroid_hz: _Optional[float] = ..., spectral_flatness: _Optional[float] = ..., spectral_flux: _Optional[float] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_seconds", "prepare_seconds", "dream_seconds", "total_seconds")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREPARE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DREAM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    prepare_seconds: float
    dream_seconds: float
    total_seconds: float
    def __init__(self, queue_seconds: _Optional[float] = ..., prepare_seconds: _Optional[float] = ..., dream_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class DreamResponse(_message.Message):
    __slots__ = ("audio", "loss", "input_features", "output_features", "timing", "output_gain", "model", "model_sample_rate", "windows", "params", "class_changes", "others_before", "others_after", "replica")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FEATURES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FEATURES_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_GAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CLASS_CHANGES_FIELD_NUMBER: _ClassVar[int]
    OTHERS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OTHERS_AFTER_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    loss: _containers.RepeatedScalarFieldContainer[float]
    input_features: Features
    output_features: Features
    timing: Timing
    output_gain: float
    model: str
    model_sample_rate: int
    windows: int
    params: DreamParams
    class_changes: _containers.RepeatedCompositeFieldContainer[ClassChange]
    others_before: float
    others_after: float
    replica: str
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., loss: _Optional[_Iterable[float]] = ..., input_features: _Optional[_Union[Features, _Mapping]] = ..., output_features: _Optional[_Union[Features, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., output_gain: _Optional[float] = ..., model: _Optional[str] = ..., model_sample_rate: _Optional[int] = ..., windows: _Optional[int] = ..., params: _Optional[_Union[DreamParams, _Mapping]] = ..., class_changes: _Optional[_Iterable[_Union[ClassChange, _Mapping]]] = ..., others_before: _Optional[float] = ..., others_after: _Optional[float] = ..., replica: _Optional[str] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("audio", "model", "top", "output")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    model: str
    top: int
    output: str
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., model: _Optional[str] = ..., top: _Optional[int] = ..., output: _Optional[str] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("name", "index", "score")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    index: int
    score: float
    def __init__(self, name: _Optional[str] = ..., index: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "output", "scores", "activation", "windows")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    model: str
    output: str
    scores: _containers.RepeatedCompositeFieldContainer[ClassScore]
    activation: str
    windows: int
    def __init__(self, model: _Optional[str] = ..., output: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., activation: _Optional[str] = ..., windows: _Optional[int] = ...) -> None: ...

class DreamProgressUpdate(_message.Message):
    __slots__ = ("stage", "iteration", "iterations", "loss", "elapsed_seconds", "replica")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    stage: str
    iteration: int
    iterations: int
    loss: float
    elapsed_seconds: float
    replica: str
    def __init__(self, stage: _Optional[str] = ..., iteration: _Optional[int] = ..., iterations: _Optional[int] = ..., loss: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ..., replica: _Optional[str] = ...) -> None: ...

class DreamEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: DreamProgressUpdate
    result: DreamResponse
    def __init__(self, progress: _Optional[_Union[DreamProgressUpdate, _Mapping]] = ..., result: _Optional[_Union[DreamResponse, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "sample_rate", "fixed_input_samples", "description", "device", "num_classes", "trained", "default_layer", "domain", "parameters", "error", "pending")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    FIXED_INPUT_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LAYER_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_rate: int
    fixed_input_samples: int
    description: str
    device: str
    num_classes: int
    trained: bool
    default_layer: str
    domain: str
    parameters: int
    error: str
    pending: bool
    def __init__(self, name: _Optional[str] = ..., sample_rate: _Optional[int] = ..., fixed_input_samples: _Optional[int] = ..., description: _Optional[str] = ..., device: _Optional[str] = ..., num_classes: _Optional[int] = ..., trained: _Optional[bool] = ..., default_layer: _Optional[str] = ..., domain: _Optional[str] = ..., parameters: _Optional[int] = ..., error: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class ListLayersRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class LayerInfo(_message.Message):
    __slots__ = ("name", "module_type", "channels", "frame_rate", "stride")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODULE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    module_type: str
    channels: int
    frame_rate: float
    stride: int
    def __init__(self, name: _Optional[str] = ..., module_type: _Optional[str] = ..., channels: _Optional[int] = ..., frame_rate: _Optional[float] = ..., stride: _Optional[int] = ...) -> None: ...

class ListLayersResponse(_message.Message):
    __slots__ = ("model", "layers", "classes", "sample_rate", "default_layer", "domain")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LAYER_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    classes: _containers.RepeatedScalarFieldContainer[str]
    sample_rate: int
    default_layer: str
    domain: str
    def __init__(self, model: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., classes: _Optional[_Iterable[str]] = ..., sample_rate: _Optional[int] = ..., default_layer: _Optional[str] = ..., domain: _Optional[str] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("params", "sample_rate", "channels", "block_size", "window", "mode", "target", "delay", "offline", "slack", "transport_ms")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    SLACK_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_MS_FIELD_NUMBER: _ClassVar[int]
    params: DreamParams
    sample_rate: int
    channels: int
    block_size: int
    window: int
    mode: str
    target: Audio
    delay: int
    offline: bool
    slack: int
    transport_ms: float
    def __init__(self, params: _Optional[_Union[DreamParams, _Mapping]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., block_size: _Optional[int] = ..., window: _Optional[int] = ..., mode: _Optional[str] = ..., target: _Optional[_Union[Audio, _Mapping]] = ..., delay: _Optional[int] = ..., offline: _Optional[bool] = ..., slack: _Optional[int] = ..., transport_ms: _Optional[float] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("seq", "pcm")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    seq: int
    pcm: bytes
    def __init__(self, seq: _Optional[int] = ..., pcm: _Optional[bytes] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("params", "reset", "mode", "target")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    params: DreamParams
    reset: bool
    mode: str
    target: Audio
    def __init__(self, params: _Optional[_Union[DreamParams, _Mapping]] = ..., reset: _Optional[bool] = ..., mode: _Optional[str] = ..., target: _Optional[_Union[Audio, _Mapping]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("config", "audio", "control")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: AudioChunk
    control: Control
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., control: _Optional[_Union[Control, _Mapping]] = ...) -> None: ...

class StreamReady(_message.Message):
    __slots__ = ("config", "latency_samples", "model", "model_sample_rate", "replica")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    latency_samples: int
    model: str
    model_sample_rate: int
    replica: str
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., latency_samples: _Optional[int] = ..., model: _Optional[str] = ..., model_sample_rate: _Optional[int] = ..., replica: _Optional[str] = ...) -> None: ...

class StreamStats(_message.Message):
    __slots__ = ("blocks", "mean_block_seconds", "max_block_seconds", "real_time_factor", "late_blocks", "iterations_run", "capacity_used")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    MEAN_BLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    LATE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_RUN_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_USED_FIELD_NUMBER: _ClassVar[int]
    blocks: int
    mean_block_seconds: float
    max_block_seconds: float
    real_time_factor: float
    late_blocks: int
    iterations_run: float
    capacity_used: float
    def __init__(self, blocks: _Optional[int] = ..., mean_block_seconds: _Optional[float] = ..., max_block_seconds: _Optional[float] = ..., real_time_factor: _Optional[float] = ..., late_blocks: _Optional[int] = ..., iterations_run: _Optional[float] = ..., capacity_used: _Optional[float] = ...) -> None: ...

class StreamWarning(_message.Message):
    __slots__ = ("code", "message", "seq")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    seq: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("ready", "audio", "stats", "warning")
    READY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    ready: StreamReady
    audio: AudioChunk
    stats: StreamStats
    warning: StreamWarning
    def __init__(self, ready: _Optional[_Union[StreamReady, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., stats: _Optional[_Union[StreamStats, _Mapping]] = ..., warning: _Optional[_Union[StreamWarning, _Mapping]] = ...) -> None: ...

class MorphParams(_message.Message):
    __slots__ = ("model", "amount", "curve", "group_amounts", "interpolation", "phase", "gl_iters", "detail", "output_format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURVE_FIELD_NUMBER: _ClassVar[int]
    GROUP_AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    GL_ITERS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    amount: float
    curve: _containers.RepeatedScalarFieldContainer[float]
    group_amounts: _containers.RepeatedScalarFieldContainer[float]
    interpolation: str
    phase: str
    gl_iters: int
    detail: float
    output_format: str
    def __init__(self, model: _Optional[str] = ..., amount: _Optional[float] = ..., curve: _Optional[_Iterable[float]] = ..., group_amounts: _Optional[_Iterable[float]] = ..., interpolation: _Optional[str] = ..., phase: _Optional[str] = ..., gl_iters: _Optional[int] = ..., detail: _Optional[float] = ..., output_format: _Optional[str] = ...) -> None: ...

class MorphRequest(_message.Message):
    __slots__ = ("a", "b", "params")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    a: Audio
    b: Audio
    params: MorphParams
    def __init__(self, a: _Optional[_Union[Audio, _Mapping]] = ..., b: _Optional[_Union[Audio, _Mapping]] = ..., params: _Optional[_Union[MorphParams, _Mapping]] = ...) -> None: ...

class MorphResponse(_message.Message):
    __slots__ = ("audio", "a_features", "b_features", "output_features", "timing", "output_gain", "model", "latent_frames", "latent_frame_rate", "latent_size", "params", "amounts")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    A_FEATURES_FIELD_NUMBER: _ClassVar[int]
    B_FEATURES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FEATURES_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_GAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LATENT_FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENT_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    a_features: Features
    b_features: Features
    output_features: Features
    timing: Timing
    output_gain: float
    model: str
    latent_frames: int
    latent_frame_rate: float
    latent_size: int
    params: MorphParams
    amounts: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., a_features: _Optional[_Union[Features, _Mapping]] = ..., b_features: _Optional[_Union[Features, _Mapping]] = ..., output_features: _Optional[_Union[Features, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., output_gain: _Optional[float] = ..., model: _Optional[str] = ..., latent_frames: _Optional[int] = ..., latent_frame_rate: _Optional[float] = ..., latent_size: _Optional[int] = ..., params: _Optional[_Union[MorphParams, _Mapping]] = ..., amounts: _Optional[_Iterable[float]] = ...) -> None: ...
