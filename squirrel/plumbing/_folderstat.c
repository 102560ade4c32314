/* A folder's files compared with their index records, in C.
 *
 * The sweep (squirrel/plumbing/sweep.py) asks of every folder of a tree
 * whether each file on disk is unchanged since its record: a directory
 * listing, a stat of every regular file, and a comparison of its size and
 * modification time with the record's fixed head (docs/formats/index.md,
 * "entries": the head byte, then `<Qq` size and mtime in nanoseconds).
 * In Python most of that time goes to building a stat result per file;
 * here the listing and the stats run without the interpreter lock, and no
 * Python object is made for an unchanged file but its name.
 *
 * compare(folder, records) -> (clean, files, folders, new_files)
 *
 *   folder   the folder's path (bytes)
 *   records  dict: name (bytes) -> encoded entry (bytes), the folder's
 *            index records; the record of every regular file found on
 *            disk is taken out of it (a folder's is left to the caller)
 *   clean    False when a recorded file differs from its record (or is
 *            racy, or is not a file record), when a file cannot be
 *            stat-ed, or when an entry is neither a regular file nor a
 *            folder (a symlink, a special file)
 *   files    the regular files on disk
 *   folders  the names of the folders on disk, in the order listed
 *   new_files  the names of the regular files with no record
 *
 * Raises OSError when the folder cannot be opened or listed.  The pure
 * Python sweep computes the same answer (tests compare the two).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIND_FILE 1
#define HEAD_MASK 0x07 /* kind (bits 0-1) and the racy bit */
#define HEAD_SIZE 17   /* head byte, size (8), mtime_ns (8) */

enum { T_FILE, T_DIR, T_OTHER, T_ERROR };

typedef struct {
    size_t name; /* offset of the name in the pool */
    size_t len;
    int type;
    uint64_t size;
    int64_t mtime_ns;
    int mtime_ok; /* the mtime fits in 64 bits of nanoseconds */
} item;

typedef struct {
    item *items;
    size_t n, cap;
    char *pool;
    size_t used, room;
} listing;

static int grow(void **p, size_t *cap, size_t need, size_t unit) {
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, cap2 * unit);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

static void set_stat(item *it, const struct stat *st) {
    it->size = (uint64_t)st->st_size;
    int64_t ns;
    it->mtime_ok = !__builtin_mul_overflow((int64_t)st->st_mtim.tv_sec, (int64_t)1000000000, &ns) &&
                   !__builtin_add_overflow(ns, (int64_t)st->st_mtim.tv_nsec, &ns);
    it->mtime_ns = ns;
}

/* The folder listed and its regular files stat-ed: 0, or an errno. */
static int list_folder(const char *path, listing *out) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return e;
    }
    int err = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            err = errno;
            break;
        }
        const char *name = de->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
            continue;
        size_t len = strlen(name);
        if (grow((void **)&out->items, &out->cap, out->n + 1, sizeof(item)) ||
            grow((void **)&out->pool, &out->room, out->used + len, 1)) {
            err = ENOMEM;
            break;
        }
        item *it = &out->items[out->n++];
        it->name = out->used;
        it->len = len;
        memcpy(out->pool + out->used, name, len);
        out->used += len;
        it->mtime_ok = 0;
        struct stat st;
        switch (de->d_type) {
        case DT_REG:
            if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
                it->type = T_FILE;
                set_stat(it, &st);
            } else {
                it->type = T_ERROR; /* gone, or replaced, since the listing */
            }
            break;
        case DT_DIR:
            it->type = T_DIR;
            break;
        case DT_UNKNOWN: /* some file systems do not say: ask */
            if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                it->type = T_ERROR;
            } else if (S_ISREG(st.st_mode)) {
                it->type = T_FILE;
                set_stat(it, &st);
            } else {
                it->type = S_ISDIR(st.st_mode) ? T_DIR : T_OTHER;
            }
            break;
        default:
            it->type = T_OTHER;
        }
    }
    closedir(d);
    return err;
}

static int unchanged(PyObject *record, const item *it) {
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(record, &data, &len) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (len < HEAD_SIZE || (data[0] & HEAD_MASK) != KIND_FILE || !it->mtime_ok)
        return 0;
    unsigned char head[16];
    for (int i = 0; i < 8; i++) {
        head[i] = (unsigned char)(it->size >> (8 * i));
        head[8 + i] = (unsigned char)((uint64_t)it->mtime_ns >> (8 * i));
    }
    return memcmp(data + 1, head, 16) == 0;
}

static PyObject *compare(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path_obj, *records;
    if (!PyArg_ParseTuple(args, "O&O!:compare", PyUnicode_FSConverter, &path_obj, &PyDict_Type, &records))
        return NULL;
    listing l = {0};
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = list_folder(PyBytes_AS_STRING(path_obj), &l);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *folders = NULL, *new_files = NULL;
    if (err) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_obj);
        goto done;
    }
    folders = PyList_New(0);
    new_files = PyList_New(0);
    if (folders == NULL || new_files == NULL)
        goto done;
    int clean = 1;
    Py_ssize_t files = 0;
    for (size_t i = 0; i < l.n; i++) {
        const item *it = &l.items[i];
        if (it->type == T_OTHER || it->type == T_ERROR) {
            if (it->type == T_ERROR)
                files++; /* listed as a regular file */
            clean = 0;
            continue;
        }
        PyObject *name = PyBytes_FromStringAndSize(l.pool + it->name, (Py_ssize_t)it->len);
        if (name == NULL)
            goto done;
        int failed = 0;
        if (it->type == T_DIR) {
            failed = PyList_Append(folders, name) < 0;
        } else {
            files++;
            PyObject *record = PyDict_GetItemWithError(records, name); /* borrowed */
            if (record != NULL) {
                if (clean && !unchanged(record, it))
                    clean = 0;
                failed = PyDict_DelItem(records, name) < 0;
            } else if (PyErr_Occurred()) {
                failed = 1;
            } else {
                failed = PyList_Append(new_files, name) < 0;
            }
        }
        Py_DECREF(name);
        if (failed)
            goto done;
    }
    result = Py_BuildValue("(OnOO)", clean ? Py_True : Py_False, files, folders, new_files);
done:
    Py_XDECREF(folders);
    Py_XDECREF(new_files);
    Py_DECREF(path_obj);
    free(l.items);
    free(l.pool);
    return result;
}

static PyMethodDef methods[] = {
    {"compare", compare, METH_VARARGS,
     "compare(folder, records) -> (clean, files, folders, new_files): a folder's files against their records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_folderstat", "A folder's files compared with their index records.", -1, methods,
};

PyMODINIT_FUNC PyInit__folderstat(void) { return PyModule_Create(&module); }
