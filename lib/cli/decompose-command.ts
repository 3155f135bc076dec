// `sdvp decompose`: prints the step graph of a VisProg or ViperGPT program, or of each record of a JSON Lines file.

import { readFileSync } from 'node:fs';
import { SdvpError } from '../errors/sdvp-error';
import { decomposeProgram } from '../program/decompose';
import { type Diagnostic, formatDiagnostic, hasErrors } from '../program/diagnostics';
import type { Framework, LiteralValue, StepGraph } from '../program/step-graph';
import { formatStepGraphTable, stepGraphToJson } from '../program/step-graph-format';

const USAGE = `Usage: sdvp decompose [--framework visprog|viper] [--json] [--slot NAME=VALUE]... <file|->

Prints the step graph of a program: one step per module call, with its arguments, dependencies,
sub-task kind and enclosing control flow. The input is one program (VisProg or ViperGPT; detected
when --framework is absent), or a JSON Lines file of records with a "program" field (and optionally
"framework"). Diagnostics go to stderr; the exit code is 1 when any program has errors.

Options:
  --framework F     read programs as 'visprog' or 'viper' instead of detecting it
  --json            print JSON { framework, steps, diagnostics }; one line per record for JSON Lines
  --slot NAME=VALUE fill the VisProg template slot {NAME} (for example --slot list_max=20)
  -h, --help        show this help`;

interface DecomposeArguments {
  framework?: Framework;
  json: boolean;
  slots: Record<string, LiteralValue>;
  input: string;
}

class UsageError extends Error {}

function parseArguments(argv: string[]): DecomposeArguments | 'help' {
  const parsed: Partial<DecomposeArguments> & { slots: Record<string, LiteralValue> } = {
    json: false,
    slots: {},
  };
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    const [flag, inlineValue] =
      word.startsWith('--') && word.includes('=')
        ? [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)]
        : [word, undefined];
    const takeValue = () => {
      if (inlineValue !== undefined) return inlineValue;
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${flag} needs a value`);
      return value;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--json':
        parsed.json = true;
        break;
      case '--framework': {
        const value = takeValue();
        if (value !== 'visprog' && value !== 'viper') {
          throw new UsageError(`--framework must be 'visprog' or 'viper', but received '${value}'`);
        }
        parsed.framework = value;
        break;
      }
      case '--slot': {
        const value = takeValue();
        const equals = value.indexOf('=');
        if (equals <= 0) throw new UsageError(`--slot must be NAME=VALUE, but received '${value}'`);
        const text = value.slice(equals + 1);
        const number = text.trim() === '' ? Number.NaN : Number(text);
        parsed.slots[value.slice(0, equals)] = Number.isFinite(number) ? number : text;
        break;
      }
      default:
        if (word.startsWith('-') && word !== '-') throw new UsageError(`unknown option '${word}'`);
        inputs.push(word);
    }
  }
  if (inputs.length !== 1) {
    throw new UsageError(inputs.length === 0 ? 'name a program file, or - for stdin' : 'name only one input');
  }
  return { framework: parsed.framework, json: parsed.json ?? false, slots: parsed.slots, input: inputs[0] };
}

async function readInput(input: string): Promise<string> {
  if (input === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin)
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return readFileSync(input, 'utf8');
  } catch (error) {
    throw new SdvpError(
      'ERR_SDVP_IO',
      `Cannot read the program file '${input}': ${(error as Error).message}`,
      {
        field: 'file',
        cause: error,
      },
    );
  }
}

/** One program to decompose, with where it came from. */
interface ProgramRecord {
  /** Location prefix for diagnostics (`file` or `file#line`). */
  location: string;
  title: string | null;
  program: string | null;
  framework?: Framework;
  /** Set when the record itself is unusable (not JSON, no program field). */
  problem?: string;
}

function isJsonLines(text: string): boolean {
  const first = text.trimStart()[0];
  return first === '{';
}

function readRecords(text: string, location: string): ProgramRecord[] {
  const records: ProgramRecord[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    const where = `${location}#${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      records.push({
        location: where,
        title: null,
        program: null,
        problem: `not valid JSON: ${(error as Error).message}`,
      });
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      records.push({
        location: where,
        title: null,
        program: null,
        problem: 'a record must be a JSON object',
      });
      return;
    }
    const record = value as Record<string, unknown>;
    if (typeof record.program !== 'string') {
      records.push({
        location: where,
        title: null,
        program: null,
        problem: "the record has no string 'program' field",
      });
      return;
    }
    const framework =
      record.framework === 'visprog' || record.framework === 'viper' ? record.framework : undefined;
    const query = ['question', 'statement', 'instruction', 'query']
      .map((key) => record[key])
      .find((v) => typeof v === 'string');
    records.push({
      location: where,
      title: (query as string | undefined) ?? null,
      program: record.program,
      framework,
    });
  });
  return records;
}

function recordProblemGraph(
  framework: Framework | undefined,
  message: string,
): { json: object; diagnostic: Diagnostic } {
  const diagnostic: Diagnostic = { severity: 'error', code: 'syntax', line: 1, column: 1, message };
  return {
    diagnostic,
    json: {
      framework: framework ?? null,
      steps: [],
      diagnostics: [{ severity: 'error', line: 1, column: 1, message, code: 'syntax' }],
    },
  };
}

/** Runs `sdvp decompose`; resolves to the exit code (0 clean or warnings only, 1 errors, 2 usage). */
export async function decomposeCommand(argv: string[]): Promise<number> {
  let args: DecomposeArguments | 'help';
  try {
    args = parseArguments(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sdvp decompose: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const text = await readInput(args.input);
  const location = args.input === '-' ? '<stdin>' : args.input;
  const jsonLines = isJsonLines(text);
  const records: ProgramRecord[] = jsonLines
    ? readRecords(text, location)
    : [{ location, title: null, program: text }];
  const out: string[] = [];
  const err: string[] = [];
  let failed = false;
  let withErrors = 0;
  let withWarnings = 0;
  records.forEach((record, index) => {
    const framework = args.framework ?? record.framework;
    if (record.program === null) {
      const problem = recordProblemGraph(framework, record.problem ?? 'unusable record');
      failed = true;
      withErrors++;
      err.push(`${record.location}: error: ${problem.diagnostic.message}`);
      if (args.json) out.push(JSON.stringify(problem.json));
      else out.push(`record ${index + 1} (${record.location}): ${problem.diagnostic.message}\n`);
      return;
    }
    const graph: StepGraph = decomposeProgram(record.program, { framework, templateSlots: args.slots });
    for (const diagnostic of graph.diagnostics) err.push(formatDiagnostic(diagnostic, record.location));
    if (hasErrors(graph.diagnostics)) {
      failed = true;
      withErrors++;
    } else if (graph.diagnostics.length > 0) withWarnings++;
    if (args.json) {
      out.push(JSON.stringify(stepGraphToJson(graph), null, jsonLines ? undefined : 2));
      return;
    }
    const errors = graph.diagnostics.filter((d) => d.severity === 'error').length;
    const warnings = graph.diagnostics.length - errors;
    const counts = `${graph.steps.length} step${graph.steps.length === 1 ? '' : 's'}, ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
    const heading = jsonLines
      ? `record ${index + 1} (${record.location}): ${graph.framework}, ${counts}${record.title ? ` - ${record.title}` : ''}`
      : `${graph.framework} program: ${counts}`;
    out.push(`${heading}\n${formatStepGraphTable(graph)}\n`);
  });
  if (jsonLines && records.length > 1) {
    err.push(`${records.length} programs: ${withErrors} with errors, ${withWarnings} with warnings only`);
  }
  if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
  if (err.length > 0) process.stderr.write(`${err.join('\n')}\n`);
  return failed ? 1 : 0;
}
