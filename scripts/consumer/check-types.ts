// Type-checked (tsc --noEmit, strict) inside a consumer project against sdvp's shipped declarations.
import {
  type Capabilities,
  type DistillLossResult,
  type Model,
  SdvpError,
  type SdvpErrorCode,
  capabilities,
  createModel,
  distillLoss,
  parseVisProgProgram,
} from 'sdvp';

const caps: Capabilities = capabilities();
const built: boolean = caps.torch.built;
const result: DistillLossResult = distillLoss({
  student: new Float32Array(6),
  rows: 2,
  vocab: 3,
  labels: Int32Array.from([0, 1]),
});
const loss: number = result.loss;
const code: SdvpErrorCode = 'ERR_SDVP_NO_TORCH';

async function train(): Promise<number> {
  const model: Model = await createModel('tiny-vlm', { answerVocab: ['yes', 'no'], seed: 1 });
  const step = await model.trainStep({
    method: 'answer',
    inputs: [
      { data: new Float32Array(3 * 8 * 8), shape: [1, 3, 8, 8] },
      { data: new Int32Array(4), shape: [1, 4] },
    ],
    objective: { labels: Int32Array.from([0]) },
    optimizer: { type: 'adamw', lr: 1e-3 },
  });
  return step.loss;
}

const steps: number = parseVisProgProgram('FINAL_RESULT=RESULT(var=X)').steps.length;
export { built, code, loss, steps, train, SdvpError };
