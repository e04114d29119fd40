/* dream_worker: the worker thread, the rings and perform (see dream_worker.h).
 *
 * The worker's life: wait for a reason to stream; open a stream and wait for
 * StreamReady; arm the rings; then, until asked to stop or the call ends,
 * send parameter changes, the target sound and every full block of input, and
 * move replies to the output ring; back off (0.5 s doubling to 5 s) after a
 * failure and try again. Given several replicas ("host:port,host:port"), a
 * stream that fails, is lost or is told "draining" tries the next replica at
 * once; the back-off starts only when every replica failed in a row. It sleeps on the call's completion queue, woken by a
 * reply or by the time the next input block is due (at most a block period);
 * a host's request waits at most that long. Offline, nothing is due by the
 * clock: it sleeps on a condition that perform signals. */
#include "dream_worker.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dream_ring.h"

#define READY_SECONDS 5.0       /* for StreamReady after opening */
#define STALL_SECONDS 5.0       /* no reply for this long = server lost */
#define QUERY_MS 2000           /* ListModels / ListLayers deadline */
#define BACKOFF_MIN 0.5         /* seconds; doubles per failed attempt */
#define BACKOFF_MAX 5.0
#define MAX_BACKLOG 8           /* blocks queued in the client, not sent */
#define SEQ_SLOTS 1024          /* send times kept for round-trip times */
#define HOST_SLACK 8192         /* frames a host may write per call, beyond the blocks */
#define TEXT_MAX 1024

enum { LINK_OFF, LINK_ARM, LINK_ON };
/* perform's output: replies, the dry signal standing in, or the fade back. */
enum { CONCEAL_NONE, CONCEAL_DRY, CONCEAL_RETURN };
/* Requests to the worker (w->req bits). */
enum {
    REQ_QUIT = 1,       /* dw_free: leave the thread */
    REQ_RESTART = 2,    /* server, rate, block, pre-roll or window changed: reopen */
    REQ_PARAMS = 4,     /* a parameter or the target sound changed */
    REQ_MODELS = 8,     /* list the models */
    REQ_LAYERS = 16     /* list a model's layers */
};
/* How a stream ended. */
enum { END_ASKED, END_FAILED, END_LOST };

const char *const dw_state_names[] = {"disconnected", "connecting", "connected"};

const dw_number_info dw_numbers[DW_NUMBERS] = {
    [DW_ITERATIONS] = {"iterations", DC_SET_ITERATIONS, 0, 1000},
    [DW_STEP] = {"step", DC_SET_STEP, 0, 10},
    [DW_MIX] = {"mix", DC_SET_MIX, 0, 1},
    [DW_JITTER] = {"jitter", DC_SET_JITTER, 0, 1000000},
    [DW_LOWPASS] = {"lowpass", DC_SET_LOWPASS, 0, 1e6f},
    [DW_SMOOTHING] = {"smoothing", DC_SET_SMOOTHING, 0, 10},
    [DW_SEED] = {"seed", DC_SET_SEED, 0, 4294967295.0f},
};

struct dw_sound {
    _Atomic int refs;
    size_t frames;
    unsigned rate;
    float pcm[];
};

struct dw_worker {
    /* fixed at creation */
    char name[32];
    unsigned channels;
    int fixed_sizes, offline;
    dw_line_fn line;
    void *ctx;
    pthread_t thread;
    int info_ring;
    dream_ring info;                /* info lines as [length, chars...] */
    /* audio thread only */
    size_t prefill;                 /* zero frames still to output before replies */
    size_t deficit;                 /* frames owed after underruns */
    int gave_up;                    /* offline: stopped waiting for a server */
    float *dryline;                 /* the input, interleaved, DW_DRY_FRAMES frames */
    size_t dry_pos;                 /* frames written to it (= the next output frame's time) */
    size_t dry_start;               /* dry_pos when the stream came up: silence before */
    int conceal;                    /* CONCEAL_* */
    size_t fade;                    /* frames into the current crossfade */
    size_t conceal_delay;           /* the dry signal's delay while concealing */
    float residual[DW_MAX_CHANNELS];  /* the dream's last difference from it */
    float last_out[DW_MAX_CHANNELS];  /* the last frame played */
    float ramp[DW_CONCEAL_FADE];    /* raised cosine 0 -> 1 */
    /* shared, lock-free */
    dream_ring in, out;
    _Atomic int link, state, latency, dry, bypass;   /* latency: without `grown` */
    _Atomic size_t grown;           /* frames the pre-roll grew by (audio thread writes) */
    _Atomic unsigned adapt;         /* the most it may grow by */
    _Atomic unsigned preroll_now;   /* the stream's pre-roll: with growth <= DW_MAX_PREROLL */
    _Atomic unsigned long concealed, concealed_frames;
    _Atomic size_t prefill_next;    /* block + preroll of the stream being armed */
    _Atomic unsigned long underruns, overruns, late, dropped, controls, blocks;
    _Atomic unsigned long rtt_us, rtt_max_us;
    _Atomic int iterations_run;     /* x1000 */
    _Atomic unsigned numbers_dirty; /* 1 << dw_number */
    _Atomic unsigned numbers[DW_NUMBERS];   /* float bits */
    _Atomic int waiting;            /* offline perform sleeps on audio_cond */
    pthread_mutex_t audio_mutex;
    pthread_cond_t audio_cond;
    /* shared, under mutex */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int req;
    int want;                       /* connect when possible */
    int outage;                     /* the loss was already reported */
    int told_state;                 /* the last state told to the host */
    char target[DW_TARGET];         /* one replica or several, comma-separated */
    unsigned replica;               /* the one streamed to (index into target) */
    unsigned rate, block, preroll;
    dc_params params;               /* everything in force (for a new stream) */
    dc_params changes;              /* not yet sent as a Control */
    int reset;
    dw_sound *sound;
    int sound_dirty;                /* not yet sent on the current stream */
    char query_model[DC_NAME];
};

/* One stream's working state, the worker's own. */
typedef struct run {
    dc_stream *s;
    char target[DW_TARGET];         /* the replica of this stream */
    int replicas;                   /* how many the worker was given */
    dc_stream_config cfg;
    unsigned preroll;
    dc_params params;
    float *block;                   /* one block, interleaved */
    double sent_at[SEQ_SLOTS];
    uint64_t seq, received;
    double last_reply, rtt_sum, rtt_max, rtt_since;
    int told_latency;
    unsigned long rtt_n;
    char why[DC_TEXT + 64];
} run;

/* ---- small helpers ------------------------------------------------------ */

/* An info line into the ring, whole or not at all (the reader is behind). */
static void say_ring(dw_worker *w, const char *text)
{
    float codes[TEXT_MAX + 1];
    size_t n = strlen(text), i;
    codes[0] = (float)n;
    for (i = 0; i < n; i++)
        codes[i + 1] = (float)(unsigned char)text[i];
    if (dream_ring_writable(&w->info) >= n + 1)
        dream_ring_write(&w->info, codes, n + 1);
}

static void say(dw_worker *w, int kind, const char *fmt, ...)
{
    char buf[TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (kind == DW_LINE_INFO && w->info_ring)
        say_ring(w, buf);
    else if (w->line)
        w->line(w->ctx, kind, buf);
}

size_t dw_take_info(dw_worker *w, char *buf, size_t size)
{
    float len, c;
    size_t n, i;
    if (!w->info_ring || !dream_ring_readable(&w->info) || size == 0)
        return 0;
    dream_ring_read(&w->info, &len, 1);     /* the whole line is there */
    n = (size_t)len;
    for (i = 0; i < n; i++) {
        dream_ring_read(&w->info, &c, 1);
        if (i + 1 < size)
            buf[i] = (char)(unsigned char)c;
    }
    n = n < size ? n : size - 1;
    buf[n] = 0;
    return n;
}

static void wake_locked(dw_worker *w, int req)
{
    w->req |= req;
    pthread_cond_signal(&w->cond);
}

static void wake(dw_worker *w, int req)
{
    pthread_mutex_lock(&w->mutex);
    wake_locked(w, req);
    pthread_mutex_unlock(&w->mutex);
}

/* Pairs with the fence in wait_audio: either the waiter sees what was just
 * published, or this sees the waiter. */
static void wake_audio(dw_worker *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load(&w->waiting))
        return;
    pthread_mutex_lock(&w->audio_mutex);
    pthread_cond_broadcast(&w->audio_cond);
    pthread_mutex_unlock(&w->audio_mutex);
}

static void set_link(dw_worker *w, int link)
{
    atomic_store(&w->link, link);
    wake_audio(w);
}

static struct timespec deadline_after(double seconds)
{
    struct timespec t;
    double s;
    clock_gettime(CLOCK_MONOTONIC, &t);
    s = t.tv_sec + t.tv_nsec * 1e-9 + seconds;
    t.tv_sec = (time_t)s;
    t.tv_nsec = (long)((s - (double)t.tv_sec) * 1e9);
    return t;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

static float float_of(unsigned bits)
{
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static unsigned bits_of(float f)
{
    unsigned u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* The latency in force: the stream's, plus what the pre-roll grew by. */
static int total_latency(dw_worker *w)
{
    return atomic_load(&w->latency) + (int)atomic_load(&w->grown);
}

/* Sets the connection state; every change reaches the host, in order, with
 * the latency just before "state connected". Worker thread only. */
static void set_state(dw_worker *w, int state)
{
    atomic_store(&w->state, state);
    if (state == w->told_state)
        return;
    w->told_state = state;
    if (state == DW_CONNECTED)
        say(w, DW_LINE_INFO, "latency %d", total_latency(w));
    say(w, DW_LINE_INFO, "state %s", dw_state_names[state]);
}

/* ---- numbers and sounds ---------------------------------------------------- */

int dw_clamp_number(int which, float *v)
{
    const dw_number_info *n = &dw_numbers[which];
    if (*v != *v) {
        *v = n->lo;
        return 1;
    }
    if (*v < n->lo || *v > n->hi) {
        *v = *v < n->lo ? n->lo : n->hi;
        return 1;
    }
    return 0;
}

void dw_number_to_params(dc_params *p, int which, float v)
{
    dw_clamp_number(which, &v);
    switch (which) {
    case DW_ITERATIONS: p->iterations = (int)v; break;
    case DW_STEP: p->step_size = v; break;
    case DW_MIX: p->mix = v; break;
    case DW_JITTER: p->time_jitter = (int)v; break;
    case DW_LOWPASS: p->lowpass_hz = v; break;
    case DW_SMOOTHING: p->smoothing = v; break;
    case DW_SEED: p->seed = (uint64_t)v; break;
    default: return;
    }
    p->set |= dw_numbers[which].bit;
}

void dw_set_number(dw_worker *w, int which, float v)
{
    if (which < 0 || which >= DW_NUMBERS)
        return;
    atomic_store_explicit(&w->numbers[which], bits_of(v), memory_order_relaxed);
    atomic_fetch_or_explicit(&w->numbers_dirty, 1u << which, memory_order_release);
}

/* Moves numbers set since the last call into params and changes. Caller
 * holds the mutex. */
static void take_numbers_locked(dw_worker *w)
{
    unsigned dirty = atomic_exchange_explicit(&w->numbers_dirty, 0, memory_order_acquire);
    int i;
    for (i = 0; i < DW_NUMBERS; i++) {
        dc_params p;
        if (!(dirty & (1u << i)))
            continue;
        p.set = 0;
        dw_number_to_params(&p, i, float_of(atomic_load_explicit(&w->numbers[i],
                                                                 memory_order_relaxed)));
        dc_params_merge(&w->params, &p);
        dc_params_merge(&w->changes, &p);
    }
}

int dw_parse_layers(dc_params *p, const char *text, char *err, size_t errlen)
{
    const char *c = text;
    p->nlayers = 0;
    while (*c) {
        char word[DC_NAME + 32], *end;
        size_t len = strcspn(c, " \t");
        if (!len) {
            c++;
            continue;
        }
        if (len >= sizeof(word)) {
            snprintf(err, errlen, "'%.*s' is too long", (int)len, c);
            return -1;
        }
        memcpy(word, c, len);
        word[len] = 0;
        c += len;
        long ch = strtol(word, &end, 10);
        if (!*end) {                        /* a feature map of the last layer */
            dc_layer *l = p->nlayers ? &p->layers[p->nlayers - 1] : NULL;
            if (!l || ch < 0 || l->nchannels == DC_MAX_LAYER_CHANNELS) {
                snprintf(err, errlen, "channel %s: %s", word,
                         l ? "negative, or too many" : "comes before any layer name");
                return -1;
            }
            l->channels[l->nchannels++] = (int32_t)ch;
        } else {
            char *at = strchr(word, '@');
            dc_layer *l;
            if (p->nlayers == DC_MAX_LAYERS) {
                snprintf(err, errlen, "at most %d layers", DC_MAX_LAYERS);
                return -1;
            }
            if (at == word || (at ? (size_t)(at - word) : len) >= DC_NAME) {
                snprintf(err, errlen, "bad layer name '%s'", word);
                return -1;
            }
            l = &p->layers[p->nlayers++];
            memset(l, 0, sizeof(*l));
            memcpy(l->name, word, at ? (size_t)(at - word) : len);   /* < DC_NAME, checked */
            l->weight = at ? (float)atof(at + 1) : 1.0f;
        }
    }
    p->set |= DC_SET_LAYERS;
    return 0;
}

dw_sound *dw_sound_new(size_t frames, unsigned rate)
{
    dw_sound *snd = (dw_sound *)malloc(sizeof(*snd) + frames * sizeof(float));
    if (!snd)
        return NULL;
    atomic_init(&snd->refs, 1);
    snd->frames = frames;
    snd->rate = rate;
    return snd;
}

float *dw_sound_pcm(dw_sound *snd)
{
    return snd->pcm;
}

static void sound_unref(dw_sound *snd)
{
    if (snd && atomic_fetch_sub(&snd->refs, 1) == 1)
        free(snd);
}

void dw_set_sound(dw_worker *w, dw_sound *snd)
{
    dw_sound *old;
    pthread_mutex_lock(&w->mutex);
    old = w->sound;
    w->sound = snd;
    w->sound_dirty = snd != NULL;
    wake_locked(w, REQ_PARAMS);
    pthread_mutex_unlock(&w->mutex);
    sound_unref(old);       /* freed here, outside the lock, unless being sent */
}

/* ---- the worker: listings --------------------------------------------------- */

static void list_models(dw_worker *w, const char *target)
{
    char err[DC_TEXT], names[TEXT_MAX - 16] = "";
    dc_models *m = (dc_models *)malloc(sizeof(*m));
    int i;
    if (!m)
        return;
    if (dc_list_models(target, QUERY_MS, m, err, sizeof(err)) < 0) {
        say(w, DW_LINE_ERROR, "%s: models: %s", w->name, err);
        free(m);
        return;
    }
    for (i = 0; i < m->n; i++) {
        say(w, DW_LINE_INFO, "model %s %u %u %s %d", m->models[i].name,
            m->models[i].sample_rate, m->models[i].fixed_input_samples,
            m->models[i].default_layer, m->models[i].trained);
        strncat(names, " ", sizeof(names) - strlen(names) - 1);
        strncat(names, m->models[i].name, sizeof(names) - strlen(names) - 1);
    }
    say(w, DW_LINE_INFO, "models%s", names);
    say(w, DW_LINE_INFO, "default_model %s", m->default_model);
    free(m);
}

static void list_layers(dw_worker *w, const char *target, const char *model)
{
    char err[DC_TEXT], names[TEXT_MAX - 80] = "";
    dc_layers *l = (dc_layers *)malloc(sizeof(*l));
    int i;
    if (!l)
        return;
    if (dc_list_layers(target, model, QUERY_MS, l, err, sizeof(err)) < 0) {
        say(w, DW_LINE_ERROR, "%s: layers: %s", w->name, err);
        free(l);
        return;
    }
    for (i = 0; i < l->n; i++) {
        say(w, DW_LINE_INFO, "layer %s %u %g %s", l->layers[i].name, l->layers[i].channels,
            l->layers[i].frame_rate, l->layers[i].module_type);
        strncat(names, " ", sizeof(names) - strlen(names) - 1);
        strncat(names, l->layers[i].name, sizeof(names) - strlen(names) - 1);
    }
    say(w, DW_LINE_INFO, "layers %s%s", l->model, names);
    say(w, DW_LINE_INFO, "default_layer %s", l->default_layer);
    free(l);
}

/* Serves listing requests; called with the mutex held, returns with it held. */
static void serve_queries_locked(dw_worker *w)
{
    int req = w->req & (REQ_MODELS | REQ_LAYERS);
    char model[DC_NAME], target[DW_TARGET];
    if (!req)
        return;
    w->req &= ~(REQ_MODELS | REQ_LAYERS);
    memcpy(model, w->query_model, sizeof(model));
    dw_replica(w->target, w->replica, target, sizeof(target));
    pthread_mutex_unlock(&w->mutex);
    if (req & REQ_MODELS)
        list_models(w, target);
    if (req & REQ_LAYERS)
        list_layers(w, target, model);
    pthread_mutex_lock(&w->mutex);
}

/* ---- the worker: one stream -------------------------------------------------- */

/* 1 while the stream should go on. Caller holds the mutex. */
static int keep_locked(dw_worker *w)
{
    return w->want && !(w->req & (REQ_QUIT | REQ_RESTART));
}

/* Opens the call and waits for StreamReady; END_ASKED/END_FAILED if it does
 * not come, -1 when it did (*ev holds it). */
static int stream_open(dw_worker *w, run *r, dc_event *ev)
{
    char err[DC_TEXT];
    double opened = dc_now();
    int period_ms = (int)(1000.0 * r->cfg.block_size / r->cfg.sample_rate) + 1;
    r->s = dc_stream_open(r->target, &r->cfg, &r->params, err, sizeof(err));
    if (!r->s) {
        snprintf(r->why, sizeof(r->why), "%s", err);
        return END_FAILED;
    }
    for (;;) {
        int keep;
        if (dc_stream_poll(r->s, ev, period_ms)) {
            if (ev->kind == DC_EV_READY)
                return -1;
            if (ev->kind == DC_EV_CLOSED) {
                snprintf(r->why, sizeof(r->why), "%s: %s", ev->code, ev->text);
                return END_FAILED;
            }
            continue;
        }
        pthread_mutex_lock(&w->mutex);
        keep = keep_locked(w);
        pthread_mutex_unlock(&w->mutex);
        if (!keep)
            return END_ASKED;
        if (dc_now() - opened > READY_SECONDS) {
            snprintf(r->why, sizeof(r->why), "no answer within %g s", READY_SECONDS);
            return END_FAILED;
        }
    }
}

/* The stream is up: publish its latency and let perform start. */
static void stream_arm(dw_worker *w, run *r, const dc_event *ready)
{
    int again;
    atomic_store(&w->latency, (int)(ready->latency + r->cfg.block_size + r->preroll));
    atomic_store(&w->grown, 0);
    atomic_store(&w->preroll_now, r->preroll);
    r->told_latency = total_latency(w);
    atomic_store(&w->late, 0);
    atomic_store(&w->controls, 0);
    atomic_store(&w->blocks, 0);
    atomic_store(&w->iterations_run, 0);
    atomic_store(&w->rtt_us, 0);
    atomic_store(&w->rtt_max_us, 0);
    atomic_store(&w->prefill_next, (size_t)(r->cfg.block_size + r->preroll));
    set_state(w, DW_CONNECTED);
    pthread_mutex_lock(&w->mutex);
    again = w->outage;
    w->outage = 0;
    w->sound_dirty = w->sound != NULL;     /* a new stream needs it again */
    pthread_mutex_unlock(&w->mutex);
    if (again)
        say(w, DW_LINE_POST, "%s: connected to %s again", w->name, r->target);
    set_link(w, LINK_ARM);                 /* perform clears the rings, then ON */
    r->last_reply = r->rtt_since = dc_now();
}

/* Sends parameter changes and the target sound; 0 when the stream must end. */
static int stream_requests(dw_worker *w, run *r)
{
    dc_params changes;
    dw_sound *snd = NULL;
    int keep, reset;
    pthread_mutex_lock(&w->mutex);
    take_numbers_locked(w);
    keep = keep_locked(w);
    changes.set = 0;
    if (w->changes.set)                    /* copy the whole parameter set only on change */
        changes = w->changes;
    reset = w->reset;
    w->changes.set = 0;
    w->reset = 0;
    if (w->sound_dirty && w->sound) {
        snd = w->sound;
        atomic_fetch_add(&snd->refs, 1);
        w->sound_dirty = 0;
    }
    w->req &= ~REQ_PARAMS;
    serve_queries_locked(w);
    pthread_mutex_unlock(&w->mutex);
    if (changes.set || reset) {
        if (dc_stream_send_control(r->s, &changes, reset) == 0)
            atomic_fetch_add(&w->controls, 1);
    }
    if (snd) {
        dc_stream_send_target(r->s, snd->pcm, snd->frames, snd->rate);
        sound_unref(snd);
    }
    return keep;
}

/* Sends every full block of input the backlog allows. */
static void stream_send_input(dw_worker *w, run *r)
{
    size_t samples = (size_t)r->cfg.block_size * w->channels;
    if (atomic_load(&w->link) != LINK_ON)
        return;
    while (dream_ring_readable(&w->in) >= samples && dc_stream_backlog(r->s) < MAX_BACKLOG) {
        dream_ring_read(&w->in, r->block, samples);
        r->sent_at[r->seq % SEQ_SLOTS] = dc_now();
        if (dc_stream_send_audio(r->s, r->seq, r->block, r->cfg.block_size) < 0)
            break;          /* the call is ending; poll says why */
        r->seq++;
    }
}

/* Acts on one event; returns END_LOST when the call ended, else -1. */
static int stream_event(dw_worker *w, run *r, const dc_event *ev)
{
    double now = dc_now();
    switch (ev->kind) {
    case DC_EV_AUDIO:
        r->last_reply = now;
        r->received++;
        atomic_fetch_add(&w->blocks, 1);
        if (atomic_load(&w->link) == LINK_ON && ev->frames == r->cfg.block_size) {
            double rtt = now - r->sent_at[ev->seq % SEQ_SLOTS];
            size_t samples = ev->frames * w->channels;
            if (dream_ring_writable(&w->out) < samples)
                atomic_fetch_add(&w->dropped, 1);
            else
                dream_ring_write(&w->out, ev->pcm, samples);
            wake_audio(w);
            r->rtt_sum += rtt;
            r->rtt_n++;
            if (rtt > r->rtt_max)
                r->rtt_max = rtt;
        }
        break;
    case DC_EV_READY: { /* after a model change */
        atomic_store(&w->latency, (int)(ev->latency + r->cfg.block_size + r->preroll));
        break;
    }
    case DC_EV_STATS:
        atomic_store(&w->late, (unsigned long)ev->late_blocks);
        atomic_store(&w->iterations_run, (int)lrintf(1000 * ev->iterations_run));
        break;
    case DC_EV_WARNING:
        say(w, DW_LINE_INFO, "warning %s %s", ev->code, ev->text);
        if (strncmp(ev->code, "invalid", 7) == 0)
            say(w, DW_LINE_ERROR, "%s: %s", w->name, ev->text);
        else if (!strcmp(ev->code, "model_changed"))
            say(w, DW_LINE_POST, "%s: %s", w->name, ev->text);
        else if (!strcmp(ev->code, "draining")) {
            /* The replica is shutting down: leave now, for the next one. */
            snprintf(r->why, sizeof(r->why), "it is shutting down");
            return END_LOST;
        }
        break;
    case DC_EV_CLOSED:
        snprintf(r->why, sizeof(r->why), "%s: %s", ev->code, ev->text);
        return END_LOST;
    }
    return -1;
}

/* Round-trip times, once a second; a new latency (a model change, or the
 * pre-roll grown after a late reply) as soon as the worker wakes. */
static void stream_rtt(dw_worker *w, run *r, double now)
{
    int latency = total_latency(w);
    if (latency != r->told_latency && atomic_load(&w->link) == LINK_ON) {
        r->told_latency = latency;
        say(w, DW_LINE_INFO, "latency %d", latency);
    }
    if (now - r->rtt_since < 1.0)
        return;
    if (r->rtt_n) {
        atomic_store(&w->rtt_us, (unsigned long)(1e6 * r->rtt_sum / r->rtt_n));
        atomic_store(&w->rtt_max_us, (unsigned long)(1e6 * r->rtt_max));
    }
    r->rtt_sum = r->rtt_max = 0;
    r->rtt_n = 0;
    r->rtt_since = now;
}

/* Milliseconds until a block of input is due: the longest the worker may
 * sleep on the completion queue; between 1 and a block period. */
static int stream_wait_ms(dw_worker *w, run *r)
{
    double period = 1000.0 * r->cfg.block_size / r->cfg.sample_rate, ms = period;
    if (atomic_load(&w->link) == LINK_ON && dc_stream_backlog(r->s) < MAX_BACKLOG) {
        size_t have = dream_ring_readable(&w->in) / w->channels;
        ms = have >= r->cfg.block_size
             ? 0 : 1000.0 * (double)(r->cfg.block_size - have) / r->cfg.sample_rate;
    }
    return ms < 1 ? 1 : (int)ceil(ms);
}

/* Offline, with no reply pending, only perform (new input) or the host can
 * give the worker something to do: sleep on the condition they signal. */
static void stream_wait_offline(dw_worker *w, run *r)
{
    struct timespec until = deadline_after((double)r->cfg.block_size / r->cfg.sample_rate);
    size_t samples = (size_t)r->cfg.block_size * w->channels;
    pthread_mutex_lock(&w->mutex);
    while (keep_locked(w) && !(w->req & REQ_PARAMS)
           && !atomic_load(&w->numbers_dirty)
           && dream_ring_readable(&w->in) < samples
           && pthread_cond_timedwait(&w->cond, &w->mutex, &until) == 0)
        ;
    pthread_mutex_unlock(&w->mutex);
}

/* Runs one stream until it is asked to stop or fails; r->why says why. */
static int stream_run(dw_worker *w, run *r)
{
    dc_event ev;
    int end;
    set_state(w, DW_CONNECTING);
    if ((end = stream_open(w, r, &ev)) >= 0)
        return end;
    stream_arm(w, r, &ev);
    while (stream_requests(w, r)) {
        double now;
        stream_send_input(w, r);
        if (w->offline && r->received == r->seq && atomic_load(&w->link) == LINK_ON) {
            stream_wait_offline(w, r);
            continue;
        }
        if (dc_stream_poll(r->s, &ev, stream_wait_ms(w, r))
            && stream_event(w, r, &ev) == END_LOST)
            return END_LOST;
        now = dc_now();
        if (r->received < r->seq && now - r->last_reply > STALL_SECONDS
            && now - r->sent_at[r->received % SEQ_SLOTS] > STALL_SECONDS && !w->offline) {
            snprintf(r->why, sizeof(r->why), "no reply for %g s", STALL_SECONDS);
            return END_LOST;
        }
        stream_rtt(w, r, now);
    }
    return END_ASKED;
}

/* Takes what a new stream starts from. Caller holds the mutex. */
static void setup_locked(dw_worker *w, run *r)
{
    take_numbers_locked(w);
    r->replicas = dw_replica(w->target, w->replica, r->target, sizeof(r->target));
    r->cfg.sample_rate = w->rate;
    r->cfg.channels = w->channels;
    r->cfg.block_size = w->block;
    r->cfg.offline = w->offline;
    r->preroll = w->preroll;
    r->cfg.slack = w->preroll ? w->preroll : 1;   /* the server fits its work into it */
    r->params = w->params;          /* a new stream starts from all of them */
    r->seq = r->received = 0;
    r->rtt_sum = r->rtt_max = 0;
    r->rtt_n = 0;
    r->why[0] = 0;
    w->changes.set = 0;
    w->reset = 0;
    w->req &= ~(REQ_RESTART | REQ_PARAMS);
}

/* Sleeps for the back-off; any request (or a parameter fix) ends it early. */
static void backoff_locked(dw_worker *w, double seconds)
{
    struct timespec until = deadline_after(seconds);
    while (w->want && !w->req && pthread_cond_timedwait(&w->cond, &w->mutex, &until) == 0)
        ;
}

int dw_replica(const char *list, unsigned index, char *out, size_t outlen)
{
    int count = 0, k = 0;
    unsigned want;
    const char *p;
    for (p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
        count += strcspn(p, ",") > 0;
    if (outlen)
        out[0] = 0;
    if (!count || !outlen)
        return count;
    want = index % (unsigned)count;
    for (p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        size_t n = strcspn(p, ",");
        if (n && (unsigned)k++ == want) {
            snprintf(out, outlen, "%.*s", (int)n, p);
            break;
        }
    }
    return count;
}

static void *worker_main(void *arg)
{
    dw_worker *w = (dw_worker *)arg;
    double backoff = BACKOFF_MIN;
    int failed_in_row = 0;          /* replicas that failed since one worked */
    run *r = (run *)calloc(1, sizeof(*r));
    pthread_mutex_lock(&w->mutex);
    while (r && !(w->req & REQ_QUIT)) {
        int end;
        if (w->req & (REQ_MODELS | REQ_LAYERS)) {   /* while not streaming */
            serve_queries_locked(w);
            continue;
        }
        if (!w->want) {
            pthread_mutex_unlock(&w->mutex);
            set_state(w, DW_DISCONNECTED);
            pthread_mutex_lock(&w->mutex);
            w->req &= ~(REQ_RESTART | REQ_PARAMS);
            if (!w->want && !w->req)
                pthread_cond_wait(&w->cond, &w->mutex);
            continue;
        }
        setup_locked(w, r);
        pthread_mutex_unlock(&w->mutex);
        free(r->block);
        r->block = (float *)malloc((size_t)r->cfg.block_size * w->channels * sizeof(float));

        end = r->block ? stream_run(w, r) : END_FAILED;
        set_link(w, LINK_OFF);
        dc_stream_close(r->s);
        r->s = NULL;
        set_state(w, DW_DISCONNECTED);

        pthread_mutex_lock(&w->mutex);
        if (end == END_ASKED) {
            backoff = BACKOFF_MIN;
            failed_in_row = 0;
            continue;
        }
        if (end == END_LOST) {
            backoff = BACKOFF_MIN;
            failed_in_row = 0;
        }
        if (r->replicas > 1 && ++failed_in_row < r->replicas) {
            /* Another replica may serve at once: no back-off, one line. */
            w->replica++;
            w->outage = 0;
            pthread_mutex_unlock(&w->mutex);
            say(w, DW_LINE_POST, "%s: %s %s (%s); trying the next replica", w->name,
                end == END_LOST ? "left" : "cannot stream from", r->target, r->why);
            pthread_mutex_lock(&w->mutex);
            continue;
        }
        failed_in_row = 0;
        if (r->replicas > 1)
            w->replica++;
        if (!w->outage) {
            /* One message per outage; the state lines tell the rest. */
            w->outage = 1;
            pthread_mutex_unlock(&w->mutex);
            say(w, DW_LINE_ERROR, "%s: %s %s (%s); output is %s, reconnecting", w->name,
                end == END_LOST ? "lost the stream to" : "cannot stream from",
                r->target, r->why, atomic_load(&w->dry) ? "the dry signal" : "silent");
            pthread_mutex_lock(&w->mutex);
        }
        backoff_locked(w, backoff);
        backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
    }
    pthread_mutex_unlock(&w->mutex);
    if (r)
        free(r->block);
    free(r);
    return NULL;
}

/* ---- creation ------------------------------------------------------------- */

static size_t ring_frames(unsigned block, unsigned preroll)
{
    return 2 * (size_t)block + preroll + HOST_SLACK;
}

dw_worker *dw_new(const dw_options *o, char *err, size_t errlen)
{
    dw_worker *w = (dw_worker *)calloc(1, sizeof(*w));
    size_t frames;
    int i;
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(w->name, sizeof(w->name), "%s", o->name ? o->name : "dream");
    w->channels = o->channels < 1 ? 1 : o->channels > DW_MAX_CHANNELS
                  ? DW_MAX_CHANNELS : o->channels;
    w->fixed_sizes = o->fixed_sizes;
    w->offline = o->offline;
    w->line = o->line;
    w->ctx = o->ctx;
    w->info_ring = o->info_ring;
    w->rate = o->rate;
    w->block = o->block ? o->block : 2048;
    w->preroll = o->preroll;
    snprintf(w->target, sizeof(w->target), "%s", o->target ? o->target : "127.0.0.1:50051");
    if (o->params)
        w->params = *o->params;
    frames = w->fixed_sizes ? ring_frames(w->block, w->preroll)
                            : ring_frames(DW_MAX_BLOCK, DW_MAX_PREROLL);
    w->dryline = (float *)calloc((size_t)DW_DRY_FRAMES * w->channels, sizeof(float));
    if (!w->dryline
        || dream_ring_init(&w->in, frames * w->channels)
        || dream_ring_init(&w->out, frames * w->channels)
        || dream_ring_init(&w->info, w->info_ring ? 16 * TEXT_MAX : 1)) {
        dream_ring_free(&w->in);
        dream_ring_free(&w->out);
        free(w->dryline);
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&w->link, LINK_OFF);
    atomic_init(&w->state, DW_DISCONNECTED);
    atomic_init(&w->latency, 0);
    atomic_init(&w->dry, 1);
    atomic_init(&w->bypass, 0);
    atomic_init(&w->prefill_next, 0);
    atomic_init(&w->grown, 0);
    atomic_init(&w->adapt, DW_ADAPT_DEFAULT);
    atomic_init(&w->preroll_now, 0);
    atomic_init(&w->concealed, 0);
    atomic_init(&w->concealed_frames, 0);
    for (i = 0; i < DW_CONCEAL_FADE; i++)
        w->ramp[i] = (float)(0.5 - 0.5 * cos(3.14159265358979323846 * (i + 0.5) / DW_CONCEAL_FADE));
    atomic_init(&w->numbers_dirty, 0);
    for (i = 0; i < DW_NUMBERS; i++)
        atomic_init(&w->numbers[i], 0);
    atomic_init(&w->waiting, 0);
    w->told_state = DW_DISCONNECTED;
    w->want = o->connect;
    pthread_mutex_init(&w->mutex, NULL);
    cond_init_monotonic(&w->cond);
    pthread_mutex_init(&w->audio_mutex, NULL);
    cond_init_monotonic(&w->audio_cond);
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
        snprintf(err, errlen, "cannot start the network thread");
        pthread_mutex_destroy(&w->mutex);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->audio_mutex);
        pthread_cond_destroy(&w->audio_cond);
        dream_ring_free(&w->in);
        dream_ring_free(&w->out);
        dream_ring_free(&w->info);
        free(w);
        return NULL;
    }
    return w;
}

void dw_free(dw_worker *w)
{
    if (!w)
        return;
    wake(w, REQ_QUIT);
    pthread_join(w->thread, NULL);      /* it closes its stream on the way out */
    pthread_mutex_destroy(&w->mutex);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->audio_mutex);
    pthread_cond_destroy(&w->audio_cond);
    sound_unref(w->sound);
    dream_ring_free(&w->in);
    dream_ring_free(&w->out);
    dream_ring_free(&w->info);
    free(w->dryline);
    free(w);
}

/* ---- control side ------------------------------------------------------------ */

void dw_connect(dw_worker *w, const char *target)
{
    pthread_mutex_lock(&w->mutex);
    if (target && target[0] && strcmp(target, w->target)) {
        snprintf(w->target, sizeof(w->target), "%s", target);
        w->replica = 0;
    }
    w->want = 1;
    w->outage = 0;
    wake_locked(w, REQ_RESTART);
    pthread_mutex_unlock(&w->mutex);
}

void dw_disconnect(dw_worker *w)
{
    pthread_mutex_lock(&w->mutex);
    w->want = 0;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
}

void dw_change(dw_worker *w, const dc_params *p)
{
    pthread_mutex_lock(&w->mutex);
    take_numbers_locked(w);     /* an older number must not override p */
    dc_params_merge(&w->params, p);
    dc_params_merge(&w->changes, p);
    wake_locked(w, REQ_PARAMS);
    pthread_mutex_unlock(&w->mutex);
}

void dw_model(dw_worker *w, const char *model)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    snprintf(p.model, sizeof(p.model), "%s", model);
    /* A new model has other layers: its default layer, unless told. */
    p.set = DC_SET_MODEL | DC_SET_LAYERS;
    p.nlayers = 0;
    pthread_mutex_lock(&w->mutex);
    dc_params_merge(&w->params, &p);
    p.set = DC_SET_MODEL;   /* the server drops the layers by itself */
    dc_params_merge(&w->changes, &p);
    wake_locked(w, REQ_PARAMS);
    pthread_mutex_unlock(&w->mutex);
}

void dw_default_layers(dw_worker *w)
{
    pthread_mutex_lock(&w->mutex);
    w->params.nlayers = 0;
    w->params.set &= ~DC_SET_LAYERS;
    wake_locked(w, REQ_RESTART);
    pthread_mutex_unlock(&w->mutex);
}

void dw_reset(dw_worker *w)
{
    pthread_mutex_lock(&w->mutex);
    w->reset = 1;
    wake_locked(w, REQ_PARAMS);
    pthread_mutex_unlock(&w->mutex);
}

/* Sets *field to v and reopens the stream if it changed. */
static void set_reopening(dw_worker *w, unsigned *field, unsigned v)
{
    pthread_mutex_lock(&w->mutex);
    if (*field != v) {
        *field = v;
        wake_locked(w, REQ_RESTART);
    }
    pthread_mutex_unlock(&w->mutex);
}

void dw_set_rate(dw_worker *w, unsigned rate)
{
    set_reopening(w, &w->rate, rate);
}

int dw_set_block(dw_worker *w, unsigned block)
{
    if (w->fixed_sizes && block != w->block)
        return -1;
    set_reopening(w, &w->block, block);
    return 0;
}

int dw_set_preroll(dw_worker *w, unsigned preroll)
{
    if (w->fixed_sizes && preroll != w->preroll)
        return -1;
    set_reopening(w, &w->preroll, preroll);
    return 0;
}

void dw_set_window(dw_worker *w, unsigned window)
{
    pthread_mutex_lock(&w->mutex);
    if (window != w->params.window || !(w->params.set & DC_SET_WINDOW)) {
        w->params.window = window;
        w->params.set |= DC_SET_WINDOW;
        wake_locked(w, REQ_RESTART);
    }
    pthread_mutex_unlock(&w->mutex);
}

void dw_set_delay(dw_worker *w, unsigned delay)
{
    pthread_mutex_lock(&w->mutex);
    if (delay != w->params.delay || !(w->params.set & DC_SET_DELAY)) {
        w->params.delay = delay;
        w->params.set |= DC_SET_DELAY;
        wake_locked(w, REQ_RESTART);
    }
    pthread_mutex_unlock(&w->mutex);
}

void dw_set_adapt(dw_worker *w, unsigned frames)
{
    atomic_store(&w->adapt, frames);
}

void dw_query_models(dw_worker *w)
{
    wake(w, REQ_MODELS);
}

void dw_query_layers(dw_worker *w, const char *model)
{
    pthread_mutex_lock(&w->mutex);
    snprintf(w->query_model, sizeof(w->query_model), "%s",
             model && model[0] ? model : w->params.model);
    wake_locked(w, REQ_LAYERS);
    pthread_mutex_unlock(&w->mutex);
}

void dw_settings(dw_worker *w, dc_params *p, char *target, size_t targetlen,
                 unsigned *rate, unsigned *block, unsigned *preroll)
{
    pthread_mutex_lock(&w->mutex);
    take_numbers_locked(w);
    *p = w->params;
    snprintf(target, targetlen, "%s", w->target);
    *rate = w->rate;
    *block = w->block;
    *preroll = w->preroll;
    pthread_mutex_unlock(&w->mutex);
}

/* ---- lock-free ------------------------------------------------------------------ */

void dw_set_dry(dw_worker *w, int dry)
{
    atomic_store(&w->dry, dry != 0);
}

void dw_set_bypass(dw_worker *w, int bypass)
{
    atomic_store(&w->bypass, bypass != 0);
}

void dw_get_report(dw_worker *w, dw_report *r)
{
    r->state = atomic_load(&w->state);
    r->grown = (int)atomic_load(&w->grown);
    r->latency = atomic_load(&w->latency) + r->grown;
    r->underruns = atomic_load_explicit(&w->underruns, memory_order_relaxed);
    r->concealed = atomic_load_explicit(&w->concealed, memory_order_relaxed);
    r->concealed_frames = atomic_load_explicit(&w->concealed_frames, memory_order_relaxed);
    r->overruns = atomic_load_explicit(&w->overruns, memory_order_relaxed);
    r->late = atomic_load(&w->late);
    r->dropped = atomic_load(&w->dropped);
    r->controls = atomic_load(&w->controls);
    r->blocks = atomic_load(&w->blocks);
    r->iterations_run = atomic_load(&w->iterations_run) / 1000.0f;
    r->rtt_ms = atomic_load(&w->rtt_us) / 1000.0f;
    r->rtt_max_ms = atomic_load(&w->rtt_max_us) / 1000.0f;
}

/* ---- perform ---------------------------------------------------------------------- */

static void perform_dry(dw_worker *w, const float *const *in, float *const *out, size_t n)
{
    unsigned c;
    int dry = atomic_load_explicit(&w->dry, memory_order_relaxed);
    for (c = 0; c < w->channels; c++) {
        if (dry)
            memcpy(out[c], in[c], n * sizeof(float));
        else
            memset(out[c], 0, n * sizeof(float));
    }
}

/* ARM -> ON: the worker waits meanwhile, so the rings are ours to clear.
 * Returns the link in force. */
static int perform_link(dw_worker *w)
{
    int link = atomic_load_explicit(&w->link, memory_order_acquire), expected = LINK_ARM;
    if (link != LINK_ARM)
        return link;
    dream_ring_clear(&w->in);
    dream_ring_clear(&w->out);
    w->prefill = atomic_load(&w->prefill_next);
    w->deficit = 0;
    w->dry_start = w->dry_pos;
    w->conceal = CONCEAL_NONE;
    atomic_store(&w->grown, 0);
    atomic_store_explicit(&w->underruns, 0, memory_order_relaxed);
    atomic_store_explicit(&w->concealed, 0, memory_order_relaxed);
    atomic_store_explicit(&w->concealed_frames, 0, memory_order_relaxed);
    atomic_store_explicit(&w->overruns, 0, memory_order_relaxed);
    if (atomic_compare_exchange_strong_explicit(&w->link, &expected, LINK_ON,
                                                memory_order_acq_rel, memory_order_acquire))
        return LINK_ON;
    return expected;    /* the worker gave up meanwhile */
}

/* Frames of output owed before n more can be read: what perform_output will
 * take from the ring. */
static size_t perform_need(const dw_worker *w, size_t n)
{
    size_t pre = w->prefill < n ? w->prefill : n;
    return n - pre + w->deficit;
}

/* Keeps this call's input for concealment; out frame i then has time dry_pos + i. */
static void dry_write(dw_worker *w, const float *const *in, size_t n)
{
    size_t i, mask = DW_DRY_FRAMES - 1;
    unsigned c;
    for (i = 0; i < n; i++) {
        float *frame = w->dryline + ((w->dry_pos + i) & mask) * w->channels;
        for (c = 0; c < w->channels; c++)
            frame[c] = in[c][i];
    }
}

/* The input `delay` frames before time t, channel c (silence before the stream). */
static float dry_at(const dw_worker *w, size_t t, size_t delay, unsigned c)
{
    if (t < w->dry_start + delay)
        return 0.0f;
    return w->dryline[((t - delay) & (DW_DRY_FRAMES - 1)) * w->channels + c];
}

/* Frames [k, k + m) of out are replies: the end of a concealment fades back in. */
static void perform_return(dw_worker *w, float *const *out, size_t k, size_t m)
{
    size_t i;
    unsigned c;
    for (i = 0; i < m && w->conceal == CONCEAL_RETURN; i++) {
        float r = w->ramp[w->fade];
        for (c = 0; c < w->channels; c++) {
            float d = dry_at(w, w->dry_pos + k + i, w->conceal_delay, c);
            out[c][k + i] = d + r * (out[c][k + i] - d);
        }
        if (++w->fade == DW_CONCEAL_FADE)
            w->conceal = CONCEAL_NONE;
    }
}

/* Frames [k, n) of out have no reply: the dry signal stands in, at the latency in
 * force; the missing frames grow the pre-roll (within `adapt`) or are owed. */
static void perform_conceal(dw_worker *w, float *const *out, size_t k, size_t n)
{
    size_t i, missing = n - k, latency = (size_t)total_latency(w);
    size_t grown = atomic_load_explicit(&w->grown, memory_order_relaxed);
    size_t room = atomic_load_explicit(&w->adapt, memory_order_relaxed);
    size_t preroll = atomic_load_explicit(&w->preroll_now, memory_order_relaxed);
    unsigned c;
    if (preroll + room > DW_MAX_PREROLL)        /* grown, still a pre-roll the object takes */
        room = preroll < DW_MAX_PREROLL ? DW_MAX_PREROLL - preroll : 0;
    if (latency + n > DW_DRY_FRAMES) {         /* longer than the delay line: silence */
        for (c = 0; c < w->channels; c++)
            memset(out[c] + k, 0, missing * sizeof(float));
        w->deficit += missing;
        atomic_fetch_add_explicit(&w->underruns, 1, memory_order_relaxed);
        return;
    }
    if (w->conceal != CONCEAL_DRY) {            /* a new gap: leave the dream smoothly */
        size_t last = w->dry_pos + k - 1;     /* the frame just played */
        for (c = 0; c < w->channels; c++) {
            float played = k ? out[c][k - 1] : w->last_out[c];
            w->residual[c] = played - dry_at(w, last, latency, c);
        }
        w->conceal = CONCEAL_DRY;
        w->conceal_delay = latency;
        w->fade = 0;
        atomic_fetch_add_explicit(&w->concealed, 1, memory_order_relaxed);
    }
    for (i = k; i < n; i++) {
        float r = w->fade < DW_CONCEAL_FADE ? w->ramp[w->fade++] : 1.0f;
        for (c = 0; c < w->channels; c++)
            out[c][i] = dry_at(w, w->dry_pos + i, w->conceal_delay, c)
                        + (1.0f - r) * w->residual[c];
    }
    atomic_fetch_add_explicit(&w->concealed_frames, missing, memory_order_relaxed);
    if (!w->offline && grown + missing <= room)
        atomic_store_explicit(&w->grown, grown + missing, memory_order_relaxed);
    else
        w->deficit += missing;
}

/* With the link ON and the input already in the ring: the pre-roll, then
 * replies; frames without a reply are concealed. */
static void perform_output(dw_worker *w, float *const *out, size_t n)
{
    size_t k = 0, got;
    unsigned c;
    float *at[DW_MAX_CHANNELS];
    if (w->prefill) {
        k = w->prefill < n ? w->prefill : n;
        for (c = 0; c < w->channels; c++)
            memset(out[c], 0, k * sizeof(float));
        w->prefill -= k;
    }
    if (w->deficit)
        w->deficit -= dream_ring_read(&w->out, NULL, w->deficit * w->channels) / w->channels;
    if (k < n && !w->deficit) {
        for (c = 0; c < w->channels; c++)
            at[c] = out[c] + k;
        got = dream_ring_read_planar(&w->out, at, w->channels, n - k);
        if (got && w->conceal == CONCEAL_DRY) {
            w->conceal = CONCEAL_RETURN;
            w->fade = 0;
        }
        perform_return(w, out, k, got);
        k += got;
    }
    if (k < n)
        perform_conceal(w, out, k, n);
    for (c = 0; c < w->channels; c++)     /* where the next gap starts from */
        w->last_out[c] = out[c][n - 1];
}

/* Bypass keeps the stream and its timing; the input is heard untouched. */
static void perform_bypass(dw_worker *w, const float *const *in, float *const *out, size_t n)
{
    size_t skip = perform_need(w, n), got;
    unsigned c;
    w->prefill -= w->prefill < n ? w->prefill : n;
    got = dream_ring_read(&w->out, NULL, skip * w->channels) / w->channels;
    w->deficit = skip - got;
    for (c = 0; c < w->channels; c++)
        memcpy(out[c], in[c], n * sizeof(float));
}

void dw_perform(dw_worker *w, const float *const *in, float *const *out, size_t n)
{
    if (perform_link(w) != LINK_ON) {
        perform_dry(w, in, out, n);
        return;
    }
    if (!dream_ring_write_planar(&w->in, in, w->channels, n))
        atomic_fetch_add_explicit(&w->overruns, 1, memory_order_relaxed);
    dry_write(w, in, n);
    if (atomic_load_explicit(&w->bypass, memory_order_relaxed))
        perform_bypass(w, in, out, n);
    else
        perform_output(w, out, n);
    w->dry_pos += n;
}

/* Waits on audio_cond until ready(w, n) or the deadline; 1 if ready. */
static int wait_audio(dw_worker *w, int (*ready)(dw_worker *, size_t), size_t n,
                      double timeout)
{
    struct timespec until = deadline_after(timeout);
    int ok;
    if (ready(w, n))
        return 1;
    atomic_store(&w->waiting, 1);
    atomic_thread_fence(memory_order_seq_cst);
    pthread_mutex_lock(&w->audio_mutex);
    while (!(ok = ready(w, n))
           && pthread_cond_timedwait(&w->audio_cond, &w->audio_mutex, &until) == 0)
        ;
    pthread_mutex_unlock(&w->audio_mutex);
    atomic_store(&w->waiting, 0);
    return ok;
}

static int linked(dw_worker *w, size_t n)
{
    return atomic_load(&w->link) != LINK_OFF;
}

static int output_ready(dw_worker *w, size_t n)
{
    return atomic_load(&w->link) != LINK_ON
           || dream_ring_readable(&w->out) >= perform_need(w, n) * w->channels;
}

int dw_perform_offline(dw_worker *w, const float *const *in, float *const *out,
                       size_t n, double timeout)
{
    if (!w->gave_up && !wait_audio(w, linked, n, timeout))
        w->gave_up = 1;         /* no server: stop waiting for one */
    if (perform_link(w) != LINK_ON) {
        perform_dry(w, in, out, n);
        return -1;
    }
    w->gave_up = 0;
    if (!dream_ring_write_planar(&w->in, in, w->channels, n))
        atomic_fetch_add_explicit(&w->overruns, 1, memory_order_relaxed);
    pthread_mutex_lock(&w->mutex);          /* new input: wake the worker */
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    dry_write(w, in, n);
    if (!wait_audio(w, output_ready, n, timeout)) {
        perform_output(w, out, n);          /* concealed and counted */
        w->dry_pos += n;
        return -1;
    }
    perform_output(w, out, n);
    w->dry_pos += n;
    return 0;
}
