// The state of one sandboxed ViperGPT run: frames, limits, calls, attribute lookup, module calls and the trace.

import { performance } from 'node:perf_hooks';
import type { MaybePromise } from './maybe-async';
import type { ModuleRegistry } from './module-registry';
import { ModuleFailure, PythonError, SandboxLimit, SandboxRefusal, raise } from './python-errors';
import { builtinAttribute, builtinMethod } from './python-methods';
import {
  type Keywords,
  type PyBoundMethod,
  PyCallable,
  PyModule,
  type Runtime,
  type Value,
  setWalkDeadline,
  takeStructuralWork,
  typeName,
} from './python-values';
import type { Step } from './step-graph';
import type { StepTrace } from './trace';
import { type CallSite, type ViperHost, viperAttribute, viperMethod } from './viper-api';
import type { ViperModuleContext, ViperModuleImplementation, ViperModuleName } from './viper-modules';

/** Marks a local variable that has no value yet. */
export const UNBOUND: unique symbol = Symbol('UNBOUND');
export type Slot = Value | typeof UNBOUND;

/** The limits one run is held to. */
export interface ViperLimits {
  /** Statements, loop iterations, calls and element-wise work (default 1,000,000). */
  maxSteps: number;
  /** Interpreter time in milliseconds, module calls excluded (default 2,000). */
  timeLimitMs: number;
  /** Iterations of any one `while` loop (default 10,000). */
  maxWhileIterations: number;
  /** Nested calls of functions the program defines (default 100). */
  maxCallDepth: number;
  /** Length of any string, list, dict or set (default 1,000,000). */
  maxLength: number;
  /** Bits of any int (default 14,285: CPython's 4,300-digit conversion limit). */
  maxIntBits: number;
}

export const DEFAULT_VIPER_LIMITS: Readonly<ViperLimits> = Object.freeze({
  maxSteps: 1_000_000,
  timeLimitMs: 2_000,
  maxWhileIterations: 10_000,
  maxCallDepth: 100,
  maxLength: 1_000_000,
  maxIntBits: 14_285,
});

/** The variables of one function call, lambda call or comprehension. */
export class Frame {
  readonly slots: Slot[];
  returnValue: Value = null;

  constructor(
    size: number,
    readonly parent: Frame | null,
    readonly run: RunState,
  ) {
    this.slots = new Array<Slot>(size).fill(UNBOUND);
  }
}

/** How a statement completed: normally, or by break, continue or return. */
export type Completion = 0 | 1 | 2 | 3;
export const NORMAL: Completion = 0;
export const BREAK: Completion = 1;
export const CONTINUE: Completion = 2;
export const RETURN: Completion = 3;

/** A compiled statement; a compiled expression. */
export type Statement = (frame: Frame) => MaybePromise<Completion>;
export type Expression = (frame: Frame) => MaybePromise<Value>;

/** A function the program defines (`def` or `lambda`). */
export class PyFunction extends PyCallable {
  readonly typeName = 'function';

  constructor(
    readonly name: string,
    readonly parameters: readonly string[],
    /** Default values of the last parameters, evaluated where the function was defined. */
    readonly defaults: readonly Value[],
    readonly frameSize: number,
    readonly closure: Frame,
    readonly body: (frame: Frame) => MaybePromise<Value>,
  ) {
    super();
  }

  call(args: Value[], keywords: Keywords, runtime: Runtime): MaybePromise<Value> {
    const run = runtime as RunState;
    const frame = new Frame(this.frameSize, this.closure, run);
    this.#bind(frame, args, keywords);
    run.enterCall();
    let result: MaybePromise<Value>;
    try {
      result = this.body(frame);
    } catch (error) {
      run.leaveCall();
      throw error;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => {
          run.leaveCall();
          return value;
        },
        (error) => {
          run.leaveCall();
          throw error;
        },
      );
    }
    run.leaveCall();
    return result;
  }

  #bind(frame: Frame, args: Value[], keywords: Keywords): void {
    const count = this.parameters.length;
    const name = this.name;
    if (args.length > count) {
      raise.type(
        `${name}() takes ${count} positional argument${count === 1 ? '' : 's'} but ${args.length} ${args.length === 1 ? 'was' : 'were'} given`,
      );
    }
    for (let i = 0; i < args.length; i++) frame.slots[i] = args[i];
    if (keywords) {
      for (const [keyword, value] of keywords) {
        const index = this.parameters.indexOf(keyword);
        if (index < 0) raise.type(`${name}() got an unexpected keyword argument '${keyword}'`);
        if (frame.slots[index] !== UNBOUND)
          raise.type(`${name}() got multiple values for argument '${keyword}'`);
        frame.slots[index] = value;
      }
    }
    const firstDefault = count - this.defaults.length;
    const missing: string[] = [];
    for (let i = 0; i < count; i++) {
      if (frame.slots[i] !== UNBOUND) continue;
      if (i >= firstDefault) frame.slots[i] = this.defaults[i - firstDefault];
      else missing.push(`'${this.parameters[i]}'`);
    }
    if (missing.length > 0) {
      const list =
        missing.length === 1
          ? missing[0]
          : `${missing.slice(0, -1).join(', ')} and ${missing[missing.length - 1]}`;
      raise.type(
        `${name}() missing ${missing.length} required positional argument${missing.length === 1 ? '' : 's'}: ${list}`,
      );
    }
  }

  override reprText(): string {
    return `<function ${this.name}>`;
  }
}

/** Names the sandbox knows are outside it, with what to say when a program reads them. */
const MISSING_HINTS: Record<string, string> = {
  np: 'numpy is outside the sandboxed subset (only math is available)',
  numpy: 'numpy is outside the sandboxed subset (only math is available)',
  torch: 'torch is outside the sandboxed subset (only math is available)',
  re: 're is outside the sandboxed subset (only math is available)',
  PIL: 'PIL is outside the sandboxed subset',
};

export interface RunStateOptions {
  programId: string;
  limits: ViperLimits;
  registry: ModuleRegistry;
  modules: ReadonlyMap<string, ViperModuleImplementation>;
  steps: readonly Step[];
  /** Globals every program sees (builtins, math, the API), read-only. */
  builtins: ReadonlyMap<string, Value>;
  signal?: AbortSignal;
}

/** One run: implements the runtime interface the builtins and the API use. */
export class RunState implements ViperHost {
  /** Source offset of the operation being performed, for diagnostics. */
  pos = 0;
  site: CallSite = { stepId: null, line: 0, column: 0, output: null };
  readonly trace: StepTrace[] = [];
  /** Module-level variables. */
  readonly globals = new Map<string, Value>();
  readonly registry: ModuleRegistry;
  #steps = 0;
  #checkpoint = 1024;
  #depth = 0;
  #moduleMs = 0;
  readonly #started = performance.now();
  readonly #limits: ViperLimits;
  readonly #options: RunStateOptions;
  readonly #limitBig: bigint;

  constructor(options: RunStateOptions) {
    this.#options = options;
    this.#limits = options.limits;
    this.registry = options.registry;
    this.#limitBig = 1n << BigInt(options.limits.maxIntBits);
    takeStructuralWork();
    this.#updateDeadline();
  }

  get limits(): ViperLimits {
    return this.#limits;
  }

  get stepsUsed(): number {
    return this.#steps;
  }

  // ---- limits ----

  charge(steps: number): void {
    this.#steps += steps + takeStructuralWork();
    if (this.#steps >= this.#checkpoint) this.#check();
  }

  #check(): void {
    this.#checkpoint = this.#steps + 1024;
    if (this.#steps > this.#limits.maxSteps) {
      throw new SandboxLimit(
        'steps',
        `the program ran more than ${this.#limits.maxSteps.toLocaleString('en-US')} steps (the step budget)`,
      );
    }
    this.checkTime();
  }

  /** Fails the run once interpreter time (module calls excluded) passes the time limit. */
  checkTime(): void {
    this.#updateDeadline();
    const used = performance.now() - this.#started - this.#moduleMs;
    if (used > this.#limits.timeLimitMs) {
      throw new SandboxLimit(
        'time',
        `the program ran longer than ${this.#limits.timeLimitMs} ms (the time limit)`,
      );
    }
    if (this.#options.signal?.aborted) throw new SandboxLimit('time', 'the run was aborted');
  }

  /** Lets structural walks (repr, ==, hashing) stop at this run's time limit. */
  #updateDeadline(): void {
    setWalkDeadline(this.#started + this.#moduleMs + this.#limits.timeLimitMs);
  }

  checkLength(length: number): void {
    if (length > this.#limits.maxLength) {
      throw new SandboxLimit(
        'size',
        `a value would hold ${length.toLocaleString('en-US')} items, more than the size limit of ${this.#limits.maxLength.toLocaleString('en-US')}`,
      );
    }
  }

  checkInt(value: bigint): bigint {
    if (value >= this.#limitBig || value <= -this.#limitBig) this.checkIntBits(this.#limits.maxIntBits + 1);
    return value;
  }

  checkIntBits(bits: number): void {
    if (bits > this.#limits.maxIntBits) {
      throw new SandboxLimit(
        'size',
        `an int would need more than ${this.#limits.maxIntBits} bits (the size limit)`,
      );
    }
  }

  enterCall(): void {
    if (++this.#depth > this.#limits.maxCallDepth) {
      this.#depth--;
      throw new SandboxLimit(
        'recursion',
        `maximum recursion depth exceeded (${this.#limits.maxCallDepth} nested calls)`,
      );
    }
    this.charge(1);
  }

  leaveCall(): void {
    this.#depth--;
  }

  // ---- names, attributes, calls ----

  /** A global: module-level variables first, then builtins, math and the API. */
  global(name: string): Value {
    const value = this.globals.get(name) ?? this.#options.builtins.get(name);
    if (value !== undefined) return value;
    const hint = MISSING_HINTS[name];
    throw new PythonError('NameError', `name '${name}' is not defined${hint ? ` (${hint})` : ''}`);
  }

  attribute = (value: Value, name: string): Value => {
    if (name.startsWith('__')) {
      throw new SandboxRefusal(
        'forbidden',
        `the attribute '${name}' is refused: dunder attributes are outside the sandbox`,
      );
    }
    const found =
      viperAttribute(value, name) ??
      (value instanceof PyModule ? value.attributes.get(name) : builtinAttribute(value, name));
    if (found !== undefined) return found;
    if (value instanceof PyModule) raise.attribute(`module '${value.name}' has no attribute '${name}'`);
    return raise.attribute(`'${typeName(value)}' object has no attribute '${name}'`);
  };

  /** The method `name` of a value, unbound, when it has one (calls skip making a bound method); else undefined. */
  methodOf(value: Value, name: string): PyBoundMethod['implementation'] | undefined {
    return viperMethod(value, name) ?? builtinMethod(value, name);
  }

  call(callee: Value, args: Value[], keywords: Keywords = null): MaybePromise<Value> {
    if (callee instanceof PyCallable) return callee.call(args, keywords, this);
    return raise.type(`'${typeName(callee)}' object is not callable`);
  }

  // ---- modules and the trace ----

  hasModule(name: ViperModuleName): boolean {
    return this.#options.modules.has(name);
  }

  record(module: string, inputs: Record<string, unknown>, site: CallSite): StepTrace {
    const entry: StepTrace = {
      stepId: site.stepId,
      module,
      output: site.output,
      line: site.line,
      inputs,
      value: undefined,
      error: null,
      durationMs: performance.now(),
      moduleCalled: false,
    };
    this.trace.push(entry);
    return entry;
  }

  complete(record: StepTrace, value: unknown, error?: string, now = performance.now()): void {
    record.durationMs = now - record.durationMs;
    if (error !== undefined) record.error = error;
    else record.value = value;
  }

  callModule<T>(
    name: ViperModuleName,
    inputs: Record<string, unknown>,
    site: CallSite,
    check: (output: unknown) => T,
  ): MaybePromise<T> {
    const implementation = this.#options.modules.get(name);
    const record = this.record(name, inputs, site);
    record.moduleCalled = implementation !== undefined;
    if (!implementation) {
      const message = `no implementation for ${name}; pass modules.${name} to the ViperInterpreter`;
      this.complete(record, undefined, message);
      throw new ModuleFailure(name, message);
    }
    const context: ViperModuleContext = {
      module: name,
      step: site.stepId === null ? null : (this.#options.steps[site.stepId] ?? null),
      programId: this.#options.programId,
      signal: this.#options.signal,
    };
    let output: unknown;
    try {
      output = implementation(inputs, context);
    } catch (error) {
      return this.#moduleFailed(name, record, error);
    }
    if (
      output !== null &&
      typeof output === 'object' &&
      typeof (output as PromiseLike<unknown>).then === 'function'
    ) {
      return Promise.resolve(output as PromiseLike<unknown>).then(
        (ready) => this.#moduleAnswered(record, ready, check),
        (error) => this.#moduleFailed(name, record, error),
      );
    }
    return this.#moduleAnswered(record, output, check);
  }

  /** A module answered: its time leaves the interpreter's, and its output is checked and recorded. */
  #moduleAnswered<T>(record: StepTrace, output: unknown, check: (output: unknown) => T): T {
    const now = performance.now();
    this.#moduleMs += now - record.durationMs;
    this.#updateDeadline();
    try {
      const value = check(output);
      this.complete(record, output, undefined, now);
      return value;
    } catch (error) {
      this.complete(record, undefined, (error as Error).message, now);
      throw error;
    }
  }

  #moduleFailed(name: string, record: StepTrace, error: unknown): never {
    this.#moduleMs += performance.now() - record.durationMs;
    const message = `the ${name} implementation failed: ${error instanceof Error ? error.message : String(error)}`;
    this.complete(record, undefined, message);
    throw new ModuleFailure(name, message);
  }
}
