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
#include <stdint.h>

/* SCAN_PORTABLE forces the byte-at-a-time paths (the tests build it to check them on x86). */
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SCAN_PORTABLE)
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

typedef struct {
    int in_string, escape, closed;
    Py_ssize_t depth, records;
} ArrayState;

/* One structural byte found outside strings (not a quote). */
static void
array_structure(ArrayState *st, unsigned char cls)
{
    if (cls == OPEN)
        st->depth++;
    else if (cls == CLOSE) {
        if (st->depth == 0)
            st->closed = 1;
        else
            st->depth--;
    }
    else if (st->depth == 0) /* COMMA */
        st->records++;
}

/* Byte-at-a-time scan of [p, end) until end or the array closes; returns where it stopped. */
static const unsigned char *
array_scalar(ArrayState *st, const unsigned char *p, const unsigned char *end)
{
    while (p < end && !st->closed) {
        if (st->in_string) {
            if (st->escape) {
                st->escape = 0;
                p++;
                continue;
            }
            p = string_special(p, end);
            if (p == end)
                break;
            if (*p++ == '\\')
                st->escape = 1;
            else
                st->in_string = 0;
            continue;
        }
        unsigned char cls;
        while ((cls = array_class[*p]) == OTHER) {
            if (++p == end)
                return p;
        }
        p++;
        if (cls == QUOTE)
            st->in_string = 1;
        else
            array_structure(st, cls);
    }
    return p;
}

#if SCAN_SSE2
/* Bit masks of one 64-byte block: backslashes, quotes, and structure (',' '[' ']' '{' '}'). */
static void
masks64(const unsigned char *p, uint64_t *backslash, uint64_t *quote, uint64_t *structure)
{
    const __m128i bs = _mm_set1_epi8('\\');
    const __m128i dq = _mm_set1_epi8('"');
    const __m128i comma = _mm_set1_epi8(',');
    const __m128i case_bit = _mm_set1_epi8(0x20); /* folds '[' onto '{' and ']' onto '}' */
    const __m128i open_brace = _mm_set1_epi8('{');
    const __m128i close_brace = _mm_set1_epi8('}');
    uint64_t b = 0, q = 0, s = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * i));
        __m128i folded = _mm_or_si128(v, case_bit);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, comma),
                                   _mm_or_si128(_mm_cmpeq_epi8(folded, open_brace),
                                                _mm_cmpeq_epi8(folded, close_brace)));
        b |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, bs)) << (16 * i);
        q |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, dq)) << (16 * i);
        s |= (uint64_t)(unsigned)_mm_movemask_epi8(hit) << (16 * i);
    }
    *backslash = b;
    *quote = q;
    *structure = s;
}

/* Bytes escaped by a backslash (simdjson's odd-length-run trick). *escape is the state carried
   between blocks: the first byte of this block is escaped; on return, of the next block. */
static uint64_t
escaped64(uint64_t backslash, int *escape)
{
    const uint64_t even_bits = 0x5555555555555555ULL;
    uint64_t carried = (uint64_t)(*escape != 0);
    backslash &= ~carried; /* an escaped backslash escapes nothing */
    uint64_t follows_escape = (backslash << 1) | carried;
    uint64_t odd_starts = backslash & ~even_bits & ~follows_escape;
    uint64_t even_starts;
    int overflow = __builtin_add_overflow(odd_starts, backslash, &even_starts);
    uint64_t invert = even_starts << 1;
    *escape = overflow;
    return (even_bits ^ invert) & follows_escape;
}

/* Bit i = XOR of bits 0..i: 1 from an opening quote up to (not including) its closing one. */
static uint64_t
prefix_xor(uint64_t x)
{
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}
#endif

static PyObject *
scan_array(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer view;
    int in_string, escape, awaiting_first, closed, trailing = 0;
    Py_ssize_t depth;
    if (!PyArg_ParseTuple(args, "y*ppnpp", &view, &in_string, &escape, &depth, &awaiting_first,
                          &closed))
        return NULL;
    ArrayState st = {in_string, escape, closed, depth, 0};
    const unsigned char *p = (const unsigned char *)view.buf;
    const unsigned char *end = p + view.len;

    Py_BEGIN_ALLOW_THREADS
    if (awaiting_first && !st.closed) {
        while (p < end && json_ws(*p))
            p++;
        if (p < end) {
            awaiting_first = 0;
            if (*p == ']') {
                st.closed = 1;
                p++;
            }
            else
                st.records++; /* the first element starts here; its first byte is scanned below */
        }
    }
    while (p < end && !st.closed) {
#if SCAN_SSE2
        if (end - p >= 64) {
            /* 64 bytes without branching per byte: unescaped quotes give the string mask by
               prefix XOR, and only the structure outside strings is visited. */
            const unsigned char *block = p;
            uint64_t backslash, quote, structure;
            masks64(block, &backslash, &quote, &structure);
            if (backslash || st.escape)
                quote &= ~escaped64(backslash, &st.escape);
            uint64_t inside = prefix_xor(quote);
            if (st.in_string)
                inside = ~inside;
            structure &= ~inside;
            p += 64;
            while (structure) {
                unsigned k = (unsigned)__builtin_ctzll(structure);
                structure &= structure - 1;
                array_structure(&st, array_class[block[k]]);
                if (st.closed) {
                    p = block + k + 1;
                    break;
                }
            }
            if (!st.closed)
                st.in_string = (int)(inside >> 63);
            continue;
        }
#endif
        p = array_scalar(&st, p, end);
    }
    if (st.closed) {
        while (p < end && json_ws(*p))
            p++;
        trailing = p < end;
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    return Py_BuildValue("nNNnNNN", st.records, PyBool_FromLong(st.in_string),
                         PyBool_FromLong(st.escape), st.depth, PyBool_FromLong(awaiting_first),
                         PyBool_FromLong(st.closed), PyBool_FromLong(trailing));
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
