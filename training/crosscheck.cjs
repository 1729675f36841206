#!/usr/bin/env node
// Cross-check the committed models with onnxruntime-node (the runtime the
// service uses): for every models/<name>/<version>/, verify model.json's sha256,
// the input/output tensor names, and that the outputs on expected.json's rows
// match the python onnxruntime and reference outputs within expected.tolerance.
// Run from the repository root: node training/crosscheck.cjs
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const ort = require('onnxruntime-node');

const root = path.resolve(__dirname, '..', 'models');

async function checkVersion(dir) {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const bytes = fs.readFileSync(path.join(dir, 'model.onnx'));
  const sha = crypto.createHash('sha256').update(bytes).digest('hex');
  if (sha !== meta.sha256) throw new Error(`${dir}: sha256 ${sha} != model.json ${meta.sha256}`);

  const session = await ort.InferenceSession.create(bytes);
  const input = meta.inputs[0];
  const nFeat = input.features.length;
  const rows = exp.rows;
  const data = new Float32Array(rows.length * nFeat);
  rows.forEach((r, i) => data.set(r, i * nFeat));
  const feeds = { [input.tensor]: new ort.Tensor('float32', data, [rows.length, nFeat]) };
  const results = await session.run(feeds);

  const report = {};
  for (const out of meta.outputs) {
    const t = results[out.tensor];
    if (!t) throw new Error(`${dir}: no output tensor ${out.tensor} (have ${Object.keys(results)})`);
    const width = out.column === null ? 1 : t.dims[1];
    const got = rows.map((_, i) => Number(t.data[i * width + (out.column === null ? 0 : out.column)]));
    let dOrt = 0;
    let dRef = 0;
    got.forEach((v, i) => {
      dOrt = Math.max(dOrt, Math.abs(v - exp.onnxruntime.outputs[out.name][i]));
      dRef = Math.max(dRef, Math.abs(v - exp.reference.outputs[out.name][i]));
    });
    if (dOrt > exp.tolerance || dRef > exp.tolerance) {
      throw new Error(`${dir}: output ${out.name} differs: vs python ort ${dOrt}, vs reference ${dRef}`);
    }
    report[out.name] = {
      type: t.type,
      dims: t.dims,
      maxAbsDiffVsPythonOrt: dOrt,
      maxAbsDiffVsReference: dRef,
    };
  }
  return report;
}

(async () => {
  let failed = 0;
  for (const name of fs.readdirSync(root).sort()) {
    const nameDir = path.join(root, name);
    if (!fs.statSync(nameDir).isDirectory()) continue;
    for (const version of fs.readdirSync(nameDir).sort()) {
      const dir = path.join(nameDir, version);
      try {
        console.log(`${name}/${version}`, JSON.stringify(await checkVersion(dir)));
      } catch (e) {
        failed++;
        console.error(`FAIL ${name}/${version}: ${e.message}`);
      }
    }
  }
  console.log(failed ? `${failed} failed` : 'all ok');
  process.exit(failed ? 1 : 0);
})();
