// Run inside a consumer project: sdvp imported by name as an ES module gives the CommonJS exports.
import { createRequire } from 'node:module';
import sdvp, { SdvpError, capabilities, createModel, distillLoss, parseVisProgProgram } from 'sdvp';

const cjs = createRequire(import.meta.url)('sdvp');
for (const [name, value] of Object.entries({
  SdvpError,
  capabilities,
  createModel,
  distillLoss,
  parseVisProgProgram,
})) {
  if (cjs[name] !== value || sdvp[name] !== value)
    throw new Error(`the ESM export ${name} is not the CommonJS one`);
}
const graph = parseVisProgProgram(
  "ANSWER0=VQA(image=IMAGE,question='What is it?')\nFINAL_RESULT=RESULT(var=ANSWER0)",
);
if (graph.steps.length !== 2) throw new Error(`expected 2 steps, got ${graph.steps.length}`);
console.log(JSON.stringify({ esm: true, simdTarget: capabilities().simdTarget }));
