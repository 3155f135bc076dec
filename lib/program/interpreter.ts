// The VisProg interpreter: runs a step graph with pluggable module implementations and records a trace.

import { performance } from 'node:perf_hooks';
import { SdvpError, argError } from '../errors/sdvp-error';
import { type Diagnostic, formatDiagnostic } from './diagnostics';
import {
  type EvalValue,
  type ParsedEvalExpression,
  evaluateEvalExpression,
  parseEvalExpression,
  visprogEvalValue,
} from './eval-expression';
import { type Box, type RasterImage, cropImage, isRasterImage } from './image';
import { type ModuleRegistry, type ValueType, defaultModuleRegistry } from './module-registry';
import { runConcurrently } from './run-concurrently';
import type { LiteralValue, Step, StepGraph } from './step-graph';
import type { ProgramTrace, StepTrace } from './trace';
import { parseVisProgProgram } from './visprog-parser';
import {
  type AboveBelowFallback,
  VISPROG_CROP_MODULES,
  isBox,
  isVisualObject,
  regionBox,
  visprogCropBox,
  visprogLocRegion,
} from './visprog-semantics';

/** What a module implementation is told besides its arguments. */
export interface ModuleCallContext {
  step: Step;
  programId: string;
  signal?: AbortSignal;
}

/**
 * A module: an (async) function from resolved arguments to a value. Arguments are keyed by name: images are
 * RasterImage, boxes `[x1, y1, x2, y2]` in the pixels of the image given, literals as written.
 * LOC returns boxes, SEG/FACEDET/SELECT/CLASSIFY return objects `{ box, ... }`, VQA a string, LIST strings,
 * image operations a RasterImage.
 */
export type ModuleImplementation = (
  args: Record<string, unknown>,
  context: ModuleCallContext,
) => unknown | Promise<unknown>;

export interface VisProgInterpreterOptions {
  /** Implementations by module name: the neural modules (LOC, VQA, ...) and any module to override. */
  modules?: Readonly<Record<string, ModuleImplementation>>;
  /** Module specifications (default: the built-in registry). */
  registry?: ModuleRegistry;
  /** What CROP_ABOVE / CROP_BELOW crop when no box was found (default 'visprog', as VisProg does). */
  aboveBelowFallback?: AboveBelowFallback;
  /** Values for `{slot}` template placeholders. */
  templateSlots?: Readonly<Record<string, LiteralValue>>;
}

export interface VisProgRunOptions {
  /** Names the run in its trace and in sub-task instances (default 'program'). */
  programId?: string;
  signal?: AbortSignal;
  /** Values for `{slot}` template placeholders, over the interpreter's own. */
  templateSlots?: Readonly<Record<string, LiteralValue>>;
}

/** One program run for `runMany`. */
export interface VisProgJob {
  programId: string;
  program: string | StepGraph;
  inputs: Readonly<Record<string, unknown>>;
}

class StepFailure extends Error {}

function fail(message: string): never {
  throw new StepFailure(message);
}

function describe(value: unknown): string {
  if (isRasterImage(value)) return `an image ${value.width}x${value.height}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function checkOutput(module: string, type: ValueType, value: unknown): void {
  const ok = (() => {
    switch (type) {
      case 'image':
        return isRasterImage(value);
      case 'boxes':
      case 'objects':
        return Array.isArray(value) && value.every((entry) => isBox(entry) || isVisualObject(entry));
      case 'list':
        return Array.isArray(value);
      case 'text':
        return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
      case 'number':
        return typeof value === 'number';
      case 'boolean':
        return typeof value === 'boolean';
      default:
        return true;
    }
  })();
  if (!ok) {
    const expected =
      type === 'boxes' || type === 'objects'
        ? 'a list of boxes [x1, y1, x2, y2] or objects { box }'
        : `a value of type ${type}`;
    fail(`the ${module} implementation returned ${describe(value)}, but ${expected} was expected`);
  }
}

/** Runs VisProg programs: the non-neural steps with VisProg's semantics, the neural ones with given implementations. */
export class VisProgInterpreter {
  readonly #modules = new Map<string, ModuleImplementation>();
  readonly #registry: ModuleRegistry;
  readonly #aboveBelowFallback: AboveBelowFallback;
  readonly #templateSlots: Readonly<Record<string, LiteralValue>>;
  readonly #expressions = new Map<string, ParsedEvalExpression>();

  constructor(options: VisProgInterpreterOptions = {}) {
    if (options === null || typeof options !== 'object')
      throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
    this.#registry = options.registry ?? defaultModuleRegistry();
    const fallback = options.aboveBelowFallback ?? 'visprog';
    if (fallback !== 'visprog' && fallback !== 'matching-half') {
      throw argError(
        'ERR_SDVP_OPTION',
        'options.aboveBelowFallback',
        "'visprog' or 'matching-half'",
        fallback,
      );
    }
    this.#aboveBelowFallback = fallback;
    this.#templateSlots = options.templateSlots ?? {};
    for (const [name, implementation] of Object.entries(options.modules ?? {}))
      this.register(name, implementation);
  }

  /** Adds or replaces the implementation of a module. */
  register(name: string, implementation: ModuleImplementation): this {
    if (typeof name !== 'string' || name === '')
      throw argError('ERR_SDVP_ARG', 'name', 'a module name', name);
    if (typeof implementation !== 'function') {
      throw argError(
        'ERR_SDVP_ARG',
        `modules.${name}`,
        'a function (args, context) => value',
        implementation,
      );
    }
    this.#modules.set(name, implementation);
    return this;
  }

  /**
   * Runs one program on `inputs` (IMAGE, or LEFT and RIGHT, ...). Resolves to a trace in every case a program
   * can cause; a failing step stops this run only. Rejects only on misuse or when `signal` aborts.
   */
  async run(
    program: string | StepGraph,
    inputs: Readonly<Record<string, unknown>>,
    options: VisProgRunOptions = {},
  ): Promise<ProgramTrace> {
    if (inputs === null || typeof inputs !== 'object')
      throw argError('ERR_SDVP_ARG', 'inputs', 'an object', inputs);
    const programId = options.programId ?? 'program';
    const slots = { ...this.#templateSlots, ...(options.templateSlots ?? {}) };
    const graph =
      typeof program === 'string'
        ? parseVisProgProgram(program, {
            registry: this.#registry,
            inputs: Object.keys(inputs),
            templateSlots: slots,
          })
        : program;
    if (graph === null || typeof graph !== 'object' || !Array.isArray(graph.steps)) {
      throw argError('ERR_SDVP_ARG', 'program', 'VisProg source text or a StepGraph', program);
    }
    if (graph.framework !== 'visprog') {
      throw argError('ERR_SDVP_ARG', 'program', 'a VisProg step graph', `a ${graph.framework} step graph`);
    }
    const started = performance.now();
    const state = new Map<string, unknown>(Object.entries(inputs));
    const trace: ProgramTrace = {
      programId,
      framework: 'visprog',
      ok: true,
      result: undefined,
      error: null,
      steps: [],
      durationMs: 0,
    };
    const blocking = this.#blockingDiagnostics(graph);
    let nextBlocking = 0;
    const finish = (error: ProgramTrace['error']) => {
      trace.ok = error === null;
      trace.error = error;
      trace.durationMs = performance.now() - started;
      return trace;
    };
    for (const step of graph.steps) {
      if (options.signal?.aborted)
        throw new SdvpError('ERR_SDVP_ABORTED', `The run of ${programId} was aborted.`);
      // A line that could not be parsed stops the run where VisProg would have stopped: on reaching it.
      while (nextBlocking < blocking.lines.length && blocking.lines[nextBlocking].line < step.line) {
        const diagnostic = blocking.lines[nextBlocking++];
        return finish({
          stepId: null,
          message: `line ${diagnostic.line} cannot run: ${formatDiagnostic(diagnostic)}`,
        });
      }
      const stepTrace = await this.#runStep(
        step,
        state,
        slots,
        blocking.steps.get(step.line),
        programId,
        options.signal,
      );
      trace.steps.push(stepTrace);
      if (stepTrace.error !== null)
        return finish({
          stepId: step.id,
          message: `${step.module} on line ${step.line}: ${stepTrace.error}`,
        });
      if (step.output !== null) state.set(step.output, stepTrace.value);
      if (step.module === 'RESULT') trace.result = stepTrace.value;
    }
    if (nextBlocking < blocking.lines.length) {
      const diagnostic = blocking.lines[nextBlocking];
      return finish({
        stepId: null,
        message: `line ${diagnostic.line} cannot run: ${formatDiagnostic(diagnostic)}`,
      });
    }
    if (graph.steps.length > 0 && !graph.steps.some((step) => step.module === 'RESULT')) {
      trace.result = state.get(graph.steps[graph.steps.length - 1].output ?? '');
    }
    return finish(null);
  }

  /** Runs many programs with bounded concurrency; results come back in job order, each failing on its own. */
  async runMany(
    jobs: Iterable<VisProgJob>,
    options: { concurrency?: number; signal?: AbortSignal } = {},
  ): Promise<ProgramTrace[]> {
    return runConcurrently(jobs, options.concurrency ?? 4, (job) =>
      this.run(job.program, job.inputs, { programId: job.programId, signal: options.signal }),
    );
  }

  /** Error diagnostics: those on a step's line block that step; those elsewhere block the run at their line. */
  #blockingDiagnostics(graph: StepGraph): { steps: Map<number, Diagnostic>; lines: Diagnostic[] } {
    const stepLines = new Set(graph.steps.map((step) => step.line));
    const steps = new Map<number, Diagnostic>();
    const lines: Diagnostic[] = [];
    for (const diagnostic of graph.diagnostics) {
      if (diagnostic.severity !== 'error') continue;
      if (stepLines.has(diagnostic.line)) {
        if (!steps.has(diagnostic.line)) steps.set(diagnostic.line, diagnostic);
      } else if (!lines.some((other) => other.line === diagnostic.line)) lines.push(diagnostic);
    }
    lines.sort((a, b) => a.line - b.line);
    return { steps, lines };
  }

  async #runStep(
    step: Step,
    state: Map<string, unknown>,
    slots: Readonly<Record<string, LiteralValue>>,
    blocking: Diagnostic | undefined,
    programId: string,
    signal: AbortSignal | undefined,
  ): Promise<StepTrace> {
    const started = performance.now();
    const trace: StepTrace = {
      stepId: step.id,
      module: step.module,
      output: step.output,
      line: step.line,
      inputs: {},
      value: undefined,
      error: null,
      durationMs: 0,
      moduleCalled: false,
    };
    try {
      if (blocking) fail(`${blocking.message} (${blocking.code})`);
      trace.inputs = this.#resolveArguments(step, state, slots);
      trace.value = await this.#execute(step, trace, programId, signal);
    } catch (error) {
      if (error instanceof SdvpError && error.code === 'ERR_SDVP_ABORTED') throw error;
      trace.error = error instanceof Error ? error.message : String(error);
      trace.value = undefined;
    }
    trace.durationMs = performance.now() - started;
    return trace;
  }

  #resolveArguments(
    step: Step,
    state: Map<string, unknown>,
    slots: Readonly<Record<string, LiteralValue>>,
  ): Record<string, unknown> {
    const resolved: Record<string, unknown> = {};
    for (const [name, argument] of Object.entries(step.args)) {
      switch (argument.kind) {
        case 'literal':
          resolved[name] = argument.value;
          break;
        case 'variable':
          if (!state.has(argument.name)) fail(`variable ${argument.name} has no value`);
          resolved[name] = state.get(argument.name);
          break;
        case 'template':
          if (!Object.prototype.hasOwnProperty.call(slots, argument.slot)) {
            fail(`template slot {${argument.slot}} has no value; pass templateSlots.${argument.slot}`);
          }
          resolved[name] = slots[argument.slot];
          break;
        case 'expression': {
          const values: Record<string, unknown> = {};
          for (const variable of argument.variables) {
            if (!state.has(variable)) fail(`variable ${variable} has no value`);
            values[variable] = state.get(variable);
          }
          resolved[name] = argument.source;
          resolved.values = values;
          break;
        }
      }
    }
    return resolved;
  }

  async #execute(
    step: Step,
    trace: StepTrace,
    programId: string,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const args = trace.inputs;
    const implementation = this.#modules.get(step.module);
    const spec = this.#registry.get('visprog', step.module);
    if (step.module === 'LOC' && isRasterImage(args.image)) {
      const region = visprogLocRegion(args.object, args.image.width, args.image.height);
      if (region) return [region];
    }
    if (!implementation) return this.#builtin(step, args);
    trace.moduleCalled = true;
    const value = await implementation(args, { step, programId, signal });
    if (spec) checkOutput(step.module, spec.output, value);
    return value;
  }

  #builtin(step: Step, args: Record<string, unknown>): unknown {
    const module = step.module;
    if (VISPROG_CROP_MODULES.includes(module)) {
      const image = args.image;
      if (!isRasterImage(image)) fail(`argument 'image' must be an image, but is ${describe(image)}`);
      const boxes = args.box;
      if (!Array.isArray(boxes)) fail(`argument 'box' must be a list of boxes, but is ${describe(boxes)}`);
      let first: Box | undefined;
      if (boxes.length > 0) {
        first = regionBox(boxes[0]);
        if (!first) fail(`the first entry of 'box' is ${describe(boxes[0])}, not a box [x1, y1, x2, y2]`);
      }
      const box = visprogCropBox(module, first, image.width, image.height, this.#aboveBelowFallback);
      return box ? cropImage(image as RasterImage, box) : image;
    }
    switch (module) {
      case 'COUNT': {
        if (!Array.isArray(args.box)) fail(`argument 'box' must be a list, but is ${describe(args.box)}`);
        return args.box.length;
      }
      case 'RESULT':
        return args.var;
      case 'EVAL': {
        const source = args.expr;
        if (typeof source !== 'string') fail('argument expr must be an expression string');
        let expression = this.#expressions.get(source);
        if (!expression) {
          expression = parseEvalExpression(source);
          if (this.#expressions.size > 10_000) this.#expressions.clear();
          this.#expressions.set(source, expression);
        }
        const values = (args.values ?? {}) as Record<string, unknown>;
        const bindings: Record<string, EvalValue> = {};
        for (const [name, value] of Object.entries(values)) bindings[name] = visprogEvalValue(value);
        return evaluateEvalExpression(expression, bindings);
      }
      default:
        fail(
          this.#registry.has('visprog', module)
            ? `no implementation for ${module}; pass modules.${module} to the interpreter`
            : `unknown module ${module}`,
        );
    }
  }
}

/** Runs one VisProg program once: `new VisProgInterpreter(options).run(program, inputs, options)`. */
export function runVisProgProgram(
  program: string | StepGraph,
  inputs: Readonly<Record<string, unknown>>,
  options: VisProgInterpreterOptions & VisProgRunOptions = {},
): Promise<ProgramTrace> {
  return new VisProgInterpreter(options).run(program, inputs, options);
}
