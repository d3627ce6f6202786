#!/usr/bin/env node
// scripts/idx-to-fvecs.js — convert an IDX3 ubyte image file (MNIST / Fashion-MNIST layout,
// optionally gzip'ed) to TEXMEX .fvecs: one float32 vector of rows*cols pixel values 0..255
// per image. Validates the magic number and the size before writing (temp file + rename).
// usage: node idx-to-fvecs.js images-idx3-ubyte[.gz] out.fvecs [MAX_N]
'use strict';
const fs = require('fs');
const zlib = require('zlib');

const [src, out, maxArg] = process.argv.slice(2);
if (!src || !out) {
  console.error('usage: node idx-to-fvecs.js images-idx3-ubyte[.gz] out.fvecs [MAX_N]');
  process.exit(2);
}
let raw = fs.readFileSync(src);
if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) raw = zlib.gunzipSync(raw);
if (raw.length < 16 || raw.readUInt32BE(0) !== 0x00000803) {
  console.error(`idx-to-fvecs: ${src} is not an IDX3 ubyte file (magic ${raw.length >= 4 ? raw.readUInt32BE(0).toString(16) : '?'})`);
  process.exit(1);
}
const total = raw.readUInt32BE(4), rows = raw.readUInt32BE(8), cols = raw.readUInt32BE(12);
const dim = rows * cols;
if (raw.length !== 16 + total * dim) {
  console.error(`idx-to-fvecs: ${src}: ${total} images of ${rows}x${cols} need ${16 + total * dim} bytes, file has ${raw.length}`);
  process.exit(1);
}
const n = maxArg ? Math.min(total, parseInt(maxArg, 10)) : total;
const rec = 4 + 4 * dim;
const buf = Buffer.alloc(n * rec);
for (let i = 0; i < n; i++) {
  buf.writeInt32LE(dim, i * rec);
  for (let k = 0; k < dim; k++) buf.writeFloatLE(raw[16 + i * dim + k], i * rec + 4 + 4 * k);
}
fs.writeFileSync(out + '.tmp', buf);
fs.renameSync(out + '.tmp', out);
console.error(`idx-to-fvecs: wrote ${n} x ${dim} to ${out}`);
