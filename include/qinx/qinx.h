/* qinx/qinx.h — everything public in one include.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_QINX_H
#define QINX_QINX_H

#include "qinx/error.h"
#include "qinx/alloc.h"
#include "qinx/kernels.h"
#include "qinx/vecfile.h"
#include "qinx/kmeans.h"
#include "qinx/quantizer.h"
#include "qinx/rq.h"
#include "qinx/qinco.h"
#include "qinx/fastscan.h"
#include "qinx/ivf.h"
#include "qinx/shard.h"
#include "qinx/derp.h"
#include "qinx/gate.h"
#include "qinx/eval.h"
#include "qinx/rng.h"
#include "qinx/core.h"
#include "qinx/idmap.h"

#define QINX_VERSION "0.1.0"

#endif
