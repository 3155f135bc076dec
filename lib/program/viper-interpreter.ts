// The ViperGPT interpreter: runs `def execute_command(image, ...)` programs in a sandbox over the Python subset
// ViperGPT's programs use, with pluggable neural modules, and records a trace in the format VisProg runs use.

import { performance } from 'node:perf_hooks';
import { SdvpError, argError } from '../errors/sdvp-error';
import { type Diagnostic, formatDiagnostic, makeDiagnostic } from './diagnostics';
import { type MaybePromise, then } from './maybe-async';
import { type ModuleRegistry, defaultModuleRegistry } from './module-registry';
import { ModuleFailure, PythonError, SandboxLimit, SandboxRefusal } from './python-errors';
import { type Value, pyRepr } from './python-values';
import { runConcurrently } from './run-concurrently';
import type { ProgramTrace } from './trace';
import { type CompiledViperProgram, compileViperProgram } from './viper-compile';
import { inputToValue, valueToJson } from './viper-convert';
import { SANDBOX_GLOBALS } from './viper-globals';
import { VIPER_MODULE_NAMES, type ViperModuleImplementation, type ViperModules } from './viper-modules';
import { DEFAULT_VIPER_LIMITS, Frame, PyFunction, RunState, type ViperLimits } from './viper-runtime';

export interface ViperInterpreterOptions {
  /** The neural modules (find, simple_query, verify_property, ...); each is optional. */
  modules?: ViperModules;
  /** Module specifications: argument names and aliases, sub-task kinds (default: the built-in registry). */
  registry?: ModuleRegistry;
  /** Limits for every run (defaults: DEFAULT_VIPER_LIMITS). */
  limits?: Partial<ViperLimits>;
  /** The function that is the program (default `execute_command`). */
  entryPoint?: string;
}

export interface ViperRunOptions {
  /** Names the run in its trace and in sub-task instances (default 'program'). */
  programId?: string;
  signal?: AbortSignal;
  /** Limits for this run, over the interpreter's. */
  limits?: Partial<ViperLimits>;
}

/** A ViperGPT run: the common trace, plus where and why it stopped. */
export interface ViperRunTrace extends ProgramTrace {
  framework: 'viper';
  /** The JSON form of the returned value (docs/viper.md); undefined when the run failed. */
  result: unknown;
  /** Python's repr of the returned value, or null when the run failed. */
  resultRepr: string | null;
  /** Why the run failed, located in the source (empty when it succeeded). */
  diagnostics: Diagnostic[];
  /** Steps used against the step budget. */
  stepsUsed: number;
}

/** One program run for runMany. */
export interface ViperJob {
  programId: string;
  program: string | CompiledViperProgram;
  inputs: Readonly<Record<string, unknown>>;
}

/** Inputs a program without `def execute_command(...)` sees as globals. */
const SNIPPET_INPUTS = ['image', 'video', 'possible_answers', 'query'];

function validateLimits(limits: Partial<ViperLimits> | undefined, field: string): Partial<ViperLimits> {
  if (limits === undefined) return {};
  if (limits === null || typeof limits !== 'object')
    throw argError('ERR_SDVP_ARG', field, 'an object of limits', limits);
  for (const [name, value] of Object.entries(limits)) {
    if (!(name in DEFAULT_VIPER_LIMITS)) {
      throw argError(
        'ERR_SDVP_OPTION',
        `${field}.${name}`,
        `one of ${Object.keys(DEFAULT_VIPER_LIMITS).join(', ')}`,
        name,
      );
    }
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw argError('ERR_SDVP_RANGE', `${field}.${name}`, 'a positive finite number', value);
    }
  }
  return limits;
}

/** Where a failed run stopped, as a diagnostic at the operation that failed. */
function failureDiagnostic(error: unknown, run: RunState | null, program: CompiledViperProgram): Diagnostic {
  const { line, column } = program.lines.position(run?.pos ?? 0);
  if (error instanceof PythonError) {
    return makeDiagnostic(
      'error',
      'python-error',
      line,
      column,
      error.message ? `${error.pythonType}: ${error.message}` : error.pythonType,
    );
  }
  if (error instanceof SandboxLimit) return makeDiagnostic('error', 'limit', line, column, error.message);
  if (error instanceof SandboxRefusal)
    return makeDiagnostic('error', error.code, line, column, error.message);
  if (error instanceof ModuleFailure)
    return makeDiagnostic('error', 'module-error', line, column, error.message);
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return makeDiagnostic(
      'error',
      'limit',
      line,
      column,
      'the program nests calls or values too deeply (the JavaScript stack ran out)',
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return makeDiagnostic(
    'error',
    'internal',
    line,
    column,
    `internal error in the ViperGPT interpreter: ${message}`,
  );
}

/** Runs ViperGPT programs: Python's semantics in a sandbox, neural API calls through the given modules. */
export class ViperInterpreter {
  readonly #modules = new Map<string, ViperModuleImplementation>();
  readonly #registry: ModuleRegistry;
  readonly #limits: ViperLimits;
  readonly #entryPoint: string;
  readonly #compiled = new Map<string, CompiledViperProgram>();

  constructor(options: ViperInterpreterOptions = {}) {
    if (options === null || typeof options !== 'object')
      throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
    this.#registry = options.registry ?? defaultModuleRegistry();
    this.#limits = { ...DEFAULT_VIPER_LIMITS, ...validateLimits(options.limits, 'options.limits') };
    this.#entryPoint = options.entryPoint ?? 'execute_command';
    if (typeof this.#entryPoint !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(this.#entryPoint)) {
      throw argError('ERR_SDVP_ARG', 'options.entryPoint', 'a Python function name', options.entryPoint);
    }
    const modules = options.modules ?? {};
    if (modules === null || typeof modules !== 'object')
      throw argError('ERR_SDVP_ARG', 'options.modules', 'an object of module functions', modules);
    for (const [name, implementation] of Object.entries(modules)) {
      if (implementation !== undefined)
        this.register(name as keyof ViperModules, implementation as ViperModuleImplementation);
    }
  }

  /** Adds or replaces the implementation of one module. */
  register(name: keyof ViperModules, implementation: ViperModuleImplementation): this {
    if (!VIPER_MODULE_NAMES.includes(name)) {
      throw argError('ERR_SDVP_OPTION', 'name', `one of ${VIPER_MODULE_NAMES.join(', ')}`, name);
    }
    if (typeof implementation !== 'function') {
      throw argError(
        'ERR_SDVP_ARG',
        `modules.${name}`,
        'a function (inputs, context) => value',
        implementation,
      );
    }
    this.#modules.set(name, implementation);
    return this;
  }

  /** Parses and compiles a program once (cached by source); `errors` says why it cannot run, if it cannot. */
  compile(source: string): CompiledViperProgram {
    if (typeof source !== 'string') throw argError('ERR_SDVP_ARG', 'source', 'a string', source);
    let compiled = this.#compiled.get(source);
    if (!compiled) {
      compiled = compileViperProgram(source, { registry: this.#registry, entryPoint: this.#entryPoint });
      if (this.#compiled.size >= 10_000) this.#compiled.clear();
      this.#compiled.set(source, compiled);
    }
    return compiled;
  }

  /**
   * Runs one program on `inputs` (by parameter name: `image` a RasterImage, `video` from createVideo, others as
   * data). Resolves to a trace for everything a program can do; rejects only on misuse or when `signal` aborts.
   */
  async run(
    program: string | CompiledViperProgram,
    inputs: Readonly<Record<string, unknown>> = {},
    options: ViperRunOptions = {},
  ): Promise<ViperRunTrace> {
    if (inputs === null || typeof inputs !== 'object')
      throw argError('ERR_SDVP_ARG', 'inputs', 'an object', inputs);
    const compiled = typeof program === 'string' ? this.compile(program) : program;
    if (
      compiled === null ||
      typeof compiled !== 'object' ||
      typeof compiled.source !== 'string' ||
      !compiled.lines
    ) {
      throw argError('ERR_SDVP_ARG', 'program', 'ViperGPT source text or a compiled program', program);
    }
    const values = new Map<string, Value>();
    for (const [name, value] of Object.entries(inputs))
      values.set(name, inputToValue(value, `inputs.${name}`));
    const limits =
      options.limits === undefined
        ? this.#limits
        : { ...this.#limits, ...validateLimits(options.limits, 'options.limits') };
    const programId = options.programId ?? 'program';
    const started = performance.now();
    const trace: ViperRunTrace = {
      programId,
      framework: 'viper',
      ok: false,
      result: undefined,
      resultRepr: null,
      error: null,
      steps: [],
      durationMs: 0,
      diagnostics: [],
      stepsUsed: 0,
    };
    const fail = (diagnostic: Diagnostic, stepId: number | null) => {
      trace.diagnostics = [diagnostic];
      trace.error = { stepId, message: formatDiagnostic(diagnostic) };
    };
    if (!compiled.run) {
      fail(compiled.errors[0], null);
      trace.diagnostics = [...compiled.errors];
      trace.durationMs = performance.now() - started;
      return trace;
    }
    const state = new RunState({
      programId,
      limits,
      registry: this.#registry,
      modules: this.#modules,
      steps: compiled.graph.steps,
      builtins: SANDBOX_GLOBALS,
      signal: options.signal,
    });
    try {
      // Awaited only when a module answered asynchronously: a synchronous run never yields the event loop.
      const pending = this.#execute(compiled, state, values);
      const value = pending instanceof Promise ? await pending : pending;
      const result = valueToJson(value);
      trace.resultRepr = pyRepr(value);
      trace.result = result;
      trace.ok = true;
    } catch (error) {
      if (options.signal?.aborted)
        throw new SdvpError('ERR_SDVP_ABORTED', `The run of ${programId} was aborted.`);
      const failedStep =
        error instanceof ModuleFailure ? (state.trace[state.trace.length - 1]?.stepId ?? null) : null;
      fail(failureDiagnostic(error, state, compiled), failedStep);
    }
    trace.steps = state.trace;
    trace.stepsUsed = state.stepsUsed;
    trace.durationMs = performance.now() - started;
    return trace;
  }

  /** Runs the module-level code, then the entry point; synchronous unless a module answers with a Promise. */
  #execute(compiled: CompiledViperProgram, state: RunState, inputs: Map<string, Value>): MaybePromise<Value> {
    const moduleFrame = new Frame(0, null, state);
    if (compiled.entryPoint === null) {
      for (const name of SNIPPET_INPUTS) state.globals.set(name, inputs.get(name) ?? null);
      for (const [name, value] of inputs) state.globals.set(name, value);
    }
    return then(compiled.run!(moduleFrame), () => {
      if (compiled.entryPoint === null) return null;
      const entry = state.globals.get(compiled.entryPoint);
      if (!(entry instanceof PyFunction)) {
        throw new PythonError('TypeError', `'${compiled.entryPoint}' is not a function the program defines`);
      }
      const firstDefault = entry.parameters.length - entry.defaults.length;
      const args = entry.parameters.map(
        (name, i) => inputs.get(name) ?? (i >= firstDefault ? entry.defaults[i - firstDefault] : null),
      );
      state.site = { stepId: null, line: 1, column: 1, output: null };
      return entry.call(args, null, state);
    });
  }

  /** Runs many programs with bounded concurrency; results come back in job order, each failing on its own. */
  async runMany(
    jobs: Iterable<ViperJob>,
    options: { concurrency?: number; signal?: AbortSignal } = {},
  ): Promise<ViperRunTrace[]> {
    return runConcurrently(jobs, options.concurrency ?? 4, (job) =>
      this.run(job.program, job.inputs, { programId: job.programId, signal: options.signal }),
    );
  }
}

/** Runs one ViperGPT program once: `new ViperInterpreter(options).run(program, inputs, options)`. */
export function runViperProgram(
  program: string,
  inputs: Readonly<Record<string, unknown>> = {},
  options: ViperInterpreterOptions & ViperRunOptions = {},
): Promise<ViperRunTrace> {
  return new ViperInterpreter(options).run(program, inputs, options);
}
