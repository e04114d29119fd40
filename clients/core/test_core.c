/* test_core: checks the host-agnostic core without any host.
 *
 *   test_core              the ring, the parameter table, and a worker with no
 *                          server: perform keeps time, outputs dry or silence,
 *                          and the worker says why and retries;
 *   test_core HOST:PORT    also streams 2 channels through that server at 0
 *                          iterations, offline: every output frame is the input
 *                          delayed by the reported latency, exactly.
 * Prints one line per check; exits 1 on the first failure. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dream_ring.h"
#include "dream_worker.h"

#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (!(cond)) {                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                     \
            fprintf(stderr, "\n");                            \
            exit(1);                                          \
        }                                                     \
    } while (0)

/* Lines from the worker, kept for the checks. */
static pthread_mutex_t lines_mutex = PTHREAD_MUTEX_INITIALIZER;
static char lines[64][256];
static int nlines;

static void on_line(void *ctx, int kind, const char *text)
{
    pthread_mutex_lock(&lines_mutex);
    if (nlines < 64)
        snprintf(lines[nlines++], sizeof(lines[0]), "%d %s", kind, text);
    pthread_mutex_unlock(&lines_mutex);
    fprintf(stderr, "  line %d: %s\n", kind, text);
}

static int has_line(const char *start)
{
    int i, found = 0;
    pthread_mutex_lock(&lines_mutex);
    for (i = 0; i < nlines && !found; i++)
        found = strncmp(lines[i], start, strlen(start)) == 0;
    pthread_mutex_unlock(&lines_mutex);
    return found;
}

static int wait_line(const char *start, double seconds)
{
    double until = dc_now() + seconds;
    while (!has_line(start) && dc_now() < until)
        usleep(10000);
    return has_line(start);
}

static void test_ring(void)
{
    dream_ring r;
    float a[100], b[100], c0[40], c1[40], d0[40], d1[40];
    const float *src[2] = {c0, c1};
    float *dst[2] = {d0, d1};
    size_t i, k;
    CHECK(dream_ring_init(&r, 100) == 0, "init");
    CHECK(r.mask == 127, "capacity is the next power of two (%zu)", r.mask + 1);
    for (i = 0; i < 100; i++)
        a[i] = (float)i;
    /* wrap around several times: what goes in comes out, in order */
    for (k = 0; k < 10; k++) {
        CHECK(dream_ring_write(&r, a, 100) == 100, "write 100");
        CHECK(dream_ring_write(&r, a, 100) == 28, "only the room is written");
        CHECK(dream_ring_read(&r, b, 100) == 100, "read 100");
        CHECK(memcmp(a, b, sizeof(a)) == 0, "same samples back");
        CHECK(dream_ring_read(&r, NULL, 100) == 28, "discard the rest");
    }
    /* planar <-> interleaved, 2 channels, across the wrap */
    for (i = 0; i < 40; i++) {
        c0[i] = (float)i;
        c1[i] = -(float)i;
    }
    for (k = 0; k < 7; k++) {
        CHECK(dream_ring_write_planar(&r, src, 2, 40) == 40, "planar write");
        CHECK(dream_ring_write_planar(&r, src, 2, 40) == 0, "all or nothing");
        CHECK(dream_ring_readable(&r) == 80, "80 samples");
        CHECK(dream_ring_read_planar(&r, dst, 2, 40) == 40, "planar read");
        CHECK(!memcmp(c0, d0, sizeof(c0)) && !memcmp(c1, d1, sizeof(c1)), "channels kept");
    }
    CHECK(dream_ring_write_planar(&r, src, 2, 5) == 5, "5 frames");
    dream_ring_read(&r, b, 4);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 1 && b[3] == -1, "interleaved on the wire");
    dream_ring_free(&r);
    printf("ok ring\n");
}

static void test_numbers(void)
{
    dc_params p, q;
    float v = 20;
    memset(&p, 0, sizeof(p));
    CHECK(dw_clamp_number(DW_MIX, &v) == 1 && v == 1, "mix clamps to 1");
    v = NAN;
    CHECK(dw_clamp_number(DW_STEP, &v) == 1 && v == 0, "NaN becomes the lowest");
    dw_number_to_params(&p, DW_ITERATIONS, 3.7f);
    dw_number_to_params(&p, DW_STEP, 0.25f);
    CHECK(p.set == (DC_SET_ITERATIONS | DC_SET_STEP) && p.iterations == 3
          && p.step_size == 0.25f, "numbers reach their fields");
    memset(&q, 0, sizeof(q));
    q.mix = 0.5f;
    q.set = DC_SET_MIX;
    dc_params_merge(&q, &p);
    CHECK(q.mix == 0.5f && q.iterations == 3 && q.set == (DC_SET_MIX | DC_SET_ITERATIONS
          | DC_SET_STEP), "merge keeps what it is not given");
    printf("ok numbers\n");
}

static void test_replicas(void)
{
    char t[DW_TARGET], small[8];
    CHECK(dw_replica("127.0.0.1:5001", 7, t, sizeof(t)) == 1 && !strcmp(t, "127.0.0.1:5001"),
          "one target is itself, whatever the index");
    CHECK(dw_replica("a:1,b:2,c:3", 1, t, sizeof(t)) == 3 && !strcmp(t, "b:2"), "second");
    CHECK(dw_replica("a:1,b:2,c:3", 5, t, sizeof(t)) == 3 && !strcmp(t, "c:3"), "wraps");
    CHECK(dw_replica(",a:1,,b:2,", 1, t, sizeof(t)) == 2 && !strcmp(t, "b:2"),
          "empty entries skipped");
    CHECK(dw_replica("", 0, t, sizeof(t)) == 0 && t[0] == 0, "none");
    CHECK(dw_replica("long-host-name:50051,b:2", 0, small, sizeof(small)) == 2
          && strlen(small) == sizeof(small) - 1, "cut to the buffer");
    printf("ok replicas\n");
}

static void sine(float *const *buf, unsigned nch, size_t n, size_t at)
{
    size_t i;
    unsigned c;
    for (c = 0; c < nch; c++)
        for (i = 0; i < n; i++)
            buf[c][i] = (float)(0.3 * sin(0.05 * (c + 1) * (double)(at + i)) + 0.01 * c);
}

static void test_no_server(void)
{
    dw_options o;
    dw_worker *w;
    char err[256];
    float i0[64], i1[64], o0[64], o1[64];
    const float *in[2] = {i0, i1};
    float *out[2] = {o0, o1};
    float *inw[2] = {i0, i1};
    int k;
    memset(&o, 0, sizeof(o));
    o.name = "test";
    o.target = "127.0.0.1:1";       /* nothing listens there */
    o.channels = 2;
    o.rate = 48000;
    o.block = 1024;
    o.preroll = 1024;
    o.fixed_sizes = 1;
    o.connect = 1;
    o.line = on_line;
    o.info_ring = 1;                /* info lines wait for dw_take_info */
    w = dw_new(&o, err, sizeof(err));
    CHECK(w, "dw_new: %s", err);
    CHECK(wait_line("2 test: cannot stream from 127.0.0.1:1", 10), "the outage is said");
    for (k = 0; k < 2; k++) {
        dw_set_dry(w, k == 0);
        sine(inw, 2, 64, 0);
        dw_perform(w, in, out, 64);
        CHECK(k == 0 ? !memcmp(i0, o0, sizeof(o0)) && !memcmp(i1, o1, sizeof(o1))
                     : o0[10] == 0 && o1[10] == 0, "dry %d", k == 0);
    }
    {   /* the info lines went to the ring, in order, not to the callback */
        char line[256];
        CHECK(dw_take_info(w, line, sizeof(line)) && !strcmp(line, "state connecting"),
              "first info line");
        CHECK(dw_take_info(w, line, sizeof(line)) && !strcmp(line, "state disconnected"),
              "second info line");
        CHECK(!has_line("0 "), "no info line through the callback");
    }
    dw_free(w);
    printf("ok no server\n");
}

/* 2 channels at 0 iterations through a real server, offline. */
static void test_transparent(const char *server)
{
    enum { N = 64, BLOCKS = 600 };
    dw_options o;
    dc_params p;
    dw_worker *w;
    dw_report rep;
    char err[256];
    static float x[2][N * BLOCKS], y[2][N * BLOCKS];
    int b, c;
    size_t i, latency, compared = 0;
    memset(&p, 0, sizeof(p));
    dw_number_to_params(&p, DW_ITERATIONS, 0);
    dw_number_to_params(&p, DW_MIX, 1);
    memset(&o, 0, sizeof(o));
    o.name = "test";
    o.target = server;
    o.channels = 2;
    o.rate = 48000;
    o.block = 1024;
    o.preroll = 256;
    o.fixed_sizes = 1;
    o.offline = 1;
    o.connect = 1;
    o.params = &p;
    o.line = on_line;
    w = dw_new(&o, err, sizeof(err));
    CHECK(w, "dw_new: %s", err);
    for (b = 0; b < BLOCKS; b++) {
        float *inw[2] = {x[0] + b * N, x[1] + b * N};
        const float *in[2] = {inw[0], inw[1]};
        float *out[2] = {y[0] + b * N, y[1] + b * N};
        sine(inw, 2, N, (size_t)b * N);
        CHECK(dw_perform_offline(w, in, out, N, 30) == 0, "block %d dreamed", b);
    }
    dw_get_report(w, &rep);
    latency = (size_t)rep.latency;
    CHECK(rep.state == DW_CONNECTED && latency >= 1024 + 256, "latency %zu", latency);
    for (c = 0; c < 2; c++)
        for (i = latency; i < N * BLOCKS; i++, compared++)
            CHECK(y[c][i] == x[c][i - latency], "ch %d frame %zu: %g != %g", c, i,
                  y[c][i], x[c][i - latency]);
    for (c = 0; c < 2; c++)
        for (i = 0; i < latency && i < N * BLOCKS; i++)
            CHECK(y[c][i] == 0, "zeros before the latency");
    CHECK(compared > 10000, "compared %zu frames", compared);
    CHECK(rep.underruns == 0, "no underrun offline (%lu)", rep.underruns);
    dw_free(w);
    printf("ok transparent through %s: latency %zu, %zu frames equal\n", server, latency,
           compared);
}

int main(int argc, char **argv)
{
    dc_global_init();
    test_ring();
    test_numbers();
    test_replicas();
    test_no_server();
    if (argc > 1)
        test_transparent(argv[1]);
    return 0;
}
