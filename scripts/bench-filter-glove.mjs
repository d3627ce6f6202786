// scripts/bench-filter-glove.mjs — filtered search quality and speed through the HTTP API
// (issue 20): GloVe-100 base (331,479 x 100, Cosine) with a generated payload, loaded into a
// running `qinx serve`, rebuilt (IVF-RQ), then queried unfiltered and with filters passing
// 50 %, 10 %, 1 %, 0.1 % (keyword field) and 20 % (integer range). Ground truth: exact
// filtered top-10 computed here in float64 over the raw base (independent of the server).
// usage: node scripts/bench-filter-glove.mjs URL BASE.fvecs QUERY.fvecs [NQ] [NPROBE] [RERANK]
// RUNS=3 (env): query rounds, interleaved over the filters; QPS is the median round per filter
// (one client, sequential requests, JSON over HTTP included). SKIP_LOAD=1 reuses the collection.
import fs from 'node:fs';

const [url, basePath, queryPath, nqArg, nprobeArg, rerankArg] = process.argv.slice(2);
const NQ = +(nqArg || 300), NPROBE = +(nprobeArg || 32), RERANK = +(rerankArg || 0), RUNS = +(process.env.RUNS || 3);
function readFvecs(p) {
  const b = fs.readFileSync(p), d = b.readInt32LE(0), rec = 4 + 4 * d, n = b.length / rec;
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = b.readFloatLE(i * rec + 4 + 4 * j);
  return { x, n, d };
}
const base = readFvecs(basePath), qs = readFvecs(queryPath), d = base.d, N = base.n;
const C = 'glovef';
async function call(method, path, body) {
  const opts = { method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined };
  // a kept-alive connection the server closed while this process computed (idle timeout) fails
  // the next request once: retry it on a new connection
  const r = await fetch(url + path, opts).catch(() => fetch(url + path, opts));
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j.result;
}
// the payload: tag50/10/1/01 = "y" on 50/10/1/0.1 % of the points (fixed pattern), n = i
const payload = i => ({ s50: i % 2 ? 'y' : 'n', s10: i % 10 === 3 ? 'y' : 'n', s1: i % 100 === 7 ? 'y' : 'n',
                        s01: i % 1000 === 11 ? 'y' : 'n', n: i });
const t0 = Date.now();
let tLoad = 0;
if (!process.env.SKIP_LOAD) {
  if ((await call('GET', `/collections/${C}/exists`)).exists) await call('DELETE', `/collections/${C}`);
  await call('PUT', `/collections/${C}`, { vectors: { size: d, distance: 'Cosine' }, quantizer: { bytes: 16 } });
  for (const f of ['s50', 's10', 's1', 's01']) await call('PUT', `/collections/${C}/index`, { field_name: f, field_schema: 'keyword' });
  await call('PUT', `/collections/${C}/index`, { field_name: 'n', field_schema: 'integer' });
  for (let i0 = 0; i0 < N; i0 += 2000) {
    const points = [];
    for (let i = i0; i < Math.min(N, i0 + 2000); i++)
      points.push({ id: i, vector: Array.from(base.x.subarray(i * d, (i + 1) * d)), payload: payload(i) });
    await call('PUT', `/collections/${C}/points`, { points });
  }
  tLoad = (Date.now() - t0) / 1000;
  console.error(`loaded ${N} points in ${tLoad} s`);
  const job = await call('POST', `/collections/${C}/rebuild`, { bytes: 16 });
  let st;
  do { await new Promise(r => setTimeout(r, 2000)); st = await call('GET', `/collections/${C}/rebuild/${job.job_id}`); }
  while (st.state === 'queued' || st.state === 'running');
  if (st.state !== 'succeeded') throw new Error('rebuild: ' + JSON.stringify(st).slice(0, 400));
}
const info = await call('GET', `/collections/${C}`);
const tBuild = (Date.now() - t0) / 1000 - tLoad;
console.error(`rebuild ${tBuild} s`);

const filters = {
  none: [null, () => true],
  'keyword 50%': [{ must: [{ key: 's50', match: { value: 'y' } }] }, i => i % 2 === 1],
  'keyword 10%': [{ must: [{ key: 's10', match: { value: 'y' } }] }, i => i % 10 === 3],
  'keyword 1%': [{ must: [{ key: 's1', match: { value: 'y' } }] }, i => i % 100 === 7],
  'keyword 0.1%': [{ must: [{ key: 's01', match: { value: 'y' } }] }, i => i % 1000 === 11],
  'integer range 20%': [{ must: [{ key: 'n', range: { gte: 100000, lt: 100000 + Math.floor(N / 5) } }] },
                        i => i >= 100000 && i < 100000 + Math.floor(N / 5)],
};
// exact filtered top-10 of every query for every filter, in one pass over the base per query
// (float64 dot products of the unit vectors: Cosine ranking)
const names = Object.keys(filters), gt = names.map(() => []);
const tGt = Date.now();
for (let qi = 0; qi < NQ; qi++) {
  const q = qs.x.subarray(qi * d, (qi + 1) * d), best = names.map(() => []);
  const preds = names.map(n => filters[n][1]);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += q[j] * base.x[i * d + j];
    for (let f = 0; f < names.length; f++) {
      const bf = best[f];
      if ((bf.length < 10 || s > bf[bf.length - 1][0]) && preds[f](i)) {
        bf.push([s, i]); bf.sort((a, b) => b[0] - a[0]); if (bf.length > 10) bf.pop();
      }
    }
  }
  for (let f = 0; f < names.length; f++) gt[f].push(best[f].map(b => b[1]));
}
const gtSecs = (Date.now() - tGt) / 1000;
const rows = [];
for (let round = 0; round < RUNS; round++)
  for (let f = 0; f < names.length; f++) {
    const [filter] = filters[names[f]], gts = gt[f];
    let hit = 0, short = 0, visited = 0;
    const lat = [];
    const t1 = process.hrtime.bigint();
    for (let qi = 0; qi < NQ; qi++) {
      const body = { query: Array.from(qs.x.subarray(qi * d, (qi + 1) * d)), limit: 10, params: { nprobe: NPROBE, rerank: RERANK } };
      if (filter) body.filter = filter;
      const ts = process.hrtime.bigint();
      const r = await call('POST', `/collections/${C}/points/query`, body);
      lat.push(Number(process.hrtime.bigint() - ts) / 1e6);
      if (r.points.length < Math.min(10, gts[qi].length)) short++;
      const g = new Set(gts[qi]);
      for (const p of r.points) hit += g.has(p.id) ? 1 : 0;
    }
    const secs = Number(process.hrtime.bigint() - t1) / 1e9;
    lat.sort((a, b) => a - b);
    const row = { filter: names[f], round, recall: hit / (10 * NQ), qps: NQ / secs, p50_ms: lat[lat.length >> 1], short };
    console.error(JSON.stringify(row));
    rows.push(row);
  }
const med = a => { const v = [...a].sort((x, y) => x - y); return v[v.length >> 1]; };
const byF = names.map(n => rows.filter(r => r.filter === n));
const unf = byF[0][0].recall;
console.log(JSON.stringify({ points: N, nq: NQ, nprobe: NPROBE, rerank: RERANK, runs: RUNS, load_s: tLoad, rebuild_s: tBuild,
  ground_truth_s: gtSecs, index: info.index, payload_schema: info.payload_schema,
  payload_index_bytes: info.payload_index_bytes, payload_index_bytes_per_point: info.payload_index_bytes / N }, null, 1));
console.log('| filter | 10-recall@10 | ratio to unfiltered | QPS (1 client, median of runs) | p50 ms | short replies |');
console.log('|---|---|---|---|---|---|');
for (const rs of byF)
  console.log(`| ${rs[0].filter} | ${rs[0].recall.toFixed(3)} | ${(rs[0].recall / unf).toFixed(3)} | ${med(rs.map(r => r.qps)).toFixed(0)} | ${med(rs.map(r => r.p50_ms)).toFixed(2)} | ${rs.reduce((s, r) => s + r.short, 0)} |`);
