// An external-command teacher (a user's Python model server, say), spoken to in JSON Lines over its stdin
// and stdout: one request line per batch, one answer line with the same id. A command that dies, times out,
// or answers garbage or the wrong number of outputs is restarted and the batch retried (bounded); then the
// labelling fails with an error naming the teacher and quoting what it said.
//
//   request:  {"id": 7, "instances": [{"hash", "module", "subTask", "text", "image": {"path", "box"}, "args"}]}
//   answer:   {"id": 7, "outputs": [{"labels": [...], "probs": [...]}]}   or boxes/scores, or {"id": 7, "error": "..."}
// `box` is null for the whole image, else [x1, y1, x2, y2] in the image's pixels (PIL's crop); detection boxes
// come back in the pixels of that crop. The command's stderr goes to the run's log.

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { SdvpError } from '../errors/sdvp-error';
import type { SubTaskInstance } from '../program/sub-tasks';
import type { TeacherIdentity } from './label-store';
import {
  type AcceptRule,
  type LabelContext,
  type Teacher,
  type TeacherBinding,
  coversInstance,
} from './teacher';
import { type TeacherOutput, type TeacherOutputKind, checkTeacherOutput } from './teacher-output';

export interface CommandTeacherOptions extends TeacherBinding {
  /** The program and its arguments. */
  command: string[];
  /** Working folder of the command (the registry file's folder). */
  cwd: string;
  output: TeacherOutputKind;
  /** How long one batch may take. Default 60 s. */
  timeoutMs?: number;
  /** Restarts and retries of one batch before the labelling fails. Default 2. */
  retries?: number;
}

class AttemptFailure extends Error {}

function quote(text: string, limit = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > limit ? `${flat.slice(0, limit)}…` : flat);
}

/** One running process of the command, answering one request at a time. */
class CommandProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #exit: string | undefined;
  readonly stderrTail: string[] = [];

  constructor(options: CommandTeacherOptions, log: (line: string) => void) {
    this.child = spawn(options.command[0], options.command.slice(1), {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.on('error', (error) => this.#ended(`could not run: ${error.message}`));
    this.child.on('exit', (code, signal) =>
      this.#ended(signal ? `was killed by ${signal}` : `exited with code ${code}`),
    );
    this.child.stdin.on('error', () => {}); // a dead child's broken pipe is reported through 'exit'
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.#lines.push(line);
      this.#wake();
    });
    createInterface({ input: this.child.stderr }).on('line', (line) => {
      log(`[teacher ${options.id}] ${line}`);
      this.stderrTail.push(line);
      if (this.stderrTail.length > 5) this.stderrTail.shift();
    });
  }

  #ended(reason: string): void {
    if (this.#exit === undefined) this.#exit = reason;
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  get exited(): string | undefined {
    return this.#exit;
  }

  /** Sends a request and resolves to the next non-empty line, or throws AttemptFailure. */
  async ask(request: string, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    if (this.#exit !== undefined) throw new AttemptFailure(`the command ${this.#exit}`);
    this.child.stdin.write(`${request}\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#lines.length > 0) {
        const line = this.#lines.shift()!;
        if (line.trim() !== '') return line;
      }
      if (this.#exit !== undefined) {
        const said =
          this.stderrTail.length > 0 ? `; its stderr ended with ${quote(this.stderrTail.join(' | '))}` : '';
        throw new AttemptFailure(`the command ${this.#exit}${said}`);
      }
      if (signal?.aborted) throw new SdvpError('ERR_SDVP_ABORTED', 'Labelling was aborted.');
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new AttemptFailure(`the command did not answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        const onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiter = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }

  kill(): void {
    if (this.#exit === undefined) this.child.kill('SIGKILL');
  }
}

export class CommandTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly batchSize: number;
  readonly maxInFlight = 1;
  readonly #options: CommandTeacherOptions;
  #process: CommandProcess | undefined;
  #nextId = 1;
  /** Restarts so far (for reports and tests). */
  restarts = 0;

  constructor(options: CommandTeacherOptions) {
    if (!Array.isArray(options.command) || options.command.length === 0) {
      throw new SdvpError(
        'ERR_SDVP_ARG',
        `Teacher '${options.id}': command must be a non-empty array of strings.`,
        {
          field: `teachers.${options.id}.command`,
        },
      );
    }
    this.#options = options;
    this.batchSize = options.batchSize;
    this.identity = {
      id: options.id,
      version: options.version,
      kind: 'command',
      module: options.module,
      subTask: options.subTask,
      output: options.output,
      fingerprint: createHash('sha256').update(JSON.stringify(options.command)).digest('hex'),
    };
  }

  covers(instance: SubTaskInstance): boolean {
    return coversInstance(this.identity, this.#options.accepts, instance);
  }

  async label(batch: readonly SubTaskInstance[], context: LabelContext): Promise<TeacherOutput[]> {
    const id = this.#nextId++;
    const request = JSON.stringify({
      id,
      instances: batch.map((instance) => ({
        hash: instance.hash,
        module: instance.module,
        subTask: instance.subTask,
        text: instance.input.text,
        image: instance.input.image
          ? { path: context.images.path(instance.input.image.ref), box: instance.input.image.box ?? null }
          : null,
        args: instance.input.args,
      })),
    });
    const retries = this.#options.retries ?? 2;
    let failure = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (!this.#process || this.#process.exited !== undefined) {
        if (this.#process) this.restarts++;
        this.#process = new CommandProcess(this.#options, context.log);
      }
      try {
        const line = await this.#process.ask(request, this.#options.timeoutMs ?? 60_000, context.signal);
        return this.#parse(line, id, batch.length);
      } catch (error) {
        if (!(error instanceof AttemptFailure)) throw error;
        failure = error.message;
        context.log(
          `[teacher ${this.identity.id}] batch ${id}, attempt ${attempt + 1} of ${retries + 1}: ${failure}`,
        );
        this.#process.kill();
        this.#process = undefined;
        this.restarts++;
      }
    }
    throw new SdvpError(
      'ERR_SDVP_TEACHER',
      `Teacher '${this.identity.id}' (${this.#options.command.join(' ')}) failed a batch of ${batch.length} after ${retries + 1} attempts: ${failure}.`,
      { field: `teachers.${this.identity.id}` },
    );
  }

  #parse(line: string, id: number, count: number): TeacherOutput[] {
    let answer: unknown;
    try {
      answer = JSON.parse(line);
    } catch {
      throw new AttemptFailure(`it answered a line that is not JSON: ${quote(line)}`);
    }
    const record = answer as { id?: unknown; outputs?: unknown; error?: unknown };
    if (record === null || typeof record !== 'object')
      throw new AttemptFailure(`it answered ${quote(line)}, not an object`);
    if (record.id !== id)
      throw new AttemptFailure(
        `it answered id ${JSON.stringify(record.id)} to request ${id}: ${quote(line)}`,
      );
    if (record.error !== undefined)
      throw new AttemptFailure(`it reported an error: ${quote(String(record.error))}`);
    if (!Array.isArray(record.outputs) || record.outputs.length !== count) {
      const got = Array.isArray(record.outputs) ? `${record.outputs.length} outputs` : 'no outputs array';
      throw new AttemptFailure(`it answered ${got} for ${count} instances: ${quote(line)}`);
    }
    return record.outputs.map((output, i) => {
      const checked = checkTeacherOutput(output, this.identity.output);
      if (typeof checked === 'string')
        throw new AttemptFailure(`output ${i} is malformed (${checked}): ${quote(line)}`);
      return checked;
    });
  }

  async close(): Promise<void> {
    const process = this.#process;
    this.#process = undefined;
    if (!process || process.exited !== undefined) return;
    process.child.stdin.end();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        process.kill();
        resolve();
      }, 2000);
      process.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
