// `sdvp eval`: end-to-end and sub-module accuracy of a student checkpoint, or of the teachers standing in
// for the sub-modules, on a dataset split.

import { openDataset } from '../data/dataset';
import { loadModel } from '../models/load-model';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import type { ModuleImplementation } from '../program/interpreter';
import { type Evaluation, evaluateSystem } from '../run/evaluate';
import { Student } from '../run/student';
import { folderImageSource } from '../teachers/image-source';
import { loadTeacherRegistry, openTeachers } from '../teachers/registry';
import { teacherModules } from '../teachers/teacher-modules';
import { parseCommandArgs, usageError } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp eval (--model CKPT | --teachers FILE) --data DIR [--split test] [--tasks a,b] [--json]

Runs every program of the tasks (default: all of the dataset's) on a split with the student's modules
(--model) or with the teachers serving the modules (--teachers), and prints the end-to-end accuracy per
task, the sub-module accuracy against the ground-truth sub-answers, and the VQA confusion matrix.`;

function formatConfusion(confusion: Evaluation['confusion']): string {
  const truths = Object.keys(confusion).sort();
  const predicted = [...new Set(truths.flatMap((truth) => Object.keys(confusion[truth])))].sort();
  const width = Math.max(6, ...predicted.map((p) => p.length + 1));
  const lines = [`${'truth \\ answer'.padEnd(15)}${predicted.map((p) => p.padStart(width)).join('')}`];
  for (const truth of truths)
    lines.push(
      `${truth.padEnd(15)}${predicted.map((p) => String(confusion[truth][p] ?? 0).padStart(width)).join('')}`,
    );
  return lines.join('\n');
}

export async function evalCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    model: { type: 'string' },
    teachers: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    tasks: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const modelFile = args.string('model');
  const teachersFile = args.string('teachers');
  if (!modelFile === !teachersFile) throw usageError('Give either --model CKPT or --teachers FILE.');
  const dataset = openDataset(args.string('data', true));
  const tasks = args.string('tasks')?.split(',') ?? dataset.tasks;
  for (const task of tasks)
    if (!dataset.tasks.includes(task))
      throw usageError(`--tasks: the dataset has no task '${task}'.`, '--tasks');
  setThreads(defaultThreads());
  let modules: Record<string, ModuleImplementation>;
  let close: () => Promise<void>;
  if (modelFile) {
    const model = await loadModel(modelFile);
    modules = (await Student.of(model)).modules();
    close = async () => model.dispose();
  } else {
    const teachers = await openTeachers(loadTeacherRegistry(teachersFile!));
    modules = teacherModules(teachers, folderImageSource(dataset.root));
    close = async () => {
      await Promise.all(teachers.map((teacher) => teacher.close()));
    };
  }
  const progress = createProgress();
  try {
    progress.start('evaluating', 0, 'programs');
    const evaluation = await evaluateSystem(dataset, modules, {
      tasks,
      split: args.string('split') ?? 'test',
      onProgress: (done, total) => {
        if (done === 1) progress.start('evaluating', total, 'programs');
        progress.update(done);
      },
    });
    progress.stop();
    if (args.flag('json')) {
      process.stdout.write(`${JSON.stringify(evaluation)}\n`);
      return 0;
    }
    const lines = ['task            accuracy  programs'];
    for (const task of tasks)
      lines.push(
        `${task.padEnd(15)} ${(evaluation.tasks[task] * 100).toFixed(1).padStart(7)}%  ${evaluation.counts[task]}`,
      );
    lines.push('', 'module  accuracy  sub-answers');
    for (const [module, score] of Object.entries(evaluation.submodules))
      lines.push(`${module.padEnd(7)} ${(score.accuracy * 100).toFixed(1).padStart(7)}%  ${score.total}`);
    lines.push(
      '',
      'VQA confusion (rows: true answer, columns: answer given)',
      formatConfusion(evaluation.confusion),
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    progress.stop();
    await close();
  }
}
