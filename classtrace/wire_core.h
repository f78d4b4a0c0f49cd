/* classtrace/wire_core.h: the EventBatch wire reader and DESIGN §4's rules, shared by the C
 * modules that read events straight from the wire — classtrace._wire (the validators of the
 * gateway, SDK, sink and the worker's rows) and stream_processors._fold (the worker's hot loop).
 * One reader, so the rules each of them accepts are the same; see _wire.c for why it exists and
 * why it only ever accepts. Include after <Python.h>.
 */
#ifndef CLASSTRACE_WIRE_CORE_H
#define CLASSTRACE_WIRE_CORE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* --- limits: the same numbers as classtrace/validation.py (a unit test compares them) ------ */
#define MAX_FUTURE_S 300.0
#define MAX_AGE_S (7.0 * 86400.0)
#define MAX_PRESENT 500u
#define MAX_DURATION_MS (4u * 3600u * 1000u)
#define MAX_HEARTBEAT_INTERVAL_S 86400u
#define MAX_TEXT 64
#define MAX_ID 64
#define MAX_NANOS 999999999ll
#define MAX_SECONDS ((int64_t)1 << 52) /* exact as a double, far beyond any valid clock */

/* enum values accepted: 1..N (context also 0) */
#define N_DEVICE_KINDS 6
#define N_PHASES 2
#define N_KINDS 9
#define N_BEHAVIORS 8
#define N_VERBS 7
#define N_CONTEXTS 4
#define PHASE_STARTED 1
#define VERB_ANSWERED 1

/* Event field numbers */
enum {
    F_EVENT_ID = 1, F_SCHOOL = 2, F_CLASSROOM = 3, F_DEVICE = 4, F_LESSON_ID = 5,
    F_OCCURRED = 6, F_RECEIVED = 7, F_SEQ = 8, F_DEVICE_KIND = 9,
    F_LESSON = 10, F_TEACHING = 11, F_OBSERVATION = 12, F_TRACE = 13, F_HEARTBEAT = 14,
};

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} span_t;

/* --- wire primitives ------------------------------------------------------------------------ */

static inline int read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return 0;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return 0; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* A field's tag: field number and wire type. Field numbers above 29 bits are refused. */
static inline int read_tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, uint32_t *wt) {
    uint64_t tag;
    if (!read_varint(pp, end, &tag) || tag > 0xFFFFFFFFull) return 0;
    *field = (uint32_t)(tag >> 3);
    *wt = (uint32_t)(tag & 7);
    return *field != 0;
}

static inline int read_len(const uint8_t **pp, const uint8_t *end, span_t *out) {
    uint64_t n;
    if (!read_varint(pp, end, &n) || n > (uint64_t)(end - *pp)) return 0;
    out->p = *pp;
    out->n = (Py_ssize_t)n;
    *pp += n;
    return 1;
}

static inline int read_fixed32(const uint8_t **pp, const uint8_t *end, float *out) {
    if (end - *pp < 4) return 0;
    const uint8_t *p = *pp;
    uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    memcpy(out, &bits, sizeof bits);
    *pp += 4;
    return 1;
}

/* A uint32 field: upb would truncate a wider varint, ClickHouse might not; refuse it. */
static inline int read_u32(const uint8_t **pp, const uint8_t *end, uint32_t *out) {
    uint64_t v;
    if (!read_varint(pp, end, &v) || v > 0xFFFFFFFFull) return 0;
    *out = (uint32_t)v;
    return 1;
}

/* A message's shape: for each field number, the wire type it must come with, plus 1 (so 0 is a
 * field this scanner does not know), and REPEATED for a repeated field. */
enum { VARINT = 0 + 1, LEN = 2 + 1, I32 = 5 + 1, REPEATED = 0x10 };

/* The next field of a message, admitted against its shape: a known number with its wire type,
 * and — unless repeated — not seen before in this message (upb keeps the last of a scalar given
 * twice, or merges a message, and other parsers may not: refuse). */
static inline int next_field(const uint8_t **pp, const uint8_t *end, const uint8_t *shape,
                             uint32_t n_fields, uint32_t *seen, uint32_t *f) {
    uint32_t wt;
    if (!read_tag(pp, end, f, &wt) || *f >= n_fields || (shape[*f] & 0x0F) != wt + 1) return 0;
    if (shape[*f] & REPEATED) return 1;
    if (*seen & (1u << *f)) return 0;
    *seen |= 1u << *f;
    return 1;
}
#define NEXT_FIELD(p, end, shape, seen, f) next_field(&(p), (end), (shape), sizeof(shape), &(seen), &(f))

static const uint8_t TIMESTAMP_SHAPE[] = {[1] = VARINT, [2] = VARINT};
static const uint8_t BEHAVIOR_COUNT_SHAPE[] = {[1] = VARINT, [2] = VARINT};
static const uint8_t TRACE_SHAPE[] = {[1] = LEN, [2] = VARINT, [3] = LEN, [4] = LEN | REPEATED,
                                      [5] = VARINT, [6] = I32, [7] = VARINT, [8] = VARINT};
static const uint8_t OBSERVATION_SHAPE[] = {[1] = VARINT, [2] = VARINT, [3] = LEN | REPEATED};
static const uint8_t TEACHING_SHAPE[] = {[1] = VARINT, [2] = LEN, [3] = VARINT, [4] = I32};
static const uint8_t LESSON_SHAPE[] = {[1] = VARINT, [2] = LEN, [3] = LEN, [4] = LEN, [5] = VARINT};
static const uint8_t HEARTBEAT_SHAPE[] = {[1] = I32, [2] = I32, [3] = VARINT, [4] = LEN, [5] = VARINT};
static const uint8_t EVENT_SHAPE[] = {[1] = LEN, [2] = LEN, [3] = LEN, [4] = LEN, [5] = LEN,
                                      [6] = LEN, [7] = LEN, [8] = VARINT, [9] = VARINT,
                                      [10] = LEN, [11] = LEN, [12] = LEN, [13] = LEN, [14] = LEN};

/* --- strings -------------------------------------------------------------------------------- */

static uint8_t ID_CHAR[256];   /* [A-Za-z0-9_.:-] */
static uint8_t HEX_ANY[256];   /* [0-9a-fA-F] */
static uint8_t HEX_LOWER[256]; /* [0-9a-f] */

static void init_tables(void) {
    for (int c = '0'; c <= '9'; c++) ID_CHAR[c] = HEX_ANY[c] = HEX_LOWER[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) ID_CHAR[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) ID_CHAR[c] = 1;
    for (int c = 'a'; c <= 'f'; c++) HEX_ANY[c] = HEX_LOWER[c] = 1;
    for (int c = 'A'; c <= 'F'; c++) HEX_ANY[c] = 1;
    ID_CHAR['_'] = ID_CHAR['.'] = ID_CHAR[':'] = ID_CHAR['-'] = 1;
}

/* ID_PATTERN: 1–64 characters of [A-Za-z0-9_.:-] (all ASCII, so bytes are characters). */
static inline int id_ok(span_t s) {
    if (s.n < 1 || s.n > MAX_ID) return 0;
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (!ID_CHAR[s.p[i]]) return 0;
    return 1;
}

/* UUID_PATTERN, and not the nil UUID. */
static inline int uuid_ok(span_t s) {
    if (s.n != 36) return 0;
    int nonzero = 0;
    for (int i = 0; i < 36; i++) {
        uint8_t c = s.p[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else {
            if (!HEX_ANY[c]) return 0;
            nonzero |= c != '0';
        }
    }
    return nonzero;
}

/* PSEUDONYM_PATTERN: 'ps_' + 32 lowercase hex digits. */
static inline int pseudonym_ok(span_t s) {
    if (s.n != 35 || s.p[0] != 'p' || s.p[1] != 's' || s.p[2] != '_') return 0;
    for (int i = 3; i < 35; i++)
        if (!HEX_LOWER[s.p[i]]) return 0;
    return 1;
}

/* Valid UTF-8 (as upb requires of proto3 strings); *chars gets the code point count, which is
 * Python's len() of the decoded str. Overlong forms, surrogates and > U+10FFFF are invalid. */
static int utf8_ok(span_t s, Py_ssize_t *chars) {
    const uint8_t *p = s.p, *end = s.p + s.n;
    Py_ssize_t count = 0;
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (end - p < 2 || (p[1] & 0xC0) != 0x80) return 0;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
            if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
            if (c == 0xF4 && p[1] > 0x8F) return 0; /* > U+10FFFF */
            p += 4;
        } else {
            return 0;
        }
        count++;
    }
    *chars = count;
    return 1;
}

static inline int text_ok(span_t s) {
    Py_ssize_t chars;
    return utf8_ok(s, &chars) && chars <= MAX_TEXT;
}

/* --- google.protobuf.Timestamp ---------------------------------------------------------------- */

/* seconds in [0, 2^52] and nanos in [0, 999999999]: every valid clock, exact as doubles. */
static int read_timestamp(span_t m, int64_t *seconds, int64_t *nanos) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    uint64_t v;
    *seconds = *nanos = 0;
    while (p < end) {
        if (!NEXT_FIELD(p, end, TIMESTAMP_SHAPE, seen, f) || !read_varint(&p, end, &v)) return 0;
        if (f == 1) {
            if (v > (uint64_t)MAX_SECONDS) return 0;
            *seconds = (int64_t)v;
        } else {
            if (v > (uint64_t)MAX_NANOS) return 0;
            *nanos = (int64_t)v;
        }
    }
    return 1;
}

/* --- payloads --------------------------------------------------------------------------------- */

/* Where a payload's values go, for callers that extract them (the worker). */
typedef struct {
    span_t student, item, teacher, subject, grade, firmware;
    uint32_t verb, context, latency_ms, kind, duration_ms, phase, enrolled, present, attentive,
        interval_s;
    int correct; /* -1 unset, 0, 1 */
    float score, confidence, battery, cpu;
    uint64_t spool_depth;
    uint32_t counts[N_BEHAVIORS + 1]; /* by behaviour; counts_seen says which were given */
    uint32_t counts_seen;
} payload_t;

static int read_trace(span_t m, payload_t *out) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    span_t s;
    uint64_t v;
    Py_ssize_t chars;
    out->student.n = out->item.n = 0;
    out->verb = out->context = out->latency_ms = 0;
    out->correct = -1;
    out->score = 0.0f;
    while (p < end) {
        if (!NEXT_FIELD(p, end, TRACE_SHAPE, seen, f)) return 0;
        switch (f) {
        case 1: /* student_id */
            if (!read_len(&p, end, &out->student)) return 0;
            break;
        case 3: /* item_id */
            if (!read_len(&p, end, &out->item)) return 0;
            break;
        case 4: /* knowledge_points: free text, but valid UTF-8 */
            if (!read_len(&p, end, &s) || !utf8_ok(s, &chars)) return 0;
            break;
        case 2: /* verb */
            if (!read_varint(&p, end, &v) || v < 1 || v > N_VERBS) return 0;
            out->verb = (uint32_t)v;
            break;
        case 8: /* context (optional) */
            if (!read_varint(&p, end, &v) || v > N_CONTEXTS) return 0;
            out->context = (uint32_t)v;
            break;
        case 5: /* optional bool correct */
            if (!read_varint(&p, end, &v) || v > 1) return 0;
            out->correct = (int)v;
            break;
        case 6: /* float score */
            if (!read_fixed32(&p, end, &out->score)) return 0;
            break;
        case 7: /* uint32 latency_ms */
            if (!read_u32(&p, end, &out->latency_ms)) return 0;
            break;
        }
    }
    if (!pseudonym_ok(out->student)) return 0;
    if (out->verb == 0) return 0;
    if (out->item.n) {
        if (!id_ok(out->item)) return 0;
    } else if (out->verb == VERB_ANSWERED) {
        return 0;
    }
    double score = out->score;
    return score >= 0.0 && score < INFINITY;
}

static int read_observation(span_t m, payload_t *out) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    span_t s;
    out->present = out->attentive = 0;
    out->counts_seen = 0;
    /* the counts are checked against present after the loop: present may come last */
    while (p < end) {
        if (!NEXT_FIELD(p, end, OBSERVATION_SHAPE, seen, f)) return 0;
        if (f != 3) {
            if (!read_u32(&p, end, f == 1 ? &out->present : &out->attentive)) return 0;
            continue;
        }
        if (!read_len(&p, end, &s)) return 0;
        const uint8_t *q = s.p, *qend = s.p + s.n;
        uint32_t inner_seen = 0, g, behavior = 0, count = 0;
        while (q < qend)
            if (!NEXT_FIELD(q, qend, BEHAVIOR_COUNT_SHAPE, inner_seen, g) ||
                !read_u32(&q, qend, g == 1 ? &behavior : &count))
                return 0;
        if (behavior < 1 || behavior > N_BEHAVIORS) return 0;
        if (out->counts_seen & (1u << behavior)) return 0; /* counted twice */
        out->counts_seen |= 1u << behavior;
        out->counts[behavior] = count;
    }
    if (out->present > MAX_PRESENT || out->attentive > out->present) return 0;
    for (uint32_t b = 1; b <= N_BEHAVIORS; b++)
        if ((out->counts_seen & (1u << b)) && out->counts[b] > out->present) return 0;
    return 1;
}

static int read_teaching(span_t m, payload_t *out) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    uint64_t v;
    out->kind = out->duration_ms = 0;
    out->teacher.n = 0;
    out->confidence = 0.0f;
    while (p < end) {
        if (!NEXT_FIELD(p, end, TEACHING_SHAPE, seen, f)) return 0;
        switch (f) {
        case 1:
            if (!read_varint(&p, end, &v) || v < 1 || v > N_KINDS) return 0;
            out->kind = (uint32_t)v;
            break;
        case 2:
            if (!read_len(&p, end, &out->teacher)) return 0;
            break;
        case 3:
            if (!read_u32(&p, end, &out->duration_ms)) return 0;
            break;
        case 4:
            if (!read_fixed32(&p, end, &out->confidence)) return 0;
            break;
        }
    }
    if (out->kind == 0) return 0;
    if (out->teacher.n && !id_ok(out->teacher)) return 0;
    if (out->duration_ms == 0 || out->duration_ms > MAX_DURATION_MS) return 0;
    double c = out->confidence;
    return c >= 0.0 && c <= 1.0;
}

static int read_lesson(span_t m, span_t lesson_id, payload_t *out) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    uint64_t v;
    out->phase = out->enrolled = 0;
    out->teacher.n = out->subject.n = out->grade.n = 0;
    while (p < end) {
        if (!NEXT_FIELD(p, end, LESSON_SHAPE, seen, f)) return 0;
        switch (f) {
        case 1:
            if (!read_varint(&p, end, &v) || v < 1 || v > N_PHASES) return 0;
            out->phase = (uint32_t)v;
            break;
        case 2: case 3: case 4:
            if (!read_len(&p, end, f == 2 ? &out->teacher : f == 3 ? &out->subject : &out->grade))
                return 0;
            break;
        case 5:
            if (!read_u32(&p, end, &out->enrolled)) return 0;
            break;
        }
    }
    if (!lesson_id.n || out->phase == 0) return 0;
    if (out->teacher.n) {
        if (!id_ok(out->teacher)) return 0;
    } else if (out->phase == PHASE_STARTED) {
        return 0;
    }
    return text_ok(out->subject) && text_ok(out->grade) && out->enrolled <= MAX_PRESENT;
}

static int read_heartbeat(span_t m, payload_t *out) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    out->battery = out->cpu = 0.0f;
    out->spool_depth = 0;
    out->interval_s = 0;
    out->firmware.n = 0;
    while (p < end) {
        if (!NEXT_FIELD(p, end, HEARTBEAT_SHAPE, seen, f)) return 0;
        switch (f) {
        case 1: case 2:
            if (!read_fixed32(&p, end, f == 1 ? &out->battery : &out->cpu)) return 0;
            break;
        case 3:
            if (!read_varint(&p, end, &out->spool_depth)) return 0;
            break;
        case 4:
            if (!read_len(&p, end, &out->firmware)) return 0;
            break;
        case 5:
            if (!read_u32(&p, end, &out->interval_s)) return 0;
            break;
        }
    }
    if (out->interval_s == 0 || out->interval_s > MAX_HEARTBEAT_INTERVAL_S) return 0;
    double b = out->battery, c = out->cpu;
    if (!(b >= 0.0 && b <= 100.0) || !(c >= 0.0 && c <= 100.0)) return 0;
    return text_ok(out->firmware);
}

/* --- events ----------------------------------------------------------------------------------- */

typedef struct {
    span_t event_id, school, classroom, device, lesson_id;
    int64_t occ_s, occ_n;
    uint64_t seq, device_kind;
    uint32_t payload; /* field number of the payload (10–14) */
    span_t body;      /* the payload's bytes */
    payload_t pay;
    const uint8_t *start, *end;           /* the event's bytes */
    const uint8_t *recv_start, *recv_end; /* its received_at field, tag included (NULL if none) */
    int64_t recv_s, recv_n;               /* received_at's value when recv_start is set */
} event_t;

/* Parse and validate one event's bytes against the receiver clock now_s: 1 when it passes. */
static int read_event(span_t m, double now_s, event_t *ev) {
    const uint8_t *p = m.p, *end = m.p + m.n;
    uint32_t seen = 0, f;
    span_t s, occurred = {NULL, 0};
    memset(ev, 0, offsetof(event_t, pay));
    ev->start = m.p;
    ev->end = end;
    ev->recv_start = ev->recv_end = NULL;
    while (p < end) {
        const uint8_t *field_start = p;
        if (!NEXT_FIELD(p, end, EVENT_SHAPE, seen, f)) return 0;
        if (f == F_SEQ || f == F_DEVICE_KIND) {
            if (!read_varint(&p, end, f == F_SEQ ? &ev->seq : &ev->device_kind)) return 0;
            continue;
        }
        if (!read_len(&p, end, &s)) return 0;
        if (f >= F_LESSON) {
            if (ev->payload) return 0; /* two payloads: upb keeps the last, refuse */
            ev->payload = f;
            ev->body = s;
            continue;
        }
        switch (f) {
        case F_EVENT_ID: ev->event_id = s; break;
        case F_SCHOOL: ev->school = s; break;
        case F_CLASSROOM: ev->classroom = s; break;
        case F_DEVICE: ev->device = s; break;
        case F_LESSON_ID: ev->lesson_id = s; break;
        case F_OCCURRED: occurred = s; break;
        case F_RECEIVED:
            if (!read_timestamp(s, &ev->recv_s, &ev->recv_n)) return 0;
            ev->recv_start = field_start;
            ev->recv_end = p;
            break;
        }
    }
    if (!uuid_ok(ev->event_id) || !id_ok(ev->school) || !id_ok(ev->classroom) || !id_ok(ev->device))
        return 0;
    if (ev->lesson_id.n && !id_ok(ev->lesson_id)) return 0;
    if (ev->device_kind < 1 || ev->device_kind > N_DEVICE_KINDS) return 0;
    if (!occurred.p || !read_timestamp(occurred, &ev->occ_s, &ev->occ_n)) return 0;
    /* the very arithmetic of read_event: seconds + nanos * 1e-9 - now_s, in doubles */
    double delta = (double)ev->occ_s + (double)ev->occ_n * 1e-9 - now_s;
    if (!(delta >= -MAX_AGE_S && delta <= MAX_FUTURE_S)) return 0;
    span_t body = ev->body;
    switch (ev->payload) {
    case F_TRACE: return read_trace(body, &ev->pay);
    case F_OBSERVATION: return read_observation(body, &ev->pay);
    case F_TEACHING: return read_teaching(body, &ev->pay);
    case F_LESSON: return read_lesson(body, ev->lesson_id, &ev->pay);
    case F_HEARTBEAT: return read_heartbeat(body, &ev->pay);
    default: return 0; /* no payload */
    }
}

static inline int same(span_t s, const char *text, Py_ssize_t n) {
    return s.n == n && (n == 0 || memcmp(s.p, text, (size_t)n) == 0);
}

/* The events of an EventBatch, one at a time: 1 and *m set, 0 at the end, -1 on bad framing. */
static inline int next_event(const uint8_t **pp, const uint8_t *end, span_t *m) {
    uint32_t f, wt;
    if (*pp >= end) return 0;
    if (!read_tag(pp, end, &f, &wt) || f != 1 || wt != 2 || !read_len(pp, end, m)) return -1;
    return 1;
}

/* --- Python strings of what was read ----------------------------------------------------------- */

/* A str of validated ASCII bytes (ids, UUIDs, pseudonyms): no UTF-8 decoding needed. */
static PyObject *ascii_str(span_t s) {
    PyObject *out = PyUnicode_New(s.n, 127);
    if (out && s.n) memcpy(PyUnicode_1BYTE_DATA(out), s.p, (size_t)s.n); /* an empty span may be NULL */
    return out;
}

/* The previous event's value of a field: consecutive events mostly share school, classroom,
 * device, lesson, student and item, so each is a memcmp and a new reference, not a new str. */
typedef struct {
    span_t last;
    PyObject *obj;
} memo_t;

static PyObject *memo_str(memo_t *memo, span_t s) {
    if (memo->obj && memo->last.n == s.n && (s.n == 0 || memcmp(memo->last.p, s.p, (size_t)s.n) == 0))
        return Py_NewRef(memo->obj);
    PyObject *obj = ascii_str(s);
    if (!obj) return NULL;
    Py_XSETREF(memo->obj, Py_NewRef(obj));
    memo->last = s;
    return obj;
}

#endif /* CLASSTRACE_WIRE_CORE_H */
