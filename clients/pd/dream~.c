/* dream~: Pd's audio dreamed live by an audiodream server (StreamDream).
 *
 * The Pd glue of the C core (clients/core): the stream, its rings, the worker
 * thread, reconnection and the latency contract live in dream_worker.h. Here:
 *   perform (DSP)   copies the inlets aside (Pd may hand the same memory to an
 *                   inlet and an outlet) and calls dw_perform: copies only;
 *   messages        set parameters and settings on the worker (short locks,
 *                   never in perform);
 *   the clock       every TICK_MS, in Pd's thread, turns the worker's lines
 *                   into info-outlet messages and Pd-window posts.
 *
 * [dream~ N ...] has N signal inlets and outlets (default 1); one stream
 * carries all N channels, interleaved. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m_pd.h"

#include "dream_worker.h"

#define DEFAULT_SERVER "127.0.0.1:50051"
#define DEFAULT_BLOCK 2048
#define DEFAULT_PREROLL 2048
#define TICK_MS 50              /* clock period */
#define REPORT_TICKS 20         /* rtt/underruns/late once a second */
#define MAX_LINES 256           /* worker -> Pd lines waiting */

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
    dw_worker *x_w;
    int x_nch;
    int x_ticks;
    int x_dry;                      /* for print */
    int x_bypass;
    t_sample **x_sig;               /* dsp: N inlets then N outlets */
    t_sample *x_scratch;            /* the inlets' copies, N * x_n */
    int x_n;
    /* lines from the worker, under x_mutex (perform never takes it) */
    pthread_mutex_t x_mutex;
    dream_line *x_lines, **x_lines_tail;
    int x_nlines;
} t_dream;

/* ---- worker -> Pd lines ----------------------------------------------------- */

/* The worker's line callback: queues the line for the clock. */
static void dream_line_cb(void *ctx, int kind, const char *text)
{
    t_dream *x = (t_dream *)ctx;
    size_t n = strlen(text);
    dream_line *l = (dream_line *)malloc(sizeof(*l) + n + 1);
    if (!l)
        return;
    l->next = NULL;
    l->kind = kind;
    memcpy(l->text, text, n + 1);
    if (kind == DW_LINE_INFO) {
        /* Pd would read , ; $ \ as message syntax */
        char *c;
        for (c = l->text; *c; c++)
            if (*c == ',' || *c == ';' || *c == '$' || *c == '\\')
                *c = ' ';
    }
    pthread_mutex_lock(&x->x_mutex);
    if (x->x_nlines < MAX_LINES) {
        *x->x_lines_tail = l;
        x->x_lines_tail = &l->next;
        x->x_nlines++;
        l = NULL;
    }
    pthread_mutex_unlock(&x->x_mutex);
    free(l);
}

/* ---- Pd side: helpers --------------------------------------------------------- */

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

/* ---- methods ------------------------------------------------------------------ */

/* Several "host:port" symbols are replicas of one service, joined as
 * "host:port,host:port" for the worker (a comma cannot be typed in a Pd box).
 * Returns 0 when they do not fit in `out`. */
static int dream_join_servers(int argc, t_atom *argv, char *out, size_t outlen)
{
    size_t used = 0;
    int i;
    out[0] = 0;
    for (i = 0; i < argc; i++) {
        const char *name;
        int n;
        if (argv[i].a_type != A_SYMBOL)
            continue;
        name = atom_getsymbol(&argv[i])->s_name;
        n = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", name);
        if (n < 0 || (size_t)n >= outlen - used)
            return 0;
        used += (size_t)n;
    }
    return 1;
}

/* `connect [host:port ...]`: (re)connects, to these servers if given. */
static void dream_connect(t_dream *x, t_symbol *s, int argc, t_atom *argv)
{
    char target[DW_TARGET];
    (void)s;
    if (!dream_join_servers(argc, argv, target, sizeof(target))) {
        pd_error(x, "dream~: connect: too many servers (at most %d characters)",
                 DW_TARGET - 1);
        return;
    }
    dw_connect(x->x_w, target[0] ? target : NULL);
}

static void dream_disconnect(t_dream *x)
{
    dw_disconnect(x->x_w);
}

static void dream_model(t_dream *x, t_symbol *name)
{
    if (strlen(name->s_name) >= DC_NAME) {
        pd_error(x, "dream~: model name too long");
        return;
    }
    dw_model(x->x_w, name->s_name);
}

static void dream_layer(t_dream *x, t_symbol *s, int argc, t_atom *argv)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    if (!argc)      /* no layer named: back to the model's default */
        dw_default_layers(x->x_w);
    else if (dream_parse_layers(&p, argc, argv) == 0)
        dw_change(x->x_w, &p);
}

/* A numeric parameter, by its row in the core's table. */
static void dream_number(t_dream *x, int which, t_floatarg f)
{
    const dw_number_info *n = &dw_numbers[which];
    dw_set_number(x->x_w, which, clampf(n->name, f, n->lo, n->hi));
}

#define DREAM_NUMBER(fn, which)                 \
    static void fn(t_dream *x, t_floatarg f)    \
    {                                           \
        dream_number(x, which, f);              \
    }

DREAM_NUMBER(dream_iterations, DW_ITERATIONS)
DREAM_NUMBER(dream_step, DW_STEP)
DREAM_NUMBER(dream_mix, DW_MIX)
DREAM_NUMBER(dream_jitter, DW_JITTER)
DREAM_NUMBER(dream_lowpass, DW_LOWPASS)
DREAM_NUMBER(dream_smoothing, DW_SMOOTHING)
DREAM_NUMBER(dream_seed, DW_SEED)

/* `objective NAME` and `update NAME`: the server checks the name and answers an
 * unknown one with a warning on the info outlet; the stream goes on. */
static void dream_choice(t_dream *x, unsigned bit, t_symbol *name)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    snprintf(bit == DC_SET_OBJECTIVE ? p.objective : p.update, sizeof(p.update), "%s",
             name->s_name);
    p.set = bit;
    dw_change(x->x_w, &p);
}

static void dream_objective(t_dream *x, t_symbol *name)
{
    dream_choice(x, DC_SET_OBJECTIVE, name);
}

static void dream_update(t_dream *x, t_symbol *name)
{
    dream_choice(x, DC_SET_UPDATE, name);
}

/* `class NAME[@WEIGHT] ...` and `notes NOTE ...`: dream toward these classes
 * (tags, notes "C4"/"Db4", numbers: indices or MIDI notes as the model reads
 * them); sets the objective to "class". The server checks the names and
 * answers an unknown one with a warning on the info outlet. */
static void dream_classes(t_dream *x, t_symbol *s, int argc, t_atom *argv)
{
    dc_params p;
    int i;
    if (!argc) {
        pd_error(x, "dream~: %s: name at least one class, e.g. %s", s->s_name,
                 strcmp(s->s_name, "notes") ? "class choir techno@0.5" : "notes C4 E4 G4");
        return;
    }
    if (argc > DC_MAX_CLASSES) {
        pd_error(x, "dream~: %s: at most %d classes", s->s_name, DC_MAX_CLASSES);
        return;
    }
    memset(&p, 0, sizeof(p));
    for (i = 0; i < argc; i++) {
        dc_class *c = &p.classes[i];
        char text[DC_NAME], *at;
        if (argv[i].a_type == A_FLOAT)
            snprintf(text, sizeof(text), "%d", (int)atom_getfloat(argv + i));
        else
            snprintf(text, sizeof(text), "%s", atom_getsymbol(argv + i)->s_name);
        c->weight = 1.0f;
        at = strrchr(text, '@');
        if (at) {
            char *end;
            c->weight = strtof(at + 1, &end);
            if (end == at + 1 || *end) {
                pd_error(x, "dream~: %s: weight of %s is not a number", s->s_name, text);
                return;
            }
            *at = '\0';
        }
        snprintf(c->name, sizeof(c->name), "%s", text);
    }
    p.nclasses = argc;
    snprintf(p.objective, sizeof(p.objective), "class");
    p.set = DC_SET_CLASSES | DC_SET_OBJECTIVE;
    dw_change(x->x_w, &p);
}

static void dream_exclusive(t_dream *x, t_floatarg f)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    p.exclusive = f != 0;
    p.set = DC_SET_EXCLUSIVE;
    dw_change(x->x_w, &p);
}

static void dream_autoclass(t_dream *x, t_symbol *how)
{
    dc_params p;
    if (strcmp(how->s_name, "step") && strcmp(how->s_name, "input")) {
        pd_error(x, "dream~: autoclass %s: use step or input", how->s_name);
        return;
    }
    memset(&p, 0, sizeof(p));
    snprintf(p.auto_class, sizeof(p.auto_class), "%s", how->s_name);
    snprintf(p.objective, sizeof(p.objective), "class");
    p.set = DC_SET_AUTO_CLASS | DC_SET_OBJECTIVE;
    dw_change(x->x_w, &p);
}

static void dream_mode(t_dream *x, t_symbol *mode)
{
    dc_params p;
    if (strcmp(mode->s_name, "process") && strcmp(mode->s_name, "generate")
        && strcmp(mode->s_name, "morph")) {
        pd_error(x, "dream~: mode %s: use process, generate or morph", mode->s_name);
        return;
    }
    memset(&p, 0, sizeof(p));
    snprintf(p.mode, sizeof(p.mode), "%s", mode->s_name);
    p.set = DC_SET_MODE;
    dw_change(x->x_w, &p);
}

/* `morph AMOUNT`: in morph mode (an autoencoder model and a target), how far
 * the input moves toward the target's code, 0..1. */
static void dream_morph(t_dream *x, t_floatarg f)
{
    dc_params p;
    memset(&p, 0, sizeof(p));
    p.morph_amount = clampf("morph", f, 0, 1);
    p.set = DC_SET_MORPH;
    dw_change(x->x_w, &p);
}

static void dream_target(t_dream *x, t_symbol *array)
{
    /* Copied here, in Pd's thread, into a sound the worker sends (again after
     * a reconnect) without copying it under any lock. */
    t_garray *a = (t_garray *)pd_findbyclass(array, garray_class);
    t_word *vec;
    dw_sound *snd;
    float *pcm;
    int n, i;
    if (!a) {
        pd_error(x, "dream~: target %s: no such array", array->s_name);
        return;
    }
    if (!garray_getfloatwords(a, &n, &vec) || n < 1) {
        pd_error(x, "dream~: target %s: not a float array, or empty", array->s_name);
        return;
    }
    if (!(snd = dw_sound_new((size_t)n, (unsigned)sys_getsr()))) {
        pd_error(x, "dream~: target %s: out of memory", array->s_name);
        return;
    }
    pcm = dw_sound_pcm(snd);
    for (i = 0; i < n; i++)
        pcm[i] = vec[i].w_float;
    dw_set_sound(x->x_w, snd);
}

static void dream_reset(t_dream *x)
{
    dw_reset(x->x_w);
}

static void dream_block(t_dream *x, t_floatarg f)
{
    dw_set_block(x->x_w, (unsigned)clampf("block", f, DW_MIN_BLOCK, DW_MAX_BLOCK));
}

/* `window N`: frames of context the server dreams per block (0 = the model's
 * own window). Shorter is cheaper; it is fixed per stream, so this reopens. */
static void dream_window(t_dream *x, t_floatarg f)
{
    dw_set_window(x->x_w, (unsigned)clampf("window", f, 0, 480000));
}

static void dream_preroll(t_dream *x, t_floatarg f)
{
    dw_set_preroll(x->x_w, (unsigned)clampf("preroll", f, 0, DW_MAX_PREROLL));
}

/* `delay N`: frames the server's output trails its input (0 = one block); a
 * longer delay lets each sample be dreamed over more blocks. Reopens. */
static void dream_delay(t_dream *x, t_floatarg f)
{
    dw_set_delay(x->x_w, (unsigned)clampf("delay", f, 0, 480000));
}

/* `adapt N`: frames the pre-roll may grow by after late replies (0 = a fixed
 * latency: late frames are concealed, then skipped). */
static void dream_adapt(t_dream *x, t_floatarg f)
{
    dw_set_adapt(x->x_w, (unsigned)clampf("adapt", f, 0, DW_MAX_PREROLL));
}

static void dream_bypass(t_dream *x, t_floatarg f)
{
    x->x_bypass = f != 0;
    dw_set_bypass(x->x_w, x->x_bypass);
}

static void dream_dry(t_dream *x, t_floatarg f)
{
    x->x_dry = f != 0;
    dw_set_dry(x->x_w, x->x_dry);
}

static void dream_models(t_dream *x)
{
    dw_query_models(x->x_w);
}

static void dream_layers_query(t_dream *x, t_symbol *model)
{
    dw_query_layers(x->x_w, model->s_name);
}

static void dream_print(t_dream *x)
{
    dc_params p;
    dw_report r;
    char target[DW_TARGET], layers[512] = "";
    unsigned rate, block, preroll;
    int i, j;
    dw_settings(x->x_w, &p, target, sizeof(target), &rate, &block, &preroll);
    dw_get_report(x->x_w, &r);
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
        post("dream~: server %s, %s, %d channel(s), rate %u Hz, block %u, preroll %u, "
             "latency %d samples", target, dw_state_names[r.state], x->x_nch, rate, block,
             preroll, r.state == DW_CONNECTED ? r.latency : 0);
        post("  model %s, layers%s", (p.set & DC_SET_MODEL) ? p.model : "default",
             p.nlayers ? layers : " default");
        post("  iterations %s", OR_DEFAULT(DC_SET_ITERATIONS, "%d", p.iterations));
        post("  step %s", OR_DEFAULT(DC_SET_STEP, "%g", p.step_size));
        post("  mix %s", OR_DEFAULT(DC_SET_MIX, "%g", p.mix));
        post("  jitter %s", OR_DEFAULT(DC_SET_JITTER, "%d", p.time_jitter));
        post("  lowpass %s", OR_DEFAULT(DC_SET_LOWPASS, "%g", p.lowpass_hz));
        post("  smoothing %s", OR_DEFAULT(DC_SET_SMOOTHING, "%g", p.smoothing));
        post("  mode %s", (p.set & DC_SET_MODE) ? p.mode : "process");
        post("  bypass %d, dry %d, underruns %lu, concealed %lu (%lu frames), grown %d, "
             "overruns %lu, late %lu, dropped %lu", x->x_bypass, x->x_dry, r.underruns,
             r.concealed, r.concealed_frames, r.grown, r.overruns, r.late, r.dropped);
        post("  iterations run per block (server, last second) %.2f", r.iterations_run);
        post("  rtt %.2f ms (max %.2f ms over the last second)", r.rtt_ms, r.rtt_max_ms);
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
    dw_report r;
    pthread_mutex_lock(&x->x_mutex);
    lines = x->x_lines;
    x->x_lines = NULL;
    x->x_lines_tail = &x->x_lines;
    x->x_nlines = 0;
    pthread_mutex_unlock(&x->x_mutex);

    while ((l = lines)) {
        lines = l->next;
        if (l->kind == DW_LINE_INFO) {
            t_binbuf *b = binbuf_new();
            binbuf_text(b, l->text, strlen(l->text));
            if (binbuf_getnatom(b) && binbuf_getvec(b)[0].a_type == A_SYMBOL)
                outlet_anything(x->x_info, binbuf_getvec(b)[0].a_w.w_symbol,
                                binbuf_getnatom(b) - 1, binbuf_getvec(b) + 1);
            binbuf_free(b);
        } else if (l->kind == DW_LINE_ERROR) {
            pd_error(x, "%s", l->text);
        } else {
            post("%s", l->text);
        }
        free(l);
    }
    dw_get_report(x->x_w, &r);
    if (r.state == DW_CONNECTED && ++x->x_ticks >= REPORT_TICKS) {
        x->x_ticks = 0;
        dream_out_float(x, "rtt", r.rtt_ms);
        dream_out_float(x, "underruns", r.underruns);
        dream_out_float(x, "concealed", r.concealed);
        dream_out_float(x, "late", r.late);
        dream_out_float(x, "iterations_run", r.iterations_run);
    }
    clock_delay(x->x_clock, TICK_MS);
}

/* ---- creation arguments --------------------------------------------------- */

/* Applies "-flag args..." pairs; flags are symbols beginning with '-'. The
 * server is only noted: the caller connects once all flags are in. */
static void dream_args(t_dream *x, int argc, t_atom *argv, char *target, size_t targetlen)
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
        if (!strcmp(flag, "server") && n) {
            /* -server host:port [host:port ...]: replicas of one service */
            if (!dream_join_servers(n, args, target, targetlen))
                pd_error(x, "dream~: -server: too many servers (at most %d characters)",
                         (int)targetlen - 1);
        }
        else if (!strcmp(flag, "model") && n) {
            /* unlike the message, keeps the -layer flags whatever their order */
            dc_params p;
            memset(&p, 0, sizeof(p));
            snprintf(p.model, sizeof(p.model), "%s", sym->s_name);
            p.set = DC_SET_MODEL;
            dw_change(x->x_w, &p);
        }
        else if (!strcmp(flag, "layer") && n) {
            /* repeatable: each -layer adds to the list */
            dc_params p, one;
            char t[DW_TARGET];
            unsigned u;
            int before;
            dw_settings(x->x_w, &p, t, sizeof(t), &u, &u, &u);
            before = (p.set & DC_SET_LAYERS) ? p.nlayers : 0;
            memset(&one, 0, sizeof(one));
            if (dream_parse_layers(&one, n, args) == 0) {
                int k;
                for (k = 0; k < one.nlayers && before + k < DC_MAX_LAYERS; k++)
                    p.layers[before + k] = one.layers[k];
                p.nlayers = before + k;
                p.set = DC_SET_LAYERS;
                dw_change(x->x_w, &p);
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
            dream_block(x, f);
        else if (!strcmp(flag, "preroll") && n)
            dream_preroll(x, f);
        else if (!strcmp(flag, "delay") && n)
            dream_delay(x, f);
        else if (!strcmp(flag, "adapt") && n)
            dream_adapt(x, f);
        else if (!strcmp(flag, "dry") && n)
            dream_dry(x, f);
        else
            pd_error(x, "dream~: unknown or empty flag -%s; see the help patch", flag);
        i += 1 + n;
    }
}

/* ---- new, free, perform, dsp, setup -------------------------------------- */

static void *dream_new(t_symbol *s, int argc, t_atom *argv)
{
    t_dream *x = (t_dream *)pd_new(dream_class);
    char err[DC_TEXT], target[DW_TARGET];
    /* The server: -server, else $AUDIODREAM_SERVER (as for the command line), else the default. */
    const char *env = getenv("AUDIODREAM_SERVER");
    dw_options o;
    int i;
    snprintf(target, sizeof(target), "%s", env && *env ? env : DEFAULT_SERVER);
    x->x_nch = 1;
    if (argc && argv[0].a_type == A_FLOAT) {    /* [dream~ N ...] */
        x->x_nch = (int)clampf("channels", atom_getfloat(argv), 1, DW_MAX_CHANNELS);
        argc--;
        argv++;
    }
    for (i = 1; i < x->x_nch; i++)
        inlet_new(&x->x_obj, &x->x_obj.ob_pd, &s_signal, &s_signal);
    for (i = 0; i < x->x_nch; i++)
        outlet_new(&x->x_obj, &s_signal);
    x->x_info = outlet_new(&x->x_obj, 0);
    x->x_sig = (t_sample **)getbytes(2 * x->x_nch * sizeof(t_sample *));
    x->x_lines_tail = &x->x_lines;
    pthread_mutex_init(&x->x_mutex, NULL);

    memset(&o, 0, sizeof(o));
    o.name = "dream~";
    o.target = target;
    o.channels = (unsigned)x->x_nch;
    o.rate = (unsigned)sys_getsr();
    o.block = DEFAULT_BLOCK;
    o.preroll = DEFAULT_PREROLL;
    o.line = dream_line_cb;
    o.ctx = x;
    if (!(x->x_w = dw_new(&o, err, sizeof(err)))) {
        pd_error(x, "dream~: %s", err);
        pthread_mutex_destroy(&x->x_mutex);
        freebytes(x->x_sig, 2 * x->x_nch * sizeof(t_sample *));
        return NULL;
    }
    dw_set_dry(x->x_w, 0);
    dream_args(x, argc, argv, target, sizeof(target));
    dw_connect(x->x_w, target);     /* right away; `disconnect` stops it */
    x->x_clock = clock_new(x, (t_method)dream_tick);
    clock_delay(x->x_clock, 0);
    return x;
}

static void dream_free(t_dream *x)
{
    dream_line *l;
    dw_free(x->x_w);                /* joins the worker: no more lines */
    clock_free(x->x_clock);
    while ((l = x->x_lines)) {
        x->x_lines = l->next;
        free(l);
    }
    pthread_mutex_destroy(&x->x_mutex);
    freebytes(x->x_sig, 2 * x->x_nch * sizeof(t_sample *));
    if (x->x_scratch)
        freebytes(x->x_scratch, (size_t)x->x_n * x->x_nch * sizeof(t_sample));
}

static t_int *dream_perform(t_int *w)
{
    t_dream *x = (t_dream *)(w[1]);
    int n = (int)(w[2]), c;
    const float *in[DW_MAX_CHANNELS];
    /* Inputs first: Pd may hand us the same buffer for an inlet and an outlet. */
    for (c = 0; c < x->x_nch; c++) {
        memcpy(x->x_scratch + c * n, x->x_sig[c], n * sizeof(t_sample));
        in[c] = x->x_scratch + c * n;
    }
    dw_perform(x->x_w, in, x->x_sig + x->x_nch, (size_t)n);
    return w + 3;
}

static void dream_dsp(t_dream *x, t_signal **sp)
{
    int c, n = sp[0]->s_n;
    dw_set_rate(x->x_w, (unsigned)sp[0]->s_sr);  /* a stream's rate is fixed: reopens */
    for (c = 0; c < 2 * x->x_nch; c++)
        x->x_sig[c] = sp[c]->s_vec;
    if (n != x->x_n) {
        x->x_scratch = (t_sample *)resizebytes(x->x_scratch,
                                               (size_t)x->x_n * x->x_nch * sizeof(t_sample),
                                               (size_t)n * x->x_nch * sizeof(t_sample));
        x->x_n = n;
    }
    dsp_add(dream_perform, 2, x, (t_int)n);
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
    class_addmethod(dream_class, (t_method)dream_morph, gensym("morph"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_target, gensym("target"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_objective, gensym("objective"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_classes, gensym("class"), A_GIMME, 0);
    class_addmethod(dream_class, (t_method)dream_classes, gensym("notes"), A_GIMME, 0);
    class_addmethod(dream_class, (t_method)dream_exclusive, gensym("exclusive"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_autoclass, gensym("autoclass"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_window, gensym("window"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_update, gensym("update"), A_SYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_block, gensym("block"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_preroll, gensym("preroll"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_delay, gensym("delay"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_adapt, gensym("adapt"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_reset, gensym("reset"), 0);
    class_addmethod(dream_class, (t_method)dream_bypass, gensym("bypass"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_dry, gensym("dry"), A_FLOAT, 0);
    class_addmethod(dream_class, (t_method)dream_models, gensym("models"), 0);
    class_addmethod(dream_class, (t_method)dream_layers_query, gensym("layers?"),
                    A_DEFSYMBOL, 0);
    class_addmethod(dream_class, (t_method)dream_print, gensym("print"), 0);
}
