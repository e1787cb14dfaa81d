/* Selection helpers shared by select_ranks (select.c) and select_rerank (select_rerank.h):
 * the sampled threshold, the AVX2 candidate collect, the stable bucket sort and one exact row
 * selection. Included once, by select.c (one translation unit: everything stays static). */
#ifndef POINTSEG_SELECT_CORE_H
#define POINTSEG_SELECT_CORE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE 256
#define SAMPLE_BUCKETS 64

/* t = the r-th smallest (0-based) finite value of a strided sample of 256 scores, found by
 * histogram refinement: 64 buckets linear between the current bounds, keep the bucket that holds
 * rank r, repeat inside it until it holds <= 4 samples (feature distances are heavy-tailed, so a
 * single linear histogram over [min, max] would put most of the low tail in one bucket).
 * Non-finite samples are skipped (-inf, the diagonal, counts as below everything); returns +inf
 * when fewer than r + 1 finite samples exist. */
static float sample_threshold(const float *s, int n, int r) {
    int stride = n / SAMPLE;
    float v[SAMPLE];
    int m = 0, below = 0;
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < SAMPLE; i++) {
        float x = s[(size_t)i * stride];
        if (x == -INFINITY) {
            below++;
        } else if (x < INFINITY) { /* NaN fails this too */
            v[m++] = x;
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
    }
    r -= below; /* rank among the finite samples */
    if (r < 0) r = 0;
    if (r >= m) return INFINITY;
    for (int round = 0; round < 8; round++) {
        int count[SAMPLE_BUCKETS] = {0};
        float bmin[SAMPLE_BUCKETS], bmax[SAMPLE_BUCKETS];
        for (int b = 0; b < SAMPLE_BUCKETS; b++) {
            bmin[b] = INFINITY;
            bmax[b] = -INFINITY;
        }
        /* (x - lo) * scale is monotone in x and clamped, so bucket order is value order */
        float scale = hi > lo ? (SAMPLE_BUCKETS - 1) / (hi - lo) : 0.0f;
        if (!(scale < INFINITY)) scale = 0.0f;
        int k = 0; /* samples inside [lo, hi] move to the front */
        for (int i = 0; i < m; i++) {
            float x = v[i];
            if (x < lo || x > hi) continue;
            v[k++] = x;
            float f = (x - lo) * scale;
            int b = f < (float)(SAMPLE_BUCKETS - 1) ? (int)f : SAMPLE_BUCKETS - 1;
            count[b]++;
            bmin[b] = x < bmin[b] ? x : bmin[b];
            bmax[b] = x > bmax[b] ? x : bmax[b];
        }
        m = k;
        int b = 0, cum = 0;
        while (cum + count[b] <= r) cum += count[b++];
        if (count[b] <= 4 || bmin[b] == bmax[b]) return bmax[b];
        r -= cum; /* rank inside bucket b */
        lo = bmin[b];
        hi = bmax[b];
    }
    return hi;
}

/* Candidate columns {j : s[j] <= t} in column order into cand (room for n + 8); returns the
 * count. Branch-free: every step stores and advances by the number of hits. */
static int collect_scalar(const float *s, int n, float t, int32_t *cand, float *val) {
    int c = 0;
    for (int j = 0; j < n; j++) {
        cand[c] = j;
        val[c] = s[j];
        c += s[j] <= t;
    }
    return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* lane ids of the set bits of an 8-bit mask, packed to the front */
static int32_t compress_lut[256][8];

static void init_lut(void) {
    for (int m = 0; m < 256; m++) {
        int c = 0;
        for (int b = 0; b < 8; b++)
            if (m >> b & 1) compress_lut[m][c++] = b;
        for (; c < 8; c++) compress_lut[m][c] = 0;
    }
}

/* AVX2: compare 8 scores at once, store the hit columns with one LUT load and one add. */
__attribute__((target("avx2,popcnt"))) static int collect_avx2(const float *s, int n, float t,
                                                              int32_t *cand, float *val,
                                                              int dense) {
    int c = 0, j = 0;
    __m256 tv = _mm256_set1_ps(t);
    /* hits of an 8-lane group: their lane ids packed to the front (LUT), then the column ids
     * (lane + j) and the values (a lane permutation) stored at the current end */
#define COLLECT8(DENSE)                                                                      \
    do {                                                                                     \
        __m256 x = _mm256_loadu_ps(s + j);                                                   \
        int m = _mm256_movemask_ps(_mm256_cmp_ps(x, tv, _CMP_LE_OQ));                        \
        if ((DENSE) || m) {                                                                  \
            __m256i ids = _mm256_loadu_si256((const __m256i *)compress_lut[m]);              \
            _mm256_storeu_si256((__m256i *)(cand + c),                                       \
                                _mm256_add_epi32(ids, _mm256_set1_epi32(j)));                \
            _mm256_storeu_ps(val + c, _mm256_permutevar8x32_ps(x, ids));                     \
            c += __builtin_popcount((unsigned)m);                                            \
        }                                                                                    \
    } while (0)
    if (dense)
        for (; j + 8 <= n; j += 8) COLLECT8(1); /* most groups hit: no branch to mispredict */
    else
        for (; j + 8 <= n; j += 8) COLLECT8(0); /* most groups miss: a predictable branch */
#undef COLLECT8
    for (; j < n; j++) {
        cand[c] = j;
        val[c] = s[j];
        c += s[j] <= t;
    }
    return c;
}
static int have_avx2;
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define SIMD_NAME (have_avx2 ? "avx2" : "scalar")
#else
#define SIMD_NAME "scalar"
#endif

/* Candidate columns {j : s[j] <= t} and their values, in column order; returns the count.
 * cand and val need room for n + 8 entries (the AVX2 path stores whole 8-lane groups). */
static int collect(const float *s, int n, float t, int32_t *cand, float *val, int expect) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx2) return collect_avx2(s, n, t, cand, val, (int64_t)expect * 16 > n);
#endif
    return collect_scalar(s, n, t, cand, val);
}

/* lo = the smallest value > -inf of v[0..m) (+inf if none; no NaN in v); returns the index of
 * the first -inf (m if none). */
static int finite_min_scalar(const float *v, int m, float *lo) {
    float l = INFINITY;
    int first = m;
    for (int i = 0; i < m; i++) {
        float x = v[i];
        if (x == -INFINITY) {
            if (first == m) first = i;
        } else {
            l = x < l ? x : l;
        }
    }
    *lo = l;
    return first;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static int finite_min_avx2(const float *v, int m, float *lo) {
    __m256 ninf = _mm256_set1_ps(-INFINITY), pinf = _mm256_set1_ps(INFINITY), l = pinf;
    int first = m, i = 0;
    for (; i + 8 <= m; i += 8) {
        __m256 x = _mm256_loadu_ps(v + i);
        __m256 isneg = _mm256_cmp_ps(x, ninf, _CMP_EQ_OQ);
        l = _mm256_min_ps(l, _mm256_blendv_ps(x, pinf, isneg));
        int mk = _mm256_movemask_ps(isneg);
        if (mk && first == m) first = i + __builtin_ctz((unsigned)mk);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, l);
    float r = INFINITY;
    for (int b = 0; b < 8; b++) r = lanes[b] < r ? lanes[b] : r;
    float rt;
    int ft = finite_min_scalar(v + i, m - i, &rt);
    if (first == m && ft < m - i) first = i + ft;
    *lo = rt < r ? rt : r;
    return first;
}
#endif

static int finite_min(const float *v, int m, float *lo) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx2) return finite_min_avx2(v, m, lo);
#endif
    return finite_min_scalar(v, m, lo);
}

typedef struct {
    float *val, *val2;
    int32_t *col, *col2, *head, *tail, *negbuf;
    int32_t *count; /* n + 1 buckets */
} Scratch;

/* Stable merge sort of (v, c)[0..n) by v (ties keep their order); tv / tc: scratch of n. */
static void merge_sort(float *v, int32_t *c, float *tv, int32_t *tc, int n) {
    if (n <= 16) {
        for (int i = 1; i < n; i++) {
            float x = v[i];
            int32_t cx = c[i];
            int j = i - 1;
            while (j >= 0 && v[j] > x) {
                v[j + 1] = v[j];
                c[j + 1] = c[j];
                j--;
            }
            v[j + 1] = x;
            c[j + 1] = cx;
        }
        return;
    }
    int h = n / 2;
    merge_sort(v, c, tv, tc, h);
    merge_sort(v + h, c + h, tv, tc, n - h);
    if (!(v[h] < v[h - 1])) return; /* already in order */
    memcpy(tv, v, (size_t)h * sizeof(float));
    memcpy(tc, c, (size_t)h * sizeof(int32_t));
    int i = 0, j = h, k = 0;
    while (i < h && j < n) { /* left first on ties: stable */
        if (v[j] < tv[i]) {
            v[k] = v[j];
            c[k++] = c[j++];
        } else {
            v[k] = tv[i];
            c[k++] = tc[i++];
        }
    }
    while (i < h) {
        v[k] = tv[i];
        c[k++] = tc[i++];
    }
}

/* Sorted positions p = ranks[q] - off (every q with 0 <= p < need) of the stable (value, column)
 * order of the m finite pairs (w->val, w->col; col ascending) -> (w->val2, w->col2)[p].
 * need <= m bounds the positions asked for. Buckets linear in value (the map is monotone, so
 * bucket order is value order), a count per bucket, and then only the buckets that hold a
 * wanted position are scattered (stably: column order kept) and sorted: a dilated graph wants
 * k of the k*d nearest, so ~k small buckets are sorted instead of all ~k*d pairs. Every other
 * entry of val2 / col2 is left unset. */
static void bucket_sort(Scratch *w, int m, float lo, float hi, int need, const int64_t *ranks,
                        int nr, int off) {
    const float *val = w->val;
    const int32_t *col = w->col;
    int32_t *count = w->count;
    int32_t *bucket = w->head; /* bucket of each pair */
    int32_t *cur = w->tail; /* 0: bucket not wanted; else 1 + its next write slot */
    /* most positions wanted (d <= 2): sort every bucket below position need, ~1 value each;
     * else ~2 values per bucket (half the count / prefix work, ~k buckets sorted) */
    int dense = (int64_t)nr * 2 >= need;
    int nb = dense || m < 2 ? m : m / 2;
    /* (v - lo) * scale is monotone in v (each float op rounds monotonically) and is clamped,
     * so bucket order is value order; float math keeps the loop vectorisable. */
    float scale = hi > lo ? (float)(nb - 1) / (hi - lo) : 0.0f;
    if (!(scale < INFINITY)) scale = 0.0f;
    for (int i = 0; i < m; i++) {
        float f = (val[i] - lo) * scale; /* clamp in float: no out-of-range conversion */
        bucket[i] = f < (float)(nb - 1) ? (int)f : nb - 1;
    }
    memset(count, 0, (size_t)(nb + 1) * sizeof(int32_t));
    for (int i = 0; i < m; i++) count[bucket[i] + 1]++;
    /* count[b] = start of bucket b, up to the bucket `last` - 1 that holds position need - 1 */
    int last = nb;
    for (int b = 0; b < nb; b++) {
        count[b + 1] += count[b];
        if (count[b + 1] >= need) {
            last = b + 1;
            break;
        }
    }
    memset(cur, 0, (size_t)nb * sizeof(int32_t)); /* all: the scatter tests cur[b] only */
    /* mark the bucket of every wanted position: one walk when the positions ascend (a dilated
     * graph's 0, d, 2d, ...), else a binary search each (the last b < last with count[b] <= p) */
    int sorted = 1;
    for (int q = 1; q < nr; q++) sorted &= ranks[q] >= ranks[q - 1];
    if (dense) { /* every bucket below `last`, no walk */
        for (int b = 0; b < last; b++) cur[b] = count[b] + 1;
        nr = 0;
    }
    for (int q = 0, b = 0; q < nr; q++) {
        int64_t p = ranks[q] - off;
        if (p < 0 || p >= need) continue;
        if (sorted) {
            while (count[b + 1] <= p) b++; /* p < need <= count[last]: stops below last */
        } else {
            int l = 0, h = last - 1;
            while (l < h) {
                int md = (l + h + 1) / 2;
                if (count[md] <= p)
                    l = md;
                else
                    h = md - 1;
            }
            b = l;
        }
        cur[b] = count[b] + 1;
    }
    float *v2 = w->val2;
    int32_t *c2 = w->col2;
    for (int i = 0; i < m; i++) { /* stable scatter of the wanted buckets (a few % of pairs) */
        int b = bucket[i];
        if (cur[b]) { /* rarely true: a predictable branch */
            int p = cur[b]++ - 1;
            v2[p] = val[i];
            c2[p] = col[i];
        }
    }
    for (int l = 0; l < last; l++) { /* sort each wanted bucket */
        if (!cur[l]) continue;
        int a = count[l], e = count[l + 1];
        if (e - a > 24) {
            /* a crowded bucket (skewed values: e.g. many near-duplicate feature points and a
             * few far outliers stretch the linear buckets): stable merge sort, not O(m^2);
             * val / col are free scratch after the scatter */
            merge_sort(v2 + a, c2 + a, w->val, w->col, e - a);
            continue;
        }
        for (int i = a + 1; i < e; i++) { /* stable insertion sort of the bucket */
            float x = v2[i];
            int32_t cx = c2[i];
            int j = i - 1;
            while (j >= a && v2[j] > x) {
                v2[j + 1] = v2[j];
                c2[j + 1] = c2[j];
                j--;
            }
            v2[j + 1] = x;
            c2[j + 1] = cx;
        }
    }
}

/* One row: write the columns at `ranks` of the stable ascending order into out. */
static void select_row(const float *s, int n, int kmax, const int64_t *ranks, int nr, int64_t *out,
                       Scratch *w) {
    int c = n;
    float t = INFINITY;
    if ((int64_t)kmax * 4 <= n && n >= 4 * SAMPLE) {
        double mu = (double)kmax * SAMPLE / n; /* expected sample rank of the kmax-th smallest */
        int r = (int)(mu + 3.0 * sqrt(mu) + 3.0);
        if (r < SAMPLE) {
            t = sample_threshold(s, n, r);
            if (t < INFINITY) c = collect(s, n, t, w->col, w->val, kmax);
            if (c < kmax) c = n; /* unlucky sample (or non-finite scores): the whole row */
        }
    }
    int whole = c == n;
    /* Split: -inf first, finite values sorted, then +inf, then NaN (argsort's order). */
    int32_t *neg = w->head, *pos = w->tail; /* free until bucket_sort */
    int nneg = 0, npos = 0, m = 0;
    float lo = INFINITY, hi = -INFINITY;
    if (!whole) {
        /* candidates hold finite values <= t and -inf (self): no NaN, no +inf */
        m = c;
        int first = finite_min(w->val, m, &lo); /* lo: min over the values > -inf */
        if (first < m) { /* move the -inf columns out (usually one: self), keep order */
            int k = first, i = first;
            while (i < m) {
                if (w->val[i] == -INFINITY) {
                    neg[nneg++] = w->col[i++];
                    continue;
                }
                int j = i + 1; /* the run [i, j) of finite values slides down as a block */
                while (j < m && w->val[j] != -INFINITY) j++;
                memmove(w->val + k, w->val + i, (size_t)(j - i) * sizeof(float));
                memmove(w->col + k, w->col + i, (size_t)(j - i) * sizeof(int32_t));
                k += j - i;
                i = j;
            }
            m = k;
        }
        hi = t;
    } else {
        for (int j = 0; j < n; j++) {
            float v = s[j];
            if (v == -INFINITY) {
                neg[nneg++] = j;
            } else if (v < INFINITY) {
                w->val[m] = v;
                w->col[m++] = j;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    }
    int need = kmax - nneg; /* finite ones still needed */
    int32_t fixed_neg[64], *negc = neg;
    if (need > 0 && m > 0) {
        /* bucket_sort reuses head/tail: keep the (few) -inf columns elsewhere */
        if (nneg > 0) {
            negc = nneg <= 64 ? fixed_neg : w->negbuf;
            memcpy(negc, neg, (size_t)nneg * sizeof(int32_t));
        }
        bucket_sort(w, m, lo, hi, need < m ? need : m, ranks, nr, nneg);
    }
    if (whole && need > m) { /* +inf then NaN columns, in column order */
        for (int j = 0; j < n; j++)
            if (s[j] == INFINITY) pos[npos++] = j;
        for (int j = 0; j < n; j++)
            if (s[j] != s[j]) pos[npos++] = j;
    }
    for (int q = 0; q < nr; q++) {
        int64_t r = ranks[q];
        if (r < nneg)
            out[q] = negc[r];
        else if (r - nneg < m)
            out[q] = w->col2[r - nneg];
        else
            out[q] = pos[r - nneg - m];
    }
}

/* Ask for row i + 1 (into L2) while row i is processed: a row is read from memory once, and
 * without this the first (sampling) pass waits on every cache line of it. */
static inline void select_rows_prefetch(const float *s, Py_ssize_t i, Py_ssize_t rows,
                                        Py_ssize_t n) {
    if (i + 1 >= rows) return;
    const char *p = (const char *)(s + (i + 1) * n);
    for (Py_ssize_t b = 0; b < n * (Py_ssize_t)sizeof(float); b += 64) __builtin_prefetch(p + b, 0, 2);
}

static void scratch_free(Scratch *w) {
    free(w->val);
    free(w->val2);
    free(w->col);
    free(w->col2);
    free(w->head);
    free(w->tail);
    free(w->count);
    free(w->negbuf);
}

#endif
