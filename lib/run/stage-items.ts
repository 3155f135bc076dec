// A stage's training set: the sub-task instances its modules saw when the programs ran, each with the
// teacher's soft label (through the adapters) and, where the record's ground-truth sub-answer applies to that
// exact input, a hard label. An instance no teacher covers learns from the ground truth alone (as the soft
// label too); one with neither is skipped and counted.

import { refPath } from '../data/dataset';
import type { SubAnswer, TaskRecord } from '../data/dataset-format';
import { boxIou } from '../data/scene';
import { type GridLayout, gridTargetFromBoxes, groundingWidth } from '../models/grounding';
import { visprogModuleOf } from '../program/framework-bridge';
import type { Box } from '../program/image';
import type { SubTaskInstance } from '../program/sub-tasks';
import { teacherConfidence } from '../teachers/adapters';
import type { Teacher } from '../teachers/teacher';
import type { TeacherOutput } from '../teachers/teacher-output';

export type StudentMethod = 'answer' | 'ground';

/** One training row of a stage (JSON, so a resumed run reads back exactly what it trained on). */
export interface StageItem {
  hash: string;
  module: string;
  method: StudentMethod;
  /** Image path relative to the dataset, and the region of it the module saw (null: all of it). */
  image: string;
  region: Box | null;
  text: string;
  /** Class index of the ground truth, or -100 when no sub-answer applies. */
  hard: number;
  /** Soft label: class indices and probabilities (the rest of the mass is the tail). */
  soft: { index: number[]; p: number[] };
  /** Where the soft label came from. */
  softFrom: 'teacher' | 'ground-truth';
  /** Teacher confidence (1 for ground truth), for pacing. */
  confidence: number;
}

export interface StageItemsSummary {
  instances: number;
  items: number;
  teacherLabelled: number;
  withHardLabel: number;
  groundTruthOnly: number;
  skipped: number;
}

export interface StudentSpace {
  answerVocab: readonly string[];
  layout: GridLayout;
}

/** Module (of either framework) → the student method that serves it. */
export function methodOf(module: string): StudentMethod {
  return visprogModuleOf(module) === 'LOC' ? 'ground' : 'answer';
}

function regionIou(a: Box | null, b: Box | null, full: Box): number {
  return boxIou(a ?? full, b ?? full);
}

/** The sub-answer of a record that applies to an instance (same line, image, text; crop IoU ≥ minIou). */
export function matchingSubAnswer(
  record: TaskRecord | undefined,
  instance: SubTaskInstance,
  minIou: number,
): SubAnswer | undefined {
  if (!record || !instance.input.image) return undefined;
  const subAnswers = (instance.framework === 'viper' ? record.viperSubAnswers : record.subAnswers) ?? [];
  const path = refPath(instance.input.image.ref);
  const box = (instance.input.image.box as Box | null) ?? null;
  for (const sub of subAnswers) {
    if (sub.line !== instance.line || sub.module !== instance.module || record.images[sub.input] !== path)
      continue;
    if ((sub.text ?? '') !== (instance.input.text ?? '')) continue;
    const full: Box = [0, 0, 1e9, 1e9];
    if (regionIou(box, (sub.box as Box | null) ?? null, full) >= minIou) return sub;
  }
  return undefined;
}

function regionSize(
  region: Box | null,
  imageSize: { width: number; height: number },
): { width: number; height: number } {
  return region ? { width: region[2] - region[0], height: region[3] - region[1] } : imageSize;
}

function relativeBoxes(boxes: readonly (readonly number[])[], region: Box | null): Box[] {
  const [ox, oy] = region ?? [0, 0];
  return boxes.map((box) => [box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy]);
}

function sparse(distribution: Float32Array, k: number): { index: number[]; p: number[] } {
  const order = [...distribution.keys()]
    .filter((i) => distribution[i] > 0)
    .sort((a, b) => distribution[b] - distribution[a] || a - b);
  const kept = order.slice(0, k);
  return { index: kept, p: kept.map((i) => distribution[i]) };
}

/**
 * Builds a stage's items. `labels` holds, per teacher, its stored outputs by instance hash; `imageSize`
 * gives each image's size (for grid targets of whole images).
 */
export function buildStageItems(options: {
  instances: readonly SubTaskInstance[];
  modules: readonly string[];
  teachers: readonly Teacher[];
  labels: ReadonlyMap<string, ReadonlyMap<string, TeacherOutput>>;
  minScore: ReadonlyMap<string, number>;
  records: ReadonlyMap<string, TaskRecord>;
  student: StudentSpace;
  imageSize: (path: string) => { width: number; height: number };
  hardLabelIou: number;
  topKAnswers: number;
  topKCells: number;
}): { items: StageItem[]; summary: StageItemsSummary } {
  const { student } = options;
  const answerIndex = new Map(student.answerVocab.map((answer, i) => [answer, i]));
  const width = groundingWidth(student.layout);
  const n = student.layout.gridSize;
  const items: StageItem[] = [];
  const seen = new Set<string>();
  const summary: StageItemsSummary = {
    instances: 0,
    items: 0,
    teacherLabelled: 0,
    withHardLabel: 0,
    groundTruthOnly: 0,
    skipped: 0,
  };
  for (const instance of options.instances) {
    if (!options.modules.includes(instance.module) || !instance.input.image || instance.input.text === null)
      continue;
    summary.instances++;
    if (seen.has(instance.hash)) continue;
    seen.add(instance.hash);
    const method = methodOf(instance.module);
    const image = refPath(instance.input.image.ref);
    const region = (instance.input.image.box as Box | null) ?? null;
    const size = regionSize(region, options.imageSize(image));
    const sub = matchingSubAnswer(options.records.get(instance.programId), instance, options.hardLabelIou);

    let hard = -100;
    let truthDistribution: Float32Array | undefined;
    if (sub && method === 'answer' && sub.answer !== undefined) hard = answerIndex.get(sub.answer) ?? -100;
    if (sub && method === 'ground' && sub.boxes !== undefined) {
      const boxes = relativeBoxes(sub.boxes, region);
      truthDistribution = new Float32Array(width);
      if (!gridTargetFromBoxes(boxes, student.layout, size, truthDistribution)) truthDistribution = undefined;
      if (boxes.length === 0 && student.layout.hasAbsent) hard = n * n;
      if (boxes.length === 1) {
        const cx = (boxes[0][0] + boxes[0][2]) / 2 / size.width;
        const cy = (boxes[0][1] + boxes[0][3]) / 2 / size.height;
        hard =
          Math.min(n - 1, Math.max(0, Math.floor(cy * n))) * n +
          Math.min(n - 1, Math.max(0, Math.floor(cx * n)));
      }
    }

    let soft: StageItem['soft'] | undefined;
    let confidence = 1;
    for (const teacher of options.teachers) {
      if (!teacher.covers(instance)) continue;
      const output = options.labels.get(teacher.identity.id)?.get(instance.hash);
      if (!output) continue;
      if ('boxes' in output) {
        const distribution = new Float32Array(width);
        const minScore = options.minScore.get(teacher.identity.id) ?? 0;
        const boxes = output.boxes.filter((_, i) => output.scores[i] >= minScore);
        if (!gridTargetFromBoxes(boxes, student.layout, size, distribution)) continue;
        soft = sparse(distribution, options.topKCells);
      } else {
        const kept = output.labels
          .map((label, i) => ({ index: answerIndex.get(label), p: output.probs[i] }))
          .filter((entry): entry is { index: number; p: number } => entry.index !== undefined && entry.p > 0)
          .sort((a, b) => b.p - a.p || a.index - b.index)
          .slice(0, options.topKAnswers);
        soft = { index: kept.map((entry) => entry.index), p: kept.map((entry) => entry.p) };
      }
      confidence = teacherConfidence(output);
      break;
    }
    let softFrom: StageItem['softFrom'] = 'teacher';
    if (!soft) {
      if (truthDistribution) soft = sparse(truthDistribution, options.topKCells);
      else if (hard >= 0) soft = { index: [hard], p: [1] };
      softFrom = 'ground-truth';
    }
    if (!soft || soft.index.length === 0) {
      summary.skipped++;
      continue;
    }
    if (softFrom === 'teacher') summary.teacherLabelled++;
    else summary.groundTruthOnly++;
    if (hard >= 0) summary.withHardLabel++;
    items.push({
      hash: instance.hash,
      module: instance.module,
      method,
      image,
      region,
      text: instance.input.text,
      hard,
      soft,
      softFrom,
      confidence,
    });
  }
  summary.items = items.length;
  return { items, summary };
}
