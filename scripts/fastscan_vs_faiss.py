#!/usr/bin/python3
"""A qinx fast-scan index against FAISS IVF indexes, one thread, same data and training set,
runs interleaved (qinx config, then every FAISS config, then the next repetition), so a noisy
machine slows both alike; medians over the repetitions; then the ratio table of issue 21 (qinx
QPS / best FAISS QPS at each 10-recall@10 level).

usage: fastscan_vs_faiss.py QX QXINDEX BASE TRAIN QUERY GT NQ FACTORIES QXCONFIGS FAISSNPROBES [REPS [CACHE]]
  QX: the qinx program; QXINDEX: built by `qinx build --quantizer fastscan` from TRAIN over BASE;
  FACTORIES: FAISS index_factory strings separated by ';'; QXCONFIGS: nprobe:shortlist[:coarse_groups]
  separated by ','; FAISSNPROBES: nprobes separated by ','; REPS (default 3); CACHE: a directory
  where trained FAISS indexes are kept between runs (default: none).
  BASE/QUERY may be .fvecs or .bvecs; GT .ivecs (top-k ids).
e.g. FAISS_OPT_LEVEL=AVX2 PYTHONPATH=/work/faiss-avx2 OPENBLAS_NUM_THREADS=1 scripts/fastscan_vs_faiss.py \\
     build/qinx g16fs.qx base.fvecs train.fvecs query.fvecs gt.ivecs 2000 \\
     "OPQ16_96,IVF1024,PQ16x8np;OPQ32_96,IVF1024,PQ32x4fsr" 1:10,2:20,4:40 1,2,4,8,16 3 /tmp/faiss-cache
"""
import json, os, statistics, subprocess, sys, tempfile, time

import numpy as np
import faiss


def read_vecs(path):
    if path.endswith('.bvecs'):
        raw = np.fromfile(path, dtype='uint8')
        d = int(raw[:4].view('int32')[0])
        return raw.reshape(-1, d + 4)[:, 4:].astype('float32')
    raw = np.fromfile(path, dtype='int32')
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view('float32' if path.endswith('.fvecs') else 'int32').copy()


def write_vecs(path, x):
    n, d = x.shape
    out = np.empty((n, d + 1), dtype='int32')
    out[:, 0] = d
    out[:, 1:] = x.view('int32')
    out.tofile(path)


def main():
    a = sys.argv[1:]
    if len(a) < 10:
        print(__doc__)
        sys.exit(2)
    qx, qxi, basef, trainf, queryf, gtf, nq, facs, qcfgs, fprobes = a[:10]
    reps = int(a[10]) if len(a) > 10 else 3
    cache = a[11] if len(a) > 11 else None
    nq = int(nq)
    xq = read_vecs(queryf)[:nq]
    gt = read_vecs(gtf)[:nq]
    tmp = tempfile.mkdtemp()
    qf, gf = tmp + '/q.fvecs', tmp + '/gt.ivecs'
    write_vecs(qf, np.ascontiguousarray(xq))
    write_vecs(gf, np.ascontiguousarray(gt))

    def k10(I):
        return float(np.mean([len(set(I[i, :10]) & set(gt[i, :10])) / 10 for i in range(nq)]))

    print(f"# faiss {faiss.__version__} {faiss.get_compile_options()} nq={nq} reps={reps} "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    faiss.omp_set_num_threads(2)
    idxs = []
    for fac in facs.split(';'):
        cf = os.path.join(cache, fac.replace(',', '_') + '-' + os.path.basename(basef) + '.faiss') if cache else None
        if cf and os.path.exists(cf):
            idx = faiss.read_index(cf)
        else:
            xb, xt = read_vecs(basef), read_vecs(trainf)
            idx = faiss.index_factory(xb.shape[1], fac)
            t0 = time.time()
            idx.train(xt)
            idx.add(xb)
            print(f"# {fac}: trained and added in {time.time() - t0:.0f} s", flush=True)
            if cf:
                os.makedirs(cache, exist_ok=True)
                faiss.write_index(idx, cf)
        idxs.append((fac, idx))
    faiss.omp_set_num_threads(1)
    qconf = [tuple(int(v) for v in c.split(':')) for c in qcfgs.split(',')]
    fnp = [int(v) for v in fprobes.split(',')]
    res = {}  # name -> (recall, [qps...])

    for rep in range(reps):
        for c in qconf:
            cmd = [qx, 'search', '--index', qxi, '--queries', qf, '--gt', gf, '--k', '10', '--nprobe', str(c[0]),
                   '--shortlist', str(c[1]), '--json', '--runs', '2']
            if len(c) > 2:
                cmd += ['--coarse-groups', 'flat' if c[2] < 0 else str(c[2])]
            j = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            name = 'qinx-fs np=%d sl=%d%s' % (c[0], c[1], (' cg=%d' % c[2]) if len(c) > 2 else '')
            r = res.setdefault(name, [j['10-recall@10'], [], 'qinx'])
            r[1].append(j['qps'])
        for fac, idx in idxs:
            ivf = faiss.extract_index_ivf(idx)
            for p in fnp:
                ivf.nprobe = p
                bt = 1e9
                for _ in range(2):
                    t0 = time.perf_counter()
                    D, I = idx.search(xq, 10)
                    bt = min(bt, time.perf_counter() - t0)
                name = f'{fac} np={p}'
                r = res.setdefault(name, [k10(I), [], 'faiss'])
                r[1].append(nq / bt)
        print(f"# repetition {rep + 1} done, load {os.getloadavg()[0]:.2f}", flush=True)

    print("\nmethod\t10-R@10\tQPS (median)\tQPS runs")
    for name, (rc, q, _) in res.items():
        print(f"{name}\t{rc:.4f}\t{statistics.median(q):.0f}\t{' '.join('%.0f' % v for v in q)}")
    print("\nlevel\tqinx best (config: recall, QPS)\tFAISS best (config: recall, QPS)\tratio")
    for lv in (0.4, 0.5, 0.55, 0.6, 0.65, 0.7):
        def best(kind):
            c = [(statistics.median(q), n, rc) for n, (rc, q, k) in res.items() if k == kind and rc >= lv]
            return max(c) if c else None
        bq, bf = best('qinx'), best('faiss')
        fmt = lambda b: f"{b[1]}: {b[2]:.3f}, {b[0]:.0f}" if b else "not reached"
        ratio = f"{bq[0] / bf[0]:.2f}" if bq and bf else "-"
        print(f"{lv}\t{fmt(bq)}\t{fmt(bf)}\t{ratio}")


if __name__ == '__main__':
    main()
