/* qinx/vecfile.h — TEXMEX vector files (.fvecs, .bvecs, .ivecs).
 *
 * Each record is a little-endian int32 dimension followed by that many values
 * (float32, uint8 or int32). Readers validate everything: empty file, a
 * dimension that is zero, negative, above QX_MAX_DIM or different from the
 * first record's, a truncated record, NaN/Inf values; the error names the file
 * and the record. .bvecs is converted to float. All functions are reentrant.
 *
 * Error codes of the readers: QX_ENOTFOUND missing file; QX_EIO cannot open
 * or read (strerror in the message) or not a regular file; QX_EFORMAT empty
 * file, truncated record, size not a whole number of records, NaN/Inf value;
 * QX_EDIM dimension <= 0, > QX_MAX_DIM or different from record 0's;
 * QX_EINVAL unknown file-name ending or NULL argument; QX_ENOMEM.
 * Writers: QX_EINVAL (n = 0, NULL data, NaN/Inf), QX_EDIM, QX_EIO.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_VECFILE_H
#define QINX_VECFILE_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS


/* A dense row-major matrix of n float vectors of dimension d, 64-byte aligned. */
typedef struct qx_matrix {
    float *data;
    size_t n;
    size_t d;
} qx_matrix;

/* Read .fvecs or .bvecs (chosen by the file name's ending) into *out.
 * max_n > 0 reads only the first max_n records (0 = all).
 * Free with qx_matrix_free. */
int qx_vecs_read(const char *path, size_t max_n, qx_matrix *out);

/* Read .ivecs (ground truth): *ids is n*d int32, freed with qx_free. */
int qx_ivecs_read(const char *path, size_t max_n, int32_t **ids, size_t *n, size_t *d);

/* Write n vectors as .fvecs (temp file, fsync, rename). */
int qx_fvecs_write(const char *path, const float *x, size_t n, size_t d);
/* Write n rows of d int32 as .ivecs (temp file, fsync, rename). */
int qx_ivecs_write(const char *path, const int32_t *x, size_t n, size_t d);

/* Allocate an n x d matrix (zeroed, aligned). */
int qx_matrix_alloc(qx_matrix *m, size_t n, size_t d);
void qx_matrix_free(qx_matrix *m);

/* ---- reading by row ranges (index/vecfile_range.c) --------------------------
 * For files larger than memory: open validates the first record's dimension
 * and that the size is a whole number of records; reads check every record
 * they return (dimension, NaN/Inf) with the same errors as qx_vecs_read.
 * .bvecs values are widened to float. One qx_vecs_file serves one thread at a
 * time (it owns a staging buffer). */
typedef struct qx_vecs_file qx_vecs_file;

int qx_vecs_open(qx_vecs_file **out, const char *path);
void qx_vecs_close(qx_vecs_file *f); /* NULL-safe */
size_t qx_vecs_file_rows(const qx_vecs_file *f);
size_t qx_vecs_file_dim(const qx_vecs_file *f);
/* Size in bytes and modification time (ns since the epoch) seen at open. */
void qx_vecs_file_identity(const qx_vecs_file *f, uint64_t *size, int64_t *mtime_ns);
/* 0 if the path still names the file opened, with the same size and mtime;
 * QX_EFORMAT ("changed while it was read: ...") otherwise. */
int qx_vecs_file_unchanged(const qx_vecs_file *f);
/* Rows [first, first + count) into out (count * dim floats, caller-owned). */
int qx_vecs_read_rows(qx_vecs_file *f, size_t first, size_t count, float *out);
/* The rows listed (ascending for efficiency; runs of consecutive rows are one
 * read) into out (count * dim floats). */
int qx_vecs_read_picked(qx_vecs_file *f, const size_t *rows, size_t count, float *out);

QX_END_DECLS
#endif
