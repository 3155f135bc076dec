// The teacher scheduler: dedupe by hash, batching per teacher, the concurrency bounds, priorities, reuse of
// stored labels, and what a failing teacher leaves behind.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { SubTaskInstance } from '../lib/program/sub-tasks';
import { LabelStore, type TeacherIdentity } from '../lib/teachers/label-store';
import { LabellingError, labelInstances } from '../lib/teachers/scheduler';
import type { ImageSource, Teacher } from '../lib/teachers/teacher';
import type { TeacherOutput } from '../lib/teachers/teacher-output';
import { fakeInstance } from './helpers/teacher-fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'sdvp-scheduler-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));
let stores = 0;
const newStore = () => LabelStore.open(path.join(root, `store-${stores++}.sqlite`));
const images: ImageSource = { image: () => Promise.reject(new Error('no images here')), path: (ref) => ref };

/** A teacher that records its batches and how many ran at once. */
class FakeTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly batches: string[][] = [];
  readonly events: string[];
  running = 0;
  peak = 0;
  failOn?: string;

  constructor(
    id: string,
    module: string,
    readonly batchSize: number,
    readonly maxInFlight: number,
    events: string[],
    readonly delayMs = 5,
  ) {
    this.identity = {
      id,
      version: '1',
      kind: 'fake',
      module,
      subTask: module === 'LOC' ? 'grounding' : 'vqa',
      output: 'classification',
      fingerprint: id,
    };
    this.events = events;
  }

  covers(instance: SubTaskInstance): boolean {
    return instance.module === this.identity.module;
  }

  async label(batch: readonly SubTaskInstance[]): Promise<TeacherOutput[]> {
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    this.events.push(`start ${this.identity.id}`);
    this.batches.push(batch.map((instance) => instance.hash));
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    this.running--;
    if (this.failOn && batch.some((instance) => instance.hash === this.failOn))
      throw new Error(`teacher ${this.identity.id} broke`);
    return batch.map((instance) => ({ labels: [instance.hash], probs: [1] }));
  }

  async close(): Promise<void> {}
}

const instances = (module: string, n: number, prefix = module) =>
  Array.from({ length: n }, (_, i) => fakeInstance(`${prefix}${i}`, module));

test('duplicates are labelled once, in batches of the teacher size; uncovered instances are counted', async (t) => {
  const events: string[] = [];
  const teacher = new FakeTeacher('vqa', 'VQA', 4, 1, events);
  const store = newStore();
  const list = [...instances('VQA', 10), ...instances('VQA', 10), ...instances('LOC', 3)];
  const summary = await labelInstances(list, [teacher], { store, images });
  t.is(summary.instances, 13);
  t.is(summary.uncovered, 3);
  t.deepEqual(summary.uncoveredByModule, { LOC: 3 });
  t.deepEqual(summary.teachers.vqa, { covered: 10, reused: 0, labelled: 10, failed: 0 });
  t.deepEqual(
    teacher.batches.map((batch) => batch.length),
    [4, 4, 2],
  );
  t.is(new Set(teacher.batches.flat()).size, 10);
  t.deepEqual(store.labels('vqa', '1').get('VQA3'), { labels: ['VQA3'], probs: [1] });
  // A second call reuses everything.
  const again = await labelInstances(list, [teacher], { store, images });
  t.deepEqual(again.teachers.vqa, { covered: 10, reused: 10, labelled: 0, failed: 0 });
  t.is(teacher.batches.length, 3);
  store.close();
});

test('the global bound and each teacher bound hold; priorities order the batches', async (t) => {
  const events: string[] = [];
  const loc = new FakeTeacher('loc', 'LOC', 2, 3, events, 15);
  const vqa = new FakeTeacher('vqa', 'VQA', 2, 1, events, 15);
  const store = newStore();
  let globalPeak = 0;
  const original = [loc.label.bind(loc), vqa.label.bind(vqa)];
  let running = 0;
  for (const [i, teacher] of [loc, vqa].entries()) {
    teacher.label = async (batch) => {
      running++;
      globalPeak = Math.max(globalPeak, running);
      try {
        return await original[i](batch);
      } finally {
        running--;
      }
    };
  }
  await labelInstances([...instances('VQA', 8), ...instances('LOC', 8)], [vqa, loc], {
    store,
    images,
    concurrency: 2,
    priorities: { LOC: 0, VQA: 1 },
  });
  t.is(globalPeak, 2);
  t.is(vqa.peak, 1);
  t.true(loc.peak <= 2);
  // LOC (priority 0) batches start before any VQA batch.
  t.is(events.slice(0, 2).join(','), 'start loc,start loc');
  t.true(events.indexOf('start vqa') >= 2);
  store.close();
});

test('a failing batch stops the labelling with the committed labels kept and a summary of what happened', async (t) => {
  const events: string[] = [];
  const teacher = new FakeTeacher('vqa', 'VQA', 2, 1, events);
  teacher.failOn = 'VQA4';
  const store = newStore();
  const error = await t.throwsAsync(
    labelInstances(instances('VQA', 8), [teacher], { store, images, concurrency: 1 }),
    {
      instanceOf: LabellingError,
      message: /broke/,
    },
  );
  t.deepEqual(error!.summary.teachers.vqa, { covered: 8, reused: 0, labelled: 4, failed: 4 });
  t.deepEqual([...store.labelledHashes('vqa', '1')].sort(), ['VQA0', 'VQA1', 'VQA2', 'VQA3']);
  teacher.failOn = undefined;
  const resumed = await labelInstances(instances('VQA', 8), [teacher], { store, images });
  t.deepEqual(resumed.teachers.vqa, { covered: 8, reused: 4, labelled: 4, failed: 0 });
  store.close();
});

test('an abort stops between batches and keeps what was committed', async (t) => {
  const events: string[] = [];
  const teacher = new FakeTeacher('vqa', 'VQA', 1, 1, events, 20);
  const store = newStore();
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  await t.throwsAsync(
    labelInstances(instances('VQA', 30), [teacher], { store, images, signal: controller.signal }),
    { code: 'ERR_SDVP_ABORTED' },
  );
  const kept = store.labelledHashes('vqa', '1').size;
  t.true(kept > 0 && kept < 30);
  store.close();
});

test('bad options: duplicate teacher ids and a zero concurrency', async (t) => {
  const store = newStore();
  const a = new FakeTeacher('same', 'VQA', 2, 1, []);
  const b = new FakeTeacher('same', 'LOC', 2, 1, []);
  await t.throwsAsync(labelInstances([], [a, b], { store, images }), { code: 'ERR_SDVP_CONFIG' });
  await t.throwsAsync(labelInstances([], [a], { store, images, concurrency: 0 }), { code: 'ERR_SDVP_RANGE' });
  store.close();
});
