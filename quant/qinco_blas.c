/* quant/qinco_blas.c — one level of threads while QINCo trains and encodes:
 * OpenBLAS runs single-threaded inside the trainer's and the encoder's
 * OpenMP regions.
 *
 * Why: the Debian OpenBLAS is the pthreads build, which does not see that
 * it is called from an OpenMP worker. Two OpenMP threads that each call a
 * 2-thread sgemm queue for OpenBLAS's one worker, and the idle OpenBLAS and
 * OpenMP threads spin (sched_yield) on the same two cores: in session 12's
 * profile of a training epoch a third of the CPU time was sched_yield and
 * OpenMP spin, against 15 % in sgemm kernels. So QINCo does its parallelism
 * itself (chunks of vectors, shards of a batch, ranges of parameters) and
 * asks OpenBLAS for one thread meanwhile.
 *
 * Decisions:
 * 1. OpenBLAS's thread count is process-wide. Calls may nest (train →
 *    encode) and run concurrently (encode on a const quantizer from several
 *    threads), so a counter under a mutex saves the count on the first entry
 *    and restores it on the last exit; in between, other BLAS users of the
 *    process run single-threaded too (documented in qinx/qinco.h).
 * 2. Weak references: a BLAS without openblas_set_num_threads (another
 *    provider behind libblas.so) is left alone.
 * 3. Only when QINCo itself runs more than one thread: with threads = 1 the
 *    caller's OpenBLAS setting stands (OpenBLAS may then use the cores).
 */
#include <pthread.h>

#include "qinco_impl.h"

extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_depth, blas_saved;

int qx__qinco_blas_single_begin(int threads) {
    if (threads <= 1 || !openblas_set_num_threads || !openblas_get_num_threads) return 0;
    pthread_mutex_lock(&blas_mu);
    if (blas_depth++ == 0) {
        blas_saved = openblas_get_num_threads();
        if (blas_saved > 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_mu);
    return 1;
}

void qx__qinco_blas_single_end(int token) {
    if (!token) return;
    pthread_mutex_lock(&blas_mu);
    if (--blas_depth == 0 && blas_saved > 1) openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_mu);
}
