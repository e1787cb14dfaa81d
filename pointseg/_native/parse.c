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
 * parse_prefix(buf, start, xyz, rgb) -> (rows, stop): the same from byte `start`, stopping at
 * the first bad line and returning its offset (len(buf) if none), so that the caller can hand
 * that one line to the robust path and continue after it.
 *
 * count_lines(buf) -> int: the row count to allocate ('\n' bytes, plus an unterminated last
 * line), vectorised.
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

/* Lines of [p, end), which must end in '\n' (the sentinel that stops every scan), into rows
 * i, i+1, ... of xyz / rgb (at most `rows`); `base` is the offset of p in the caller's buffer
 * (for the slow tokens). Parses up to the first line outside the strict format or past the
 * rows: *bad is then that line's start, else NULL. Returns the next row index, or
 * PY_SSIZE_T_MIN when the slow-token list cannot grow. */
static Py_ssize_t parse_region(const char *p, const char *end, Py_ssize_t base, Py_ssize_t i,
                               float *xyz, unsigned char *rgb, Py_ssize_t rows, SlowList *slow,
                               const char **bad)
{
    const char *start = p, *line = p;
#define FAIL_LINE()  \
    do {             \
        *bad = line; \
        return i;    \
    } while (0)
    *bad = NULL;
    while (p < end) {
        line = p;
        if (i >= rows)
            FAIL_LINE();
        float *x = xyz + 3 * i;
        unsigned char *c = rgb + 3 * i;
        for (int j = 0; j < 3; j++) {
            const char *tok = p;
            double v;
            int is_slow;
            p = parse_coord(p, &v, &is_slow);
            if (p == NULL || *p != ' ')
                FAIL_LINE();
            if (is_slow) {
                if (p - tok > MAX_TOKEN)
                    FAIL_LINE();
                if (slow_push(slow, 3 * i + j, base + (tok - start), p - tok) < 0)
                    return PY_SSIZE_T_MIN;
            }
            x[j] = (float)v; /* fast-path values are below 2^53: never overflow float32 */
            p++;
        }
        if ((p = parse_colour(p, c)) == NULL || *p++ != ' ')
            FAIL_LINE();
        if ((p = parse_colour(p, c + 1)) == NULL || *p++ != ' ')
            FAIL_LINE();
        if ((p = parse_colour(p, c + 2)) == NULL || *p++ != '\n')
            FAIL_LINE();
        i++;
    }
#undef FAIL_LINE
    return i;
}

/* Convert the remembered tokens of rows < n with the GIL held. Returns -1, or the first row
 * with a value that is not a finite float32 (the robust path reports that line). */
static Py_ssize_t convert_slow(const char *buf, float *xyz, const SlowList *slow, Py_ssize_t n)
{
    char tmp[MAX_TOKEN + 1];
    for (Py_ssize_t s = 0; s < slow->size; s++) {
        const SlowToken *t = &slow->items[s];
        if (t->index / 3 >= n)
            break; /* a token of the line that stopped the parse: not a row */
        memcpy(tmp, buf + t->start, (size_t)t->len);
        tmp[t->len] = '\0';
        char *stop = NULL;
        /* overflow_exception NULL: an out-of-range value returns +-HUGE_VAL without raising. */
        double v = PyOS_string_to_double(tmp, &stop, NULL);
        if ((v == -1.0 && PyErr_Occurred()) || stop != tmp + t->len) {
            PyErr_Clear();
            return t->index / 3;
        }
        float f = (float)v;
        if (!isfinite(f))
            return t->index / 3;
        xyz[t->index] = f;
    }
    return -1;
}

/* Strict lines of buf from byte `start` (a line start) into rows 0, 1, ... Returns the rows
 * parsed and sets *stop to the offset of the first line outside the format (or past the rows),
 * or to len when every line parsed; PY_SSIZE_T_MIN when out of memory. The GIL is released
 * for the scan and held for the slow tokens. */
static Py_ssize_t parse_lines(const char *buf, Py_ssize_t start, Py_ssize_t len, float *xyz,
                              unsigned char *rgb, Py_ssize_t rows, Py_ssize_t *stop)
{
    SlowList slow = {NULL, 0, 0};
    const char *bad = NULL;
    Py_ssize_t n, body = len;
    Py_BEGIN_ALLOW_THREADS
    /* In place up to the last '\n'; an unterminated last line from a copy ending in '\n'. */
    while (body > start && buf[body - 1] != '\n')
        body--;
    n = parse_region(buf + start, buf + body, start, 0, xyz, rgb, rows, &slow, &bad);
    *stop = bad ? bad - buf : body;
    if (n != PY_SSIZE_T_MIN && bad == NULL && body < len) {
        Py_ssize_t tail = len - body;
        char *copy = PyMem_RawMalloc((size_t)tail + 1);
        if (copy == NULL) {
            n = PY_SSIZE_T_MIN;
        } else {
            memcpy(copy, buf + body, (size_t)tail);
            copy[tail] = '\n';
            n = parse_region(copy, copy + tail + 1, body, n, xyz, rgb, rows, &slow, &bad);
            *stop = bad ? body + (bad - copy) : len;
            PyMem_RawFree(copy);
        }
    }
    Py_END_ALLOW_THREADS
    if (n != PY_SSIZE_T_MIN && slow.size) {
        Py_ssize_t row = convert_slow(buf, xyz, &slow, n);
        if (row >= 0) {
            /* That row's line is bad: the rows from it on are dropped, the parse stops there. */
            Py_ssize_t pos = slow.items[0].start;
            for (Py_ssize_t s = 0; s < slow.size; s++)
                if (slow.items[s].index / 3 == row) {
                    pos = slow.items[s].start;
                    break;
                }
            while (pos > start && buf[pos - 1] != '\n')
                pos--;
            n = row;
            *stop = pos;
        }
    }
    PyMem_RawFree(slow.items);
    return n;
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

/* The three buffers of parse_xyzrgb / parse_prefix; on success returns the row capacity. */
static Py_ssize_t get_buffers(PyObject *buf_obj, PyObject *xyz_obj, PyObject *rgb_obj,
                              Py_buffer *buf, Py_buffer *xyz, Py_buffer *rgb)
{
    if (PyObject_GetBuffer(buf_obj, buf, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (PyObject_GetBuffer(xyz_obj, xyz, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) <
        0) {
        PyBuffer_Release(buf);
        return -1;
    }
    if (PyObject_GetBuffer(rgb_obj, rgb, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) <
        0) {
        PyBuffer_Release(xyz);
        PyBuffer_Release(buf);
        return -1;
    }
    Py_ssize_t rows = xyz->len / 12;
    if (!format_is(xyz, 'f') || xyz->itemsize != 4 || xyz->len % 12) {
        PyErr_SetString(PyExc_ValueError, "xyz must be a C-contiguous float32 buffer of n * 3 items");
        rows = -1;
    } else if (!format_is(rgb, 'B') || rgb->itemsize != 1 || rgb->len != 3 * rows) {
        PyErr_Format(PyExc_ValueError,
                     "rgb must be a C-contiguous uint8 buffer of n * 3 = %zd items (got %zd)",
                     3 * rows, rgb->len);
        rows = -1;
    }
    if (rows < 0) {
        PyBuffer_Release(rgb);
        PyBuffer_Release(xyz);
        PyBuffer_Release(buf);
    }
    return rows;
}

static void release_buffers(Py_buffer *buf, Py_buffer *xyz, Py_buffer *rgb)
{
    PyBuffer_Release(rgb);
    PyBuffer_Release(xyz);
    PyBuffer_Release(buf);
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
    Py_ssize_t stop, rows = get_buffers(buf_obj, xyz_obj, rgb_obj, &buf, &xyz, &rgb);
    if (rows < 0)
        return NULL;
    Py_ssize_t n = parse_lines((const char *)buf.buf, 0, buf.len, (float *)xyz.buf,
                               (unsigned char *)rgb.buf, rows, &stop);
    Py_ssize_t len = buf.len;
    release_buffers(&buf, &xyz, &rgb);
    if (n == PY_SSIZE_T_MIN)
        return PyErr_NoMemory();
    /* Every line before the bad one is a row: its index is n. */
    return PyLong_FromSsize_t(stop == len ? n : -1 - n);
}

PyDoc_STRVAR(parse_prefix_doc,
             "parse_prefix(buf, start, xyz, rgb) -> (rows, stop)\n\n"
             "Parse the strict lines of `buf` from byte `start` (a line start) into rows 0, 1,\n"
             "... of `xyz` / `rgb` (as parse_xyzrgb) up to the first line outside the strict\n"
             "format or past the rows. Returns the rows parsed and the byte offset of that line,\n"
             "or len(buf) when every line parsed. Calling it again after the bad line parses\n"
             "the rest: a file with a few bad lines stays in C except for those lines.");

static PyObject *parse_prefix(PyObject *self, PyObject *args)
{
    PyObject *buf_obj, *xyz_obj, *rgb_obj;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OnOO:parse_prefix", &buf_obj, &start, &xyz_obj, &rgb_obj))
        return NULL;
    Py_buffer buf, xyz, rgb;
    Py_ssize_t stop, rows = get_buffers(buf_obj, xyz_obj, rgb_obj, &buf, &xyz, &rgb);
    if (rows < 0)
        return NULL;
    if (start < 0 || start > buf.len) {
        PyErr_Format(PyExc_ValueError, "start %zd outside the buffer (0..%zd)", start, buf.len);
        release_buffers(&buf, &xyz, &rgb);
        return NULL;
    }
    Py_ssize_t n = parse_lines((const char *)buf.buf, start, buf.len, (float *)xyz.buf,
                               (unsigned char *)rgb.buf, rows, &stop);
    release_buffers(&buf, &xyz, &rgb);
    if (n == PY_SSIZE_T_MIN)
        return PyErr_NoMemory();
    return Py_BuildValue("nn", n, stop);
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
    {"parse_prefix", parse_prefix, METH_VARARGS, parse_prefix_doc},
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
