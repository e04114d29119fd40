/* dream_worker: one host object's live stream to an audiodream server.
 *
 * The part of dream~ (Pd) and Dream (SuperCollider) that is not about the
 * host: two lock-free rings between the audio thread and a worker thread, the
 * worker that owns the network (dream_client.h), reconnection with back-off,
 * parameter changes sent as Controls, the target sound, the stats.
 *
 * Three kinds of caller, one job each:
 *   the audio thread   dw_perform (or dw_perform_offline when not in real
 *                      time) and dw_set_number: copies and atomics only; it
 *                      never waits, allocates, locks or calls the system;
 *   the host's control thread(s)   every other dw_ function: they take the
 *                      worker's mutex briefly and never allocate under it;
 *   the worker         a thread started by dw_new, joined by dw_free. What it
 *                      has to say (state, latency, listings, errors) reaches
 *                      the host through the line callback, from the worker's
 *                      thread, with no lock held.
 *
 * Who may touch the rings is decided by a link state:
 *   OFF  nobody streams: perform outputs dry or silence, rings untouched;
 *   ARM  a fresh stream is ready: perform empties both rings, starts the
 *        pre-roll and sets ON (the worker waits meanwhile);
 *   ON   perform writes input and reads output, the worker the reverse.
 * Only the worker sets OFF and ARM, only perform sets ON, so each ring always
 * has one producer and one consumer.
 *
 * Latency: after ARM, perform outputs (block + preroll) zero frames before
 * the first reply, and the server's output trails its input by D frames
 * (StreamReady.latency_samples), so
 *     out[n] = dreamed(in)[n - (D + block + preroll)].
 * That sum is the latency reported.
 *
 * A late reply is never a hard gap. perform keeps the input in a delay line
 * and, for every frame the output ring cannot give, plays the dry input at
 * the latency in force (what a transparent stream would play), entered by
 * fading out the dream's last difference from it,
 *     out = dry[n - L] + (y_last - dry_last) * (1 - r),
 * and left by a crossfade back into the dream,
 *     out = (1 - r) * dry[n - L] + r * dreamed,
 * r a raised-cosine ramp over DW_CONCEAL_FADE frames. Each such gap counts as
 * one concealed block. The missing frames then either become latency (the
 * pre-roll adapts: it grows by them while the growth stays within `adapt`
 * frames and the pre-roll within DW_MAX_PREROLL, and the new latency is
 * reported), or, beyond that ceiling, are owed
 * and skipped when replies catch up, so the latency stays the reported one.
 * Only a latency longer than the delay line (DW_DRY_FRAMES) falls back to
 * silence, counted as an underrun. */
#ifndef DREAM_WORKER_H
#define DREAM_WORKER_H

#include <stddef.h>

#include "dream_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DW_MAX_CHANNELS 8       /* StreamConfig.channels */
#define DW_MIN_BLOCK 256
#define DW_MAX_BLOCK 8192
#define DW_MAX_PREROLL 32768
#define DW_TARGET 512           /* longest "host:port[,host:port...]" + 1 */
#define DW_CONCEAL_FADE 256     /* frames of each crossfade into and out of a concealment */
#define DW_DRY_FRAMES 131072    /* the dry delay line: the longest latency concealed */
#define DW_ADAPT_DEFAULT 0      /* frames the pre-roll may grow by after late replies (0: fixed) */

enum dw_state { DW_DISCONNECTED, DW_CONNECTING, DW_CONNECTED };
extern const char *const dw_state_names[];   /* "disconnected", ... */

/* What a line is for: the host's info output (words: selector then values),
 * a post, or an error. */
enum dw_line_kind { DW_LINE_INFO, DW_LINE_POST, DW_LINE_ERROR };
typedef void (*dw_line_fn)(void *ctx, int kind, const char *text);

/* The numeric parameters, settable from the audio thread: one table. */
enum dw_number {
    DW_ITERATIONS, DW_STEP, DW_MIX, DW_JITTER, DW_LOWPASS, DW_SMOOTHING, DW_SEED,
    DW_NUMBERS
};
typedef struct dw_number_info {
    const char *name;           /* as hosts spell it: "iterations", "step"... */
    unsigned bit;               /* DC_SET_* */
    float lo, hi;
} dw_number_info;
extern const dw_number_info dw_numbers[DW_NUMBERS];

/* Clamps v into the parameter's range (NaN -> lo); returns 1 if it had to. */
int dw_clamp_number(int which, float *v);
/* Writes v into the dc_params field of parameter `which` and sets its bit. */
void dw_number_to_params(dc_params *p, int which, float v);

/* Parses "NAME[@WEIGHT] [CH ...] NAME ..." (the text form hosts without
 * typed atoms use) into p's layers and sets DC_SET_LAYERS; -1 and a reason
 * in err when it cannot. */
int dw_parse_layers(dc_params *p, const char *text, char *err, size_t errlen);

typedef struct dw_options {
    const char *name;           /* prefix of posts: "dream~", "Dream" */
    const char *target;         /* "host:port", or replicas "host:port,host:port,..." */
    unsigned channels;          /* 1..DW_MAX_CHANNELS */
    unsigned rate;              /* Hz */
    unsigned block, preroll;    /* frames; fixed for the object when fixed_sizes */
    int fixed_sizes;            /* 1: rings sized for block/preroll only (dw_set_block refused) */
    int offline;                /* not real time: the server runs every iteration */
    int connect;                /* connect right away */
    const dc_params *params;    /* initial parameters, may be NULL */
    dw_line_fn line;            /* posts and errors, and info lines unless info_ring */
    void *ctx;
    int info_ring;              /* 1: info lines wait for dw_take_info instead */
} dw_options;

typedef struct dw_worker dw_worker;

/* Allocates, starts the thread. NULL (reason in err) on failure. Not for an
 * audio thread. */
dw_worker *dw_new(const dw_options *o, char *err, size_t errlen);
/* Tells the worker to quit, joins it, frees everything. */
void dw_free(dw_worker *w);

/* ---- control side (not the audio thread) ---- */
/* `target`: "host:port", or replicas of one service "host:port,host:port,...":
 * a stream that cannot open, is lost, or is told the replica is "draining"
 * goes on at once on the next one; the back-off starts once all have failed.
 * NULL: the same server(s). */
void dw_connect(dw_worker *w, const char *target);
/* Entry `index` (modulo their number) of a comma-separated list of targets,
 * copied to out; returns how many the list has (0: none, out is ""). */
int dw_replica(const char *list, unsigned index, char *out, size_t outlen);
void dw_disconnect(dw_worker *w);
void dw_change(dw_worker *w, const dc_params *p);    /* fields set in p */
void dw_model(dw_worker *w, const char *model);      /* back to its default layer */
void dw_default_layers(dw_worker *w);                /* reopens: a Control cannot say it */
void dw_reset(dw_worker *w);
void dw_set_rate(dw_worker *w, unsigned rate);       /* reopens on change */
int dw_set_block(dw_worker *w, unsigned block);      /* -1 if the rings cannot hold it */
int dw_set_preroll(dw_worker *w, unsigned preroll);
void dw_set_window(dw_worker *w, unsigned window);
void dw_set_delay(dw_worker *w, unsigned delay);     /* server delay, frames; reopens */
void dw_set_adapt(dw_worker *w, unsigned frames);    /* pre-roll growth ceiling, 0 = fixed */
void dw_query_models(dw_worker *w);                  /* answers arrive as lines */
void dw_query_layers(dw_worker *w, const char *model); /* NULL or "": the current model */

/* A target sound: allocate, fill pcm (mono), hand over with dw_set_sound
 * (which takes it; NULL clears). Never copied again under a lock. */
typedef struct dw_sound dw_sound;
dw_sound *dw_sound_new(size_t frames, unsigned rate);
float *dw_sound_pcm(dw_sound *snd);
void dw_set_sound(dw_worker *w, dw_sound *snd);

/* Everything in force, for printing. */
void dw_settings(dw_worker *w, dc_params *p, char *target, size_t targetlen,
                 unsigned *rate, unsigned *block, unsigned *preroll);

/* ---- any thread, lock-free ---- */
void dw_set_number(dw_worker *w, int which, float v);  /* sent at the next block */
void dw_set_dry(dw_worker *w, int dry);      /* not streaming: 1 = dry, 0 = silence */
void dw_set_bypass(dw_worker *w, int bypass);

typedef struct dw_report {
    int state;                  /* enum dw_state */
    int latency;                /* frames, valid while connected */
    unsigned long underruns;    /* this stream: gaps of silence (latency beyond the delay line) */
    unsigned long concealed;    /* this stream: gaps concealed with the dry signal */
    unsigned long concealed_frames;
    int grown;                  /* frames the pre-roll grew by (part of latency) */
    unsigned long overruns;     /* input dropped: the worker fell behind */
    unsigned long late;         /* server's late blocks */
    unsigned long dropped;      /* replies that found no room */
    unsigned long controls;     /* Controls sent on this stream */
    unsigned long blocks;       /* replies received on this stream */
    float iterations_run;       /* server's mean per block, last period */
    float rtt_ms, rtt_max_ms;   /* over the last second */
} dw_report;
void dw_get_report(dw_worker *w, dw_report *r);

/* ---- the audio thread ---- */

/* n frames of `channels` planar buffers; in and out must not overlap (hosts
 * that may hand the same memory copy the input first). */
void dw_perform(dw_worker *w, const float *const *in, float *const *out, size_t n);

/* With info_ring: copies the next info line into buf (NUL-terminated) and
 * returns its length, or 0 when there is none. Lock-free: for hosts whose
 * only way to their language is from the audio thread. */
size_t dw_take_info(dw_worker *w, char *buf, size_t size);

/* The same for a host that is not in real time: waits (up to timeout seconds
 * per call) for the stream to be up and for the dreamed frames, so no frame
 * is dry. Gives up on connecting once, with an error line, and then stops
 * waiting for a server that is not there. Returns 0 when every frame was
 * dreamed. */
int dw_perform_offline(dw_worker *w, const float *const *in, float *const *out,
                       size_t n, double timeout);

#ifdef __cplusplus
}
#endif

#endif
