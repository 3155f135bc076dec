// The demo's report: report.json (the table in fractions, sub-module accuracy, timings), report.md, and the
// charts (accuracy per system and task, sub-module accuracy across stages, training loss).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TeacherMetrics } from '../teachers/train-builtin-teachers';
import type { RunState } from './distill';
import type { Evaluation } from './evaluate';
import { type Row, barChart, lossChart } from './plots';
import type { PretrainResult } from './pretrain-student';

export type SystemName = 'untuned' | 'teachers' | 'sdvp' | 'sdvp-no-af' | 'sdvp-joint';
export type RunName = 'sdvp' | 'sdvp-no-af' | 'sdvp-joint' | 'sdvp-viper';
const TASKS = ['digits-qa', 'digits-pairs', 'colors-qa'] as const;

/** One row of the table: a system in one framework, its evaluation, and its run when it is distilled. */
export interface SystemRow {
  system: SystemName;
  framework: 'visprog' | 'viper';
  evaluation: Evaluation;
  run?: RunName;
}

export interface DemoReport {
  seed: number;
  seconds: number;
  timings: Record<string, number>;
  out: string;
  teachers: TeacherMetrics;
  pretrain: PretrainResult;
  rows: SystemRow[];
  runs: Record<RunName, RunState>;
  dataset: Record<string, Record<string, number>>;
}

const FRAMEWORK_LABELS = { visprog: 'VProg', viper: 'ViperGPT' } as const;
const SYSTEM_LABELS: Record<SystemName, string> = {
  untuned: 'untuned student',
  teachers: 'sub-modules replaced by the teachers',
  sdvp: '+ SDVP',
  'sdvp-no-af': '+ SDVP without anti-forgetting',
  'sdvp-joint': '+ SDVP, all modules at once',
};

/** "VProg + SDVP", "ViperGPT, untuned student"... */
export function rowLabel(row: Pick<SystemRow, 'system' | 'framework'>): string {
  const label = SYSTEM_LABELS[row.system];
  return `${FRAMEWORK_LABELS[row.framework]}${label.startsWith('+') ? ' ' : ', '}${label}`;
}

const percent = (value: number | undefined) => (value === undefined ? '–' : `${(value * 100).toFixed(1)}`);

const RUN_NAMES: RunName[] = ['sdvp', 'sdvp-no-af', 'sdvp-joint', 'sdvp-viper'];

/** The report.json object. */
export function reportJson(report: DemoReport) {
  const accuracies = (evaluation: Evaluation) =>
    Object.fromEntries(Object.entries(evaluation.submodules).map(([m, s]) => [m, s.accuracy]));
  return {
    table: report.rows.map((row) => ({
      system: row.system,
      framework: row.framework,
      accuracy: Object.fromEntries(TASKS.map((task) => [task, row.evaluation.tasks[task]])),
    })),
    submodules: {
      systems: report.rows.map((row) => ({
        system: row.system,
        framework: row.framework,
        accuracy: accuracies(row.evaluation),
      })),
      stages: Object.fromEntries(
        RUN_NAMES.map((run) => [
          run,
          report.runs[run].reports.map((stage) => ({
            stage: stage.name,
            before: stage.before,
            after: stage.after,
          })),
        ]),
      ),
    },
    runs: Object.fromEntries(
      RUN_NAMES.map((run) => [
        run,
        report.runs[run].reports.map((stage) => ({
          stage: stage.name,
          steps: stage.steps,
          rows: stage.items.items,
          teacherLabelled: stage.items.teacherLabelled,
          groundTruthOnly: stage.items.groundTruthOnly,
          uncovered: stage.labels.uncovered,
          trainStepShare: stage.trainStepSeconds / stage.trainSeconds,
          samplesPerSecond: stage.samplesPerSecond,
          trainSeconds: stage.trainSeconds,
          stageSeconds: stage.stageSeconds,
        })),
      ]),
    ),
    parameters: {
      student: report.pretrain.parameters,
      [report.teachers.classifier.id]: report.teachers.classifier.parameters,
      [report.teachers.detector.id]: report.teachers.detector.parameters,
    },
    teachers: report.teachers,
    pretrain: report.pretrain,
    dataset: report.dataset,
    timings: report.timings,
    seconds: report.seconds,
    seed: report.seed,
  };
}

/** The table as Markdown (the demo prints it). */
export function formatTable(report: DemoReport): string {
  const lines = ['| system | digits-qa | digits-pairs | colors-qa (not distilled) |', '|---|---|---|---|'];
  for (const row of report.rows) {
    const tasks = row.evaluation.tasks;
    lines.push(
      `| ${rowLabel(row)} | ${percent(tasks['digits-qa'])} | ${percent(tasks['digits-pairs'])} | ${percent(tasks['colors-qa'])} |`,
    );
  }
  return lines.join('\n');
}

/** Sub-module accuracy before and after each stage of every run, as Markdown. */
export function formatStages(report: DemoReport): string {
  const lines = [
    '| run | stage | VQA before → after | LOC before → after | rows (teacher / truth only) | trainStep share | samples/s |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const run of RUN_NAMES) {
    for (const stage of report.runs[run].reports) {
      lines.push(
        `| ${run} | ${stage.index}: ${stage.name} | ${percent(stage.before.VQA)} → ${percent(stage.after.VQA)} | ${percent(stage.before.LOC)} → ${percent(stage.after.LOC)} | ` +
          `${stage.items.items} (${stage.items.teacherLabelled} / ${stage.items.groundTruthOnly}) | ${percent(stage.trainStepSeconds / stage.trainSeconds)}% | ${stage.samplesPerSecond.toFixed(0)} |`,
      );
    }
  }
  return lines.join('\n');
}

function metricRows(runFolder: string, run: string): Row[] {
  const file = join(runFolder, 'metrics.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { stage: string; step: number; loss: number })
    .map((row) => ({ run, stage: row.stage, step: row.step, loss: row.loss }));
}

/** Writes report.json, report.md and the charts into the demo's folder. */
export async function writeDemoReport(report: DemoReport): Promise<void> {
  const json = reportJson(report);
  writeFileSync(join(report.out, 'report.json'), `${JSON.stringify(json, null, 2)}\n`);
  const accuracyRows: Row[] = [];
  for (const entry of json.table)
    for (const task of TASKS)
      accuracyRows.push({ group: task, series: entry.system, value: entry.accuracy[task] ?? null });
  await barChart(
    accuracyRows,
    { title: 'End-to-end accuracy (test split)', group: 'group', series: 'series', yTitle: 'accuracy' },
    join(report.out, 'accuracy.png'),
  );
  const stageRows: Row[] = [];
  const sdvp = report.runs.sdvp.reports;
  for (const module of ['LOC', 'VQA']) {
    if (sdvp.length === 0) break;
    stageRows.push({ group: module, series: 'before', value: sdvp[0].before[module] ?? null });
    for (const stage of sdvp)
      stageRows.push({
        group: module,
        series: `after stage ${stage.index} (${stage.name})`,
        value: stage.after[module] ?? null,
      });
  }
  await barChart(
    stageRows,
    {
      title: 'SDVP: sub-module accuracy before and after each stage',
      group: 'group',
      series: 'series',
      yTitle: 'accuracy',
    },
    join(report.out, 'submodules.png'),
  );
  const lossRows = RUN_NAMES.flatMap((run) => metricRows(join(report.out, 'runs', run), run));
  await lossChart(lossRows, 'Training loss per stage', join(report.out, 'loss.png'));

  const t = report.teachers;
  const markdown = [
    `# SDVP on the digit-scene benchmark (seed ${report.seed})`,
    '',
    formatTable(report),
    '',
    'Accuracy (%) on the test split; digits-qa and digits-pairs are the target tasks, colors-qa a previous task that is never distilled.',
    '',
    '## Sub-modules, stage by stage',
    '',
    formatStages(report),
    '',
    `Sub-module accuracy on the target tasks' test sub-answers (each module given the input it gets when every step before it is right). ` +
      'LOC is right when its boxes match the true ones one to one at IoU ≥ 0.5.',
    '',
    '## Models',
    '',
    `- student (transformer-vlm): ${report.pretrain.parameters} parameters, pretrained ${report.pretrain.steps} steps on the general mix (${report.pretrain.samplesPerSecond.toFixed(0)} samples/s)`,
    `- ${t.classifier.id} (cnn-classifier): ${t.classifier.parameters} parameters, test accuracy ${percent(t.classifier.testAccuracy)}% on ${t.classifier.testDigits} held-out digits`,
    `- ${t.detector.id} (grid-detector): ${t.detector.parameters} parameters, recall@IoU0.5 ${percent(t.detector.recallAny)}% (any digit), ${percent(t.detector.recallByDigit)}% (one class), 'none' right ${percent(t.detector.absentAccuracy)}%`,
    '',
    '## Time',
    '',
    ...Object.entries(report.timings).map(([phase, seconds]) => `- ${phase}: ${seconds.toFixed(1)} s`),
    `- total: ${report.seconds.toFixed(1)} s`,
    '',
    '![accuracy](accuracy.png) ![sub-modules](submodules.png) ![loss](loss.png)',
    '',
  ].join('\n');
  writeFileSync(join(report.out, 'report.md'), markdown);
}

/** A run's own report (report.json, report.md, loss.png, submodules.png) in its folder. */
export async function writeRunReport(folder: string, state: RunState, parameters?: number): Promise<void> {
  const final = state.final;
  const json = {
    table: final ? [{ system: 'sdvp', framework: 'visprog', accuracy: final.tasks }] : [],
    submodules: {
      before: state.before,
      stages: state.reports.map((stage) => ({ stage: stage.name, before: stage.before, after: stage.after })),
      final: final
        ? Object.fromEntries(
            Object.entries(final.submodules).map(([module, score]) => [module, score.accuracy]),
          )
        : undefined,
    },
    stages: state.reports,
    parameters,
    seconds: state.seconds,
  };
  writeFileSync(join(folder, 'report.json'), `${JSON.stringify(json, null, 2)}\n`);
  await lossChart(metricRows(folder, 'run'), 'Training loss per stage', join(folder, 'loss.png'));
  const rows: Row[] = [];
  for (const module of Object.keys(state.before ?? {})) {
    rows.push({ group: module, series: 'before', value: state.before?.[module] ?? null });
    for (const stage of state.reports)
      rows.push({
        group: module,
        series: `after stage ${stage.index} (${stage.name})`,
        value: stage.after[module] ?? null,
      });
  }
  await barChart(
    rows,
    {
      title: 'Sub-module accuracy before and after each stage',
      group: 'group',
      series: 'series',
      yTitle: 'accuracy',
    },
    join(folder, 'submodules.png'),
  );
  const lines = [
    '# Distillation run',
    '',
    final
      ? `End-to-end accuracy (${Object.entries(final.tasks)
          .map(([task, accuracy]) => `${task} ${percent(accuracy)}%`)
          .join(', ')})`
      : 'Not finished.',
    '',
    '| stage | steps | rows (teacher / truth only / skipped) | sub-modules before | after | trainStep share | samples/s |',
    '|---|---|---|---|---|---|---|',
    ...state.reports.map(
      (stage) =>
        `| ${stage.index}: ${stage.name} | ${stage.steps} | ${stage.items.items} (${stage.items.teacherLabelled} / ${stage.items.groundTruthOnly} / ${stage.items.skipped}) | ` +
        `${Object.entries(stage.before)
          .map(([m, v]) => `${m} ${percent(v)}`)
          .join(', ')} | ${Object.entries(stage.after)
          .map(([m, v]) => `${m} ${percent(v)}`)
          .join(', ')} | ` +
        `${percent(stage.trainStepSeconds / stage.trainSeconds)}% | ${stage.samplesPerSecond.toFixed(0)} |`,
    ),
    '',
    '![loss](loss.png) ![sub-modules](submodules.png)',
    '',
  ];
  writeFileSync(join(folder, 'report.md'), lines.join('\n'));
}
