/* dream_client: the network side of dream~ and Dream, free of any host header.
 *
 * It owns one StreamDream call of proto/audiodream/v1/audiodream.proto and
 * makes the unary ListModels / ListLayers calls. The transport (gRPC core
 * today) stays behind this API so it can be swapped without touching a host.
 *
 * Threading: a dc_stream is driven by one thread at a time (a host's worker);
 * nothing here is called from an audio callback. dc_global_init() once per
 * process before anything else. */
#ifndef DREAM_CLIENT_H
#define DREAM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DC_NAME 64               /* longest model / layer name + 1 */
#define DC_MAX_LAYERS 8          /* layers combined in one objective */
#define DC_MAX_LAYER_CHANNELS 64 /* feature maps picked per layer */
#define DC_MAX_MODELS 32
#define DC_MAX_LAYER_INFO 64
#define DC_TEXT 256
#define DC_MAX_CLASSES 16        /* classes (tags, notes) named in one class objective */

/* One layer to amplify: its feature maps (none = all) and weight. */
typedef struct dc_layer {
    char name[DC_NAME];
    int nchannels;
    int32_t channels[DC_MAX_LAYER_CHANNELS];
    float weight;                /* 1 = plain */
} dc_layer;

/* One class of a class objective: a name (tag, note "C4", or digits: an
 * index / MIDI number as the model reads it) and a weight. */
typedef struct dc_class {
    char name[DC_NAME];
    float weight;                /* 1 = plain; negative pushes away */
} dc_class;

/* Which fields of dc_params carry a value; the others mean "the server's
 * default" in a config and "unchanged" in a control. */
enum {
    DC_SET_MODEL = 1 << 0,
    DC_SET_LAYERS = 1 << 1,
    DC_SET_ITERATIONS = 1 << 2,
    DC_SET_STEP = 1 << 3,
    DC_SET_MIX = 1 << 4,
    DC_SET_JITTER = 1 << 5,
    DC_SET_LOWPASS = 1 << 6,
    DC_SET_SMOOTHING = 1 << 7,
    DC_SET_MODE = 1 << 8,
    DC_SET_SEED = 1 << 9,
    DC_SET_OBJECTIVE = 1 << 10,
    DC_SET_UPDATE = 1 << 11,
    DC_SET_WINDOW = 1 << 12,
    DC_SET_MORPH = 1 << 16,
    DC_SET_CLASSES = 1 << 13,
    DC_SET_EXCLUSIVE = 1 << 14,
    DC_SET_AUTO_CLASS = 1 << 15,
    DC_SET_DELAY = 1 << 17
};

/* The dream parameters a host changes live (a subset of DreamParams). */
typedef struct dc_params {
    unsigned set;                /* DC_SET_* bits */
    char model[DC_NAME];
    int nlayers;
    dc_layer layers[DC_MAX_LAYERS];
    int iterations;              /* per block, 0..server limit */
    float step_size;             /* relative to the normalised gradient, 0..10 */
    float mix;                   /* dry/wet, 0..1 */
    int time_jitter;             /* model samples, >= 0 */
    float lowpass_hz;            /* 0 = off */
    float smoothing;             /* cascade Gaussian coefficient, 0..10 */
    char mode[16];               /* "process", "generate" or "morph" */
    uint64_t seed;
    char objective[24];          /* "activation", "mean", "style", ... */
    char update[24];             /* "add", "hardcut", "target_filter", ... */
    unsigned window;             /* context frames per block, 0 = the server's (opens only) */
    float morph_amount;          /* morph mode: 0 = the input .. 1 = the target's code */
    int nclasses;                /* class objective: the classes named */
    dc_class classes[DC_MAX_CLASSES];
    int exclusive;               /* 1: also away from the classes not named (cannot be
                                    turned off by a control: proto3 false = unchanged) */
    char auto_class[8];          /* "step" or "input": what the model hears most */
    unsigned delay;              /* server output delay, frames, 0 = one block (opens only) */
} dc_params;

/* Copies the fields set in `src` over `dst` (a control applied to a config). */
void dc_params_merge(dc_params *dst, const dc_params *src);

typedef enum dc_event_kind {
    DC_EV_READY,                 /* the stream is open: latency, model */
    DC_EV_AUDIO,                 /* one dreamed block */
    DC_EV_STATS,                 /* the server's periodic measurements */
    DC_EV_WARNING,               /* in-band: a control ignored, a block degraded... */
    DC_EV_CLOSED                 /* the call ended; code and text say why */
} dc_event_kind;

typedef struct dc_event {
    dc_event_kind kind;
    /* AUDIO: pcm (interleaved) stays valid until the next dc_stream_poll */
    uint64_t seq;
    const float *pcm;
    size_t frames;
    /* READY */
    unsigned latency;            /* frames at the client rate */
    unsigned block_size;
    unsigned model_rate;         /* Hz */
    char model[DC_NAME];
    /* STATS */
    uint64_t blocks, late_blocks;
    double real_time_factor;
    float iterations_run;
    /* WARNING: code ("degraded"...); CLOSED: status name ("UNAVAILABLE"...) */
    char code[32];
    char text[DC_TEXT];
} dc_event;

typedef struct dc_stream dc_stream;

/* What a stream is opened with and keeps until it ends. */
typedef struct dc_stream_config {
    unsigned sample_rate;        /* Hz */
    unsigned channels;           /* 1..8, interleaved in every block */
    unsigned block_size;         /* frames per message */
    int offline;                 /* 1 = the server runs every iteration, however long */
    unsigned slack;              /* frames the host waits for a reply after a block (pre-roll) */
} dc_stream_config;

/* Opens a StreamDream call to `target` ("host:port") and sends its config;
 * does not wait for the server. Returns NULL (and a reason in err) only when
 * the call cannot even be created; an unreachable server shows up later as a
 * DC_EV_CLOSED event. */
dc_stream *dc_stream_open(const char *target, const dc_stream_config *config,
                          const dc_params *params, char *err, size_t errlen);

/* Queues one block of `frames` interleaved frames. Never waits: returns -1
 * when the outgoing queue is full or the call has ended. */
int dc_stream_send_audio(dc_stream *s, uint64_t seq, const float *pcm, size_t frames);

/* Queues a Control with the fields set in `changes` (may be NULL) and an
 * optional state reset. Returns -1 when it cannot be queued. */
int dc_stream_send_control(dc_stream *s, const dc_params *changes, int reset);

/* Queues a Control carrying a target sound: `frames` mono samples at `rate` Hz
 * (objectives "style"/"target_features" and the "target_filter" update). */
int dc_stream_send_target(dc_stream *s, const float *pcm, size_t frames, unsigned rate);

/* Messages queued but not yet handed to the transport. */
int dc_stream_backlog(const dc_stream *s);

/* Waits up to timeout_ms for the next event. Returns 1 with *ev filled, 0 on
 * timeout. After DC_EV_CLOSED every call returns that event again. */
int dc_stream_poll(dc_stream *s, dc_event *ev, int timeout_ms);

/* Cancels the call if still open and frees everything. */
void dc_stream_close(dc_stream *s);

/* ---- unary listings ---- */

typedef struct dc_model_info {
    char name[DC_NAME];
    unsigned sample_rate;        /* Hz */
    unsigned fixed_input_samples;/* 0 = any length */
    char default_layer[DC_NAME];
    int trained;
} dc_model_info;

typedef struct dc_models {
    char default_model[DC_NAME];
    int n;
    dc_model_info models[DC_MAX_MODELS];
} dc_models;

typedef struct dc_layer_info {
    char name[DC_NAME];
    char module_type[32];
    unsigned channels;           /* feature maps */
    float frame_rate;            /* Hz */
} dc_layer_info;

typedef struct dc_layers {
    char model[DC_NAME];
    char default_layer[DC_NAME];
    unsigned sample_rate;
    int n;
    dc_layer_info layers[DC_MAX_LAYER_INFO];
} dc_layers;

/* Blocking, bounded by timeout_ms. Return 0 on success, else -1 with err. */
int dc_list_models(const char *target, int timeout_ms, dc_models *out,
                   char *err, size_t errlen);
int dc_list_layers(const char *target, const char *model, int timeout_ms,
                   dc_layers *out, char *err, size_t errlen);

/* Once per process, before any other call. */
void dc_global_init(void);

/* Monotonic seconds, for hosts that time things against the stream. */
double dc_now(void);

#ifdef __cplusplus
}
#endif

#endif
