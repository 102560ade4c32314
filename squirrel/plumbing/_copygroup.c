/* A group of small files copied into temporary files, in C.
 *
 * The fetcher (squirrel/plumbing/fetch.py) writes the sender's content
 * into verified temporary files in .squirrel/tmp/ before the executor
 * renames them into place. For small files almost all of that time is system calls: creating the file, the
 * kernel's copy, the read-back that the hash checks, the mode and the
 * mtime. Here they run for a whole group without the interpreter lock,
 * so that a group can be written on a second thread while the one before
 * is renamed into place (squirrel/plumbing/groups.py).
 *
 * copy(dir_fd, items, buffer) -> codes
 *
 *   dir_fd   the temporary folder, open
 *   items    list of (src_fd, offset, size, name, create_perms,
 *            final_perms, mtime_ns[, path, expected_mtime_ns]): `size`
 *            bytes at `offset` of `src_fd` go to a new file `name`
 *            (bytes) of the folder, made with `create_perms`; it then
 *            gets `final_perms` (where the file system keeps
 *            permissions) and `mtime_ns` (None: it keeps the time it was
 *            written). With a `path` (bytes; `src_fd` is then ignored),
 *            the source is the whole of that file, opened here as
 *            fsops.open_span opens it: no symlink followed, and taken
 *            only while it is a regular file of `size` bytes and, unless
 *            `expected_mtime_ns` is None, of that mtime
 *   buffer   a writable buffer of at least the sum of the sizes: each
 *            file's bytes are read back into it, one after the other,
 *            for the caller to hash
 *   codes    one per file done, in order: 0, or for the last one the
 *            reason it stopped: -1 the source was shorter than `size`,
 *            -2 the kernel cannot copy between these files (nothing was
 *            copied: the caller streams the content), -3 its `path`
 *            could not be opened or is not what was expected (nothing
 *            was written: the caller opens it itself, and says why), or
 *            an errno. A file that failed is removed; the files after
 *            it are not touched.
 *
 * Opening each source here rather than in the caller spares its thread
 * three system calls a file made with the interpreter lock taken and
 * given back (open, fstat, close): between the threads of a push, every
 * such handover waits for the lock.
 *
 * Before the first copy, the disk is asked for every file's bytes
 * (posix_fadvise WILLNEED), so that it reads the group's sources while
 * the first files are copied.
 *
 * The caller's source descriptors stay open (it closes them); those
 * opened here are closed before the call returns. Where this
 * module is not built, its callers write the same files in Python, one
 * at a time, with the same result.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define SHORT (-1)
#define NO_COPY (-2)
#define SOURCE (-3)

typedef struct {
    int src;
    long long offset;
    long long size;
    char *name;
    int create_perms;
    int final_perms;
    int set_mtime;
    long long mtime_ns;
    char *path; /* the source, opened here; NULL: `src` is the caller's */
    int check_mtime;
    long long expected_mtime_ns;
} item;

/* The errors of copy_file_range(2) that mean it cannot copy between these
 * two files at all (fsops._NO_COPY). */
static int cannot_copy(int e) {
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP || e == EBADF || e == EPERM;
}

/* One file: 0, SHORT, NO_COPY or an errno; a failed file is removed. */
static int copy_one(int dir_fd, const item *it, char *back) {
    int fd = openat(dir_fd, it->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, it->create_perms);
    if (fd < 0)
        return errno;
    int code = 0;
    loff_t from = it->offset;
    long long done = 0;
    while (done < it->size) {
        ssize_t n = copy_file_range(it->src, &from, fd, NULL, (size_t)(it->size - done), 0);
        if (n < 0) {
            code = done == 0 && cannot_copy(errno) ? NO_COPY : errno;
            break;
        }
        if (n == 0) {
            code = SHORT;
            break;
        }
        done += n;
    }
    for (long long at = 0; code == 0 && at < it->size;) {
        ssize_t n = pread(fd, back + at, (size_t)(it->size - at), at);
        if (n < 0)
            code = errno;
        else if (n == 0)
            code = SHORT;
        else
            at += n;
    }
    struct stat st;
    if (code == 0 && fstat(fd, &st) < 0)
        code = errno;
    if (code == 0 && st.st_size != it->size)
        code = SHORT;
    if (code == 0 && (int)(st.st_mode & 07777) != it->final_perms)
        (void)fchmod(fd, (mode_t)it->final_perms); /* exFAT and NTFS keep no permissions */
    if (code == 0 && it->set_mtime) {
        struct timespec times[2];
        long long s = it->mtime_ns / 1000000000LL, ns = it->mtime_ns % 1000000000LL;
        if (ns < 0) { /* before 1970 */
            s -= 1;
            ns += 1000000000LL;
        }
        times[0].tv_sec = (time_t)s;
        times[0].tv_nsec = (long)ns;
        times[1] = times[0];
        if (futimens(fd, times) < 0)
            code = errno;
    }
    if (close(fd) < 0 && code == 0)
        code = errno;
    if (code != 0)
        (void)unlinkat(dir_fd, it->name, 0);
    return code;
}

/* Open an item's `path` as its source: 0, or SOURCE where it cannot be
 * opened or is not a regular file of the size (and mtime) expected. */
static int open_source(item *it) {
    int fd = open(it->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return SOURCE;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != it->size ||
        (it->check_mtime && (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != it->expected_mtime_ns)) {
        close(fd);
        return SOURCE;
    }
    it->src = fd;
    it->offset = 0;
    return 0;
}

static void free_items(item *items, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        free(items[i].name);
        free(items[i].path);
    }
    free(items);
}

/* An optional int of an item (None: `*set` is 0); -1 on error. */
static int optional_ll(PyObject *obj, int *set, long long *value) {
    *set = obj != Py_None;
    if (!*set)
        return 0;
    *value = PyLong_AsLongLong(obj);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *copy(PyObject *self, PyObject *args) {
    int dir_fd;
    PyObject *list;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "iO!w*", &dir_fd, &PyList_Type, &list, &buf))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    item *items = calloc(n > 0 ? (size_t)n : 1, sizeof(item));
    if (items == NULL) {
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    /* Everything the loop needs is copied out of the list first: another
     * thread may change the list while the lock is released. */
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        item *it = &items[i];
        const char *name;
        Py_ssize_t len;
        PyObject *mtime, *path = Py_None, *expected = Py_None;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "iLLy#iiO|OO;an item is (src_fd, offset, size, name, "
                              "create_perms, final_perms, mtime_ns[, path, expected_mtime_ns])",
                              &it->src, &it->offset, &it->size, &name, &len, &it->create_perms, &it->final_perms,
                              &mtime, &path, &expected) ||
            optional_ll(mtime, &it->set_mtime, &it->mtime_ns) < 0 ||
            optional_ll(expected, &it->check_mtime, &it->expected_mtime_ns) < 0) {
            free_items(items, n);
            PyBuffer_Release(&buf);
            return NULL;
        }
        if (it->offset < 0 || it->size < 0 || __builtin_add_overflow(total, it->size, &total)) {
            free_items(items, n);
            PyBuffer_Release(&buf);
            PyErr_SetString(PyExc_ValueError, "negative offset or size");
            return NULL;
        }
        if (path != Py_None && !PyBytes_Check(path)) {
            free_items(items, n);
            PyBuffer_Release(&buf);
            PyErr_SetString(PyExc_TypeError, "an item's path is bytes or None");
            return NULL;
        }
        if (path != Py_None) {
            const char *p = PyBytes_AS_STRING(path);
            if (strlen(p) != (size_t)PyBytes_GET_SIZE(path)) {
                free_items(items, n);
                PyBuffer_Release(&buf);
                PyErr_SetString(PyExc_ValueError, "a path holds a null byte");
                return NULL;
            }
            it->src = -1;
            it->path = strdup(p);
            if (it->path == NULL) {
                free_items(items, n);
                PyBuffer_Release(&buf);
                return PyErr_NoMemory();
            }
        }
        it->name = strndup(name, (size_t)len);
        if (it->name == NULL) {
            free_items(items, n);
            PyBuffer_Release(&buf);
            return PyErr_NoMemory();
        }
    }
    if (total > buf.len) {
        free_items(items, n);
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "the buffer is smaller than the files");
        return NULL;
    }
    int *codes = calloc(n > 0 ? (size_t)n : 1, sizeof(int));
    if (codes == NULL) {
        free_items(items, n);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    Py_ssize_t done = 0, ready = 0;
    Py_BEGIN_ALLOW_THREADS;
    /* The sources this call opens, as far as the first that fails. */
    while (ready < n && (items[ready].path == NULL || open_source(&items[ready]) == 0))
        ready++;
    /* Every file's reads asked of the disk first: it reads the group's
     * sources while the first are copied (only a hint, like each error). */
    for (Py_ssize_t i = 0; i < ready; i++)
        (void)posix_fadvise(items[i].src, (off_t)items[i].offset, (off_t)items[i].size, POSIX_FADV_WILLNEED);
    char *back = buf.buf;
    while (done < ready) {
        codes[done] = copy_one(dir_fd, &items[done], back);
        back += items[done].size;
        if (codes[done++] != 0)
            break;
    }
    if (done == ready && ready < n)
        codes[done++] = SOURCE;
    for (Py_ssize_t i = 0; i < ready; i++)
        if (items[i].path != NULL)
            close(items[i].src);
    Py_END_ALLOW_THREADS;
    free_items(items, n);
    PyBuffer_Release(&buf);
    PyObject *out = PyList_New(done);
    for (Py_ssize_t i = 0; out != NULL && i < done; i++) {
        PyObject *code = PyLong_FromLong(codes[i]);
        if (code == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, code);
    }
    free(codes);
    return out;
}

static PyMethodDef methods[] = {
    {"copy", copy, METH_VARARGS,
     "copy(dir_fd, items, buffer) -> codes: small files copied into new temporary files, and read back."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_copygroup", "A group of small files copied into temporary files.", -1, methods,
};

PyMODINIT_FUNC PyInit__copygroup(void) { return PyModule_Create(&module); }
