/* dream_client: StreamDream and the listings over gRPC core + protobuf-c.
 *
 * gRPC core rules this file lives by:
 *   - a call allows one SEND_MESSAGE and one RECV_MESSAGE in flight at a time,
 *     so outgoing messages wait in a small FIFO and go one by one;
 *   - RECV_INITIAL_METADATA is started as its own batch: without it a client's
 *     RECV_MESSAGE never completes;
 *   - every started batch completes exactly once (cancelling makes pending
 *     ones complete), and the call may only be released after all have.
 * Each stream has its own completion queue and channel: a fresh channel per
 * (re)connection means gRPC's own reconnect back-off (up to minutes) never
 * delays ours. */
#include "dream_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "audiodream/v1/audiodream.pb-c.h"

#define METHOD_STREAM "/audiodream.v1.DreamService/StreamDream"
#define METHOD_MODELS "/audiodream.v1.DreamService/ListModels"
#define METHOD_LAYERS "/audiodream.v1.DreamService/ListLayers"
#define SEND_QUEUE 64
#define MAX_MESSAGE (16 * 1024 * 1024)

enum { TAG_SEND = 1, TAG_META, TAG_RECV, TAG_STATUS };
#define TAG(t) ((void *)(intptr_t)(t))

struct dc_stream {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    int outstanding;                     /* batches started, not completed */
    grpc_byte_buffer *queue[SEND_QUEUE]; /* waiting to be sent, FIFO */
    int qhead, qlen;
    grpc_byte_buffer *in_flight;         /* the one SEND_MESSAGE under way */
    int send_failed;
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *recv_buf;
    grpc_status_code status;
    grpc_slice status_details;
    int closed;
    dc_event closed_event;
    float *pcm;                          /* the last AUDIO event's samples */
    size_t pcm_cap;
    unsigned channels;
};

/* ---- small helpers ------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static const char *status_name(grpc_status_code code)
{
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    if ((int)code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]))
        return names[code];
    return "UNKNOWN";
}

static void slice_to_str(char *dst, size_t size, grpc_slice s)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= size)
        n = size - 1;
    memcpy(dst, GRPC_SLICE_START_PTR(s), n);
    dst[n] = 0;
}

double dc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static gpr_timespec after_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(ms, GPR_TIMESPAN));
}

void dc_global_init(void)
{
    grpc_init();
}

static grpc_channel *open_channel(const char *target)
{
    grpc_arg arg;
    grpc_channel_args args;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch;
    arg.type = GRPC_ARG_INTEGER;
    arg.key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    arg.value.integer = MAX_MESSAGE;
    args.num_args = 1;
    args.args = &arg;
    ch = grpc_channel_create(target, creds, &args);
    grpc_channel_credentials_release(creds);
    return ch;
}

static grpc_byte_buffer *pack_buffer(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    grpc_byte_buffer *bb;
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* Flattens a received byte buffer (it may arrive in several slices). */
static grpc_slice buffer_slice(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader reader;
    grpc_slice all;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return grpc_empty_slice();
    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    return all;
}

/* ---- parameters -> protobuf --------------------------------------------- */

void dc_params_merge(dc_params *dst, const dc_params *src)
{
    if (src->set & DC_SET_MODEL)
        memcpy(dst->model, src->model, sizeof(dst->model));
    if (src->set & DC_SET_LAYERS) {
        dst->nlayers = src->nlayers;
        memcpy(dst->layers, src->layers, sizeof(dst->layers));
    }
    if (src->set & DC_SET_ITERATIONS)
        dst->iterations = src->iterations;
    if (src->set & DC_SET_STEP)
        dst->step_size = src->step_size;
    if (src->set & DC_SET_MIX)
        dst->mix = src->mix;
    if (src->set & DC_SET_JITTER)
        dst->time_jitter = src->time_jitter;
    if (src->set & DC_SET_LOWPASS)
        dst->lowpass_hz = src->lowpass_hz;
    if (src->set & DC_SET_SMOOTHING)
        dst->smoothing = src->smoothing;
    if (src->set & DC_SET_MODE)
        memcpy(dst->mode, src->mode, sizeof(dst->mode));
    if (src->set & DC_SET_SEED)
        dst->seed = src->seed;
    if (src->set & DC_SET_OBJECTIVE)
        memcpy(dst->objective, src->objective, sizeof(dst->objective));
    if (src->set & DC_SET_UPDATE)
        memcpy(dst->update, src->update, sizeof(dst->update));
    if (src->set & DC_SET_WINDOW)
        dst->window = src->window;
    if (src->set & DC_SET_MORPH)
        dst->morph_amount = src->morph_amount;
    if (src->set & DC_SET_CLASSES) {
        dst->nclasses = src->nclasses;
        memcpy(dst->classes, src->classes, sizeof(dst->classes));
    }
    if (src->set & DC_SET_EXCLUSIVE)
        dst->exclusive = src->exclusive;
    if (src->set & DC_SET_AUTO_CLASS)
        memcpy(dst->auto_class, src->auto_class, sizeof(dst->auto_class));
    if (src->set & DC_SET_DELAY)
        dst->delay = src->delay;
    dst->set |= src->set;
}

/* A DreamParams message pointing into `p` (which must outlive it). */
typedef struct pb_params {
    Audiodream__V1__DreamParams msg;
    Audiodream__V1__LayerSelection layers[DC_MAX_LAYERS];
    Audiodream__V1__LayerSelection *layer_ptrs[DC_MAX_LAYERS];
    Audiodream__V1__ClassTarget classes[DC_MAX_CLASSES];
    Audiodream__V1__ClassTarget *class_ptrs[DC_MAX_CLASSES];
} pb_params;

/* proto3 `optional` fields appear as one-member oneofs in the generated C
 * (see the Makefile): setting one means choosing its case. */
#define PB_SET(m, field, FIELD, value)                                     \
    do {                                                                   \
        (m).opt_##field##_case =                                           \
            AUDIODREAM__V1__DREAM_PARAMS__OPT_##FIELD##_##FIELD;           \
        (m).field = (value);                                               \
    } while (0)

static void params_to_pb(pb_params *out, const dc_params *p)
{
    int i;
    audiodream__v1__dream_params__init(&out->msg);
    if (!p)
        return;
    if ((p->set & DC_SET_MODEL) && p->model[0])
        out->msg.model = (char *)p->model;
    if (p->set & DC_SET_LAYERS) {
        for (i = 0; i < p->nlayers && i < DC_MAX_LAYERS; i++) {
            Audiodream__V1__LayerSelection *l = &out->layers[i];
            audiodream__v1__layer_selection__init(l);
            l->name = (char *)p->layers[i].name;
            l->n_channels = (size_t)p->layers[i].nchannels;
            l->channels = (int32_t *)p->layers[i].channels;
            if (p->layers[i].weight != 1.0f) {
                l->opt_weight_case = AUDIODREAM__V1__LAYER_SELECTION__OPT_WEIGHT_WEIGHT;
                l->weight = p->layers[i].weight;
            }
            out->layer_ptrs[i] = l;
        }
        out->msg.n_layers = (size_t)i;
        out->msg.layers = out->layer_ptrs;
    }
    if (p->set & DC_SET_ITERATIONS)
        PB_SET(out->msg, iterations, ITERATIONS, p->iterations);
    if (p->set & DC_SET_STEP)
        PB_SET(out->msg, step_size, STEP_SIZE, p->step_size);
    if (p->set & DC_SET_MIX)
        PB_SET(out->msg, mix, MIX, p->mix);
    if (p->set & DC_SET_JITTER)
        PB_SET(out->msg, time_jitter, TIME_JITTER, p->time_jitter);
    if (p->set & DC_SET_LOWPASS)
        PB_SET(out->msg, lowpass_hz, LOWPASS_HZ, p->lowpass_hz);
    if (p->set & DC_SET_SMOOTHING)
        PB_SET(out->msg, smoothing_coefficient, SMOOTHING_COEFFICIENT, p->smoothing);
    if (p->set & DC_SET_SEED)
        PB_SET(out->msg, seed, SEED, p->seed);
    if ((p->set & DC_SET_OBJECTIVE) && p->objective[0])
        out->msg.objective = (char *)p->objective;
    if ((p->set & DC_SET_UPDATE) && p->update[0])
        out->msg.update = (char *)p->update;
    if (p->set & DC_SET_MORPH)
        PB_SET(out->msg, morph_amount, MORPH_AMOUNT, p->morph_amount);
    if (p->set & DC_SET_CLASSES) {
        for (i = 0; i < p->nclasses && i < DC_MAX_CLASSES; i++) {
            Audiodream__V1__ClassTarget *c = &out->classes[i];
            audiodream__v1__class_target__init(c);
            c->name = (char *)p->classes[i].name;
            if (p->classes[i].weight != 1.0f) {
                c->opt_weight_case = AUDIODREAM__V1__CLASS_TARGET__OPT_WEIGHT_WEIGHT;
                c->weight = p->classes[i].weight;
            }
            out->class_ptrs[i] = c;
        }
        out->msg.n_classes = (size_t)i;
        out->msg.classes = out->class_ptrs;
    }
    if (p->set & DC_SET_EXCLUSIVE)
        out->msg.exclusive = p->exclusive ? 1 : 0;
    if ((p->set & DC_SET_AUTO_CLASS) && p->auto_class[0])
        out->msg.auto_class = (char *)p->auto_class;
}

/* ---- the stream ----------------------------------------------------------- */

static int start_batch(dc_stream *s, const grpc_op *ops, size_t n, int tag)
{
    if (grpc_call_start_batch(s->call, ops, n, TAG(tag), NULL) != GRPC_CALL_OK)
        return -1;
    s->outstanding++;
    return 0;
}

static int start_send(dc_stream *s, grpc_byte_buffer *bb, int with_metadata)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (with_metadata) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    if (start_batch(s, ops, n, TAG_SEND) < 0) {
        grpc_byte_buffer_destroy(bb);
        s->send_failed = 1;
        return -1;
    }
    s->in_flight = bb;
    return 0;
}

static int start_recv(dc_stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_buf;
    s->recv_buf = NULL;
    return start_batch(s, &op, 1, TAG_RECV);
}

/* Sends now if nothing is in flight, else queues. */
static int enqueue(dc_stream *s, grpc_byte_buffer *bb)
{
    if (s->closed || s->send_failed || s->qlen == SEND_QUEUE) {
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    if (!s->in_flight)
        return start_send(s, bb, 0);
    s->queue[(s->qhead + s->qlen) % SEND_QUEUE] = bb;
    s->qlen++;
    return 0;
}

dc_stream *dc_stream_open(const char *target, const dc_stream_config *cfg,
                          const dc_params *params, char *err, size_t errlen)
{
    dc_stream *s = (dc_stream *)calloc(1, sizeof(*s));
    Audiodream__V1__StreamConfig config;
    Audiodream__V1__StreamRequest req;
    pb_params pp;
    grpc_op op;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->channels = cfg->channels ? cfg->channels : 1;
    s->channel = open_channel(target);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->call = grpc_channel_create_call(
        s->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
        grpc_slice_from_static_string(METHOD_STREAM), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!s->call) {
        snprintf(err, errlen, "cannot create a call to %s", target);
        dc_stream_close(s);
        return NULL;
    }

    params_to_pb(&pp, params);
    audiodream__v1__stream_config__init(&config);
    config.params = &pp.msg;
    config.sample_rate = cfg->sample_rate;
    config.channels = s->channels;
    config.block_size = cfg->block_size;
    config.offline = cfg->offline ? 1 : 0;
    if (params && (params->set & DC_SET_WINDOW))
        config.window = params->window;
    if (params && (params->set & DC_SET_DELAY))
        config.delay = params->delay;
    config.slack = cfg->slack;
    if (params && (params->set & DC_SET_MODE))
        config.mode = (char *)params->mode;
    audiodream__v1__stream_request__init(&req);
    req.msg_case = AUDIODREAM__V1__STREAM_REQUEST__MSG_CONFIG;
    req.config = &config;

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->status_details;
    if (start_batch(s, &op, 1, TAG_STATUS) < 0
        || start_send(s, pack_buffer(&req.base), 1) < 0) {
        snprintf(err, errlen, "cannot start the call to %s", target);
        dc_stream_close(s);
        return NULL;
    }
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_INITIAL_METADATA;
    op.data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    if (start_batch(s, &op, 1, TAG_META) < 0 || start_recv(s) < 0) {
        snprintf(err, errlen, "cannot start receiving from %s", target);
        dc_stream_close(s);
        return NULL;
    }
    return s;
}

int dc_stream_send_audio(dc_stream *s, uint64_t seq, const float *pcm, size_t frames)
{
    Audiodream__V1__AudioChunk chunk;
    Audiodream__V1__StreamRequest req;
    grpc_byte_buffer *bb;
    if (s->closed || s->send_failed || s->qlen == SEND_QUEUE)
        return -1;
    audiodream__v1__audio_chunk__init(&chunk);
    chunk.seq = seq;
    frames *= s->channels;               /* from here on: samples */
    chunk.pcm.len = frames * sizeof(float);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    {   /* the wire carries little-endian float32 */
        size_t i;
        uint32_t *swapped = (uint32_t *)malloc(chunk.pcm.len);
        if (!swapped)
            return -1;
        memcpy(swapped, pcm, chunk.pcm.len);
        for (i = 0; i < frames; i++)
            swapped[i] = __builtin_bswap32(swapped[i]);
        chunk.pcm.data = (uint8_t *)swapped;
        audiodream__v1__stream_request__init(&req);
        req.msg_case = AUDIODREAM__V1__STREAM_REQUEST__MSG_AUDIO;
        req.audio = &chunk;
        bb = pack_buffer(&req.base);
        free(swapped);
    }
#else
    chunk.pcm.data = (uint8_t *)pcm;
    audiodream__v1__stream_request__init(&req);
    req.msg_case = AUDIODREAM__V1__STREAM_REQUEST__MSG_AUDIO;
    req.audio = &chunk;
    bb = pack_buffer(&req.base);
#endif
    return enqueue(s, bb);
}

int dc_stream_send_control(dc_stream *s, const dc_params *changes, int reset)
{
    Audiodream__V1__Control control;
    Audiodream__V1__StreamRequest req;
    pb_params pp;
    params_to_pb(&pp, changes);
    audiodream__v1__control__init(&control);
    control.params = &pp.msg;
    control.reset = reset ? 1 : 0;
    if (changes && (changes->set & DC_SET_MODE))
        control.mode = (char *)changes->mode;
    audiodream__v1__stream_request__init(&req);
    req.msg_case = AUDIODREAM__V1__STREAM_REQUEST__MSG_CONTROL;
    req.control = &control;
    return enqueue(s, pack_buffer(&req.base));
}

int dc_stream_send_target(dc_stream *s, const float *pcm, size_t frames, unsigned rate)
{
    Audiodream__V1__Control control;
    Audiodream__V1__StreamRequest req;
    Audiodream__V1__Audio audio;
    int result;
    uint8_t *bytes = (uint8_t *)malloc(frames * sizeof(float));
    size_t i;
    if (!bytes)
        return -1;
    /* float32 little-endian on the wire, whatever the host */
    for (i = 0; i < frames; i++) {
        uint32_t u;
        memcpy(&u, &pcm[i], 4);
        bytes[4 * i] = (uint8_t)u;
        bytes[4 * i + 1] = (uint8_t)(u >> 8);
        bytes[4 * i + 2] = (uint8_t)(u >> 16);
        bytes[4 * i + 3] = (uint8_t)(u >> 24);
    }
    audiodream__v1__audio__init(&audio);
    audio.data_case = AUDIODREAM__V1__AUDIO__DATA_PCM;
    audio.pcm.data = bytes;
    audio.pcm.len = frames * sizeof(float);
    audio.sample_rate = rate;
    audio.channels = 1;
    audiodream__v1__control__init(&control);
    control.target = &audio;
    audiodream__v1__stream_request__init(&req);
    req.msg_case = AUDIODREAM__V1__STREAM_REQUEST__MSG_CONTROL;
    req.control = &control;
    result = enqueue(s, pack_buffer(&req.base));
    free(bytes);
    return result;
}

int dc_stream_backlog(const dc_stream *s)
{
    return s->qlen + (s->in_flight ? 1 : 0);
}

/* Fills *ev from one StreamResponse; returns 0 if it is not worth an event. */
static int response_event(dc_stream *s, const Audiodream__V1__StreamResponse *r, dc_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    switch (r->msg_case) {
    case AUDIODREAM__V1__STREAM_RESPONSE__MSG_READY:
        ev->kind = DC_EV_READY;
        ev->latency = r->ready->latency_samples;
        ev->model_rate = r->ready->model_sample_rate;
        copy_str(ev->model, sizeof(ev->model), r->ready->model);
        if (r->ready->config)
            ev->block_size = r->ready->config->block_size;
        return 1;
    case AUDIODREAM__V1__STREAM_RESPONSE__MSG_AUDIO: {
        size_t frames = r->audio->pcm.len / sizeof(float);
        size_t i;
        if (frames > s->pcm_cap) {
            float *grown = (float *)realloc(s->pcm, frames * sizeof(float));
            if (!grown)
                return 0;
            s->pcm = grown;
            s->pcm_cap = frames;
        }
        memcpy(s->pcm, r->audio->pcm.data, frames * sizeof(float));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (i = 0; i < frames; i++) {
            uint32_t u;
            memcpy(&u, &s->pcm[i], 4);
            u = __builtin_bswap32(u);
            memcpy(&s->pcm[i], &u, 4);
        }
#else
        (void)i;
#endif
        ev->kind = DC_EV_AUDIO;
        ev->seq = r->audio->seq;
        ev->pcm = s->pcm;
        ev->frames = frames / s->channels;
        return 1;
    }
    case AUDIODREAM__V1__STREAM_RESPONSE__MSG_STATS:
        ev->kind = DC_EV_STATS;
        ev->blocks = r->stats->blocks;
        ev->late_blocks = r->stats->late_blocks;
        ev->real_time_factor = r->stats->real_time_factor;
        ev->iterations_run = r->stats->iterations_run;
        return 1;
    case AUDIODREAM__V1__STREAM_RESPONSE__MSG_WARNING:
        ev->kind = DC_EV_WARNING;
        ev->seq = r->warning->seq;
        copy_str(ev->code, sizeof(ev->code), r->warning->code);
        copy_str(ev->text, sizeof(ev->text), r->warning->message);
        return 1;
    default:
        return 0;   /* a newer server's message kind: ignore */
    }
}

int dc_stream_poll(dc_stream *s, dc_event *ev, int timeout_ms)
{
    gpr_timespec deadline = after_ms(timeout_ms);
    if (s->closed) {
        *ev = s->closed_event;
        return 1;
    }
    for (;;) {
        grpc_event e = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (e.type != GRPC_OP_COMPLETE)
            return 0;
        s->outstanding--;
        switch ((int)(intptr_t)e.tag) {
        case TAG_SEND:
            grpc_byte_buffer_destroy(s->in_flight);
            s->in_flight = NULL;
            if (!e.success) {
                s->send_failed = 1;   /* the call is ending; its status follows */
            } else if (s->qlen) {
                grpc_byte_buffer *next = s->queue[s->qhead];
                s->qhead = (s->qhead + 1) % SEND_QUEUE;
                s->qlen--;
                start_send(s, next, 0);
            }
            break;
        case TAG_RECV: {
            grpc_slice data;
            Audiodream__V1__StreamResponse *r;
            int have;
            if (!e.success || !s->recv_buf)
                break;          /* no more messages; the status says why */
            data = buffer_slice(s->recv_buf);
            grpc_byte_buffer_destroy(s->recv_buf);
            s->recv_buf = NULL;
            r = audiodream__v1__stream_response__unpack(
                NULL, GRPC_SLICE_LENGTH(data), GRPC_SLICE_START_PTR(data));
            grpc_slice_unref(data);
            start_recv(s);
            if (!r) {
                memset(ev, 0, sizeof(*ev));
                ev->kind = DC_EV_WARNING;
                copy_str(ev->code, sizeof(ev->code), "bad_message");
                copy_str(ev->text, sizeof(ev->text), "a server message could not be decoded");
                return 1;
            }
            have = response_event(s, r, ev);
            audiodream__v1__stream_response__free_unpacked(r, NULL);
            if (have)
                return 1;
            break;
        }
        case TAG_STATUS: {
            dc_event *c = &s->closed_event;
            memset(c, 0, sizeof(*c));
            c->kind = DC_EV_CLOSED;
            copy_str(c->code, sizeof(c->code), status_name(s->status));
            slice_to_str(c->text, sizeof(c->text), s->status_details);
            s->closed = 1;
            *ev = *c;
            return 1;
        }
        default:            /* TAG_META: nothing to do with headers */
            break;
        }
    }
}

void dc_stream_close(dc_stream *s)
{
    if (!s)
        return;
    if (s->call) {
        grpc_call_cancel(s->call, NULL);
        while (s->outstanding > 0) {
            grpc_event e = grpc_completion_queue_next(
                s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (e.type != GRPC_OP_COMPLETE)
                break;
            s->outstanding--;
            if ((intptr_t)e.tag == TAG_SEND && s->in_flight) {
                grpc_byte_buffer_destroy(s->in_flight);
                s->in_flight = NULL;
            }
        }
        grpc_call_unref(s->call);
    }
    if (s->recv_buf)
        grpc_byte_buffer_destroy(s->recv_buf);
    while (s->qlen) {
        grpc_byte_buffer_destroy(s->queue[s->qhead]);
        s->qhead = (s->qhead + 1) % SEND_QUEUE;
        s->qlen--;
    }
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type
           != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(s->cq);
    grpc_channel_destroy(s->channel);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->status_details);
    free(s->pcm);
    free(s);
}

/* ---- unary calls ------------------------------------------------------- */

/* One request, one response; *resp is the flattened reply on success. */
static int unary(const char *target, const char *method, const ProtobufCMessage *req,
                 int timeout_ms, grpc_slice *resp, char *err, size_t errlen)
{
    grpc_channel *ch = open_channel(target);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *send = pack_buffer(req), *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_call *call;
    grpc_op meta, ops[5];
    int started = 0, rc = -1;

    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    grpc_slice_from_static_string(method), NULL,
                                    after_ms(timeout_ms), NULL);
    memset(&meta, 0, sizeof(meta));
    meta.op = GRPC_OP_RECV_INITIAL_METADATA;
    meta.data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_MESSAGE;
    ops[3].data.recv_message.recv_message = &recv;
    ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[4].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[4].data.recv_status_on_client.status = &status;
    ops[4].data.recv_status_on_client.status_details = &details;
    if (call && grpc_call_start_batch(call, &meta, 1, TAG(TAG_META), NULL) == GRPC_CALL_OK) {
        started |= 1;
        if (grpc_call_start_batch(call, ops, 5, TAG(TAG_STATUS), NULL) == GRPC_CALL_OK)
            started |= 2;
    }
    /* The call's deadline bounds both waits. */
    if (started & 1)
        grpc_completion_queue_pluck(cq, TAG(TAG_META), gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (started & 2)
        grpc_completion_queue_pluck(cq, TAG(TAG_STATUS), gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

    if (started != 3) {
        snprintf(err, errlen, "cannot start a call to %s", target);
    } else if (status != GRPC_STATUS_OK) {
        char text[DC_TEXT];
        slice_to_str(text, sizeof(text), details);
        snprintf(err, errlen, "%s: %s", status_name(status), text);
    } else if (!recv) {
        snprintf(err, errlen, "empty reply from %s", target);
    } else {
        *resp = buffer_slice(recv);
        rc = 0;
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    if (call)
        grpc_call_unref(call);
    /* Both batches were plucked, so nothing is left to drain. */
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    return rc;
}

int dc_list_models(const char *target, int timeout_ms, dc_models *out,
                   char *err, size_t errlen)
{
    Audiodream__V1__ListModelsRequest req;
    Audiodream__V1__ListModelsResponse *r;
    grpc_slice data;
    size_t i;
    audiodream__v1__list_models_request__init(&req);
    if (unary(target, METHOD_MODELS, &req.base, timeout_ms, &data, err, errlen) < 0)
        return -1;
    r = audiodream__v1__list_models_response__unpack(NULL, GRPC_SLICE_LENGTH(data),
                                                     GRPC_SLICE_START_PTR(data));
    grpc_slice_unref(data);
    if (!r) {
        snprintf(err, errlen, "undecodable ListModels reply");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    copy_str(out->default_model, sizeof(out->default_model), r->default_model);
    for (i = 0; i < r->n_models && i < DC_MAX_MODELS; i++) {
        dc_model_info *m = &out->models[i];
        copy_str(m->name, sizeof(m->name), r->models[i]->name);
        copy_str(m->default_layer, sizeof(m->default_layer), r->models[i]->default_layer);
        m->sample_rate = r->models[i]->sample_rate;
        m->fixed_input_samples = r->models[i]->fixed_input_samples;
        m->trained = r->models[i]->trained;
    }
    out->n = (int)i;
    audiodream__v1__list_models_response__free_unpacked(r, NULL);
    return 0;
}

int dc_list_layers(const char *target, const char *model, int timeout_ms,
                   dc_layers *out, char *err, size_t errlen)
{
    Audiodream__V1__ListLayersRequest req;
    Audiodream__V1__ListLayersResponse *r;
    grpc_slice data;
    size_t i;
    audiodream__v1__list_layers_request__init(&req);
    if (model && model[0])
        req.model = (char *)model;
    if (unary(target, METHOD_LAYERS, &req.base, timeout_ms, &data, err, errlen) < 0)
        return -1;
    r = audiodream__v1__list_layers_response__unpack(NULL, GRPC_SLICE_LENGTH(data),
                                                     GRPC_SLICE_START_PTR(data));
    grpc_slice_unref(data);
    if (!r) {
        snprintf(err, errlen, "undecodable ListLayers reply");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    copy_str(out->model, sizeof(out->model), r->model);
    copy_str(out->default_layer, sizeof(out->default_layer), r->default_layer);
    out->sample_rate = r->sample_rate;
    for (i = 0; i < r->n_layers && i < DC_MAX_LAYER_INFO; i++) {
        dc_layer_info *l = &out->layers[i];
        copy_str(l->name, sizeof(l->name), r->layers[i]->name);
        copy_str(l->module_type, sizeof(l->module_type), r->layers[i]->module_type);
        l->channels = r->layers[i]->channels;
        l->frame_rate = r->layers[i]->frame_rate;
    }
    out->n = (int)i;
    audiodream__v1__list_layers_response__free_unpacked(r, NULL);
    return 0;
}
