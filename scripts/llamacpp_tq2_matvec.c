/*
 * Ternary matrix-vector products alone, llama.cpp's side: times llama.cpp's own TQ2_0 x Q8_K
 * dot-product kernel (`ggml_vec_dot_tq2_0_q8_K`, exported by libggml-cpu) over every ternary
 * matrix-vector product of one token of a model shape, the same products, shapes and byte
 * counts as `bench_decode`'s `ternary_matvec_pass` on our side. Not part of CI, not a llama.cpp
 * build script: it links a llama.cpp you built yourself (see scripts/bench-bitnet-matvec-compare.sh).
 *
 * One pass = quantize the two activation vectors (d and ff wide) to Q8_K, then for every layer
 * q, k, v, o, gate, up (d -> rows) and down (ff -> d), one dot product per row. With T threads,
 * each matrix's rows are split into T equal ranges and the threads meet at a spin barrier after
 * every matrix (the way ggml's own thread pool works, and never sleeping — the most favourable
 * threading llama.cpp could have). Prints the fastest and the mean pass over REPS passes.
 *
 * usage: llamacpp_tq2_matvec REPS THREADS LAYERS D KV FF
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* llama.cpp's exported CPU kernels (ggml-cpu). */
void ggml_cpu_init(void);
void ggml_vec_dot_tq2_0_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx,
                             const void *vy, size_t by, int nrc);
void quantize_row_q8_K(const float *x, void *y, int64_t k);

/* The GGUF block layouts: TQ2_0 = 64 code bytes + f16 scale; Q8_K = f32 scale, 256 int8, 16 i16 sums. */
typedef struct { uint8_t qs[64]; uint16_t d; } block_tq2;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8k;

enum { MATS = 7 };
static int n_layers, n_threads, shapes[MATS][2];
static block_tq2 **mats;
static block_q8k *act_d, *act_f;
static float *out;
static atomic_int bar_count, bar_gen;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void barrier(void) {
    int g = atomic_load(&bar_gen);
    if (atomic_fetch_add(&bar_count, 1) == n_threads - 1) {
        atomic_store(&bar_count, 0);
        atomic_fetch_add(&bar_gen, 1);
    } else {
        while (atomic_load(&bar_gen) == g) __builtin_ia32_pause();
    }
}

static void pass(int t) {
    for (int l = 0; l < n_layers; l++)
        for (int j = 0; j < MATS; j++) {
            int rows = shapes[j][0], cols = shapes[j][1];
            const block_q8k *a = j == MATS - 1 ? act_f : act_d;
            size_t bpr = (size_t)cols / 256;
            int r0 = (int)((long)rows * t / n_threads), r1 = (int)((long)rows * (t + 1) / n_threads);
            const block_tq2 *m = mats[l * MATS + j];
            for (int i = r0; i < r1; i++)
                ggml_vec_dot_tq2_0_q8_K(cols, &out[i], 0, m + i * bpr, 0, a, 0, 1);
            if (n_threads > 1) barrier();
        }
}

static int reps;
static void *worker(void *arg) {
    int t = (int)(long)arg;
    for (int it = 0; it < reps; it++) {
        barrier();
        pass(t);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s REPS THREADS LAYERS D KV FF (e.g. 100 1 8 512 128 1536 for small)\n", argv[0]);
        return 2;
    }
    reps = atoi(argv[1]);
    n_threads = atoi(argv[2]);
    n_layers = atoi(argv[3]);
    int d = atoi(argv[4]), kv = atoi(argv[5]), ff = atoi(argv[6]);
    if (reps < 1 || n_threads < 1 || n_threads > 64 || n_layers < 1 || d % 256 || ff % 256 || kv < 1) {
        fprintf(stderr, "bad arguments: D and FF must be multiples of 256, the rest positive\n");
        return 2;
    }
    ggml_cpu_init();
    int sh[MATS][2] = {{d, d}, {kv, d}, {kv, d}, {d, d}, {ff, d}, {ff, d}, {d, ff}};
    memcpy(shapes, sh, sizeof sh);
    mats = calloc((size_t)n_layers * MATS, sizeof *mats);
    size_t bytes = 0;
    for (int i = 0; i < n_layers * MATS; i++) {
        size_t nb = (size_t)shapes[i % MATS][0] * shapes[i % MATS][1] / 256;
        mats[i] = malloc(nb * sizeof(block_tq2));
        bytes += nb * sizeof(block_tq2);
        for (size_t b = 0; b < nb; b++) {
            for (int k = 0; k < 64; k++) {
                uint8_t v = 0;
                for (int s = 0; s < 4; s++) v |= (uint8_t)(next() % 3) << (2 * s);
                mats[i][b].qs[k] = v;
            }
            mats[i][b].d = 0x2400; /* f16 1/64 */
        }
    }
    float *xd = malloc(sizeof(float) * d), *xf = malloc(sizeof(float) * ff);
    for (int i = 0; i < d; i++) xd[i] = ((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < ff; i++) xf[i] = ((i * 37 % 101) - 50) / 50.0f;
    act_d = malloc(sizeof(block_q8k) * (d / 256));
    act_f = malloc(sizeof(block_q8k) * (ff / 256));
    out = calloc(ff > d ? ff : d, sizeof(float));

    /* Check the call against a direct sum on one row, so a wrong build cannot time garbage. */
    quantize_row_q8_K(xd, act_d, d);
    float got;
    ggml_vec_dot_tq2_0_q8_K(d, &got, 0, mats[0], 0, act_d, 0, 1);
    double want = 0;
    for (int b = 0; b < d / 256; b++)
        for (int j = 0; j < 256; j++) {
            int h = j / 128, k = (j % 128) / 32, e = j % 32;
            int c = ((mats[0][b].qs[h * 32 + e] >> (2 * k)) & 3) - 1;
            want += c * act_d[b].qs[j] * (double)act_d[b].d / 64.0;
        }
    if ((got - want) * (got - want) > 1e-6 * (1 + want * want)) {
        fprintf(stderr, "llama.cpp's kernel gave %g, the direct sum %g: wrong library?\n", got, want);
        return 1;
    }

    pthread_t th[64];
    for (int t = 1; t < n_threads; t++) pthread_create(&th[t], NULL, worker, (void *)(long)t);
    double best = 1e9, total = 0;
    for (int it = 0; it < reps; it++) {
        double t0 = now();
        quantize_row_q8_K(xd, act_d, d);
        quantize_row_q8_K(xf, act_f, ff);
        if (n_threads > 1) barrier();
        pass(0);
        double t = now() - t0;
        total += t;
        if (t < best) best = t;
    }
    for (int t = 1; t < n_threads; t++) pthread_join(th[t], NULL);
    printf("llama.cpp ggml_vec_dot_tq2_0_q8_K | threads %d | fastest pass %.3f ms | mean %.3f ms | %.1f MB | %.1f GB/s (fastest)\n",
           n_threads, best * 1e3, total / reps * 1e3, bytes / 1e6, bytes / best / 1e9);
    return 0;
}
