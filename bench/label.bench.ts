// Labelling throughput: the built-in digit classifier (a TorchScript teacher) through the scheduler at its
// default batch size, against calling the same model one instance at a time, and an external Python teacher
// through the scheduler; all on the same instances, alternating, medians over trials.
//
//   node dist/bench/label.bench.js [--trials N] [--instances N] [--json]
//
// Target (issue 7): batched at least 10× one-at-a-time. Throughput only: the classifier's weights are fresh.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDataset } from '../lib/data/dataset';
import { generateDigitBenchmark } from '../lib/data/generate-digits';
import { oracleModules } from '../lib/data/oracle-modules';
import { runInstances, runPrograms } from '../lib/data/run-programs';
import { createModel } from '../lib/models/create-model';
import { defaultThreads, setThreads } from '../lib/models/torch-runtime';
import type { SubTaskInstance } from '../lib/program/sub-tasks';
import { CommandTeacher } from '../lib/teachers/command-teacher';
import { folderImageSource } from '../lib/teachers/image-source';
import { LabelStore } from '../lib/teachers/label-store';
import { labelInstances } from '../lib/teachers/scheduler';
import type { Teacher } from '../lib/teachers/teacher';
import { TorchScriptTeacher } from '../lib/teachers/torchscript-teacher';
import { findRepoRoot } from '../tests/helpers/corpus';

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const trials = option('--trials', 5);
  const wanted = option('--instances', 2000);
  setThreads(defaultThreads());
  const root = mkdtempSync(path.join(tmpdir(), 'sdvp-label-bench-'));
  try {
    const data = path.join(root, 'data');
    await generateDigitBenchmark({ out: data, scenes: Math.max(200, Math.ceil(wanted / 2)), seed: 1 });
    const dataset = openDataset(data);
    const records = ['digits-qa', 'digits-pairs'].flatMap((task) => dataset.records(task, 'train'));
    const runs = await runPrograms(dataset, records, oracleModules(dataset.sceneLookup()));
    const seen = new Set<string>();
    const instances: SubTaskInstance[] = runInstances(dataset, runs).filter((instance) => {
      if (
        instance.module !== 'VQA' ||
        instance.input.text !== 'What digit is this?' ||
        seen.has(instance.hash)
      )
        return false;
      seen.add(instance.hash);
      return true;
    });
    instances.length = Math.min(instances.length, wanted);
    const modelFile = path.join(root, 'digit-vqa.pt');
    const model = await createModel('cnn-classifier', { channels: [16, 32, 64, 64], imageSize: 32, seed: 1 });
    await model.save(modelFile);
    model.dispose();
    const binding = {
      version: '1',
      module: 'VQA',
      subTask: 'vqa',
      accepts: { texts: ['What digit is this?'] },
    };
    const batched = await TorchScriptTeacher.load({
      ...binding,
      id: 'digit-vqa',
      path: modelFile,
      batchSize: 128,
    });
    const single = await TorchScriptTeacher.load({
      ...binding,
      id: 'digit-vqa-single',
      path: modelFile,
      batchSize: 1,
    });
    const python = new CommandTeacher({
      ...binding,
      id: 'python',
      command: ['python3', path.join(findRepoRoot(), 'tests', 'fixtures', 'teacher_server.py'), 'good'],
      cwd: root,
      batchSize: 128,
      output: 'classification',
    });
    const images = folderImageSource(data);
    // Decode every image once before timing: both sides read pixels from the same cache.
    for (const instance of instances) await images.image(instance.input.image!.ref);

    const scheduled = async (teacher: Teacher, trial: number) => {
      const store = LabelStore.open(path.join(root, `store-${teacher.identity.id}-${trial}.sqlite`));
      const started = performance.now();
      const summary = await labelInstances(instances, [teacher], { store, images });
      const seconds = (performance.now() - started) / 1000;
      store.close();
      if (summary.teachers[teacher.identity.id].labelled !== instances.length)
        throw new Error('not every instance was labelled');
      return instances.length / seconds;
    };
    const oneAtATime = async () => {
      const started = performance.now();
      for (const instance of instances) await single.label([instance], { images, log: () => {} });
      return instances.length / ((performance.now() - started) / 1000);
    };
    await scheduled(batched, -1); // warm-up
    await scheduled(python, -1);
    const rates = { batched: [] as number[], single: [] as number[], python: [] as number[] };
    for (let trial = 0; trial < trials; trial++) {
      rates.batched.push(await scheduled(batched, trial));
      rates.single.push(await oneAtATime());
      rates.python.push(await scheduled(python, trial));
    }
    await Promise.all([batched.close(), single.close(), python.close()]);
    const result = {
      instances: instances.length,
      trials,
      threads: defaultThreads(),
      batchedPerSecond: median(rates.batched),
      oneAtATimePerSecond: median(rates.single),
      pythonCommandPerSecond: median(rates.python),
      batchedOverOneAtATime: median(rates.batched) / median(rates.single),
      rates,
    };
    if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      process.stdout.write(
        `labelling ${result.instances} crops ("What digit is this?"), ${trials} trials, ${result.threads} threads (medians):\n` +
          `  digit classifier, scheduler, batch 128: ${result.batchedPerSecond.toFixed(0)} instances/s\n` +
          `  digit classifier, one at a time:       ${result.oneAtATimePerSecond.toFixed(0)} instances/s\n` +
          `  Python command teacher, batch 128:     ${result.pythonCommandPerSecond.toFixed(0)} instances/s\n` +
          `  batched / one at a time: ${result.batchedOverOneAtATime.toFixed(1)}× (target ≥ 10×)\n`,
      );
    }
    const resultsDir = path.join(findRepoRoot(), 'bench', 'results');
    require('node:fs').mkdirSync(resultsDir, { recursive: true });
    writeFileSync(path.join(resultsDir, 'label.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
