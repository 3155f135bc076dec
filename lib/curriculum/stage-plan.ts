// The stage plan of a stepwise run: which distillable modules are distilled in which stage. By default one
// stage per module, in the programs' dependency order (a module whose outputs feed another's inputs goes
// first: LOC before VQA, since VQA sees LOC's crops); or the config's order; or all modules at once.

import { SdvpError } from '../errors/sdvp-error';
import { type StepGraph, stepAncestors } from '../program/step-graph';

export interface Stage {
  /** `LOC`, `VQA`, or `joint` for all modules at once. */
  name: string;
  modules: string[];
}

export interface DependencyCounts {
  /** Modules in the order they first appear in the programs. */
  modules: string[];
  /** before.get(a).get(b): programs in which a step of module a feeds (transitively) a step of module b. */
  before: Map<string, Map<string, number>>;
}

/** Counts, over programs, which distillable module's steps feed which others'. */
export function moduleDependencies(
  graphs: Iterable<StepGraph>,
  distillable: ReadonlySet<string>,
): DependencyCounts {
  const modules: string[] = [];
  const before = new Map<string, Map<string, number>>();
  for (const graph of graphs) {
    const seen = new Set<string>();
    for (const step of graph.steps) {
      if (!distillable.has(step.module)) continue;
      if (!modules.includes(step.module)) modules.push(step.module);
      for (const ancestor of stepAncestors(graph, step.id)) {
        const earlier = graph.steps[ancestor].module;
        if (!distillable.has(earlier) || earlier === step.module) continue;
        const key = `${earlier}>${step.module}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const row = before.get(earlier) ?? new Map<string, number>();
        row.set(step.module, (row.get(step.module) ?? 0) + 1);
        before.set(earlier, row);
      }
    }
  }
  return { modules, before };
}

/**
 * One stage per module in dependency order: repeatedly take the module that the fewest remaining modules
 * feed more often than it feeds them (ties: first appearance).
 */
export function dependencyOrder(counts: DependencyCounts): string[] {
  const remaining = [...counts.modules];
  const order: string[] = [];
  const feeds = (a: string, b: string) => counts.before.get(a)?.get(b) ?? 0;
  while (remaining.length > 0) {
    let best = remaining[0];
    let bestScore = Number.POSITIVE_INFINITY;
    for (const candidate of remaining) {
      const score = remaining.filter(
        (other) => other !== candidate && feeds(other, candidate) > feeds(candidate, other),
      ).length;
      if (score < bestScore) {
        best = candidate;
        bestScore = score;
      }
    }
    order.push(best);
    remaining.splice(remaining.indexOf(best), 1);
  }
  return order;
}

export type StageSetting = 'dependency' | 'joint' | string[];

/** The stages for a setting: dependency order, all at once, or the given module order (each must be distillable). */
export function planStages(
  graphs: Iterable<StepGraph>,
  distillable: ReadonlySet<string>,
  setting: StageSetting = 'dependency',
): Stage[] {
  const counts = moduleDependencies(graphs, distillable);
  if (setting === 'joint')
    return counts.modules.length > 0 ? [{ name: 'joint', modules: dependencyOrder(counts) }] : [];
  if (setting === 'dependency')
    return dependencyOrder(counts).map((module) => ({ name: module, modules: [module] }));
  for (const module of setting) {
    if (!distillable.has(module)) {
      throw new SdvpError(
        'ERR_SDVP_CONFIG',
        `stages lists '${module}', which is not a distillable module of the target programs (${[...distillable].join(', ')}).`,
        {
          field: 'stages',
        },
      );
    }
  }
  return setting.map((module) => ({ name: module, modules: [module] }));
}
