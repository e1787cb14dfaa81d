/* Strict parser for S3DIS annotation lines `x y z r g b`: pointseg._native._parse.
 *
 * parse_xyzrgb(buf, xyz, rgb) -> int
 *
 *   buf  bytes-like (buffer protocol, C-contiguous)
 *   xyz  writable float32 buffer of n * 3 items (numpy float32 (n, 3))
 *   rgb  writable uint8 buffer of n * 3 items (numpy uint8 (n, 3))
 *
 * Returns the number of lines parsed (>= 0) when the whole buffer is in the strict format, else
 * -1 - i where i is the 0-based index of the first line outside it (or of the line that does
 * not fit in the n rows). The caller compares the count with the line count and, on any
 * failure, falls back to its robust line-by-line path, which reports and repairs. The result
 * must therefore NEVER differ from np.loadtxt(buf).astype(float32 / uint8): any doubt is a
 * failure, not a guess.
 *
 * Strict format, per line: three decimals `-?D*(.D*)?` with at least one digit, three unsigned
 * integers 0..255, single spaces between fields, lines ending in '\n' (the last one may end at
 * the end of the buffer). Anything else fails: other bytes (NUL, '\r', '\t', '+', 'e', letters),
 * empty lines, five or seven fields, double or trailing spaces, a colour above 255 or with a
 * fraction, a coordinate too large for float32, a token longer than MAX_TOKEN bytes.
 *
 * Coordinates are correctly rounded decimal -> float64, then float64 -> float32 (round to
 * nearest even), exactly what np.loadtxt followed by astype(np.float32) gives:
 * - Clinger's fast path: the digits as an integer m <= 2^53 and k <= 22 fraction digits are
 *   both exact doubles, so (double)m / 1e<k> is one correctly rounded IEEE division. The real
 *   data (3 fraction digits, at most 7 significant digits) always takes it.
 * - Otherwise the token is remembered and converted after the parse, with the GIL held, by
 *   PyOS_string_to_double (CPython's correctly rounded strtod, the one float() and
 *   np.loadtxt use).
 * The sign is applied last, so "-0.000" is -0.0 as in np.loadtxt.
 *
 * The parse itself runs without the GIL; the caller must not resize the buffers meanwhile
 * (bytes are immutable; numpy arrays with exported buffers cannot be resized).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Longest coordinate token converted by the slow path; longer ones fail (the robust path in
 * Python handles them). 100 significant digits already exceed any meaningful coordinate. */
#define MAX_TOKEN 127

/* Exact powers of ten as doubles: 10^22 is the largest with an exact double. */
static const double POW10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define TWO_POW_53 ((uint64_t)1 << 53)

/* A coordinate outside Clinger's fast path, converted after the parse. */
typedef struct {
    Py_ssize_t index; /* into xyz (row * 3 + column) */
    Py_ssize_t start; /* byte offset of the token in buf */
    Py_ssize_t len;
} SlowToken;

typedef struct {
    SlowToken *items;
    Py_ssize_t size, capacity;
} SlowList;

static int slow_push(SlowList *list, Py_ssize_t index, Py_ssize_t start, Py_ssize_t len)
{
    if (list->size == list->capacity) {
        Py_ssize_t cap = list->capacity ? 2 * list->capacity : 64;
        /* PyMem_Raw*: safe without the GIL. */
        SlowToken *items = PyMem_RawRealloc(list->items, (size_t)cap * sizeof(SlowToken));
        if (items == NULL)
            return -1;
        list->items = items;
        list->capacity = cap;
    }
    list->items[list->size++] = (SlowToken){index, start, len};
    return 0;
}

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10u)

/* One coordinate `-?D*(.D*)?` at p. Returns the end of the token, or NULL if there is none.
 * *slow is set when the value needs the correctly rounded slow conversion (*out is then 0).
 * No bounds checks: the caller guarantees a '\n' at or after p, and no loop passes a '\n'. */
static inline const char *parse_coord(const char *p, double *out, int *slow)
{
    int neg = *p == '-';
    p += neg;
    /* All digits go into m: with at most 19 of them m is exact (leading zeros add nothing). */
    uint64_t m = 0;
    const char *first = p;
    while (IS_DIGIT(*p))
        m = m * 10 + (unsigned)(*p++ - '0');
    int ndig = (int)(p - first), nfrac = 0;
    if (*p == '.') {
        const char *frac = ++p;
        while (IS_DIGIT(*p))
            m = m * 10 + (unsigned)(*p++ - '0');
        nfrac = (int)(p - frac);
        ndig += nfrac;
    }
    if (ndig == 0)
        return NULL; /* "", "-", ".", "-." */
    if (ndig > 19 || m > TWO_POW_53 || nfrac > 22) {
        /* m may have wrapped: never used. */
        *slow = 1;
        *out = 0.0;
        return p;
    }
    *slow = 0;
    /* Clinger: m and 10^nfrac are exact doubles, the division rounds once, correctly. */
    double v = nfrac ? (double)m / POW10[nfrac] : (double)m;
    *out = neg ? -v : v; /* after the division: "-0.000" is -0.0 */
    return p;
}

/* One colour `D+` with value 0..255 (leading zeros allowed, as np.loadtxt reads them). */
static inline const char *parse_colour(const char *p, unsigned char *out)
{
    const char *first = p;
    unsigned v = 0;
    while (IS_DIGIT(*p)) {
        v = v * 10 + (unsigned)(*p++ - '0');
        if (v > 255)
            return NULL;
    }
    if (p == first)
        return NULL;
    *out = (unsigned char)v;
    return p;
}

/* Lines of [p, end), which must end in '\n' (the sentinel that stops every scan). Line and
 * row numbers start at `i`; `base` is the offset of p in the caller's buffer (for the slow
 * tokens). Returns the next row index, -1 - line on a format error, or PY_SSIZE_T_MIN when the
 * slow-token list cannot grow. */
static Py_ssize_t parse_region(const char *p, const char *end, Py_ssize_t base, Py_ssize_t i,
                               float *xyz, unsigned char *rgb, Py_ssize_t rows, SlowList *slow)
{
    const char *start = p;
    while (p < end) {
        if (i >= rows)
            return -1 - i;
        float *x = xyz + 3 * i;
        unsigned char *c = rgb + 3 * i;
        for (int j = 0; j < 3; j++) {
            const char *tok = p;
            double v;
            int is_slow;
            p = parse_coord(p, &v, &is_slow);
            if (p == NULL || *p != ' ')
                return -1 - i;
            if (is_slow) {
                if (p - tok > MAX_TOKEN)
                    return -1 - i;
                if (slow_push(slow, 3 * i + j, base + (tok - start), p - tok) < 0)
                    return PY_SSIZE_T_MIN;
            }
            x[j] = (float)v; /* fast-path values are below 2^53: never overflow float32 */
            p++;
        }
        if ((p = parse_colour(p, c)) == NULL || *p++ != ' ')
            return -1 - i;
        if ((p = parse_colour(p, c + 1)) == NULL || *p++ != ' ')
            return -1 - i;
        if ((p = parse_colour(p, c + 2)) == NULL || *p++ != '\n')
            return -1 - i;
        i++;
    }
    return i;
}

/* The GIL-free part: the lines up to the last '\n' in place, then the unterminated last line
 * (if any) from a copy with a '\n' appended. Same returns as parse_region. */
static Py_ssize_t parse_lines(const char *buf, Py_ssize_t len, float *xyz, unsigned char *rgb,
                              Py_ssize_t rows, SlowList *slow)
{
    Py_ssize_t body = len;
    while (body > 0 && buf[body - 1] != '\n')
        body--;
    Py_ssize_t i = parse_region(buf, buf + body, 0, 0, xyz, rgb, rows, slow);
    if (i < 0 || body == len)
        return i;
    Py_ssize_t tail = len - body;
    char *copy = PyMem_RawMalloc((size_t)tail + 1);
    if (copy == NULL)
        return PY_SSIZE_T_MIN;
    memcpy(copy, buf + body, (size_t)tail);
    copy[tail] = '\n';
    i = parse_region(copy, copy + tail + 1, body, i, xyz, rgb, rows, slow);
    PyMem_RawFree(copy);
    return i;
}

/* Convert the remembered tokens with the GIL held. Returns 0, or -1 - line if a value is not
 * a finite float32 (the robust path reports those lines). */
static Py_ssize_t convert_slow(const char *buf, float *xyz, const SlowList *slow)
{
    char tmp[MAX_TOKEN + 1];
    for (Py_ssize_t s = 0; s < slow->size; s++) {
        const SlowToken *t = &slow->items[s];
        memcpy(tmp, buf + t->start, (size_t)t->len);
        tmp[t->len] = '\0';
        char *stop = NULL;
        /* overflow_exception NULL: an out-of-range value returns +-HUGE_VAL without raising. */
        double v = PyOS_string_to_double(tmp, &stop, NULL);
        if ((v == -1.0 && PyErr_Occurred()) || stop != tmp + t->len) {
            PyErr_Clear();
            return -1 - t->index / 3;
        }
        float f = (float)v;
        if (!isfinite(f))
            return -1 - t->index / 3;
        xyz[t->index] = f;
    }
    return 0;
}

static int format_is(const Py_buffer *view, char code)
{
    const char *f = view->format;
    if (f == NULL)
        return code == 'B';
    if (*f == '@' || *f == '=')
        f++;
#if PY_LITTLE_ENDIAN
    else if (*f == '<')
        f++;
#else
    else if (*f == '>')
        f++;
#endif
    return f[0] == code && f[1] == '\0';
}

PyDoc_STRVAR(parse_xyzrgb_doc,
             "parse_xyzrgb(buf, xyz, rgb) -> int\n\n"
             "Parse strict `x y z r g b` lines of the bytes-like `buf` into the writable float32\n"
             "buffer `xyz` and uint8 buffer `rgb` (n * 3 items each). Returns the number of lines\n"
             "parsed, or -1 - i if line i (0-based) is not in the strict format or does not fit\n"
             "in n rows; values equal np.loadtxt(...).astype(float32 / uint8) exactly.");

static PyObject *parse_xyzrgb(PyObject *self, PyObject *args)
{
    PyObject *buf_obj, *xyz_obj, *rgb_obj;
    if (!PyArg_ParseTuple(args, "OOO:parse_xyzrgb", &buf_obj, &xyz_obj, &rgb_obj))
        return NULL;
    Py_buffer buf, xyz, rgb;
    if (PyObject_GetBuffer(buf_obj, &buf, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(xyz_obj, &xyz, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) <
        0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    if (PyObject_GetBuffer(rgb_obj, &rgb, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) <
        0) {
        PyBuffer_Release(&xyz);
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    SlowList slow = {NULL, 0, 0};
    Py_ssize_t n, rows = xyz.len / 12;
    if (!format_is(&xyz, 'f') || xyz.itemsize != 4 || xyz.len % 12) {
        PyErr_SetString(PyExc_ValueError, "xyz must be a C-contiguous float32 buffer of n * 3 items");
        goto done;
    }
    if (!format_is(&rgb, 'B') || rgb.itemsize != 1 || rgb.len != 3 * rows) {
        PyErr_Format(PyExc_ValueError,
                     "rgb must be a C-contiguous uint8 buffer of n * 3 = %zd items (got %zd)",
                     3 * rows, rgb.len);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    n = parse_lines((const char *)buf.buf, buf.len, (float *)xyz.buf, (unsigned char *)rgb.buf,
                    rows, &slow);
    Py_END_ALLOW_THREADS
    if (n == PY_SSIZE_T_MIN) {
        PyErr_NoMemory();
        goto done;
    }
    if (n >= 0 && slow.size) {
        Py_ssize_t bad = convert_slow((const char *)buf.buf, (float *)xyz.buf, &slow);
        if (bad < 0)
            n = bad;
    }
    result = PyLong_FromSsize_t(n);
done:
    PyMem_RawFree(slow.items);
    PyBuffer_Release(&rgb);
    PyBuffer_Release(&xyz);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(count_lines_doc,
             "count_lines(buf) -> int\n\n"
             "Number of lines of the bytes-like `buf`: its '\\n' bytes, plus one if it is not empty\n"
             "and does not end in '\\n' (the row count parse_xyzrgb needs).");

static PyObject *count_lines(PyObject *self, PyObject *arg)
{
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const unsigned char *p = (const unsigned char *)buf.buf;
    Py_ssize_t len = buf.len, n = 0;
    Py_BEGIN_ALLOW_THREADS
    /* A branch-free byte loop: gcc -O3 vectorises it (bytes.count is several times slower). */
    for (Py_ssize_t i = 0; i < len; i++)
        n += p[i] == '\n';
    if (len && p[len - 1] != '\n')
        n++;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"count_lines", count_lines, METH_O, count_lines_doc},
    {"parse_xyzrgb", parse_xyzrgb, METH_VARARGS, parse_xyzrgb_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_parse",
    "Strict, GIL-free parser for S3DIS `x y z r g b` annotation lines.",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__parse(void)
{
    return PyModule_Create(&module);
}
