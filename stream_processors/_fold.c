/* stream_processors._fold: the worker's hot loop in C — one record's events counted into their
 * window, lesson and device book, each aggregate through its own dedup.
 *
 * Why: a Faust worker pays ~2 µs an event before it does anything (bench/processors.py, the
 * Faust floor), and the same loop in Python (Processor._apply_events, kept as the reference and
 * the fallback) costs ~3–4 µs more: two SeenEvents updates, a histogram, a set and a dict per
 * event, each a few Python calls. Here each is a few C-API calls on the *same Python objects*
 * (WindowState, LessonState, their SeenEvents, histograms, sets and first-attempt dicts), so
 * persistence, summaries, restores and the Python path are untouched, and a differential
 * property test holds the two paths to identical table values and metrics
 * (tests/unit/test_fold.py).
 *
 * A record is read whole first, with the validator every entry point shares (wire_core.h): if
 * any event is not accepted, nothing is counted and None tells the caller to take the Python
 * path, which dead-letters the bad events with their reasons. What stays in Python: finding or
 * creating a window or lesson (table reads, retention) or a device book, a T segment that does
 * not extend the end of its lesson's union, and lesson lifecycle events — call backs, at most
 * once per event of those kinds.
 *
 * Counters (events, observations, hands, hand_raises, latest_ms) are summed in C and written
 * back to their object when the loop leaves it, also when a call back raises: the counts and
 * the SeenEvents bits set for them always agree.
 *
 * window_outputs writes what a batch's flush writes for each window it touched, its table value
 * and its metric points, from the same objects (a second property test holds them to the
 * Python bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire_core.h"

/* The Python side's constants (a unit test compares them) */
#define MAX_SPAN (1ull << 16)   /* stream_processors.dedup.MAX_SPAN */
#define WINDOW_MS 10000         /* stream_processors.metrics.windows.WINDOW_MS */
#define HIST_SHIFT 1024         /* stream_processors.metrics.attention._SHIFT */
#define BEHAVIOR_HAND_RAISING 1 /* ClassObservation.BEHAVIOR_HAND_RAISING */
#define VERB_HAND_RAISED 5      /* LearningTrace.VERB_HAND_RAISED */
#define T_KIND_MASK 0x7Eu       /* stream_processors.metrics.st_analysis.T_KINDS: kinds 1–6 */
#define MAX_OCCURRED_S 9000000000ll /* occurred_at in ns stays within int64 */

static PyObject *S_SEEN, *S_DEVICES, *S_OTHER, *S_ATTENTION, *S_COUNTS, *S_LESSONS, *S_STUDENTS,
    *S_ANSWERS, *S_ATTEMPTS, *S_SCHOOL_ID, *S_EVENTS, *S_OBSERVATIONS, *S_HANDS, *S_HAND_RAISES,
    *S_LATEST_MS, *S_ADD_TEACHING, *S_ADD_LIFECYCLE, *S_T_UNION, *S_CACHE, *S_CLASSROOM_ID, *S_START_MS;

/* --- SeenEvents: [base, high, bytearray] per device, the rules of stream_processors/dedup.py -- */

/* f"{device_id}\x00{seq}": the key of a seq kept outside the device's bitmap. */
static PyObject *other_key(PyObject *device, uint64_t seq) {
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)seq);
    Py_ssize_t n = PyUnicode_GET_LENGTH(device);
    PyObject *key = PyUnicode_New(n + 1 + nd, 127);
    if (!key) return NULL;
    uint8_t *out = PyUnicode_1BYTE_DATA(key);
    memcpy(out, PyUnicode_1BYTE_DATA(device), (size_t)n); /* device ids are validated ASCII */
    out[n] = 0;
    memcpy(out + n + 1, digits, (size_t)nd);
    return key;
}

/* add-if-new on a set: 1 added, 0 already there, -1 error */
static int set_add_new(PyObject *set, PyObject *key) {
    int has = PySet_Contains(set, key);
    if (has != 0) return has < 0 ? -1 : 0;
    return PySet_Add(set, key) < 0 ? -1 : 1;
}

static int other_add(PyObject *other, PyObject *device, uint64_t seq) {
    PyObject *key = other_key(device, seq);
    if (!key) return -1;
    int r = set_add_new(other, key);
    Py_DECREF(key);
    return r;
}

static int set_long(PyObject *list, Py_ssize_t i, uint64_t v) {
    PyObject *n = PyLong_FromUnsignedLongLong(v);
    return n ? PyList_SetItem(list, i, n) : -1; /* steals n, drops the old value */
}

/* SeenEvents.add for seq > 0: 1 new (now remembered), 0 seen before, -1 error. */
static int seen_add(PyObject *devices, PyObject *other, PyObject *device, uint64_t seq) {
    PyObject *entry = PyDict_GetItemWithError(devices, device);
    if (!entry) {
        if (PyErr_Occurred()) return -1;
        uint64_t base = seq & ~7ull;
        PyObject *bits = PyByteArray_FromStringAndSize(NULL, 1);
        if (!bits) return -1;
        PyByteArray_AS_STRING(bits)[0] = (char)(1u << (seq - base));
        PyObject *fresh = Py_BuildValue("[KKN]", (unsigned long long)base, (unsigned long long)seq, bits);
        if (!fresh) return -1;
        int r = PyDict_SetItem(devices, device, fresh);
        Py_DECREF(fresh);
        return r < 0 ? -1 : 1;
    }
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 3 ||
        !PyByteArray_Check(PyList_GET_ITEM(entry, 2))) {
        PyErr_SetString(PyExc_TypeError, "SeenEvents entry is not [base, high, bytearray]");
        return -1;
    }
    uint64_t base = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(entry, 0));
    uint64_t high = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(entry, 1));
    if (PyErr_Occurred()) return -1;
    PyObject *bits = PyList_GET_ITEM(entry, 2);
    if (base <= seq && seq <= high) {
        uint64_t i = seq - base;
        if ((uint64_t)PyByteArray_GET_SIZE(bits) <= (i >> 3)) {
            PyErr_SetString(PyExc_ValueError, "SeenEvents bitmap shorter than its range");
            return -1;
        }
        uint8_t *byte = (uint8_t *)PyByteArray_AS_STRING(bits) + (i >> 3), mask = (uint8_t)(1u << (i & 7));
        if (*byte & mask) return 0;
        *byte |= mask;
        return 1;
    }
    if (PySet_GET_SIZE(other) > 0) { /* nearly always empty: the key is built only when not */
        PyObject *key = other_key(device, seq);
        if (!key) return -1;
        int has = PySet_Contains(other, key);
        Py_DECREF(key);
        if (has) return has < 0 ? -1 : 0;
    }
    if (seq > high) {
        if (seq - base >= MAX_SPAN) return other_add(other, device, seq);
        uint64_t i = seq - base;
        Py_ssize_t old = PyByteArray_GET_SIZE(bits), need = (Py_ssize_t)(i >> 3) + 1;
        if (need > old) {
            if (PyByteArray_Resize(bits, need) < 0) return -1;
            memset(PyByteArray_AS_STRING(bits) + old, 0, (size_t)(need - old));
        }
        PyByteArray_AS_STRING(bits)[i >> 3] |= (char)(1u << (i & 7));
        return set_long(entry, 1, seq) < 0 ? -1 : 1;
    }
    if (high - seq >= MAX_SPAN) return other_add(other, device, seq);
    uint64_t new_base = seq & ~7ull;
    Py_ssize_t shift = (Py_ssize_t)((base - new_base) >> 3), old = PyByteArray_GET_SIZE(bits);
    if (PyByteArray_Resize(bits, old + shift) < 0) return -1;
    char *data = PyByteArray_AS_STRING(bits);
    memmove(data + shift, data, (size_t)old);
    memset(data, 0, (size_t)shift);
    data[0] |= (char)(1u << (seq - new_base));
    return set_long(entry, 0, new_base) < 0 ? -1 : 1;
}

/* --- an aggregate (window or lesson) the loop is in ---------------------------------------------- */

typedef struct {
    PyObject *state, *key;       /* the WindowState/LessonState and its table key; NULL: none */
    PyObject *devices, *other;   /* its SeenEvents */
    PyObject *hist;              /* attention.counts */
    PyObject *members;           /* window: lessons; lesson: students */
    PyObject *answers;           /* lesson: its FirstAttempts */
    PyObject *attempts;          /* lesson: answers.attempts */
    PyObject *t_union;           /* lesson: its T segments' union, [[start, end], ...] */
    PyObject *school;            /* school_id to write back (the first counted event's), or NULL */
    PyObject *id;                /* a lesson's lesson_id */
    int need_school, dirty, attempts_changed;
    long long events, observations, hands; /* deltas; a lesson's hands are its hand_raises */
    long long latest;                      /* a lesson's latest_ms */
    int latest_changed;
} agg_t;

static PyObject *attr_chain(PyObject *obj, PyObject *a, PyObject *b) {
    PyObject *mid = PyObject_GetAttr(obj, a);
    if (!mid || !b) return mid;
    PyObject *out = PyObject_GetAttr(mid, b);
    Py_DECREF(mid);
    return out;
}

static void agg_clear(agg_t *g) {
    Py_CLEAR(g->state);
    Py_CLEAR(g->key);
    Py_CLEAR(g->devices);
    Py_CLEAR(g->other);
    Py_CLEAR(g->hist);
    Py_CLEAR(g->members);
    Py_CLEAR(g->answers);
    Py_CLEAR(g->attempts);
    Py_CLEAR(g->t_union);
    Py_CLEAR(g->school);
    Py_CLEAR(g->id);
}

/* Enter ``pair`` = (key, state): borrow what the loop updates. 0 with an exception set. */
static int agg_load(agg_t *g, PyObject *pair, int lesson) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "window_of/lesson_of must return (key, state)");
        return 0;
    }
    memset(g, 0, sizeof *g);
    g->key = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    g->state = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    PyObject *school = PyObject_GetAttr(g->state, S_SCHOOL_ID);
    if (!school) return 0;
    g->need_school = PyUnicode_Check(school) && PyUnicode_GET_LENGTH(school) == 0;
    Py_DECREF(school);
    g->devices = attr_chain(g->state, S_SEEN, S_DEVICES);
    g->other = attr_chain(g->state, S_SEEN, S_OTHER);
    g->hist = attr_chain(g->state, S_ATTENTION, S_COUNTS);
    g->members = PyObject_GetAttr(g->state, lesson ? S_STUDENTS : S_LESSONS);
    if (!g->devices || !g->other || !g->hist || !g->members) return 0;
    if (lesson) {
        g->answers = PyObject_GetAttr(g->state, S_ANSWERS);
        g->attempts = g->answers ? PyObject_GetAttr(g->answers, S_ATTEMPTS) : NULL;
        g->t_union = PyObject_GetAttr(g->state, S_T_UNION);
        PyObject *latest = PyObject_GetAttr(g->state, S_LATEST_MS);
        if (!g->attempts || !g->t_union || !latest) {
            Py_XDECREF(latest);
            return 0;
        }
        g->latest = PyLong_AsLongLong(latest);
        Py_DECREF(latest);
        if (g->latest == -1 && PyErr_Occurred()) return 0;
        if (!PyDict_Check(g->attempts)) goto bad;
    }
    if (PyDict_Check(g->devices) && PyAnySet_Check(g->other) && PyDict_Check(g->hist) &&
        PyAnySet_Check(g->members))
        return 1;
bad:
    PyErr_SetString(PyExc_TypeError, "aggregate state of an unexpected shape");
    return 0;
}

static int add_to_attr(PyObject *obj, PyObject *name, long long delta) {
    if (!delta) return 0;
    PyObject *old = PyObject_GetAttr(obj, name);
    if (!old) return -1;
    PyObject *d = PyLong_FromLongLong(delta);
    PyObject *sum = d ? PyNumber_Add(old, d) : NULL;
    Py_DECREF(old);
    Py_XDECREF(d);
    if (!sum) return -1;
    int r = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return r;
}

/* Leave the aggregate: write its counters back, release it. -1 with an exception set (the
 * counters of an earlier failure are kept: this still writes back and releases). */
static int agg_leave(agg_t *g, int lesson) {
    int bad = 0;
    if (g->state) {
        PyObject *type, *value, *trace; /* write back even while unwinding (3.11: no GetRaised) */
        PyErr_Fetch(&type, &value, &trace);
        if (g->school) bad |= PyObject_SetAttr(g->state, S_SCHOOL_ID, g->school) < 0;
        if (lesson) {
            bad |= add_to_attr(g->state, S_HAND_RAISES, g->hands) < 0;
            /* FirstAttempts keeps its JSON and result until attempts change */
            if (g->attempts_changed) bad |= PyObject_SetAttr(g->answers, S_CACHE, Py_None) < 0;
            if (g->latest_changed) {
                PyObject *v = PyLong_FromLongLong(g->latest);
                bad |= !v || PyObject_SetAttr(g->state, S_LATEST_MS, v) < 0;
                Py_XDECREF(v);
            }
        } else {
            bad |= add_to_attr(g->state, S_EVENTS, g->events) < 0;
            bad |= add_to_attr(g->state, S_OBSERVATIONS, g->observations) < 0;
            bad |= add_to_attr(g->state, S_HANDS, g->hands) < 0;
        }
        if (type) {
            if (bad) PyErr_Clear();
            PyErr_Restore(type, value, trace);
            bad = 1;
        }
    }
    agg_clear(g);
    memset(g, 0, sizeof *g);
    return bad ? -1 : 0;
}

/* The first counted event of an aggregate marks it dirty and names its school. */
static int agg_counted(agg_t *g, PyObject *dirty, PyObject *school) {
    if (!g->dirty) {
        if (PySet_Add(dirty, g->key) < 0) return -1;
        g->dirty = 1;
    }
    if (g->need_school) {
        g->school = Py_NewRef(school);
        g->need_school = 0;
    }
    return 0;
}

/* AttentionHistogram.add */
static int hist_add(PyObject *hist, uint32_t attentive, uint32_t present) {
    if (present == 0) return 0;
    PyObject *key = PyLong_FromUnsignedLong((unsigned long)attentive * HIST_SHIFT + present);
    if (!key) return -1;
    PyObject *now = PyDict_GetItemWithError(hist, key);
    long long n = 0;
    if (now) n = PyLong_AsLongLong(now);
    PyObject *v = (n == -1 || PyErr_Occurred()) ? NULL : PyLong_FromLongLong(n + 1);
    int r = v ? PyDict_SetItem(hist, key, v) : -1;
    Py_DECREF(key);
    Py_XDECREF(v);
    return r;
}

/* FirstAttempts.offer: the smallest (occurred_ns, event_id) per "student|item" wins.
 * 1 it is now the first attempt, 0 not, -1 error. */
static int offer(PyObject *attempts, span_t student, span_t item, long long ns, PyObject *event_id,
                 int correct) {
    PyObject *key = PyUnicode_New(student.n + 1 + item.n, 127);
    if (!key) return -1;
    uint8_t *out = PyUnicode_1BYTE_DATA(key);
    memcpy(out, student.p, (size_t)student.n);
    out[student.n] = '|';
    memcpy(out + student.n + 1, item.p, (size_t)item.n);
    PyObject *cur = PyDict_GetItemWithError(attempts, key);
    int r = 0;
    if (cur) {
        if (!PyTuple_Check(cur) || PyTuple_GET_SIZE(cur) != 3) {
            PyErr_SetString(PyExc_TypeError, "an attempt is not (occurred_ns, event_id, correct)");
            r = -1;
            goto done;
        }
        long long cur_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(cur, 0));
        if (cur_ns == -1 && PyErr_Occurred()) { r = -1; goto done; }
        if (cur_ns < ns) goto done;
        if (cur_ns == ns) {
            int cmp = PyUnicode_Compare(PyTuple_GET_ITEM(cur, 1), event_id);
            if (cmp == -1 && PyErr_Occurred()) { r = -1; goto done; }
            if (cmp <= 0) goto done;
        }
    } else if (PyErr_Occurred()) {
        r = -1;
        goto done;
    }
    PyObject *value = Py_BuildValue("(LOi)", ns, event_id, correct);
    r = value && PyDict_SetItem(attempts, key, value) == 0 ? 1 : -1;
    Py_XDECREF(value);
done:
    Py_DECREF(key);
    return r;
}

/* --- the loop ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject *window_of, *lesson_of, *book_of, *dirty_windows, *dirty_lessons;
} hooks_t;

typedef struct {
    long long counted, duplicates, late, mark;
} tally_t;

enum { M_SCHOOL, M_DEVICE, M_LESSON, M_STUDENT, N_MEMOS };

static PyObject *utf8_str(span_t s) { return PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict"); }

/* st_analysis.add_interval's common case, a segment at or after the union's last one (a camera
 * reports in time order): append it, or extend the last interval it starts in or touches.
 * 1 done, 0 not that case (the caller merges in Python), -1 error. */
static int t_extend(PyObject *t_union, long long start, long long end) {
    if (!PyList_CheckExact(t_union)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(t_union);
    if (n > 0) {
        PyObject *last = PyList_GET_ITEM(t_union, n - 1);
        if (!PyList_CheckExact(last) || PyList_GET_SIZE(last) != 2) return 0;
        long long last_start = PyLong_AsLongLong(PyList_GET_ITEM(last, 0));
        long long last_end = PyLong_AsLongLong(PyList_GET_ITEM(last, 1));
        if (PyErr_Occurred()) return -1;
        if (start <= last_end) { /* starts in or touches the last interval */
            if (start < last_start) return 0; /* reaches back before it */
            if (end <= last_end) return 1;    /* already covered */
            PyObject *v = PyLong_FromLongLong(end);
            return v && PyList_SetItem(last, 1, v) == 0 ? 1 : -1;
        }
    }
    /* the first interval, or one after the last, not touching it */
    PyObject *seg = Py_BuildValue("[LL]", start, end);
    int r = seg ? PyList_Append(t_union, seg) : -1;
    Py_XDECREF(seg);
    return r < 0 ? -1 : 1;
}

/* Call ``obj.name(*args)`` with args built from ``fmt``; 0, or -1 with an exception set. */
static int call_method(PyObject *obj, PyObject *name, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    PyObject *args = Py_VaBuildValue(fmt, va);
    va_end(va);
    if (!args) return -1;
    PyObject *method = PyObject_GetAttr(obj, name);
    PyObject *res = method ? PyObject_Call(method, args, NULL) : NULL;
    Py_XDECREF(method);
    Py_DECREF(args);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* The event's event_id as a str, made on first use (most events need none): borrowed. */
static PyObject *event_id_of(const event_t *ev, PyObject **slot) {
    if (!*slot) *slot = ascii_str(ev->event_id);
    return *slot;
}

/* SeenEvents.add: by (device, seq), or by event_id when seq is 0. */
static int seen_event(agg_t *g, const event_t *ev, PyObject *device, PyObject **event_id) {
    if (ev->seq) return seen_add(g->devices, g->other, device, ev->seq);
    PyObject *id = event_id_of(ev, event_id);
    return id ? set_add_new(g->other, id) : -1;
}

/* A counted event's payload, into its lesson (LessonState.add_trace and its attention). */
static int lesson_payload(const event_t *ev, agg_t *les, memo_t *memos, long long occurred,
                          PyObject **id_slot) {
    const payload_t *pay = &ev->pay;
    PyObject *event_id = ev->payload == F_TRACE && pay->verb != VERB_ANSWERED ? NULL
                         : ev->payload == F_OBSERVATION || ev->payload == F_TEACHING ? NULL
                         : event_id_of(ev, id_slot);
    if (!event_id && PyErr_Occurred()) return -1;
    switch (ev->payload) {
    case F_TRACE: {
        PyObject *student = memo_str(&memos[M_STUDENT], pay->student);
        int bad = !student || PySet_Add(les->members, student) < 0;
        Py_XDECREF(student);
        if (bad) return -1;
        if (pay->verb == VERB_ANSWERED) {
            int first = offer(les->attempts, pay->student, pay->item, ev->occ_s * 1000000000ll + ev->occ_n,
                              event_id, pay->correct == 1);
            if (first < 0) return -1;
            les->attempts_changed |= first;
            return 0;
        }
        if (pay->verb == VERB_HAND_RAISED) les->hands++;
        return 0;
    }
    case F_OBSERVATION:
        return hist_add(les->hist, pay->attentive, pay->present);
    case F_TEACHING:
        if (!(T_KIND_MASK & (1u << pay->kind))) return 0; /* not a T kind: add_teaching adds nothing */
        switch (t_extend(les->t_union, occurred, occurred + (long long)pay->duration_ms)) {
        case 1: return 0;
        case -1: return -1;
        default: /* not at the end of the union: the Python merge */
            return call_method(les->state, S_ADD_TEACHING, "(kLk)", (unsigned long)pay->kind, occurred,
                               (unsigned long)pay->duration_ms);
        }
    case F_LESSON: {
        PyObject *teacher = ascii_str(pay->teacher), *subject = utf8_str(pay->subject),
                 *grade = utf8_str(pay->grade);
        int r = teacher && subject && grade
                    ? call_method(les->state, S_ADD_LIFECYCLE, "(kLONNNk)", (unsigned long)pay->phase,
                                  occurred, event_id, teacher, subject, grade, (unsigned long)pay->enrolled)
                    : -1;
        if (r < 0 && !(teacher && subject && grade)) {
            Py_XDECREF(teacher);
            Py_XDECREF(subject);
            Py_XDECREF(grade);
        }
        return r;
    }
    default:
        return 0;
    }
}

/* The classroom's device book, asked for (book_of) at the record's first heartbeat. */
typedef struct {
    PyObject *devices, *offline, *changed; /* DeviceBook.devices, .offline; the changed set */
} book_t;

static int book_load(book_t *b, PyObject *book_of) {
    PyObject *parts = PyObject_CallNoArgs(book_of);
    if (!parts) return -1;
    int ok = PyTuple_Check(parts) && PyTuple_GET_SIZE(parts) == 3 && PyDict_Check(PyTuple_GET_ITEM(parts, 0)) &&
             PyAnySet_Check(PyTuple_GET_ITEM(parts, 1)) && PyAnySet_Check(PyTuple_GET_ITEM(parts, 2));
    if (ok) {
        b->devices = Py_NewRef(PyTuple_GET_ITEM(parts, 0));
        b->offline = Py_NewRef(PyTuple_GET_ITEM(parts, 1));
        b->changed = Py_NewRef(PyTuple_GET_ITEM(parts, 2));
    } else {
        PyErr_SetString(PyExc_TypeError, "book_of must return (devices dict, offline set, changed set)");
    }
    Py_DECREF(parts);
    return ok ? 0 : -1;
}

/* DeviceBook.take: keep the heartbeat if it is the device's latest by (occurred, event_id).
 * 1 taken, 0 not, -1 error. */
static int heartbeat(const event_t *ev, book_t *b, PyObject *book_of, PyObject *device, long long occurred,
                     PyObject *event_id, PyObject *school) {
    const payload_t *pay = &ev->pay;
    if (!b->devices && book_load(b, book_of) < 0) return -1;
    PyObject *cur = PyDict_GetItemWithError(b->devices, device);
    if (cur) {
        if (!PyList_Check(cur) || PyList_GET_SIZE(cur) < 2) {
            PyErr_SetString(PyExc_TypeError, "a device book entry is not a list");
            return -1;
        }
        long long cur_occurred = PyLong_AsLongLong(PyList_GET_ITEM(cur, 0));
        if (cur_occurred == -1 && PyErr_Occurred()) return -1;
        if (cur_occurred > occurred) return 0;
        if (cur_occurred == occurred) {
            int cmp = PyUnicode_Compare(PyList_GET_ITEM(cur, 1), event_id);
            if (cmp == -1 && PyErr_Occurred()) return -1;
            if (cmp >= 0) return 0;
        }
    } else if (PyErr_Occurred()) {
        return -1;
    }
    /* received_at is the ingest clock, comparable with the worker's; without it, the device's */
    long long seen = ev->recv_start ? ev->recv_s * 1000 + ev->recv_n / 1000000 : occurred;
    PyObject *entry = Py_BuildValue("[LOLkdKKO]", occurred, event_id, seen, (unsigned long)pay->interval_s,
                                    (double)pay->battery, (unsigned long long)pay->spool_depth,
                                    (unsigned long long)ev->device_kind, school);
    if (!entry) return -1;
    int r = PyDict_SetItem(b->devices, device, entry);
    Py_DECREF(entry);
    if (r < 0 || PySet_Discard(b->offline, device) < 0 || PySet_Add(b->changed, device) < 0) return -1;
    return 1;
}

/* Enter the window of ``start`` unless already in it (None from window_of: evicted, late). */
static int enter_window(agg_t *win, const hooks_t *h, long long start, long long mark, long long *current) {
    if (start == *current) return 0;
    if (agg_leave(win, 0) < 0) return -1;
    *current = start;
    PyObject *pair = PyObject_CallFunction(h->window_of, "LL", start, mark);
    if (!pair) return -1;
    int ok = pair == Py_None || agg_load(win, pair, 0);
    Py_DECREF(pair);
    return ok ? 0 : -1;
}

static int enter_lesson(agg_t *les, const hooks_t *h, PyObject *lesson_id) {
    if (les->state && les->id == lesson_id) return 0; /* memo_str: same text, same object */
    if (les->state) {
        int same = PyUnicode_Compare(les->id, lesson_id);
        if (same == -1 && PyErr_Occurred()) return -1;
        if (same == 0) return 0;
    }
    if (agg_leave(les, 1) < 0) return -1;
    PyObject *pair = PyObject_CallOneArg(h->lesson_of, lesson_id);
    if (!pair) return -1;
    int ok = agg_load(les, pair, 1);
    Py_DECREF(pair);
    if (!ok) return -1;
    les->id = Py_NewRef(lesson_id);
    return 0;
}

/* One valid event, as Processor._apply_events counts it: 0, or -1 with an exception set. */
static int fold_event(const event_t *ev, const hooks_t *h, memo_t *memos, agg_t *win, agg_t *les,
                      book_t *book, long long *window_start, tally_t *t) {
    const payload_t *pay = &ev->pay;
    if (ev->occ_s > MAX_OCCURRED_S) {
        PyErr_SetString(PyExc_ValueError, "occurred_at too far in the future for ns arithmetic");
        return -1;
    }
    long long occurred = ev->occ_s * 1000 + ev->occ_n / 1000000;
    int fresh = 0, r = -1, n;
    t->counted++;
    if (occurred > t->mark) t->mark = occurred;
    PyObject *school = memo_str(&memos[M_SCHOOL], ev->school);
    PyObject *device = memo_str(&memos[M_DEVICE], ev->device);
    PyObject *lesson_id = memo_str(&memos[M_LESSON], ev->lesson_id);
    PyObject *event_id = NULL; /* made when needed: event_id_of */
    if (!school || !device || !lesson_id) goto out;
    if (enter_window(win, h, occurred - occurred % WINDOW_MS, t->mark, window_start) < 0) goto out;
    if (!win->state) {
        t->late++;
    } else {
        n = seen_event(win, ev, device, &event_id);
        if (n < 0) goto out;
        if (n) {
            fresh = 1;
            if (agg_counted(win, h->dirty_windows, school) < 0) goto out;
            win->events++;
            if (ev->lesson_id.n && PySet_Add(win->members, lesson_id) < 0) goto out;
            if (ev->payload == F_OBSERVATION) {
                win->observations++;
                if (hist_add(win->hist, pay->attentive, pay->present) < 0) goto out;
                if (pay->counts_seen & (1u << BEHAVIOR_HAND_RAISING))
                    win->hands += pay->counts[BEHAVIOR_HAND_RAISING];
            }
        }
    }
    if (ev->lesson_id.n) {
        if (enter_lesson(les, h, lesson_id) < 0) goto out;
        n = seen_event(les, ev, device, &event_id);
        if (n < 0) goto out;
        if (n) {
            fresh = 1;
            if (agg_counted(les, h->dirty_lessons, school) < 0) goto out;
            if (occurred > les->latest) {
                les->latest = occurred;
                les->latest_changed = 1;
            }
            if (lesson_payload(ev, les, memos, occurred, &event_id) < 0) goto out;
        }
    }
    if (ev->payload == F_HEARTBEAT) {
        if (!event_id_of(ev, &event_id)) goto out;
        n = heartbeat(ev, book, h->book_of, device, occurred, event_id, school);
        if (n < 0) goto out;
        fresh |= n;
    }
    if (!fresh) t->duplicates++;
    r = 0;
out:
    Py_XDECREF(school);
    Py_XDECREF(device);
    Py_XDECREF(lesson_id);
    Py_XDECREF(event_id);
    return r;
}

/* Every event of the batch, read and validated before any is counted; NULL: not all accepted. */
static event_t *read_all(const uint8_t *p, const uint8_t *end, double now_s, span_t room, Py_ssize_t *count) {
    Py_ssize_t n = 0, cap = 128;
    event_t *evs = PyMem_Malloc((size_t)cap * sizeof *evs);
    span_t m;
    int more;
    if (!evs) return NULL;
    while ((more = next_event(&p, end, &m)) == 1) {
        if (n == cap) {
            event_t *grown = PyMem_Realloc(evs, (size_t)(cap *= 2) * sizeof *evs);
            if (!grown) break;
            evs = grown;
        }
        if (!read_event(m, now_s, &evs[n]) || !same(evs[n].classroom, (const char *)room.p, room.n)) break;
        n++;
    }
    if (more != 0) {
        PyMem_Free(evs);
        return NULL;
    }
    *count = n;
    return evs;
}

PyDoc_STRVAR(fold_events_doc,
"fold_events(data, now_s, classroom_id, mark_ms, window_of, lesson_of, book_of,\n"
"            dirty_windows, dirty_lessons, /) -> (counted, duplicates, late, mark_ms) | None\n--\n\n"
"Count the events of EventBatch bytes ``data`` (one record of ``classroom_id``) as\n"
"Processor._apply_events does, on the processor's own state objects. ``window_of(start_ms,\n"
"mark_ms)`` returns ``(key, WindowState)`` or None (evicted), ``lesson_of(lesson_id)`` returns\n"
"``(key, LessonState)``, ``book_of()`` returns the classroom's DeviceBook parts\n"
"``(devices, offline, changed)`` (asked at the first heartbeat; a taken heartbeat's device joins\n"
"``changed``); the keys of aggregates that counted an event join the dirty sets. ``mark_ms`` is the\n"
"classroom's watermark before, the one returned after.\n"
"\n"
"None: some event is not accepted by the scanner (or not the classroom's); nothing was\n"
"counted — take the Python path.");

static PyObject *fold_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "fold_events takes 9 arguments");
        return NULL;
    }
    hooks_t h = {args[4], args[5], args[6], args[7], args[8]};
    if (!PyAnySet_Check(h.dirty_windows) || !PyAnySet_Check(h.dirty_lessons)) {
        PyErr_SetString(PyExc_TypeError, "dirty_windows and dirty_lessons must be sets");
        return NULL;
    }
    span_t room;
    const char *text = PyUnicode_AsUTF8AndSize(args[2], &room.n);
    if (!text) return NULL;
    room.p = (const uint8_t *)text;
    double now_s = PyFloat_AsDouble(args[1]);
    tally_t t = {0, 0, 0, PyLong_AsLongLong(args[3])};
    if (PyErr_Occurred()) return NULL;
    Py_buffer buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t n = 0;
    event_t *evs = read_all(buf.buf, (const uint8_t *)buf.buf + buf.len, now_s, room, &n);
    if (!evs) {
        PyBuffer_Release(&buf);
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    memo_t memos[N_MEMOS] = {{{NULL, 0}, NULL}};
    agg_t win, les;
    memset(&win, 0, sizeof win);
    memset(&les, 0, sizeof les);
    book_t book = {NULL, NULL, NULL};
    long long window_start = LLONG_MIN;
    int bad = 0;
    for (Py_ssize_t i = 0; i < n && !bad; i++)
        bad = fold_event(&evs[i], &h, memos, &win, &les, &book, &window_start, &t) < 0;
    bad |= agg_leave(&win, 0) < 0;
    bad |= agg_leave(&les, 1) < 0;
    Py_XDECREF(book.devices);
    Py_XDECREF(book.offline);
    Py_XDECREF(book.changed);
    for (int i = 0; i < N_MEMOS; i++) Py_XDECREF(memos[i].obj);
    PyMem_Free(evs);
    PyBuffer_Release(&buf);
    if (bad) return NULL;
    return Py_BuildValue("(LLLL)", t.counted, t.duplicates, t.late, t.mark);
}

/* --- A window's table value and metric points, written once per batch --------------------- */
/* WindowState.to_bytes (orjson, byte for byte) and WindowState.add_points (the MetricUpdate
 * entries of a MetricBatch, as upb serialises them): ~25 µs a window in Python, a fifth of the
 * worker's time on bench/processors.py's records, where each record fills two new windows. */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} out_t;

static int out_room(out_t *o, Py_ssize_t more) {
    if (o->n + more <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 512;
    while (cap < o->n + more) cap *= 2;
    char *p = PyMem_Realloc(o->p, (size_t)cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static int out_put(out_t *o, const void *s, Py_ssize_t n) {
    if (out_room(o, n) < 0) return -1;
    memcpy(o->p + o->n, s, (size_t)n);
    o->n += n;
    return 0;
}

static int out_lit(out_t *o, const char *s) { return out_put(o, s, (Py_ssize_t)strlen(s)); }

/* Decimal digits of x (as orjson and %lld write them). */
static int out_ll(out_t *o, long long x) {
    char digits[24], *end = digits + sizeof digits, *w = end;
    unsigned long long u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
    do {
        *--w = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0) *--w = '-';
    return out_put(o, w, end - w);
}

/* An int as orjson writes it; beyond int64 (seqs are uint64) through its str(). */
static int out_int(out_t *o, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (!overflow) return out_ll(o, x);
    PyObject *text = PyObject_Str(v);
    if (!text) return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = u ? out_put(o, u, n) : -1;
    Py_DECREF(text);
    return rc;
}

/* A JSON string as orjson writes it: UTF-8 as is; ", \ and control characters escaped. */
static int out_str(out_t *o, PyObject *s) {
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "a window's JSON expects str here");
        return -1;
    }
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (!u || out_room(o, 2 + 6 * n) < 0) return -1;
    char *w = o->p + o->n;
    *w++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        default: w += sprintf(w, "u%04x", c);
        }
    }
    *w++ = '"';
    o->n = w - o->p;
    return 0;
}

/* format(int.from_bytes(bits, "little"), "x"): the bitmap as SeenEvents.to_obj writes it. */
static int out_hex_bits(out_t *o, PyObject *bits) {
    if (!PyByteArray_Check(bits)) {
        PyErr_SetString(PyExc_TypeError, "a SeenEvents bitmap must be a bytearray");
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = (const unsigned char *)PyByteArray_AS_STRING(bits);
    Py_ssize_t top = PyByteArray_GET_SIZE(bits) - 1;
    while (top >= 0 && !b[top]) top--;
    if (top < 0) return out_lit(o, "\"0\"");
    if (out_room(o, 2 * top + 4) < 0) return -1;
    char *w = o->p + o->n;
    *w++ = '"';
    if (b[top] >> 4) *w++ = hex[b[top] >> 4];
    *w++ = hex[b[top] & 15];
    for (Py_ssize_t i = top - 1; i >= 0; i--) {
        *w++ = hex[b[i] >> 4];
        *w++ = hex[b[i] & 15];
    }
    *w++ = '"';
    o->n = w - o->p;
    return 0;
}

/* sorted(iterable) of str as a JSON array; the list is returned (new reference) for its min. */
static PyObject *out_sorted_strs(out_t *o, PyObject *iterable) {
    PyObject *list = PySequence_List(iterable);
    if (!list || PyList_Sort(list) < 0 || out_lit(o, "[") < 0) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
        if ((i && out_lit(o, ",") < 0) || out_str(o, PyList_GET_ITEM(list, i)) < 0) goto fail;
    if (out_lit(o, "]") < 0) goto fail;
    return list;
fail:
    Py_XDECREF(list);
    return NULL;
}

typedef struct {
    long long key, n;
} pair_t;

static int pair_cmp(const void *a, const void *b) {
    long long x = ((const pair_t *)a)->key, y = ((const pair_t *)b)->key;
    return (x > y) - (x < y);
}

/* The histogram's (key, count) pairs, sorted by key (AttentionHistogram.to_list). */
static pair_t *hist_pairs(PyObject *counts, Py_ssize_t *n) {
    if (!PyDict_Check(counts)) {
        PyErr_SetString(PyExc_TypeError, "AttentionHistogram.counts must be a dict");
        return NULL;
    }
    *n = PyDict_GET_SIZE(counts);
    pair_t *pairs = PyMem_Malloc(sizeof(pair_t) * (size_t)(*n ? *n : 1));
    if (!pairs) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    while (PyDict_Next(counts, &pos, &k, &v)) {
        pairs[i].key = PyLong_AsLongLong(k);
        pairs[i].n = PyLong_AsLongLong(v);
        if (PyErr_Occurred()) {
            PyMem_Free(pairs);
            return NULL;
        }
        i++;
    }
    qsort(pairs, (size_t)*n, sizeof(pair_t), pair_cmp);
    return pairs;
}

/* math.fsum (CPython's partials algorithm, finite terms) of the histogram's attentive/present
 * terms, divided by the number of observations: AttentionHistogram.rate, bit for bit. */
static int hist_rate(const pair_t *pairs, Py_ssize_t n, double *rate) {
    double small[64], *p = small;
    Py_ssize_t np = 0, cap = 64;
    long long total = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        long long attentive = pairs[k].key / HIST_SHIFT, present = pairs[k].key % HIST_SHIFT;
        double x = (double)(pairs[k].n * attentive) / (double)present;
        total += pairs[k].n;
        Py_ssize_t i = 0;
        for (Py_ssize_t j = 0; j < np; j++) {
            double y = p[j];
            if (fabs(x) < fabs(y)) {
                double t = x;
                x = y;
                y = t;
            }
            double hi = x + y, lo = y - (hi - x);
            if (lo != 0.0) p[i++] = lo;
            x = hi;
        }
        np = i;
        if (x != 0.0) {
            if (np == cap) {
                double *bigger = PyMem_Malloc(sizeof(double) * (size_t)(cap * 2));
                if (!bigger) {
                    if (p != small) PyMem_Free(p);
                    PyErr_NoMemory();
                    return -1;
                }
                memcpy(bigger, p, sizeof(double) * (size_t)np);
                if (p != small) PyMem_Free(p);
                p = bigger;
                cap *= 2;
            }
            p[np++] = x;
        }
    }
    double hi = 0.0;
    if (np > 0) {
        double lo = 0.0;
        hi = p[--np];
        while (np > 0) {
            double x = hi, y = p[--np];
            hi = x + y;
            lo = y - (hi - x);
            if (lo != 0.0) break;
        }
        if (np > 0 && ((lo < 0.0 && p[np - 1] < 0.0) || (lo > 0.0 && p[np - 1] > 0.0))) {
            double y = lo * 2.0, x = hi + y;
            if (y == x - hi) hi = x;
        }
    }
    if (p != small) PyMem_Free(p);
    *rate = hi / (double)total;
    return 0;
}

static int out_varint(out_t *o, uint64_t v) {
    if (out_room(o, 10) < 0) return -1;
    while (v >= 0x80) {
        o->p[o->n++] = (char)(v | 0x80);
        v >>= 7;
    }
    o->p[o->n++] = (char)v;
    return 0;
}

static int varint_len(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static int out_field_str(out_t *o, int tag, span_t s) {
    if (!s.n) return 0; /* proto3: an empty string is not written */
    return out_varint(o, (uint64_t)tag) || out_varint(o, (uint64_t)s.n) || out_put(o, s.p, s.n);
}

/* google.protobuf.Timestamp of ms as a set submessage field (seconds, nanos when not 0). */
static int out_timestamp(out_t *o, int tag, long long ms) {
    long long s = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        s -= 1;
        rem += 1000;
    }
    uint64_t nanos = (uint64_t)(rem * 1000000);
    int len = (s ? 1 + varint_len((uint64_t)s) : 0) + (nanos ? 1 + varint_len(nanos) : 0);
    if (out_varint(o, (uint64_t)tag) || out_varint(o, (uint64_t)len)) return -1;
    if (s && (out_varint(o, 0x08) || out_varint(o, (uint64_t)s))) return -1;
    if (nanos && (out_varint(o, 0x10) || out_varint(o, nanos))) return -1;
    return 0;
}

/* One MetricBatch.points entry (field 1) holding a MetricUpdate, written in place: the
 * MetricUpdate goes after a one-byte length, moved along if its length needs more bytes. */
static int out_point(out_t *o, long long start_ms, span_t school, span_t room, span_t lesson, const char *metric,
                     double value) {
    if (out_varint(o, 0x0A) || out_room(o, 1) < 0) return -1;
    Py_ssize_t at = o->n++;
    span_t name = {(const uint8_t *)metric, (Py_ssize_t)strlen(metric)};
    if (out_timestamp(o, 0x0A, start_ms) || out_timestamp(o, 0x12, start_ms + WINDOW_MS) ||
        out_field_str(o, 0x1A, school) || out_field_str(o, 0x22, room) || out_field_str(o, 0x2A, lesson) ||
        out_field_str(o, 0x32, name))
        return -1;
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    if (bits) { /* proto3: a double whose bits are all 0 (+0.0) is not written */
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)(bits >> (8 * i));
        if (out_varint(o, 0x39) || out_put(o, le, 8)) return -1;
    }
    uint64_t len = (uint64_t)(o->n - at - 1);
    int extra = varint_len(len) - 1;
    if (extra) {
        if (out_room(o, extra) < 0) return -1;
        memmove(o->p + at + 1 + extra, o->p + at + 1, (size_t)len);
        o->n += extra;
    }
    char *w = o->p + at;
    while (len >= 0x80) {
        *w++ = (char)(len | 0x80);
        len >>= 7;
    }
    *w = (char)len;
    return 0;
}

static int text_of(PyObject *s, span_t *t) {
    t->p = (const uint8_t *)PyUnicode_AsUTF8AndSize(s, &t->n);
    return t->p ? 0 : -1;
}

/* The window's attributes that both outputs read (new references). */
typedef struct {
    PyObject *room, *start, *school, *events, *observations, *hands, *counts, *lessons, *devices, *other;
} window_t;

static void window_clear(window_t *w) {
    PyObject **f = &w->room;
    for (size_t i = 0; i < sizeof(window_t) / sizeof(PyObject *); i++) Py_CLEAR(f[i]);
}

static int window_load(window_t *w, PyObject *window) {
    memset(w, 0, sizeof *w);
    if (!(w->room = PyObject_GetAttr(window, S_CLASSROOM_ID)) || !(w->start = PyObject_GetAttr(window, S_START_MS)) ||
        !(w->school = PyObject_GetAttr(window, S_SCHOOL_ID)) || !(w->events = PyObject_GetAttr(window, S_EVENTS)) ||
        !(w->observations = PyObject_GetAttr(window, S_OBSERVATIONS)) ||
        !(w->hands = PyObject_GetAttr(window, S_HANDS)) || !(w->counts = attr_chain(window, S_ATTENTION, S_COUNTS)) ||
        !(w->lessons = PyObject_GetAttr(window, S_LESSONS)) || !(w->devices = attr_chain(window, S_SEEN, S_DEVICES)) ||
        !(w->other = attr_chain(window, S_SEEN, S_OTHER)))
        return -1;
    if (!PyDict_Check(w->devices)) {
        PyErr_SetString(PyExc_TypeError, "SeenEvents.devices must be a dict");
        return -1;
    }
    return 0;
}

/* {"c","w","s","n","o","h","a","l","seen"}: WindowState.to_bytes' document, in its order. The
 * sorted lesson ids are returned for the points (new reference). */
static PyObject *window_json(out_t *o, const window_t *w, const pair_t *pairs, Py_ssize_t npairs) {
    if (out_lit(o, "{\"c\":") || out_str(o, w->room) || out_lit(o, ",\"w\":") || out_int(o, w->start) ||
        out_lit(o, ",\"s\":") || out_str(o, w->school) || out_lit(o, ",\"n\":") || out_int(o, w->events) ||
        out_lit(o, ",\"o\":") || out_int(o, w->observations) || out_lit(o, ",\"h\":") || out_int(o, w->hands) ||
        out_lit(o, ",\"a\":["))
        return NULL;
    for (Py_ssize_t i = 0; i < npairs; i++)
        if (out_lit(o, i ? ",[" : "[") || out_ll(o, pairs[i].key) || out_lit(o, ",") || out_ll(o, pairs[i].n) ||
            out_lit(o, "]"))
            return NULL;
    if (out_lit(o, "],\"l\":")) return NULL;
    PyObject *lessons = out_sorted_strs(o, w->lessons);
    if (!lessons) return NULL;
    if (out_lit(o, ",\"seen\":{\"d\":{")) goto fail;
    Py_ssize_t pos = 0, i = 0;
    PyObject *dev, *entry;
    while (PyDict_Next(w->devices, &pos, &dev, &entry)) {
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 3) {
            PyErr_SetString(PyExc_TypeError, "a SeenEvents entry must be [base, high, bits]");
            goto fail;
        }
        if ((i++ && out_lit(o, ",")) || out_str(o, dev) || out_lit(o, ":[") ||
            out_int(o, PyList_GET_ITEM(entry, 0)) || out_lit(o, ",") || out_int(o, PyList_GET_ITEM(entry, 1)) ||
            out_lit(o, ",") || out_hex_bits(o, PyList_GET_ITEM(entry, 2)) || out_lit(o, "]"))
            goto fail;
    }
    if (out_lit(o, "},\"o\":")) goto fail;
    PyObject *other = out_sorted_strs(o, w->other);
    if (!other) goto fail;
    Py_DECREF(other);
    if (out_lit(o, "}}")) goto fail;
    return lessons;
fail:
    Py_DECREF(lessons);
    return NULL;
}

/* events; attention_rate when observed with anyone present; hand_raising when observed. */
static int window_points(out_t *o, const window_t *w, PyObject *lessons, const pair_t *pairs, Py_ssize_t npairs) {
    span_t school, room, lesson = {(const uint8_t *)"", 0};
    if (text_of(w->school, &school) || text_of(w->room, &room)) return -1;
    if (PyList_GET_SIZE(lessons) && text_of(PyList_GET_ITEM(lessons, 0), &lesson)) return -1;
    long long start = PyLong_AsLongLong(w->start), events = PyLong_AsLongLong(w->events),
              observations = PyLong_AsLongLong(w->observations), hands = PyLong_AsLongLong(w->hands);
    if (PyErr_Occurred()) return -1;
    if (out_point(o, start, school, room, lesson, "events", (double)events)) return -1;
    if (npairs) {
        double rate;
        if (hist_rate(pairs, npairs, &rate) || out_point(o, start, school, room, lesson, "attention_rate", rate))
            return -1;
    }
    if (observations &&
        out_point(o, start, school, room, lesson, "hand_raising", (double)hands / (double)observations))
        return -1;
    return 0;
}

PyDoc_STRVAR(window_outputs_doc,
"window_outputs(window, /) -> (value, points)\n"
"\n"
"A WindowState's table value (WindowState.to_bytes, byte for byte) and its metric points as\n"
"MetricBatch wire bytes (the ``points`` entries WindowState.add_points appends), to be sent\n"
"before the rest of the classroom's MetricBatch.");

static PyObject *window_outputs(PyObject *self, PyObject *window) {
    window_t w;
    out_t value = {NULL, 0, 0}, points = {NULL, 0, 0};
    pair_t *pairs = NULL;
    if (out_room(&value, 1024) < 0 || out_room(&points, 512) < 0) {
        PyMem_Free(value.p);
        PyMem_Free(points.p);
        return NULL;
    }
    PyObject *lessons = NULL, *result = NULL;
    Py_ssize_t npairs = 0;
    if (window_load(&w, window) == 0 && (pairs = hist_pairs(w.counts, &npairs)) &&
        (lessons = window_json(&value, &w, pairs, npairs)) && window_points(&points, &w, lessons, pairs, npairs) == 0)
        result = Py_BuildValue("(y#y#)", value.p, value.n, points.p, points.n);
    Py_XDECREF(lessons);
    PyMem_Free(pairs);
    PyMem_Free(value.p);
    PyMem_Free(points.p);
    window_clear(&w);
    return result;
}

static PyMethodDef methods[] = {
    {"window_outputs", (PyCFunction)window_outputs, METH_O, window_outputs_doc},
    {"fold_events", (PyCFunction)(void (*)(void))fold_events, METH_FASTCALL, fold_events_doc},
    {NULL, NULL, 0, NULL},
};

static int intern(PyObject **slot, const char *text) {
    if (!*slot) *slot = PyUnicode_InternFromString(text);
    return *slot ? 0 : -1;
}

static int exec_module(PyObject *module) {
    init_tables();
    if (intern(&S_SEEN, "seen") || intern(&S_DEVICES, "devices") || intern(&S_OTHER, "other") ||
        intern(&S_ATTENTION, "attention") || intern(&S_COUNTS, "counts") || intern(&S_LESSONS, "lessons") ||
        intern(&S_STUDENTS, "students") || intern(&S_ANSWERS, "answers") ||
        intern(&S_ATTEMPTS, "attempts") || intern(&S_SCHOOL_ID, "school_id") ||
        intern(&S_EVENTS, "events") || intern(&S_OBSERVATIONS, "observations") ||
        intern(&S_HANDS, "hands") || intern(&S_HAND_RAISES, "hand_raises") ||
        intern(&S_LATEST_MS, "latest_ms") || intern(&S_ADD_TEACHING, "add_teaching") ||
        intern(&S_ADD_LIFECYCLE, "add_lifecycle") || intern(&S_T_UNION, "t_union") ||
        intern(&S_CACHE, "_cache") || intern(&S_CLASSROOM_ID, "classroom_id") ||
        intern(&S_START_MS, "start_ms"))
        return -1;
    return PyModule_AddIntConstant(module, "MAX_SPAN", (long)MAX_SPAN) ||
           PyModule_AddIntConstant(module, "WINDOW_MS", WINDOW_MS) ||
           PyModule_AddIntConstant(module, "HIST_SHIFT", HIST_SHIFT) ||
           PyModule_AddIntConstant(module, "BEHAVIOR_HAND_RAISING", BEHAVIOR_HAND_RAISING) ||
           PyModule_AddIntConstant(module, "VERB_HAND_RAISED", VERB_HAND_RAISED) ||
           PyModule_AddIntConstant(module, "VERB_ANSWERED", VERB_ANSWERED) ||
           PyModule_AddIntConstant(module, "T_KIND_MASK", T_KIND_MASK);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "stream_processors._fold",
    .m_doc = "The worker's per-event loop in C (see stream_processors/processor.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__fold(void) { return PyModuleDef_Init(&moduledef); }
