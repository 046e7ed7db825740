/* rnnkit's native LSTM and GRU recurrences: the time loops of the manual-backward kernel in C.
 *
 * Called through ctypes by rnnkit/kernels/native.py, which compiles this file at first use.
 * No Python object is touched here: every argument is a plain pointer or integer.  The
 * matrix products call the BLAS gemm that torch's CPU library exports (the caller passes the
 * function pointer), so this file needs no header but the C library's.
 *
 * Layouts (row-major, batch B, units u, time T; gates in Keras' order i, f, c, o):
 *   XP  (T, B, 4u)  input projection x_t W + b of every step (read only, unless G is XP)
 *   U   (u, 4u)     recurrent kernel
 *   M   (B, u)      recurrent dropout mask (already scaled) or NULL
 *   MASK (T, B)     1 = the step is valid for that row, 0 = carry the states over; or NULL
 *   H   (T+1, B, u) H[0] = h_0 on entry; H[t+1] = h after step t on return
 *   C   (T+1, B, u) C[0] = c_0 on entry; C[t+1] = c after step t on return
 *   G   (T, B, 4u)  with a gradient: the gate activations (i, f, g, o) of every step;
 *                   without: one (B, 4u) scratch row (g_step = 0); or XP itself (g_step =
 *                   B 4u), the gates then written over the inputs step by step
 *   TC  (T, B, u)   with a gradient: act(c_t) of every step; without: one (B, u) row
 *   W   (B, u)      scratch
 *
 * Step t, with h' = h_{t-1} * M and a / s the activation / recurrent activation:
 *   z = XP[t] + h' U;  i = s(z_i)  f = s(z_f)  g = a(z_g)  o = s(z_o)
 *   c_t = f c_{t-1} + i g;  h_t = o a(c_t);  where MASK[t] is 0: h_t = h_{t-1}, c_t = c_{t-1}
 *
 * Backward (rnnkit_lstm_backward_*): given dH (T, B, u) (the gradient reaching every h_t, or
 * NULL) and dc_T, it writes dZ (T, B, 4u), the gradient of the pre-activations z (zero at
 * masked steps), and dh_0, dc_0.  The caller forms dU = sum_t h'_{t-1}^T dZ_t and dXP = dZ.
 *
 * Threads: every row's recurrence is independent of the others' (the caller forms the weight
 * gradients), so each call splits the batch into row chunks, one per thread of the calling
 * thread's OpenMP team when built with -fopenmp: torch's own (torch ships libgomp.so.1 and
 * has loaded it; the loader gives this library that copy, by soname, so there is one runtime
 * and one thread count, torch.get_num_threads()).  Each chunk runs the whole time loop, its
 * gemm calls included, on its thread: one fork and join per call instead of one per step,
 * and the BLAS sees no nested team (it runs each chunk's small products on that thread).
 * The per-chunk functions (*_rows_*) keep the full batch's layout: arrays with a time axis
 * have time strides of BT rows, and the caller offsets every pointer by the chunk's first row.
 * Batches under 2 * MIN_CHUNK_ROWS rows stay in one chunk (a thread's start costs more).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Rows of a batch below which a call stays on one thread (a thread's share must be worth its
 * start). */
#define MIN_CHUNK_ROWS 16

#ifdef _OPENMP
#include <omp.h>
#define CHUNKS_IN_PARALLEL \
    _Pragma("omp parallel for schedule(static) num_threads(n_) if (n_ > 1)")
#else
#define CHUNKS_IN_PARALLEL
#endif

/* How many row chunks a batch of B rows is split into: one per thread of the OpenMP team, each
 * of MIN_CHUNK_ROWS rows at least; 1 without OpenMP. */
static int row_chunks(int B) {
#ifdef _OPENMP
    int n = B / MIN_CHUNK_ROWS, threads = omp_get_max_threads();
    n = n < threads ? n : threads;
    return n > 1 ? n : 1;
#else
    (void)B;
    return 1;
#endif
}

/* Run CALL once per row chunk, side by side, with b0 (its first row) and nb (its row count) in
 * scope; the chunks are near-equal. */
#define IN_ROW_CHUNKS(B, CALL)                                                                 \
    do {                                                                                       \
        const int n_ = row_chunks(B);                                                          \
        CHUNKS_IN_PARALLEL                                                                     \
        for (int i_ = 0; i_ < n_; i_++) {                                                      \
            const int b0 = (int)((long long)(B) * i_ / n_);                                    \
            const int nb = (int)((long long)(B) * (i_ + 1) / n_) - b0;                         \
            CALL;                                                                              \
        }                                                                                      \
    } while (0)

enum { ACT_LINEAR = 0, ACT_TANH = 1, ACT_SIGMOID = 2, ACT_HARD_SIGMOID = 3, ACT_RELU = 4 };

typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*dgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                         const double *, const double *, const int *, const double *,
                         const int *, const double *, double *, const int *);

/* e^x - 1 for float32, written so that gcc vectorizes loops calling it: range reduction
 * x = k ln2 + r (|r| <= ln2 / 2), a degree-7 polynomial q(r) = e^r - 1, then
 * e^x - 1 = 2^k q + (2^k - 1), exact in its last step when k = 0, so the result keeps its
 * relative accuracy near 0 (about 2e-7 relative on [-87, 88]).  NaN is handled by callers. */
static inline float expm1_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f + 12582912.0f; /* round(x / ln2) in the low bits */
    int32_t ti;
    memcpy(&ti, &t, 4);
    float k = t - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.428606765330187045e-06f;
    float q = r * (1.0f + r * (0.5f + r * (0.1666666716f + r * (0.04166664f
              + r * (0.008333452f + r * (0.001388929f + r * 0.000198413f))))));
    int32_t bits = (ti - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return scale * q + (scale - 1.0f);
}

static inline float sigmoid_f32(float x) {
    float s = 1.0f / (2.0f + expm1_f32(-x));
    s = x < -88.0f ? 0.0f : s; /* below float's range: 0, not e^-87's 1.6e-38 */
    return x != x ? x : s;
}

/* tanh(x) = -m / (2 + m) with m = e^(-2|x|) - 1, the sign of x restored. */
static inline float tanh_f32(float x) {
    float ax = x < 0 ? -x : x;
    float m = expm1_f32(-2.0f * ax);
    float t = __builtin_copysignf(-m / (2.0f + m), x);
    return x != x ? x : t;
}

static inline double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double tanh_f64(double x) { return tanh(x); }

#define DEFINE_KERNELS(T_, SUF, GEMM_T)                                                   \
                                                                                               \
/* y[k] = act(x[k]) for k < n (x and y may be the same array). */                             \
static void act_##SUF(int kind, int n, const T_ *x, T_ *y) {                                   \
    switch (kind) {                                                                            \
    case ACT_TANH:                                                                             \
        for (int k = 0; k < n; k++) y[k] = tanh_##SUF(x[k]);                                   \
        break;                                                                                 \
    case ACT_SIGMOID:                                                                          \
        for (int k = 0; k < n; k++) y[k] = sigmoid_##SUF(x[k]);                                \
        break;                                                                                 \
    case ACT_HARD_SIGMOID:                                                                     \
        for (int k = 0; k < n; k++) {                                                          \
            T_ v = x[k] / (T_)6 + (T_)0.5;                                                     \
            v = v < 0 ? 0 : v;                                                                 \
            y[k] = v > 1 ? 1 : v;                                                              \
        }                                                                                      \
        break;                                                                                 \
    case ACT_RELU:                                                                             \
        for (int k = 0; k < n; k++) y[k] = x[k] < 0 ? 0 : x[k];                                \
        break;                                                                                 \
    default:                                                                                   \
        if (x != y) memcpy(y, x, (size_t)n * sizeof(T_));                                      \
    }                                                                                          \
}                                                                                              \
                                                                                               \
/* d[k] *= act'(x_k), given y[k] = act(x_k). */                                                \
static void mul_dact_##SUF(int kind, int n, const T_ *y, T_ *d) {                              \
    switch (kind) {                                                                            \
    case ACT_TANH:                                                                             \
        for (int k = 0; k < n; k++) d[k] *= (T_)1 - y[k] * y[k];                               \
        break;                                                                                 \
    case ACT_SIGMOID:                                                                          \
        for (int k = 0; k < n; k++) d[k] *= y[k] - y[k] * y[k];                                \
        break;                                                                                 \
    case ACT_HARD_SIGMOID:                                                                     \
        for (int k = 0; k < n; k++) d[k] = (y[k] > 0 && y[k] < 1) ? d[k] / (T_)6 : 0;          \
        break;                                                                                 \
    case ACT_RELU:                                                                             \
        for (int k = 0; k < n; k++) d[k] = y[k] > 0 ? d[k] : 0;                                \
        break;                                                                                 \
    default:                                                                                   \
        break;                                                                                 \
    }                                                                                          \
}                                                                                              \
                                                                                               \
/* The activations alone, for tests of their accuracy. */                                     \
void rnnkit_activation_##SUF(int kind, int n, const T_ *x, T_ *y) { act_##SUF(kind, n, x, y); } \
                                                                                               \
/* Row-major C (m, n) = A (m, k) @ B (k, n) + beta C, with leading dimensions. */              \
static void mm_##SUF(GEMM_T gemm, int m, int n, int k, const T_ *A, int lda, const T_ *B,      \
                     int ldb, T_ beta, T_ *C, int ldc) {                                       \
    T_ one = 1;                                                                                \
    gemm("N", "N", &n, &m, &k, &one, B, &ldb, A, &lda, &beta, C, &ldc);                        \
}                                                                                              \
                                                                                               \
/* Row-major C (m, n) = A (m, k) @ B^T, B stored (n, k). */                                    \
static void mm_bt_##SUF(GEMM_T gemm, int m, int n, int k, const T_ *A, int lda, const T_ *B,   \
                        int ldb, T_ *C, int ldc) {                                             \
    T_ one = 1, zero = 0;                                                                      \
    gemm("T", "N", &n, &m, &k, &one, B, &ldb, A, &lda, &zero, C, &ldc);                        \
}                                                                                              \
                                                                                               \
static void lstm_forward_rows_##SUF(GEMM_T gemm, int T, int BT, int B, int u, const T_ *XP,    \
                                    const T_ *U, const T_ *M, const uint8_t *MASK, int act,    \
                                    int rec_act, T_ *H, T_ *C, T_ *G, ptrdiff_t g_step,        \
                                    T_ *TC, ptrdiff_t tc_step, T_ *W) {                        \
    const int u4 = 4 * u;                                                                      \
    const ptrdiff_t bu = (ptrdiff_t)B * u, bu4 = (ptrdiff_t)B * u4;                            \
    const ptrdiff_t tu = (ptrdiff_t)BT * u, tu4 = (ptrdiff_t)BT * u4;                          \
    for (int t = 0; t < T; t++) {                                                              \
        const T_ *h = H + t * tu, *c = C + t * tu;                                             \
        T_ *hn = H + (t + 1) * tu, *cn = C + (t + 1) * tu;                                     \
        T_ *g = G + t * g_step, *tc = TC + t * tc_step;                                        \
        const T_ *hr = h;                                                                      \
        if (M) {                                                                               \
            for (ptrdiff_t k = 0; k < bu; k++) W[k] = h[k] * M[k];                             \
            hr = W;                                                                            \
        }                                                                                      \
        if (g != XP + t * tu4) memcpy(g, XP + t * tu4, (size_t)bu4 * sizeof(T_));              \
        mm_##SUF(gemm, B, u4, u, hr, u, U, u4, (T_)1, g, u4);                                  \
        for (int b = 0; b < B; b++) {                                                          \
            T_ *gi = g + (ptrdiff_t)b * u4, *gf = gi + u, *gg = gf + u, *go = gg + u;          \
            const T_ *cp = c + (ptrdiff_t)b * u, *hp = h + (ptrdiff_t)b * u;                   \
            T_ *cb = cn + (ptrdiff_t)b * u, *hb = hn + (ptrdiff_t)b * u;                       \
            T_ *tcb = tc + (ptrdiff_t)b * u;                                                   \
            act_##SUF(rec_act, 2 * u, gi, gi);                                                 \
            act_##SUF(act, u, gg, gg);                                                         \
            act_##SUF(rec_act, u, go, go);                                                     \
            for (int j = 0; j < u; j++) cb[j] = gf[j] * cp[j] + gi[j] * gg[j];                 \
            act_##SUF(act, u, cb, tcb);                                                        \
            for (int j = 0; j < u; j++) hb[j] = go[j] * tcb[j];                                \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) {                                        \
                memcpy(cb, cp, (size_t)u * sizeof(T_));                                        \
                memcpy(hb, hp, (size_t)u * sizeof(T_));                                        \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
void rnnkit_lstm_forward_##SUF(GEMM_T gemm, int T, int B, int u, const T_ *XP, const T_ *U,    \
                               const T_ *M, const uint8_t *MASK, int act, int rec_act,         \
                               T_ *H, T_ *C, T_ *G, ptrdiff_t g_step, T_ *TC,                  \
                               ptrdiff_t tc_step, T_ *W) {                                     \
    const int u4 = 4 * u;                                                                      \
    IN_ROW_CHUNKS(B, lstm_forward_rows_##SUF(                                                  \
        gemm, T, B, nb, u, XP + (ptrdiff_t)b0 * u4, U, M ? M + (ptrdiff_t)b0 * u : NULL,       \
        MASK ? MASK + b0 : NULL, act, rec_act, H + (ptrdiff_t)b0 * u, C + (ptrdiff_t)b0 * u,   \
        G + (ptrdiff_t)b0 * u4, g_step, TC + (ptrdiff_t)b0 * u, tc_step,                       \
        W + (ptrdiff_t)b0 * u));                                                               \
}                                                                                              \
                                                                                               \
static void lstm_backward_rows_##SUF(GEMM_T gemm, int T, int BT, int B, int u, const T_ *U,    \
                                     const T_ *M, const uint8_t *MASK, int act, int rec_act,   \
                                     const T_ *C, const T_ *G, const T_ *TC, const T_ *dH,     \
                                     T_ *dh, T_ *dc, T_ *dZ, T_ *W) {                          \
    const int u4 = 4 * u;                                                                      \
    const ptrdiff_t bu = (ptrdiff_t)B * u, tu = (ptrdiff_t)BT * u;                             \
    const ptrdiff_t tu4 = (ptrdiff_t)BT * u4;                                                  \
    for (int t = T - 1; t >= 0; t--) {                                                         \
        const T_ *c = C + t * tu, *g = G + t * tu4, *tc = TC + t * tu;                         \
        T_ *dz = dZ + t * tu4;                                                                 \
        if (dH) {                                                                              \
            const T_ *dht = dH + t * tu;                                                       \
            for (ptrdiff_t k = 0; k < bu; k++) dh[k] += dht[k];                                \
        }                                                                                      \
        for (int b = 0; b < B; b++) {                                                          \
            const ptrdiff_t r = (ptrdiff_t)b * u;                                              \
            const T_ *gi = g + (ptrdiff_t)b * u4, *gf = gi + u, *gg = gf + u, *go = gg + u;    \
            T_ *di = dz + (ptrdiff_t)b * u4, *df = di + u, *dg = df + u, *dout = dg + u;       \
            T_ *dhb = dh + r, *dcb = dc + r;                                                   \
            const T_ *cp = c + r, *tcb = tc + r;                                               \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) {                                        \
                memset(di, 0, (size_t)u4 * sizeof(T_));                                        \
                continue;                                                                      \
            }                                                                                  \
            /* dtc = dh o, then dc += dtc a'(c_t) */                                           \
            for (int j = 0; j < u; j++) dout[j] = dhb[j] * go[j];                              \
            mul_dact_##SUF(act, u, tcb, dout);                                                 \
            for (int j = 0; j < u; j++) dcb[j] += dout[j];                                     \
            for (int j = 0; j < u; j++) {                                                      \
                di[j] = dcb[j] * gg[j];                                                        \
                df[j] = dcb[j] * cp[j];                                                        \
                dg[j] = dcb[j] * gi[j];                                                        \
                dout[j] = dhb[j] * tcb[j];                                                     \
                dcb[j] *= gf[j];                                                               \
            }                                                                                  \
            mul_dact_##SUF(rec_act, 2 * u, gi, di);                                            \
            mul_dact_##SUF(act, u, gg, dg);                                                    \
            mul_dact_##SUF(rec_act, u, go, dout);                                              \
        }                                                                                      \
        /* dh_{t-1} = (dZ_t U^T) M at valid rows, dh carried over at masked rows */           \
        mm_bt_##SUF(gemm, B, u, u4, dz, u4, U, u4, W, u);                                      \
        for (int b = 0; b < B; b++) {                                                          \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) continue;                                \
            const ptrdiff_t r = (ptrdiff_t)b * u;                                              \
            if (M) {                                                                           \
                for (int j = 0; j < u; j++) dh[r + j] = W[r + j] * M[r + j];                   \
            } else {                                                                           \
                memcpy(dh + r, W + r, (size_t)u * sizeof(T_));                                 \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
void rnnkit_lstm_backward_##SUF(GEMM_T gemm, int T, int B, int u, const T_ *U, const T_ *M,    \
                                const uint8_t *MASK, int act, int rec_act, const T_ *C,        \
                                const T_ *G, const T_ *TC, const T_ *dH, T_ *dh, T_ *dc,       \
                                T_ *dZ, T_ *W) {                                               \
    const int u4 = 4 * u;                                                                      \
    IN_ROW_CHUNKS(B, lstm_backward_rows_##SUF(                                                 \
        gemm, T, B, nb, u, U, M ? M + (ptrdiff_t)b0 * u : NULL, MASK ? MASK + b0 : NULL, act,  \
        rec_act, C + (ptrdiff_t)b0 * u, G + (ptrdiff_t)b0 * u4, TC + (ptrdiff_t)b0 * u,        \
        dH ? dH + (ptrdiff_t)b0 * u : NULL, dh + (ptrdiff_t)b0 * u, dc + (ptrdiff_t)b0 * u,    \
        dZ + (ptrdiff_t)b0 * u4, W + (ptrdiff_t)b0 * u));                                      \
}                                                                                              \
                                                                                               \
/* GRU, step t, with h' = h_{t-1} * M, x = XP[t] = [x_z, x_r, x_h] (input bias included):      \
 *   reset_after:      rec = h' U + b_rec;  z = s(x_z + rec_z)  r = s(x_r + rec_r)             \
 *                     hh = a(x_h + r rec_h)                                                   \
 *   not reset_after:  z = s(x_z + h' U_z)  r = s(x_r + h' U_r)  hh = a(x_h + (r h') U_h)      \
 *   h_t = z h_{t-1} + (1 - z) hh;  where MASK[t] is 0: h_t = h_{t-1}                          \
 * S (T, B, 4u) keeps [z, r, hh, rec_h] (reset_after) or [z, r, hh, r h'] per step (one row    \
 * without a gradient, s_step = 0); W (B, 3u) is scratch. */                                   \
static void gru_forward_rows_##SUF(GEMM_T gemm, int T, int BT, int B, int u, int reset_after,  \
                                   const T_ *XP, const T_ *U, const T_ *BREC, const T_ *M,     \
                                   const uint8_t *MASK, int act, int rec_act, T_ *H, T_ *S,    \
                                   ptrdiff_t s_step, T_ *W, T_ *HR) {                          \
    const int u3 = 3 * u, u4 = 4 * u;                                                          \
    const ptrdiff_t bu = (ptrdiff_t)B * u, tu = (ptrdiff_t)BT * u;                             \
    const ptrdiff_t tu3 = (ptrdiff_t)BT * u3;                                                  \
    for (int t = 0; t < T; t++) {                                                              \
        const T_ *h = H + t * tu, *x = XP + t * tu3;                                           \
        T_ *hn = H + (t + 1) * tu, *st = S + t * s_step;                                       \
        const T_ *hr = h;                                                                      \
        if (M) {                                                                               \
            for (ptrdiff_t k = 0; k < bu; k++) HR[k] = h[k] * M[k];                            \
            hr = HR;                                                                           \
        }                                                                                      \
        if (reset_after) {                                                                     \
            for (int b = 0; b < B; b++) {                                                      \
                T_ *w = W + (ptrdiff_t)b * u3;                                                 \
                if (BREC) memcpy(w, BREC, (size_t)u3 * sizeof(T_));                            \
                else memset(w, 0, (size_t)u3 * sizeof(T_));                                    \
            }                                                                                  \
            mm_##SUF(gemm, B, u3, u, hr, u, U, u3, (T_)1, W, u3);                              \
        } else {                                                                               \
            mm_##SUF(gemm, B, 2 * u, u, hr, u, U, u3, (T_)0, W, u3);                           \
        }                                                                                      \
        for (int b = 0; b < B; b++) {                                                          \
            const T_ *xb = x + (ptrdiff_t)b * u3, *w = W + (ptrdiff_t)b * u3;                  \
            T_ *z = st + (ptrdiff_t)b * u4;                                                    \
            for (int j = 0; j < 2 * u; j++) z[j] = xb[j] + w[j];                               \
            act_##SUF(rec_act, 2 * u, z, z);                                                   \
        }                                                                                      \
        if (!reset_after) {                                                                    \
            /* r h' into S's last slot, then (r h') U_h into W's h slot */                     \
            for (int b = 0; b < B; b++) {                                                      \
                const T_ *r = st + (ptrdiff_t)b * u4 + u, *hrb = hr + (ptrdiff_t)b * u;        \
                T_ *rh = st + (ptrdiff_t)b * u4 + 3 * u;                                       \
                for (int j = 0; j < u; j++) rh[j] = r[j] * hrb[j];                             \
            }                                                                                  \
            mm_##SUF(gemm, B, u, u, st + 3 * u, u4, U + 2 * u, u3, (T_)0, W + 2 * u, u3);      \
        }                                                                                      \
        for (int b = 0; b < B; b++) {                                                          \
            const T_ *xh = x + (ptrdiff_t)b * u3 + 2 * u, *wh = W + (ptrdiff_t)b * u3 + 2 * u; \
            const T_ *hp = h + (ptrdiff_t)b * u;                                               \
            T_ *z = st + (ptrdiff_t)b * u4, *r = z + u, *hh = r + u, *last = hh + u;           \
            T_ *hb = hn + (ptrdiff_t)b * u;                                                    \
            if (reset_after) {                                                                 \
                for (int j = 0; j < u; j++) {                                                  \
                    last[j] = wh[j];                                                           \
                    hh[j] = xh[j] + r[j] * wh[j];                                              \
                }                                                                              \
            } else {                                                                           \
                for (int j = 0; j < u; j++) hh[j] = xh[j] + wh[j];                             \
            }                                                                                  \
            act_##SUF(act, u, hh, hh);                                                         \
            for (int j = 0; j < u; j++) hb[j] = z[j] * hp[j] + ((T_)1 - z[j]) * hh[j];         \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) memcpy(hb, hp, (size_t)u * sizeof(T_));  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
void rnnkit_gru_forward_##SUF(GEMM_T gemm, int T, int B, int u, int reset_after,               \
                              const T_ *XP, const T_ *U, const T_ *BREC, const T_ *M,          \
                              const uint8_t *MASK, int act, int rec_act, T_ *H, T_ *S,         \
                              ptrdiff_t s_step, T_ *W, T_ *HR) {                               \
    const int u3 = 3 * u, u4 = 4 * u;                                                          \
    IN_ROW_CHUNKS(B, gru_forward_rows_##SUF(                                                   \
        gemm, T, B, nb, u, reset_after, XP + (ptrdiff_t)b0 * u3, U, BREC,                      \
        M ? M + (ptrdiff_t)b0 * u : NULL, MASK ? MASK + b0 : NULL, act, rec_act,               \
        H + (ptrdiff_t)b0 * u, S + (ptrdiff_t)b0 * u4, s_step, W + (ptrdiff_t)b0 * u3,         \
        HR + (ptrdiff_t)b0 * u));                                                              \
}                                                                                              \
                                                                                               \
/* Backward of the GRU: writes DX (T, B, 3u), the gradient of XP (zero at masked steps), and,  \
 * with reset_after, DREC (T, B, 3u), the gradient of rec = h' U + b_rec; dh holds dh_T on     \
 * entry (zeros) and dh_0 on return.  The caller forms dU (and db_rec) from them. W1, W3:      \
 * (B, u) scratch. */                                                                          \
static void gru_backward_rows_##SUF(GEMM_T gemm, int T, int BT, int B, int u, int reset_after, \
                                    const T_ *U, const T_ *M, const uint8_t *MASK, int act,    \
                                    int rec_act, const T_ *H, const T_ *S, const T_ *dH,       \
                                    T_ *dh, T_ *DX, T_ *DREC, T_ *W1, T_ *W3) {                \
    const int u3 = 3 * u, u4 = 4 * u;                                                          \
    const ptrdiff_t bu = (ptrdiff_t)B * u, tu = (ptrdiff_t)BT * u;                             \
    const ptrdiff_t tu3 = (ptrdiff_t)BT * u3, tu4 = (ptrdiff_t)BT * u4;                        \
    for (int t = T - 1; t >= 0; t--) {                                                         \
        const T_ *h = H + t * tu, *st = S + t * tu4;                                           \
        T_ *dx = DX + t * tu3, *drec = reset_after ? DREC + t * tu3 : NULL;                    \
        if (dH) {                                                                              \
            const T_ *dht = dH + t * tu;                                                       \
            for (ptrdiff_t k = 0; k < bu; k++) dh[k] += dht[k];                                \
        }                                                                                      \
        for (int b = 0; b < B; b++) {                                                          \
            const T_ *z = st + (ptrdiff_t)b * u4, *r = z + u, *hh = r + u, *last = hh + u;     \
            const T_ *hp = h + (ptrdiff_t)b * u, *dhb = dh + (ptrdiff_t)b * u;                 \
            T_ *dz = dx + (ptrdiff_t)b * u3, *dr = dz + u, *dph = dr + u;                      \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) {                                        \
                memset(dz, 0, (size_t)u3 * sizeof(T_));                                        \
                if (drec) memset(drec + (ptrdiff_t)b * u3, 0, (size_t)u3 * sizeof(T_));        \
                continue;                                                                      \
            }                                                                                  \
            for (int j = 0; j < u; j++) {                                                      \
                dph[j] = dhb[j] * ((T_)1 - z[j]);                                              \
                dz[j] = dhb[j] * (hp[j] - hh[j]);                                              \
            }                                                                                  \
            mul_dact_##SUF(act, u, hh, dph);                                                   \
            mul_dact_##SUF(rec_act, u, z, dz);                                                 \
            if (drec) {                                                                        \
                T_ *dq = drec + (ptrdiff_t)b * u3;                                             \
                for (int j = 0; j < u; j++) {                                                  \
                    dr[j] = dph[j] * last[j];                                                  \
                    dq[2 * u + j] = dph[j] * r[j];                                             \
                }                                                                              \
                mul_dact_##SUF(rec_act, u, r, dr);                                             \
                memcpy(dq, dz, (size_t)(2 * u) * sizeof(T_));                                  \
            }                                                                                  \
        }                                                                                      \
        if (reset_after) {                                                                     \
            mm_bt_##SUF(gemm, B, u, u3, drec, u3, U, u3, W1, u);                               \
        } else {                                                                               \
            /* d(r h') = dph U_h^T; dr = d(r h') h' s'(r); dh' = [dz, dr] U_zr^T + d(r h') r */\
            mm_bt_##SUF(gemm, B, u, u, dx + 2 * u, u3, U + 2 * u, u3, W3, u);                  \
            for (int b = 0; b < B; b++) {                                                      \
                if (MASK && !MASK[(ptrdiff_t)t * BT + b]) continue;                            \
                const ptrdiff_t o = (ptrdiff_t)b * u;                                          \
                const T_ *r = st + (ptrdiff_t)b * u4 + u, *hp = h + o;                         \
                T_ *dr = dx + (ptrdiff_t)b * u3 + u;                                           \
                for (int j = 0; j < u; j++) {                                                  \
                    dr[j] = W3[o + j] * hp[j] * (M ? M[o + j] : (T_)1);                        \
                    W3[o + j] *= r[j];                                                         \
                }                                                                              \
                mul_dact_##SUF(rec_act, u, r, dr);                                             \
            }                                                                                  \
            mm_bt_##SUF(gemm, B, u, 2 * u, dx, u3, U, u3, W1, u);                              \
            for (ptrdiff_t k = 0; k < bu; k++) W1[k] += W3[k];                                 \
        }                                                                                      \
        for (int b = 0; b < B; b++) {                                                          \
            if (MASK && !MASK[(ptrdiff_t)t * BT + b]) continue;                                \
            const ptrdiff_t o = (ptrdiff_t)b * u;                                              \
            const T_ *z = st + (ptrdiff_t)b * u4;                                              \
            for (int j = 0; j < u; j++)                                                        \
                dh[o + j] = dh[o + j] * z[j] + W1[o + j] * (M ? M[o + j] : (T_)1);             \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
void rnnkit_gru_backward_##SUF(GEMM_T gemm, int T, int B, int u, int reset_after,              \
                               const T_ *U, const T_ *M, const uint8_t *MASK, int act,         \
                               int rec_act, const T_ *H, const T_ *S, const T_ *dH, T_ *dh,    \
                               T_ *DX, T_ *DREC, T_ *W1, T_ *W3) {                             \
    const int u3 = 3 * u, u4 = 4 * u;                                                          \
    IN_ROW_CHUNKS(B, gru_backward_rows_##SUF(                                                  \
        gemm, T, B, nb, u, reset_after, U, M ? M + (ptrdiff_t)b0 * u : NULL,                   \
        MASK ? MASK + b0 : NULL, act, rec_act, H + (ptrdiff_t)b0 * u, S + (ptrdiff_t)b0 * u4,  \
        dH ? dH + (ptrdiff_t)b0 * u : NULL, dh + (ptrdiff_t)b0 * u, DX + (ptrdiff_t)b0 * u3,   \
        DREC ? DREC + (ptrdiff_t)b0 * u3 : NULL, W1 + (ptrdiff_t)b0 * u,                       \
        W3 + (ptrdiff_t)b0 * u));                                                              \
}


DEFINE_KERNELS(float, f32, sgemm_fn)
DEFINE_KERNELS(double, f64, dgemm_fn)
