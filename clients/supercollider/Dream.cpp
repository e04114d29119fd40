/* Dream: scsynth's audio dreamed live by an audiodream server (StreamDream).
 *
 * The SuperCollider glue of the C core (clients/core): the stream, its rings,
 * the worker thread, reconnection and the latency contract live in
 * dream_worker.h. Here, in scsynth's threads:
 *   the RT thread   Dream_next: publishes changed control inputs (atomics),
 *                   copies audio through dw_perform, and sends what the worker
 *                   learnt to the language as node replies (/dream, /dream_info).
 *                   No malloc, no lock, no system call: the unit's own memory
 *                   comes from RTAlloc.
 *   the NRT thread  creates and frees the worker (dw_new starts a thread,
 *                   dw_free joins it) and applies unit commands (/u_cmd) to it,
 *                   through DoAsynchronousCommand: they run in the order sent,
 *                   so a command never meets a freed worker.
 * In non-real-time mode (scsynth -N) there is no audio deadline: the worker is
 * made at once, commands apply at once, and each block waits for its dreamed
 * frames (dw_perform_offline), so a render has no dry block and is the same
 * for the same seed.
 *
 * Inputs: iterations, step, mix, jitter, lowpass, smoothing, seed (negative =
 * the server's default), dry, block, preroll, delay (the server's output delay,
 * frames; 0 = one block), id, then the channels. Outputs:
 * as many channels as came in. */
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "SC_PlugIn.h"

#include "dream_worker.h"

static InterfaceTable *ft;

enum {
    IN_NUMBERS = 0,             /* DW_NUMBERS of them, dw_number order */
    IN_DRY = DW_NUMBERS,
    IN_BLOCK,
    IN_PREROLL,
    IN_DELAY,
    IN_ID,
    IN_CHANNELS                 /* the first audio input */
};

#define DEFAULT_TARGET "127.0.0.1:50051"
#define REPORT_SECONDS 1.0      /* /dream replies at least this often */
#define OFFLINE_TIMEOUT 30.0    /* seconds a -N block waits for the server */
#define REPORT_VALUES 13
#define CMD_TEXT 1024
#define CMD_ARGS 32

/* The server new Dream units talk to: AUDIODREAM_SERVER at load, or the
 * /cmd dreamServer plug-in command. Read and written in the RT thread only. */
static char g_target[DW_TARGET] = DEFAULT_TARGET;

/* What outlives a unit until the NRT thread has freed its worker. */
struct DreamSlot {
    std::atomic<dw_worker *> worker;
    /* creation settings, read by the NRT stage */
    char target[DW_TARGET];
    unsigned channels, rate, block, preroll;
    int offline, dry;
    dc_params params;
};

struct Dream : public Unit {
    DreamSlot *slot;
    int nch, id, realtime;
    int index;                  /* in the SynthDef, for /u_cmd */
    float last[DW_NUMBERS], last_dry;
    int told_state, told_latency;
    double since_report;        /* samples */
    float codes[1024];          /* one info line as char codes */
};

/* A unit command on its way to the NRT thread. */
struct DreamCmd {
    DreamSlot *slot;
    char name[24];
    /* the arguments as received (the RT thread only copies) */
    int nargs;
    char kind[CMD_ARGS];        /* 's' or 'f' */
    float num[CMD_ARGS];
    unsigned at[CMD_ARGS];      /* a string's offset in pool */
    char pool[CMD_TEXT];
    /* the arguments as text, space-separated: made in the NRT thread */
    char text[CMD_TEXT];
    int bufnum;                 /* the first number, for `target` */
};

extern "C" {
void Dream_Ctor(Dream *unit);
void Dream_Dtor(Dream *unit);
void Dream_next(Dream *unit, int inNumSamples);
}

/* ---- worker lines: posts and errors reach scsynth's console ---------------- */

static void dream_line(void *ctx, int kind, const char *text)
{
    /* From the worker thread: not the RT thread, so printing is allowed.
     * Info lines come here only in non-real-time mode, where node replies go
     * nowhere: the console is where a render's latency can be read. */
    Print("%s%s%s\n", kind == DW_LINE_ERROR ? "ERROR: " : "",
          kind == DW_LINE_INFO ? "Dream: " : "", text);
}

/* ---- creation and destruction (NRT side) ------------------------------------- */

static void slot_create_worker(DreamSlot *slot)
{
    char err[DC_TEXT];
    dw_options o;
    dw_worker *w;
    memset(&o, 0, sizeof(o));
    o.name = "Dream";
    o.target = slot->target;
    o.channels = slot->channels;
    o.rate = slot->rate;
    o.block = slot->block;
    o.preroll = slot->preroll;
    o.fixed_sizes = 1;          /* the rings are sized once, here */
    o.offline = slot->offline;
    o.connect = 1;
    o.params = &slot->params;
    o.line = dream_line;
    o.info_ring = !slot->offline;   /* info reaches sclang from the RT thread */
    w = dw_new(&o, err, sizeof(err));
    if (!w) {
        Print("ERROR: Dream: %s\n", err);
        return;
    }
    dw_set_dry(w, slot->dry);
    slot->worker.store(w, std::memory_order_release);
}

static bool create_stage2(World *world, void *data)
{
    slot_create_worker((DreamSlot *)data);
    return false;
}

static bool destroy_stage2(World *world, void *data)
{
    DreamSlot *slot = (DreamSlot *)data;
    dw_free(slot->worker.exchange(nullptr));
    return false;
}

static void free_in_rt(World *world, void *data)
{
    RTFree(world, data);
}

static void nothing_to_free(World *world, void *data) {}

/* ---- unit commands (NRT side) ------------------------------------------------ */

/* Reads a buffer's first channel into a target sound; NRT thread only. */
static void apply_target(World *world, dw_worker *w, int bufnum)
{
    SndBuf *buf;
    dw_sound *snd;
    float *pcm;
    int i;
    if (bufnum < 0 || (uint32)bufnum >= world->mNumSndBufs) {
        Print("ERROR: Dream: target: no buffer %d\n", bufnum);
        return;
    }
    buf = World_GetNRTBuf(world, bufnum);
    if (!buf->data || buf->frames < 1) {
        Print("ERROR: Dream: target: buffer %d is empty\n", bufnum);
        return;
    }
    if (!(snd = dw_sound_new((size_t)buf->frames, (unsigned)buf->samplerate)))
        return;
    pcm = dw_sound_pcm(snd);
    for (i = 0; i < buf->frames; i++)
        pcm[i] = buf->data[i * buf->channels];
    dw_set_sound(w, snd);
}

/* The arguments as one space-separated text. */
static void cmd_text(DreamCmd *c)
{
    size_t len = 0;
    int i;
    c->text[0] = 0;
    for (i = 0; i < c->nargs && len < sizeof(c->text) - 1; i++) {
        int n = c->kind[i] == 's'
                ? snprintf(c->text + len, sizeof(c->text) - len, "%s%s", i ? " " : "",
                           c->pool + c->at[i])
                : snprintf(c->text + len, sizeof(c->text) - len, "%s%.9g", i ? " " : "",
                           (double)c->num[i]);
        len += (size_t)n < sizeof(c->text) - len ? (size_t)n : sizeof(c->text) - len - 1;
    }
}

static void apply_cmd(World *world, DreamCmd *c)
{
    dw_worker *w = c->slot->worker.load(std::memory_order_acquire);
    dc_params p;
    char err[DC_TEXT];
    if (!w)
        return;                 /* the worker could not be made: said already */
    cmd_text(c);
    memset(&p, 0, sizeof(p));
    if (!strcmp(c->name, "server") || !strcmp(c->name, "connect")) {
        dw_connect(w, c->text);
    } else if (!strcmp(c->name, "disconnect")) {
        dw_disconnect(w);
    } else if (!strcmp(c->name, "model")) {
        dw_model(w, c->text);
    } else if (!strcmp(c->name, "layers") || !strcmp(c->name, "layer")) {
        if (!c->text[0])
            dw_default_layers(w);
        else if (dw_parse_layers(&p, c->text, err, sizeof(err)) == 0)
            dw_change(w, &p);
        else
            Print("ERROR: Dream: layers: %s\n", err);
    } else if (!strcmp(c->name, "objective") || !strcmp(c->name, "update")) {
        int objective = c->name[0] == 'o';
        if (strlen(c->text) >= sizeof(p.update)) {
            Print("ERROR: Dream: %s %s: name too long\n", c->name, c->text);
            return;
        }
        memcpy(objective ? p.objective : p.update, c->text, strlen(c->text) + 1);
        p.set = objective ? DC_SET_OBJECTIVE : DC_SET_UPDATE;
        dw_change(w, &p);
    } else if (!strcmp(c->name, "mode")) {
        if (strcmp(c->text, "process") && strcmp(c->text, "generate")
            && strcmp(c->text, "morph")) {
            Print("ERROR: Dream: mode %s: use process, generate or morph\n", c->text);
            return;
        }
        memcpy(p.mode, c->text, strlen(c->text) + 1);   /* one of the three names */
        p.set = DC_SET_MODE;
        dw_change(w, &p);
    } else if (!strcmp(c->name, "morph")) {
        float amount = (float)atof(c->text);
        p.morph_amount = !(amount >= 0) ? 0 : amount > 1 ? 1 : amount;   /* NaN -> 0 */
        p.set = DC_SET_MORPH;
        dw_change(w, &p);
    } else if (!strcmp(c->name, "window")) {
        dw_set_window(w, (unsigned)atoi(c->text));
    } else if (!strcmp(c->name, "target")) {
        apply_target(world, w, c->bufnum);
    } else if (!strcmp(c->name, "reset")) {
        dw_reset(w);
    } else if (!strcmp(c->name, "bypass")) {
        dw_set_bypass(w, atoi(c->text) != 0);
    } else if (!strcmp(c->name, "models")) {
        dw_query_models(w);
    } else if (!strcmp(c->name, "layers?")) {
        dw_query_layers(w, c->text);
    } else {
        Print("ERROR: Dream: unknown command %s\n", c->name);
    }
}

static bool cmd_stage2(World *world, void *data)
{
    apply_cmd(world, (DreamCmd *)data);
    return false;
}

/* RT side of a unit command: copies its arguments, hands it to the NRT thread
 * (or applies it at once when not in real time). */
/* Copies at most n - 1 bytes of src and a NUL; returns the bytes copied. */
static size_t copy_bounded(char *dst, const char *src, size_t n)
{
    size_t k = 0;
    while (k + 1 < n && src[k]) {
        dst[k] = src[k];
        k++;
    }
    dst[k] = 0;
    return k;
}

/* RT side of a unit command: copies its name and arguments (no formatting, no
 * malloc), hands it to the NRT thread (or applies it at once when not in real
 * time). */
static void Dream_cmd(Dream *unit, const char *name, sc_msg_iter *args)
{
    DreamCmd *c = (DreamCmd *)RTAlloc(unit->mWorld, sizeof(DreamCmd));
    size_t used = 0;
    if (!c) {
        Print("ERROR: Dream: %s: out of real-time memory\n", name);
        return;
    }
    c->slot = unit->slot;
    copy_bounded(c->name, name, sizeof(c->name));
    c->nargs = 0;
    c->bufnum = -1;
    while (args->remain() > 0 && c->nargs < CMD_ARGS) {
        char tag = args->nextTag('f');
        int i = c->nargs;
        if (tag == 's') {
            if (used >= sizeof(c->pool) - 1)
                break;
            c->kind[i] = 's';
            c->at[i] = (unsigned)used;
            used += copy_bounded(c->pool + used, args->gets(""), sizeof(c->pool) - used) + 1;
        } else if (tag == 'i' || tag == 'f') {
            c->kind[i] = 'f';
            c->num[i] = tag == 'i' ? (float)args->geti() : args->getf();
            if (c->bufnum < 0)
                c->bufnum = (int)c->num[i];
        } else {
            break;              /* a blob or the like: not for us */
        }
        c->nargs++;
    }
    if (!unit->realtime) {
        apply_cmd(unit->mWorld, c);
        RTFree(unit->mWorld, c);
        return;
    }
    DoAsynchronousCommand(unit->mWorld, nullptr, "dream", c, cmd_stage2, nullptr, nullptr,
                          free_in_rt, 0, nullptr);
}

#define DREAM_CMD(cname)                                                 \
    static void Dream_cmd_##cname(Unit *unit, sc_msg_iter *args)         \
    {                                                                    \
        Dream_cmd((Dream *)unit, #cname, args);                          \
    }
DREAM_CMD(server)
DREAM_CMD(connect)
DREAM_CMD(disconnect)
DREAM_CMD(model)
DREAM_CMD(layers)
DREAM_CMD(objective)
DREAM_CMD(update)
DREAM_CMD(mode)
DREAM_CMD(morph)
DREAM_CMD(window)
DREAM_CMD(target)
DREAM_CMD(reset)
DREAM_CMD(bypass)
DREAM_CMD(models)

static void Dream_cmd_layers_query(Unit *unit, sc_msg_iter *args)
{
    Dream_cmd((Dream *)unit, "layers?", args);
}

/* /cmd dreamServer HOST:PORT: the server of Dream units made from now on. */
static void cmd_default_server(World *world, void *user, sc_msg_iter *args, void *reply)
{
    const char *target = args->gets("");
    if (target[0])
        snprintf(g_target, sizeof(g_target), "%s", target);
}

/* ---- RT side ------------------------------------------------------------------- */

/* Sends /dream [node, id, ugen index, state, latency, rtt ms, rtt max ms,
 * underruns, late, iterations run, controls, blocks, dropped, overruns,
 * concealed]. */
static void Dream_report(Dream *unit, const dw_report *r)
{
    float v[REPORT_VALUES] = {(float)unit->index, (float)r->state,
                              (float)r->latency, r->rtt_ms, r->rtt_max_ms, (float)r->underruns, (float)r->late, r->iterations_run,
                              (float)r->controls, (float)r->blocks, (float)r->dropped,
                              (float)r->overruns, (float)r->concealed};
    SendNodeReply(&unit->mParent->mNode, unit->id, "/dream", REPORT_VALUES, v);
}

/* One waiting info line per block, as /dream_info [node, id, char codes...]. */
static void Dream_info(Dream *unit, dw_worker *w)
{
    char line[1024];
    size_t n = dw_take_info(w, line, sizeof(line)), i;
    if (!n)
        return;
    for (i = 0; i < n; i++)
        unit->codes[i] = (float)(unsigned char)line[i];
    SendNodeReply(&unit->mParent->mNode, unit->id, "/dream_info", (int)n, unit->codes);
}

/* Publishes the control inputs that changed since the last block. */
static void Dream_controls(Dream *unit, dw_worker *w)
{
    int i;
    for (i = 0; i < DW_NUMBERS; i++) {
        float v = IN0(IN_NUMBERS + i);
        if (v == unit->last[i])
            continue;
        unit->last[i] = v;
        if (v >= 0)             /* negative: leave the server's default */
            dw_set_number(w, i, v);
    }
    if (IN0(IN_DRY) != unit->last_dry) {
        unit->last_dry = IN0(IN_DRY);
        dw_set_dry(w, unit->last_dry != 0);
    }
}

void Dream_next(Dream *unit, int inNumSamples)
{
    dw_worker *w = unit->slot->worker.load(std::memory_order_acquire);
    const float *in[DW_MAX_CHANNELS];
    float *out[DW_MAX_CHANNELS];
    dw_report r;
    int c;
    for (c = 0; c < unit->nch; c++) {
        in[c] = IN(IN_CHANNELS + c);
        out[c] = OUT(c);
    }
    if (!w) {                   /* not made yet (or could not be) */
        for (c = 0; c < unit->nch; c++) {
            if (IN0(IN_DRY) != 0)
                memcpy(out[c], in[c], inNumSamples * sizeof(float));
            else
                memset(out[c], 0, inNumSamples * sizeof(float));
        }
        return;
    }
    Dream_controls(unit, w);
    if (unit->realtime)
        dw_perform(w, in, out, (size_t)inNumSamples);
    else
        dw_perform_offline(w, in, out, (size_t)inNumSamples, OFFLINE_TIMEOUT);
    Dream_info(unit, w);
    dw_get_report(w, &r);
    unit->since_report += inNumSamples;
    if (r.state != unit->told_state || r.latency != unit->told_latency
        || unit->since_report >= REPORT_SECONDS * SAMPLERATE) {
        unit->told_state = r.state;
        unit->told_latency = r.latency;
        unit->since_report = 0;
        Dream_report(unit, &r);
    }
}

void Dream_Ctor(Dream *unit)
{
    DreamSlot *slot;
    int i;
    unit->nch = (int)unit->mNumInputs - IN_CHANNELS;
    unit->realtime = unit->mWorld->mRealTime;
    unit->id = (int)IN0(IN_ID);
    unit->index = unit->mParentIndex;  /* set by scsynth before the constructor runs */
    unit->told_state = -1;
    unit->told_latency = -1;
    unit->since_report = 0;
    unit->last_dry = IN0(IN_DRY);
    unit->slot = nullptr;
    if (unit->nch < 1 || unit->nch > DW_MAX_CHANNELS
        || (int)unit->mNumOutputs != unit->nch) {
        Print("ERROR: Dream: 1..%d channels in, as many out\n", DW_MAX_CHANNELS);
        SETCALC(ClearUnitOutputs);
        ClearUnitOutputs(unit, 1);
        return;
    }
    slot = (DreamSlot *)RTAlloc(unit->mWorld, sizeof(DreamSlot));
    if (!slot) {
        ClearUnitOnMemFailed;
    }
    new (&slot->worker) std::atomic<dw_worker *>(nullptr);
    snprintf(slot->target, sizeof(slot->target), "%s", g_target);
    slot->channels = (unsigned)unit->nch;
    slot->rate = (unsigned)SAMPLERATE;
    slot->block = (unsigned)sc_clip(IN0(IN_BLOCK), DW_MIN_BLOCK, DW_MAX_BLOCK);
    slot->preroll = (unsigned)sc_clip(IN0(IN_PREROLL), 0, DW_MAX_PREROLL);
    slot->offline = !unit->realtime;
    slot->dry = IN0(IN_DRY) != 0;
    memset(&slot->params, 0, sizeof(slot->params));
    if (IN0(IN_DELAY) > 0) {
        slot->params.delay = (unsigned)sc_clip(IN0(IN_DELAY), 0, 480000);
        slot->params.set |= DC_SET_DELAY;
    }
    for (i = 0; i < DW_NUMBERS; i++) {
        unit->last[i] = IN0(IN_NUMBERS + i);
        if (unit->last[i] >= 0)
            dw_number_to_params(&slot->params, i, unit->last[i]);
    }
    unit->slot = slot;
    if (unit->realtime)
        DoAsynchronousCommand(unit->mWorld, nullptr, "dream", slot, create_stage2, nullptr,
                              nullptr, nothing_to_free, 0, nullptr);
    else
        slot_create_worker(slot);
    SETCALC(Dream_next);
    /* Not a one-sample calc as usual: that would put a frame into the stream. */
    ClearUnitOutputs(unit, 1);
}

void Dream_Dtor(Dream *unit)
{
    DreamSlot *slot = unit->slot;
    if (!slot)
        return;
    if (!unit->realtime) {
        dw_free(slot->worker.exchange(nullptr));
        RTFree(unit->mWorld, slot);
        return;
    }
    /* After every command already queued; the slot is freed back in RT. */
    DoAsynchronousCommand(unit->mWorld, nullptr, "dream", slot, destroy_stage2, nullptr,
                          nullptr, free_in_rt, 0, nullptr);
}

PluginLoad(Dream)
{
    const char *env = getenv("AUDIODREAM_SERVER");
    ft = inTable;
    dc_global_init();
    if (env && env[0])
        snprintf(g_target, sizeof(g_target), "%s", env);
    DefineDtorCantAliasUnit(Dream);
    DefineUnitCmd("Dream", "server", Dream_cmd_server);
    DefineUnitCmd("Dream", "connect", Dream_cmd_connect);
    DefineUnitCmd("Dream", "disconnect", Dream_cmd_disconnect);
    DefineUnitCmd("Dream", "model", Dream_cmd_model);
    DefineUnitCmd("Dream", "layers", Dream_cmd_layers);
    DefineUnitCmd("Dream", "objective", Dream_cmd_objective);
    DefineUnitCmd("Dream", "update", Dream_cmd_update);
    DefineUnitCmd("Dream", "mode", Dream_cmd_mode);
    DefineUnitCmd("Dream", "morph", Dream_cmd_morph);
    DefineUnitCmd("Dream", "window", Dream_cmd_window);
    DefineUnitCmd("Dream", "target", Dream_cmd_target);
    DefineUnitCmd("Dream", "reset", Dream_cmd_reset);
    DefineUnitCmd("Dream", "bypass", Dream_cmd_bypass);
    DefineUnitCmd("Dream", "models", Dream_cmd_models);
    DefineUnitCmd("Dream", "layers?", Dream_cmd_layers_query);
    DefinePlugInCmd("dreamServer", cmd_default_server, nullptr);
}
