/* The native rule evaluator: the hot path of `Ruleset.decide`, `decider`, `evaluate` and `stage_evaluator`.
 *
 * engine/ruleset/native.py flattens a ruleset's compiled conditions into tables (fields, leaves,
 * condition nodes, groups) and hands them to `Program`; `Scanner` finds a text field's keywords.
 * Nothing here parses rules or knows the catalog: it evaluates what the Python side built, with
 * the same semantics as the generated Python (codegen.py) and the closures (compiler.py), which
 * tests/test_ruleset_native.py checks on random snapshots. Anything this file cannot evaluate
 * exactly (too many fields, keywords or rules for its fixed-size tables) is refused when the
 * program is built, and the Python side keeps the generated code for it.
 *
 * Why C: a ticket's whole life is twelve groups over seven stages. In Python the reads, type
 * checks and keyword scans cost about 40 µs per ticket; the rules language promises 150,000
 * tickets a second (under 7 µs).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#define MAX_FIELDS 128       /* fields one program reads */
#define MAX_TEXTS 16         /* text fields one program scans */
#define MAX_WORDS 64         /* 64-bit words of keyword bits per text field: 4096 keywords */
#define MAX_MASK_WORDS 64    /* 64-bit words of a match-all group's mask: 4096 rules */
/* The layout of the tables native.py builds; native.py refuses a module built for another one
   (an old build left in place when a rebuild failed). Raise it with every change to the tables. */
#define TABLES_VERSION 5
#define TRACE_TEXT_LIMIT 120 /* compiler._TRACE_TEXT_LIMIT: longer texts are cut in traces */
#define ELLIPSIS 0x2026      /* … ends a cut text */
#define RESULT_FIELDS 4      /* GroupResult's slots: group, rule_ids, actions, trace */
#define SMALL_SET 8          /* sets of interned str up to this size are searched by address */

/* A letter or digit of a script that separates words with spaces; compiler._is_word_char.
   ASCII from a table: English text asks for every letter. */
static unsigned char ascii_word[128];
static inline int is_word_char(Py_UCS4 c) {
    if (c < 128) return ascii_word[c];
    return c < 0x2E80 && Py_UNICODE_ISALNUM(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Scanner: every keyword of one text field, as a trie walked from each position of the text. */

typedef struct { Py_UCS4 ch; int32_t next; } Edge;

typedef struct { uint64_t key; int32_t next; } Slot;  /* key: node << 32 | character */

typedef struct {
    PyObject_HEAD
    int32_t n_nodes;
    int32_t *first, *count, *word;  /* per node: its edges, and the keyword ending there or -1 */
    Edge *edges;
    Slot *slots;                    /* every edge again, in an open-addressing hash table */
    int slot_bits;
    int32_t root_ascii[128];        /* the root's children by ASCII character, -1 for none */
    uint8_t root_bmp[8192];         /* one bit per BMP character: does a keyword start with it */
    int n_keywords, n_u64, always;  /* `always`: id of the empty keyword (in every text) or -1 */
    PyObject *precomputed;          /* snapshot key of (text, folded text) or None */
    PyObject *fold;                 /* compiler.fold, for text that is not ASCII */
    /* the last text seen and what it gave: the groups of a stage, and the next stage, read the
       very same string; replaced whole, with no Python code running in between */
    PyObject *last_value, *last_folded;
    uint64_t last_bits[MAX_WORDS];
} Scanner;

#define EMPTY_SLOT UINT64_MAX

static inline uint32_t slot_of(uint64_t key, int bits) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* The child of `node` by character c, -1 for none: one hash probe, usually. */
static inline int32_t child(const Scanner *s, int32_t node, Py_UCS4 c) {
    if (node == 0) {
        /* most characters of a text start no keyword: answered without a probe */
        if (c < 128) return s->root_ascii[c];
        if (c < 65536 && !(s->root_bmp[c >> 3] >> (c & 7) & 1)) return -1;
    }
    uint64_t key = (uint64_t)node << 32 | c;
    uint32_t mask = ((uint32_t)1 << s->slot_bits) - 1;
    for (uint32_t at = slot_of(key, s->slot_bits);; at = (at + 1) & mask) {
        if (s->slots[at].key == key) return s->slots[at].next;
        if (s->slots[at].key == EMPTY_SLOT) return -1;
    }
}

/* From each position of the text, follow the trie as far as the text goes along it; every node
   passed that ends a keyword is a keyword found there. One loop per string kind, so that reading
   a character is one load. */
#define SCAN(T)                                                                                     \
    do {                                                                                            \
        const T *d = (const T *)data;                                                               \
        for (Py_ssize_t i = 0; i < n; i++) {                                                        \
            Py_UCS4 c = d[i];                                                                       \
            int32_t node = child(s, 0, c);                                                          \
            if (node < 0) continue;                                                                 \
            /* a keyword starting with a word character must start a word; every keyword found    \
               from here starts with c, so one test decides for all of them */                      \
            if (i > 0 && is_word_char(c) && is_word_char(d[i - 1])) continue;                       \
            Py_ssize_t j = i;                                                                       \
            while (node >= 0) {                                                                     \
                int32_t w = s->word[node];                                                          \
                if (w >= 0) bits[w >> 6] |= (uint64_t)1 << (w & 63);                                \
                if (++j >= n) break;                                                                \
                node = child(s, node, d[j]);                                                        \
            }                                                                                       \
        }                                                                                           \
    } while (0)

static void scan(const Scanner *s, PyObject *text, uint64_t *bits) {
    memset(bits, 0, sizeof(uint64_t) * s->n_u64);
    if (s->always >= 0) bits[s->always >> 6] |= (uint64_t)1 << (s->always & 63);
    if (s->count[0] == 0) return;  /* no keywords: a field only compared whole */
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const void *data = PyUnicode_DATA(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND: SCAN(Py_UCS1); break;
    case PyUnicode_2BYTE_KIND: SCAN(Py_UCS2); break;
    default: SCAN(Py_UCS4); break;
    }
}

/* Scanner(keywords: sequence of folded str, precomputed: str | None, fold: callable) */
static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    PyObject *keywords, *precomputed, *fold;
    if (!PyArg_ParseTuple(args, "OOO:Scanner", &keywords, &precomputed, &fold)) return -1;
    if (self->first) { PyErr_SetString(PyExc_RuntimeError, "a Scanner is built once"); return -1; }
    PyObject *seq = PySequence_Fast(keywords, "keywords must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_WORDS * 64) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_OverflowError, "%zd keywords in one field, at most %d", n, MAX_WORDS * 64);
        return -1;
    }
    Py_ssize_t chars = 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *w = PySequence_Fast_GET_ITEM(seq, k);
        if (!PyUnicode_Check(w)) { Py_DECREF(seq); PyErr_SetString(PyExc_TypeError, "keywords must be str"); return -1; }
        chars += PyUnicode_GET_LENGTH(w);
    }
    /* build with linked sibling lists, then lay every node's children out sorted */
    int32_t *sibling = PyMem_Calloc(chars, sizeof(int32_t)), *kid = PyMem_Calloc(chars, sizeof(int32_t));
    Py_UCS4 *label = PyMem_Calloc(chars, sizeof(Py_UCS4));
    self->word = PyMem_Calloc(chars, sizeof(int32_t));
    self->first = PyMem_Calloc(chars, sizeof(int32_t));
    self->count = PyMem_Calloc(chars, sizeof(int32_t));
    self->edges = PyMem_Calloc(chars, sizeof(Edge));
    if (!sibling || !kid || !label || !self->word || !self->first || !self->count || !self->edges) {
        PyMem_Free(sibling); PyMem_Free(kid); PyMem_Free(label); Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    int32_t nodes = 1;
    kid[0] = -1; self->word[0] = -1;
    self->always = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *w = PySequence_Fast_GET_ITEM(seq, k);
        Py_ssize_t len = PyUnicode_GET_LENGTH(w);
        if (len == 0) { self->always = (int)k; continue; }
        int32_t node = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            Py_UCS4 c = PyUnicode_READ_CHAR(w, i);
            int32_t at = kid[node];
            while (at >= 0 && label[at] != c) at = sibling[at];
            if (at < 0) {
                at = nodes++;
                label[at] = c; kid[at] = -1; self->word[at] = -1;
                sibling[at] = kid[node]; kid[node] = at;
            }
            node = at;
        }
        self->word[node] = (int32_t)k;
    }
    int32_t e = 0;
    for (int32_t node = 0; node < nodes; node++) {
        self->first[node] = e;
        for (int32_t at = kid[node]; at >= 0; at = sibling[at]) {
            /* insertion sort: a node has few children, the root at most a few hundred */
            int32_t pos = e++;
            while (pos > self->first[node] && self->edges[pos - 1].ch > label[at]) {
                self->edges[pos] = self->edges[pos - 1];
                pos--;
            }
            self->edges[pos].ch = label[at];
            self->edges[pos].next = at;
        }
        self->count[node] = e - self->first[node];
    }
    for (int c = 0; c < 128; c++) self->root_ascii[c] = -1;
    int bits = 4;
    while (((int64_t)1 << bits) < 2 * (int64_t)e) bits++;
    self->slot_bits = bits;
    self->slots = PyMem_Malloc(sizeof(Slot) << bits);
    if (!self->slots) { PyMem_Free(sibling); PyMem_Free(kid); PyMem_Free(label); Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (int64_t i = 0; i < ((int64_t)1 << bits); i++) self->slots[i].key = EMPTY_SLOT;
    for (int32_t node = 0; node < nodes; node++) {
        for (int32_t i = self->first[node]; i < self->first[node] + self->count[node]; i++) {
            uint64_t key = (uint64_t)node << 32 | self->edges[i].ch;
            uint32_t at = slot_of(key, bits), mask = ((uint32_t)1 << bits) - 1;
            while (self->slots[at].key != EMPTY_SLOT) at = (at + 1) & mask;
            self->slots[at].key = key;
            self->slots[at].next = self->edges[i].next;
        }
    }
    memset(self->root_bmp, 0, sizeof(self->root_bmp));
    for (int32_t i = self->first[0]; i < self->first[0] + self->count[0]; i++) {
        Py_UCS4 c = self->edges[i].ch;
        if (c < 128) self->root_ascii[c] = self->edges[i].next;
        if (c < 65536) self->root_bmp[c >> 3] |= (uint8_t)(1 << (c & 7));
    }
    PyMem_Free(sibling); PyMem_Free(kid); PyMem_Free(label);
    Py_DECREF(seq);
    self->n_nodes = nodes;
    self->n_keywords = (int)n;
    self->n_u64 = (int)((n + 63) / 64);
    if (self->n_u64 == 0) self->n_u64 = 1;
    Py_INCREF(precomputed); self->precomputed = precomputed;
    Py_INCREF(fold); self->fold = fold;
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    PyMem_Free(self->first); PyMem_Free(self->count); PyMem_Free(self->word); PyMem_Free(self->edges);
    PyMem_Free(self->slots);
    Py_XDECREF(self->precomputed); Py_XDECREF(self->fold);
    Py_XDECREF(self->last_value); Py_XDECREF(self->last_folded);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* compiler.fold: ASCII is lowered here; anything else goes to the Python function (NFKC). */
static PyObject *fold_text(PyObject *value, PyObject *fold) {
    if (PyUnicode_IS_ASCII(value)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(value);
        const Py_UCS1 *src = PyUnicode_1BYTE_DATA(value);
        Py_ssize_t i = 0;
        while (i < n && !(src[i] >= 'A' && src[i] <= 'Z')) i++;
        if (i == n) { Py_INCREF(value); return value; }
        PyObject *out = PyUnicode_New(n, 127);
        if (!out) return NULL;
        Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
        for (i = 0; i < n; i++) dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i];
        return out;
    }
    return PyObject_CallOneArg(fold, value);
}

/* Scanner.find(folded) -> tuple of keyword ids found: for tests and debugging. */
static PyObject *Scanner_find(Scanner *self, PyObject *text) {
    if (!PyUnicode_Check(text)) { PyErr_SetString(PyExc_TypeError, "find() needs a str"); return NULL; }
    if (self->first == NULL) { PyErr_SetString(PyExc_TypeError, "this Scanner is not initialised"); return NULL; }
    uint64_t bits[MAX_WORDS];
    scan(self, text, bits);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (int k = 0; k < self->n_keywords; k++) {
        if (bits[k >> 6] >> (k & 63) & 1) {
            PyObject *id = PyLong_FromLong(k);
            if (!id || PyList_Append(out, id) < 0) { Py_XDECREF(id); Py_DECREF(out); return NULL; }
            Py_DECREF(id);
        }
    }
    PyObject *t = PyList_AsTuple(out);
    Py_DECREF(out);
    return t;
}

static PyMethodDef Scanner_methods[] = {
    {"find", (PyCFunction)Scanner_find, METH_O, "find(folded_text) -> ids of the keywords found"},
    {NULL}
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.ruleset._native.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The keywords of one text field, found in one pass over a folded text.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

/* ------------------------------------------------------------------------------------------ */
/* Program: the groups of one stage (or one group), as tables. */

enum {
    L_IS_SET, L_IS_EMPTY, L_LIST_ANY, L_LIST_ALL, L_TEXT_ANY, L_TEXT_ALL, L_TEXT_IN, L_TEXT_NOT_IN,
    L_TEXT_STARTS, L_TEXT_MATCHES, L_BOOL_IS, L_ENUM_EQ, L_ENUM_NE, L_ENUM_IN, L_ENUM_NOT_IN,
    L_NUM_CMP, L_NUM_BETWEEN, L_NUM_IN, L_NUM_NOT_IN, L_KINDS
};
enum { N_LEAF, N_ALL, N_ANY, N_NOT };

typedef struct {
    int kind, field, text, op, want;
    PyObject *a, *b;       /* expected values: a constant, a frozenset, a prefix, a search() */
    uint64_t *bits;        /* keyword bits of contains_any / contains_all, n_u64 of its text */
    int lo, hi;            /* the words of `bits` that are not zero: [lo, hi) */
    PyObject *few[SMALL_SET];  /* a set of up to SMALL_SET interned str: its members, else NULLs */
    int n_few;
    PyObject *t_field, *t_op, *t_expected;  /* its trace entry: the field, operator, expected value */
} Leaf;

typedef struct { int type, arg, start, count; } Node;

/* A condition as jumps (native.py, _Tables.code): test the leaf, go on to `if_true` or
   `if_false`; CODE_TRUE / CODE_FALSE end with that answer. Jumps only go to earlier ops. */
typedef struct { int leaf, if_true, if_false; } Op;
#define CODE_TRUE (-2)
#define CODE_FALSE (-1)

typedef struct {
    int first, n_rules;
    int *roots;            /* per rule its condition's node, -1 for a catch-all */
    int *entries;          /* per rule its first op, CODE_TRUE for a catch-all */
    int *implied;          /* per rule: the leaves of a condition of only `all` and leaves (every
                              one of them was true when it matched), or -1 (`any`, `not`) */
    unsigned char *has_lists;  /* per rule: whether its actions hold a list (copied for a result) */
    PyObject *outcomes;    /* first: tuple, one per rule then "no match" */
    PyObject *seen;        /* all: dict mask -> (indices, actions, outcome) */
    PyObject *combine;     /* all: combination(mask) for a mask not yet seen */
    PyObject *name, *ids, *thens;  /* for results: the group's name, its rule ids and actions */
    int template_base;             /* its rules' entries in Program.rule_templates */
} Group;

typedef struct {
    PyObject_HEAD
    int n_fields, n_texts, n_leaves, n_nodes, n_groups;
    PyObject **fields;     /* field names */
    int *text_field;       /* per text slot: its field */
    Scanner **scanners;
    Leaf *leaves;
    Node *nodes;
    int *kids;
    Op *ops;
    int n_ops;
    Group *groups;
    PyObject *fold;
    PyObject *result_type;  /* GroupResult, or None: then evaluate() and results() are not offered */
    Py_ssize_t result_offsets[RESULT_FIELDS];  /* where its group, rule_ids, actions, trace slots are */
    vectorcallfunc vectorcall;
    PyObject **leaf_templates, **rule_templates;  /* trace entries to copy, see leaf_entry */
    int n_rule_templates;
} Program;

typedef struct {
    PyObject *snap, *get;
    PyObject *val[MAX_FIELDS];          /* strong references, NULL until read */
    signed char text_state[MAX_TEXTS];  /* 0: not read yet, 1: text, 2: not a string */
    PyObject *folded[MAX_TEXTS];        /* strong */
    uint64_t bits[MAX_TEXTS][MAX_WORDS];
} Ctx;

static PyObject *value_of(Program *p, Ctx *x, int f) {
    if (x->val[f]) return x->val[f];
    PyObject *v;
    if (x->get == NULL) {
        v = PyDict_GetItemWithError(x->snap, p->fields[f]);
        if (!v) {
            if (PyErr_Occurred()) return NULL;
            v = Py_None;
        }
        Py_INCREF(v);
    } else {
        v = PyObject_CallOneArg(x->get, p->fields[f]);
        if (!v) return NULL;
    }
    x->val[f] = v;
    return v;
}

/* Equality of two exact str objects without PyUnicode_Compare's ordering work: most unequal
   values differ in length or kind, and two interned strings are equal only if they are one. */
static inline int str_eq(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    if (n != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) return 0;
    if (PyUnicode_CHECK_INTERNED(a) && PyUnicode_CHECK_INTERNED(b)) return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* 1: a string (folded and bits ready), 0: not a string, -1: error */
static int load_text(Program *p, Ctx *x, int t) {
    if (x->text_state[t]) return x->text_state[t] == 1;
    PyObject *v = value_of(p, x, p->text_field[t]);
    if (!v) return -1;
    if (!PyUnicode_Check(v)) { x->text_state[t] = 2; return 0; }
    Scanner *s = p->scanners[t];
    if (s->last_value != NULL) {
        /* equal text, even in another object, has the same folded form and keywords */
        int same = PyUnicode_CheckExact(v) && PyUnicode_CheckExact(s->last_value) ? str_eq(v, s->last_value)
                   : PyUnicode_Compare(v, s->last_value) == 0;
        if (PyErr_Occurred()) return -1;
        if (same) {
            x->folded[t] = s->last_folded; Py_INCREF(s->last_folded);
            memcpy(x->bits[t], s->last_bits, sizeof(uint64_t) * s->n_u64);
            x->text_state[t] = 1;
            return 1;
        }
    }
    PyObject *folded = NULL;
    if (s->precomputed != Py_None) {
        /* build_snapshot folded `text` already, as (text, folded): used while it still belongs */
        PyObject *ready = NULL;
        if (x->get == NULL) {
            ready = PyDict_GetItemWithError(x->snap, s->precomputed);
            Py_XINCREF(ready);
        } else {
            ready = PyObject_CallOneArg(x->get, s->precomputed);
        }
        if (!ready && PyErr_Occurred()) return -1;
        if (ready && PyTuple_Check(ready) && PyTuple_GET_SIZE(ready) == 2) {
            PyObject *of = PyTuple_GET_ITEM(ready, 0);
            int same = of == v ? 1 : PyObject_RichCompareBool(of, v, Py_EQ);
            if (same < 0) { Py_DECREF(ready); return -1; }
            if (same) { folded = PyTuple_GET_ITEM(ready, 1); Py_INCREF(folded); }
        }
        Py_XDECREF(ready);
    }
    if (!folded) {
        folded = fold_text(v, s->fold);
        if (!folded) return -1;
    }
    if (!PyUnicode_Check(folded)) {
        Py_DECREF(folded);
        PyErr_SetString(PyExc_TypeError, "a folded text is not a str");
        return -1;
    }
    scan(s, folded, x->bits[t]);
    x->folded[t] = folded;
    x->text_state[t] = 1;
    /* publish to the cache: no Python code runs between these lines */
    PyObject *old_value = s->last_value, *old_folded = s->last_folded;
    Py_INCREF(v); Py_INCREF(folded);
    s->last_value = v; s->last_folded = folded;
    memcpy(s->last_bits, x->bits[t], sizeof(uint64_t) * s->n_u64);
    Py_XDECREF(old_value); Py_XDECREF(old_folded);
    return 1;
}

static int is_number(PyObject *v) {
    return (PyLong_Check(v) && !PyBool_Check(v)) || PyFloat_Check(v);
}

/* `a op b` for two C numbers of one type, op a rich comparison code */
#define ORDERED(a, b, op) ((op) == Py_LT ? (a) < (b) : (op) == Py_LE ? (a) <= (b) : (op) == Py_GT ? (a) > (b) \
                           : (op) == Py_GE ? (a) >= (b) : (op) == Py_EQ ? (a) == (b) : (a) != (b))

static int compare(PyObject *v, PyObject *e, int op) {
    if (PyLong_CheckExact(v) && PyLong_CheckExact(e)) {
        int ov = 0, oe = 0;
        long long a = PyLong_AsLongLongAndOverflow(v, &ov), b = PyLong_AsLongLongAndOverflow(e, &oe);
        if (!ov && !oe) return ORDERED(a, b, op);
    } else if ((PyFloat_CheckExact(v) || PyLong_CheckExact(v)) && (PyFloat_CheckExact(e) || PyLong_CheckExact(e))) {
        /* a float against a float, or against an int of at most 53 bits (exactly a double, so
           the comparison is Python's exact one); larger ints go to Python below */
        double a, b;
        int ok = 1;
        if (PyFloat_CheckExact(v)) a = PyFloat_AS_DOUBLE(v);
        else { long long i = PyLong_AsLongLongAndOverflow(v, &ok); ok = !ok && i <= (1LL << 53) && i >= -(1LL << 53); a = (double)i; }
        if (PyFloat_CheckExact(e)) b = PyFloat_AS_DOUBLE(e);
        else if (ok) { long long i = PyLong_AsLongLongAndOverflow(e, &ok); ok = !ok && i <= (1LL << 53) && i >= -(1LL << 53); b = (double)i; }
        if (ok) return ORDERED(a, b, op);
    }
    return PyObject_RichCompareBool(v, e, op);
}

/* compiler._is_empty */
static int is_empty(PyObject *v) {
    if (v == Py_None) return 1;
    if (PyUnicode_Check(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(v, i))) return 0;
        return 1;
    }
    if (PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v)) {
        Py_ssize_t n = PyObject_Length(v);
        return n < 0 ? -1 : n == 0;
    }
    return 0;
}

/* list fields: contains_any / contains_all of folded needles among the folded string items
   (compiler: `needles.isdisjoint(items)` / `needles <= items`), item by item without a set */
static int list_test(Program *p, PyObject *v, PyObject *needles, int all) {
    if (!PyList_Check(v) && !PyTuple_Check(v)) return 0;
    PyObject *seq = PySequence_Fast(v, "a list");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), found = 0, wanted = PySet_GET_SIZE(needles);
    PyObject *seen = NULL;  /* contains_all: the needles found so far (an item may repeat) */
    int result = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(item)) continue;
        PyObject *folded = fold_text(item, p->fold);
        if (!folded) { result = -1; break; }
        int hit = PySet_Contains(needles, folded);
        if (hit > 0 && all) {
            if (!seen && !(seen = PySet_New(NULL))) hit = -1;
            else if ((hit = PySet_Contains(seen, folded)) == 0) {
                hit = PySet_Add(seen, folded) < 0 ? -1 : 1;
                found++;
            } else if (hit > 0) {
                hit = 0;  /* that needle was counted already */
            }
        }
        Py_DECREF(folded);
        if (hit < 0) { result = -1; break; }
        if (hit && !all) { result = 1; break; }
        if (all && found == wanted) { result = 1; break; }
    }
    if (all && wanted == 0 && result == 0) result = 1;  /* the empty set is in every set */
    Py_XDECREF(seen);
    Py_DECREF(seq);
    return result;
}

/* contains_any on a scanned text: does it hold any of the leaf's keywords */
static inline int any_keyword(const Leaf *l, const uint64_t *have) {
    for (int i = l->lo; i < l->hi; i++) if (have[i] & l->bits[i]) return 1;
    return 0;
}

/* `v in l->a` for a set: an interned str against a small set of interned str is a member only
   if it is one of them (equal interned strings are one object); anything else asks the set. */
static inline int member(const Leaf *l, PyObject *v) {
    if (l->n_few && PyUnicode_CheckExact(v) && PyUnicode_CHECK_INTERNED(v)) {
        for (int i = 0; i < l->n_few; i++) if (l->few[i] == v) return 1;
        return 0;
    }
    return PySet_Contains(l->a, v);
}

static int eval_leaf(Program *p, Ctx *x, const Leaf *l) {
    PyObject *v;
    int r;
    switch (l->kind) {
    case L_TEXT_ANY: case L_TEXT_ALL: case L_TEXT_IN: case L_TEXT_NOT_IN: case L_TEXT_STARTS: case L_TEXT_MATCHES: {
        r = load_text(p, x, l->text);
        if (r <= 0) return r;  /* a value that is not a string fails every text test */
        const uint64_t *have = x->bits[l->text];
        PyObject *folded = x->folded[l->text];
        switch (l->kind) {
        case L_TEXT_ANY:
            return any_keyword(l, have);
        case L_TEXT_ALL:
            for (int i = l->lo; i < l->hi; i++) if ((have[i] & l->bits[i]) != l->bits[i]) return 0;
            return 1;
        case L_TEXT_IN:
            return member(l, folded);
        case L_TEXT_NOT_IN:
            r = member(l, folded);
            return r < 0 ? r : !r;
        case L_TEXT_STARTS: {
            Py_ssize_t start = 0, len = PyUnicode_GET_LENGTH(folded);
            while (start < len && Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(folded, start))) start++;
            return (int)PyUnicode_Tailmatch(folded, l->a, start, PY_SSIZE_T_MAX, -1);
        }
        default: {
            PyObject *m = PyObject_CallOneArg(l->a, folded);
            if (!m) return -1;
            r = m != Py_None;
            Py_DECREF(m);
            return r;
        }
        }
    }
    default:
        break;
    }
    v = value_of(p, x, l->field);
    if (!v) return -1;
    switch (l->kind) {
    case L_IS_SET: return (v != Py_None) == l->want;
    case L_IS_EMPTY:
        r = is_empty(v);
        return r < 0 ? r : r == l->want;
    case L_LIST_ANY: return list_test(p, v, l->a, 0);
    case L_LIST_ALL: return list_test(p, v, l->a, 1);
    case L_BOOL_IS: return v == l->a;
    case L_ENUM_EQ:
        if (PyUnicode_CheckExact(v) && PyUnicode_CheckExact(l->a)) return str_eq(v, l->a);
        return PyObject_RichCompareBool(v, l->a, Py_EQ);
    case L_ENUM_NE:
        if (!PyUnicode_Check(v)) return 0;
        if (PyUnicode_CheckExact(v) && PyUnicode_CheckExact(l->a)) return !str_eq(v, l->a);
        return PyObject_RichCompareBool(v, l->a, Py_NE);
    case L_ENUM_IN:
        if (!PyUnicode_Check(v)) return 0;
        return member(l, v);
    case L_ENUM_NOT_IN:
        if (!PyUnicode_Check(v)) return 0;
        r = member(l, v);
        return r < 0 ? r : !r;
    case L_NUM_CMP:
        if (!is_number(v)) return 0;
        return compare(v, l->a, l->op);
    case L_NUM_BETWEEN:
        if (!is_number(v)) return 0;
        r = compare(l->a, v, Py_LE);
        if (r <= 0) return r;
        return compare(v, l->b, Py_LE);
    case L_NUM_IN:
        if (!is_number(v)) return 0;
        return PySet_Contains(l->a, v);
    case L_NUM_NOT_IN:
        if (!is_number(v)) return 0;
        r = PySet_Contains(l->a, v);
        return r < 0 ? r : !r;
    }
    PyErr_SetString(PyExc_SystemError, "unknown leaf kind");
    return -1;
}

static void ctx_clear(Program *p, Ctx *x) {
    for (int f = 0; f < p->n_fields; f++) Py_XDECREF(x->val[f]);
    for (int t = 0; t < p->n_texts; t++) if (x->text_state[t] == 1) Py_DECREF(x->folded[t]);
    Py_XDECREF(x->get);
}

static int ctx_init(Program *p, Ctx *x, PyObject *snap) {
    if (p->groups == NULL) {  /* made with __new__ alone, or a failed __init__ */
        PyErr_SetString(PyExc_TypeError, "this program is not initialised");
        return -1;
    }
    x->snap = snap;
    x->get = NULL;
    memset(x->val, 0, sizeof(PyObject *) * p->n_fields);
    memset(x->text_state, 0, sizeof(x->text_state));
    if (!PyDict_CheckExact(snap)) {  /* any other Mapping: read it through its own get() */
        x->get = PyObject_GetAttrString(snap, "get");
        if (!x->get) return -1;
    }
    return 0;
}

/* Whether a rule's condition holds: its ops from `at` on (1, 0, or -1 on error). */
static inline int run_code(Program *p, Ctx *x, int at) {
    while (at >= 0) {
        const Op *o = &p->ops[at];
        const Leaf *l = &p->leaves[o->leaf];
        int r;
        if (l->kind == L_TEXT_ANY && x->text_state[l->text] == 1) {
            r = any_keyword(l, x->bits[l->text]);  /* the most frequent test, here without a call */
        } else if ((r = eval_leaf(p, x, l)) < 0) {
            return -1;
        }
        at = r ? o->if_true : o->if_false;
    }
    return at == CODE_TRUE;
}

/* first group: index of the matching rule or -1; all group: the mask of matches in `mask`.
   Returns 0, or -1 on error. */
static int run_group(Program *p, Ctx *x, const Group *g, Py_ssize_t *index, uint64_t *mask) {
    if (g->first) {
        for (int i = 0; i < g->n_rules; i++) {
            int r = run_code(p, x, g->entries[i]);
            if (r < 0) return -1;
            if (r) { *index = i; return 0; }
        }
        *index = -1;
        return 0;
    }
    memset(mask, 0, sizeof(uint64_t) * ((g->n_rules + 63) / 64 + 1));
    for (int i = 0; i < g->n_rules; i++) {
        int r = run_code(p, x, g->entries[i]);
        if (r < 0) return -1;
        if (r) mask[i >> 6] |= (uint64_t)1 << (i & 63);
    }
    return 0;
}

static PyObject *mask_int(const Group *g, const uint64_t *mask) {
    int words = (g->n_rules + 63) / 64;
    if (words <= 1) return PyLong_FromUnsignedLongLong(words ? mask[0] : 0);
    unsigned char bytes[MAX_MASK_WORDS * 8];
    for (int w = 0; w < words; w++)
        for (int b = 0; b < 8; b++) bytes[w * 8 + b] = (unsigned char)(mask[w] >> (8 * b));
    return _PyLong_FromByteArray(bytes, (size_t)words * 8, 1, 0);
}

static PyObject *group_outcome(const Group *g, Py_ssize_t index, const uint64_t *mask) {
    if (g->first) {
        Py_ssize_t n = PyTuple_GET_SIZE(g->outcomes);
        PyObject *o = PyTuple_GET_ITEM(g->outcomes, index < 0 ? n - 1 : index);
        Py_INCREF(o);
        return o;
    }
    PyObject *key = mask_int(g, mask);
    if (!key) return NULL;
    PyObject *found = PyDict_GetItemWithError(g->seen, key);  /* (indices, actions, outcome) */
    if (found) {
        Py_DECREF(key);
        PyObject *o = PyTuple_GET_ITEM(found, 2);
        Py_INCREF(o);
        return o;
    }
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    found = PyObject_CallOneArg(g->combine, key);
    Py_DECREF(key);
    if (!found) return NULL;
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3) {
        Py_DECREF(found);
        PyErr_SetString(PyExc_TypeError, "combination() must return (indices, actions, outcome)");
        return NULL;
    }
    PyObject *o = PyTuple_GET_ITEM(found, 2);
    Py_INCREF(o);
    Py_DECREF(found);
    return o;
}

/* program(snapshot) -> tuple of the groups' outcomes, in order */
static PyObject *Program_vectorcall(Program *p, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a program takes one snapshot");
        return NULL;
    }
    PyObject *snap = args[0];
    Ctx x;
    if (ctx_init(p, &x, snap) < 0) return NULL;
    PyObject *out = PyTuple_New(p->n_groups);
    uint64_t mask[MAX_MASK_WORDS + 1];
    for (int gi = 0; out && gi < p->n_groups; gi++) {
        const Group *g = &p->groups[gi];
        Py_ssize_t index = -1;
        if (run_group(p, &x, g, &index, mask) < 0) { Py_CLEAR(out); break; }
        PyObject *o = group_outcome(g, index, mask);
        if (!o) { Py_CLEAR(out); break; }
        PyTuple_SET_ITEM(out, gi, o);
    }
    ctx_clear(p, &x);
    return out;
}

/* program.index(snapshot) -> what codegen's decide returns for the program's first group: the
   index of the first match (-1: none), or the mask of every match */
static PyObject *Program_index(Program *p, PyObject *snap) {
    Ctx x;
    if (ctx_init(p, &x, snap) < 0) return NULL;
    uint64_t mask[MAX_MASK_WORDS + 1];
    Py_ssize_t index = -1;
    PyObject *out = NULL;
    if (run_group(p, &x, &p->groups[0], &index, mask) == 0)
        out = p->groups[0].first ? PyLong_FromSsize_t(index) : mask_int(&p->groups[0], mask);
    ctx_clear(p, &x);
    return out;
}


/* ------------------------------------------------------------------------------------------ */
/* Results with the compact trace: what Ruleset.evaluate returns, built as compiler.py does. */

static PyObject *k_field, *k_op, *k_expected, *k_actual, *k_rule_id, *k_matched, *k_leaves,
    *k_group, *k_rule_ids, *k_actions, *k_trace;

/* v[:TRACE_TEXT_LIMIT] + "…" in one allocation, in the narrowest kind that holds it as Python
   requires of every str: the ellipsis needs two bytes, a four-byte text's head may not */
static PyObject *cut_text(PyObject *v) {
    Py_UCS4 max = ELLIPSIS;
    if (PyUnicode_KIND(v) == PyUnicode_4BYTE_KIND) {
        const Py_UCS4 *chars = PyUnicode_4BYTE_DATA(v);
        for (int i = 0; i < TRACE_TEXT_LIMIT; i++) if (chars[i] > max) max = chars[i];
    }
    PyObject *out = PyUnicode_New(TRACE_TEXT_LIMIT + 1, max);
    if (!out) return NULL;
    if (PyUnicode_CopyCharacters(out, 0, v, 0, TRACE_TEXT_LIMIT) < 0) { Py_DECREF(out); return NULL; }
    PyUnicode_WRITE(PyUnicode_KIND(out), PyUnicode_DATA(out), TRACE_TEXT_LIMIT, ELLIPSIS);
    return out;
}

/* compiler._trace_value: long texts cut, lists copied (never shared with the snapshot) */
static PyObject *trace_value(PyObject *v) {
    if (PyUnicode_Check(v)) {
        if (PyUnicode_GET_LENGTH(v) <= TRACE_TEXT_LIMIT) { Py_INCREF(v); return v; }
        return cut_text(v);
    }
    if (PyList_Check(v) || PyTuple_Check(v)) {
        if (Py_EnterRecursiveCall(" in a rule trace")) return NULL;
        PyObject *seq = PySequence_Fast(v, "a list");
        PyObject *out = seq ? PyList_New(PySequence_Fast_GET_SIZE(seq)) : NULL;
        for (Py_ssize_t i = 0; out && i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = trace_value(PySequence_Fast_GET_ITEM(seq, i));
            if (!item) { Py_CLEAR(out); break; }
            PyList_SET_ITEM(out, i, item);
        }
        Py_XDECREF(seq);
        Py_LeaveRecursiveCall();
        return out;
    }
    Py_INCREF(v);
    return v;
}

static int set_new(PyObject *dict, PyObject *key, PyObject *value) {
    if (!value) return -1;
    int r = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return r;
}

/* compiler._leaf_entry: {field, op, expected, actual} (the compact trace leaves the result out) */
static PyObject *leaf_entry(Program *p, Ctx *x, const Leaf *l) {
    PyObject *actual = value_of(p, x, l->field), *shown;
    if (!actual || !(shown = trace_value(actual))) return NULL;
    /* a copy of the leaf's template {field, op, expected, actual: None}: copying a small dict
       copies its table whole, cheaper than building it key by key */
    PyObject *entry = PyDict_Copy(p->leaf_templates[l - p->leaves]);
    if (!entry) { Py_DECREF(shown); return NULL; }
    if (set_new(entry, k_actual, shown) < 0) {
        Py_DECREF(entry);
        return NULL;
    }
    return entry;
}

/* compiler's record(snap, out, full=False): the leaves that decided, in evaluation order */
static int record_node(Program *p, Ctx *x, int at, PyObject *out) {
    const Node *n = &p->nodes[at];
    int r;
    switch (n->type) {
    case N_LEAF: {
        const Leaf *l = &p->leaves[n->arg];
        r = eval_leaf(p, x, l);
        if (r < 0) return r;
        PyObject *entry = leaf_entry(p, x, l);
        if (!entry || PyList_Append(out, entry) < 0) { Py_XDECREF(entry); return -1; }
        Py_DECREF(entry);
        return r;
    }
    case N_ALL:
        for (int i = 0; i < n->count; i++) {
            r = record_node(p, x, p->kids[n->start + i], out);
            if (r <= 0) return r;
        }
        return 1;
    case N_ANY:
        for (int i = 0; i < n->count; i++) {
            r = record_node(p, x, p->kids[n->start + i], out);
            if (r != 0) return r;
        }
        return 0;
    default:
        r = record_node(p, x, n->arg, out);
        return r < 0 ? r : !r;
    }
}

/* The leaf entries under node `at`, a tree of `all` and leaves that held, in evaluation order
   (compiler._implied_entries: the tests need not run again) */
static int implied_leaves(Program *p, Ctx *x, int at, PyObject *out, Py_ssize_t *next) {
    const Node *n = &p->nodes[at];
    if (n->type == N_LEAF) {
        PyObject *entry = leaf_entry(p, x, &p->leaves[n->arg]);
        if (!entry) return -1;
        PyList_SET_ITEM(out, (*next)++, entry);
        return 0;
    }
    for (int i = 0; i < n->count; i++)
        if (implied_leaves(p, x, p->kids[n->start + i], out, next) < 0) return -1;
    return 0;
}

/* {rule_id, matched: True, leaves} of a rule that matched */
static PyObject *matched_entry(Program *p, Ctx *x, const Group *g, Py_ssize_t rule) {
    int root = g->roots[rule], implied = g->implied[rule];
    PyObject *leaves = PyList_New(implied > 0 ? implied : 0);
    if (!leaves) return NULL;
    Py_ssize_t filled = 0;
    if (root >= 0 && (implied >= 0 ? implied_leaves(p, x, root, leaves, &filled) : record_node(p, x, root, leaves)) < 0) {
        Py_DECREF(leaves);
        return NULL;
    }
    PyObject *entry = PyDict_Copy(p->rule_templates[g->template_base + rule]);  /* {rule_id, matched, leaves} */
    if (entry && PyDict_SetItem(entry, k_leaves, leaves) < 0) Py_CLEAR(entry);
    Py_DECREF(leaves);
    return entry;
}

/* compiler._copy_actions: a fresh dict, with fresh copies of its lists. The dict is copied whole
   (one allocation and a copy of its table), then its list values are replaced by copies, which
   changes values only, as PyDict_Next allows. */
static PyObject *copy_actions(PyObject *then, int has_lists) {
    PyObject *out = PyDict_Copy(then), *key, *value;
    Py_ssize_t pos = 0;
    while (has_lists && out && PyDict_Next(out, &pos, &key, &value)) {
        if (PyList_Check(value) && set_new(out, key, PyList_GetSlice(value, 0, PyList_GET_SIZE(value))) < 0)
            Py_CLEAR(out);
    }
    return out;
}

/* A GroupResult of its four fields (references stolen): allocated and its slots filled as its
   __init__ would (the class is frozen, so nothing else can write them). */
static PyObject *new_result(Program *p, const Group *g, PyObject *ids, PyObject *actions, PyObject *trace) {
    PyTypeObject *type = (PyTypeObject *)p->result_type;
    PyObject *result = NULL;
    if (ids && actions && trace && (result = type->tp_alloc(type, 0)) != NULL) {
        PyObject *values[RESULT_FIELDS] = {g->name, ids, actions, trace};
        Py_INCREF(g->name);
        for (int i = 0; i < RESULT_FIELDS; i++)
            *(PyObject **)((char *)result + p->result_offsets[i]) = values[i];
        return result;
    }
    Py_XDECREF(ids); Py_XDECREF(actions); Py_XDECREF(trace);
    return NULL;
}

/* The GroupResult of group g, with the compact trace, on a snapshot read through x */
static PyObject *group_result(Program *p, Ctx *x, const Group *g) {
    uint64_t mask[MAX_MASK_WORDS + 1];
    Py_ssize_t index = -1;
    if (run_group(p, x, g, &index, mask) < 0) return NULL;
    if (g->first) {
        if (index < 0) return new_result(p, g, PyList_New(0), PyDict_New(), PyList_New(0));
        PyObject *ids = PyList_New(1), *trace = PyList_New(1), *entry = NULL;
        if (ids) { PyObject *id = PyTuple_GET_ITEM(g->ids, index); Py_INCREF(id); PyList_SET_ITEM(ids, 0, id); }
        if (trace && (entry = matched_entry(p, x, g, index)) != NULL) PyList_SET_ITEM(trace, 0, entry);
        else Py_CLEAR(trace);
        return new_result(p, g, ids, trace ? copy_actions(PyTuple_GET_ITEM(g->thens, index), g->has_lists[index]) : NULL,
                          trace);
    }
    PyObject *key = mask_int(g, mask), *found = NULL;
    if (!key) return NULL;
    found = PyDict_GetItemWithError(g->seen, key);  /* (indices, merged actions, outcome) */
    if (found) Py_INCREF(found);
    else if (!PyErr_Occurred()) found = PyObject_CallOneArg(g->combine, key);
    Py_DECREF(key);
    if (!found) return NULL;
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(found, 0))
        || !PyDict_Check(PyTuple_GET_ITEM(found, 1))) {
        Py_DECREF(found);
        PyErr_SetString(PyExc_TypeError, "combination() must return (indices, actions, outcome)");
        return NULL;
    }
    PyObject *indices = PyTuple_GET_ITEM(found, 0);
    Py_ssize_t n = PyTuple_GET_SIZE(indices);
    PyObject *ids = PyList_New(n), *trace = PyList_New(n);
    for (Py_ssize_t i = 0; ids && trace && i < n; i++) {
        Py_ssize_t rule = PyLong_AsSsize_t(PyTuple_GET_ITEM(indices, i));
        if (rule < 0 || rule >= g->n_rules) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "rule index out of range");
            Py_CLEAR(trace);
            break;
        }
        PyObject *id = PyTuple_GET_ITEM(g->ids, rule), *entry = matched_entry(p, x, g, rule);
        Py_INCREF(id);
        PyList_SET_ITEM(ids, i, id);
        if (!entry) { Py_CLEAR(trace); break; }
        PyList_SET_ITEM(trace, i, entry);
    }
    PyObject *result = new_result(p, g, ids, trace ? copy_actions(PyTuple_GET_ITEM(found, 1), 1) : NULL, trace);
    Py_DECREF(found);
    return result;
}

static int offers_results(Program *p) {
    if (p->result_type != Py_None) return 1;
    PyErr_SetString(PyExc_TypeError, "this program was built without a result type");
    return 0;
}

/* program.evaluate(snapshot) -> GroupResult of the first group, with the compact trace */
static PyObject *Program_evaluate(Program *p, PyObject *snap) {
    Ctx x;
    if (!offers_results(p) || ctx_init(p, &x, snap) < 0) return NULL;
    PyObject *result = group_result(p, &x, &p->groups[0]);
    ctx_clear(p, &x);
    return result;
}

/* program.results(snapshot) -> every group's GroupResult, in order, on one reading of the snapshot
   (a text is folded and scanned once for all groups) */
static PyObject *Program_results(Program *p, PyObject *snap) {
    Ctx x;
    if (!offers_results(p) || ctx_init(p, &x, snap) < 0) return NULL;
    PyObject *out = PyTuple_New(p->n_groups);
    for (int gi = 0; out && gi < p->n_groups; gi++) {
        PyObject *result = group_result(p, &x, &p->groups[gi]);
        if (!result) { Py_CLEAR(out); break; }
        PyTuple_SET_ITEM(out, gi, result);
    }
    ctx_clear(p, &x);
    return out;
}

static void Program_free_tables(Program *p) {
    for (int f = 0; f < p->n_fields; f++) Py_XDECREF(p->fields ? p->fields[f] : NULL);
    for (int t = 0; t < p->n_texts; t++) Py_XDECREF(p->scanners ? (PyObject *)p->scanners[t] : NULL);
    for (int l = 0; p->leaves && l < p->n_leaves; l++) {
        Py_XDECREF(p->leaves[l].a); Py_XDECREF(p->leaves[l].b); PyMem_Free(p->leaves[l].bits);
        Py_XDECREF(p->leaves[l].t_field); Py_XDECREF(p->leaves[l].t_op); Py_XDECREF(p->leaves[l].t_expected);
    }
    for (int g = 0; p->groups && g < p->n_groups; g++) {
        PyMem_Free(p->groups[g].roots); PyMem_Free(p->groups[g].entries);
        PyMem_Free(p->groups[g].implied); PyMem_Free(p->groups[g].has_lists);
        Py_XDECREF(p->groups[g].outcomes); Py_XDECREF(p->groups[g].seen); Py_XDECREF(p->groups[g].combine);
        Py_XDECREF(p->groups[g].name); Py_XDECREF(p->groups[g].ids); Py_XDECREF(p->groups[g].thens);
    }
    for (int l = 0; p->leaf_templates && l < p->n_leaves; l++) Py_XDECREF(p->leaf_templates[l]);
    PyMem_Free(p->leaf_templates); p->leaf_templates = NULL;
    for (int r = 0; p->rule_templates && r < p->n_rule_templates; r++) Py_XDECREF(p->rule_templates[r]);
    PyMem_Free(p->rule_templates); p->rule_templates = NULL;
    PyMem_Free(p->fields); PyMem_Free(p->text_field); PyMem_Free(p->scanners); PyMem_Free(p->leaves);
    PyMem_Free(p->nodes); PyMem_Free(p->kids); PyMem_Free(p->groups); PyMem_Free(p->ops);
    p->ops = NULL;
    Py_XDECREF(p->fold);
    Py_CLEAR(p->result_type);
    p->fields = NULL; p->scanners = NULL; p->leaves = NULL; p->groups = NULL;
}

static int as_int(PyObject *tuple, Py_ssize_t i, int *out) {
    long v = PyLong_AsLong(PyTuple_GET_ITEM(tuple, i));
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int)v;
    return 0;
}

/* item k of a spec tuple, as a reference the program keeps */
static inline PyObject *owned(PyObject *spec, Py_ssize_t k) {
    PyObject *item = PyTuple_GET_ITEM(spec, k);
    Py_INCREF(item);
    return item;
}

static int bad(const char *what) {
    PyErr_Format(PyExc_ValueError, "native program: %s", what);
    return -1;
}

/* How many leaves a condition of only `all` nodes and leaves has; -1 when it has `any` or `not` */
static int implied_count(Program *p, int at) {
    const Node *n = &p->nodes[at];
    if (n->type == N_LEAF) return 1;
    if (n->type != N_ALL) return -1;
    int total = 0;
    for (int i = 0; i < n->count; i++) {
        int k = implied_count(p, p->kids[n->start + i]);
        if (k < 0) return -1;
        total += k;
    }
    return total;
}

/* The result type must keep group, rule_ids, actions and trace in object slots (__slots__), with
   the default allocator and no __new__ of its own, so that a result can be allocated and filled
   without calls; their offsets go to `offsets`. */
static int result_slots(PyObject *type, Py_ssize_t *offsets) {
    PyObject *names[RESULT_FIELDS] = {k_group, k_rule_ids, k_actions, k_trace};
    if (!PyType_Check(type)) return bad("the result type must be a class");
    PyTypeObject *t = (PyTypeObject *)type;
    if (t->tp_new != PyBaseObject_Type.tp_new || t->tp_alloc != PyType_GenericAlloc)
        return bad("the result type must not have its own __new__ or allocator");
    for (int i = 0; i < RESULT_FIELDS; i++) {
        PyObject *descr = PyObject_GetAttr(type, names[i]);
        if (!descr && !PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();
        /* a slot of this class or a base: a member descriptor of another class (assigned as a
           class attribute) would give an offset into some other layout */
        int ok = descr && Py_IS_TYPE(descr, &PyMemberDescr_Type)
                 && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX
                 && PyType_IsSubtype(t, ((PyMemberDescrObject *)descr)->d_common.d_type);
        if (ok) offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_XDECREF(descr);
        if (!ok) return bad("the result type must keep group, rule_ids, actions and trace in __slots__");
    }
    return 0;
}

/* Program(fields, texts, leaves, nodes, kids, groups, fold, result_type, ops); see native.py */
static int Program_init(Program *p, PyObject *args, PyObject *kwds) {
    PyObject *fields, *texts, *leaves, *nodes, *kids, *groups, *fold, *result_type, *ops;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!OOO!:Program", &PyTuple_Type, &fields, &PyTuple_Type, &texts,
                          &PyTuple_Type, &leaves, &PyTuple_Type, &nodes, &PyTuple_Type, &kids,
                          &PyTuple_Type, &groups, &fold, &result_type, &PyTuple_Type, &ops))
        return -1;
    if (p->fields) Program_free_tables(p);
    Py_INCREF(fold); p->fold = fold;
    p->n_fields = (int)PyTuple_GET_SIZE(fields);
    p->n_texts = (int)PyTuple_GET_SIZE(texts);
    p->n_leaves = (int)PyTuple_GET_SIZE(leaves);
    p->n_nodes = (int)PyTuple_GET_SIZE(nodes);
    p->n_groups = (int)PyTuple_GET_SIZE(groups);
    if (p->n_fields > MAX_FIELDS) { PyErr_Format(PyExc_OverflowError, "%d fields, at most %d", p->n_fields, MAX_FIELDS); return -1; }
    if (p->n_texts > MAX_TEXTS) { PyErr_Format(PyExc_OverflowError, "%d text fields, at most %d", p->n_texts, MAX_TEXTS); return -1; }
    p->fields = PyMem_Calloc(p->n_fields + 1, sizeof(PyObject *));
    p->text_field = PyMem_Calloc(p->n_texts + 1, sizeof(int));
    p->scanners = PyMem_Calloc(p->n_texts + 1, sizeof(Scanner *));
    p->leaves = PyMem_Calloc(p->n_leaves + 1, sizeof(Leaf));
    p->nodes = PyMem_Calloc(p->n_nodes + 1, sizeof(Node));
    p->kids = PyMem_Calloc(PyTuple_GET_SIZE(kids) + 1, sizeof(int));
    p->groups = PyMem_Calloc(p->n_groups + 1, sizeof(Group));
    if (!p->fields || !p->text_field || !p->scanners || !p->leaves || !p->nodes || !p->kids || !p->groups) {
        PyErr_NoMemory();
        return -1;
    }
    for (int f = 0; f < p->n_fields; f++) {
        PyObject *name = PyTuple_GET_ITEM(fields, f);
        if (!PyUnicode_CheckExact(name)) return bad("field names must be str");
        Py_INCREF(name); p->fields[f] = name;
    }
    for (int t = 0; t < p->n_texts; t++) {
        PyObject *spec = PyTuple_GET_ITEM(texts, t);  /* (field, Scanner) */
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2 || !PyObject_TypeCheck(PyTuple_GET_ITEM(spec, 1), &ScannerType))
            return bad("a text is (field, Scanner)");
        if (as_int(spec, 0, &p->text_field[t]) < 0) return -1;
        if (p->text_field[t] < 0 || p->text_field[t] >= p->n_fields) return bad("text field out of range");
        p->scanners[t] = (Scanner *)owned(spec, 1);
    }
    for (int i = 0; i < p->n_leaves; i++) {
        /* (kind, field, text, op, want, a, b, keyword ids or None, trace field, op, expected) */
        PyObject *spec = PyTuple_GET_ITEM(leaves, i);
        Leaf *l = &p->leaves[i];
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 11) return bad("a leaf has 11 entries");
        l->t_field = owned(spec, 8);
        l->t_op = owned(spec, 9);
        l->t_expected = owned(spec, 10);
        if (as_int(spec, 0, &l->kind) < 0 || as_int(spec, 1, &l->field) < 0 || as_int(spec, 2, &l->text) < 0
            || as_int(spec, 3, &l->op) < 0 || as_int(spec, 4, &l->want) < 0)
            return -1;
        if (l->kind < 0 || l->kind >= L_KINDS) return bad("unknown leaf kind");
        if (l->field < 0 || l->field >= p->n_fields) return bad("leaf field out of range");
        int texty = l->kind >= L_TEXT_ANY && l->kind <= L_TEXT_MATCHES;
        if (texty && (l->text < 0 || l->text >= p->n_texts)) return bad("leaf text out of range");
        if (l->kind == L_NUM_CMP && (l->op < Py_LT || l->op > Py_GE)) return bad("unknown comparison");
        l->a = owned(spec, 5);
        l->b = owned(spec, 6);
        if (l->kind == L_TEXT_ANY || l->kind == L_TEXT_ALL) {
            const Scanner *s = p->scanners[l->text];
            PyObject *ids = PyTuple_GET_ITEM(spec, 7);
            if (!PyTuple_Check(ids)) return bad("keyword ids must be a tuple");
            l->bits = PyMem_Calloc(s->n_u64, sizeof(uint64_t));
            if (!l->bits) { PyErr_NoMemory(); return -1; }
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ids); k++) {
                int id;
                if (as_int(ids, k, &id) < 0) return -1;
                if (id < 0 || id >= s->n_keywords) return bad("keyword id out of range");
                l->bits[id >> 6] |= (uint64_t)1 << (id & 63);
            }
            l->lo = s->n_u64;
            l->hi = 0;
            for (int w = 0; w < s->n_u64; w++)
                if (l->bits[w]) { if (w < l->lo) l->lo = w; l->hi = w + 1; }
            if (l->hi == 0) l->lo = 0;  /* no keyword: contains_any is false, contains_all true */
        }
        if (PyFrozenSet_Check(l->a) && PySet_GET_SIZE(l->a) <= SMALL_SET) {
            PyObject *it = PyObject_GetIter(l->a), *item;
            int all_interned = 1;
            if (!it) return -1;
            while ((item = PyIter_Next(it)) != NULL) {
                if (!PyUnicode_CheckExact(item) || !PyUnicode_CHECK_INTERNED(item)) all_interned = 0;
                else l->few[l->n_few++] = item;  /* kept borrowed: the set, which the leaf holds, holds it */
                Py_DECREF(item);
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) return -1;
            if (!all_interned) l->n_few = 0;
        }
        if ((l->kind == L_TEXT_IN || l->kind == L_TEXT_NOT_IN || l->kind == L_ENUM_IN || l->kind == L_ENUM_NOT_IN
             || l->kind == L_NUM_IN || l->kind == L_NUM_NOT_IN || l->kind == L_LIST_ANY || l->kind == L_LIST_ALL)
            && !PyFrozenSet_Check(l->a))
            return bad("a set test needs a frozenset");
        if (l->kind == L_TEXT_STARTS && !PyUnicode_Check(l->a)) return bad("starts_with needs a str");
    }
    Py_ssize_t n_kids = PyTuple_GET_SIZE(kids);
    for (Py_ssize_t i = 0; i < n_kids; i++) {
        if (as_int(kids, i, &p->kids[i]) < 0) return -1;
        if (p->kids[i] < 0 || p->kids[i] >= p->n_nodes) return bad("child node out of range");
    }
    for (int i = 0; i < p->n_nodes; i++) {
        PyObject *spec = PyTuple_GET_ITEM(nodes, i);  /* (type, arg, start, count) */
        Node *n = &p->nodes[i];
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4) return bad("a node has 4 entries");
        if (as_int(spec, 0, &n->type) < 0 || as_int(spec, 1, &n->arg) < 0 || as_int(spec, 2, &n->start) < 0
            || as_int(spec, 3, &n->count) < 0)
            return -1;
        if (n->type == N_LEAF && (n->arg < 0 || n->arg >= p->n_leaves)) return bad("node leaf out of range");
        /* children come before their parent, so evaluation cannot loop */
        if (n->type == N_NOT && (n->arg < 0 || n->arg >= i)) return bad("node child out of range");
        if ((n->type == N_ALL || n->type == N_ANY)) {
            if (n->start < 0 || n->count < 0 || n->start + n->count > n_kids) return bad("node children out of range");
            for (int k = 0; k < n->count; k++) if (p->kids[n->start + k] >= i) return bad("a child must come first");
        }
        if (n->type < N_LEAF || n->type > N_NOT) return bad("unknown node type");
    }
    p->n_ops = (int)PyTuple_GET_SIZE(ops);
    p->ops = PyMem_Calloc(p->n_ops + 1, sizeof(Op));
    if (!p->ops) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < p->n_ops; i++) {
        PyObject *spec = PyTuple_GET_ITEM(ops, i);  /* (leaf, if_true, if_false) */
        Op *o = &p->ops[i];
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 3) return bad("an op has 3 entries");
        if (as_int(spec, 0, &o->leaf) < 0 || as_int(spec, 1, &o->if_true) < 0 || as_int(spec, 2, &o->if_false) < 0)
            return -1;
        if (o->leaf < 0 || o->leaf >= p->n_leaves) return bad("op leaf out of range");
        /* jumps go to earlier ops or end: evaluation cannot loop */
        if (o->if_true >= i || o->if_true < CODE_TRUE || o->if_false >= i || o->if_false < CODE_TRUE)
            return bad("an op must jump to an earlier op or end");
    }
    for (int gi = 0; gi < p->n_groups; gi++) {
        /* (first, roots, outcomes, seen, combine, name, rule ids, rule actions, first ops) */
        PyObject *spec = PyTuple_GET_ITEM(groups, gi);
        Group *g = &p->groups[gi];
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 9) return bad("a group has 9 entries");
        g->name = owned(spec, 5);
        g->ids = owned(spec, 6);
        g->thens = owned(spec, 7);
        if (as_int(spec, 0, &g->first) < 0) return -1;
        PyObject *roots = PyTuple_GET_ITEM(spec, 1);
        if (!PyTuple_Check(roots)) return bad("roots must be a tuple");
        g->n_rules = (int)PyTuple_GET_SIZE(roots);
        if (!g->first && g->n_rules > MAX_MASK_WORDS * 64) {
            PyErr_Format(PyExc_OverflowError, "%d rules in a match-all group, at most %d", g->n_rules, MAX_MASK_WORDS * 64);
            return -1;
        }
        PyObject *entries = PyTuple_GET_ITEM(spec, 8);
        if (!PyTuple_Check(entries) || PyTuple_GET_SIZE(entries) != g->n_rules) return bad("one first op per rule");
        g->roots = PyMem_Calloc(g->n_rules + 1, sizeof(int));
        g->entries = PyMem_Calloc(g->n_rules + 1, sizeof(int));
        g->implied = PyMem_Calloc(g->n_rules + 1, sizeof(int));
        g->has_lists = PyMem_Calloc(g->n_rules + 1, 1);
        if (!g->roots || !g->entries || !g->implied || !g->has_lists) { PyErr_NoMemory(); return -1; }
        for (int r = 0; r < g->n_rules; r++) {
            if (as_int(roots, r, &g->roots[r]) < 0 || as_int(entries, r, &g->entries[r]) < 0) return -1;
            if (g->roots[r] >= p->n_nodes) return bad("rule root out of range");
            if (g->entries[r] >= p->n_ops || g->entries[r] < CODE_TRUE) return bad("rule op out of range");
            g->implied[r] = g->roots[r] < 0 ? 0 : implied_count(p, g->roots[r]);
        }
        g->outcomes = owned(spec, 2);
        g->seen = owned(spec, 3);
        g->combine = owned(spec, 4);
        if (g->first && (!PyTuple_Check(g->outcomes) || PyTuple_GET_SIZE(g->outcomes) != g->n_rules + 1))
            return bad("a first group has one outcome per rule and one for no match");
        if (!g->first && (!PyDict_Check(g->seen) || !PyCallable_Check(g->combine)))
            return bad("an all group needs a dict and a callable");
        if (!PyTuple_Check(g->ids) || PyTuple_GET_SIZE(g->ids) != g->n_rules
            || !PyTuple_Check(g->thens) || PyTuple_GET_SIZE(g->thens) != g->n_rules)
            return bad("a group has one id and one action dict per rule");
        for (int r = 0; r < g->n_rules; r++) {
            PyObject *then = PyTuple_GET_ITEM(g->thens, r), *key, *value;
            if (!PyDict_Check(then)) return bad("actions must be a dict");
            for (Py_ssize_t pos = 0; PyDict_Next(then, &pos, &key, &value);) if (PyList_Check(value)) g->has_lists[r] = 1;
        }
    }
    p->leaf_templates = PyMem_Calloc(p->n_leaves + 1, sizeof(PyObject *));
    if (!p->leaf_templates) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < p->n_leaves; i++) {
        const Leaf *l = &p->leaves[i];
        PyObject *t = p->leaf_templates[i] = PyDict_New();
        if (!t || PyDict_SetItem(t, k_field, l->t_field) < 0 || PyDict_SetItem(t, k_op, l->t_op) < 0
            || PyDict_SetItem(t, k_expected, l->t_expected) < 0 || PyDict_SetItem(t, k_actual, Py_None) < 0)
            return -1;
    }
    int rules = 0;
    for (int gi = 0; gi < p->n_groups; gi++) { p->groups[gi].template_base = rules; rules += p->groups[gi].n_rules; }
    p->rule_templates = PyMem_Calloc(rules + 1, sizeof(PyObject *));
    if (!p->rule_templates) { PyErr_NoMemory(); return -1; }
    p->n_rule_templates = rules;
    for (int gi = 0; gi < p->n_groups; gi++) {
        const Group *g = &p->groups[gi];
        for (int r = 0; r < g->n_rules; r++) {
            PyObject *t = p->rule_templates[g->template_base + r] = PyDict_New();
            if (!t || PyDict_SetItem(t, k_rule_id, PyTuple_GET_ITEM(g->ids, r)) < 0
                || PyDict_SetItem(t, k_matched, Py_True) < 0 || PyDict_SetItem(t, k_leaves, Py_None) < 0)
                return -1;
        }
    }
    if (result_type != Py_None && result_slots(result_type, p->result_offsets) < 0) return -1;
    Py_INCREF(result_type); p->result_type = result_type;
    p->vectorcall = (vectorcallfunc)Program_vectorcall;
    return 0;
}

static void Program_dealloc(Program *p) {
    Program_free_tables(p);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMethodDef Program_methods[] = {
    {"index", (PyCFunction)Program_index, METH_O,
     "index(snapshot) -> the first group's first matching rule (-1: none), or its mask of matches"},
    {"evaluate", (PyCFunction)Program_evaluate, METH_O,
     "evaluate(snapshot) -> the first group's GroupResult, with the compact trace"},
    {"results", (PyCFunction)Program_results, METH_O,
     "results(snapshot) -> every group's GroupResult, in order, with the compact trace"},
    {NULL}
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.ruleset._native.Program",
    .tp_basicsize = sizeof(Program),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Program, vectorcall),
    .tp_doc = "Groups of rules as tables; calling it with a snapshot returns the groups' outcomes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Program_init,
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_methods = Program_methods,
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "engine.ruleset._native",
    "The native rule evaluator; built from engine/ruleset/native.py, which documents it.", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    for (int c = 0; c < 128; c++) ascii_word[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&ProgramType) < 0) return NULL;
    if (!(k_field = PyUnicode_InternFromString("field")) || !(k_op = PyUnicode_InternFromString("op"))
        || !(k_expected = PyUnicode_InternFromString("expected")) || !(k_actual = PyUnicode_InternFromString("actual"))
        || !(k_rule_id = PyUnicode_InternFromString("rule_id")) || !(k_matched = PyUnicode_InternFromString("matched"))
        || !(k_leaves = PyUnicode_InternFromString("leaves")) || !(k_group = PyUnicode_InternFromString("group"))
        || !(k_rule_ids = PyUnicode_InternFromString("rule_ids")) || !(k_actions = PyUnicode_InternFromString("actions"))
        || !(k_trace = PyUnicode_InternFromString("trace")))
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0
        || PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0
        || PyModule_AddIntConstant(m, "TABLES_VERSION", TABLES_VERSION) < 0
        || PyModule_AddIntConstant(m, "KEYWORDS_MAX", MAX_WORDS * 64) < 0
        || PyModule_AddIntConstant(m, "FIELDS_MAX", MAX_FIELDS) < 0
        || PyModule_AddIntConstant(m, "TEXTS_MAX", MAX_TEXTS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
