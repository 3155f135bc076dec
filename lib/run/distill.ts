// The stepwise distillation run (SDVP): execute the target programs with the current student, label the
// sub-task instances with the teachers, then distil module by module — pacing, schedules, the fused
// objective, anti-forgetting — checkpointing atomically, evaluating before and after each stage, resumable
// to the same result an uninterrupted run reaches.

import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { relative } from 'node:path';
import { pacedCount, rankByConfidence } from '../curriculum/pacing';
import { cosineLr, rampAt } from '../curriculum/schedules';
import { type Stage, planStages } from '../curriculum/stage-plan';
import { type Dataset, openDataset } from '../data/dataset';
import type { TaskRecord } from '../data/dataset-format';
import { GeneralMix } from '../data/general-mix';
import { loadMnistDigits, splitMnist } from '../data/mnist-digits';
import { Random } from '../data/random';
import { programOf, runInstances, runPrograms } from '../data/run-programs';
import type { ProcessGroup } from '../distributed/process-group';
import { SdvpError } from '../errors/sdvp-error';
import { loadModel } from '../models/load-model';
import type { Model, TrainStepOptions, TrainStepResult } from '../models/model';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import { visprogModuleOf } from '../program/framework-bridge';
import type { RasterImage } from '../program/image';
import { defaultModuleRegistry } from '../program/module-registry';
import type { SubTaskInstance } from '../program/sub-tasks';
import { parseViperProgram } from '../program/viper-parser';
import { parseVisProgProgram } from '../program/visprog-parser';
import { folderImageSource } from '../teachers/image-source';
import { LabelStore } from '../teachers/label-store';
import { loadTeacherRegistry, openTeachers, selectTeachers } from '../teachers/registry';
import type { LabelSummary } from '../teachers/scheduler';
import type { Teacher } from '../teachers/teacher';
import type { TeacherOutput } from '../teachers/teacher-output';
import type { RunConfig } from './config';
import {
  type Evaluation,
  combineEvaluations,
  combineSubmodules,
  evaluateSubmodules,
  evaluateSystem,
} from './evaluate';
import { labelOnRanks } from './label-shards';
import { type ReplaySet, drawReplayViews, labelReplayViews } from './replay';
import { writeRunReport } from './report';
import { RunFiles } from './run-files';
import { RunGroup } from './run-group';
import {
  type StageItem,
  type StageItemsSummary,
  type StudentMethod,
  buildStageItems,
  methodOf,
} from './stage-items';
import { Student, type StudentView } from './student';

export interface DistillProgress {
  phase: 'evaluate' | 'execute' | 'label' | 'prepare' | 'train';
  stage?: string;
  done: number;
  total: number;
  loss?: number;
  samplesPerSecond?: number;
}

export interface DistillOptions {
  signal?: AbortSignal;
  onProgress?: (progress: DistillProgress) => void;
  /** Continue the run in the config's run folder (it must exist and match the config). */
  resume?: boolean;
  /** Lines for the terminal (also written to log.txt). */
  log?: (line: string) => void;
  /**
   * Data parallel over a process group (docs/distributed.md): every rank calls distill with the same config;
   * program execution, labelling, each training batch and evaluation are shared out, and rank 0 alone writes
   * the run folder, which every rank must see at the same path.
   */
  group?: ProcessGroup;
}

export interface StageReport {
  index: number;
  name: string;
  modules: string[];
  steps: number;
  /** Programs the student ran at the stage's start and how many it answered right. */
  execution: { programs: number; accuracy: number; instances: number };
  labels: LabelSummary;
  items: StageItemsSummary;
  /** Sub-module accuracy (evaluation split) before and after the stage. */
  before: Record<string, number>;
  after: Record<string, number>;
  /** Wall time of the stage's training loop, of trainStep inside it, and of the whole stage. */
  trainSeconds: number;
  trainStepSeconds: number;
  stageSeconds: number;
  samplesPerSecond: number;
  finalLoss: number;
}

export interface RunState {
  format: 'sdvp-run';
  version: 1;
  configDigest: string;
  inputsDigest: string;
  stages: Stage[];
  stage: number;
  step: number;
  checkpoint: string | null;
  completed: boolean;
  before?: Record<string, number>;
  reports: StageReport[];
  final?: Evaluation;
  seconds: number;
}

export interface DistillResult {
  run: string;
  state: RunState;
  /** The distilled student (TorchScript; an sdvp checkpoint). */
  checkpoint: string;
}

interface StageData {
  steps: number;
  items: StageItem[];
  execution: StageReport['execution'];
  labels: LabelSummary;
  summary: StageItemsSummary;
  preparedSeconds: number;
}

function digest(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

function fileDigest(path: string): string {
  try {
    return digest(readFileSync(path));
  } catch (error) {
    throw new SdvpError('ERR_SDVP_IO', `Cannot read ${path}: ${(error as Error).message}`, { field: path });
  }
}

function scores(evaluation: Pick<Evaluation, 'submodules'>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(evaluation.submodules).map(([module, score]) => [module, score.accuracy]),
  );
}

/** What the run's result depends on besides the config: the student file, the records, the teacher registry. */
function inputsDigest(config: RunConfig, dataset: Dataset): string {
  const parts = [fileDigest(config.student), fileDigest(config.teachers)];
  for (const task of new Set([...config.tasks, ...config.evalTasks])) {
    for (const split of [config.trainSplit, config.evalSplit]) {
      const file = dataset.manifest.tasks[task]?.[split];
      if (file) parts.push(fileDigest(dataset.imagePath(file)));
    }
  }
  return digest(parts.join(':'));
}

function checkConfig(config: RunConfig, dataset: Dataset): void {
  for (const task of new Set([...config.tasks, ...config.evalTasks])) {
    if (!dataset.tasks.includes(task)) {
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `tasks: the dataset has no task '${task}' (it has ${dataset.tasks.join(', ')}).`,
        { field: 'tasks' },
      );
    }
    for (const split of [config.trainSplit, config.evalSplit]) {
      if (!dataset.splits(task).includes(split)) {
        throw new SdvpError('ERR_SDVP_CONFIG', `task '${task}' has no split '${split}'.`, {
          field: split === config.trainSplit ? 'trainSplit' : 'evalSplit',
        });
      }
    }
  }
}

/**
 * The ranks of a group must run the same config, all starting or all resuming, with batches every rank gets
 * rows of: ERR_SDVP_DIST_CONFIG otherwise, on every rank.
 */
async function agreeOnConfig(ranks: RunGroup, config: RunConfig, resume: boolean): Promise<void> {
  const seen = await ranks.gather({ config, resume });
  for (let rank = 1; rank < seen.length; rank++) {
    const theirs = seen[rank].config as unknown as Record<string, unknown>;
    const ours = seen[0].config as unknown as Record<string, unknown>;
    const changed = [...new Set([...Object.keys(ours), ...Object.keys(theirs)])].filter(
      (key) => JSON.stringify(ours[key]) !== JSON.stringify(theirs[key]),
    );
    if (changed.length > 0) {
      throw new SdvpError(
        'ERR_SDVP_DIST_CONFIG',
        `rank ${rank} was started with another config than rank 0 (${changed.join(', ')} differ); every rank of a run needs the same config.`,
        { field: changed[0] },
      );
    }
    if (seen[rank].resume !== seen[0].resume) {
      throw new SdvpError(
        'ERR_SDVP_DIST_CONFIG',
        `rank ${rank} was started to ${seen[rank].resume ? 'resume' : 'start'} the run, rank 0 to ${seen[0].resume ? 'resume' : 'start'} it.`,
        { field: 'resume' },
      );
    }
  }
  const replayRows = Math.max(1, Math.round(config.batchSize * config.antiForgetting.replayFraction));
  const smallest = config.antiForgetting.enabled ? Math.min(config.batchSize, replayRows) : config.batchSize;
  if (smallest < ranks.worldSize) {
    throw new SdvpError(
      'ERR_SDVP_DIST_CONFIG',
      `batchSize ${config.batchSize} gives steps of ${smallest} rows, fewer than the ${ranks.worldSize} ranks (each rank needs a row of every step); raise batchSize or use fewer ranks.`,
      { field: 'batchSize' },
    );
  }
}

/** The run's state when it starts: what run.json holds (checked against the config), or undefined. */
function openRunState(
  files: RunFiles,
  config: RunConfig,
  configDigest: string,
  inputs: string,
  resume: boolean,
): RunState | undefined {
  const state = files.readJson<RunState>('run.json');
  if (state && !resume) {
    throw new SdvpError(
      'ERR_SDVP_CONFIG',
      `${files.root} already holds a run; resume it (--resume) or choose another run folder.`,
      { field: 'run' },
    );
  }
  if (!state && resume)
    throw new SdvpError('ERR_SDVP_CONFIG', `${files.root} holds no run to resume (no run.json).`, {
      field: 'run',
    });
  if (state) {
    if (state.configDigest !== configDigest) {
      const stored = files.readJson<RunConfig>('config.json');
      const changed = stored
        ? Object.keys(config).filter(
            (key) =>
              JSON.stringify(stored[key as keyof RunConfig]) !==
              JSON.stringify(config[key as keyof RunConfig]),
          )
        : [];
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `The config differs from the one ${files.root} started with (${changed.join(', ') || 'unknown fields'}); a resumed run must use the same config.`,
        {
          field: changed[0] ?? 'config',
        },
      );
    }
    if (state.inputsDigest !== inputs) {
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `The student file, the dataset records or the teacher registry changed since ${files.root} started; a resumed run must use the same inputs.`,
      );
    }
  }
  return state;
}

export async function distill(config: RunConfig, options: DistillOptions = {}): Promise<DistillResult> {
  const started = performance.now();
  const ranks = new RunGroup(options.group);
  const leader = ranks.leader;
  const files = new RunFiles(config.run!);
  const configDigest = digest(JSON.stringify(config));
  if (options.group) await agreeOnConfig(ranks, config, options.resume === true);
  let dataset!: Dataset;
  const digests = await ranks.settle('opening the dataset', () => {
    dataset = openDataset(config.data);
    checkConfig(config, dataset);
    return inputsDigest(config, dataset);
  });
  const inputs = digests[0];
  const differs = digests.findIndex((other) => other !== inputs);
  if (differs > 0) {
    throw new SdvpError(
      'ERR_SDVP_DIST_CONFIG',
      `rank ${differs} reads another student file, dataset or teacher registry than rank 0 under the same paths; every rank needs the same inputs.`,
      { field: 'inputs' },
    );
  }
  // Rank 0 reads and checks the run folder; the others take its state, and check they see the same folder.
  const opened = await ranks.fromLeader('opening the run folder', () => {
    const state = openRunState(files, config, configDigest, inputs, options.resume === true);
    files.ensure();
    const nonce = randomUUID();
    if (options.group) files.writeJson('group.json', { nonce, worldSize: ranks.worldSize });
    return { state: state ?? null, nonce };
  });
  let state = opened.state ?? undefined;
  if (options.group) {
    await ranks.settle('opening the run folder', () => {
      if (!leader && files.readJson<{ nonce: string }>('group.json')?.nonce !== opened.nonce) {
        throw new SdvpError(
          'ERR_SDVP_DIST_CONFIG',
          `rank ${ranks.rank} does not see the run folder ${files.root} that rank 0 writes; on several machines it must be on a shared filesystem, at the same path.`,
          { field: 'run' },
        );
      }
    });
  }
  const log = (line: string) => {
    if (leader) files.append('log.txt', `${new Date().toISOString()} ${line}`);
    options.log?.(line);
  };
  setThreads(config.threads > 0 ? config.threads : defaultThreads());

  const records = new Map<string, TaskRecord>();
  for (const task of new Set([...config.tasks, ...config.evalTasks])) {
    for (const split of [config.trainSplit, config.evalSplit])
      for (const record of dataset.records(task, split)) records.set(record.id, record);
  }
  const trainRecords = config.tasks.flatMap((task) => dataset.records(task, config.trainSplit));
  const evalTargetRecords = config.tasks.flatMap((task) => dataset.records(task, config.evalSplit));

  const registry = loadTeacherRegistry(config.teachers);
  const entries = selectTeachers(registry, config.teacherIds);
  const minScore = new Map(entries.map((entry) => [entry.id, entry.minScore]));
  // Rank 0 keeps the run's label store; the others label into memory (label-shards.ts).
  const store = LabelStore.open(leader ? files.path('labels.sqlite') : ':memory:');
  const teachers = await openTeachers(registry, entries);
  const images = folderImageSource(dataset.root);
  const model = await loadModel(state?.checkpoint ? files.path(state.checkpoint) : config.student);
  try {
    // Every rank loaded the same file; joining checks it and makes the copies equal to the bit.
    if (options.group) await model.joinGroup(options.group);
    const student = await Student.of(model);
    if (!state) {
      const served = new Set(Object.keys(student.modules()));
      const registryOfModules = defaultModuleRegistry();
      const distillable = new Set(
        registryOfModules
          .specs(config.framework)
          .filter((spec) => spec.distillable && served.has(visprogModuleOf(spec.name)))
          .map((spec) => spec.name),
      );
      const graphs = trainRecords.map((record) =>
        config.framework === 'viper'
          ? parseViperProgram(programOf(record, 'viper'))
          : parseVisProgProgram(record.program, { inputs: Object.keys(record.images) }),
      );
      const stages = planStages(graphs, distillable, config.stages);
      if (stages.length === 0)
        throw new SdvpError(
          'ERR_SDVP_CONFIG',
          'The target programs call no module the student can be distilled in.',
          { field: 'tasks' },
        );
      state = {
        format: 'sdvp-run',
        version: 1,
        configDigest,
        inputsDigest: inputs,
        stages,
        stage: 0,
        step: 0,
        checkpoint: null,
        completed: false,
        reports: [],
        seconds: 0,
      };
      if (leader) {
        files.writeJson('config.json', config);
        files.writeJson('run.json', state);
      }
      log(`run ${files.root}: stages ${stages.map((stage) => stage.name).join(' → ')}`);
    } else {
      log(`resuming ${files.root} at stage ${state.stage + 1} of ${state.stages.length}, step ${state.step}`);
    }
    const run = state;
    const studentModules = () => student.modules();
    /** Sub-module accuracy on the target tasks' evaluation records, each rank scoring its share. */
    const evaluateTargets = async (phase: string) =>
      combineSubmodules(
        await ranks.settle(phase, () =>
          evaluateSubmodules(dataset, ranks.shard(evalTargetRecords), studentModules()),
        ),
      );
    if (!run.before) {
      options.onProgress?.({ phase: 'evaluate', done: 0, total: 1 });
      run.before = scores(await evaluateTargets('evaluating the student before distillation'));
      if (leader) files.writeJson('run.json', run);
      log(`sub-modules before distillation: ${JSON.stringify(run.before)}`);
    }

    for (; run.stage < run.stages.length; run.stage++, run.step = 0) {
      const stageStarted = performance.now();
      const index = run.stage;
      const stage = run.stages[index];
      const folder = `stages/${index + 1}-${stage.name}`;
      const startCheckpoint = `ckpt/stage-${index + 1}-start.pt`;
      // Rank 0 decides whether the stage is prepared; the start checkpoint it writes is the frozen copy every
      // rank loads (after the collectives of prepareStage, so after rank 0 has written it).
      const prepared = await ranks.fromLeader(
        'reading the stage',
        () =>
          files.readJson<StageData>(`${folder}/items.json`) !== undefined &&
          existsSync(files.path(startCheckpoint)),
      );
      let data: StageData;
      if (prepared) data = files.readJson<StageData>(`${folder}/items.json`)!;
      else {
        if (leader) await model.saveCheckpoint(files.path(startCheckpoint));
        data = await prepareStage(stage, index);
        if (leader) files.writeJson(`${folder}/items.json`, data);
        log(
          `stage ${index + 1} (${stage.name}): ${data.items.length} rows from ${data.summary.instances} instances ` +
            `(${data.summary.teacherLabelled} teacher-labelled, ${data.summary.groundTruthOnly} ground truth only, ${data.summary.skipped} skipped), ${data.steps} steps`,
        );
      }
      const frozen = config.antiForgetting.enabled ? await loadModel(files.path(startCheckpoint)) : undefined;
      try {
        const trained = await trainStage(stage, index, data, frozen);
        const evaluation = await evaluateTargets(`evaluating stage ${index + 1}`);
        const before = index === 0 ? run.before : run.reports[index - 1].after;
        const report: StageReport = {
          index: index + 1,
          name: stage.name,
          modules: stage.modules,
          steps: data.steps,
          execution: data.execution,
          labels: data.labels,
          items: data.summary,
          before,
          after: scores(evaluation),
          trainSeconds: trained.seconds,
          trainStepSeconds: trained.trainStepSeconds,
          stageSeconds:
            (performance.now() - stageStarted) / 1000 + (run.step === 0 ? data.preparedSeconds : 0),
          samplesPerSecond: trained.samples / Math.max(1e-9, trained.seconds),
          finalLoss: trained.lastLoss,
        };
        run.reports[index] = report;
        const end = `ckpt/stage-${index + 1}-end.pt`;
        const previous = run.checkpoint;
        run.checkpoint = end;
        run.step = data.steps;
        if (leader) {
          await model.saveCheckpoint(files.path(end));
          files.writeJson('run.json', { ...run, stage: index + 1, step: 0 });
          if (previous && previous !== end && previous.includes('-step-'))
            rmSync(files.path(previous), { force: true });
        }
        log(
          `stage ${index + 1} (${stage.name}) done: sub-modules ${JSON.stringify(report.after)} (before ${JSON.stringify(before)})`,
        );
      } finally {
        frozen?.dispose();
      }
    }

    if (!run.final) {
      options.onProgress?.({ phase: 'evaluate', done: 0, total: 1 });
      run.final = combineEvaluations(
        await ranks.settle('evaluating the distilled student', () =>
          evaluateSystem(dataset, studentModules(), {
            framework: config.framework,
            tasks: config.evalTasks,
            split: config.evalSplit,
            submoduleTasks: config.tasks,
            concurrency: config.concurrency,
            signal: options.signal,
            shard: { index: ranks.rank, count: ranks.worldSize },
          }),
        ),
      );
      if (leader) await model.saveCheckpoint(files.path('ckpt/final.pt'));
      run.checkpoint = 'ckpt/final.pt';
    }
    run.completed = true;
    run.seconds += (performance.now() - started) / 1000;
    if (leader) {
      files.writeJson('run.json', run);
      await writeRunReport(
        files.root,
        run,
        model.parameters().reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0),
      );
    }
    log(`done: ${JSON.stringify(run.final.tasks)}`);
    return { run: files.root, state: run, checkpoint: files.path('ckpt/final.pt') };

    // ---- the parts of a stage ------------------------------------------------------------------------------

    async function prepareStage(stage: Stage, index: number): Promise<StageData> {
      const preparing = performance.now();
      // Each rank runs its contiguous share of the programs; the instances come back in record order.
      const mine = ranks.shard(trainRecords);
      options.onProgress?.({ phase: 'execute', stage: stage.name, done: 0, total: mine.length });
      let found: SubTaskInstance[] = [];
      const executed = await ranks.settle(`executing the programs of stage ${index + 1}`, async () => {
        const runs = await runPrograms(dataset, mine, studentModules(), {
          framework: config.framework,
          concurrency: config.concurrency,
          signal: options.signal,
          onProgram: (done, total) =>
            options.onProgress?.({ phase: 'execute', stage: stage.name, done, total }),
        });
        found = runInstances(dataset, runs).filter((instance) => stage.modules.includes(instance.module));
        return { programs: runs.length, correct: runs.filter((run) => run.correct).length };
      });
      const instances = await ranks.concat(found);
      const programs = executed.reduce((sum, part) => sum + part.programs, 0);
      const correct = executed.reduce((sum, part) => sum + part.correct, 0);
      const priorities = Object.fromEntries(stage.modules.map((module, i) => [module, i]));
      const labels = await labelOnRanks(ranks, instances, teachers, {
        store,
        images,
        signal: options.signal,
        priorities,
        log,
        onProgress: ({ done, total }) =>
          options.onProgress?.({ phase: 'label', stage: stage.name, done, total }),
      });
      const stored = new Map<string, Map<string, TeacherOutput>>();
      for (const teacher of teachers)
        stored.set(teacher.identity.id, store.labels(teacher.identity.id, teacher.identity.version));
      const sizes = new Map<string, { width: number; height: number }>();
      for (const instance of instances) {
        const ref = instance.input.image?.ref;
        if (ref && !sizes.has(ref.split('#')[0])) {
          const image = await images.image(ref);
          sizes.set(ref.split('#')[0], { width: image.width, height: image.height });
        }
      }
      const { items, summary } = buildStageItems({
        instances,
        modules: stage.modules,
        teachers,
        labels: stored,
        minScore,
        records,
        student: { answerVocab: student.answerVocab, layout: student.layout },
        imageSize: (path) => sizes.get(path) ?? { width: student.imageSide, height: student.imageSide },
        hardLabelIou: config.objective.hardLabelIou,
        topKAnswers: config.objective.topKAnswers,
        topKCells: config.objective.topKCells,
      });
      if (items.length === 0)
        throw new SdvpError(
          'ERR_SDVP_CONFIG',
          `Stage ${index + 1} (${stage.name}) has nothing to train on: no instance has a teacher label or a ground-truth sub-answer.`,
        );
      const uncapped = Math.ceil((config.epochs * items.length) / config.batchSize);
      return {
        steps: Math.max(1, Math.min(uncapped, config.maxStepsPerStage ?? uncapped)),
        items,
        execution: {
          programs,
          accuracy: programs === 0 ? 0 : correct / programs,
          instances: instances.length,
        },
        labels,
        summary,
        preparedSeconds: (performance.now() - preparing) / 1000,
      };
    }

    async function trainStage(stage: Stage, index: number, data: StageData, frozen: Model | undefined) {
      const methods = [...new Set(stage.modules.map(methodOf))];
      const byMethod = new Map<StudentMethod, { items: StageItem[]; ranked: number[] }>();
      for (const method of methods) {
        const items = data.items.filter((item) => item.method === method);
        byMethod.set(method, { items, ranked: rankByConfidence(items.map((item) => item.confidence)) });
      }
      const pixels = new Map<string, RasterImage>();
      for (const item of data.items)
        if (!pixels.has(item.image)) pixels.set(item.image, await dataset.image(item.image));

      // Anti-forgetting replay: rows for the trained head(s) in every step, and replay-only steps on the other head.
      const batch = config.batchSize;
      const replayRows = config.antiForgetting.enabled
        ? Math.max(1, Math.round(batch * config.antiForgetting.replayFraction))
        : 0;
      const otherMethods = (['answer', 'ground'] as StudentMethod[]).filter(
        (method) => !methods.includes(method) && (method !== 'ground' || student.hasGround),
      );
      const otherEvery = config.antiForgetting.otherHeadEvery;
      const replay = new Map<StudentMethod, ReplaySet>();
      if (frozen && replayRows > 0) await buildReplay(frozen);

      /**
       * Draws the stage's replay inputs (the same on every rank: the mixes are seeded) and labels them with the
       * frozen copy, each rank its contiguous share; the shares are gathered, so every rank holds the same set.
       */
      async function buildReplay(frozenModel: Model): Promise<void> {
        options.onProgress?.({ phase: 'prepare', stage: stage.name, done: 0, total: 1 });
        const frozenStudent = await Student.of(frozenModel);
        const digits = loadMnistDigits();
        const generatorSeed = dataset.manifest.generator?.seed ?? config.seed;
        const pool = splitMnist(digits, generatorSeed).train;
        const draws: Array<{ method: StudentMethod; views: StudentView[] }> = [];
        for (const method of methods) {
          const mix = new GeneralMix(new Random(config.seed).fork(`replay-${index}-${method}`), pool, digits);
          const count = Math.ceil(data.steps / methods.length) * replayRows;
          draws.push({ method, views: drawReplayViews(mix, method, count) });
        }
        if (otherEvery > 0) {
          for (const method of otherMethods) {
            const mix = new GeneralMix(
              new Random(config.seed).fork(`replay-${index}-${method}-other`),
              pool,
              digits,
            );
            const count = Math.ceil(data.steps / otherEvery) * replayRows;
            draws.push({ method, views: drawReplayViews(mix, method, count) });
          }
        }
        const labelled: Array<Pick<ReplaySet, 'indices' | 'logprobs' | 'k'>> = [];
        await ranks.settle(`labelling the replay of stage ${index + 1}`, async () => {
          for (const { method, views } of draws) {
            labelled.push(
              await labelReplayViews(
                frozenStudent,
                ranks.shard(views),
                method,
                topKOf(method),
                options.signal,
              ),
            );
          }
        });
        for (const [i, { method, views }] of draws.entries()) {
          const own = labelled[i];
          replay.set(
            method,
            options.group
              ? {
                  method,
                  views,
                  indices: Int32Array.from(await ranks.concat(Array.from(own.indices))),
                  logprobs: Float32Array.from(await ranks.concat(Array.from(own.logprobs))),
                  k: own.k,
                }
              : { method, views, ...own },
          );
        }
      }

      function topKOf(method: StudentMethod): number {
        return method === 'answer'
          ? Math.min(config.objective.topKAnswers, student.answerVocab.length)
          : config.objective.topKCells;
      }

      /** The train steps of stage step t (the main step, and a replay-only step on the other head when due). */
      function stepsAt(
        t: number,
      ): Array<Omit<TrainStepOptions, 'signal'> & { itemRows: number; items: StageItem[] }> {
        const out: Array<Omit<TrainStepOptions, 'signal'> & { itemRows: number; items: StageItem[] }> = [];
        const method = methods[t % methods.length];
        const { items, ranked } = byMethod.get(method)!;
        const random = new Random(config.seed).fork(`stage-${index}-step-${t}`);
        const available = pacedCount(ranked.length, t, data.steps, config.pacing);
        const chosen: StageItem[] = [];
        for (let i = 0; i < batch; i++) chosen.push(items[ranked[random.int(0, available - 1)]]);
        const replaySet = replay.get(method);
        const replayStart = Math.floor(t / methods.length) * replayRows;
        out.push(composeStep(method, chosen, replaySet, replayStart, replaySet ? replayRows : 0, t));
        if (otherEvery > 0 && t % otherEvery === otherEvery - 1) {
          for (const other of otherMethods) {
            const set = replay.get(other);
            if (set)
              out.push(composeStep(other, [], set, Math.floor(t / otherEvery) * replayRows, replayRows, t));
          }
        }
        return out;
      }

      function composeStep(
        method: StudentMethod,
        stepItems: StageItem[],
        set: ReplaySet | undefined,
        replayStart: number,
        replayCount: number,
        t: number,
      ) {
        const count = Math.max(0, set ? Math.min(replayCount, set.views.length - replayStart) : 0);
        // The step's rows are the items, then the replayed rows; this rank trains its contiguous share of them.
        const hasItems = stepItems.length > 0;
        const [begin, end] = ranks.range(stepItems.length + count);
        const items = stepItems.slice(begin, Math.min(end, stepItems.length));
        const replayBegin = Math.max(0, begin - stepItems.length);
        const replayEnd = Math.max(replayBegin, end - stepItems.length);
        const rows = end - begin;
        const k = topKOf(method);
        const side = student.imageSide;
        const imagesData = new Float32Array(rows * 3 * side * side);
        const tokens = new Int32Array(rows * student.tokenizer.maxTokens);
        const labels = new Int32Array(rows).fill(-100);
        const indices = new Int32Array(rows * k);
        const logprobs = new Float32Array(rows * k).fill(Number.NEGATIVE_INFINITY);
        const rowWeights = new Float32Array(rows).fill(1);
        const width =
          method === 'answer'
            ? student.answerVocab.length
            : student.layout.gridSize ** 2 + (student.layout.hasAbsent ? 1 : 0);
        const fillRow = (
          row: number,
          entries: ArrayLike<number>,
          values: ArrayLike<number>,
          count: number,
          asLog: boolean,
        ) => {
          const used = new Set<number>();
          let slot = 0;
          for (let i = 0; i < count && slot < k; i++, slot++) {
            indices[row * k + slot] = entries[i];
            logprobs[row * k + slot] = asLog ? values[i] : Math.log(values[i]);
            used.add(entries[i]);
          }
          for (let candidate = 0; slot < k && candidate < width; candidate++) {
            if (used.has(candidate)) continue;
            indices[row * k + slot++] = candidate;
          }
        };
        items.forEach((item, row) => {
          student.fill(
            [{ image: pixels.get(item.image)!, region: item.region, text: item.text }],
            imagesData,
            tokens,
            row,
          );
          labels[row] = item.hard;
          fillRow(row, item.soft.index, item.soft.p, item.soft.index.length, false);
        });
        for (let i = replayBegin; i < replayEnd; i++) {
          const row = items.length + i - replayBegin;
          student.fill([set!.views[replayStart + i]], imagesData, tokens, row);
          fillRow(
            row,
            set!.indices.subarray((replayStart + i) * set!.k),
            set!.logprobs.subarray((replayStart + i) * set!.k),
            Math.min(set!.k, k),
            true,
          );
          rowWeights[row] = config.antiForgetting.weight;
        }
        const lr = cosineLr(t, data.steps, config.optimizer);
        return {
          method,
          itemRows: items.length,
          items,
          inputs: [
            { data: imagesData, shape: [rows, 3, side, side] },
            { data: tokens, shape: [rows, student.tokenizer.maxTokens] },
          ],
          objective: {
            labels,
            teacher: { indices, logprobs, k, missing: 'tail' as const },
            ceWeight: hasItems ? rampAt(asRamp(config.objective.hardWeight), t, data.steps) : 0,
            kdWeight: hasItems ? rampAt(asRamp(config.objective.teacherWeight), t, data.steps) : 1,
            temperature: rampAt(asRamp(config.objective.temperature), t, data.steps),
            rowWeights,
            reduction: 'batchmean' as const,
          },
          optimizer: {
            type: 'adamw' as const,
            lr,
            weightDecay: config.optimizer.weightDecay,
            maxGradNorm: config.optimizer.maxGradNorm,
            schedule: { kind: 'constant' as const },
          },
        };
      }

      const loopStarted = performance.now();
      let inStep = 0;
      let samples = 0;
      let lastLoss = Number.NaN;
      let next = run.step < data.steps ? stepsAt(run.step) : [];
      let sinceCheckpoint = 0;
      // A rank's stop request is everyone's at the next step, so the ranks stop after the same step; a
      // distributed step itself is never abandoned halfway by one rank.
      const stopRequested = async () => {
        const stop = options.signal?.aborted === true;
        return options.group ? (await ranks.gather(stop)).some(Boolean) : stop;
      };
      for (let t = run.step; t < data.steps; t++) {
        if (await stopRequested()) break;
        const current = next;
        const results: TrainStepResult[] = [];
        let aborted = false;
        for (let i = 0; i < current.length; i++) {
          const { itemRows: _rows, items: _items, ...step } = current[i];
          const running = model.trainStep(
            options.group ? { ...step, distributed: options.group } : { ...step, signal: options.signal },
          );
          if (i === current.length - 1) next = t + 1 < data.steps ? stepsAt(t + 1) : [];
          try {
            results.push(await running);
          } catch (error) {
            if (error instanceof SdvpError && error.code === 'ERR_SDVP_ABORTED') {
              aborted = true;
              break;
            }
            throw error;
          }
        }
        if (aborted) break;
        for (const result of results) {
          inStep += result.timings.totalMs / 1000;
          samples += result.distributed?.globalRows ?? result.rows;
        }
        lastLoss = results[0].loss;
        run.step = t + 1;
        sinceCheckpoint++;
        if (t % 10 === 0 || t === data.steps - 1)
          await logMetrics(stage, t, current[0], results[0], results.slice(1));
        const seconds = (performance.now() - loopStarted) / 1000;
        options.onProgress?.({
          phase: 'train',
          stage: stage.name,
          done: t + 1,
          total: data.steps,
          loss: lastLoss,
          samplesPerSecond: samples / seconds,
        });
        if (sinceCheckpoint >= config.checkpointEvery && t + 1 < data.steps) {
          await checkpointStep(index, t + 1);
          sinceCheckpoint = 0;
        }
      }
      if (run.step < data.steps) {
        if (sinceCheckpoint > 0) await checkpointStep(index, run.step);
        throw new SdvpError('ERR_SDVP_ABORTED', 'The run was stopped during training.');
      }
      return {
        seconds: (performance.now() - loopStarted) / 1000,
        trainStepSeconds: inStep,
        samples,
        lastLoss,
      };
    }

    async function checkpointStep(index: number, step: number): Promise<void> {
      const name = `ckpt/stage-${index + 1}-step-${String(step).padStart(6, '0')}.pt`;
      const previous = run.checkpoint;
      run.checkpoint = name;
      run.step = step;
      if (!leader) return;
      await model.saveCheckpoint(files.path(name));
      files.writeJson('run.json', run);
      if (previous && previous !== name && previous.includes('-step-'))
        rmSync(files.path(previous), { force: true });
    }

    /** Logs a step's metrics; in a group, over every rank's rows (the per-row statistics are each rank's). */
    async function logMetrics(
      stage: Stage,
      t: number,
      step: { itemRows: number; items: StageItem[]; objective: TrainStepOptions['objective'] },
      result: TrainStepResult,
      other: TrainStepResult[],
    ): Promise<void> {
      const itemRows = step.itemRows;
      const sum = (values: Float32Array, from: number, to: number) => {
        let total = 0;
        for (let i = from; i < to; i++) total += values[i];
        return total;
      };
      const part = {
        agree: 0,
        teacherRows: 0,
        labelled: 0,
        hardCe: 0,
        teacherKl: sum(result.stats.kd, 0, itemRows),
        itemRows,
        replayKl: sum(result.stats.kd, itemRows, result.rows),
        replayRows: result.rows - itemRows,
        otherKl: other.length > 0 ? sum(other[0].stats.kd, 0, other[0].rows) : 0,
        otherRows: other.length > 0 ? other[0].rows : 0,
      };
      step.items.forEach((item, row) => {
        if (item.softFrom === 'teacher') {
          part.teacherRows++;
          if (result.stats.argmax[row] === item.soft.index[0]) part.agree++;
        }
        if (item.hard >= 0) {
          part.labelled++;
          part.hardCe += result.stats.ce[row];
        }
      });
      const parts = await ranks.gather(part);
      if (!leader) return;
      const total = (key: keyof typeof part) => parts.reduce((acc, entry) => acc + entry[key], 0);
      const mean = (key: keyof typeof part, count: keyof typeof part) =>
        total(count) > 0 ? total(key) / total(count) : null;
      files.append(
        'metrics.jsonl',
        JSON.stringify({
          stage: stage.name,
          step: t,
          loss: result.loss,
          hardCe: mean('hardCe', 'labelled'),
          teacherKl: mean('teacherKl', 'itemRows'),
          antiForgettingKl: mean('replayKl', 'replayRows'),
          otherHeadKl: other.length > 0 ? mean('otherKl', 'otherRows') : null,
          agreement: mean('agree', 'teacherRows'),
          lr: result.lr,
          temperature: step.objective.temperature,
          alpha: step.objective.ceWeight,
          beta: step.objective.kdWeight,
        }),
      );
    }
  } catch (error) {
    // Stopped anywhere (executing, labelling, preparing, training): what is on disk is a consistent state.
    if (error instanceof SdvpError && error.code === 'ERR_SDVP_ABORTED' && state) {
      const where = state.completed
        ? 'after its last stage'
        : `at stage ${state.stage + 1} of ${state.stages.length}, step ${state.step}`;
      throw new SdvpError(
        'ERR_SDVP_ABORTED',
        `The run was stopped ${where}; it is checkpointed. Continue it with --resume ${files.root}.`,
        {
          cause: error,
        },
      );
    }
    throw error;
  } finally {
    model.dispose();
    store.close();
    await Promise.all(teachers.map((teacher: Teacher) => teacher.close()));
  }
}

function asRamp(value: number | { start: number; end: number }): { start: number; end: number } {
  return typeof value === 'number' ? { start: value, end: value } : value;
}

/** The run folder's path for messages. */
export function describeRun(root: string): string {
  return relative(process.cwd(), root) || '.';
}
