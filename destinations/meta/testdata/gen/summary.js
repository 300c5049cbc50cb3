#!/usr/bin/env node
// summary.js reads ../vectors/normalize.jsonl and prints, per field, how often
// Meta's two libraries disagree with each other and with the documented rules
// (the `docs` column of each vector). Output is a Markdown table for README.md.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const sha = (s) => crypto.createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');
const lines = fs.readFileSync(path.join(__dirname, '..', 'vectors', 'normalize.jsonl'), 'utf8')
  .trim().split('\n').slice(1).map((l) => JSON.parse(l));

// final is what would reach Meta, with the PB appendix removed; null = dropped.
const final = (r) => (r.error !== undefined ? 'ERROR' : r.unhashed ? 'RAW:' + r.sent : r.hash);
const docsFinal = (d) => (d.normalized === null ? null
  : /^[0-9a-f]{64}$/.test(d.normalized) ? d.normalized : sha(d.normalized));

const rows = {};
for (const l of lines) {
  const f = l.field;
  const r = rows[f] || (rows[f] = { n: 0, sdkThrow: 0, sdkNull: 0, pbNull: 0, sdkPb: 0, bothHashDiff: 0, sdkDocs: 0, pbDocs: 0 });
  r.n++;
  if (l.sdk.error !== undefined) r.sdkThrow++;
  else if (l.sdk.sent === null) r.sdkNull++;
  if (l.pb.unsupported) { r.sdkPb = r.bothHashDiff = r.pbDocs = r.sdkDocs = r.pbNull = '—'; continue; }
  if (l.pb.sent === null) r.pbNull++;
  const s = final(l.sdk); const p = final(l.pb); const d = docsFinal(l.docs);
  if (s !== p) r.sdkPb++;
  if (s !== p && /^[0-9a-f]{32,64}$/.test(s || '') && /^[0-9a-f]{32,64}$/.test(p || '')) r.bothHashDiff++;
  if (s !== d) r.sdkDocs++;
  if (p !== d) r.pbDocs++;
}

const out = ['| field | vectors | SDK throws | SDK drops | PB drops (null) | SDK ≠ PB | both hash, differently | SDK ≠ docs | PB ≠ docs |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
let tot = { n: 0, sdkPb: 0, both: 0 };
for (const [f, r] of Object.entries(rows)) {
  out.push(`| ${f} | ${r.n} | ${r.sdkThrow} | ${r.sdkNull} | ${r.pbNull} | ${r.sdkPb} | ${r.bothHashDiff} | ${r.sdkDocs} | ${r.pbDocs} |`);
  tot.n += r.n;
  if (typeof r.sdkPb === 'number') { tot.sdkPb += r.sdkPb; tot.both += r.bothHashDiff; }
}
out.push(`| **total** | ${tot.n} | | | | ${tot.sdkPb} | ${tot.both} | | |`);
process.stdout.write(out.join('\n') + '\n');
