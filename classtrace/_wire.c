/* classtrace._wire: DESIGN §4 validation of EventBatch wire bytes, without decoding them.
 *
 * Why: every entry point validates every event (gateway, SDK, worker, sink). With upb each
 * field read from Python costs ~70 ns and the rule around it as much again, ~3–4 µs an event,
 * which is most of the CPU the whole stack spends per event (docs/CAPACITY.md). Read from the
 * wire in C, the same rules cost a few tens of nanoseconds an event.
 *
 * The scanner only ever *accepts*. It answers "every event of this batch is well formed and
 * passes every rule" or "not shown here", never a reason: on anything it does not accept —
 * a broken rule, a field it does not know, a field given twice, two payloads, an encoding it
 * does not expect — the caller falls back to classtrace.validation (upb + read_event), whose
 * reasons stay the only ones. So a strict scanner is a correct one; a differential property
 * test holds it to read_event (tests/unit/test_wire.py).
 *
 * Accepted bytes are also what ClickHouse's ProtobufList and every upb consumer parse the same
 * way: known fields only, each at most once, valid UTF-8, bools 0/1, 32-bit fields within 32
 * bits, so the sink may hand them to ClickHouse as they are.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire_core.h"

/* --- Python API ------------------------------------------------------------------------------- */

/* The head every function shares, ``(data, now_s, ...)``: the bytes and the receiver clock.
 * 0 with an exception set; on 1 the caller releases ``buf``. */
static int data_and_clock(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *name,
                          Py_buffer *buf, double *now_s) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, want, nargs);
        return 0;
    }
    *now_s = PyFloat_AsDouble(args[1]);
    if (*now_s == -1.0 && PyErr_Occurred()) return 0;
    return PyObject_GetBuffer(args[0], buf, PyBUF_SIMPLE) == 0;
}

PyDoc_STRVAR(count_valid_doc,
"count_valid(data, now_s, /) -> int\n--\n\n"
"The number of events in EventBatch bytes ``data`` when every one is well formed and passes\n"
"every rule of DESIGN §4 at the receiver clock ``now_s`` (epoch seconds); -1 when not shown\n"
"here (then classtrace.validation decides, with reasons).");

static PyObject *count_valid(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer buf;
    double now_s;
    if (!data_and_clock(args, nargs, 2, "count_valid", &buf, &now_s)) return NULL;
    const uint8_t *p = buf.buf, *end = p + buf.len;
    Py_ssize_t n = 0;
    event_t ev;
    span_t m;
    int more;
    Py_BEGIN_ALLOW_THREADS
    while ((more = next_event(&p, end, &m)) == 1) {
        if (!read_event(m, now_s, &ev)) {
            more = -1;
            break;
        }
        n++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyLong_FromSsize_t(more < 0 ? -1 : n);
}

static inline uint8_t *put_varint(uint8_t *out, uint64_t v) {
    while (v >= 0x80) {
        *out++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *out++ = (uint8_t)v;
    return out;
}

static inline Py_ssize_t varint_size(uint64_t v) {
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

PyDoc_STRVAR(accept_bound_doc,
"accept_bound(data, now_s, school_id, classroom_id, device_id, stamp_seconds, stamp_nanos, /)\n"
"--\n\n"
"The gateway's common case in one pass: when every event of EventBatch bytes ``data`` passes\n"
"(as count_valid) *and* carries the token's school, classroom and device, return\n"
"``(n_events, stamped)``: the same EventBatch with each event's received_at replaced by the\n"
"stamp (both fields explicit). Otherwise None: the caller judges event by event.");

static PyObject *accept_bound(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "accept_bound takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t ns, nc, nd;
    const char *school = PyUnicode_AsUTF8AndSize(args[2], &ns);
    const char *classroom = school ? PyUnicode_AsUTF8AndSize(args[3], &nc) : NULL;
    const char *device = classroom ? PyUnicode_AsUTF8AndSize(args[4], &nd) : NULL;
    if (!device) return NULL;
    unsigned long long st_s = PyLong_AsUnsignedLongLong(args[5]);
    if (st_s == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    unsigned long long st_n = PyLong_AsUnsignedLongLong(args[6]);
    if (st_n == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    if (st_n > (unsigned long long)MAX_NANOS) {
        PyErr_SetString(PyExc_ValueError, "stamp_nanos must be in [0, 999999999]");
        return NULL;
    }

    /* received_at = 7 { seconds = 1; nanos = 2 }, both written even when 0 */
    uint8_t stamp[32], *q = stamp;
    Py_ssize_t inner = 1 + varint_size(st_s) + 1 + varint_size(st_n);
    *q++ = (F_RECEIVED << 3) | 2;
    q = put_varint(q, (uint64_t)inner);
    *q++ = 0x08;
    q = put_varint(q, st_s);
    *q++ = 0x10;
    q = put_varint(q, st_n);
    Py_ssize_t stamp_len = q - stamp;

    Py_buffer buf;
    double now_s;
    if (!data_and_clock(args, nargs, 7, "accept_bound", &buf, &now_s)) return NULL;
    const uint8_t *p = buf.buf, *end = p + buf.len;
    Py_ssize_t n = 0, out_len = 0, cap = 0;
    event_t *evs = NULL;
    span_t m;
    int more, ok = 1;
    Py_BEGIN_ALLOW_THREADS
    while ((more = next_event(&p, end, &m)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 128;
            event_t *grown = PyMem_RawRealloc(evs, (size_t)cap * sizeof *evs);
            if (!grown) {
                ok = -1;
                break;
            }
            evs = grown;
        }
        event_t *ev = &evs[n];
        if (!read_event(m, now_s, ev) || !same(ev->school, school, ns) ||
            !same(ev->classroom, classroom, nc) || !same(ev->device, device, nd)) {
            ok = 0;
            break;
        }
        Py_ssize_t body = (ev->end - ev->start) - (ev->recv_end - ev->recv_start) + stamp_len;
        out_len += 1 + varint_size((uint64_t)body) + body;
        n++;
    }
    if (more < 0) ok = 0;
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (ok < 0) {
        PyErr_NoMemory();
    } else if (!ok) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *stamped = PyBytes_FromStringAndSize(NULL, out_len);
        if (stamped) {
            uint8_t *out = (uint8_t *)PyBytes_AS_STRING(stamped);
            for (Py_ssize_t i = 0; i < n; i++) {
                event_t *ev = &evs[i];
                Py_ssize_t body = (ev->end - ev->start) - (ev->recv_end - ev->recv_start) + stamp_len;
                *out++ = 0x0a;
                out = put_varint(out, (uint64_t)body);
                if (ev->recv_start) {
                    memcpy(out, ev->start, (size_t)(ev->recv_start - ev->start));
                    out += ev->recv_start - ev->start;
                    memcpy(out, ev->recv_end, (size_t)(ev->end - ev->recv_end));
                    out += ev->end - ev->recv_end;
                } else {
                    memcpy(out, ev->start, (size_t)(ev->end - ev->start));
                    out += ev->end - ev->start;
                }
                memcpy(out, stamp, (size_t)stamp_len);
                out += stamp_len;
            }
            result = Py_BuildValue("(nN)", n, stamped);
        }
    }
    PyMem_RawFree(evs);
    PyBuffer_Release(&buf);
    return result;
}

/* --- the worker's columns --------------------------------------------------------------------- */

static PyObject *NAME_TRACE, *NAME_OBSERVATION, *NAME_TEACHING, *NAME_LESSON, *NAME_HEARTBEAT;

enum { M_SCHOOL, M_CLASSROOM, M_DEVICE, M_LESSON, M_STUDENT, M_ITEM, N_MEMOS };

static PyObject *observation_counts(const payload_t *pay) {
    PyObject *counts = PyDict_New();
    if (!counts) return NULL;
    for (uint32_t b = 1; b <= N_BEHAVIORS; b++) {
        if (!(pay->counts_seen & (1u << b))) continue;
        PyObject *k = PyLong_FromUnsignedLong(b), *v = PyLong_FromUnsignedLong(pay->counts[b]);
        int bad = !k || !v || PyDict_SetItem(counts, k, v) < 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (bad) {
            Py_DECREF(counts);
            return NULL;
        }
    }
    return counts;
}

/* One event as the worker's tuple (see scan_events' docstring); NULL with an exception set. */
static PyObject *event_tuple(const event_t *ev, memo_t *memos) {
    PyObject *name, *p0, *p1, *p2, *p3;
    const payload_t *pay = &ev->pay;
    switch (ev->payload) {
    case F_TRACE:
        name = NAME_TRACE;
        p0 = PyBool_FromLong(pay->correct == 1);
        p1 = memo_str(&memos[M_STUDENT], pay->student);
        p2 = PyLong_FromUnsignedLong(pay->verb);
        p3 = memo_str(&memos[M_ITEM], pay->item);
        break;
    case F_OBSERVATION:
        name = NAME_OBSERVATION;
        p0 = PyLong_FromUnsignedLong(pay->present);
        p1 = PyLong_FromUnsignedLong(pay->attentive);
        p2 = observation_counts(pay);
        p3 = Py_NewRef(Py_None);
        break;
    case F_TEACHING:
        name = NAME_TEACHING;
        p0 = PyLong_FromUnsignedLong(pay->kind);
        p1 = PyLong_FromUnsignedLong(pay->duration_ms);
        p2 = Py_NewRef(Py_None);
        p3 = Py_NewRef(Py_None);
        break;
    default: /* lesson, heartbeat: rare; the worker decodes these few with upb */
        name = ev->payload == F_LESSON ? NAME_LESSON : NAME_HEARTBEAT;
        p0 = PyBytes_FromStringAndSize((const char *)ev->start, ev->end - ev->start);
        p1 = Py_NewRef(Py_None);
        p2 = Py_NewRef(Py_None);
        p3 = Py_NewRef(Py_None);
        break;
    }
    PyObject *items[13] = {
        Py_NewRef(name),
        ascii_str(ev->event_id),
        memo_str(&memos[M_SCHOOL], ev->school),
        memo_str(&memos[M_CLASSROOM], ev->classroom),
        memo_str(&memos[M_DEVICE], ev->device),
        memo_str(&memos[M_LESSON], ev->lesson_id),
        PyLong_FromLongLong(ev->occ_s),
        PyLong_FromLongLong(ev->occ_n),
        PyLong_FromUnsignedLongLong(ev->seq),
        p0, p1, p2, p3,
    };
    PyObject *tuple = PyTuple_New(13);
    for (int i = 0; i < 13; i++) {
        if (!items[i] || !tuple) {
            for (int j = 0; j < 13; j++) Py_XDECREF(items[j]);
            Py_XDECREF(tuple);
            return NULL;
        }
    }
    for (int i = 0; i < 13; i++) PyTuple_SET_ITEM(tuple, i, items[i]);
    return tuple;
}

PyDoc_STRVAR(scan_events_doc,
"scan_events(data, now_s, classroom_id, /) -> list[tuple] | None\n--\n\n"
"The worker's reading of EventBatch bytes: when every event passes (as count_valid) and, unless\n"
"``classroom_id`` is None, belongs to that classroom (the record's key), one tuple\n"
"per event, in order: ``(payload, event_id, school_id, classroom_id, device_id, lesson_id,\n"
"seconds, nanos, seq, p0, p1, p2, p3)`` where seconds/nanos are occurred_at's and p0…p3 are\n"
"\n"
"- trace: correct (bool; unset is False), student_id, verb, item_id\n"
"- observation: present, attentive, {behavior: count}, None\n"
"- teaching: kind, duration_ms, None, None\n"
"- lesson, heartbeat: the event's bytes (to decode with upb), None, None, None\n"
"\n"
"None: not shown here (decode, and judge each event with classtrace.validation).");

static PyObject *scan_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer buf;
    double now_s;
    span_t room = {NULL, 0};
    if (nargs == 3 && args[2] != Py_None) {
        const char *text = PyUnicode_AsUTF8AndSize(args[2], &room.n);
        if (!text) return NULL;
        room.p = (const uint8_t *)text;
    }
    if (!data_and_clock(args, nargs, 3, "scan_events", &buf, &now_s)) return NULL;
    const uint8_t *p = buf.buf, *end = p + buf.len;
    PyObject *out = PyList_New(0);
    memo_t memos[N_MEMOS] = {{{NULL, 0}, NULL}};
    event_t ev;
    span_t m;
    int more = 0;
    while (out && (more = next_event(&p, end, &m)) == 1) {
        if (!read_event(m, now_s, &ev) || (room.p && !same(ev.classroom, (const char *)room.p, room.n))) {
            more = -1;
            break;
        }
        PyObject *t = event_tuple(&ev, memos);
        if (!t || PyList_Append(out, t) < 0) Py_CLEAR(out);
        Py_XDECREF(t);
    }
    for (int i = 0; i < N_MEMOS; i++) Py_XDECREF(memos[i].obj);
    PyBuffer_Release(&buf);
    if (out && more < 0) {
        Py_DECREF(out);
        return Py_NewRef(Py_None);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"count_valid", (PyCFunction)(void (*)(void))count_valid, METH_FASTCALL, count_valid_doc},
    {"accept_bound", (PyCFunction)(void (*)(void))accept_bound, METH_FASTCALL, accept_bound_doc},
    {"scan_events", (PyCFunction)(void (*)(void))scan_events, METH_FASTCALL, scan_events_doc},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module) {
    init_tables();
    if (!NAME_TRACE) {
        NAME_TRACE = PyUnicode_InternFromString("trace");
        NAME_OBSERVATION = PyUnicode_InternFromString("observation");
        NAME_TEACHING = PyUnicode_InternFromString("teaching");
        NAME_LESSON = PyUnicode_InternFromString("lesson");
        NAME_HEARTBEAT = PyUnicode_InternFromString("heartbeat");
        if (!NAME_TRACE || !NAME_OBSERVATION || !NAME_TEACHING || !NAME_LESSON || !NAME_HEARTBEAT)
            return -1;
    }
    return PyModule_AddIntConstant(module, "MAX_TEXT", MAX_TEXT) ||
           PyModule_AddIntConstant(module, "MAX_PRESENT", MAX_PRESENT) ||
           PyModule_AddIntConstant(module, "MAX_DURATION_MS", MAX_DURATION_MS) ||
           PyModule_AddIntConstant(module, "MAX_HEARTBEAT_INTERVAL_S", MAX_HEARTBEAT_INTERVAL_S) ||
           PyModule_AddObject(module, "MAX_FUTURE_S", PyFloat_FromDouble(MAX_FUTURE_S)) ||
           PyModule_AddObject(module, "MAX_AGE_S", PyFloat_FromDouble(MAX_AGE_S));
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "classtrace._wire",
    .m_doc = "DESIGN §4 validation of EventBatch wire bytes in C (see classtrace/wire.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__wire(void) { return PyModuleDef_Init(&moduledef); }
