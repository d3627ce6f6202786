/* index/shard_impl.h — internals shared by ivf_append.c and shard.c. */
#ifndef QINX_SHARD_IMPL_H
#define QINX_SHARD_IMPL_H

#include "qinx/ivf.h"

/* 0 if a and b hold one trained model (dimension, metric, code size, nlist,
 * centroids, norm levels, serialized quantizer all equal), else QX_EINVAL
 * with the difference in qx_last_error(). */
int qx__ivf_same_model(const qx_ivf *a, const qx_ivf *b);

#endif
