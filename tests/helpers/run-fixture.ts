// A small digit benchmark, briefly trained teachers and a briefly pretrained student for the run tests:
// seconds of training, enough for the pipeline (not for the demo's figures).

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateDigitBenchmark } from '../../lib/data/generate-digits';
import { defaultThreads, setThreads } from '../../lib/models/torch-runtime';
import type { RunConfigInput } from '../../lib/run/config';
import { pretrainStudent } from '../../lib/run/pretrain-student';
import { trainBuiltinTeachers } from '../../lib/teachers/train-builtin-teachers';

export interface RunFixture {
  data: string;
  teachers: string;
  student: string;
}

export async function buildRunFixture(root: string, seed = 5): Promise<RunFixture> {
  setThreads(defaultThreads());
  const data = path.join(root, 'data');
  await generateDigitBenchmark({ out: data, scenes: 100, seed });
  const teacherDir = path.join(root, 'teachers');
  await trainBuiltinTeachers({ data, out: teacherDir, seed, classifierSteps: 150, detectorSteps: 60 });
  const student = path.join(root, 'student.pt');
  await pretrainStudent({ data, out: student, seed, steps: 60, mix: { identityShare: 0.02 } });
  return { data, teachers: path.join(teacherDir, 'teachers.json'), student };
}

/** Writes `<folder>/config.json`: a short run of the fixture (its run folder `<folder>/run`), with `extra`. */
export function writeRunConfig(folder: string, base: RunFixture, extra: Partial<RunConfigInput>): string {
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, 'config.json');
  const config: RunConfigInput = {
    data: base.data,
    student: base.student,
    teachers: base.teachers,
    run: path.join(folder, 'run'),
    seed: 11,
    epochs: 3,
    checkpointEvery: 4,
    concurrency: 32,
    ...extra,
  };
  writeFileSync(file, JSON.stringify(config));
  return file;
}
