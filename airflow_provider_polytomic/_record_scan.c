/*
 * Optional C speedup for airflow_provider_polytomic.record_logs.RecordCounter.
 *
 * Counting records exactly means reading every byte of a record log: string contents must be
 * skipped (a comma or brace inside a string is not structure) and nesting tracked. In Python
 * the fastest exact route (msgspec parsing proven pieces) costs several times the CPU of the
 * download itself, all of it holding the GIL. These two scanners do the same work at memory
 * speed with the GIL released, so concurrent downloads overlap their counting with I/O.
 *
 * They keep exactly the semantics of the pure-Python structural scanner they replace (which
 * stays as the fallback, and the tests compare the two): they count, they do not validate.
 *
 * Both functions take the scanner state as arguments and return the records found plus the
 * new state, so the Python side owns the state and a chunk is scanned in one call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#define SCAN_SSE2 1
#define CTZ(x) __builtin_ctz(x)
#else
#define SCAN_SSE2 0
#endif

/* JSON whitespace (RFC 8259): space, tab, line feed, carriage return. */
static int
json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What bytes.split() treats as whitespace: space and \t \n \v \f \r. */
static int
line_ws(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* First '"' or '\\' in [p, end), or end. */
static const unsigned char *
string_special(const unsigned char *p, const unsigned char *end)
{
#if SCAN_SSE2
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        if (m)
            return p + CTZ((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

PyDoc_STRVAR(scan_array_doc,
"scan_array(data, in_string, escape, depth, awaiting_first, closed)\n"
"    -> (records, in_string, escape, depth, awaiting_first, closed, trailing)\n\n"
"Scan the next chunk of a JSON array whose opening '[' has been consumed. 'records' counts\n"
"the top-level elements started in the chunk; 'trailing' is true when something other than\n"
"whitespace follows the closing ']'. 'depth' is the nesting inside the current element.");

/* Byte classes outside strings; everything else (values, whitespace, ':') is 0. */
enum { OTHER = 0, QUOTE, OPEN, CLOSE, COMMA };
static unsigned char array_class[256];

static PyObject *
scan_array(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer view;
    int in_string, escape, awaiting_first, closed, trailing = 0;
    Py_ssize_t depth, records = 0;
    if (!PyArg_ParseTuple(args, "y*ppnpp", &view, &in_string, &escape, &depth, &awaiting_first,
                          &closed))
        return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    const unsigned char *end = p + view.len;

    Py_BEGIN_ALLOW_THREADS
    if (awaiting_first && !closed) {
        while (p < end && json_ws(*p))
            p++;
        if (p < end) {
            awaiting_first = 0;
            if (*p == ']') {
                closed = 1;
                p++;
            }
            else
                records++; /* the first element starts here; its first byte is scanned below */
        }
    }
    while (p < end && !closed) {
        if (in_string) {
            if (escape) {
                escape = 0;
                p++;
                continue;
            }
            p = string_special(p, end);
            if (p == end)
                break;
            if (*p++ == '\\')
                escape = 1;
            else
                in_string = 0;
            continue;
        }
        unsigned char cls;
        while ((cls = array_class[*p]) == OTHER) {
            if (++p == end)
                goto done;
        }
        p++;
        switch (cls) {
        case QUOTE:
            in_string = 1;
            break;
        case OPEN:
            depth++;
            break;
        case CLOSE:
            if (depth == 0)
                closed = 1;
            else
                depth--;
            break;
        default: /* COMMA */
            if (depth == 0)
                records++;
            break;
        }
    }
    if (closed) {
        while (p < end && json_ws(*p))
            p++;
        trailing = p < end;
    }
done:
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    return Py_BuildValue("nNNnNNN", records, PyBool_FromLong(in_string), PyBool_FromLong(escape), depth,
                         PyBool_FromLong(awaiting_first), PyBool_FromLong(closed),
                         PyBool_FromLong(trailing));
}

PyDoc_STRVAR(scan_lines_doc,
"scan_lines(data, counted) -> (records, counted)\n\n"
"Count the lines of a JSON lines chunk that hold something other than whitespace. 'counted'\n"
"is true when the current (unterminated) line has already been counted.");

static PyObject *
scan_lines(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer view;
    int counted;
    Py_ssize_t records = 0;
    if (!PyArg_ParseTuple(args, "y*p", &view, &counted))
        return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    const unsigned char *end = p + view.len;

    Py_BEGIN_ALLOW_THREADS
#if SCAN_SSE2
    const __m128i newline = _mm_set1_epi8('\n');
    const __m128i space = _mm_set1_epi8(' ');
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        unsigned nl = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, newline));
        if (!nl && counted) {
            p += 16; /* the usual case: inside a line already counted */
            continue;
        }
        /* \t..\r (9..13) by unsigned range, and space */
        __m128i in_range = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, tab), v),
                                         _mm_cmpeq_epi8(_mm_min_epu8(v, cr), v));
        unsigned ws = (unsigned)_mm_movemask_epi8(_mm_or_si128(in_range, _mm_cmpeq_epi8(v, space)));
        unsigned content = ~ws & 0xFFFFu;
        unsigned from = 0; /* bits below 'from' belong to lines already ended */
        while (nl) {
            unsigned k = (unsigned)CTZ(nl);
            unsigned line = ((1u << k) - 1u) & ~((1u << from) - 1u);
            if (!counted && (content & line))
                records++;
            counted = 0;
            from = k + 1;
            nl &= nl - 1;
        }
        if (!counted && (content & ~((1u << from) - 1u) & 0xFFFFu)) {
            records++;
            counted = 1;
        }
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = *p++;
        if (c == '\n')
            counted = 0;
        else if (!counted && !line_ws(c)) {
            records++;
            counted = 1;
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    return Py_BuildValue("nN", records, PyBool_FromLong(counted));
}

static PyMethodDef methods[] = {
    {"scan_array", scan_array, METH_VARARGS, scan_array_doc},
    {"scan_lines", scan_lines, METH_VARARGS, scan_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_record_scan",
    "C scanners that count JSON array and JSON lines records (optional speedup).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__record_scan(void)
{
    array_class['"'] = QUOTE;
    array_class['['] = array_class['{'] = OPEN;
    array_class[']'] = array_class['}'] = CLOSE;
    array_class[','] = COMMA;
    return PyModule_Create(&module);
}
