// Adapters and the grounding rule, on their own: class distributions to top-k over the student's answers
// (the tail mass), detections to grid distributions and back to boxes.

import test from 'ava';
import { boxIou } from '../lib/data/scene';
import { boxesFromGrid, gridTargetFromBoxes, groundingWidth, layoutFromWidth } from '../lib/models/grounding';
import type { Box } from '../lib/program/image';
import {
  classificationToTopK,
  detectionToGrid,
  distributionToLogits,
  teacherConfidence,
} from '../lib/teachers/adapters';

test('a class distribution becomes top-k log-probabilities; labels the student lacks go to the tail', (t) => {
  const vocab = ['0', '1', '2', 'yes', 'no'];
  const topk = classificationToTopK(
    [{ labels: ['7', '1', '2', '0'], probs: [0.5, 0.3, 0.15, 0.05] }],
    vocab,
    3,
  );
  t.is(topk.k, 3);
  t.is(topk.missing, 'tail');
  t.deepEqual([...topk.indices], [1, 2, 0]);
  t.deepEqual(
    [...topk.logprobs].map((x) => Math.exp(x)).map((x) => Number(x.toFixed(6))),
    [0.3, 0.15, 0.05],
  );
  // The tail is what the kernel infers: 1 - 0.5 (label '7' is not in the vocabulary).
  const kept = [...topk.logprobs].reduce((sum, x) => sum + Math.exp(x), 0);
  t.true(Math.abs(1 - kept - 0.5) < 1e-6);
});

test('unused top-k slots are padded with distinct indices at probability zero', (t) => {
  const topk = classificationToTopK([{ labels: ['yes'], probs: [1] }], ['yes', 'no', 'maybe'], 3);
  t.deepEqual([...topk.indices], [0, 1, 2]);
  t.is(topk.logprobs[0], 0);
  t.is(topk.logprobs[1], Number.NEGATIVE_INFINITY);
  t.throws(() => classificationToTopK([], ['a'], 2), { instanceOf: RangeError });
});

test('confidence: the top probability, the mean box score, 1 for a confident "nothing"', (t) => {
  t.is(teacherConfidence({ labels: ['a', 'b'], probs: [0.2, 0.7] }), 0.7);
  t.is(
    teacherConfidence({
      boxes: [
        [0, 0, 1, 1],
        [1, 1, 2, 2],
      ],
      scores: [0.5, 1],
    }),
    0.75,
  );
  t.is(teacherConfidence({ boxes: [], scores: [] }), 1);
});

test('boxes → grid distribution → boxes recovers centres to sub-cell precision, for several objects and none', (t) => {
  const layout = { gridSize: 8, hasAbsent: true };
  const width = groundingWidth(layout);
  t.is(width, 65);
  const image = { width: 64, height: 64, sourceSide: 64 };
  const truth: Box[] = [
    [5, 9, 23, 27],
    [40, 36, 58, 54],
    [37, 3, 55, 21],
  ];
  const target = new Float32Array(width);
  t.true(detectionToGrid({ boxes: truth, scores: [0.9, 0.9, 0.9] }, layout, image, target));
  t.true(Math.abs(target.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  const decoded = boxesFromGrid(distributionToLogits(target), 0, layout, image);
  t.is(decoded.boxes.length, 3);
  for (const box of truth)
    t.true(
      decoded.boxes.some((found) => boxIou(found, box) > 0.8),
      JSON.stringify({ box, found: decoded.boxes }),
    );

  const none = new Float32Array(width);
  t.true(detectionToGrid({ boxes: [[1, 1, 5, 5]], scores: [0.1] }, layout, image, none, 0, 0.5));
  t.is(none[64], 1);
  t.deepEqual(boxesFromGrid(distributionToLogits(none), 0, layout, image).boxes, []);
  // Without a "nothing matches" entry, no boxes cannot be expressed.
  t.false(gridTargetFromBoxes([], { gridSize: 4, hasAbsent: false }, image, new Float32Array(16)));
});

test('boxes on a non-square crop are measured in the crop pixels; box side follows the source image', (t) => {
  const layout = { gridSize: 8, hasAbsent: true };
  const crop = { width: 32, height: 64, sourceSide: 64 };
  const target = new Float32Array(65);
  gridTargetFromBoxes([[4, 20, 22, 38]], layout, crop, target);
  const [box] = boxesFromGrid(distributionToLogits(target), 0, layout, crop).boxes;
  t.true(Math.abs((box[0] + box[2]) / 2 - 13) <= 1);
  t.true(Math.abs((box[1] + box[3]) / 2 - 29) <= 1);
  t.is(box[3] - box[1], 18); // 0.28 × 64, rounded
  t.deepEqual(layoutFromWidth(8, 64), { gridSize: 8, hasAbsent: false });
  t.throws(() => layoutFromWidth(8, 70), { instanceOf: RangeError });
});
