// Renders step graphs for other tools (the stable JSON schema) and for people (a plain-text table).

import type { Diagnostic, DiagnosticCode, DiagnosticSeverity } from './diagnostics';
import type { SubTaskKind } from './module-registry';
import { formatPythonLiteral } from './python-literals';
import type { ControlKind, Framework, StepArgument, StepGraph } from './step-graph';

/** One step in the JSON schema `sdvp decompose --json` prints. */
export interface StepJson {
  id: number;
  output: string | null;
  module: string;
  args: Record<string, StepArgument>;
  deps: number[];
  line: number;
  column: number;
  subTask: SubTaskKind | null;
  distillable: boolean;
  control: ControlKind[];
  /** The object a ViperGPT method is called on; null for VisProg steps and functions. */
  receiver: StepArgument | null;
}

export interface DiagnosticJson {
  severity: DiagnosticSeverity;
  line: number;
  column: number;
  message: string;
  code: DiagnosticCode;
}

/** The stable JSON form of a step graph: `{ framework, steps, diagnostics }`. */
export interface StepGraphJson {
  framework: Framework;
  steps: StepJson[];
  diagnostics: DiagnosticJson[];
}

function diagnosticToJson(diagnostic: Diagnostic): DiagnosticJson {
  return {
    severity: diagnostic.severity,
    line: diagnostic.line,
    column: diagnostic.column,
    message: diagnostic.message,
    code: diagnostic.code,
  };
}

/** The graph in the stable schema (plain data, keys in a fixed order). */
export function stepGraphToJson(graph: StepGraph): StepGraphJson {
  return {
    framework: graph.framework,
    steps: graph.steps.map((step) => ({
      id: step.id,
      output: step.output,
      module: step.module,
      args: step.args,
      deps: step.deps,
      line: step.line,
      column: step.column,
      subTask: step.subTask,
      distillable: step.distillable,
      control: step.control.map((context) => context.kind),
      receiver: step.receiver,
    })),
    diagnostics: graph.diagnostics.map(diagnosticToJson),
  };
}

/** An argument as it reads in the program: `IMAGE`, `'cat'`, `{list_max}`, `patches[0]`. */
export function formatStepArgument(argument: StepArgument): string {
  switch (argument.kind) {
    case 'literal':
      return formatPythonLiteral(argument.value);
    case 'variable':
      return argument.name;
    case 'expression':
      return argument.source;
    case 'template':
      return `{${argument.slot}}`;
  }
}

function truncate(text: string, width: number): string {
  const flat = text.replace(/\s*\n\s*/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 3)}...` : flat;
}

export interface TableOptions {
  /** Longest argument column before it is cut with `...` (default 80). */
  argumentWidth?: number;
}

/** A readable table of the steps, one per line, with a header. */
export function formatStepGraphTable(graph: StepGraph, options: TableOptions = {}): string {
  const argumentWidth = options.argumentWidth ?? 80;
  const header = ['id', 'line:col', 'output', 'module', 'sub-task', 'distil', 'deps', 'control', 'arguments'];
  const rows = graph.steps.map((step) => {
    const receiver = step.receiver ? `${truncate(formatStepArgument(step.receiver), 32)}.` : '';
    const args = Object.entries(step.args)
      .map(([name, value]) => `${name}=${formatStepArgument(value)}`)
      .join(', ');
    return [
      String(step.id),
      `${step.line}:${step.column}`,
      step.output ?? '-',
      `${receiver}${step.module}`,
      step.subTask ?? '?',
      step.distillable ? 'yes' : '-',
      step.deps.length > 0 ? step.deps.join(',') : '-',
      step.control.length > 0 ? step.control.map((context) => context.kind).join('>') : '-',
      truncate(args, argumentWidth),
    ];
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padStart(widths[0]) : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd();
  return [render(header), ...rows.map(render)].join('\n');
}
