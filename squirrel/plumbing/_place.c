/* A verified temporary file renamed into place, in C.
 *
 * Every file an apply or a push writes ends in a rename into place
 * (place.install): each folder above the path is checked again just
 * before, so that one swapped for a symlink since the plan is never
 * written through, and a new file's rename refuses whatever was made at
 * its path meanwhile (RENAME_NOREPLACE). For small files these system
 * calls are most of the executor's own time; here they are made in one
 * call, without the interpreter lock, so that the fetching threads run
 * meanwhile.
 *
 * place(src, root, rel, new) -> (code, at)
 *
 *   src    the file to rename (bytes)
 *   root   the replica's root (bytes)
 *   rel    the path in the replica (bytes, '/'-separated, never empty)
 *   new    nothing may be at the path: the rename refuses (Linux's
 *          renameat2 with RENAME_NOREPLACE); where the file system or
 *          the kernel cannot, the path is checked right before a plain
 *          rename
 *
 *   (0, 0)      renamed
 *   (1, at)     the folder root/rel[:at] is gone
 *   (2, at)     root/rel[:at] is not a folder (a symlink, a file)
 *   (3, errno)  the rename failed; EEXIST where `new` found something
 *
 * Any other error of a folder's lstat raises OSError.
 *
 * place_new(root, items) -> [(code, at, err, size, mode, mtime_ns), ...]
 *
 *   items  a list of (src, rel): new files, each renamed as by
 *          place(src, root, rel, True), in turn, in one call: a run of
 *          small files costs one handover of the interpreter lock, where
 *          one each made the renames wait for the fetching threads
 *
 *   One result per item, in order: code as above (4: a folder's lstat
 *   failed with `err`, at `at`), `at` the folder it is about, `err` the
 *   errno of a failed rename or lstat, and the size, mode and mtime of
 *   the file placed (size -1 where its lstat failed). An item that fails
 *   does not stop the others.
 *
 * Where this module is not built, place.install and place.install_new
 * make the same calls in Python, with the same results.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define PLACED 0
#define VANISHED 1
#define NOT_A_FOLDER 2
#define RENAME_FAILED 3
#define STAT_FAILED 4

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

/* rename(2) that never replaces what is at `dest`: 0 or an errno. */
static int rename_new(const char *src, const char *dest) {
    int err = ENOSYS;
#ifdef SYS_renameat2
    if (syscall(SYS_renameat2, AT_FDCWD, src, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
        return 0;
    err = errno;
#endif
    if (err != EINVAL && err != ENOSYS)
        return err;
    struct stat st;
    if (lstat(dest, &st) == 0)
        return EEXIST;
    if (errno != ENOENT && errno != ENOTDIR)
        return errno;
    return rename(src, dest) == 0 ? 0 : errno;
}

/* The folders above `rel` in `path` (root + '/' + rel, `rel` starting at
 * `start`), then the rename: a code of the table above, the offset in rel
 * of the folder it is about in `*at`, the errno in `*err`. */
static int place_one(const char *src, char *path, size_t start, int new_file, long *at, int *err) {
    struct stat st;
    for (char *p = path + start; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int failed = lstat(path, &st) != 0;
        *err = errno;
        *p = '/';
        *at = (long)(p - path - start);
        if (failed)
            return *err == ENOENT ? VANISHED : STAT_FAILED;
        if (!S_ISDIR(st.st_mode))
            return NOT_A_FOLDER;
    }
    *err = new_file ? rename_new(src, path) : (rename(src, path) == 0 ? 0 : errno);
    return *err ? RENAME_FAILED : PLACED;
}

static PyObject *place(PyObject *self, PyObject *args) {
    PyObject *src_obj, *root_obj, *rel_obj;
    int new_file;
    if (!PyArg_ParseTuple(args, "O!O!O!p", &PyBytes_Type, &src_obj, &PyBytes_Type, &root_obj, &PyBytes_Type, &rel_obj,
                          &new_file))
        return NULL;
    const char *src = PyBytes_AS_STRING(src_obj), *root = PyBytes_AS_STRING(root_obj),
               *rel = PyBytes_AS_STRING(rel_obj);
    size_t src_len = (size_t)PyBytes_GET_SIZE(src_obj), root_len = (size_t)PyBytes_GET_SIZE(root_obj),
           rel_len = (size_t)PyBytes_GET_SIZE(rel_obj);
    if (memchr(src, '\0', src_len) || memchr(root, '\0', root_len) || memchr(rel, '\0', rel_len) || rel_len == 0) {
        PyErr_SetString(PyExc_ValueError, "a path is empty or holds a null byte");
        return NULL;
    }
    /* Copied: the caller's bytes are not read without the lock. */
    char *path = malloc(root_len + 1 + rel_len + 1);
    char *from = malloc(src_len + 1);
    if (path == NULL || from == NULL) {
        free(path);
        free(from);
        return PyErr_NoMemory();
    }
    memcpy(from, src, src_len);
    from[src_len] = '\0';
    memcpy(path, root, root_len);
    path[root_len] = '/';
    memcpy(path + root_len + 1, rel, rel_len);
    path[root_len + 1 + rel_len] = '\0';
    long at = 0;
    int code, err = 0;
    Py_BEGIN_ALLOW_THREADS;
    code = place_one(from, path, root_len + 1, new_file, &at, &err);
    Py_END_ALLOW_THREADS;
    PyObject *out = NULL;
    if (code == STAT_FAILED) {
        PyObject *folder = PyBytes_FromStringAndSize(path, (Py_ssize_t)(root_len + 1) + at);
        if (folder != NULL) {
            errno = err;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, folder);
            Py_DECREF(folder);
        }
    } else {
        out = Py_BuildValue("(il)", code, code == RENAME_FAILED ? (long)err : at);
    }
    free(path);
    free(from);
    return out;
}

/* The bytes of a list of (a, b) pairs, checked, in `pairs` (2 per item,
 * kept alive by the tuple returned); NULL with an exception set. */
static PyObject *pairs_of(PyObject *list, const char **pairs, Py_ssize_t *n) {
    PyObject *held = PyList_AsTuple(list);
    if (held == NULL)
        return NULL;
    *n = PyTuple_GET_SIZE(held);
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *t = PyTuple_GET_ITEM(held, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(t, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(t, 1))) {
            PyErr_SetString(PyExc_TypeError, "each item is a pair of bytes");
            Py_DECREF(held);
            return NULL;
        }
        for (int k = 0; k < 2; k++) {
            PyObject *b = PyTuple_GET_ITEM(t, k);
            pairs[2 * i + k] = PyBytes_AS_STRING(b);
            if (PyBytes_GET_SIZE(b) == 0 || strlen(pairs[2 * i + k]) != (size_t)PyBytes_GET_SIZE(b)) {
                PyErr_SetString(PyExc_ValueError, "a path is empty or holds a null byte");
                Py_DECREF(held);
                return NULL;
            }
        }
    }
    return held;
}

/* A list of n items, the i-th made by item(results, i); NULL with an
 * exception set. */
static PyObject *list_of(Py_ssize_t n, PyObject *(*item)(const void *, Py_ssize_t), const void *results) {
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *one = item(results, i);
        if (one == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, one);
    }
    return out;
}

/* place_new's result for item i: six longs each. */
static PyObject *placed_item(const void *results, Py_ssize_t i) {
    const long *r = (const long *)results + i * 6;
    return Py_BuildValue("(iilLlL)", (int)r[0], (int)r[1], r[2], (long long)r[3], r[4], (long long)r[5]);
}

static PyObject *place_new(PyObject *self, PyObject *args) {
    PyObject *root_obj, *items_obj;
    if (!PyArg_ParseTuple(args, "O!O!", &PyBytes_Type, &root_obj, &PyList_Type, &items_obj))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items_obj);
    const char *root = PyBytes_AS_STRING(root_obj);
    size_t root_len = (size_t)PyBytes_GET_SIZE(root_obj), longest = 0;
    const char **pairs = PyMem_Calloc((size_t)n * 2 + 1, sizeof(char *));
    long *res = PyMem_Calloc((size_t)n * 6 + 1, sizeof(long));
    PyObject *held = NULL, *out = NULL;
    char *path = NULL;
    if (pairs == NULL || res == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (memchr(root, '\0', root_len)) {
        PyErr_SetString(PyExc_ValueError, "a path is empty or holds a null byte");
        goto done;
    }
    /* The tuple holds the items (and their bytes, which never change)
     * while the lock is given up, should the list change meanwhile. */
    held = pairs_of(items_obj, pairs, &n);
    if (held == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        if (strlen(pairs[2 * i + 1]) > longest)
            longest = strlen(pairs[2 * i + 1]);
    path = PyMem_Malloc(root_len + 1 + longest + 1);
    if (path == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(path, root, root_len);
    path[root_len] = '/';
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        long *r = res + i * 6, at = 0;
        int err = 0;
        strcpy(path + root_len + 1, pairs[2 * i + 1]);
        int code = place_one(pairs[2 * i], path, root_len + 1, 1, &at, &err);
        struct stat st;
        r[0] = code;
        r[1] = at;
        r[2] = err;
        r[3] = -1;
        if (code == PLACED && lstat(path, &st) == 0) {
            r[3] = (long)st.st_size;
            r[4] = (long)st.st_mode;
            r[5] = (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
        }
    }
    Py_END_ALLOW_THREADS;
    out = list_of(n, placed_item, res);
done:
    PyMem_Free(path);
    PyMem_Free(res);
    PyMem_Free(pairs);
    Py_XDECREF(held);
    return out;
}

static PyMethodDef methods[] = {
    {"place", place, METH_VARARGS,
     "place(src, root, rel, new) -> (code, at): the folders above rel checked, then src renamed to it."},
    {"place_new", place_new, METH_VARARGS,
     "place_new(root, items) -> [(code, at, err, size, mode, mtime_ns)]: place(src, root, rel, True) of each "
     "(src, rel), in one call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_place", "A verified temporary file renamed into place.", -1, methods,
};

PyMODINIT_FUNC PyInit__place(void) { return PyModule_Create(&module); }
