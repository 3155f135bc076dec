// Teacher labelling shared by the ranks of a run: each rank labels the instances of its hash shard, and every
// rank ends with every label. Rank 0's label store is the run's (labels.sqlite); the others label into a store
// in memory, so no two processes ever write one SQLite file. Labels rank 0's store already holds (a resumed
// run) travel to every rank first and are not labelled again.

import { type SubTaskInstance, dedupeSubTaskInstances } from '../program/sub-tasks';
import type { LabelStore } from '../teachers/label-store';
import { type LabelOptions, type LabelSummary, labelInstances } from '../teachers/scheduler';
import type { Teacher } from '../teachers/teacher';
import type { TeacherOutput } from '../teachers/teacher-output';
import type { RunGroup } from './run-group';

/** A label in transit: the teacher's index in the run's teacher list, the instance hash, the output. */
type LabelEntry = [teacher: number, hash: string, output: TeacherOutput];

/** The labels of `hashes` that `store` holds, per teacher. */
function storedLabels(
  store: LabelStore,
  teachers: readonly Teacher[],
  hashes: Iterable<string>,
  skip: ReadonlySet<string> = new Set(),
): LabelEntry[] {
  const wanted = [...hashes];
  const entries: LabelEntry[] = [];
  teachers.forEach((teacher, index) => {
    const labels = store.labels(teacher.identity.id, teacher.identity.version);
    for (const hash of wanted) {
      const output = labels.get(hash);
      if (output && !skip.has(`${index}:${hash}`)) entries.push([index, hash, output]);
    }
  });
  return entries;
}

function commitEntries(
  store: LabelStore,
  teachers: readonly Teacher[],
  entries: readonly LabelEntry[],
  instances: ReadonlyMap<string, SubTaskInstance>,
): void {
  teachers.forEach((teacher, index) => {
    const rows = entries
      .filter(([owner]) => owner === index)
      .map(([, hash, output]) => ({ instance: instances.get(hash)!, output }));
    if (rows.length === 0) return;
    store.registerTeacher(teacher.identity);
    store.commit(teacher.identity, rows);
  });
}

/** The summaries of disjoint shards, as the summary of labelling them all (its time: the slowest shard's). */
export function combineLabelSummaries(parts: readonly LabelSummary[]): LabelSummary {
  const total: LabelSummary = { instances: 0, uncovered: 0, uncoveredByModule: {}, teachers: {}, seconds: 0 };
  for (const part of parts) {
    total.instances += part.instances;
    total.uncovered += part.uncovered;
    total.seconds = Math.max(total.seconds, part.seconds);
    for (const [module, count] of Object.entries(part.uncoveredByModule))
      total.uncoveredByModule[module] = (total.uncoveredByModule[module] ?? 0) + count;
    for (const [id, tally] of Object.entries(part.teachers)) {
      total.teachers[id] ??= { covered: 0, reused: 0, labelled: 0, failed: 0 };
      const sum = total.teachers[id];
      sum.covered += tally.covered;
      sum.reused += tally.reused;
      sum.labelled += tally.labelled;
      sum.failed += tally.failed;
    }
  }
  return total;
}

/**
 * Labels `instances` (the same list on every rank) across the ranks; resolves, on every rank, once
 * `options.store` holds every label and with the summary one process labelling them all would give.
 */
export async function labelOnRanks(
  ranks: RunGroup,
  instances: readonly SubTaskInstance[],
  teachers: readonly Teacher[],
  options: LabelOptions,
): Promise<LabelSummary> {
  if (!ranks.group) return labelInstances(instances, teachers, options);
  const { store } = options;
  const { unique } = dedupeSubTaskInstances(instances);
  const byHash = new Map(unique.map((instance) => [instance.hash, instance]));

  let stored: LabelEntry[] = [];
  await ranks.settle('reading the label store', () => {
    if (ranks.leader) stored = storedLabels(store, teachers, byHash.keys());
  });
  const known = await ranks.concat(stored);
  if (!ranks.leader) commitEntries(store, teachers, known, byHash);

  const own = unique.filter((instance) => ranks.ownsHash(instance.hash));
  const summaries = await ranks.settle('labelling', () => labelInstances(own, teachers, options));

  const seen = new Set(known.map(([teacher, hash]) => `${teacher}:${hash}`));
  const fresh = storedLabels(
    store,
    teachers,
    own.map((instance) => instance.hash),
    seen,
  );
  const everyRank = await ranks.concat(fresh);
  commitEntries(
    store,
    teachers,
    everyRank.filter(([, hash]) => !ranks.ownsHash(hash)),
    byHash,
  );
  return combineLabelSummaries(summaries);
}
