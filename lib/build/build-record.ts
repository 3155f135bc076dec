// The record of the last addon build (sdvp-build.json in the package folder): what was asked, what was
// built, why a part was left out and the command that adds it; and its readable summary.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Capabilities } from '../capabilities';
import type { BuildOptions } from './build-options';

export type Backend = 'cmake' | 'node-gyp';
export type AddonCapabilities = Omit<Capabilities, 'version'>;

export interface PartOutcome {
  built: boolean;
  /** What was built, or why the part was left out. */
  detail: string;
  /** A command that adds the part when it is missing. */
  fix?: string;
}

export interface BuildAttempt {
  backend: Backend;
  torch: BuildOptions['torch'];
  cuda: BuildOptions['cuda'];
  ok: boolean;
  seconds: number;
  /** Why this attempt was made after an earlier one failed. */
  reason?: string;
  /** The optional part left out after the previous attempt failed, and whether that part was to blame. */
  dropped?: { part: 'cuda' | 'torch'; blamed: boolean };
  /** The first lines of the error when it failed. */
  error?: string;
}

export interface BuildRecord {
  sdvpVersion: string;
  /** ISO time the build finished. */
  finishedAt: string;
  /** 'install' (npm's install step) or 'sdvp build'. */
  trigger: 'install' | 'sdvp build';
  options: BuildOptions;
  ok: boolean;
  backend: Backend | null;
  /** The built addon, or null when none was built. */
  addon: string | null;
  capabilities: AddonCapabilities | null;
  parts: { cpu: PartOutcome; cuda: PartOutcome; torch: PartOutcome };
  attempts: BuildAttempt[];
  seconds: number;
  log: string;
}

export const BUILD_RECORD_FILE = 'sdvp-build.json';
export const BUILD_LOG_FILE = 'sdvp-build.log';

export function writeBuildRecord(root: string, record: BuildRecord): void {
  const file = path.join(root, BUILD_RECORD_FILE);
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`);
  fs.renameSync(temporary, file);
}

/** The last build's record, or null when there is none (or it cannot be read). */
export function readBuildRecord(root: string): BuildRecord | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, BUILD_RECORD_FILE), 'utf8')) as BuildRecord;
  } catch {
    return null;
  }
}

const LABELS = { cpu: 'CPU kernels', cuda: 'CUDA kernels', torch: 'LibTorch' } as const;

function formatPart(name: keyof typeof LABELS, outcome: PartOutcome): string[] {
  const lines = [`  ${LABELS[name].padEnd(13)} ${outcome.built ? 'built' : 'missing'}: ${outcome.detail}`];
  if (outcome.fix) lines.push(`  ${''.padEnd(13)} to add it: ${outcome.fix}`);
  return lines;
}

/** The summary printed after a build: the addon, each part and why a part is missing. */
export function formatBuildSummary(record: BuildRecord, root: string): string {
  const lines: string[] = [];
  const seconds = `${Math.round(record.seconds)} s`;
  if (record.ok && record.addon) {
    const backend = record.backend === 'cmake' ? 'CMake' : 'node-gyp';
    lines.push(`sdvp: built the native addon with ${backend} in ${seconds}: ${path.relative(root, record.addon)}`);
  } else {
    lines.push(
      `sdvp: no native addon was built (${seconds}); the kernels and models need it, program decomposition works without it.`,
    );
  }
  for (const name of ['cpu', 'cuda', 'torch'] as const) lines.push(...formatPart(name, record.parts[name]));
  const failed = record.attempts.filter((attempt) => !attempt.ok);
  for (const attempt of failed) {
    lines.push(`  failed attempt (${attempt.backend}, torch ${attempt.torch}, cuda ${attempt.cuda}):`);
    for (const line of (attempt.error ?? 'see the log').split('\n')) lines.push(`    ${line}`);
  }
  lines.push(`  log: ${record.log}`, '  the machine and the addon in detail: npx sdvp doctor');
  return lines.join('\n');
}
