// `sdvp instances`: runs a dataset's programs with oracle or teacher modules and writes the sub-task
// instances they produce (JSON Lines), ready for `sdvp teachers label`.

import { writeFileSync } from 'node:fs';
import { openDataset } from '../data/dataset';
import { toJsonLines } from '../data/dataset-format';
import { oracleModules } from '../data/oracle-modules';
import { accuracyOf, runInstances, runPrograms } from '../data/run-programs';
import { TARGET_TASKS } from '../data/task-templates';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import type { ModuleImplementation } from '../program/interpreter';
import { folderImageSource } from '../teachers/image-source';
import { loadTeacherRegistry, openTeachers } from '../teachers/registry';
import type { Teacher } from '../teachers/teacher';
import { teacherModules } from '../teachers/teacher-modules';
import { parseCommandArgs, usageError } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp instances --data DIR --out FILE.jsonl [--split train] [--modules oracle|teachers]
                      [--teachers FILE] [--tasks digits-qa,digits-pairs]

Runs the programs of a dataset's tasks on one split and writes the sub-task instances of every
distillable module call (one JSON object per line: hash, module, subTask, input { image { ref, box,
path }, text, args }, programId, stepId, line, output). The modules answering the calls are the oracle
(the scene graphs of the digit benchmark) or the teachers of a registry (--teachers).

Options:
  --data DIR        dataset folder
  --out FILE        where the instances go
  --split NAME      split to run (default train)
  --modules M       oracle (default) or teachers
  --teachers FILE   teacher registry (with --modules teachers)
  --tasks LIST      comma-separated tasks (default: the target tasks ${TARGET_TASKS.join(', ')} when present, else all)
  -h, --help        show this help`;

export async function instancesCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    data: { type: 'string' },
    out: { type: 'string' },
    split: { type: 'string' },
    modules: { type: 'string' },
    teachers: { type: 'string' },
    tasks: { type: 'string' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const dataset = openDataset(args.string('data', true));
  const out = args.string('out', true);
  const split = args.string('split') ?? 'train';
  const source = args.string('modules') ?? 'oracle';
  const present = TARGET_TASKS.filter((task) => dataset.tasks.includes(task));
  const tasks =
    args
      .string('tasks')
      ?.split(',')
      .map((task) => task.trim()) ?? (present.length > 0 ? present : dataset.tasks);
  for (const task of tasks)
    if (!dataset.tasks.includes(task))
      throw usageError(
        `--tasks: the dataset has no task '${task}' (it has ${dataset.tasks.join(', ')}).`,
        '--tasks',
      );
  let modules: Record<string, ModuleImplementation>;
  let teachers: Teacher[] = [];
  if (source === 'oracle') {
    if (!dataset.hasScenes)
      throw usageError(
        '--modules oracle needs a dataset with scene graphs (the digit benchmark).',
        '--modules',
      );
    modules = oracleModules(dataset.sceneLookup());
  } else if (source === 'teachers') {
    setThreads(defaultThreads());
    teachers = await openTeachers(loadTeacherRegistry(args.string('teachers', true)));
    modules = teacherModules(teachers, folderImageSource(dataset.root));
  } else {
    throw usageError(`--modules must be 'oracle' or 'teachers', but received '${source}'.`, '--modules');
  }
  try {
    const records = tasks.flatMap((task) => dataset.records(task, split));
    const progress = createProgress();
    progress.start('programs', records.length, 'programs');
    const runs = await runPrograms(dataset, records, modules, { onProgram: (done) => progress.update(done) });
    progress.stop();
    const instances = runInstances(dataset, runs);
    writeFileSync(out, toJsonLines(instances));
    const byModule = new Map<string, number>();
    for (const instance of instances) byModule.set(instance.module, (byModule.get(instance.module) ?? 0) + 1);
    const modulesText = [...byModule].map(([module, n]) => `${module} ${n}`).join(', ');
    process.stdout.write(
      `${records.length} programs (${(accuracyOf(runs) * 100).toFixed(1)}% answered right), ${instances.length} instances (${modulesText}) → ${out}\n`,
    );
    return 0;
  } finally {
    await Promise.all(teachers.map((teacher) => teacher.close()));
  }
}
