/*
 * Neighbour pass of the fused EdgeConv (pointseg.nn.edge_conv), one row chunk per call.
 *
 * Notation (all float32, C-contiguous): a, p (R, C) per-point terms, fidx (R, k) int64 rows of p,
 * edge pre-activation z_ij = a_i + p_j for j in fidx[i]. Per channel c the layer needs
 *   ext[i, c] = max_j p[j, c]   (min where sgn[c] <= 0: the BatchNorm scale is negative there)
 * and, in training mode, the BatchNorm statistics of f(z) over all R*k edges (f = identity for
 * stats 1, (leaky) ReLU with `slope` for stats 2), and in backward their gradients.
 *
 * forward(a, p, fidx, sgn, stats, slope, shift, r0, r1, ext_out, s1_out, s2_out)
 *   rows r0..r1 of ext_out; with stats, s1_out[c] += sum (f(z) - shift[c]) and
 *   s2_out[c] += sum (f(z) - shift[c])^2 over the chunk's edges (float64 accumulators, per row
 *   summed in float32 over the k neighbours first, like the torch path's float32 chunk sums).
 * backward(a, p, fidx, ext, g_ext, c0, gv, stats, slope, r0, r1, grad_a_out, grad_p_out)
 *   d_ij = f'(z)(c0 + gv f(z)) (the mean / variance gradient; stats 1: f' = 1, f(z) = z);
 *   grad_a_out[i] = sum_j d_ij (rows r0..r1, only with stats); the extreme's gradient g_ext[i, c]
 *   is split evenly between the neighbours whose p[j, c] equals ext[i, c] (a repeated index
 *   counts once per occurrence); grad_p_out[j] += d_ij + share_ij (a per-worker buffer).
 *
 * Why a kernel: the torch path gathers an (r, k, C) temporary per chunk and then makes 5-10
 * elementwise / reduction passes over it. Here, for each row i, the k neighbour rows p[j]
 * (k * C * 4 = 4 KB at k = 16, C = 64) are read into L1 and every quantity is computed in one
 * pass over them (forward) or two (backward: the tie count, then the gradients), with
 * vectorised loops over the contiguous channels; each variant (statistics kind, leaky or not,
 * extreme gradient or not) is its own branch-free loop. Measured on one core, R = 8192, k = 16,
 * C = 64 (shared machine): forward with ReLU statistics 3-7 ms, backward 5-9 ms (kNN-local vs
 * uniformly random neighbours). Software prefetch of the next rows' neighbours was tried and
 * gave nothing measurable.
 * Arithmetic follows the torch formulation operation by operation (same roundings, no FMA
 * contraction: -std=c11 implies -ffp-contract=off), so results agree to float32 rounding of
 * the summation order; grad_p's += order equals index_add_'s. NaN propagates as in torch
 * (amax / clamp keep NaN). The GIL is released: Python threads run chunks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>

/* AVX2 and baseline clones of the row loops, picked at load time (ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL
#endif

typedef struct {
    const float *a, *p, *sgn, *shift, *ext, *g_ext, *c0, *gv;
    const int64_t *fidx;
    float *ext_out, *grad_a, *grad_p;
    double *s1, *s2;
    Py_ssize_t C, k, r0, r1;
    int stats;
    float slope;    /* as torch casts the Python float for float32 tensors */
    double slope_d; /* the Python float itself */
    float *work; /* 4 * C floats of scratch */
} Args;

/* One neighbour row j of row i in the forward: with MAX, the running extreme m (sign-flipped by
 * sg: min = -max(-v), exact, so ext is bit-identical to amin / amax); with MODE 1 / 2 / 3
 * (identity / ReLU / leaky ReLU) the sums of f(a_i + p_j) - shift and its square. Literal flags
 * at every call: one branch-free vectorised loop per variant, p_j read once. */
static inline __attribute__((always_inline)) void edge_forward(
    const float *restrict ai, const float *restrict pj, const float *restrict sg,
    const float *restrict sh, float *restrict m, float *restrict q1, float *restrict q2,
    Py_ssize_t C, float slope, float one, const int MAX, const int MODE) {
    for (Py_ssize_t c = 0; c < C; c++) {
        if (MAX) {
            float v = sg[c] * pj[c];
            m[c] = (v > m[c] || v != v) ? v : m[c]; /* NaN sticks, as in torch.amax */
        }
        if (MODE) {
            float z = ai[c] + pj[c];
            if (MODE == 2) z = z < 0.0f ? 0.0f : z; /* clamp(min=0): NaN stays NaN */
            /* z * (1 or slope) == where(z > 0, z, z * slope): a blend of two constants and one
             * multiply (gcc leaves a conditional multiply scalar) */
            if (MODE == 3) z = z * (z > 0.0f ? one : slope);
            z = z - sh[c];
            q1[c] += z;
            q2[c] += z * z;
        }
    }
}

#define EDGE_FORWARD(MAX, MODE) edge_forward(ai, pj, sg, sh, m, q1, q2, C, slope, one, MAX, MODE)

KERNEL static void forward_rows(const Args *x) {
    const Py_ssize_t C = x->C, k = x->k;
    float *restrict m = x->work, *restrict sg = m + C, *restrict q1 = sg + C, *restrict q2 = q1 + C;
    const float *restrict sh = x->shift;
    double *restrict s1 = x->s1, *restrict s2 = x->s2;
    const float slope = x->slope;
    /* 0: ext only, 1: identity, 2: ReLU, 3: leaky ReLU; a local, not reloaded through x */
    const int mode = x->stats == 0 ? 0 : (x->stats == 1 ? 1 : (x->slope_d == 0.0 ? 2 : 3));
    /* 1.0f the compiler cannot see: z * 1.0f would be folded back into a conditional multiply */
    volatile float one_v = 1.0f;
    const float one = one_v;
    for (Py_ssize_t c = 0; c < C; c++) sg[c] = (x->sgn == NULL || x->sgn[c] > 0) ? 1.0f : -1.0f;
    for (Py_ssize_t i = x->r0; i < x->r1; i++) {
        const int64_t *f = x->fidx + i * k;
        const float *restrict ai = x->a + i * C;
        const float *restrict pj = x->p + f[0] * C;
        for (Py_ssize_t c = 0; c < C; c++) {
            m[c] = sg[c] * pj[c];
            q1[c] = q2[c] = 0.0f;
        }
        switch (mode) { /* neighbour 0 seeds m: statistics only */
        case 1: EDGE_FORWARD(0, 1); break;
        case 2: EDGE_FORWARD(0, 2); break;
        case 3: EDGE_FORWARD(0, 3); break;
        }
        for (Py_ssize_t j = 1; j < k; j++) {
            pj = x->p + f[j] * C;
            switch (mode) {
            case 0: EDGE_FORWARD(1, 0); break;
            case 1: EDGE_FORWARD(1, 1); break;
            case 2: EDGE_FORWARD(1, 2); break;
            default: EDGE_FORWARD(1, 3); break;
            }
        }
        float *restrict e = x->ext_out + i * C;
        for (Py_ssize_t c = 0; c < C; c++) e[c] = sg[c] * m[c];
        if (!mode) continue;
        for (Py_ssize_t c = 0; c < C; c++) {
            s1[c] += (double)q1[c];
            s2[c] += (double)q2[c];
        }
    }
}

/* One edge row of the backward with the statistics: d = f'(z)(c0 + gv f(z)) summed into ga,
 * plus the extreme's share, added into gp. STATS / LEAKY / HAS_EXT are literals at every call,
 * so each variant is a branch-free vectorised loop (with them as runtime values gcc left half
 * of the variants scalar: 5x slower). */
static inline __attribute__((always_inline)) void edge_grad(
    const float *restrict ai, const float *restrict pj, const float *restrict ei,
    const float *restrict c0, const float *restrict gv, const float *restrict share,
    float *restrict ga, float *restrict gp, Py_ssize_t C, float dpos, float dneg, const int STATS,
    const int LEAKY, const int HAS_EXT) {
    for (Py_ssize_t c = 0; c < C; c++) {
        float z = ai[c] + pj[c], d;
        if (STATS == 1) {
            d = c0[c] + z * gv[c];
        } else {
            float deriv = z > 0.0f ? dpos : dneg;
            if (LEAKY) z = z * deriv; /* f(z) = f'(z) z for leaky ReLU */
            d = (c0[c] + z * gv[c]) * deriv;
        }
        ga[c] += d;
        if (HAS_EXT) d = d + (pj[c] == ei[c] ? 1.0f : 0.0f) * share[c];
        gp[c] += d;
    }
}

#define EDGE_GRAD(S, L, H) edge_grad(ai, pj, ei, c0, gv, share, ga, gp, C, dpos, dneg, S, L, H)

KERNEL static void backward_rows(const Args *x) {
    const Py_ssize_t C = x->C, k = x->k;
    float *restrict cnt = x->work, *restrict share = cnt + C, *restrict ga = share + C;
    const float *restrict c0 = x->c0, *restrict gv = x->gv;
    const int stats = x->stats, has_ext = x->g_ext != NULL;
    const float slope = x->slope;
    const int leaky = x->slope_d != 0.0;
    /* f'(z) as the torch path builds it: gt(z, 0) as 0/1, then * (1 - slope) + slope, in float */
    const float dpos = leaky ? 1.0f * (float)(1.0 - x->slope_d) + slope : 1.0f;
    const float dneg = leaky ? 0.0f * (float)(1.0 - x->slope_d) + slope : 0.0f;
    for (Py_ssize_t i = x->r0; i < x->r1; i++) {
        const int64_t *f = x->fidx + i * k;
        const float *restrict ai = x->a + i * C;
        const float *restrict ei = x->ext + i * C;
        if (has_ext) {
            const float *restrict gi = x->g_ext + i * C;
            for (Py_ssize_t c = 0; c < C; c++) cnt[c] = 0.0f;
            for (Py_ssize_t j = 0; j < k; j++) {
                const float *restrict pj = x->p + f[j] * C;
                for (Py_ssize_t c = 0; c < C; c++) cnt[c] += pj[c] == ei[c] ? 1.0f : 0.0f;
            }
            for (Py_ssize_t c = 0; c < C; c++) share[c] = gi[c] / cnt[c];
        }
        if (stats)
            for (Py_ssize_t c = 0; c < C; c++) ga[c] = 0.0f;
        for (Py_ssize_t j = 0; j < k; j++) {
            const float *restrict pj = x->p + f[j] * C;
            float *restrict gp = x->grad_p + f[j] * C;
            if (!stats) {
                for (Py_ssize_t c = 0; c < C; c++) gp[c] += (pj[c] == ei[c] ? 1.0f : 0.0f) * share[c];
                continue;
            }
            if (stats == 1) {
                if (has_ext) EDGE_GRAD(1, 0, 1);
                else EDGE_GRAD(1, 0, 0);
            } else if (leaky) {
                if (has_ext) EDGE_GRAD(2, 1, 1);
                else EDGE_GRAD(2, 1, 0);
            } else {
                if (has_ext) EDGE_GRAD(2, 0, 1);
                else EDGE_GRAD(2, 0, 0);
            }
        }
        if (stats) {
            float *restrict out = x->grad_a + i * C;
            for (Py_ssize_t c = 0; c < C; c++) out[c] = ga[c];
        }
    }
}

/* ---- argument checking ---- */

typedef struct {
    Py_buffer v[12];
    int n;
} Views;

static void release_all(Views *vs) {
    for (int i = 0; i < vs->n; i++) PyBuffer_Release(&vs->v[i]);
    vs->n = 0;
}

/* Buffer of `obj` as a C-contiguous array of `ndim` dims and kind 'f' (float32), 'd' (float64)
 * or 'i' (int64); None gives NULL when allowed. Returns 0 on success, -1 with ValueError set. */
static int get_array(Views *vs, PyObject *obj, const char *fn, const char *name, int ndim, char kind,
                     int writable, int allow_none, void **data, Py_ssize_t *shape) {
    *data = NULL;
    if (obj == Py_None) {
        if (allow_none) return 0;
        PyErr_Format(PyExc_ValueError, "%s: %s must be an array, got None", fn, name);
        return -1;
    }
    Py_buffer *view = &vs->v[vs->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: %s must be a C-contiguous%s buffer (numpy array)", fn,
                     name, writable ? " writable" : "");
        return -1;
    }
    vs->n++;
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    char f = fmt[0];
    int ok = view->ndim == ndim && fmt[1] == '\0';
    if (kind == 'f') ok = ok && f == 'f' && view->itemsize == 4;
    if (kind == 'd') ok = ok && f == 'd' && view->itemsize == 8;
    if (kind == 'i') ok = ok && (f == 'q' || f == 'l') && view->itemsize == 8;
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be a C-contiguous %d-D %s array; got format "
                     "'%s', %d-D", fn, name, ndim,
                     kind == 'f' ? "float32" : (kind == 'd' ? "float64" : "int64"),
                     view->format ? view->format : "B", view->ndim);
        return -1;
    }
    for (int d = 0; d < ndim; d++) shape[d] = view->shape[d];
    *data = view->buf;
    return 0;
}

/* Check (R, C) / (C,) shapes, 0 <= r0 <= r1 <= R, and neighbour indices of rows r0..r1 in [0, R). */
static int check_common(const char *fn, Py_ssize_t R, Py_ssize_t C, Py_ssize_t k,
                        const Py_ssize_t *sh_a, const Py_ssize_t *sh_f, Py_ssize_t r0,
                        Py_ssize_t r1, const int64_t *fidx) {
    if (sh_a[0] != R || sh_a[1] != C || sh_f[0] != R || k < 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: need a, p (R, C) and fidx (R, k) with k >= 1; got a (%zd, %zd), p "
                     "(%zd, %zd), fidx (%zd, %zd)", fn, sh_a[0], sh_a[1], R, C, sh_f[0], k);
        return -1;
    }
    if (r0 < 0 || r1 < r0 || r1 > R) {
        PyErr_Format(PyExc_ValueError, "%s: need 0 <= r0 <= r1 <= R = %zd, got r0 = %zd, r1 = %zd",
                     fn, R, r0, r1);
        return -1;
    }
    for (Py_ssize_t t = r0 * k; t < r1 * k; t++) {
        if (fidx[t] < 0 || fidx[t] >= R) {
            PyErr_Format(PyExc_ValueError, "%s: fidx[%zd, %zd] = %lld is outside [0, R = %zd)", fn,
                         t / k, t % k, (long long)fidx[t], R);
            return -1;
        }
    }
    return 0;
}

static int check_vec(const char *fn, const char *name, const void *data, Py_ssize_t n,
                     Py_ssize_t C) {
    if (data != NULL && n != C) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have C = %zd entries, got %zd", fn, name, C, n);
        return -1;
    }
    return 0;
}

static int check_rc(const char *fn, const char *name, const void *data, const Py_ssize_t *sh,
                    Py_ssize_t R, Py_ssize_t C) {
    if (data != NULL && (sh[0] != R || sh[1] != C)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be (R, C) = (%zd, %zd), got (%zd, %zd)", fn,
                     name, R, C, sh[0], sh[1]);
        return -1;
    }
    return 0;
}

/* Outputs must not share memory with the inputs (the loops read and write them through restrict
 * pointers): a ValueError instead of silently wrong values. NULL (None) never overlaps. */
static int disjoint(const char *fn, const char *out_name, const void *out, size_t out_bytes,
                    const char *in_name, const void *in, size_t in_bytes) {
    const char *o = out, *i = in;
    if (o == NULL || i == NULL || out_bytes == 0 || in_bytes == 0) return 0;
    if (o < i + in_bytes && i < o + out_bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %s shares memory with %s", fn, out_name, in_name);
        return -1;
    }
    return 0;
}

static PyObject *forward(PyObject *self, PyObject *args) {
    static const char *fn = "forward";
    PyObject *ao, *po, *fo, *so, *sho, *eo, *s1o, *s2o;
    int stats;
    double slope;
    Py_ssize_t r0, r1;
    if (!PyArg_ParseTuple(args, "OOOOidOnnOOO:forward", &ao, &po, &fo, &so, &stats, &slope, &sho,
                          &r0, &r1, &eo, &s1o, &s2o))
        return NULL;
    if (stats < 0 || stats > 2) {
        PyErr_Format(PyExc_ValueError, "forward: stats must be 0, 1 or 2, got %d", stats);
        return NULL;
    }
    Views vs = {.n = 0};
    Args x = {0};
    Py_ssize_t sh_a[2], sh_p[2], sh_f[2], sh_s[1], sh_sh[1], sh_e[2], sh_1[1], sh_2[1];
    void *a, *p, *fi, *sg, *sh, *e, *s1, *s2;
    if (get_array(&vs, ao, fn, "a", 2, 'f', 0, 0, &a, sh_a) < 0 ||
        get_array(&vs, po, fn, "p", 2, 'f', 0, 0, &p, sh_p) < 0 ||
        get_array(&vs, fo, fn, "fidx", 2, 'i', 0, 0, &fi, sh_f) < 0 ||
        get_array(&vs, so, fn, "sgn", 1, 'f', 0, 1, &sg, sh_s) < 0 ||
        get_array(&vs, sho, fn, "shift", 1, 'f', 0, !stats, &sh, sh_sh) < 0 ||
        get_array(&vs, eo, fn, "ext_out", 2, 'f', 1, 0, &e, sh_e) < 0 ||
        get_array(&vs, s1o, fn, "s1_out", 1, 'd', 1, !stats, &s1, sh_1) < 0 ||
        get_array(&vs, s2o, fn, "s2_out", 1, 'd', 1, !stats, &s2, sh_2) < 0)
        goto fail;
    Py_ssize_t R = sh_p[0], C = sh_p[1], k = sh_f[1];
    if (check_common(fn, R, C, k, sh_a, sh_f, r0, r1, fi) < 0 ||
        check_rc(fn, "ext_out", e, sh_e, R, C) < 0 || check_vec(fn, "sgn", sg, sh_s[0], C) < 0 ||
        check_vec(fn, "shift", sh, sh_sh[0], C) < 0 ||
        check_vec(fn, "s1_out", s1, sh_1[0], C) < 0 || check_vec(fn, "s2_out", s2, sh_2[0], C) < 0)
        goto fail;
    size_t rc = (size_t)R * C * sizeof(float), cd = (size_t)C * sizeof(double);
    if (disjoint(fn, "ext_out", e, rc, "a", a, rc) < 0 ||
        disjoint(fn, "ext_out", e, rc, "p", p, rc) < 0 ||
        disjoint(fn, "ext_out", e, rc, "fidx", fi, (size_t)R * k * sizeof(int64_t)) < 0 ||
        disjoint(fn, "s1_out", s1, cd, "s2_out", s2, cd) < 0)
        goto fail;
    x.a = a;
    x.p = p;
    x.fidx = fi;
    x.sgn = sg;
    x.shift = sh;
    x.ext_out = e;
    x.s1 = s1;
    x.s2 = s2;
    x.C = C;
    x.k = k;
    x.r0 = r0;
    x.r1 = r1;
    x.stats = stats;
    x.slope = (float)slope;
    x.slope_d = slope;
    x.work = malloc((size_t)(4 * C + 1) * sizeof(float));
    if (x.work == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS;
    forward_rows(&x);
    Py_END_ALLOW_THREADS;
    free(x.work);
    release_all(&vs);
    Py_RETURN_NONE;
fail:
    release_all(&vs);
    return NULL;
}

static PyObject *backward(PyObject *self, PyObject *args) {
    static const char *fn = "backward";
    PyObject *ao, *po, *fo, *eo, *go, *c0o, *gvo, *gao, *gpo;
    int stats;
    double slope;
    Py_ssize_t r0, r1;
    if (!PyArg_ParseTuple(args, "OOOOOOOidnnOO:backward", &ao, &po, &fo, &eo, &go, &c0o, &gvo,
                          &stats, &slope, &r0, &r1, &gao, &gpo))
        return NULL;
    if (stats < 0 || stats > 2) {
        PyErr_Format(PyExc_ValueError, "backward: stats must be 0, 1 or 2, got %d", stats);
        return NULL;
    }
    Views vs = {.n = 0};
    Args x = {0};
    Py_ssize_t sh_a[2], sh_p[2], sh_f[2], sh_e[2], sh_g[2], sh_c0[1], sh_gv[1], sh_ga[2], sh_gp[2];
    void *a, *p, *fi, *e, *g, *c0, *gv, *ga, *gp;
    if (get_array(&vs, ao, fn, "a", 2, 'f', 0, 0, &a, sh_a) < 0 ||
        get_array(&vs, po, fn, "p", 2, 'f', 0, 0, &p, sh_p) < 0 ||
        get_array(&vs, fo, fn, "fidx", 2, 'i', 0, 0, &fi, sh_f) < 0 ||
        get_array(&vs, eo, fn, "ext", 2, 'f', 0, 0, &e, sh_e) < 0 ||
        get_array(&vs, go, fn, "g_ext", 2, 'f', 0, 1, &g, sh_g) < 0 ||
        get_array(&vs, c0o, fn, "c0", 1, 'f', 0, !stats, &c0, sh_c0) < 0 ||
        get_array(&vs, gvo, fn, "gv", 1, 'f', 0, !stats, &gv, sh_gv) < 0 ||
        get_array(&vs, gao, fn, "grad_a_out", 2, 'f', 1, !stats, &ga, sh_ga) < 0 ||
        get_array(&vs, gpo, fn, "grad_p_out", 2, 'f', 1, 0, &gp, sh_gp) < 0)
        goto fail;
    Py_ssize_t R = sh_p[0], C = sh_p[1], k = sh_f[1];
    if (check_common(fn, R, C, k, sh_a, sh_f, r0, r1, fi) < 0 ||
        check_rc(fn, "ext", e, sh_e, R, C) < 0 || check_rc(fn, "g_ext", g, sh_g, R, C) < 0 ||
        check_rc(fn, "grad_a_out", ga, sh_ga, R, C) < 0 ||
        check_rc(fn, "grad_p_out", gp, sh_gp, R, C) < 0 ||
        check_vec(fn, "c0", c0, sh_c0[0], C) < 0 || check_vec(fn, "gv", gv, sh_gv[0], C) < 0)
        goto fail;
    size_t rc = (size_t)R * C * sizeof(float), cf = (size_t)C * sizeof(float);
    void *outs[2] = {stats ? ga : NULL, gp};
    const char *out_names[2] = {"grad_a_out", "grad_p_out"};
    const void *ins[8] = {a, p, e, g, c0, gv, fi, stats ? ga : NULL};
    const size_t in_bytes[8] = {rc, rc, rc, rc, cf, cf, (size_t)R * k * sizeof(int64_t), rc};
    const char *in_names[8] = {"a", "p", "ext", "g_ext", "c0", "gv", "fidx", "grad_a_out"};
    for (int o = 0; o < 2; o++) /* grad_a_out vs the inputs; grad_p_out vs them and grad_a_out */
        for (int i = 0; i < 7 + o; i++)
            if (disjoint(fn, out_names[o], outs[o], rc, in_names[i], ins[i], in_bytes[i]) < 0)
                goto fail;
    x.a = a;
    x.p = p;
    x.fidx = fi;
    x.ext = e;
    x.g_ext = g;
    x.c0 = c0;
    x.gv = gv;
    x.grad_a = stats ? ga : NULL;
    x.grad_p = gp;
    x.C = C;
    x.k = k;
    x.r0 = r0;
    x.r1 = r1;
    x.stats = stats;
    x.slope = (float)slope;
    x.slope_d = slope;
    if (!stats && g == NULL) { /* nothing flows back */
        release_all(&vs);
        Py_RETURN_NONE;
    }
    x.work = malloc((size_t)(4 * C + 1) * sizeof(float));
    if (x.work == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS;
    backward_rows(&x);
    Py_END_ALLOW_THREADS;
    free(x.work);
    release_all(&vs);
    Py_RETURN_NONE;
fail:
    release_all(&vs);
    return NULL;
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS,
     "forward(a, p, fidx, sgn, stats, slope, shift, r0, r1, ext_out, s1_out, s2_out): rows "
     "r0..r1 of ext_out = max_j p[fidx] (min where sgn <= 0; sgn None = max); with stats 1 / 2 "
     "add the sums of f(a_i + p_j) - shift and its square into s1_out / s2_out (float64). "
     "Releases the GIL."},
    {"backward", backward, METH_VARARGS,
     "backward(a, p, fidx, ext, g_ext, c0, gv, stats, slope, r0, r1, grad_a_out, grad_p_out): "
     "gradients of ext (g_ext, ties split evenly) and of the statistics (d = f'(z)(c0 + gv f(z)))"
     " for rows r0..r1: grad_a_out rows written (with stats), grad_p_out accumulated. Releases "
     "the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_edge", NULL, -1, methods};

PyMODINIT_FUNC PyInit__edge(void) {
    const char *simd = "scalar";
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    simd = __builtin_cpu_supports("avx2") ? "avx2" : "sse2";
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "simd", simd) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
