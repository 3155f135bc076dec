// Pretraining of the generalist student on the general mix (lib/data/general-mix.ts): alternating answer and
// grounding steps on fresh scenes from the training split. The result is the "untuned" student of the
// experiments: good at colours, counts and finding digits, weak at reading them.

import { openDataset } from '../data/dataset';
import { GeneralMix, type GeneralMixOptions } from '../data/general-mix';
import { loadMnistDigits, splitMnist } from '../data/mnist-digits';
import { Random } from '../data/random';
import { digitAnswerVocab, digitTokenVocab } from '../data/vocabulary';
import { SdvpError } from '../errors/sdvp-error';
import { type TransformerVlmConfig, createModel } from '../models/create-model';
import { gridTargetFromBoxes, groundingWidth } from '../models/grounding';
import type { TrainStepOptions } from '../models/model';
import type { OptimizerOptions } from '../models/optimizer-options';
import { runTrainLoop } from '../models/train-loop';
import type { Box } from '../program/image';
import { distributionToLogits } from '../teachers/adapters';
import { Student, type StudentView } from './student';

export interface PretrainOptions {
  /** The digit benchmark (its dataset.json names the MNIST split to draw training digits from). */
  data: string;
  /** Where the pretrained student is written (TorchScript checkpoint). */
  out: string;
  seed?: number;
  /** Optimizer steps (half answer, half grounding). Default 2400. */
  steps?: number;
  batchSize?: number;
  /** Overrides of the transformer-vlm configuration. */
  architecture?: TransformerVlmConfig;
  mix?: Partial<GeneralMixOptions>;
  onProgress?: (event: { step: number; steps: number; loss: number }) => void;
  signal?: AbortSignal;
}

export interface PretrainResult {
  parameters: number;
  steps: number;
  seconds: number;
  samplesPerSecond: number;
  trainStepShare: number;
}

/** The default student: a transformer-vlm for 64×64 images on an 8×8 grid (about 95 k parameters). */
export const DEFAULT_STUDENT: TransformerVlmConfig = {
  channels: [16, 32, 48, 64],
  strides: [2, 2, 2, 1],
  imageSize: 64,
  dim: 48,
  hidden: 96,
  layers: 2,
  heads: 1,
  gridSize: 8,
  maxTokens: 10,
};

/** A batch of answer views with their answers: the inputs and the answer indices. */
export function answerBatch(
  student: Student,
  views: readonly StudentView[],
  answers: readonly string[],
): Pick<TrainStepOptions, 'inputs'> & { labels: Int32Array } {
  const labels = new Int32Array(answers.length);
  answers.forEach((answer, i) => {
    const index = student.answerVocab.indexOf(answer);
    if (index < 0)
      throw new SdvpError('ERR_SDVP_ARG', `The answer '${answer}' is not in the student's answer_vocab.`);
    labels[i] = index;
  });
  return { inputs: student.inputs(views), labels };
}

/** A batch of grounding views with their true boxes: the inputs and the target distributions as logits. */
export function groundBatch(
  student: Student,
  views: readonly StudentView[],
  boxes: ReadonlyArray<readonly Box[]>,
): Pick<TrainStepOptions, 'inputs'> & { teacher: Float32Array } {
  const width = groundingWidth(student.layout);
  const target = new Float32Array(views.length * width);
  views.forEach((view, i) => {
    const region = view.region ?? [0, 0, view.image.width, view.image.height];
    gridTargetFromBoxes(
      boxes[i],
      student.layout,
      { width: region[2] - region[0], height: region[3] - region[1] },
      target,
      i * width,
    );
  });
  return { inputs: student.inputs(views), teacher: distributionToLogits(target) };
}

export function pretrainOptimizer(steps: number): OptimizerOptions {
  return {
    type: 'adamw',
    lr: 2e-3,
    weightDecay: 0.01,
    maxGradNorm: 1,
    schedule: {
      kind: 'cosine',
      warmupSteps: Math.min(100, Math.floor(steps / 5)),
      totalSteps: steps,
      minFactor: 0.05,
    },
  };
}

export async function pretrainStudent(options: PretrainOptions): Promise<PretrainResult> {
  const dataset = openDataset(options.data);
  const generator = dataset.manifest.generator;
  if (!generator)
    throw new SdvpError('ERR_SDVP_ARG', `${dataset.root} is not a digit benchmark (no generator record).`, {
      field: 'data',
    });
  const seed = options.seed ?? 0;
  const steps = options.steps ?? 2400;
  const batch = options.batchSize ?? 64;
  const digits = loadMnistDigits();
  const mix = new GeneralMix(
    new Random(seed).fork('general-mix'),
    splitMnist(digits, generator.seed).train,
    digits,
    options.mix,
  );
  const model = await createModel('transformer-vlm', {
    ...DEFAULT_STUDENT,
    ...options.architecture,
    tokenVocab: digitTokenVocab(),
    answerVocab: digitAnswerVocab(),
    seed,
  });
  try {
    const student = await Student.of(model);
    const optimizer = pretrainOptimizer(steps);
    const result = await runTrainLoop({
      model,
      steps,
      signal: options.signal,
      makeStep: (step) => {
        if (step % 2 === 0) {
          const samples = Array.from({ length: batch }, () => mix.answer());
          const { inputs, labels } = answerBatch(
            student,
            samples,
            samples.map((s) => s.answer),
          );
          return { method: 'answer', inputs, objective: { labels, labelSmoothing: 0.05 }, optimizer };
        }
        const samples = Array.from({ length: batch }, () => mix.ground());
        const { inputs, teacher } = groundBatch(
          student,
          samples,
          samples.map((s) => s.boxes),
        );
        return { method: 'ground', inputs, objective: { teacher, kdWeight: 1 }, optimizer };
      },
      onStep: (step, stepResult) => options.onProgress?.({ step: step + 1, steps, loss: stepResult.loss }),
    });
    await model.saveCheckpoint(options.out);
    const parameters = model.parameters().reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
    return {
      parameters,
      steps,
      seconds: result.seconds,
      samplesPerSecond: (steps * batch) / result.seconds,
      trainStepShare: result.trainStepSeconds / result.seconds,
    };
  } finally {
    model.dispose();
  }
}
