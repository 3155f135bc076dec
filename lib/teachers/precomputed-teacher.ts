// A precomputed teacher: a JSON Lines file of outputs keyed by instance hash
// (`{"hash": "…", "labels": […], "probs": […]}` or `{"hash": "…", "boxes": […], "scores": […]}`).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SdvpError } from '../errors/sdvp-error';
import type { SubTaskInstance } from '../program/sub-tasks';
import type { TeacherIdentity } from './label-store';
import { type AcceptRule, type Teacher, type TeacherBinding, coversInstance } from './teacher';
import { type TeacherOutput, type TeacherOutputKind, checkTeacherOutput } from './teacher-output';

export interface PrecomputedTeacherOptions extends TeacherBinding {
  path: string;
  output: TeacherOutputKind;
}

export class PrecomputedTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly batchSize: number;
  readonly maxInFlight = 1;
  readonly #outputs: Map<string, TeacherOutput>;
  readonly #accepts?: AcceptRule;

  constructor(options: PrecomputedTeacherOptions) {
    let text: string;
    try {
      text = readFileSync(options.path, 'utf8');
    } catch (error) {
      throw new SdvpError(
        'ERR_SDVP_IO',
        `Teacher '${options.id}': cannot read ${options.path}: ${(error as Error).message}`,
        {
          field: `teachers.${options.id}.path`,
        },
      );
    }
    this.#outputs = new Map();
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${options.path}:${i + 1}`;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new SdvpError('ERR_SDVP_PARSE', `Teacher '${options.id}': ${where} is not JSON.`, {
          field: where,
        });
      }
      const hash = (row as { hash?: unknown })?.hash;
      if (typeof hash !== 'string' || hash === '') {
        throw new SdvpError('ERR_SDVP_PARSE', `Teacher '${options.id}': ${where} has no 'hash' string.`, {
          field: where,
        });
      }
      const output = checkTeacherOutput(row, options.output);
      if (typeof output === 'string')
        throw new SdvpError('ERR_SDVP_PARSE', `Teacher '${options.id}': ${where}: ${output}.`, {
          field: where,
        });
      this.#outputs.set(hash, output);
    });
    this.#accepts = options.accepts;
    this.batchSize = options.batchSize;
    this.identity = {
      id: options.id,
      version: options.version,
      kind: 'precomputed',
      module: options.module,
      subTask: options.subTask,
      output: options.output,
      fingerprint: createHash('sha256').update(text).digest('hex'),
    };
  }

  /** Covers the instances of its module whose hash the file has. */
  covers(instance: SubTaskInstance): boolean {
    return coversInstance(this.identity, this.#accepts, instance) && this.#outputs.has(instance.hash);
  }

  async label(batch: readonly SubTaskInstance[]): Promise<TeacherOutput[]> {
    return batch.map((instance) => {
      const output = this.#outputs.get(instance.hash);
      if (!output)
        throw new SdvpError(
          'ERR_SDVP_TEACHER',
          `Teacher '${this.identity.id}' has no output for instance ${instance.hash}.`,
        );
      return output;
    });
  }

  async close(): Promise<void> {}
}
