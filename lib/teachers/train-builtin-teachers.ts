// `sdvp teachers train`: the built-in teachers of the digit benchmark, trained on its training split only —
// a digit classifier on crops (cnn-classifier, for VQA's "What digit is this?") and a digit detector
// (grid-detector's locate, for LOC of 'digit' and 'digit N') — evaluated on the held-out test digits and
// scenes, saved with a registry file and metrics.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDataset } from '../data/dataset';
import { drawScene, jitteredDigitCrop, locView } from '../data/digit-crops';
import { loadMnistDigits, splitMnist } from '../data/mnist-digits';
import { Random } from '../data/random';
import { type Scene, matchedBoxes } from '../data/scene';
import { objectsIn } from '../data/scene-queries';
import { SdvpError } from '../errors/sdvp-error';
import { createModel } from '../models/create-model';
import { type GridLayout, boxesFromGrid, gridTargetFromBoxes, groundingWidth } from '../models/grounding';
import { writeImageRegion } from '../models/image-tensor';
import type { Model } from '../models/model';
import type { OptimizerOptions } from '../models/optimizer-options';
import { runTrainLoop } from '../models/train-loop';
import type { Box, RasterImage } from '../program/image';
import { visprogExpandBox } from '../program/visprog-semantics';
import { distributionToLogits } from './adapters';
import type { TeacherEntry } from './registry';

export interface TeacherTrainingOptions {
  /** A digit benchmark folder (sdvp data digits). */
  data: string;
  /** Where the teachers, their registry and metrics go. */
  out: string;
  seed?: number;
  /** Optimizer steps. Defaults 2400 (classifier) and 1500 (detector). */
  classifierSteps?: number;
  detectorSteps?: number;
  batchSize?: number;
  onProgress?: (event: { teacher: string; step: number; steps: number; loss: number }) => void;
  signal?: AbortSignal;
}

export interface TeacherMetrics {
  seed: number;
  seconds: number;
  classifier: {
    id: string;
    parameters: number;
    steps: number;
    seconds: number;
    testAccuracy: number;
    valAccuracy: number;
    testDigits: number;
  };
  detector: {
    id: string;
    parameters: number;
    steps: number;
    seconds: number;
    /** Test scenes, query 'digit': share of digits found with a box of IoU ≥ 0.5, and share of boxes that are right. */
    recallAny: number;
    precisionAny: number;
    /** Test scenes, query 'digit N' for each N shown: digits of that class found (IoU ≥ 0.5). */
    recallByDigit: number;
    /** Test scenes, query 'digit N' for an N not shown: share answered with no box. */
    absentAccuracy: number;
    testScenes: number;
  };
}

export const CLASSIFIER_ID = 'digit-vqa';
export const DETECTOR_ID = 'digit-loc';
export const DIGIT_LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const CLASSIFIER_SIDE = 32;
const DETECTOR_SIDE = 64;
const DETECTOR_LAYOUT: GridLayout = { gridSize: 8, hasAbsent: true };

/** The registry entries of the built-in teachers (paths relative to the registry file). */
export function builtinTeacherEntries(): TeacherEntry[] {
  return [
    {
      id: CLASSIFIER_ID,
      kind: 'torchscript',
      module: 'VQA',
      subTask: 'vqa',
      version: '1',
      batchSize: 128,
      path: `${CLASSIFIER_ID}.pt`,
      accepts: { texts: ['What digit is this?'] },
      minScore: 0,
    },
    {
      id: DETECTOR_ID,
      kind: 'torchscript',
      module: 'LOC',
      subTask: 'grounding',
      version: '1',
      batchSize: 64,
      path: `${DETECTOR_ID}.pt`,
      accepts: { pattern: 'digits?( [0-9])?' },
      minScore: 0,
    },
  ];
}

/** AdamW with warm-up and a cosine decay over the run: both teachers train with it. */
function teacherOptimizer(steps: number): OptimizerOptions {
  return {
    type: 'adamw',
    lr: 3e-3,
    weightDecay: 1e-4,
    maxGradNorm: 2,
    schedule: {
      kind: 'cosine',
      warmupSteps: Math.min(50, Math.floor(steps / 5)),
      totalSteps: steps,
      minFactor: 0.02,
    },
  };
}

function parameterCount(model: Model): number {
  return model.parameters().reduce((sum, parameter) => sum + parameter.shape.reduce((a, b) => a * b, 1), 0);
}

async function trainClassifier(
  options: Required<Pick<TeacherTrainingOptions, 'classifierSteps' | 'batchSize'>> & TeacherTrainingOptions,
  pool: number[],
  random: Random,
  seed: number,
): Promise<{ model: Model; seconds: number }> {
  const digits = loadMnistDigits();
  // Four convolutions (the last three halving the resolution) see a whole digit before the global pooling.
  const model = await createModel('cnn-classifier', {
    labels: DIGIT_LABELS,
    imageSize: CLASSIFIER_SIDE,
    channels: [16, 32, 64, 96],
    seed,
  });
  const batch = options.batchSize;
  const images = new Float32Array(batch * 3 * CLASSIFIER_SIDE * CLASSIFIER_SIDE);
  const steps = options.classifierSteps;
  const result = await runTrainLoop({
    model,
    steps,
    signal: options.signal,
    makeStep: () => {
      const labels = new Int32Array(batch);
      const data = new Float32Array(images.length);
      for (let filled = 0; filled < batch; ) {
        const { scene, image } = drawScene(random, pool, digits);
        for (const object of scene.objects) {
          if (filled === batch) break;
          writeImageRegion(
            image,
            jitteredDigitCrop(random, object.box, scene),
            CLASSIFIER_SIDE,
            data,
            filled,
          );
          labels[filled++] = object.digit;
        }
      }
      return {
        inputs: [{ data, shape: [batch, 3, CLASSIFIER_SIDE, CLASSIFIER_SIDE] }],
        objective: { labels, labelSmoothing: 0.05 },
        optimizer: teacherOptimizer(steps),
      };
    },
    onStep: (step, stepResult) =>
      options.onProgress?.({ teacher: CLASSIFIER_ID, step: step + 1, steps, loss: stepResult.loss }),
  });
  return { model, seconds: result.seconds };
}

async function trainDetector(
  options: Required<Pick<TeacherTrainingOptions, 'detectorSteps' | 'batchSize'>> & TeacherTrainingOptions,
  pool: number[],
  random: Random,
  seed: number,
): Promise<{ model: Model; seconds: number }> {
  const digits = loadMnistDigits();
  const model = await createModel('grid-detector', {
    labels: DIGIT_LABELS,
    imageSize: DETECTOR_SIDE,
    gridSize: DETECTOR_LAYOUT.gridSize,
    channels: [16, 32, 64, 64],
    strides: [2, 2, 2, 1],
    hidden: 96,
    seed,
  });
  const batch = options.batchSize;
  const width = groundingWidth(DETECTOR_LAYOUT);
  const steps = options.detectorSteps;
  const result = await runTrainLoop({
    model,
    steps,
    signal: options.signal,
    makeStep: () => {
      const data = new Float32Array(batch * 3 * DETECTOR_SIDE * DETECTOR_SIDE);
      const query = new Int32Array(batch);
      const target = new Float32Array(batch * width);
      for (let i = 0; i < batch; i++) {
        const { scene, image } = drawScene(random, pool, digits);
        const region = locView(random, scene);
        writeImageRegion(image, region, DETECTOR_SIDE, data, i);
        const present = objectsIn(scene, region);
        // Any digit 40% of the time; else one digit class, shown with probability 0.6.
        const digit = random.chance(0.4)
          ? -1
          : present.length > 0 && random.chance(0.6)
            ? random.pick(present).digit
            : random.int(0, 9);
        query[i] = digit + 1;
        const boxes = present
          .filter((object) => digit < 0 || object.digit === digit)
          .map((object) => relativeBox(object.box, region));
        gridTargetFromBoxes(
          boxes,
          DETECTOR_LAYOUT,
          { width: region[2] - region[0], height: region[3] - region[1] },
          target,
          i * width,
        );
      }
      return {
        method: 'locate',
        inputs: [
          { data, shape: [batch, 3, DETECTOR_SIDE, DETECTOR_SIDE] },
          { data: query, shape: [batch] },
        ],
        objective: { teacher: distributionToLogits(target), kdWeight: 1, temperature: 1 },
        optimizer: teacherOptimizer(steps),
      };
    },
    onStep: (step, stepResult) =>
      options.onProgress?.({ teacher: DETECTOR_ID, step: step + 1, steps, loss: stepResult.loss }),
  });
  return { model, seconds: result.seconds };
}

function relativeBox(box: Box, region: Box): Box {
  return [box[0] - region[0], box[1] - region[1], box[2] - region[0], box[3] - region[1]];
}

async function evaluateClassifier(
  model: Model,
  scenes: Array<{ scene: Scene; image: RasterImage }>,
): Promise<{ accuracy: number; count: number }> {
  const crops: Array<{ image: RasterImage; box: Box; digit: number }> = [];
  for (const { scene, image } of scenes) {
    for (const object of scene.objects)
      crops.push({
        image,
        box: visprogExpandBox(object.box, scene.width, scene.height),
        digit: object.digit,
      });
  }
  const data = new Float32Array(crops.length * 3 * CLASSIFIER_SIDE * CLASSIFIER_SIDE);
  crops.forEach((crop, i) => writeImageRegion(crop.image, crop.box, CLASSIFIER_SIDE, data, i));
  const logits = await model.callTensor(
    'forward',
    [{ data, shape: [crops.length, 3, CLASSIFIER_SIDE, CLASSIFIER_SIDE] }],
    { batchSize: 256 },
  );
  const values = logits.data as Float32Array;
  let correct = 0;
  crops.forEach((crop, i) => {
    let best = 0;
    for (let k = 1; k < 10; k++) if (values[i * 10 + k] > values[i * 10 + best]) best = k;
    if (best === crop.digit) correct++;
  });
  return { accuracy: crops.length > 0 ? correct / crops.length : 0, count: crops.length };
}

async function evaluateDetector(
  model: Model,
  scenes: Array<{ scene: Scene; image: RasterImage }>,
  random: Random,
): Promise<TeacherMetrics['detector']> {
  const queries: Array<{ scene: Scene; image: RasterImage; digit: number }> = [];
  for (const entry of scenes) {
    queries.push({ ...entry, digit: -1 });
    for (const digit of new Set(entry.scene.objects.map((object) => object.digit)))
      queries.push({ ...entry, digit });
    const absent = [...Array(10).keys()].filter(
      (digit) => !entry.scene.objects.some((object) => object.digit === digit),
    );
    queries.push({ ...entry, digit: random.pick(absent) });
  }
  const data = new Float32Array(queries.length * 3 * DETECTOR_SIDE * DETECTOR_SIDE);
  queries.forEach((query, i) => writeImageRegion(query.image, null, DETECTOR_SIDE, data, i));
  const query = new Int32Array(queries.map((entry) => entry.digit + 1));
  const scores = await model.callTensor(
    'locate',
    [
      { data, shape: [queries.length, 3, DETECTOR_SIDE, DETECTOR_SIDE] },
      { data: query, shape: [queries.length] },
    ],
    { batchSize: 256 },
  );
  const width = groundingWidth(DETECTOR_LAYOUT);
  let anyFound = 0;
  let anyTotal = 0;
  let anyPredicted = 0;
  let digitFound = 0;
  let digitTotal = 0;
  let absentRight = 0;
  let absentTotal = 0;
  queries.forEach((entry, i) => {
    const { boxes } = boxesFromGrid(scores.data as Float32Array, i * width, DETECTOR_LAYOUT, {
      width: entry.scene.width,
      height: entry.scene.height,
      sourceSide: Math.min(entry.scene.width, entry.scene.height),
    });
    const truth = entry.scene.objects
      .filter((object) => entry.digit < 0 || object.digit === entry.digit)
      .map((object) => object.box);
    if (entry.digit < 0) {
      anyFound += matchedBoxes(boxes, truth);
      anyTotal += truth.length;
      anyPredicted += boxes.length;
    } else if (truth.length > 0) {
      digitFound += matchedBoxes(boxes, truth);
      digitTotal += truth.length;
    } else {
      absentTotal++;
      if (boxes.length === 0) absentRight++;
    }
  });
  return {
    id: DETECTOR_ID,
    parameters: parameterCount(model),
    steps: 0,
    seconds: 0,
    recallAny: anyTotal > 0 ? anyFound / anyTotal : 0,
    precisionAny: anyPredicted > 0 ? anyFound / anyPredicted : 0,
    recallByDigit: digitTotal > 0 ? digitFound / digitTotal : 0,
    absentAccuracy: absentTotal > 0 ? absentRight / absentTotal : 0,
    testScenes: scenes.length,
  };
}

/** Loads a split's scenes with their decoded images. */
async function splitScenes(
  data: string,
  split: string,
): Promise<Array<{ scene: Scene; image: RasterImage }>> {
  const dataset = openDataset(data);
  const prefix = `images/${split}/`;
  const entries = [...dataset.scenes()].filter(([path]) => path.startsWith(prefix));
  return Promise.all(entries.map(async ([path, scene]) => ({ scene, image: await dataset.image(path) })));
}

/** Trains, evaluates and saves both built-in teachers; writes teachers.json and metrics.json into `out`. */
export async function trainBuiltinTeachers(options: TeacherTrainingOptions): Promise<TeacherMetrics> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const dataset = openDataset(options.data);
  const generator = dataset.manifest.generator;
  if (!generator || generator.name !== 'digits') {
    throw new SdvpError(
      'ERR_SDVP_ARG',
      `${dataset.root} is not a digit benchmark (no generator record in dataset.json); the built-in teachers train on 'sdvp data digits' output.`,
      { field: 'data' },
    );
  }
  const full = { classifierSteps: 2400, detectorSteps: 1500, batchSize: 64, ...options };
  const digits = loadMnistDigits();
  // The same split the benchmark was built with: teachers never see a validation or test digit.
  const pool = splitMnist(digits, generator.seed).train;
  const random = new Random(seed).fork('teachers');
  const test = await splitScenes(options.data, 'test');
  const val = await splitScenes(options.data, 'val');

  const classifier = await trainClassifier(full, pool, random.fork('classifier'), seed);
  const detector = await trainDetector(full, pool, random.fork('detector'), seed + 1);
  try {
    const testClassifier = await evaluateClassifier(classifier.model, test);
    const valClassifier = await evaluateClassifier(classifier.model, val);
    const detectorMetrics = await evaluateDetector(detector.model, test, random.fork('detector-eval'));
    const metrics: TeacherMetrics = {
      seed,
      seconds: 0,
      classifier: {
        id: CLASSIFIER_ID,
        parameters: parameterCount(classifier.model),
        steps: full.classifierSteps,
        seconds: classifier.seconds,
        testAccuracy: testClassifier.accuracy,
        valAccuracy: valClassifier.accuracy,
        testDigits: testClassifier.count,
      },
      detector: { ...detectorMetrics, steps: full.detectorSteps, seconds: detector.seconds },
    };
    const out = resolve(options.out);
    const staging = `${out}.partial-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    await classifier.model.save(join(staging, `${CLASSIFIER_ID}.pt`));
    await detector.model.save(join(staging, `${DETECTOR_ID}.pt`));
    metrics.seconds = (performance.now() - started) / 1000;
    writeFileSync(
      join(staging, 'teachers.json'),
      `${JSON.stringify({ teachers: builtinTeacherEntries() }, null, 2)}\n`,
    );
    writeFileSync(join(staging, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(staging, out);
    return metrics;
  } finally {
    classifier.model.dispose();
    detector.model.dispose();
  }
}
