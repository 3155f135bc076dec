// Finds and loads the shared corpus of public VisProg and ViperGPT programs (../shared/corpus or $SDVP_CORPUS).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface CorpusRecord {
  framework: 'visprog' | 'viper';
  task: string;
  program: string;
  source: string;
  notes?: string[];
  list_index?: number;
  question?: string;
  statement?: string;
  instruction?: string;
  query?: string;
  /** The corpus file the record comes from (`visprog_gqa.jsonl`). */
  file: string;
  /** 0-based line of the record in its file. */
  index: number;
}

/** The repository root: the nearest directory above `start` holding a package.json named sdvp. */
export function findRepoRoot(start: string = __dirname): string {
  for (let directory = path.resolve(start); ; directory = path.dirname(directory)) {
    const manifest = path.join(directory, 'package.json');
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, 'utf8')).name === 'sdvp') return directory;
      } catch {
        // An unreadable manifest is not ours; keep walking up.
      }
    }
    if (path.dirname(directory) === directory) throw new Error(`no sdvp package.json above ${start}`);
  }
}

/**
 * The corpus directory: $SDVP_CORPUS; else the project's shared/corpus beside the checkout; else the copy
 * in tests/fixtures/corpus (the same 144 programs, so a clone alone can run the tests).
 */
export function corpusDirectory(): string {
  const root = findRepoRoot();
  const shared = path.resolve(root, '..', 'shared', 'corpus');
  const directory =
    process.env.SDVP_CORPUS ?? (existsSync(shared) ? shared : path.join(root, 'tests', 'fixtures', 'corpus'));
  if (!existsSync(directory)) {
    throw new Error(
      `The program corpus is not at ${directory}; set SDVP_CORPUS to the folder of *.jsonl files.`,
    );
  }
  return directory;
}

/** The corpus files, sorted by name. */
export function corpusFiles(): string[] {
  return readdirSync(corpusDirectory())
    .filter((name) => name.endsWith('.jsonl'))
    .sort();
}

/** Every corpus record, file by file. */
export function loadCorpus(): CorpusRecord[] {
  const records: CorpusRecord[] = [];
  for (const file of corpusFiles()) {
    const lines = readFileSync(path.join(corpusDirectory(), file), 'utf8').split('\n');
    lines.forEach((line, index) => {
      if (line.trim() === '') return;
      records.push({ ...JSON.parse(line), file, index });
    });
  }
  return records;
}

/** `visprog_gqa.jsonl:1`: how tests name a record. */
export function corpusId(record: CorpusRecord): string {
  return `${record.file}:${record.index}`;
}
