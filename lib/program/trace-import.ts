// Imports ViperGPT execution traces recorded as JSON Lines (one API call per line) into program traces.
//
// Format (docs/program.md has the full description). Every line is a JSON object with a "program" id and either
//   a call:  {"program": "gqa-17", "module": "simple_query", "image": {"ref": "n161313.jpg", "box": [12, 40, 200, 310]},
//             "args": {"question": "What is the man holding?"}, "result": "a phone", "line": 9}
//   or a run: {"program": "gqa-17", "source": "def execute_command(image): ...", "result": "yes"}
// Optional call fields: "seq" (order within the run; default file order), "step" (step id in the program's step
// graph), "line"/"column" (1-based position of the call in the source), "error" (message if the call raised),
// "duration_ms", and "patch": {"left", "lower", "right", "upper"} in ViperGPT's y-up convention together with
// "image": {"ref", "height"} instead of "box". "args" may also be a list of positional arguments.

import { type Diagnostic, makeDiagnostic } from './diagnostics';
import type { Box, ImageReference } from './image';
import { type ModuleRegistry, defaultModuleRegistry } from './module-registry';
import type { StepGraph } from './step-graph';
import type { ProgramTrace, StepTrace } from './trace';
import { parseViperProgram } from './viper-parser';
import { isBox } from './visprog-semantics';

export interface ViperTraceImportOptions {
  registry?: ModuleRegistry;
  /** Program sources (or parsed graphs) by program id, to match calls to steps; run records can give them too. */
  programs?: Readonly<Record<string, string | StepGraph>>;
}

export interface ViperTraceImport {
  /** One trace per program id, in order of first appearance. */
  traces: ProgramTrace[];
  /** Problems with records, located at their line in the JSON Lines text (column 1). */
  diagnostics: Diagnostic[];
}

interface CallRecord {
  seq: number;
  order: number;
  fileLine: number;
  module: string;
  image: ImageReference | null;
  args: Record<string, unknown>;
  result: unknown;
  error: string | null;
  durationMs: number;
  step: number | null;
  line: number | null;
  column: number | null;
}

interface ProgramEntry {
  id: string;
  calls: CallRecord[];
  source: string | StepGraph | null;
  result: unknown;
  runError: string | null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

class RecordProblem extends Error {}

function readImage(record: Record<string, unknown>): ImageReference | null {
  const image = record.image;
  if (image === undefined || image === null) {
    if (record.patch !== undefined) throw new RecordProblem("'patch' needs 'image' with 'ref' and 'height'");
    return null;
  }
  if (!isObject(image) || typeof image.ref !== 'string') {
    throw new RecordProblem("'image' must be an object with a string 'ref'");
  }
  if (record.patch !== undefined) {
    const patch = record.patch;
    const height = image.height;
    if (
      !isObject(patch) ||
      !['left', 'lower', 'right', 'upper'].every((key) => typeof patch[key] === 'number')
    ) {
      throw new RecordProblem("'patch' must have numeric 'left', 'lower', 'right' and 'upper'");
    }
    if (typeof height !== 'number' || !(height > 0)) {
      throw new RecordProblem(
        "'patch' coordinates are y-up: 'image' needs the source 'height' to convert them",
      );
    }
    const { left, lower, right, upper } = patch as Record<string, number>;
    return { ref: image.ref, box: [left, height - upper, right, height - lower] };
  }
  if (image.box === undefined || image.box === null) return { ref: image.ref, box: null };
  if (!isBox(image.box)) throw new RecordProblem("'image.box' must be [x1, y1, x2, y2] or null");
  return { ref: image.ref, box: [...image.box] as unknown as Box };
}

function readArgs(
  record: Record<string, unknown>,
  module: string,
  registry: ModuleRegistry,
): Record<string, unknown> {
  const args = record.args;
  if (args === undefined || args === null) return {};
  if (isObject(args)) return { ...args };
  if (Array.isArray(args)) {
    const spec = registry.get('viper', module);
    if (!spec)
      throw new RecordProblem(
        `positional 'args' need a known module to name them, and '${module}' is not one`,
      );
    if (args.length > spec.args.length) {
      throw new RecordProblem(
        `${module} takes at most ${spec.args.length} arguments, but the record has ${args.length}`,
      );
    }
    const named: Record<string, unknown> = {};
    args.forEach((value, i) => {
      named[spec.args[i].name] = value;
    });
    return named;
  }
  throw new RecordProblem("'args' must be an object (by name) or a list (positional)");
}

function optionalInteger(record: Record<string, unknown>, key: string, minimum: number): number | null {
  const value = record[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new RecordProblem(`'${key}' must be an integer of at least ${minimum}`);
  }
  return value;
}

/** Reads ViperGPT call traces. Never throws on any string: bad records are reported and skipped. */
export function importViperTrace(text: string, options: ViperTraceImportOptions = {}): ViperTraceImport {
  const registry = options.registry ?? defaultModuleRegistry();
  const diagnostics: Diagnostic[] = [];
  const programs = new Map<string, ProgramEntry>();
  const entryFor = (id: string) => {
    let entry = programs.get(id);
    if (!entry) {
      entry = { id, calls: [], source: options.programs?.[id] ?? null, result: undefined, runError: null };
      programs.set(id, entry);
    }
    return entry;
  };
  const lines = typeof text === 'string' ? text.split(/\r\n|\r|\n/) : [];
  if (typeof text !== 'string')
    diagnostics.push(makeDiagnostic('error', 'syntax', 1, 1, 'the trace must be text'));
  let order = 0;
  lines.forEach((lineText, index) => {
    const fileLine = index + 1;
    if (lineText.trim() === '') return;
    const problem = (
      message: string,
      severity: 'error' | 'warning' = 'error',
      code: Diagnostic['code'] = 'syntax',
    ) => diagnostics.push(makeDiagnostic(severity, code, fileLine, 1, message));
    let record: unknown;
    try {
      record = JSON.parse(lineText);
    } catch (error) {
      problem(`not valid JSON: ${(error as Error).message}`);
      return;
    }
    if (!isObject(record)) return problem('a trace record must be a JSON object');
    const programId = typeof record.program === 'number' ? String(record.program) : record.program;
    if (typeof programId !== 'string' || programId === '') return problem("the record needs a 'program' id");
    try {
      if (record.module === undefined) {
        // A run record: the program's source and final result.
        const entry = entryFor(programId);
        if (record.source !== undefined) {
          if (typeof record.source !== 'string') throw new RecordProblem("'source' must be the program text");
          entry.source = record.source;
        }
        if (record.result !== undefined) entry.result = record.result;
        if (record.error !== undefined && record.error !== null) entry.runError = String(record.error);
        return;
      }
      if (typeof record.module !== 'string' || record.module === '')
        throw new RecordProblem("'module' must be a name");
      const module = record.module;
      const call: CallRecord = {
        seq:
          typeof record.seq === 'number' && Number.isFinite(record.seq)
            ? record.seq
            : Number.POSITIVE_INFINITY,
        order: order++,
        fileLine,
        module,
        image: readImage(record),
        args: readArgs(record, module, registry),
        result: record.result,
        error: record.error === undefined || record.error === null ? null : String(record.error),
        durationMs:
          typeof record.duration_ms === 'number' && record.duration_ms >= 0 ? record.duration_ms : 0,
        step: optionalInteger(record, 'step', 0),
        line: optionalInteger(record, 'line', 1),
        column: optionalInteger(record, 'column', 1),
      };
      if (!registry.has('viper', module)) {
        problem(
          `'${module}' is not a known ImagePatch API entry; the call is kept but not distilled`,
          'warning',
          'unknown-module',
        );
      }
      entryFor(programId).calls.push(call);
    } catch (error) {
      if (error instanceof RecordProblem) problem(error.message);
      else throw error;
    }
  });

  const traces: ProgramTrace[] = [];
  for (const entry of programs.values()) {
    const graph =
      entry.source === null
        ? null
        : typeof entry.source === 'string'
          ? parseViperProgram(entry.source, { registry })
          : entry.source;
    entry.calls.sort((a, b) => (a.seq === b.seq ? a.order - b.order : a.seq < b.seq ? -1 : 1));
    const steps: StepTrace[] = [];
    let firstError: ProgramTrace['error'] = null;
    let duration = 0;
    for (const call of entry.calls) {
      const stepId = matchStep(graph, call, (message) =>
        diagnostics.push(makeDiagnostic('warning', 'syntax', call.fileLine, 1, message)),
      );
      const step = stepId === null ? undefined : graph?.steps[stepId];
      const inputs: Record<string, unknown> = { ...call.args };
      if (call.image) inputs.image = call.image;
      steps.push({
        stepId,
        module: call.module,
        output: step?.output ?? null,
        line: step?.line ?? call.line,
        inputs,
        value: call.error === null ? call.result : undefined,
        error: call.error,
        durationMs: call.durationMs,
        moduleCalled: true,
      });
      duration += call.durationMs;
      if (call.error !== null && firstError === null)
        firstError = { stepId, message: `${call.module}: ${call.error}` };
    }
    if (firstError === null && entry.runError !== null)
      firstError = { stepId: null, message: entry.runError };
    traces.push({
      programId: entry.id,
      framework: 'viper',
      ok: firstError === null,
      result: entry.result,
      error: firstError,
      steps,
      durationMs: duration,
    });
  }
  diagnostics.sort((a, b) => a.line - b.line);
  return { traces, diagnostics };
}

function matchStep(
  graph: StepGraph | null,
  call: CallRecord,
  warn: (message: string) => void,
): number | null {
  if (!graph) return call.step;
  if (call.step !== null) {
    const step = graph.steps[call.step];
    if (step && step.module === call.module) return step.id;
    warn(
      step
        ? `step ${call.step} of the program calls ${step.module}, not ${call.module}; the call is left unmatched`
        : `the program has no step ${call.step}; the call is left unmatched`,
    );
    return null;
  }
  const sameModule = graph.steps.filter((step) => step.module === call.module);
  if (call.line !== null) {
    const onLine = sameModule.filter((step) => step.line === call.line);
    const exact = call.column === null ? undefined : onLine.find((step) => step.column === call.column);
    if (exact) return exact.id;
    if (onLine.length > 0) return onLine[0].id;
    warn(`the program has no ${call.module} call on line ${call.line}; the call is left unmatched`);
    return null;
  }
  return sameModule.length === 1 ? sameModule[0].id : null;
}
