/*
 * Exact k-smallest selection for the dense kNN graph (pointseg.graph.knn).
 *
 * select_ranks(scores, ranks, out): for every row i of `scores` (R, N) float32, order the columns
 * by (value, column) ascending -- the order of a stable argsort -- and write out[i, j] = the
 * column at position ranks[j] (out: (R, len(ranks)) int64). Dilated kNN asks for ranks
 * 0, d, ..., (k-1)d of the kmax = k*d nearest, so only k columns per row are written.
 *
 * Why a kernel: numpy needs five passes over each (rows x N) score block (partition copy,
 * compare, flatnonzero, gather, key sort) and torch.topk copies every row into (value, index)
 * pairs. Here one row (16 KB at N = 4096) is read from memory once and then stays in L1:
 *   1. threshold: from a strided sample of 256 scores, a value t at sample rank ~3 sigma above
 *      the expected sample rank of the kmax-th smallest (a 64-bucket histogram of the sample,
 *      t = the largest sample in the bucket reached), so {s <= t} almost surely holds the kmax
 *      smallest (if not, the whole row is used);
 *   2. one AVX2 compare pass (SSE-free scalar fallback) collects the candidates {j : s_j <= t},
 *      ~1.6 kmax of N, in column order; the set is closed downwards, so it contains the kmax
 *      smallest;
 *   3. a stable bucket sort of the finite candidates on value (buckets linear in value: the map
 *      is monotone): one count per bucket gives every bucket's start, and only the buckets that
 *      hold a wanted rank are scattered and insertion-sorted (a dilated graph wants k of the
 *      k*d nearest: ~k small buckets, not all k*d pairs); -inf (the diagonal: self) goes first
 *      and +inf / NaN (whole-row case only) last, as in argsort.
 * Every row is exact; the sample only decides how much work steps 2-3 do. The GIL is released,
 * so Python threads run row blocks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "select_core.h"
#include "select_rerank.h"

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *name, int ndim,
                      char kind, Py_ssize_t itemsize) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    char f = fmt[0];
    int ok = view->ndim == ndim && view->itemsize == itemsize && fmt[1] == '\0';
    if (kind == 'f') ok = ok && f == 'f';
    if (kind == 'i') ok = ok && (f == 'q' || f == 'l');
    if (kind == 'h') ok = ok && (f == 'h' || f == 'H');
    if (kind == 'd') ok = ok && f == 'd';
    if (!ok) {
        PyErr_Format(PyExc_ValueError,
                     "select_ranks: %s must be a C-contiguous %d-D %s array; got format '%s', "
                     "%d-D, itemsize %zd",
                     name, ndim,
                     kind == 'f'   ? "float32"
                     : kind == 'h' ? "16-bit (bf16 bits)"
                     : kind == 'd' ? "float64"
                                   : "int64",
                     view->format, view->ndim,
                     view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *select_ranks(PyObject *self, PyObject *args) {
    PyObject *so, *ro, *oo;
    if (!PyArg_ParseTuple(args, "OOO:select_ranks", &so, &ro, &oo)) return NULL;
    Py_buffer sv, rv, ov;
    if (get_buffer(so, &sv, 0, "scores", 2, 'f', 4) < 0) return NULL;
    if (get_buffer(ro, &rv, 0, "ranks", 1, 'i', 8) < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    if (get_buffer(oo, &ov, 1, "out", 2, 'i', 8) < 0) {
        PyBuffer_Release(&sv);
        PyBuffer_Release(&rv);
        return NULL;
    }
    Py_ssize_t rows = sv.shape[0], n = sv.shape[1], nr = rv.shape[0];
    const int64_t *ranks = (const int64_t *)rv.buf;
    int64_t kmax = 0;
    int bad = nr == 0 || n > INT32_MAX || ov.shape[0] != rows || ov.shape[1] != nr;
    for (Py_ssize_t j = 0; j < nr && !bad; j++) {
        if (ranks[j] < 0 || ranks[j] >= n) bad = 1;
        if (ranks[j] + 1 > kmax) kmax = ranks[j] + 1;
    }
    if (bad) {
        PyErr_Format(PyExc_ValueError,
                     "select_ranks: need scores (R, N), ranks (k,) in [0, N) with k >= 1, out "
                     "(R, k); got scores (%zd, %zd), %zd ranks, out (%zd, %zd)",
                     rows, n, nr, ov.shape[0], ov.shape[1]);
        goto fail;
    }
    Scratch w;
    size_t nn = (size_t)n + 8; /* the AVX2 collect stores 8 lanes past the last hit */
    w.val = malloc(nn * sizeof(float)); /* + 8: whole AVX2 groups */
    w.val2 = malloc(nn * sizeof(float));
    w.col = malloc(nn * sizeof(int32_t));
    w.col2 = malloc(nn * sizeof(int32_t));
    w.head = malloc(nn * sizeof(int32_t));
    w.tail = malloc(nn * sizeof(int32_t));
    w.count = malloc(nn * sizeof(int32_t));
    w.negbuf = malloc(nn * sizeof(int32_t));
    if (!w.val || !w.val2 || !w.col || !w.col2 || !w.head || !w.tail || !w.count || !w.negbuf) {
        scratch_free(&w);
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS;
    const float *s = (const float *)sv.buf;
    int64_t *out = (int64_t *)ov.buf;
    for (Py_ssize_t i = 0; i < rows; i++) {
        select_rows_prefetch(s, i, rows, n);
        select_row(s + i * n, (int)n, (int)kmax, ranks, (int)nr, out + i * nr, &w);
    }
    Py_END_ALLOW_THREADS;
    scratch_free(&w);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&rv);
    PyBuffer_Release(&ov);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&sv);
    PyBuffer_Release(&rv);
    PyBuffer_Release(&ov);
    return NULL;
}


/* select_rerank(dots, x, sq, norm, rho, ea, ep, eq, eb, row0, ranks, out, mfac) -> (fallback
 * rows, re-ranked candidates, retried rows): see select_rerank.h. dots (R, N) bf16 bits (int16
 * view) of rows row0 .. row0 + R - 1, x (N, C) float32, sq / norm / rho (N,) float32; the score
 * error bound of row i and column j is ea[i] + ep[i] norm[j] + eq[i] rho[j] + eb |dots[i, j]|
 * (ea / ep / eq (N,) float64); ranks (k,) int64, out (R, k) int64. */
static PyObject *select_rerank(PyObject *self, PyObject *args) {
    PyObject *dobj, *xobj, *sqobj, *nobj, *rhobj, *eobj, *pobj, *qobj, *robj, *oobj;
    Py_ssize_t row0;
    double mfac, eb;
    if (!PyArg_ParseTuple(args, "OOOOOOOOdnOOd:select_rerank", &dobj, &xobj, &sqobj, &nobj,
                          &rhobj, &eobj, &pobj, &qobj, &eb, &row0, &robj, &oobj, &mfac))
        return NULL;
    enum { NB = 10 };
    Py_buffer v[NB];
    PyObject *objs[NB] = {dobj, xobj, sqobj, robj, oobj, nobj, rhobj, eobj, pobj, qobj};
    const char *names[NB] = {"dots", "x", "sq", "ranks", "out", "norm", "rho", "ea", "ep", "eq"};
    const int nd[NB] = {2, 2, 1, 1, 2, 1, 1, 1, 1, 1};
    const char kinds[NB] = {'h', 'f', 'f', 'i', 'i', 'f', 'f', 'd', 'd', 'd'};
    const Py_ssize_t size[NB] = {2, 4, 4, 8, 8, 4, 4, 8, 8, 8};
    int got = 0;
    for (; got < NB; got++)
        if (get_buffer(objs[got], &v[got], got == 4, names[got], nd[got], kinds[got],
                       size[got]) < 0)
            break;
    PyObject *result = NULL;
    if (got < NB) goto done;
    Py_ssize_t rows = v[0].shape[0], n = v[0].shape[1], c = v[1].shape[1], nr = v[3].shape[0];
    const int64_t *ranks = (const int64_t *)v[3].buf;
    int64_t kmax = 0;
    int bad = nr == 0 || n > INT32_MAX || v[1].shape[0] != n || v[2].shape[0] != n ||
              v[4].shape[0] != rows || v[4].shape[1] != nr || row0 < 0 || row0 + rows > n || c < 1;
    for (int q = 5; q < NB; q++) bad = bad || v[q].shape[0] != n;
    for (Py_ssize_t j = 0; j < nr && !bad; j++) {
        if (ranks[j] < 0 || ranks[j] >= n) bad = 1;
        if (ranks[j] + 1 > kmax) kmax = ranks[j] + 1;
    }
    if (bad) {
        PyErr_Format(PyExc_ValueError,
                     "select_rerank: need dots (R, N), x (N, C), sq / norm / rho / ea / ep / eq "
                     "(N,), rows row0 + R <= N, ranks (k,) in [0, N) with k >= 1, out (R, k); got "
                     "dots (%zd, %zd), x (%zd, %zd), sq (%zd,), row0 %zd, %zd ranks, out (%zd, %zd)",
                     rows, n, v[1].shape[0], c, v[2].shape[0], row0, nr, v[4].shape[0],
                     v[4].shape[1]);
        goto done;
    }
    Scratch w;
    size_t nn = (size_t)n + 8;
    w.val = malloc(nn * sizeof(float));
    w.val2 = malloc(nn * sizeof(float));
    w.col = malloc(nn * sizeof(int32_t));
    w.col2 = malloc(nn * sizeof(int32_t));
    w.head = malloc(nn * sizeof(int32_t));
    w.tail = malloc(nn * sizeof(int32_t));
    w.count = malloc(nn * sizeof(int32_t));
    w.negbuf = malloc(nn * sizeof(int32_t));
    float *srow = malloc((nn + 16) * sizeof(float));
    int32_t *iota = malloc(nn * sizeof(int32_t));
    if (!w.val || !w.val2 || !w.col || !w.col2 || !w.head || !w.tail || !w.count || !w.negbuf ||
        !srow || !iota) {
        scratch_free(&w);
        free(srow);
        free(iota);
        PyErr_NoMemory();
        goto done;
    }
    RerankStats st = {0, 0, 0};
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t j = 0; j < n; j++) iota[j] = (int32_t)j;
    const uint16_t *d = (const uint16_t *)v[0].buf;
    const float *x = (const float *)v[1].buf, *sq = (const float *)v[2].buf;
    const float *nrm = (const float *)v[5].buf, *rho = (const float *)v[6].buf;
    const double *ea = (const double *)v[7].buf, *ep = (const double *)v[8].buf;
    const double *eq = (const double *)v[9].buf;
    int64_t *out = (int64_t *)v[4].buf;
    for (Py_ssize_t i = 0; i < rows; i++)
        rerank_row(d + i * n, x, sq, nrm, rho, (int)n, (int)c, row0 + i, ea[row0 + i],
                   ep[row0 + i], eq[row0 + i], eb, mfac, (int)kmax,
                   ranks, (int)nr, out + i * nr, &w, srow, iota, &st);
    Py_END_ALLOW_THREADS;
    scratch_free(&w);
    free(srow);
    free(iota);
    result = Py_BuildValue("LLL", (long long)st.fallback, (long long)st.candidates,
                           (long long)st.retries);
done:
    for (int q = 0; q < got; q++) PyBuffer_Release(&v[q]);
    return result;
}

static PyMethodDef methods[] = {
    {"select_ranks", select_ranks, METH_VARARGS,
     "select_ranks(scores, ranks, out): out[i, j] = column of the ranks[j]-th smallest score of "
     "row i (ascending; ties by lower column). scores (R, N) float32, ranks (k,) int64, out "
     "(R, k) int64; all C-contiguous. Releases the GIL."},
    {"select_rerank", select_rerank, METH_VARARGS,
     "select_rerank(dots, x, sq, norm, rho, ea, ep, eq, eb, row0, ranks, out, mfac) -> "
     "(fallback_rows, candidates, "
     "retries): "
     "exact k-nearest ranks from bf16 dot products with an fp32 re-rank and a per-row proof "
     "(select_rerank.h). Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_select", NULL, -1, methods};

PyMODINIT_FUNC PyInit__select(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    init_lut();
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    have_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "simd", SIMD_NAME) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
