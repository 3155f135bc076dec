// `sdvp run`: runs one VisProg or ViperGPT program with pluggable modules and prints its result and trace.

import { readFileSync } from 'node:fs';
import { SdvpError } from '../errors/sdvp-error';
import { detectFramework } from '../program/decompose';
import { type Diagnostic, formatDiagnostic, makeDiagnostic } from '../program/diagnostics';
import { type RasterImage, isRasterImage } from '../program/image';
import { VisProgInterpreter } from '../program/interpreter';
import type { Framework } from '../program/step-graph';
import type { ProgramTrace, StepTrace } from '../program/trace';
import { stepTraceToJson, traceValueToJson } from '../program/trace-json';
import { ViperInterpreter } from '../program/viper-interpreter';
import { parseVisProgProgram } from '../program/visprog-parser';
import { loadImageFile } from './load-image';
import { parseArgs } from './parse-args';
import { availableRunModules, resolveRunModules } from './run-modules';

function usage(): string {
  const modules = availableRunModules()
    .map((provider) => `                    ${provider.name}: ${provider.summary}`)
    .join('\n');
  return `Usage: sdvp run [--framework visprog|viper] FILE [--image PATH] [--right PATH] [--modules NAME] [--json]

Runs one program and prints its result and the trace of its module calls. ViperGPT programs run in a
sandbox over the Python subset ViperGPT uses (docs/viper.md); with no image the program still runs, its
image None, so pure-Python logic can be tried here. Diagnostics go to stderr; the exit code is 0 when the
run succeeds, 1 when the program fails or cannot run, 2 for a usage error.

Options:
  --framework F     read the program as 'visprog' or 'viper' instead of detecting it
  --image PATH      the input image (VisProg IMAGE, or LEFT with --right; ViperGPT image)
  --right PATH      the right image of a VisProg NLVR program (LEFT and RIGHT)
  --modules NAME    the module implementations (default stub):
${modules}
  --json            print { "ok", "result", "steps", "diagnostics" }
  -h, --help        show this help`;
}

function summarize(value: unknown): string {
  if (isRasterImage(value)) return `image ${value.width}x${value.height}`;
  if (value === undefined) return '-';
  const text = JSON.stringify(traceValueToJson(value));
  return text.length > 70 ? `${text.slice(0, 67)}...` : text;
}

function stepTable(steps: readonly StepTrace[]): string {
  const rows = steps.map((step) => [
    step.stepId === null ? '-' : String(step.stepId),
    step.line === null ? '-' : String(step.line),
    step.module,
    step.moduleCalled ? 'yes' : '-',
    step.error === null ? summarize(step.value) : `error: ${step.error}`,
  ]);
  const header = ['step', 'line', 'module', 'model', 'value'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]) : cell))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

interface RunOutcome {
  trace: ProgramTrace;
  result: unknown;
  resultText: string;
  diagnostics: Diagnostic[];
}

async function runProgram(
  framework: Framework,
  source: string,
  file: string,
  images: { image?: RasterImage; right?: RasterImage },
  modulesName: string,
): Promise<RunOutcome> {
  const imageFiles = [images.image?.ref, images.right?.ref].filter((ref): ref is string => ref !== undefined);
  const modules = await resolveRunModules(modulesName, { framework, programFile: file, imageFiles });
  if (framework === 'viper') {
    const trace = await new ViperInterpreter({ modules: modules.viper }).run(
      source,
      { image: images.image ?? null },
      { programId: file },
    );
    return {
      trace,
      result: trace.result ?? null,
      resultText: trace.resultRepr ?? '-',
      diagnostics: trace.diagnostics,
    };
  }
  const inputs: Record<string, RasterImage> = {};
  if (images.right) {
    if (images.image) inputs.LEFT = images.image;
    inputs.RIGHT = images.right;
  } else if (images.image) inputs.IMAGE = images.image;
  const graph = parseVisProgProgram(source, { inputs: Object.keys(inputs) });
  const trace = await new VisProgInterpreter({ modules: modules.visprog }).run(graph, inputs, {
    programId: file,
  });
  const diagnostics = [...graph.diagnostics];
  if (trace.error) {
    const line = trace.error.stepId === null ? 1 : (graph.steps[trace.error.stepId]?.line ?? 1);
    if (!diagnostics.some((diagnostic) => diagnostic.severity === 'error' && diagnostic.line === line)) {
      diagnostics.push(makeDiagnostic('error', 'step-failed', line, 1, trace.error.message));
    }
  }
  const result = traceValueToJson(trace.result);
  return { trace, result, resultText: JSON.stringify(result), diagnostics };
}

/** Runs `sdvp run`; resolves to the exit code. */
export async function runCommand(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv, {
      flags: ['json', 'help', 'h'],
      values: ['framework', 'image', 'right', 'modules'],
    });
    if (args.flags.has('help') || args.flags.has('h')) {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    if (args.positionals.length !== 1) {
      throw new SdvpError(
        'ERR_SDVP_USAGE',
        args.positionals.length === 0 ? 'name a program file' : 'name only one program file',
      );
    }
    const framework = args.values.framework;
    if (framework !== undefined && framework !== 'visprog' && framework !== 'viper') {
      throw new SdvpError(
        'ERR_SDVP_USAGE',
        `--framework must be 'visprog' or 'viper', but received '${framework}'`,
      );
    }
  } catch (error) {
    if (!(error instanceof SdvpError) || error.code !== 'ERR_SDVP_USAGE') throw error;
    process.stderr.write(`sdvp run: ${error.message}\n\n${usage()}\n`);
    return 2;
  }
  const file = args.positionals[0];
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SdvpError(
      'ERR_SDVP_IO',
      `Cannot read the program file '${file}': ${(error as Error).message}`,
      { field: 'FILE', cause: error },
    );
  }
  const framework = (args.values.framework as Framework | undefined) ?? detectFramework(source);
  if (framework === 'viper' && args.values.right !== undefined) {
    process.stderr.write(
      `sdvp run: --right is for VisProg NLVR programs (LEFT and RIGHT); ViperGPT programs take one image\n\n${usage()}\n`,
    );
    return 2;
  }
  const images = {
    image: args.values.image === undefined ? undefined : await loadImageFile(args.values.image, '--image'),
    right: args.values.right === undefined ? undefined : await loadImageFile(args.values.right, '--right'),
  };
  let outcome: RunOutcome;
  try {
    outcome = await runProgram(framework, source, file, images, args.values.modules ?? 'stub');
  } catch (error) {
    if (!(error instanceof SdvpError) || error.code !== 'ERR_SDVP_USAGE') throw error;
    process.stderr.write(`sdvp run: ${error.message}\n`);
    return 2;
  }
  const { trace, diagnostics } = outcome;
  if (args.flags.has('json')) {
    const json = {
      ok: trace.ok,
      result: trace.ok ? outcome.result : null,
      steps: trace.steps.map(stepTraceToJson),
      diagnostics: diagnostics.map(({ severity, line, column, message, code }) => ({
        severity,
        line,
        column,
        message,
        code,
      })),
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  } else {
    const status = trace.ok ? `result ${outcome.resultText}` : 'failed';
    process.stdout.write(`${framework} program ${file}: ${status}\n${stepTable(trace.steps)}\n`);
  }
  if (diagnostics.length > 0)
    process.stderr.write(
      `${diagnostics.map((diagnostic) => formatDiagnostic(diagnostic, file)).join('\n')}\n`,
    );
  return trace.ok ? 0 : 1;
}
