/* dream~: Pd's audio dreamed live by an audiodream server (StreamDream).
 *
 * Three parties, one job each:
 *   perform (DSP)   copies samples into and out of two lock-free rings; it
 *                   never waits, allocates or locks.
 *   the worker      a thread that owns the network (dream_client.h): opens the
 *                   stream, moves blocks between the rings and the server,
 *                   sends parameter changes, reconnects with back-off.
 *   the clock       every TICK_MS, in Pd's thread, turns what the worker
 *                   learnt into info-outlet messages and Pd-window posts.
 * Messages reach the worker through x_mutex, which perform never takes.
 *
 * Who may touch the rings is decided by x_link:
 *   LINK_OFF  nobody streams: perform outputs dry or silence, rings untouched;
 *   LINK_ARM  a fresh stream is ready: perform empties both rings, starts
 *             the pre-roll and sets LINK_ON (the worker waits meanwhile);
 *   LINK_ON   perform writes input and reads output, the worker the reverse.
 * Only the worker sets OFF and ARM, only perform sets ON, so each ring always
 * has one producer and one consumer.
 *
 * Latency: after ARM, perform outputs (block + preroll) zeros before the
 * first reply, and the server's output trails its input by D frames
 * (StreamReady.latency_samples), so
 *     out[n] = dreamed(in)[n - (D + block + preroll)].
 * That sum is what the info outlet reports. An underrun outputs zeros and
 * owes those samples: as many are skipped when replies catch up, so the
 * latency stays the reported one. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m_pd.h"

#include "dream_client.h"
#include "dream_ring.h"

#define DEFAULT_SERVER "127.0.0.1:50051"
#define DEFAULT_BLOCK 2048
#define MIN_BLOCK 256
#define MAX_BLOCK 8192
#define DEFAULT_PREROLL 2048
#define MAX_PREROLL 32768
#define RING_SIZE 65536         /* > MAX_BLOCK * 2 + MAX_PREROLL */
#define TICK_MS 50              /* clock period */
#define REPORT_TICKS 20         /* rtt/underruns/late once a second */
#define POLL_MS 1               /* worker's longest wait while streaming */
#define READY_SECONDS 5.0       /* for StreamReady after opening */
#define STALL_SECONDS 5.0       /* no reply for this long = server lost */
#define QUERY_MS 2000           /* ListModels / ListLayers deadline */
#define BACKOFF_MIN 0.5         /* seconds; doubles per failed attempt */
#define BACKOFF_MAX 5.0
#define MAX_BACKLOG 8           /* blocks queued in the client, not sent */
#define SEQ_SLOTS 1024          /* send times kept for round-trip times */
#define MAX_LINES 256           /* worker -> Pd messages waiting */

enum { LINK_OFF, LINK_ARM, LINK_ON };
enum { STATE_DISCONNECTED, STATE_CONNECTING, STATE_CONNECTED };
/* Requests to the worker (x_req bits). */
enum {
    REQ_QUIT = 1,       /* free: leave the thread */
    REQ_RESTART = 2,    /* server, rate, block or pre-roll changed: reopen */
    REQ_PARAMS = 4,     /* a parameter changed (x_changes / x_reset) */
    REQ_MODELS = 8,     /* answer `models` */
    REQ_LAYERS = 16     /* answer `layers?` */
};
/* How a stream ended. */
enum { END_ASKED, END_FAILED, END_LOST };
/* Where a worker line goes. */
enum { LINE_OUTLET, LINE_POST, LINE_ERROR };

static const char *state_names[] = {"disconnected", "connecting", "connected"};

typedef struct dream_line {
    struct dream_line *next;
    int kind;
    char text[];
} dream_line;

static t_class *dream_class;

typedef struct _dream {
    t_object x_obj;
    t_float x_f;                    /* main signal inlet's scalar */
    t_outlet *x_info;
    t_clock *x_clock;
    /* Pd thread only (messages, clock, perform, dsp) */
    int x_dry;                      /* disconnected: 1 = dry signal, 0 = silence */
    int x_bypass;
    int x_prefill;                  /* zeros still to output before replies */
    size_t x_deficit;               /* samples owed after underruns */
    unsigned long x_underruns;      /* this stream */
    unsigned long x_overruns;       /* input dropped: the worker fell behind */
    int x_ticks;
    /* shared with the worker, lock-free */
    dream_ring x_in, x_out;
    _Atomic int x_link;
    _Atomic int x_state;
    _Atomic int x_latency;          /* frames; valid while connected */
    _Atomic int x_prefill_next;     /* block + preroll of the stream being armed */
    _Atomic unsigned long x_late;
    _Atomic int x_iterations_run;   /* server's mean per block, x1000 */
    _Atomic unsigned long x_rtt_us, x_rtt_max_us;
    _Atomic unsigned long x_dropped;/* replies that found no room */
    /* shared with the worker, under x_mutex */
    pthread_t x_thread;
    pthread_mutex_t x_mutex;
    pthread_cond_t x_cond;
    int x_req;
    int x_want;                     /* connect when possible */
    int x_outage;                   /* the loss was already reported */
    int x_told_state;               /* the last state queued for the outlet */
    char x_target[128];
    unsigned x_rate, x_block, x_preroll;
    dc_params x_params;             /* everything in force (for a new stream) */
    dc_params x_changes;            /* not yet sent as a Control */
    int x_reset;
    float *x_tsound;                /* the target sound (`target ARRAY`), mono */
    size_t x_tsound_len;
    unsigned x_tsound_rate;
    int x_tsound_dirty;             /* not yet sent on the current stream */
    char x_query_model[DC_NAME];
    dream_line *x_lines, **x_lines_tail;
    int x_nlines;
} t_dream;

/* ---- worker -> Pd lines ---------------------------------------------------- */

/* Queues a line for the clock. Caller holds x_mutex. */
static void line_locked(t_dream *x, int kind, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    dream_line *l;
    size_t n;
    if (x->x_nlines >= MAX_LINES)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    n = strlen(buf);
    if (!(l = (dream_line *)malloc(sizeof(*l) + n + 1)))
        return;
    l->next = NULL;
    l->kind = kind;
    memcpy(l->text, buf, n + 1);
    if (kind == LINE_OUTLET) {
        /* Pd would read , ; $ \ as message syntax */
        char *c;
        for (c = l->text; *c; c++)
            if (*c == ',' || *c == ';' || *c == '$' || *c == '\\')
                *c = ' ';
    }
    *x->x_lines_tail = l;
    x->x_lines_tail = &l->next;
    x->x_nlines++;
}

#define LINE(x, kind, ...)                                 \
    do {                                                   \
        pthread_mutex_lock(&(x)->x_mutex);                 \
        line_locked((x), (kind), __VA_ARGS__);             \
        pthread_mutex_unlock(&(x)->x_mutex);               \
    } while (0)

/* Sets the connection state; every change reaches the outlet, in order, with
 * the latency just before "state connected". Caller holds x_mutex. */
static void state_locked(t_dream *x, int state)
{
    atomic_store(&x->x_state, state);
    if (state == x->x_told_state)
        return;
    if (state == STATE_CONNECTED)
        line_locked(x, LINE_OUTLET, "latency %d", atomic_load(&x->x_latency));
    line_locked(x, LINE_OUTLET, "state %s", state_names[state]);
    x->x_told_state = state;
}

static void worker_state(t_dream *x, int state)
{
    pthread_mutex_lock(&x->x_mutex);
    state_locked(x, state);
    pthread_mutex_unlock(&x->x_mutex);
}

/* ---- the worker --------------------------------------------------------- */

typedef struct dream_setup {
    char target[128];
    unsigned rate, block, preroll;
    dc_params params;
} dream_setup;

static void worker_queries(t_dream *x, int req, const char *model, const char *target)
{
    char err[DC_TEXT];
    if (req & REQ_MODELS) {
        dc_models *m = (dc_models *)malloc(sizeof(*m));
        if (m && dc_list_models(target, QUERY_MS, m, err, sizeof(err)) == 0) {
            char names[1024] = "";
            int i;
            for (i = 0; i < m->n; i++) {
                strncat(names, " ", sizeof(names) - strlen(names) - 1);
                strncat(names, m->models[i].name, sizeof(names) - strlen(names) - 1);
            }
            pthread_mutex_lock(&x->x_mutex);
            for (i = 0; i < m->n; i++)
                line_locked(x, LINE_OUTLET, "model %s %u %u %s %d", m->models[i].name,
                            m->models[i].sample_rate, m->models[i].fixed_input_samples,
                            m->models[i].default_layer, m->models[i].trained);
            line_locked(x, LINE_OUTLET, "models%s", names);
            line_locked(x, LINE_OUTLET, "default_model %s", m->default_model);
            pthread_mutex_unlock(&x->x_mutex);
        } else if (m) {
            LINE(x, LINE_ERROR, "dream~: models: %s", err);
        }
        free(m);
    }
    if (req & REQ_LAYERS) {
        dc_layers *l = (dc_layers *)malloc(sizeof(*l));
        if (l && dc_list_layers(target, model, QUERY_MS, l, err, sizeof(err)) == 0) {
            char names[2048] = "";
            int i;
            for (i = 0; i < l->n; i++) {
                strncat(names, " ", sizeof(names) - strlen(names) - 1);
                strncat(names, l->layers[i].name, sizeof(names) - strlen(names) - 1);
            }
            pthread_mutex_lock(&x->x_mutex);
            for (i = 0; i < l->n; i++)
                line_locked(x, LINE_OUTLET, "layer %s %u %g %s", l->layers[i].name,
                            l->layers[i].channels, l->layers[i].frame_rate,
                            l->layers[i].module_type);
            line_locked(x, LINE_OUTLET, "layers %s%s", l->model, names);
            line_locked(x, LINE_OUTLET, "default_layer %s", l->default_layer);
            pthread_mutex_unlock(&x->x_mutex);
        } else if (l) {
            LINE(x, LINE_ERROR, "dream~: layers?: %s", err);
        }
        free(l);
    }
}

/* Takes the requests the stream loop serves; returns 0 when the stream must end. */
static int worker_requests(t_dream *x, dc_params *changes, int *reset, int *queries,
                           char *model, char *target)
{
    int keep;
    pthread_mutex_lock(&x->x_mutex);
    keep = x->x_want && !(x->x_req & (REQ_QUIT | REQ_RESTART));
    *queries = x->x_req & (REQ_MODELS | REQ_LAYERS);
    memcpy(model, x->x_query_model, DC_NAME);
    memcpy(target, x->x_target, sizeof(x->x_target));
    *changes = x->x_changes;
    *reset = x->x_reset;
    x->x_changes.set = 0;
    x->x_reset = 0;
    x->x_req &= ~(REQ_PARAMS | REQ_MODELS | REQ_LAYERS);
    pthread_mutex_unlock(&x->x_mutex);
    return keep;
}

/* Sends the target sound if it changed (a copy, so Pd may replace it meanwhile). */
static void worker_target(t_dream *x, dc_stream *s)
{
    float *copy = NULL;
    size_t n = 0;
    unsigned rate = 0;
    pthread_mutex_lock(&x->x_mutex);
    if (x->x_tsound_dirty && x->x_tsound) {
        copy = (float *)malloc(x->x_tsound_len * sizeof(float));
        if (copy) {
            memcpy(copy, x->x_tsound, x->x_tsound_len * sizeof(float));
            n = x->x_tsound_len;
            rate = x->x_tsound_rate;
            x->x_tsound_dirty = 0;
        }
    }
    pthread_mutex_unlock(&x->x_mutex);
    if (copy) {
        dc_stream_send_target(s, copy, n, rate);
        free(copy);
    }
}

/* Runs one stream until it is asked to stop or fails; why is set on failure. */
static int worker_stream(t_dream *x, const dream_setup *su, char *why, size_t whylen)
{
    char err[DC_TEXT], model[DC_NAME], target[128];
    double opened = dc_now(), last_reply, rtt_sum = 0, rtt_max = 0, rtt_since;
    double *sent_at = (double *)calloc(SEQ_SLOTS, sizeof(double));
    float *block = (float *)malloc(su->block * sizeof(float));
    uint64_t seq = 0, received = 0;
    unsigned long rtt_n = 0;
    int end = END_ASKED, queries, reset;
    dc_params changes;
    dc_event ev;
    dc_stream *s;

    if (!sent_at || !block) {
        snprintf(why, whylen, "out of memory");
        free(sent_at);
        free(block);
        return END_FAILED;
    }
    worker_state(x, STATE_CONNECTING);
    s = dc_stream_open(su->target, su->rate, su->block, &su->params, err, sizeof(err));
    if (!s) {
        snprintf(why, whylen, "%s", err);
        free(sent_at);
        free(block);
        return END_FAILED;
    }
    /* Wait for StreamReady, staying responsive to free and disconnect. */
    for (;;) {
        if (dc_stream_poll(s, &ev, 20)) {
            if (ev.kind == DC_EV_READY)
                break;
            if (ev.kind == DC_EV_CLOSED) {
                snprintf(why, whylen, "%s: %s", ev.code, ev.text);
                end = END_FAILED;
                goto done;
            }
            continue;
        }
        pthread_mutex_lock(&x->x_mutex);
        if (!x->x_want || (x->x_req & (REQ_QUIT | REQ_RESTART)))
            end = END_ASKED;
        else if (dc_now() - opened > READY_SECONDS)
            end = END_FAILED;
        else
            end = -1;
        pthread_mutex_unlock(&x->x_mutex);
        if (end == END_FAILED)
            snprintf(why, whylen, "no answer within %g s", READY_SECONDS);
        if (end >= 0)
            goto done;
    }
    end = END_ASKED;

    atomic_store(&x->x_latency, (int)(ev.latency + su->block + su->preroll));
    atomic_store(&x->x_late, 0);
    atomic_store(&x->x_iterations_run, 0);
    atomic_store(&x->x_rtt_us, 0);
    atomic_store(&x->x_rtt_max_us, 0);
    atomic_store(&x->x_prefill_next, (int)(su->block + su->preroll));
    pthread_mutex_lock(&x->x_mutex);
    state_locked(x, STATE_CONNECTED);
    if (x->x_outage)
        line_locked(x, LINE_POST, "dream~: connected to %s again", su->target);
    x->x_outage = 0;
    pthread_mutex_unlock(&x->x_mutex);
    atomic_store(&x->x_link, LINK_ARM);   /* perform clears the rings, then ON */
    last_reply = rtt_since = dc_now();

    pthread_mutex_lock(&x->x_mutex);
    x->x_tsound_dirty = x->x_tsound != NULL;   /* a new stream needs it again */
    pthread_mutex_unlock(&x->x_mutex);
    while (worker_requests(x, &changes, &reset, &queries, model, target)) {
        double now;
        if (changes.set || reset)
            dc_stream_send_control(s, &changes, reset);
        worker_target(x, s);
        if (queries)
            worker_queries(x, queries, model, target);
        if (atomic_load(&x->x_link) == LINK_ON) {
            while (dream_ring_readable(&x->x_in) >= su->block
                   && dc_stream_backlog(s) < MAX_BACKLOG) {
                dream_ring_read(&x->x_in, block, su->block);
                sent_at[seq % SEQ_SLOTS] = dc_now();
                if (dc_stream_send_audio(s, seq, block, su->block) < 0)
                    break;          /* the call is ending; poll says why */
                seq++;
            }
        }
        if (dc_stream_poll(s, &ev, POLL_MS)) {
            now = dc_now();
            switch (ev.kind) {
            case DC_EV_AUDIO:
                last_reply = now;
                received++;
                if (atomic_load(&x->x_link) == LINK_ON && ev.frames == su->block) {
                    double rtt = now - sent_at[ev.seq % SEQ_SLOTS];
                    if (dream_ring_write(&x->x_out, ev.pcm, ev.frames) < ev.frames)
                        atomic_fetch_add(&x->x_dropped, 1);
                    rtt_sum += rtt;
                    rtt_n++;
                    if (rtt > rtt_max)
                        rtt_max = rtt;
                }
                break;
            case DC_EV_READY: { /* after a model change */
                int latency = (int)(ev.latency + su->block + su->preroll);
                if (latency != atomic_exchange(&x->x_latency, latency))
                    LINE(x, LINE_OUTLET, "latency %d", latency);
                break;
            }
            case DC_EV_STATS:
                atomic_store(&x->x_late, (unsigned long)ev.late_blocks);
                atomic_store(&x->x_iterations_run, (int)lrintf(1000 * ev.iterations_run));
                break;
            case DC_EV_WARNING:
                pthread_mutex_lock(&x->x_mutex);
                line_locked(x, LINE_OUTLET, "warning %s %s", ev.code, ev.text);
                if (strncmp(ev.code, "invalid", 7) == 0)
                    line_locked(x, LINE_ERROR, "dream~: %s", ev.text);
                else if (!strcmp(ev.code, "model_changed"))
                    line_locked(x, LINE_POST, "dream~: %s", ev.text);
                pthread_mutex_unlock(&x->x_mutex);
                break;
            case DC_EV_CLOSED:
                snprintf(why, whylen, "%s: %s", ev.code, ev.text);
                end = END_LOST;
                break;
            }
            if (end == END_LOST)
                break;
        }
        now = dc_now();
        if (received < seq && now - last_reply > STALL_SECONDS
            && now - sent_at[received % SEQ_SLOTS] > STALL_SECONDS) {
            snprintf(why, whylen, "no reply for %g s", STALL_SECONDS);
            end = END_LOST;
            break;
        }
        if (now - rtt_since >= 1.0) {
            if (rtt_n) {
                atomic_store(&x->x_rtt_us, (unsigned long)(1e6 * rtt_sum / rtt_n));
                atomic_store(&x->x_rtt_max_us, (unsigned long)(1e6 * rtt_max));
            }
            rtt_sum = rtt_max = 0;
            rtt_n = 0;
            rtt_since = now;
        }
    }
done:
    atomic_store(&x->x_link, LINK_OFF);
    dc_stream_close(s);
    free(sent_at);
    free(block);
    return end;
}

static void *dream_worker(void *arg)
{
    t_dream *x = (t_dream *)arg;
    double backoff = BACKOFF_MIN;
    char why[DC_TEXT + 64];
    pthread_mutex_lock(&x->x_mutex);
    while (!(x->x_req & REQ_QUIT)) {
        dream_setup su;
        struct timespec until;
        double t;
        int end;
        if (x->x_req & (REQ_MODELS | REQ_LAYERS)) {   /* while not streaming */
            int req = x->x_req;
            char model[DC_NAME], target[128];
            x->x_req &= ~(REQ_MODELS | REQ_LAYERS);
            memcpy(model, x->x_query_model, sizeof(model));
            memcpy(target, x->x_target, sizeof(target));
            pthread_mutex_unlock(&x->x_mutex);
            worker_queries(x, req, model, target);
            pthread_mutex_lock(&x->x_mutex);
            continue;
        }
        if (!x->x_want) {
            state_locked(x, STATE_DISCONNECTED);
            x->x_req &= ~(REQ_RESTART | REQ_PARAMS);
            pthread_cond_wait(&x->x_cond, &x->x_mutex);
            continue;
        }
        memcpy(su.target, x->x_target, sizeof(su.target));
        su.rate = x->x_rate;
        su.block = x->x_block;
        su.preroll = x->x_preroll;
        su.params = x->x_params;     /* a new stream starts from all of them */
        x->x_changes.set = 0;
        x->x_reset = 0;
        x->x_req &= ~(REQ_RESTART | REQ_PARAMS);
        pthread_mutex_unlock(&x->x_mutex);

        why[0] = 0;
        end = worker_stream(x, &su, why, sizeof(why));

        pthread_mutex_lock(&x->x_mutex);
        state_locked(x, STATE_DISCONNECTED);
        if (end == END_ASKED) {
            backoff = BACKOFF_MIN;
            continue;
        }
        if (end == END_LOST)
            backoff = BACKOFF_MIN;
        if (!x->x_outage) {
            /* One message per outage; the state messages tell the rest. */
            line_locked(x, LINE_ERROR, "dream~: %s %s (%s); output is %s, reconnecting",
                        end == END_LOST ? "lost the stream to" : "cannot stream from",
                        su.target, why, x->x_dry ? "the dry signal" : "silent");
            x->x_outage = 1;
        }
        /* Back off; any request (or a parameter fix) ends the wait early. */
        clock_gettime(CLOCK_MONOTONIC, &until);
        t = until.tv_sec + until.tv_nsec * 1e-9 + backoff;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        while (x->x_want && !x->x_req
               && pthread_cond_timedwait(&x->x_cond, &x->x_mutex, &until) == 0)
            ;
        backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
    }
    pthread_mutex_unlock(&x->x_mutex);
    return NULL;
}

/* ---- Pd side: helpers ----------------------------------------------------- */

/* Tells the worker something changed. */
static void dream_wake(t_dream *x, int req)
{
    pthread_mutex_lock(&x->x_mutex);
    x->x_req |= req;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

/* Records a parameter change: kept for new streams, sent to the live one. */
static void dream_change(t_dream *x, const dc_params *p)
{
    pthread_mutex_lock(&x->x_mutex);
    dc_params_merge(&x->x_params, p);
    dc_params_merge(&x->x_changes, p);
    x->x_req |= REQ_PARAMS;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static float clampf(const char *what, t_floatarg f, float lo, float hi)
{
    if (f < lo || f > hi || f != f) {
        float c = f != f ? lo : (f < lo ? lo : hi);
        pd_error(0, "dream~: %s %g out of range %g..%g; using %g", what, f, lo, hi, c);
        return c;
    }
    return f;
}

/* Parses "NAME[@WEIGHT] [CH ...] NAME ..." into layers; 0 on success. */
static int dream_parse_layers(dc_params *p, int argc, const t_atom *argv)
{
    int i;
    p->nlayers = 0;
    for (i = 0; i < argc; i++) {
        if (argv[i].a_type == A_SYMBOL) {
            dc_layer *l;
            const char *name = atom_getsymbol(&argv[i])->s_name;
            const char *at = strchr(name, '@');
            size_t len = at ? (size_t)(at - name) : strlen(name);
            if (p->nlayers == DC_MAX_LAYERS) {
                pd_error(0, "dream~: at most %d layers", DC_MAX_LAYERS);
                return -1;
            }
            if (!len || len >= DC_NAME) {
                pd_error(0, "dream~: bad layer name '%s'", name);
                return -1;
            }
            l = &p->layers[p->nlayers++];
            memset(l, 0, sizeof(*l));
            memcpy(l->name, name, len);
            l->weight = at ? (float)atof(at + 1) : 1.0f;
        } else if (argv[i].a_type == A_FLOAT) {
            dc_layer *l = p->nlayers ? &p->layers[p->nlayers - 1] : NULL;
            t_float ch = atom_getfloat(&argv[i]);
            if (!l) {
                pd_error(0, "dream~: layer: a channel (%g) before any layer name", ch);
                return -1;
            }
            if (ch < 0 || ch != (int)ch || l->nchannels == DC_MAX_LAYER_CHANNELS) {
                pd_error(0, "dream~: layer %s: bad or too many channels (%g)", l->name, ch);
                return -1;
            }
            l->channels[l->nchannels++] = (int32_t)ch;
        }
    }
    p->set |= DC_SET_LAYERS;
    return 0;
}

/* ---- methods -------------------------------------------------------------- */

static void dream_connect(t_dream *x, t_symbol *s, int argc, t_atom *argv)
{
    pthread_mutex_lock(&x->x_mutex);
    if (argc && argv[0].a_type == A_SYMBOL)
        snprintf(x->x_target, sizeof(x->x_target), "%s", atom_getsymbol(argv)->s_name);
    x->x_want = 1;
    x->x_outage = 0;
    x->x_req |= REQ_RESTART;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_disconnect(t_dream *x)
{
    pthread_mutex_lock(&x->x_mutex);
    x->x_want = 0;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_model(t_dream *x, t_symbol *name)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    if (strlen(name->s_name) >= DC_NAME) {
        pd_error(x, "dream~: model name too long");
        return;
    }
    snprintf(p.model, sizeof(p.model), "%s", name->s_name);
    /* A new model has other layers: its default layer, unless told. */
    p.set = DC_SET_MODEL | DC_SET_LAYERS;
    p.nlayers = 0;
    pthread_mutex_lock(&x->x_mutex);
    dc_params_merge(&x->x_params, &p);
    p.set = DC_SET_MODEL;   /* the server drops the layers by itself */
    dc_params_merge(&x->x_changes, &p);
    x->x_req |= REQ_PARAMS;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_layer(t_dream *x, t_symbol *s, int argc, t_atom *argv)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    if (!argc) {   /* no layer named: back to the model's default */
        pthread_mutex_lock(&x->x_mutex);
        x->x_params.nlayers = 0;
        x->x_params.set &= ~DC_SET_LAYERS;
        pthread_mutex_unlock(&x->x_mutex);
        /* A Control cannot say "default layer" (empty = unchanged): reopen. */
        dream_wake(x, REQ_RESTART);
        return;
    }
    if (dream_parse_layers(&p, argc, argv) == 0)
        dream_change(x, &p);
}

#define DREAM_SETTER(fn, bit, field, type, lo, hi, what)        \
    static void fn(t_dream *x, t_floatarg f)                    \
    {                                                           \
        dc_params p;                                            \
        memset(&p, 0, sizeof(p));                               \
        p.field = (type)clampf(what, f, lo, hi);                \
        p.set = bit;                                            \
        dream_change(x, &p);                                    \
    }

DREAM_SETTER(dream_iterations, DC_SET_ITERATIONS, iterations, int, 0, 1000, "iterations")
DREAM_SETTER(dream_step, DC_SET_STEP, step_size, float, 0, 10, "step")
DREAM_SETTER(dream_mix, DC_SET_MIX, mix, float, 0, 1, "mix")
DREAM_SETTER(dream_jitter, DC_SET_JITTER, time_jitter, int, 0, 1000000, "jitter")
DREAM_SETTER(dream_lowpass, DC_SET_LOWPASS, lowpass_hz, float, 0, 1e6, "lowpass")
DREAM_SETTER(dream_smoothing, DC_SET_SMOOTHING, smoothing, float, 0, 10, "smoothing")
DREAM_SETTER(dream_seed, DC_SET_SEED, seed, uint64_t, 0, 4294967295.0, "seed")

/* `objective NAME` and `update NAME`: the server checks the name and answers an
 * unknown one with a warning on the info outlet; the stream goes on. */
static void dream_choice(t_dream *x, unsigned bit, t_symbol *name)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    snprintf(bit == DC_SET_OBJECTIVE ? p.objective : p.update, sizeof(p.update), "%s",
             name->s_name);
    p.set = bit;
    dream_change(x, &p);
}

static void dream_objective(t_dream *x, t_symbol *name)
{
    dream_choice(x, DC_SET_OBJECTIVE, name);
}

static void dream_update(t_dream *x, t_symbol *name)
{
    dream_choice(x, DC_SET_UPDATE, name);
}

static void dream_mode(t_dream *x, t_symbol *mode)
{
    dc_params p;
    if (strcmp(mode->s_name, "process") && strcmp(mode->s_name, "generate")) {
        pd_error(x, "dream~: mode %s: use process or generate", mode->s_name);
        return;
    }
    memset(&p, 0, sizeof(p));
    snprintf(p.mode, sizeof(p.mode), "%s", mode->s_name);
    p.set = DC_SET_MODE;
    dream_change(x, &p);
}

static void dream_target(t_dream *x, t_symbol *array)
{
    /* Copy the array now, in Pd's thread: the worker sends the copy as a
     * Control, and again whenever the stream is reopened. */
    t_garray *a = (t_garray *)pd_findbyclass(array, garray_class);
    t_word *vec;
    int n, i;
    float *buf;
    if (!a) {
        pd_error(x, "dream~: target %s: no such array", array->s_name);
        return;
    }
    if (!garray_getfloatwords(a, &n, &vec) || n < 1) {
        pd_error(x, "dream~: target %s: not a float array, or empty", array->s_name);
        return;
    }
    if (!(buf = (float *)malloc((size_t)n * sizeof(float)))) {
        pd_error(x, "dream~: target %s: out of memory", array->s_name);
        return;
    }
    for (i = 0; i < n; i++)
        buf[i] = vec[i].w_float;
    pthread_mutex_lock(&x->x_mutex);
    free(x->x_tsound);
    x->x_tsound = buf;
    x->x_tsound_len = (size_t)n;
    x->x_tsound_rate = x->x_rate ? x->x_rate : (unsigned)sys_getsr();
    x->x_tsound_dirty = 1;
    x->x_req |= REQ_PARAMS;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_reset(t_dream *x)
{
    pthread_mutex_lock(&x->x_mutex);
    x->x_reset = 1;
    x->x_req |= REQ_PARAMS;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_block(t_dream *x, t_floatarg f)
{
    unsigned b = (unsigned)clampf("block", f, MIN_BLOCK, MAX_BLOCK);
    pthread_mutex_lock(&x->x_mutex);
    if (b != x->x_block) {
        x->x_block = b;
        x->x_req |= REQ_RESTART;     /* the block size is fixed per stream */
        pthread_cond_signal(&x->x_cond);
    }
    pthread_mutex_unlock(&x->x_mutex);
}

/* `window N`: frames of context the server dreams per block (0 = the model's
 * own window). Shorter is cheaper; it is fixed per stream, so this reopens. */
static void dream_window(t_dream *x, t_floatarg f)
{
    unsigned w = (unsigned)clampf("window", f, 0, 480000);
    pthread_mutex_lock(&x->x_mutex);
    if (w != x->x_params.window || !(x->x_params.set & DC_SET_WINDOW)) {
        x->x_params.window = w;
        x->x_params.set |= DC_SET_WINDOW;
        x->x_req |= REQ_RESTART;
        pthread_cond_signal(&x->x_cond);
    }
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_preroll(t_dream *x, t_floatarg f)
{
    unsigned p = (unsigned)clampf("preroll", f, 0, MAX_PREROLL);
    pthread_mutex_lock(&x->x_mutex);
    if (p != x->x_preroll) {
        x->x_preroll = p;
        x->x_req |= REQ_RESTART;     /* latency changes: start afresh */
        pthread_cond_signal(&x->x_cond);
    }
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_bypass(t_dream *x, t_floatarg f)
{
    x->x_bypass = f != 0;
}

static void dream_dry(t_dream *x, t_floatarg f)
{
    x->x_dry = f != 0;
}

static void dream_models(t_dream *x)
{
    dream_wake(x, REQ_MODELS);
}

static void dream_layers_query(t_dream *x, t_symbol *model)
{
    pthread_mutex_lock(&x->x_mutex);
    snprintf(x->x_query_model, sizeof(x->x_query_model), "%s",
             model != &s_ ? model->s_name : x->x_params.model);
    x->x_req |= REQ_LAYERS;
    pthread_cond_signal(&x->x_cond);
    pthread_mutex_unlock(&x->x_mutex);
}

static void dream_print(t_dream *x)
{
    dc_params p;
    char target[128], layers[512] = "";
    unsigned rate, block, preroll;
    int i, j, state = atomic_load(&x->x_state);
    pthread_mutex_lock(&x->x_mutex);
    p = x->x_params;
    memcpy(target, x->x_target, sizeof(target));
    rate = x->x_rate;
    block = x->x_block;
    preroll = x->x_preroll;
    pthread_mutex_unlock(&x->x_mutex);
    for (i = 0; i < p.nlayers; i++) {
        char one[64];
        snprintf(one, sizeof(one), " %s", p.layers[i].name);
        strncat(layers, one, sizeof(layers) - strlen(layers) - 1);
        for (j = 0; j < p.layers[i].nchannels; j++) {
            snprintf(one, sizeof(one), " %d", (int)p.layers[i].channels[j]);
            strncat(layers, one, sizeof(layers) - strlen(layers) - 1);
        }
    }
#define OR_DEFAULT(bit, fmt, v) ((p.set & (bit)) ? (snprintf(buf, sizeof(buf), fmt, v), buf) : "default")
    {
        char buf[64];
        post("dream~: server %s, %s, rate %u Hz, block %u, preroll %u, latency %d samples",
             target, state_names[state], rate, block, preroll,
             state == STATE_CONNECTED ? atomic_load(&x->x_latency) : 0);
        post("  model %s, layers%s", (p.set & DC_SET_MODEL) ? p.model : "default",
             p.nlayers ? layers : " default");
        post("  iterations %s", OR_DEFAULT(DC_SET_ITERATIONS, "%d", p.iterations));
        post("  step %s", OR_DEFAULT(DC_SET_STEP, "%g", p.step_size));
        post("  mix %s", OR_DEFAULT(DC_SET_MIX, "%g", p.mix));
        post("  jitter %s", OR_DEFAULT(DC_SET_JITTER, "%d", p.time_jitter));
        post("  lowpass %s", OR_DEFAULT(DC_SET_LOWPASS, "%g", p.lowpass_hz));
        post("  smoothing %s", OR_DEFAULT(DC_SET_SMOOTHING, "%g", p.smoothing));
        post("  mode %s", (p.set & DC_SET_MODE) ? p.mode : "process");
        post("  bypass %d, dry %d, underruns %lu, overruns %lu, late %lu, dropped %lu",
             x->x_bypass, x->x_dry, x->x_underruns, x->x_overruns,
             atomic_load(&x->x_late), atomic_load(&x->x_dropped));
        post("  iterations run per block (server, last second) %.2f",
             atomic_load(&x->x_iterations_run) / 1000.0);
        post("  rtt %.2f ms (max %.2f ms over the last second)",
             atomic_load(&x->x_rtt_us) / 1000.0, atomic_load(&x->x_rtt_max_us) / 1000.0);
    }
#undef OR_DEFAULT
}

/* ---- clock: what the worker learnt -> outlet and Pd window ---------------- */

static void dream_out_float(t_dream *x, const char *sel, t_float f)
{
    t_atom a;
    SETFLOAT(&a, f);
    outlet_anything(x->x_info, gensym(sel), 1, &a);
}

static void dream_tick(t_dream *x)
{
    dream_line *lines, *l;
    int state = atomic_load(&x->x_state);
    pthread_mutex_lock(&x->x_mutex);
    lines = x->x_lines;
    x->x_lines = NULL;
    x->x_lines_tail = &x->x_lines;
    x->x_nlines = 0;
    pthread_mutex_unlock(&x->x_mutex);

    while ((l = lines)) {
        lines = l->next;
        if (l->kind == LINE_OUTLET) {
            t_binbuf *b = binbuf_new();
            binbuf_text(b, l->text, strlen(l->text));
            if (binbuf_getnatom(b) && binbuf_getvec(b)[0].a_type == A_SYMBOL)
                outlet_anything(x->x_info, binbuf_getvec(b)[0].a_w.w_symbol,
                                binbuf_getnatom(b) - 1, binbuf_getvec(b) + 1);
            binbuf_free(b);
        } else if (l->kind == LINE_ERROR) {
            pd_error(x, "%s", l->text);
        } else {
            post("%s", l->text);
        }
        free(l);
    }
    if (state == STATE_CONNECTED && ++x->x_ticks >= REPORT_TICKS) {
        x->x_ticks = 0;
        dream_out_float(x, "rtt", atomic_load(&x->x_rtt_us) / 1000.0);
        dream_out_float(x, "underruns", x->x_underruns);
        dream_out_float(x, "late", atomic_load(&x->x_late));
        dream_out_float(x, "iterations_run", atomic_load(&x->x_iterations_run) / 1000.0);
    }
    clock_delay(x->x_clock, TICK_MS);
}

/* ---- creation arguments --------------------------------------------------- */

/* Applies "-flag args..." pairs; flags are symbols beginning with '-'. */
static void dream_args(t_dream *x, int argc, t_atom *argv)
{
    int i = 0;
    while (i < argc) {
        const char *flag;
        int n;
        if (argv[i].a_type != A_SYMBOL || atom_getsymbol(&argv[i])->s_name[0] != '-') {
            pd_error(x, "dream~: unexpected creation argument; see the help patch");
            i++;
            continue;
        }
        flag = atom_getsymbol(&argv[i])->s_name + 1;
        for (n = 0; i + 1 + n < argc; n++) {
            const t_atom *a = &argv[i + 1 + n];
            if (a->a_type == A_SYMBOL && atom_getsymbol((t_atom *)a)->s_name[0] == '-')
                break;
        }
        t_atom *args = argv + i + 1;
        t_float f = n ? atom_getfloat(args) : 0;
        t_symbol *sym = n ? atom_getsymbol(args) : &s_;
        if (!strcmp(flag, "server") && n)
            snprintf(x->x_target, sizeof(x->x_target), "%s", sym->s_name);
        else if (!strcmp(flag, "model") && n) {
            /* unlike the message, keeps the -layer flags whatever their order */
            dc_params p;
            memset(&p, 0, sizeof(p));
            snprintf(p.model, sizeof(p.model), "%s", sym->s_name);
            p.set = DC_SET_MODEL;
            dream_change(x, &p);
        }
        else if (!strcmp(flag, "layer") && n) {
            /* repeatable: each -layer adds to the list */
            dc_params p = x->x_params;
            int before = (p.set & DC_SET_LAYERS) ? p.nlayers : 0;
            dc_params one;
            memset(&one, 0, sizeof(one));
            if (dream_parse_layers(&one, n, args) == 0) {
                int k;
                for (k = 0; k < one.nlayers && before + k < DC_MAX_LAYERS; k++)
                    p.layers[before + k] = one.layers[k];
                p.nlayers = before + k;
                p.set = DC_SET_LAYERS;
                dream_change(x, &p);
            }
        } else if (!strcmp(flag, "iterations") && n)
            dream_iterations(x, f);
        else if (!strcmp(flag, "step") && n)
            dream_step(x, f);
        else if (!strcmp(flag, "mix") && n)
            dream_mix(x, f);
        else if (!strcmp(flag, "jitter") && n)
            dream_jitter(x, f);
        else if (!strcmp(flag, "lowpass") && n)
            dream_lowpass(x, f);
        else if (!strcmp(flag, "smoothing") && n)
            dream_smoothing(x, f);
        else if (!strcmp(flag, "seed") && n)
            dream_seed(x, f);
        else if (!strcmp(flag, "mode") && n)
            dream_mode(x, sym);
        else if (!strcmp(flag, "block") && n)
            x->x_block = (unsigned)clampf("block", f, MIN_BLOCK, MAX_BLOCK);
        else if (!strcmp(flag, "preroll") && n)
            x->x_preroll = (unsigned)clampf("preroll", f, 0, MAX_PREROLL);
        else if (!strcmp(flag, "dry") && n)
            x->x_dry = f != 0;
        else
            pd_error(x, "dream~: unknown or empty flag -%s; see the help patch", flag);
        i += 1 + n;
    }
}

/* ---- new, free, perform, dsp, setup -------------------------------------- */

static void *dream_new(t_symbol *s, int argc, t_atom *argv)
{
    t_dream *x = (t_dream *)pd_new(dream_class);
    pthread_condattr_t ca;
    outlet_new(&x->x_obj, &s_signal);
    x->x_info = outlet_new(&x->x_obj, 0);
    if (dream_ring_init(&x->x_in, RING_SIZE) || dream_ring_init(&x->x_out, RING_SIZE)) {
        pd_error(x, "dream~: out of memory");
        dream_ring_free(&x->x_in);
        return NULL;
    }
    atomic_init(&x->x_link, LINK_OFF);
    atomic_init(&x->x_state, STATE_DISCONNECTED);
    atomic_init(&x->x_latency, 0);
    atomic_init(&x->x_prefill_next, 0);
    atomic_init(&x->x_late, 0);
    atomic_init(&x->x_iterations_run, 0);
    atomic_init(&x->x_rtt_us, 0);
    atomic_init(&x->x_rtt_max_us, 0);
    atomic_init(&x->x_dropped, 0);
    x->x_told_state = STATE_DISCONNECTED;
    x->x_lines_tail = &x->x_lines;
    pthread_mutex_init(&x->x_mutex, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->x_cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(x->x_target, sizeof(x->x_target), "%s", DEFAULT_SERVER);
    x->x_rate = (unsigned)sys_getsr();
    x->x_block = DEFAULT_BLOCK;
    x->x_preroll = DEFAULT_PREROLL;
    dream_args(x, argc, argv);
    x->x_want = 1;      /* connect right away; `disconnect` stops it */
    x->x_req = 0;
    x->x_changes.set = 0;
    if (pthread_create(&x->x_thread, NULL, dream_worker, x)) {
        pd_error(x, "dream~: cannot start the network thread");
        pthread_mutex_destroy(&x->x_mutex);
        pthread_cond_destroy(&x->x_cond);
        dream_ring_free(&x->x_in);
        dream_ring_free(&x->x_out);
        return NULL;
    }
    x->x_clock = clock_new(x, (t_method)dream_tick);
    clock_delay(x->x_clock, 0);
    return x;
}

static void dream_free(t_dream *x)
{
    dream_line *l;
    dream_wake(x, REQ_QUIT);
    pthread_join(x->x_thread, NULL);    /* it closes its stream on the way out */
    clock_free(x->x_clock);
    while ((l = x->x_lines)) {
        x->x_lines = l->next;
        free(l);
    }
    pthread_mutex_destroy(&x->x_mutex);
    pthread_cond_destroy(&x->x_cond);
    free(x->x_tsound);
    dream_ring_free(&x->x_in);
    dream_ring_free(&x->x_out);
}

static t_int *dream_perform(t_int *w)
{
    t_dream *x = (t_dream *)(w[1]);
    t_sample *in = (t_sample *)(w[2]);
    t_sample *out = (t_sample *)(w[3]);
    int n = (int)(w[4]), k = 0;
    int link = atomic_load_explicit(&x->x_link, memory_order_acquire);
    size_t got;

    if (link == LINK_ARM) {
        /* The worker waits until ON: the rings are ours to clear. */
        int expected = LINK_ARM;
        dream_ring_clear(&x->x_in);
        dream_ring_clear(&x->x_out);
        x->x_prefill = atomic_load(&x->x_prefill_next);
        x->x_deficit = 0;
        x->x_underruns = x->x_overruns = 0;
        if (atomic_compare_exchange_strong_explicit(&x->x_link, &expected, LINK_ON,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            link = LINK_ON;
        else
            link = expected;    /* the worker gave up meanwhile */
    }
    if (link != LINK_ON) {
        if (!x->x_dry)
            memset(out, 0, n * sizeof(t_sample));
        else if (out != in)
            memcpy(out, in, n * sizeof(t_sample));
        return w + 5;
    }
    /* Input first: Pd may hand us the same buffer for in and out. */
    if (dream_ring_write(&x->x_in, in, n) < (size_t)n)
        x->x_overruns++;
    if (x->x_bypass) {
        /* Keep the stream and its timing; hear the input untouched. */
        size_t skip = (size_t)n, pre = x->x_prefill < n ? (size_t)x->x_prefill : (size_t)n;
        x->x_prefill -= (int)pre;
        skip -= pre;
        skip += x->x_deficit;
        got = dream_ring_read(&x->x_out, NULL, skip);
        x->x_deficit = skip - got;
        if (out != in)
            memcpy(out, in, n * sizeof(t_sample));
        return w + 5;
    }
    while (x->x_prefill > 0 && k < n) {
        out[k++] = 0;
        x->x_prefill--;
    }
    if (x->x_deficit)
        x->x_deficit -= dream_ring_read(&x->x_out, NULL, x->x_deficit);
    if (k < n) {
        got = dream_ring_read(&x->x_out, out + k, (size_t)(n - k));
        if (got < (size_t)(n - k)) {
            memset(out + k + got, 0, (n - k - got) * sizeof(t_sample));
            x->x_deficit += (size_t)(n - k) - got;
            x->x_underruns++;
        }
    }
    return w + 5;
}

static void dream_dsp(t_dream *x, t_signal **sp)
{
    unsigned rate = (unsigned)sp[0]->s_sr;
    pthread_mutex_lock(&x->x_mutex);
    if (rate != x->x_rate) {
        x->x_rate = rate;
        x->x_req |= REQ_RESTART;   /* a stream's rate is fixed when it opens */
        pthread_cond_signal(&x->x_cond);
    }
    pthread_mutex_unlock(&x->x_mutex);
    dsp_add(dream_perform, 4, x, sp[0]->s_vec, sp[1]->s_vec, (t_int)sp[0]->s_n);
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
void dream_tilde_setup(void)
{
    dc_global_init();
    dream_class = class_new(gensym("dream~"), (t_newmethod)dream_new, (t_method)dream_free,
                            sizeof(t_dream), CLASS_DEFAULT, A_GIMME, 0);
    CLASS_MAINSIGNALIN(dream_class, t_dream, x_f);
    class_addmethod(dream_class, (t_method)dream_dsp, gensym("dsp"), A_CANT, 0);
    class_addmethod(dream_class, (t_method)dream_connect, gensym("connect"), A_GIMME, 0);
    class_addmethod(dream_class, (t_method)dream_disconnect, gensym("disconnect"), 0);
    class_addmethod(dream_class, (t_method)dream_model, gensym("model"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_layer, gensym("layer"), A_GIMME, 0);
    class_addmethod(dream_class, (t_method)dream_layer, gensym("layers"), A_GIMME, 0);
    class_addmethod(dream_class, (t_method)dream_iterations, gensym("iterations"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_step, gensym("step"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_mix, gensym("mix"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_jitter, gensym("jitter"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_lowpass, gensym("lowpass"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_smoothing, gensym("smoothing"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_seed, gensym("seed"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_mode, gensym("mode"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_target, gensym("target"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_objective, gensym("objective"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_window, gensym("window"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_update, gensym("update"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_block, gensym("block"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_preroll, gensym("preroll"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_reset, gensym("reset"), 0);
    class_addmethod(dream_class, (t_method)dream_bypass, gensym("bypass"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_dry, gensym("dry"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_models, gensym("models"), 0);
    class_addmethod(dream_class, (t_method)dream_layers_query, gensym("layers?"),
                    A_DEFSYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_print, gensym("print"), 0);
}
