/* codec_typed.h: typed messages, a part of codec.c (included by it once,
 * after the encoder and decoder, so it uses their static helpers).
 *
 * Owns: the Plan type (the compiled layout of one subactor.msg.Struct
 * class), the encoding of Struct instances (a map of field name -> value,
 * the tag first when the class has one), the "typed mode" of the encoder
 * (set/frozenset as arrays, Enum members by value, enc_hook for the rest)
 * and the validating decoder driven by a type spec.
 *
 * A type spec is a tuple built once per type by subactor/msg/_spec.py:
 * (kind, display name, args...), kinds as SPEC_* below. The decoder reads
 * it with PyTuple_GET_ITEM and never looks at Python annotations.
 *
 * Validation errors are "pending" while they unwind (like the encoder's):
 * no exception is set, each container adds its path segment, and the entry
 * point raises ValidationError("$.points[3].x: expected int, got str").
 *
 * Rules as codec.c: the calling interpreter's state only, no static
 * PyObject*. Python code runs here only in default factories, enc_hook,
 * dec_hook, Literal/Enum comparisons and the datetime/Decimal constructors.
 */

enum {
    SPEC_ANY = 0, SPEC_NONE = 1, SPEC_BOOL = 2, SPEC_INT = 3, SPEC_FLOAT = 4,
    SPEC_STR = 5, SPEC_BYTES = 6, SPEC_LIST = 7, SPEC_VARTUPLE = 8, SPEC_TUPLE = 9,
    SPEC_DICT = 10, SPEC_SET = 11, SPEC_FROZENSET = 12, SPEC_OPTIONAL = 13,
    SPEC_UNION = 14, SPEC_LITERAL = 15, SPEC_ENUM = 16, SPEC_STRUCT = 17,
    SPEC_TAGGED = 18, SPEC_DATETIME = 19, SPEC_DECIMAL = 20, SPEC_CUSTOM = 21,
    SPEC_NKINDS = 22,
};

/* ---------------------------------------------------------------------- */
/* Plan                                                                    */

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;    /* the Struct class */
    Py_ssize_t n;         /* number of fields */
    PyObject *names;      /* tuple of str, in declaration order */
    PyObject *specs;      /* tuple of type specs (one a field), or None until resolved */
    PyObject *defaults;   /* tuple: the default, the factory, or None (dkind) */
    PyObject *tag_field;  /* str, or NULL: untagged */
    PyObject *tag_value;  /* the tag (str or int), or NULL */
    Py_ssize_t *offsets;  /* where each field's slot is in an instance */
    unsigned char *dkind; /* 0: required, 1: default value, 2: default factory */
} plan_t;

static int plan_traverse(PyObject *self, visitproc visit, void *arg)
{
    plan_t *p = (plan_t *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(p->cls);
    Py_VISIT(p->names);
    Py_VISIT(p->specs);
    Py_VISIT(p->defaults);
    Py_VISIT(p->tag_field);
    Py_VISIT(p->tag_value);
    return 0;
}

static int plan_clear(PyObject *self)
{
    plan_t *p = (plan_t *)self;
    Py_CLEAR(p->cls);
    Py_CLEAR(p->names);
    Py_CLEAR(p->specs);
    Py_CLEAR(p->defaults);
    Py_CLEAR(p->tag_field);
    Py_CLEAR(p->tag_value);
    return 0;
}

static void plan_dealloc(PyObject *self)
{
    plan_t *p = (plan_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    plan_clear(self);
    PyMem_Free(p->offsets);
    PyMem_Free(p->dkind);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *plan_repr(PyObject *self)
{
    plan_t *p = (plan_t *)self;
    return PyUnicode_FromFormat("<subactor Struct plan of %s: %zd fields>", p->cls ? p->cls->tp_name : "?", p->n);
}

static PyType_Slot plan_slots[] = {
    {Py_tp_dealloc, plan_dealloc},
    {Py_tp_traverse, plan_traverse},
    {Py_tp_clear, plan_clear},
    {Py_tp_repr, plan_repr},
    {Py_tp_doc, "The compiled layout of one subactor.msg.Struct class (made by _ext.struct_plan)."},
    {0, NULL},
};

static PyType_Spec plan_spec = {
    .name = "subactor._ext.StructPlan",
    .basicsize = sizeof(plan_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = plan_slots,
};

static inline PyObject **plan_slot(plan_t *p, PyObject *obj, Py_ssize_t i)
{
    return (PyObject **)((char *)obj + p->offsets[i]);
}

/* struct_plan(cls, names, defaults, dkinds, tag_field, tag_value): compile
 * and register the plan of a Struct class whose __slots__ hold its fields. */
static PyObject *plan_make(sa_codec_state_t *st, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "struct_plan() takes 6 arguments");
        return NULL;
    }
    PyObject *cls = args[0], *names = args[1], *defaults = args[2], *dkinds = args[3];
    if (!PyType_Check(cls) || !PyTuple_Check(names) || !PyTuple_Check(defaults) || !PyBytes_Check(dkinds) ||
        PyTuple_GET_SIZE(defaults) != PyTuple_GET_SIZE(names) ||
        PyBytes_GET_SIZE(dkinds) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_TypeError, "struct_plan(cls, names: tuple, defaults: tuple, dkinds: bytes, "
                                         "tag_field, tag_value): bad arguments");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    plan_t *p = PyObject_GC_New(plan_t, (PyTypeObject *)st->PlanType);
    if (p == NULL)
        return NULL;
    p->cls = NULL;
    p->names = p->specs = p->defaults = p->tag_field = p->tag_value = NULL;
    p->n = n;
    p->offsets = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    p->dkind = PyMem_Calloc((size_t)n + 1, 1);
    PyObject_GC_Track(p);
    if (p->offsets == NULL || p->dkind == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    p->cls = (PyTypeObject *)Py_NewRef(cls);
    p->names = Py_NewRef(names);
    p->defaults = Py_NewRef(defaults);
    p->specs = Py_NewRef(Py_None);
    if (args[4] != Py_None) {
        p->tag_field = Py_NewRef(args[4]);
        p->tag_value = Py_NewRef(args[5]);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) || PyUnicode_AsUTF8AndSize(name, NULL) == NULL) {
            PyErr_SetString(PyExc_TypeError, "struct_plan(): field names must be str");
            goto error;
        }
        PyObject *descr = PyObject_GetAttr(cls, name);
        if (descr == NULL)
            goto error;
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == Py_T_OBJECT_EX &&
                 PyType_IsSubtype((PyTypeObject *)cls, ((PyMemberDescrObject *)descr)->d_common.d_type);
        if (ok)
            p->offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "struct_plan(): %s.%U is not a slot of the class",
                         ((PyTypeObject *)cls)->tp_name, name);
            goto error;
        }
        p->dkind[i] = (unsigned char)PyBytes_AS_STRING(dkinds)[i];
    }
    if (PyDict_SetItem(st->plans, cls, (PyObject *)p) < 0)
        goto error;
    return (PyObject *)p;
error:
    Py_DECREF(p);
    return NULL;
}

static PyObject *codec_struct_plan(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    return plan_make(&sa_state(mod)->codec, args, nargs);
}

/* struct_plan_resolve(plan, specs): the field types, once they resolve. */
static PyObject *plan_resolve(sa_codec_state_t *st, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !Py_IS_TYPE(args[0], (PyTypeObject *)st->PlanType) || !PyTuple_Check(args[1]) ||
        PyTuple_GET_SIZE(args[1]) != ((plan_t *)args[0])->n) {
        PyErr_SetString(PyExc_TypeError, "struct_plan_resolve(plan, specs: tuple of one spec a field)");
        return NULL;
    }
    Py_XSETREF(((plan_t *)args[0])->specs, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyObject *codec_struct_plan_resolve(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    return plan_resolve(&sa_state(mod)->codec, args, nargs);
}

/* ---------------------------------------------------------------------- */
/* Encoder: Structs, typed mode, ext 16/17, enc_hook                       */

/* The class `attr` of module `modname` if that module is imported (an
 * object of the class cannot exist otherwise), cached in *slot. Borrowed
 * or NULL (no exception). */
static PyObject *codec_class_if_loaded(PyObject **slot, const char *modname, const char *attr)
{
    if (*slot != NULL)
        return *slot;
    PyObject *name = PyUnicode_FromString(modname);
    PyObject *mod = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    if (mod == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *c = PyObject_GetAttrString(mod, attr);
    Py_DECREF(mod);
    if (c == NULL || !PyType_Check(c)) {
        PyErr_Clear();
        Py_XDECREF(c);
        return NULL;
    }
    *slot = c;
    return c;
}

static int enc_struct(enc_t *e, plan_t *p, PyObject *obj, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return enc_depth_error();
    size_t count = (size_t)p->n + (p->tag_field != NULL);
    if (enc_header(e, count, 15, 0x80, 0, 0xde, 0xdf, "Struct", 0) < 0)
        return -1;
    int saved = e->typed;
    e->typed = 1;
    int r = 0;
    if (p->tag_field != NULL && (enc_str(e, p->tag_field) < 0 || enc_obj(e, p->tag_value, depth + 1) < 0)) {
        r = -1;
        goto done;
    }
    Py_INCREF(obj);
    for (Py_ssize_t i = 0; i < p->n; i++) {
        PyObject *name = PyTuple_GET_ITEM(p->names, i);
        PyObject *v = *plan_slot(p, obj, i);
        if (v == NULL) {
            r = enc_fail(e, e->st->EncodeError, NULL, "", "field '%U' of %s is unset", name, p->cls->tp_name);
            break;
        }
        if (enc_str(e, name) < 0) {
            r = -1;
            break;
        }
        Py_INCREF(v);
        r = enc_obj(e, v, depth + 1);
        Py_DECREF(v);
        if (r < 0) {
            if (e->path != NULL)
                enc_path_push(e, PyUnicode_FromFormat(".%U", name));
            break;
        }
    }
    Py_DECREF(obj);
done:
    e->typed = saved;
    return r;
}

/* A set or frozenset, in typed mode: an array of its items. */
static int enc_set(enc_t *e, PyObject *obj, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return enc_depth_error();
    PyObject *items = PySequence_List(obj);
    if (items == NULL)
        return -1;
    int r = enc_list(e, items, depth);
    Py_DECREF(items);
    return r;
}

/* ext 16 (datetime, ISO 8601 text) and 17 (Decimal, its str). */
static int enc_text_ext(enc_t *e, int8_t code, PyObject *obj, const char *meth)
{
    PyObject *s = meth ? PyObject_CallMethod(obj, meth, NULL) : PyObject_Str(obj);
    if (s == NULL)
        return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
    int r = u ? enc_ext(e, code, u, (size_t)n) : -1;
    if (u == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "isoformat()/str() did not return str");
    Py_DECREF(s);
    return r;
}

/* Types enc_other() knows beyond the generic ones: 1 if it encoded obj
 * (r set), 0 if not. */
static int enc_typed_other(enc_t *e, PyObject *obj, int depth, int *r)
{
    sa_codec_state_t *st = e->st;
    if (PyDict_GET_SIZE(st->plans) != 0) {
        PyObject *p = PyDict_GetItemWithError(st->plans, (PyObject *)Py_TYPE(obj)); /* borrowed */
        if (p != NULL) {
            *r = enc_struct(e, (plan_t *)p, obj, depth);
            return 1;
        }
        if (PyErr_Occurred()) {
            *r = -1;
            return 1;
        }
    }
    PyObject *c;
    if ((c = codec_class_if_loaded(&st->datetime_type, "datetime", "datetime")) != NULL &&
        PyObject_TypeCheck(obj, (PyTypeObject *)c)) {
        *r = enc_text_ext(e, 16, obj, "isoformat");
        return 1;
    }
    if ((c = codec_class_if_loaded(&st->decimal_type, "decimal", "Decimal")) != NULL &&
        PyObject_TypeCheck(obj, (PyTypeObject *)c)) {
        *r = enc_text_ext(e, 17, obj, NULL);
        return 1;
    }
    if (e->typed) {
        if (PyAnySet_Check(obj)) {
            *r = enc_set(e, obj, depth);
            return 1;
        }
        if ((c = codec_class_if_loaded(&st->enum_type, "enum", "Enum")) != NULL &&
            PyObject_TypeCheck(obj, (PyTypeObject *)c)) {
            PyObject *v = PyObject_GetAttrString(obj, "value");
            if (v == NULL) {
                *r = -1;
                return 1;
            }
            *r = depth >= SA_CODEC_MAX_DEPTH ? enc_depth_error() : enc_obj(e, v, depth + 1);
            Py_DECREF(v);
            return 1;
        }
    }
    if (e->enc_hook != NULL) {
        if (depth >= SA_CODEC_MAX_DEPTH) {
            *r = enc_depth_error();
            return 1;
        }
        PyObject *v = PyObject_CallOneArg(e->enc_hook, obj);
        if (v == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                *r = -1;
                return 1;
            }
            *r = enc_fail(e, st->EncodeError, PyErr_GetRaisedException(), "",
                          "enc_hook failed on an object of type '" SA_TYPE_FMT "'", SA_TYPE_ARG(obj));
            return 1;
        }
        PyObject *hook = e->enc_hook;
        if (Py_TYPE(v) == Py_TYPE(obj))
            e->enc_hook = NULL; /* a hook that returns its input's type: don't loop */
        *r = enc_obj(e, v, depth + 1);
        e->enc_hook = hook;
        Py_DECREF(v);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Generic decode of ext 16/17                                             */

static PyObject *dec_text_ext(dec_t *d, const unsigned char *at, const unsigned char *p, size_t n, int code)
{
    sa_codec_state_t *st = d->st;
    PyObject **slot = code == 16 ? &st->datetime_fromiso : &st->decimal_ctor;
    if (*slot == NULL) {
        PyObject *mod = PyImport_ImportModule(code == 16 ? "datetime" : "decimal");
        PyObject *c = mod ? PyObject_GetAttrString(mod, code == 16 ? "datetime" : "Decimal") : NULL;
        Py_XDECREF(mod);
        if (c != NULL && code == 16) {
            PyObject *f = PyObject_GetAttrString(c, "fromisoformat");
            Py_SETREF(c, f);
        }
        if (c == NULL)
            return NULL;
        *slot = c;
    }
    PyObject *s = dec_utf8(d, at, p, n);
    if (s == NULL)
        return NULL;
    PyObject *v = PyObject_CallOneArg(*slot, s);
    Py_DECREF(s);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_Exception))
        return dec_error(d, at, 1, "ext %d (%s) with an invalid payload", code,
                         code == 16 ? "datetime" : "Decimal");
    return v;
}

/* ---------------------------------------------------------------------- */
/* Validating decoder                                                      */

/* Start a pending validation error (see the top). Returns NULL. */
static PyObject *dec_verr(dec_t *d, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    PyObject *path = msg ? PyList_New(0) : NULL;
    if (path == NULL) {
        Py_XDECREF(msg);
        return NULL;
    }
    d->vpath = path;
    d->vmsg = msg;
    return NULL;
}

static void dec_vdrop(dec_t *d)
{
    Py_CLEAR(d->vpath);
    Py_CLEAR(d->vmsg);
}

/* Add a path segment (stolen) to a pending validation error, if any. */
static void dec_vpush(dec_t *d, PyObject *seg)
{
    if (d->vpath == NULL) {
        Py_XDECREF(seg);
        return;
    }
    if (seg == NULL || PyList_Append(d->vpath, seg) < 0)
        dec_vdrop(d);
    Py_XDECREF(seg);
}

static const char *wire_name(unsigned char c)
{
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
        return "int";
    if (c <= 0x8f || c == 0xde || c == 0xdf)
        return "map";
    if (c <= 0x9f || c == 0xdc || c == 0xdd)
        return "array";
    if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
        return "str";
    switch (c) {
    case 0xc0: return "None";
    case 0xc2: case 0xc3: return "bool";
    case 0xc4: case 0xc5: case 0xc6: return "bytes";
    case 0xca: case 0xcb: return "float";
    case 0xc1: return "invalid byte 0xc1";
    default: return "ext";
    }
}

static inline int is_int_byte(unsigned char c)
{
    return c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3);
}

/* The ext type code of the ext whose header byte is at p (-256: not an
 * ext or truncated). */
static int peek_ext_code(dec_t *d, const unsigned char *p)
{
    size_t left = (size_t)(d->end - p);
    unsigned char c = *p;
    size_t skip;
    if (c >= 0xd4 && c <= 0xd8)
        skip = 1;
    else if (c >= 0xc7 && c <= 0xc9)
        skip = 1 + ((size_t)1 << (c - 0xc7));
    else
        return -256;
    return left > skip ? (int)(int8_t)p[skip] : -256;
}

static inline long spec_kind(PyObject *spec)
{
    return PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
}

#define SPEC_NAME(spec) PyTuple_GET_ITEM(spec, 1)
#define SPEC_ARG(spec, i) PyTuple_GET_ITEM(spec, 2 + (i))

static PyObject *dec_typed(dec_t *d, PyObject *spec, int depth);

static PyObject *dec_mismatch(dec_t *d, PyObject *spec, unsigned char c)
{
    return dec_verr(d, "expected %U, got %s", SPEC_NAME(spec), wire_name(c));
}

/* Read an array header at d->p: 1 and *n, 0 if it is not an array (nothing
 * read), -1 on error. */
static int dec_array_header(dec_t *d, size_t *n)
{
    unsigned char c = *d->p;
    const unsigned char *at = d->p;
    if (c >= 0x90 && c <= 0x9f) {
        d->p++;
        *n = c & 0x0f;
    } else if (c == 0xdc || c == 0xdd) {
        d->p++;
        if (dec_len(d, at, c == 0xdc ? 2 : 4, "array length", n) < 0)
            return -1;
    } else {
        return 0;
    }
    if (*n > dec_left(d)) {
        dec_error(d, at, 0, "truncated input: array of %zu items but only %zu bytes are left", *n, dec_left(d));
        return -1;
    }
    return 1;
}

static int dec_map_header(dec_t *d, size_t *n)
{
    unsigned char c = *d->p;
    const unsigned char *at = d->p;
    if (c >= 0x80 && c <= 0x8f) {
        d->p++;
        *n = c & 0x0f;
    } else if (c == 0xde || c == 0xdf) {
        d->p++;
        if (dec_len(d, at, c == 0xde ? 2 : 4, "map length", n) < 0)
            return -1;
    } else {
        return 0;
    }
    if (*n > dec_left(d) / 2) {
        dec_error(d, at, 0, "truncated input: map of %zu entries but only %zu bytes are left", *n, dec_left(d));
        return -1;
    }
    return 1;
}

/* Read a str header and its bytes without making a str: 1 (*s, *n), 0 if
 * not a str (nothing read), -1 on error. */
static int dec_raw_str(dec_t *d, const unsigned char **s, size_t *n)
{
    const unsigned char *at = d->p;
    unsigned char c = *d->p;
    if (c >= 0xa0 && c <= 0xbf) {
        d->p++;
        *n = c & 0x1f;
    } else if (c >= 0xd9 && c <= 0xdb) {
        d->p++;
        if (dec_len(d, at, 1 << (c - 0xd9), "str length", n) < 0)
            return -1;
    } else {
        return 0;
    }
    if (dec_left(d) < *n) {
        dec_truncated(d, at, "str", *n);
        return -1;
    }
    *s = d->p;
    d->p += *n;
    return 1;
}

static inline int str_is(PyObject *name, const unsigned char *s, size_t n)
{
    Py_ssize_t len;
    const char *u = PyUnicode_AsUTF8AndSize(name, &len); /* cached in the str: can't fail here */
    return u != NULL && (size_t)len == n && memcmp(u, s, n) == 0;
}

static PyObject *dec_struct(dec_t *d, plan_t *p, int depth)
{
    const unsigned char *at = d->p;
    if (depth >= SA_CODEC_MAX_DEPTH)
        return dec_depth_error(d, at);
    if (p->specs == Py_None) {
        PyErr_Format(PyExc_RuntimeError, "the field types of %s are not resolved yet", p->cls->tp_name);
        return NULL;
    }
    size_t n;
    int h = dec_map_header(d, &n);
    if (h <= 0)
        return h < 0 ? NULL : dec_verr(d, "expected %s (a map), got %s", p->cls->tp_name, wire_name(*at));
    PyObject *obj = p->cls->tp_alloc(p->cls, 0);
    if (obj == NULL)
        return NULL;
    Py_ssize_t next = 0;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *kat = d->p, *s;
        size_t len;
        if (d->p >= d->end) {
            dec_truncated(d, kat, "a value", 1);
            goto error;
        }
        int r = dec_raw_str(d, &s, &len);
        if (r <= 0) {
            if (r == 0)
                dec_verr(d, "expected a str field name of %s, got %s", p->cls->tp_name, wire_name(*kat));
            goto error;
        }
        Py_ssize_t i = -1;
        if (next < p->n && str_is(PyTuple_GET_ITEM(p->names, next), s, len)) {
            i = next;
        } else {
            for (Py_ssize_t j = 0; j < p->n; j++)
                if (str_is(PyTuple_GET_ITEM(p->names, j), s, len)) {
                    i = j;
                    break;
                }
        }
        if (i >= 0) {
            next = i + 1;
            PyObject *v = dec_typed(d, PyTuple_GET_ITEM(p->specs, i), depth + 1);
            if (v == NULL) {
                dec_vpush(d, PyUnicode_FromFormat(".%U", PyTuple_GET_ITEM(p->names, i)));
                goto error;
            }
            Py_XSETREF(*plan_slot(p, obj, i), v);
            continue;
        }
        PyObject *v = dec_obj(d, depth + 1, 0); /* the tag, or a field we don't know: dropped */
        if (v == NULL)
            goto error;
        if (p->tag_field != NULL && str_is(p->tag_field, s, len)) {
            int eq = PyObject_RichCompareBool(v, p->tag_value, Py_EQ);
            if (eq <= 0) {
                if (eq == 0)
                    dec_verr(d, "expected tag %R of %s, got %R", p->tag_value, p->cls->tp_name, v);
                Py_DECREF(v);
                dec_vpush(d, PyUnicode_FromFormat(".%U", p->tag_field));
                goto error;
            }
        }
        Py_DECREF(v);
    }
    for (Py_ssize_t i = 0; i < p->n; i++) {
        PyObject **slot = plan_slot(p, obj, i);
        if (*slot != NULL)
            continue;
        PyObject *dflt = PyTuple_GET_ITEM(p->defaults, i);
        if (p->dkind[i] == 1) {
            *slot = Py_NewRef(dflt);
        } else if (p->dkind[i] == 2) {
            if ((*slot = PyObject_CallNoArgs(dflt)) == NULL)
                goto error;
        } else {
            dec_verr(d, "missing required field '%U' of %s", PyTuple_GET_ITEM(p->names, i), p->cls->tp_name);
            goto error;
        }
    }
    return obj;
error:
    Py_DECREF(obj);
    return NULL;
}

/* Does a value whose first byte is c fit spec's kind at all (a cheap test
 * used to choose among a union's members)? */
static int spec_accepts(dec_t *d, PyObject *spec, const unsigned char *p)
{
    unsigned char c = *p;
    switch (spec_kind(spec)) {
    case SPEC_NONE: return c == 0xc0;
    case SPEC_BOOL: return c == 0xc2 || c == 0xc3;
    case SPEC_INT: return is_int_byte(c) || peek_ext_code(d, p) == 1;
    case SPEC_FLOAT: return c == 0xca || c == 0xcb || is_int_byte(c);
    case SPEC_STR: return (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb);
    case SPEC_BYTES: return c >= 0xc4 && c <= 0xc6;
    case SPEC_LIST: case SPEC_VARTUPLE: case SPEC_TUPLE: case SPEC_SET: case SPEC_FROZENSET:
        return (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd || (peek_ext_code(d, p) == 2);
    case SPEC_DICT: case SPEC_STRUCT: case SPEC_TAGGED:
        return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
    case SPEC_DATETIME: return peek_ext_code(d, p) == 16;
    case SPEC_DECIMAL: return peek_ext_code(d, p) == 17;
    case SPEC_OPTIONAL: return c == 0xc0 || spec_accepts(d, SPEC_ARG(spec, 0), p);
    default: return 1; /* ANY, LITERAL, ENUM, CUSTOM, UNION: decide by decoding */
    }
}

static PyObject *dec_union(dec_t *d, PyObject *spec, int depth)
{
    PyObject *alts = SPEC_ARG(spec, 0);
    const unsigned char *at = d->p;
    Py_ssize_t n = PyTuple_GET_SIZE(alts), count = 0, only = -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (spec_accepts(d, PyTuple_GET_ITEM(alts, i), at)) {
            count++;
            if (only < 0)
                only = i;
        }
    if (count == 0)
        return dec_mismatch(d, spec, *at);
    if (count == 1)
        return dec_typed(d, PyTuple_GET_ITEM(alts, only), depth);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *alt = PyTuple_GET_ITEM(alts, i);
        if (!spec_accepts(d, alt, at))
            continue;
        PyObject *v = dec_typed(d, alt, depth);
        if (v != NULL)
            return v;
        if (d->vpath == NULL && !PyErr_ExceptionMatches(d->st->DecodeError))
            return NULL;
        dec_vdrop(d);
        PyErr_Clear();
        d->p = at;
    }
    return dec_mismatch(d, spec, *at);
}

/* A union of tagged Structs: the tag is the map's first entry (as the
 * encoder writes it). */
static PyObject *dec_tagged(dec_t *d, PyObject *spec, int depth)
{
    const unsigned char *at = d->p, *s;
    PyObject *field = SPEC_ARG(spec, 0), *by_tag = SPEC_ARG(spec, 1);
    size_t n, len;
    int h = dec_map_header(d, &n);
    if (h <= 0)
        return h < 0 ? NULL : dec_mismatch(d, spec, *at);
    if (n == 0 || d->p >= d->end)
        return dec_verr(d, "expected %U, got a map without the tag field '%U'", SPEC_NAME(spec), field);
    int r = dec_raw_str(d, &s, &len);
    if (r < 0)
        return NULL;
    if (r == 0 || !str_is(field, s, len))
        return dec_verr(d, "expected %U, got a map whose first key is not the tag field '%U'",
                        SPEC_NAME(spec), field);
    PyObject *tag = dec_obj(d, depth + 1, 0);
    if (tag == NULL)
        return NULL;
    PyObject *plan = PyDict_GetItemWithError(by_tag, tag); /* borrowed */
    if (plan == NULL) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            dec_verr(d, "unknown tag %R for %U", tag, SPEC_NAME(spec));
            dec_vpush(d, PyUnicode_FromFormat(".%U", field));
        }
        Py_DECREF(tag);
        return NULL;
    }
    Py_DECREF(tag);
    d->p = at;
    return dec_struct(d, (plan_t *)plan, depth);
}

/* The n items of an array (header read) as list, tuple, set or frozenset. */
static PyObject *dec_seq_items(dec_t *d, PyObject *spec, long kind, size_t n, int depth)
{
    PyObject *fixed = NULL;
    if (kind == SPEC_TUPLE) {
        fixed = SPEC_ARG(spec, 0);
        if ((Py_ssize_t)n != PyTuple_GET_SIZE(fixed))
            return dec_verr(d, "expected %U (an array of %zd items), got %zu items",
                            SPEC_NAME(spec), PyTuple_GET_SIZE(fixed), n);
    }
    PyObject *item_spec = fixed ? NULL : SPEC_ARG(spec, 0);
    PyObject *out;
    int is_seq = kind == SPEC_LIST || kind == SPEC_VARTUPLE || kind == SPEC_TUPLE;
    if (kind == SPEC_LIST)
        out = PyList_New((Py_ssize_t)n);
    else if (is_seq)
        out = PyTuple_New((Py_ssize_t)n);
    else
        out = PySet_New(NULL);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *ispec = fixed ? PyTuple_GET_ITEM(fixed, (Py_ssize_t)i) : item_spec;
        PyObject *it = dec_typed(d, ispec, depth + 1);
        if (it == NULL) {
            dec_vpush(d, PyUnicode_FromFormat("[%zu]", i));
            Py_DECREF(out);
            return NULL;
        }
        if (kind == SPEC_LIST) {
            PyList_SET_ITEM(out, (Py_ssize_t)i, it);
        } else if (is_seq) {
            PyTuple_SET_ITEM(out, (Py_ssize_t)i, it);
        } else {
            int r = PySet_Add(out, it);
            Py_DECREF(it);
            if (r < 0) {
                Py_DECREF(out);
                if (!PyErr_ExceptionMatches(PyExc_TypeError))
                    return NULL;
                PyErr_Clear();
                dec_verr(d, "unhashable set item");
                dec_vpush(d, PyUnicode_FromFormat("[%zu]", i));
                return NULL;
            }
        }
    }
    if (kind == SPEC_FROZENSET) {
        PyObject *f = PyFrozenSet_New(out);
        Py_DECREF(out);
        return f;
    }
    return out;
}

static PyObject *dec_seq(dec_t *d, PyObject *spec, long kind, int depth)
{
    const unsigned char *at = d->p;
    if (depth >= SA_CODEC_MAX_DEPTH)
        return dec_depth_error(d, at);
    size_t n;
    int h = dec_array_header(d, &n);
    if (h < 0)
        return NULL;
    if (h == 1)
        return dec_seq_items(d, spec, kind, n, depth);
    if (peek_ext_code(d, at) != 2)
        return dec_mismatch(d, spec, *at);
    /* Our ext 2 (a tuple sent by the untyped encoder): its payload is the array. */
    unsigned char c = *d->p++;
    size_t elen;
    if (c >= 0xd4 && c <= 0xd8)
        elen = (size_t)1 << (c - 0xd4);
    else if (dec_len(d, at, 1 << (c - 0xc7), "ext length", &elen) < 0)
        return NULL;
    if (dec_left(d) < 1 + elen)
        return dec_truncated(d, at, "ext", 1 + elen);
    d->p++; /* the code */
    const unsigned char *saved_end = d->end;
    d->end = d->p + elen;
    PyObject *out = NULL;
    if (d->p >= d->end || (h = dec_array_header(d, &n)) == 0)
        dec_error(d, at, 0, "ext 2 (tuple) whose payload is not an array");
    else if (h > 0 && (out = dec_seq_items(d, spec, kind, n, depth)) != NULL && d->p != d->end) {
        Py_CLEAR(out);
        dec_error(d, d->p, 0, "ext 2 (tuple) payload has %zu bytes after its array", dec_left(d));
    }
    d->end = saved_end;
    return out;
}

static PyObject *dec_typed_dict(dec_t *d, PyObject *spec, int depth)
{
    const unsigned char *at = d->p;
    if (depth >= SA_CODEC_MAX_DEPTH)
        return dec_depth_error(d, at);
    size_t n;
    int h = dec_map_header(d, &n);
    if (h <= 0)
        return h < 0 ? NULL : dec_mismatch(d, spec, *at);
    PyObject *kspec = SPEC_ARG(spec, 0), *vspec = SPEC_ARG(spec, 1);
    int str_keys = spec_kind(kspec) == SPEC_STR;
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *kat = d->p;
        PyObject *k;
        if (kat >= d->end) {
            dec_truncated(d, kat, "a value", 1);
            goto error;
        }
        unsigned char c = *kat;
        if (str_keys && ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb))) {
            size_t len;
            d->p++;
            if (c <= 0xbf)
                len = c & 0x1f;
            else if (dec_len(d, kat, 1 << (c - 0xd9), "str length", &len) < 0)
                goto error;
            k = dec_str(d, kat, len, 1);
        } else {
            k = dec_typed(d, kspec, depth + 1);
            if (k == NULL)
                dec_vpush(d, PyUnicode_FromString("<key>"));
        }
        if (k == NULL)
            goto error;
        PyObject *v = dec_typed(d, vspec, depth + 1);
        if (v == NULL) {
            dec_vpush(d, PyUnicode_FromFormat("[%.200R]", k));
            Py_DECREF(k);
            goto error;
        }
        int r = PyDict_SetItem(dict, k, v);
        Py_DECREF(v);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                dec_verr(d, "unhashable map key of type '%s'", Py_TYPE(k)->tp_name);
            }
            Py_DECREF(k);
            goto error;
        }
        Py_DECREF(k);
    }
    return dict;
error:
    Py_DECREF(dict);
    return NULL;
}

/* Decode one value of type `spec` at d->p. */
static PyObject *dec_typed(dec_t *d, PyObject *spec, int depth)
{
    const unsigned char *at = d->p;
    if (at >= d->end)
        return dec_truncated(d, at, "a value", 1);
    unsigned char c = *at;
    long kind = spec_kind(spec);
    PyObject *v;
    switch (kind) {
    case SPEC_ANY:
        return dec_obj(d, depth, 0);
    case SPEC_NONE:
        if (c != 0xc0)
            return dec_mismatch(d, spec, c);
        d->p++;
        Py_RETURN_NONE;
    case SPEC_BOOL:
        if (c != 0xc2 && c != 0xc3)
            return dec_mismatch(d, spec, c);
        d->p++;
        return Py_NewRef(c == 0xc3 ? Py_True : Py_False);
    case SPEC_INT:
        if (!is_int_byte(c) && peek_ext_code(d, at) != 1)
            return dec_mismatch(d, spec, c);
        return dec_obj(d, depth, 0);
    case SPEC_FLOAT:
        if (c == 0xca || c == 0xcb)
            return dec_obj(d, depth, 0);
        if (!is_int_byte(c))
            return dec_mismatch(d, spec, c);
        if ((v = dec_obj(d, depth, 0)) == NULL)
            return NULL;
        {
            double f = PyLong_AsDouble(v);
            Py_DECREF(v);
            if (f == -1.0 && PyErr_Occurred())
                return NULL;
            return PyFloat_FromDouble(f);
        }
    case SPEC_STR:
        if (!((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)))
            return dec_mismatch(d, spec, c);
        return dec_obj(d, depth, 0);
    case SPEC_BYTES:
        if (!(c >= 0xc4 && c <= 0xc6))
            return dec_mismatch(d, spec, c);
        return dec_obj(d, depth, 0);
    case SPEC_LIST: case SPEC_VARTUPLE: case SPEC_TUPLE: case SPEC_SET: case SPEC_FROZENSET:
        return dec_seq(d, spec, kind, depth);
    case SPEC_DICT:
        return dec_typed_dict(d, spec, depth);
    case SPEC_OPTIONAL:
        if (c == 0xc0) {
            d->p++;
            Py_RETURN_NONE;
        }
        return dec_typed(d, SPEC_ARG(spec, 0), depth);
    case SPEC_UNION:
        return dec_union(d, spec, depth);
    case SPEC_STRUCT:
        return dec_struct(d, (plan_t *)SPEC_ARG(spec, 0), depth);
    case SPEC_TAGGED:
        return dec_tagged(d, spec, depth);
    case SPEC_DATETIME: case SPEC_DECIMAL:
        if (peek_ext_code(d, at) != (kind == SPEC_DATETIME ? 16 : 17))
            return dec_mismatch(d, spec, c);
        return dec_obj(d, depth, 0);
    case SPEC_LITERAL: {
        if ((v = dec_obj(d, depth, 0)) == NULL)
            return NULL;
        PyObject *values = SPEC_ARG(spec, 0);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(values); i++) {
            PyObject *lit = PyTuple_GET_ITEM(values, i);
            if (Py_TYPE(lit) != Py_TYPE(v))
                continue;
            int eq = PyObject_RichCompareBool(lit, v, Py_EQ);
            if (eq < 0) {
                Py_DECREF(v);
                return NULL;
            }
            if (eq) {
                Py_DECREF(v);
                return Py_NewRef(lit);
            }
        }
        dec_verr(d, "expected %U, got %.200R", SPEC_NAME(spec), v);
        Py_DECREF(v);
        return NULL;
    }
    case SPEC_ENUM: {
        if ((v = dec_obj(d, depth, 0)) == NULL)
            return NULL;
        PyObject *m = PyDict_GetItemWithError(SPEC_ARG(spec, 0), v); /* borrowed */
        if (m == NULL && (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError))) {
            PyErr_Clear();
            dec_verr(d, "expected a value of %U, got %.200R", SPEC_NAME(spec), v);
        }
        Py_DECREF(v);
        return Py_XNewRef(m);
    }
    case SPEC_CUSTOM: {
        PyObject *type = SPEC_ARG(spec, 0);
        if ((v = dec_obj(d, depth, 0)) == NULL)
            return NULL;
        if (PyObject_TypeCheck(v, (PyTypeObject *)type))
            return v;
        if (d->dec_hook == NULL) {
            Py_DECREF(v);
            return dec_mismatch(d, spec, c);
        }
        PyObject *res = PyObject_CallFunctionObjArgs(d->dec_hook, type, v, NULL);
        Py_DECREF(v);
        if (res == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
            PyObject *exc = PyErr_GetRaisedException();
            dec_verr(d, "expected %U, and dec_hook failed: %S", SPEC_NAME(spec), exc);
            Py_DECREF(exc);
        }
        return res;
    }
    default:
        PyErr_Format(PyExc_TypeError, "not a type spec: %.200R", spec);
        return NULL;
    }
}

/* Check that `spec` is well formed enough for dec_typed (kinds and
 * arities), recursively; plans are checked when made. 0 or -1. */
static int spec_check(sa_codec_state_t *st, PyObject *spec, int depth)
{
    static const signed char nargs[SPEC_NKINDS] = {
        [SPEC_ANY] = 0, [SPEC_NONE] = 0, [SPEC_BOOL] = 0, [SPEC_INT] = 0, [SPEC_FLOAT] = 0,
        [SPEC_STR] = 0, [SPEC_BYTES] = 0, [SPEC_LIST] = 1, [SPEC_VARTUPLE] = 1, [SPEC_TUPLE] = 1,
        [SPEC_DICT] = 2, [SPEC_SET] = 1, [SPEC_FROZENSET] = 1, [SPEC_OPTIONAL] = 1, [SPEC_UNION] = 1,
        [SPEC_LITERAL] = 1, [SPEC_ENUM] = 1, [SPEC_STRUCT] = 1, [SPEC_TAGGED] = 2, [SPEC_DATETIME] = 0,
        [SPEC_DECIMAL] = 0, [SPEC_CUSTOM] = 1,
    };
    if (depth > 64)
        return 0; /* deep specs: the shape was checked on the way down */
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(spec, 0)) ||
        !PyUnicode_Check(SPEC_NAME(spec)))
        goto bad;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (kind < 0 || kind >= SPEC_NKINDS || PyTuple_GET_SIZE(spec) != 2 + nargs[kind])
        goto bad;
    switch (kind) {
    case SPEC_LIST: case SPEC_VARTUPLE: case SPEC_SET: case SPEC_FROZENSET: case SPEC_OPTIONAL:
        return spec_check(st, SPEC_ARG(spec, 0), depth + 1);
    case SPEC_DICT:
        return spec_check(st, SPEC_ARG(spec, 0), depth + 1) || spec_check(st, SPEC_ARG(spec, 1), depth + 1) ? -1 : 0;
    case SPEC_TUPLE: case SPEC_UNION: case SPEC_LITERAL:
        if (!PyTuple_Check(SPEC_ARG(spec, 0)))
            goto bad;
        if (kind != SPEC_LITERAL)
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(SPEC_ARG(spec, 0)); i++)
                if (spec_check(st, PyTuple_GET_ITEM(SPEC_ARG(spec, 0), i), depth + 1) < 0)
                    return -1;
        return 0;
    case SPEC_ENUM:
        return PyDict_Check(SPEC_ARG(spec, 0)) ? 0 : (PyErr_SetString(PyExc_TypeError, "bad enum spec"), -1);
    case SPEC_STRUCT:
        if (!Py_IS_TYPE(SPEC_ARG(spec, 0), (PyTypeObject *)st->PlanType))
            goto bad;
        return 0;
    case SPEC_TAGGED: {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        if (!PyUnicode_Check(SPEC_ARG(spec, 0)) || !PyDict_Check(SPEC_ARG(spec, 1)))
            goto bad;
        while (PyDict_Next(SPEC_ARG(spec, 1), &pos, &k, &v))
            if (!Py_IS_TYPE(v, (PyTypeObject *)st->PlanType))
                goto bad;
        return 0;
    }
    case SPEC_CUSTOM:
        if (!PyType_Check(SPEC_ARG(spec, 0)))
            goto bad;
        return 0;
    default:
        return 0;
    }
bad:
    PyErr_Format(PyExc_TypeError, "not a type spec: %.200R", spec);
    return -1;
}

PyObject *sa_codec_decode_typed(sa_codec_state_t *st, const char *buf, size_t len, PyObject *spec,
                                PyObject *dec_hook)
{
    dec_t d = {
        .start = (const unsigned char *)buf,
        .p = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .st = st,
        .flags = 0,
        .dec_hook = dec_hook,
    };
    if (len == 0) {
        PyErr_SetString(st->DecodeError, "empty input: expected one MessagePack value");
        return NULL;
    }
    PyObject *obj = dec_typed(&d, spec, 0);
    if (obj != NULL && d.p != d.end) {
        Py_DECREF(obj);
        return dec_error(&d, d.p, 0, "trailing data: %zu bytes after the value", dec_left(&d));
    }
    if (d.vpath != NULL) {
        PyObject *sep = PyUnicode_FromString(""), *joined = NULL;
        if (sep != NULL && PyList_Reverse(d.vpath) == 0)
            joined = PyUnicode_Join(sep, d.vpath);
        Py_XDECREF(sep);
        if (joined != NULL) {
            PyErr_Format(st->ValidationError, "$%U: %U", joined, d.vmsg);
            Py_DECREF(joined);
        }
        dec_vdrop(&d);
    }
    return obj;
}

static PyObject *codec_typed_loads(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    sa_codec_state_t *st = &sa_state(mod)->codec;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "typed_loads(data, spec, dec_hook=None)");
        return NULL;
    }
    PyObject *hook = nargs == 3 && args[2] != Py_None ? args[2] : NULL;
    if (spec_check(st, args[1], 0) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *res = sa_codec_decode_typed(st, view.buf, (size_t)view.len, args[1], hook);
    PyBuffer_Release(&view);
    return res;
}

static PyObject *codec_typed_dumps(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    sa_codec_state_t *st = &sa_state(mod)->codec;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "typed_dumps(obj, enc_hook=None)");
        return NULL;
    }
    PyObject *hook = nargs == 2 && args[1] != Py_None ? args[1] : NULL;
    return codec_encode_bytes_ex(st, args[0], 0, 1, hook);
}
