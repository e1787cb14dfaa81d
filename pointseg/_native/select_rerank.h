/* Exact k-nearest selection from bf16 dot products: candidates, fp32 re-rank, a per-row proof.
 *
 * Input per row i (global point `self`): the bf16 dot products d_j ~ <x_i, x_j> of the centred
 * features (one bf16 GEMM row), the float32 features x (N, C), squared norms sq_j = ||x_j||^2 and
 * a bound |s~_j - s^_j| <= e_j = ea + ep ||x_j|| + eq rho_j + eb |d_j| for every j (rho_j =
 * ||bf16(x_j) - x_j||), where
 *     s~_j = sq_j - 2 d_j                  (approximate score, from the bf16 GEMM), and
 *     s^_j = sq_j - 2 dot32(x_i, x_j)      (the exact fp32 score this path ranks by).
 * The caller derives ea, eb (pointseg.graph.bf16.score_error_bound; docs/knn.md).
 *
 *  1. t = an upper estimate (sample_upper) of the m*mu + 2 sigma-th smallest of 256 strided
 *     upper bounds ub_j = s~_j + e_j: the kmax-th smallest ub is >= the kmax-th smallest s^;
 *  2. S = {j : lb_j = s~_j - e_j <= t} (AVX-512: 16 bf16 at a time, register compress), self out;
 *  3. s^_j for j in S (fp32 dots, four candidates at a time, a fixed summation order), then only
 *     the wanted ranks of the stable (s^_j, j) order (bucket_select: a dilated graph wants k of
 *     the k*d) and v = the kmax-th smallest s^ in S;
 *  4. proof: every j outside S has s^_j >= lb_j > t. If v <= t, no point outside S is among the
 *     kmax nearest by s^ or ties with the kmax-th, so the ranks read from S are those of the full
 *     (s^, column) order: ties by column, self first;
 *  5. otherwise one retry at + 5 sigma; then (or |S| > N/2, or N too small for the sample) the row
 *     falls back to the exact fp32 row s^_j for every j and select_row: every row is exact.
 */
#ifndef POINTSEG_SELECT_RERANK_H
#define POINTSEG_SELECT_RERANK_H

static inline float bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

/* Exact fp32 scores v[q] = sq[col[q]] - 2 <xi, x[col[q]]> for q < m. The summation order is
 * fixed per build (16 lanes, then a fixed lane tree; or sequential FMA without AVX-512), the
 * same for the re-rank and the fallback rows. */
static void scores_scalar(const float *xi, const float *x, const float *sq, const int32_t *col,
                          int m, int c, float *v) {
    for (int q = 0; q < m; q++) {
        const float *xj = x + (size_t)col[q] * c;
        float s = 0.0f;
        for (int k = 0; k < c; k++) s = fmaf(xi[k], xj[k], s);
        v[q] = sq[col[q]] - 2.0f * s;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
static int have_avx512;

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

AVX512_TARGET static inline float lane_sum(__m512 a) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* four candidates at a time: independent FMA chains (the latency of one chain is hidden) */
AVX512_TARGET static void scores_avx512(const float *xi, const float *x, const float *sq,
                                        const int32_t *col, int m, int c, float *v) {
    int full = c / 16, rem = c % 16;
    __mmask16 tail = (__mmask16)((1u << rem) - 1u);
    int q = 0;
    for (; q + 4 <= m; q += 4) {
        if (q + 12 <= m) /* rows of the candidates two steps ahead: random rows, from L2 */
            for (int p = 8; p < 12; p++)
                for (int o = 0; o < c; o += 16) _mm_prefetch((const char *)(x + (size_t)col[q + p] * c + o), _MM_HINT_T0);
        const float *a0 = x + (size_t)col[q] * c, *a1 = x + (size_t)col[q + 1] * c;
        const float *a2 = x + (size_t)col[q + 2] * c, *a3 = x + (size_t)col[q + 3] * c;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int b = 0; b < full; b++) {
            __m512 xv = _mm512_loadu_ps(xi + 16 * b);
            s0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(a0 + 16 * b), s0);
            s1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(a1 + 16 * b), s1);
            s2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(a2 + 16 * b), s2);
            s3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(a3 + 16 * b), s3);
        }
        if (rem) {
            int o = 16 * full;
            __m512 xv = _mm512_maskz_loadu_ps(tail, xi + o);
            s0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, a0 + o), s0);
            s1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, a1 + o), s1);
            s2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, a2 + o), s2);
            s3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, a3 + o), s3);
        }
        v[q] = sq[col[q]] - 2.0f * lane_sum(s0);
        v[q + 1] = sq[col[q + 1]] - 2.0f * lane_sum(s1);
        v[q + 2] = sq[col[q + 2]] - 2.0f * lane_sum(s2);
        v[q + 3] = sq[col[q + 3]] - 2.0f * lane_sum(s3);
    }
    for (; q < m; q++) { /* the same order for the last < 4 */
        const float *a0 = x + (size_t)col[q] * c;
        __m512 s0 = _mm512_setzero_ps();
        for (int b = 0; b < full; b++)
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + 16 * b), _mm512_loadu_ps(a0 + 16 * b), s0);
        if (rem) {
            int o = 16 * full;
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xi + o),
                                 _mm512_maskz_loadu_ps(tail, a0 + o), s0);
        }
        v[q] = sq[col[q]] - 2.0f * lane_sum(s0);
    }
}

/* S = {j : lb_j <= t}, lb_j = sq_j - 2 d~_j - (a + b |d~_j|), 16 at a time (bf16 -> fp32 is a
 * 16-bit shift), hit columns compress-stored in column order; returns |S|. */
AVX512_TARGET static int collect_lb_avx512(const uint16_t *d, const float *sq, const float *nr,
                                           const float *rh, int n, float a, float b, float p,
                                           float q, float t, int32_t *col) {
    int j = 0, c = 0;
    __m512 m2 = _mm512_set1_ps(-2.0f), av = _mm512_set1_ps(a), bv = _mm512_set1_ps(b);
    __m512 pv = _mm512_set1_ps(p), qv = _mm512_set1_ps(q);
    __m512 tv = _mm512_set1_ps(t);
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; j + 16 <= n; j += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(d + j));
        __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        __m512 st = _mm512_fmadd_ps(m2, v, _mm512_loadu_ps(sq + j));
        __m512 e = _mm512_fmadd_ps(bv, _mm512_abs_ps(v), av);
        e = _mm512_fmadd_ps(pv, _mm512_loadu_ps(nr + j), e);
        e = _mm512_fmadd_ps(qv, _mm512_loadu_ps(rh + j), e);
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_sub_ps(st, e), tv, _CMP_LE_OQ);
        /* branch-free: compress the hit lanes in a register, store all 16, advance by the
         * count (col has room for n + 16) */
        __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32(j));
        _mm512_storeu_si512((void *)(col + c), _mm512_maskz_compress_epi32(k, idx));
        c += __builtin_popcount((unsigned)k);
    }
    for (; j < n; j++) {
        float v = bf16_to_f32(d[j]);
        float lb = (sq[j] - 2.0f * v) - (a + b * fabsf(v) + p * nr[j] + q * rh[j]);
        col[c] = j;
        c += lb <= t;
    }
    return c;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
AVX512_TARGET static void minmax_avx512(const float *v, int m, float *lo, float *hi) {
    __m512 l = _mm512_set1_ps(INFINITY), h = _mm512_set1_ps(-INFINITY);
    int q = 0;
    for (; q + 16 <= m; q += 16) {
        __m512 x = _mm512_loadu_ps(v + q);
        l = _mm512_min_ps(l, x);
        h = _mm512_max_ps(h, x);
    }
    float a = _mm512_reduce_min_ps(l), b = _mm512_reduce_max_ps(h);
    for (; q < m; q++) {
        a = v[q] < a ? v[q] : a;
        b = v[q] > b ? v[q] : b;
    }
    *lo = a;
    *hi = b;
}
#endif

static void minmax(const float *v, int m, float *lo, float *hi) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512) {
        minmax_avx512(v, m, lo, hi);
        return;
    }
#endif
    float a = INFINITY, b = -INFINITY;
    for (int q = 0; q < m; q++) {
        a = v[q] < a ? v[q] : a;
        b = v[q] > b ? v[q] : b;
    }
    *lo = a;
    *hi = b;
}

static void exact_scores(const float *xi, const float *x, const float *sq, const int32_t *col,
                         int m, int c, float *v) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512) {
        scores_avx512(xi, x, sq, col, m, c, v);
        return;
    }
#endif
    scores_scalar(xi, x, sq, col, m, c, v);
}

/* An upper estimate of the r-th smallest (0-based) of the SAMPLE finite-or--inf values v: one
 * 64-bucket histogram (linear in value, so bucket order is value order), t = the largest sample
 * in the bucket holding rank r. Always >= the r-th smallest; +inf if fewer than r + 1 finite. */
static float sample_upper(const float *v, int r) {
    float lo = INFINITY, hi = -INFINITY;
    int below = 0;
    for (int i = 0; i < SAMPLE; i++) {
        float x = v[i];
        below += x == -INFINITY;
        if (x != -INFINITY) {
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
    }
    r -= below;
    if (r < 0) return -INFINITY;
    if (r >= SAMPLE - below || !(hi < INFINITY)) return INFINITY;
    float scale = hi > lo ? (SAMPLE_BUCKETS - 1) / (hi - lo) : 0.0f;
    if (!(scale < INFINITY)) scale = 0.0f;
    int count[SAMPLE_BUCKETS] = {0};
    unsigned char bk[SAMPLE];
    for (int i = 0; i < SAMPLE; i++) {
        float x = v[i];
        float f = x == -INFINITY ? -1.0f : (x - lo) * scale;
        int b = f < 0.0f ? 0 : (f < (float)(SAMPLE_BUCKETS - 1) ? (int)f : SAMPLE_BUCKETS - 1);
        bk[i] = (unsigned char)(x == -INFINITY ? 255 : b);
        count[b] += x != -INFINITY;
    }
    int b = 0, cum = 0;
    while (cum + count[b] <= r) cum += count[b++];
    float t = -INFINITY;
    for (int i = 0; i < SAMPLE; i++) t = bk[i] == b && v[i] > t ? v[i] : t;
    return t;
}

static int collect_lb(const uint16_t *d, const float *sq, const float *nr, const float *rh, int n,
                      float a, float b, float p, float q, float t, int32_t *col) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512) return collect_lb_avx512(d, sq, nr, rh, n, a, b, p, q, t, col);
#endif
    int c = 0;
    for (int j = 0; j < n; j++) {
        float v = bf16_to_f32(d[j]);
        float lb = (sq[j] - 2.0f * v) - (a + b * fabsf(v) + p * nr[j] + q * rh[j]);
        col[c] = j;
        c += lb <= t;
    }
    return c;
}

/* Positions pos[0..np) of the stable (value, column) order of the m finite pairs (w->val,
 * w->col; col ascending) -> cols[q] (and the value at position vpos -> *vout). Only the buckets
 * that hold a wanted position are scattered and sorted (a dilated graph wants k of k*d). */
static void bucket_select(Scratch *w, int m, float lo, float hi, const int64_t *pos, int np,
                          int vpos, int32_t *cols, float *vout) {
    const float *val = w->val;
    const int32_t *col = w->col;
    int32_t *start = w->count, *bucket = w->head, *mark = w->tail;
    int nb = m;
    float scale = hi > lo ? (float)(nb - 1) / (hi - lo) : 0.0f;
    if (!(scale < INFINITY)) scale = 0.0f;
    for (int i = 0; i < m; i++) {
        float f = (val[i] - lo) * scale;
        bucket[i] = f < (float)(nb - 1) ? (int)f : nb - 1;
    }
    memset(start, 0, (size_t)(nb + 1) * sizeof(int32_t));
    memset(mark, 0, (size_t)nb * sizeof(int32_t));
    for (int i = 0; i < m; i++) start[bucket[i] + 1]++;
    for (int b = 0; b < nb; b++) start[b + 1] += start[b];
    /* bucket of a position: the last b with start[b] <= p (binary search) */
#define BUCKET_OF(P, OUT)                        \
    do {                                         \
        int l_ = 0, h_ = nb - 1;                 \
        while (l_ < h_) {                        \
            int md_ = (l_ + h_ + 1) / 2;         \
            if (start[md_] <= (P))               \
                l_ = md_;                        \
            else                                 \
                h_ = md_ - 1;                    \
        }                                        \
        (OUT) = l_;                              \
    } while (0)
    int b;
    for (int q = 0; q < np; q++) {
        BUCKET_OF((int)pos[q], b);
        mark[b] = 1;
    }
    BUCKET_OF(vpos, b);
    mark[b] = 1;
    /* stable scatter of the marked buckets; mark[b] - 1 = next slot offset inside bucket b */
    for (int i = 0; i < m; i++) {
        int bb = bucket[i];
        if (mark[bb]) {
            int p = start[bb] + mark[bb] - 1;
            mark[bb]++;
            w->val2[p] = val[i];
            w->col2[p] = col[i];
        }
    }
    for (int bb = 0; bb < nb; bb++) {
        if (!mark[bb]) continue;
        int a = start[bb], e = start[bb + 1];
        if (e - a > 24) {
            merge_sort(w->val2 + a, w->col2 + a, w->val, w->col, e - a); /* val/col: scratch */
            /* val / col are clobbered: the remaining marked buckets are already scattered */
            continue;
        }
        for (int i = a + 1; i < e; i++) {
            float x = w->val2[i];
            int32_t cx = w->col2[i];
            int j = i - 1;
            while (j >= a && w->val2[j] > x) {
                w->val2[j + 1] = w->val2[j];
                w->col2[j + 1] = w->col2[j];
                j--;
            }
            w->val2[j + 1] = x;
            w->col2[j + 1] = cx;
        }
    }
#undef BUCKET_OF
    for (int q = 0; q < np; q++) cols[q] = w->col2[pos[q]];
    *vout = w->val2[vpos];
}

typedef struct {
    int64_t fallback; /* rows that took the exact fp32 row */
    int64_t candidates; /* sum of |S*| (exact re-ranks) over the rows that did not */
    int64_t retries; /* rows whose first sampled threshold was too low */
} RerankStats;

/* The exact fp32 row s^ (self -inf) and select_row: the per-row fallback. */
static void exact_row(const float *x, const float *sq, int n, int c, int64_t self, int kmax,
                      const int64_t *ranks, int nr, int64_t *out, Scratch *w, float *s,
                      int32_t *iota) {
    exact_scores(x + self * c, x, sq, iota, n, c, s);
    s[self] = -INFINITY;
    select_row(s, n, kmax, ranks, nr, out, w);
}

static inline float round_up(double v) {
    float f = (float)v;
    return (double)f < v ? nextafterf(f, INFINITY) : f;
}

/* One row; buf (n + 16 floats) and iota (0..n-1) are scratch. See the header comment. */
static void rerank_row(const uint16_t *d, const float *x, const float *sq, const float *nrm,
                       const float *rh, int n, int c, int64_t self, double ea, double ep,
                       double eq, double eb, double mfac, int kmax,
                       const int64_t *ranks, int nr, int64_t *out, Scratch *w, float *buf,
                       int32_t *iota, RerankStats *st) {
    float a = round_up(ea), b = round_up(eb), p = round_up(ep), q = round_up(eq);
    if (!((int64_t)kmax * 4 <= n && n >= 4 * SAMPLE)) goto fallback;
    double mu = (double)kmax * SAMPLE / n;
    /* upper bounds ub_j = s~_j + e_j >= s^_j of a strided sample: their kmax-th smallest is
     * >= the kmax-th smallest s^, which the threshold must reach */
    float smp[SAMPLE];
    int stride = n / SAMPLE;
    for (int i = 0; i < SAMPLE; i++) {
        int j = i * stride;
        float v = bf16_to_f32(d[j]);
        smp[i] = j == self ? -INFINITY
                           : (sq[j] - 2.0f * v) + (a + b * fabsf(v) + p * nrm[j] + q * rh[j]);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        double sig = attempt == 0 ? 2.0 : 5.0;
        int r = (int)(mfac * mu + sig * sqrt(mu) + 2.0);
        if (r >= SAMPLE) goto fallback;
        float t = sample_upper(smp, r);
        if (!(t < INFINITY)) goto fallback;
        int cnt = collect_lb(d, sq, nrm, rh, n, a, b, p, q, t, w->col);
        if (cnt > n / 2) goto fallback;
        /* self is first in every path (-inf): take it out of S, keep column order */
        int m = 0;
        for (int q = 0; q < cnt; q++) {
            int32_t j = w->col[q];
            w->col[m] = j;
            m += j != self;
        }
        const int nneg = 1;
        int need = kmax - nneg;
        if (m < need) {
            st->retries += attempt == 0;
            continue;
        }
        exact_scores(x + self * c, x, sq, w->col, m, c, w->val); /* s^ of S \ {self} */
        float lo, hi;
        minmax(w->val, m, &lo, &hi);
        int64_t pos[nr > 0 ? nr : 1];
        int np = 0, slot[nr > 0 ? nr : 1];
        for (int q = 0; q < nr; q++) {
            if (ranks[q] < nneg) {
                slot[q] = -1;
            } else {
                slot[q] = np;
                pos[np++] = ranks[q] - nneg;
            }
        }
        float vk = -INFINITY;
        int32_t cols[nr > 0 ? nr : 1];
        if (need > 0) bucket_select(w, m, lo, hi, pos, np, need - 1, cols, &vk);
        /* proof: outside S, lb_j > t (strictly) and s^_j >= lb_j, so s^_j > t >= vk */
        if (!(vk <= t)) {
            st->retries += attempt == 0;
            continue;
        }
        for (int q = 0; q < nr; q++) out[q] = slot[q] < 0 ? self : cols[slot[q]];
        st->candidates += m + nneg;
        return;
    }
fallback:
    st->fallback++;
    exact_row(x, sq, n, c, self, kmax, ranks, nr, out, w, buf, iota);
}

#endif
