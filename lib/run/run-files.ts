// The files of a run folder, written atomically (temporary name, fsync, rename), and the run's state.
//
//   <run>/config.json     the validated config the run started with
//   <run>/run.json        progress: stage, step, the checkpoint to resume from, stage reports
//   <run>/labels.sqlite   teacher outputs (the label store)
//   <run>/group.json      the last multi-process start (its nonce: each rank checks it sees this folder)
//   <run>/ckpt/*.pt       checkpoints: stage-<i>-start.pt (the frozen copy), stage-<i>-step-<n>.pt, final.pt
//   <run>/stages/<i>-<name>/items.json   the stage's training set, so a resumed stage trains on the same rows
//   <run>/metrics.jsonl   one line per logged step; <run>/log.txt: what happened, in words
//   <run>/report.md, report.json, *.png   the run's report

import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { SdvpError } from '../errors/sdvp-error';

export class RunFiles {
  constructor(readonly root: string) {}

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  ensure(): void {
    for (const folder of ['', 'ckpt', 'stages']) mkdirSync(this.path(folder), { recursive: true });
  }

  /** Writes a file atomically: a temporary sibling, fsync, rename. */
  writeAtomic(relative: string, content: string | Buffer): void {
    const target = this.path(relative);
    mkdirSync(dirname(target), { recursive: true });
    const temporary = `${target}.tmp-${process.pid}`;
    try {
      const fd = openSync(temporary, 'w');
      try {
        writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, target);
    } catch (error) {
      throw new SdvpError('ERR_SDVP_IO', `Cannot write ${target}: ${(error as Error).message}`, {
        field: relative,
        cause: error,
      });
    }
  }

  writeJson(relative: string, value: unknown): void {
    this.writeAtomic(relative, `${JSON.stringify(value, null, 2)}\n`);
  }

  readJson<T>(relative: string): T | undefined {
    const file = this.path(relative);
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch (error) {
      throw new SdvpError('ERR_SDVP_PARSE', `${file} is not valid JSON: ${(error as Error).message}`, {
        field: relative,
      });
    }
  }

  append(relative: string, line: string): void {
    appendFileSync(this.path(relative), line.endsWith('\n') ? line : `${line}\n`);
  }
}
