// The VisProg parser: `OUT=MODULE(name=value,...)` lines into a step graph, with diagnostics instead of exceptions.

import { argError } from '../errors/sdvp-error';
import { type Diagnostic, closestName, makeDiagnostic, sortDiagnostics } from './diagnostics';
import { type ParsedEvalExpression, parseEvalExpression } from './eval-expression';
import {
  type ArgumentSpec,
  type ModuleRegistry,
  type ModuleSpec,
  type ValueType,
  defaultModuleRegistry,
  isCompatibleType,
} from './module-registry';
import { decodeEscape, formatPythonLiteral, parsePythonNumber } from './python-literals';
import type { ControlContext, LiteralValue, Step, StepArgument, StepGraph } from './step-graph';

/** The variables a VisProg program may read without defining them: GQA's IMAGE and NLVR's LEFT and RIGHT. */
export const DEFAULT_VISPROG_INPUTS: readonly string[] = Object.freeze(['IMAGE', 'LEFT', 'RIGHT']);

/** LOC objects VisProg answers with fixed image halves instead of running the detector. */
export const VISPROG_LOC_REGIONS: readonly string[] = Object.freeze(['TOP', 'BOTTOM', 'LEFT', 'RIGHT']);

export interface VisProgParseOptions {
  /** Modules to recognise (default: the built-in registry). */
  registry?: ModuleRegistry;
  /** Variables defined before the first step (default: IMAGE, LEFT, RIGHT). */
  inputs?: readonly string[];
  /** Values for `{slot}` template placeholders left in a program (`{ list_max: 20 }`). */
  templateSlots?: Readonly<Record<string, LiteralValue>>;
}

const NO_CONTROL: ControlContext[] = Object.freeze([]) as unknown as ControlContext[];

/** How a value was written, so argument checks can say what they received. */
type WrittenAs = 'string' | 'number' | 'boolean' | 'none' | 'variable' | 'template';

interface ParsedArgument {
  name: string;
  nameColumn: number;
  valueColumn: number;
  value: StepArgument;
  writtenAs: WrittenAs;
  /** Source column of each character of a string value, when escapes make them differ from a plain offset. */
  columnMap: number[] | null;
}

interface ParsedLine {
  line: number;
  output: string;
  outputColumn: number;
  module: string;
  moduleColumn: number;
  args: ParsedArgument[];
}

/** A line that defines a variable but could not be parsed: later uses of the variable are not reported. */
interface BrokenLine {
  line: number;
  output: string;
  outputColumn: number;
}

class LineSyntaxError {
  constructor(
    readonly column: number,
    readonly message: string,
    readonly code: 'syntax' | 'malformed-literal' = 'syntax',
  ) {}
}

function isIdentifierStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95;
}

function isIdentifierPart(code: number): boolean {
  return isIdentifierStart(code) || (code >= 48 && code <= 57);
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 12 || code === 11;
}

/** Scans the steps of one program, line by line. */
class VisProgLineScanner {
  pos = 0;
  lineStart = 0;
  lineEnd = 0;
  readonly diagnostics: Diagnostic[] = [];

  constructor(
    readonly text: string,
    public line: number,
  ) {}

  column(position: number): number {
    return position - this.lineStart + 1;
  }

  skipSpaces(): void {
    while (this.pos < this.lineEnd && isSpace(this.text.charCodeAt(this.pos))) this.pos++;
  }

  identifier(): string | undefined {
    const start = this.pos;
    if (start >= this.lineEnd || !isIdentifierStart(this.text.charCodeAt(start))) return undefined;
    let end = start + 1;
    while (end < this.lineEnd && isIdentifierPart(this.text.charCodeAt(end))) end++;
    this.pos = end;
    return this.text.slice(start, end);
  }

  describeHere(): string {
    if (this.pos >= this.lineEnd) return 'the end of the line';
    const code = this.text.charCodeAt(this.pos);
    return `'${String.fromCodePoint(this.text.codePointAt(this.pos) ?? code)}'`;
  }

  fail(message: string, code: 'syntax' | 'malformed-literal' = 'syntax', position = this.pos): never {
    throw new LineSyntaxError(this.column(position), message, code);
  }

  /** Whether the next non-space character after `position` ends a value (`,`, `)` or the end of the line). */
  endsValueAt(position: number): boolean {
    let i = position;
    while (i < this.lineEnd && isSpace(this.text.charCodeAt(i))) i++;
    if (i >= this.lineEnd) return true;
    const code = this.text.charCodeAt(i);
    return code === 44 /* , */ || code === 41 /* ) */;
  }

  /** Reads a quoted string; an unescaped quote inside it is reported, then read as text when that recovers. */
  stringLiteral(argumentName: string): { value: string; columnMap: number[] | null } {
    const quoteCode = this.text.charCodeAt(this.pos);
    const start = this.pos;
    let i = start + 1;
    let segmentStart = i;
    let value = '';
    let columnMap: number[] | null = null;
    const appendPlain = (from: number, to: number) => {
      if (columnMap) for (let k = from; k < to; k++) columnMap.push(this.column(k));
      value += this.text.slice(from, to);
    };
    while (true) {
      if (i >= this.lineEnd) {
        this.fail(`unterminated string in the value of '${argumentName}'`, 'malformed-literal', start);
      }
      const code = this.text.charCodeAt(i);
      if (code === 92 /* \ */) {
        if (!columnMap) {
          columnMap = [];
          for (let k = start + 1; k < segmentStart; k++) columnMap.push(this.column(k));
        }
        appendPlain(segmentStart, i);
        const decoded = decodeEscape(this.text, i, this.lineEnd);
        if (decoded.error) this.fail(decoded.error, 'malformed-literal', i);
        for (let k = 0; k < decoded.text.length; k++) columnMap.push(this.column(i));
        value += decoded.text;
        i = decoded.next;
        segmentStart = i;
        continue;
      }
      if (code === quoteCode) {
        if (this.endsValueAt(i + 1) || !this.hasLaterClosingQuote(i + 1, quoteCode)) break;
        const quote = String.fromCharCode(quoteCode);
        this.diagnostics.push(
          makeDiagnostic(
            'error',
            'malformed-literal',
            this.line,
            this.column(i),
            `unescaped ${quote} inside a ${quote}-quoted string (write \\${quote}); read as part of the text`,
          ),
        );
      }
      i++;
    }
    appendPlain(segmentStart, i);
    this.pos = i + 1;
    return { value, columnMap };
  }

  hasLaterClosingQuote(from: number, quoteCode: number): boolean {
    for (let i = from; i < this.lineEnd; i++) {
      const code = this.text.charCodeAt(i);
      if (code === 92) i++;
      else if (code === quoteCode && this.endsValueAt(i + 1)) return true;
    }
    return false;
  }

  numberLiteral(): number {
    const start = this.pos;
    let i = start + 1;
    while (i < this.lineEnd) {
      const code = this.text.charCodeAt(i);
      const previous = this.text.charCodeAt(i - 1);
      const exponentSign = (code === 43 || code === 45) && (previous === 101 || previous === 69);
      if (!isIdentifierPart(code) && code !== 46 && !exponentSign) break;
      i++;
    }
    const literal = this.text.slice(start, i);
    const value = parsePythonNumber(literal);
    if (value === undefined) this.fail(`'${literal}' is not a valid number`, 'malformed-literal', start);
    this.pos = i;
    return value;
  }

  value(argumentName: string, nameColumn: number): ParsedArgument {
    const valueColumn = this.column(this.pos);
    const code = this.text.charCodeAt(this.pos);
    if (this.pos < this.lineEnd && (code === 39 || code === 34)) {
      const { value, columnMap } = this.stringLiteral(argumentName);
      return {
        name: argumentName,
        nameColumn,
        valueColumn,
        value: { kind: 'literal', value },
        writtenAs: 'string',
        columnMap,
      };
    }
    const next = this.text.charCodeAt(this.pos + 1);
    const isNumberStart =
      (code >= 48 && code <= 57) ||
      ((code === 45 || code === 43 || code === 46) && ((next >= 48 && next <= 57) || next === 46));
    if (this.pos < this.lineEnd && isNumberStart) {
      return {
        name: argumentName,
        nameColumn,
        valueColumn,
        value: { kind: 'literal', value: this.numberLiteral() },
        writtenAs: 'number',
        columnMap: null,
      };
    }
    const name = this.identifier();
    if (name !== undefined) {
      if (name === 'None')
        return {
          name: argumentName,
          nameColumn,
          valueColumn,
          value: { kind: 'literal', value: null },
          writtenAs: 'none',
          columnMap: null,
        };
      if (name === 'True' || name === 'False') {
        return {
          name: argumentName,
          nameColumn,
          valueColumn,
          value: { kind: 'literal', value: name === 'True' },
          writtenAs: 'boolean',
          columnMap: null,
        };
      }
      return {
        name: argumentName,
        nameColumn,
        valueColumn,
        value: { kind: 'variable', name },
        writtenAs: 'variable',
        columnMap: null,
      };
    }
    if (code === 123 /* { */ && this.pos < this.lineEnd) {
      const start = this.pos;
      this.pos++;
      const slot = this.identifier();
      if (slot === undefined || this.text.charCodeAt(this.pos) !== 125 || this.pos >= this.lineEnd) {
        this.fail(
          `'{' in the value of '${argumentName}' must start a template slot such as {list_max}`,
          'syntax',
          start,
        );
      }
      this.pos++;
      return {
        name: argumentName,
        nameColumn,
        valueColumn,
        value: { kind: 'template', slot },
        writtenAs: 'template',
        columnMap: null,
      };
    }
    this.fail(`expected a value for argument '${argumentName}', found ${this.describeHere()}`);
  }

  /** Parses the current line (between lineStart and lineEnd); null for a blank line. */
  parseLine(): ParsedLine | null {
    this.pos = this.lineStart;
    this.skipSpaces();
    if (this.pos >= this.lineEnd) return null;
    const outputColumn = this.column(this.pos);
    const output = this.identifier();
    if (output === undefined)
      this.fail(`expected the name of the step's output variable, found ${this.describeHere()}`);
    let broken: BrokenLine | undefined;
    try {
      this.skipSpaces();
      if (this.text.charCodeAt(this.pos) !== 61 || this.pos >= this.lineEnd) {
        this.fail(`expected '=' after the output variable '${output}', found ${this.describeHere()}`);
      }
      broken = { line: this.line, output, outputColumn };
      this.pos++;
      this.skipSpaces();
      const moduleColumn = this.column(this.pos);
      const module = this.identifier();
      if (module === undefined)
        this.fail(`expected a module name after '${output}=', found ${this.describeHere()}`);
      this.skipSpaces();
      if (this.text.charCodeAt(this.pos) !== 40 || this.pos >= this.lineEnd) {
        this.fail(`expected '(' after the module name '${module}', found ${this.describeHere()}`);
      }
      this.pos++;
      const args: ParsedArgument[] = [];
      while (true) {
        this.skipSpaces();
        if (this.pos >= this.lineEnd) this.fail(`missing ')' at the end of the ${module} step`);
        if (this.text.charCodeAt(this.pos) === 41) {
          this.pos++;
          break;
        }
        const nameColumn = this.column(this.pos);
        const name = this.identifier();
        if (name === undefined) this.fail(`expected an argument name, found ${this.describeHere()}`);
        this.skipSpaces();
        if (this.text.charCodeAt(this.pos) !== 61 || this.pos >= this.lineEnd) {
          this.fail(`expected '=' after the argument name '${name}', found ${this.describeHere()}`);
        }
        this.pos++;
        this.skipSpaces();
        args.push(this.value(name, nameColumn));
        this.skipSpaces();
        const code = this.text.charCodeAt(this.pos);
        if (this.pos < this.lineEnd && code === 44) {
          this.pos++;
          continue;
        }
        if (this.pos < this.lineEnd && code === 41) {
          this.pos++;
          break;
        }
        this.fail(`expected ',' or ')' after the value of '${name}', found ${this.describeHere()}`);
      }
      this.skipSpaces();
      if (this.pos < this.lineEnd) {
        this.fail(`unexpected text after the end of the ${module} step: ${this.describeHere()}`);
      }
      return { line: this.line, output, outputColumn, module, moduleColumn, args };
    } catch (error) {
      if (error instanceof LineSyntaxError && broken) throw new BrokenLineError(error, broken);
      throw error;
    }
  }
}

class BrokenLineError {
  constructor(
    readonly syntax: LineSyntaxError,
    readonly broken: BrokenLine,
  ) {}
}

interface Definition {
  stepId: number | null;
  type: ValueType;
  line: number;
  column: number;
  module: string | null;
  used: boolean;
  isInput: boolean;
}

function describeWritten(argument: ParsedArgument): string {
  const value = argument.value;
  switch (value.kind) {
    case 'variable':
      return `the variable ${value.name}`;
    case 'template':
      return `the template slot {${value.slot}}`;
    case 'literal':
      if (argument.writtenAs === 'string') return `the string ${formatPythonLiteral(value.value)}`;
      if (argument.writtenAs === 'number') return `the number ${formatPythonLiteral(value.value)}`;
      return formatPythonLiteral(value.value);
    default:
      return 'an expression';
  }
}

function literalMatchesType(value: LiteralValue, spec: ArgumentSpec): boolean {
  if (value === null) return spec.nullable === true || spec.type === 'any';
  switch (spec.type) {
    case 'text':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'any':
      return true;
    default:
      return false;
  }
}

function typeWords(type: ValueType): string {
  switch (type) {
    case 'text':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'True or False';
    case 'image':
      return 'an image';
    case 'boxes':
      return 'boxes';
    case 'objects':
      return 'objects';
    case 'list':
      return 'a list';
    default:
      return `a value of type ${type}`;
  }
}

/** Parses and checks one VisProg program. Never throws on any string: problems become diagnostics. */
export function parseVisProgProgram(source: string, options: VisProgParseOptions = {}): StepGraph {
  if (typeof source !== 'string') throw argError('ERR_SDVP_ARG', 'source', 'a string', source);
  try {
    return buildVisProgGraph(source, options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      framework: 'visprog',
      steps: [],
      inputs: [],
      diagnostics: [
        makeDiagnostic('error', 'internal', 1, 1, `internal error in the VisProg parser: ${message}`),
      ],
    };
  }
}

function buildVisProgGraph(source: string, options: VisProgParseOptions): StepGraph {
  const registry = options.registry ?? defaultModuleRegistry();
  const inputNames = options.inputs ?? DEFAULT_VISPROG_INPUTS;
  const slots = options.templateSlots;
  const scanner = new VisProgLineScanner(source, 1);
  const diagnostics = scanner.diagnostics;
  const parsed: Array<ParsedLine | BrokenLine> = [];
  const definedOnLines = new Map<string, number>();

  // Pass 1: syntax, line by line; a malformed line is reported and skipped.
  const length = source.length;
  let lineStart = 0;
  let line = 1;
  const hasCarriageReturns = source.includes('\r');
  while (lineStart <= length) {
    let lineEnd = hasCarriageReturns ? lineStart : source.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = length;
    if (hasCarriageReturns) {
      while (lineEnd < length) {
        const code = source.charCodeAt(lineEnd);
        if (code === 10 || code === 13) break;
        lineEnd++;
      }
    }
    scanner.lineStart = lineStart;
    scanner.lineEnd = lineEnd;
    scanner.line = line;
    try {
      const result = scanner.parseLine();
      if (result) parsed.push(result);
    } catch (error) {
      if (error instanceof BrokenLineError) {
        diagnostics.push(
          makeDiagnostic('error', error.syntax.code, line, error.syntax.column, error.syntax.message),
        );
        parsed.push(error.broken);
      } else if (error instanceof LineSyntaxError) {
        diagnostics.push(makeDiagnostic('error', error.code, line, error.column, error.message));
      } else throw error;
    }
    const last = parsed[parsed.length - 1];
    if (last && last.line === line && !definedOnLines.has(last.output)) definedOnLines.set(last.output, line);
    if (lineEnd >= length) break;
    lineStart =
      source.charCodeAt(lineEnd) === 13 && source.charCodeAt(lineEnd + 1) === 10 ? lineEnd + 2 : lineEnd + 1;
    line++;
  }

  // Pass 2: modules, arguments, variables and dependencies, in program order.
  const defined = new Map<string, Definition>();
  for (const name of inputNames) {
    defined.set(name, {
      stepId: null,
      type: 'image',
      line: 0,
      column: 0,
      module: null,
      used: false,
      isInput: true,
    });
  }
  const steps: Step[] = [];
  const resolveVariable = (
    name: string,
    lineNumber: number,
    column: number,
    deps: number[],
    expected: ArgumentSpec | null,
    stepModule: string,
  ): void => {
    const definition = defined.get(name);
    if (definition) {
      definition.used = true;
      if (definition.stepId !== null && !deps.includes(definition.stepId)) deps.push(definition.stepId);
      if (expected && !isCompatibleType(expected.type, definition.type)) {
        const origin = definition.isInput
          ? 'the program input'
          : `the output of ${definition.module} on line ${definition.line}`;
        diagnostics.push(
          makeDiagnostic(
            'error',
            'argument-type',
            lineNumber,
            column,
            `argument '${expected.name}' of ${stepModule} expects ${typeWords(expected.type)}, but ${name} is ${origin}, which is ${typeWords(definition.type)}`,
          ),
        );
      }
      return;
    }
    const laterLine = definedOnLines.get(name);
    if (laterLine !== undefined && laterLine >= lineNumber) {
      const message =
        laterLine === lineNumber
          ? `variable ${name} is used by the step that defines it`
          : `variable ${name} is used before line ${laterLine}, which defines it`;
      diagnostics.push(makeDiagnostic('error', 'used-before-definition', lineNumber, column, message));
      return;
    }
    const suggestion = closestName(name, defined.keys());
    diagnostics.push(
      makeDiagnostic(
        'error',
        'undefined-variable',
        lineNumber,
        column,
        `undefined variable ${name}${suggestion ? `; did you mean ${suggestion}?` : ''}`,
      ),
    );
  };

  for (const entry of parsed) {
    if (!('module' in entry)) {
      // A broken line still defines its output, so its later uses are not reported a second time.
      if (!defined.has(entry.output) || defined.get(entry.output)!.isInput) {
        defined.set(entry.output, {
          stepId: null,
          type: 'any',
          line: entry.line,
          column: entry.outputColumn,
          module: null,
          used: true,
          isInput: false,
        });
      }
      continue;
    }
    const spec = registry.get('visprog', entry.module);
    if (!spec) {
      const suggestion = closestName(entry.module, registry.names('visprog'));
      diagnostics.push(
        makeDiagnostic(
          'error',
          'unknown-module',
          entry.line,
          entry.moduleColumn,
          `unknown module ${entry.module}${suggestion ? `; did you mean ${suggestion}?` : ''}`,
        ),
      );
    }
    const deps: number[] = [];
    const args: Record<string, StepArgument> = {};
    const given = new Set<string>();
    let usesFixedRegion = false;
    for (const argument of entry.args) {
      if (given.has(argument.name)) {
        diagnostics.push(
          makeDiagnostic(
            'error',
            'duplicate-argument',
            entry.line,
            argument.nameColumn,
            `argument '${argument.name}' is given twice; the first value is kept`,
          ),
        );
        continue;
      }
      given.add(argument.name);
      const argSpec = spec ? findArgument(spec, argument.name) : null;
      if (spec && !argSpec) {
        const suggestion = closestName(
          argument.name,
          spec.args.map((a) => a.name),
        );
        diagnostics.push(
          makeDiagnostic(
            'error',
            'unknown-argument',
            entry.line,
            argument.nameColumn,
            `${spec.name} has no argument '${argument.name}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`,
          ),
        );
      }
      args[argument.name] = checkArgument(
        argument,
        argSpec,
        spec,
        entry,
        slots,
        diagnostics,
        (name, column) =>
          resolveVariable(
            name,
            entry.line,
            column,
            deps,
            argSpec?.form === 'variable' ? argSpec : null,
            entry.module,
          ),
      );
      if (
        spec?.name === 'LOC' &&
        argument.name === 'object' &&
        argument.value.kind === 'literal' &&
        VISPROG_LOC_REGIONS.includes(argument.value.value as string)
      ) {
        usesFixedRegion = true;
      }
    }
    if (spec) {
      for (const argSpec of spec.args) {
        if (argSpec.required && !given.has(argSpec.name)) {
          diagnostics.push(
            makeDiagnostic(
              'error',
              'missing-argument',
              entry.line,
              entry.moduleColumn,
              `${spec.name} needs the argument '${argSpec.name}'`,
            ),
          );
        }
      }
    }
    const previous = defined.get(entry.output);
    if (previous && !previous.isInput && previous.stepId !== null) {
      diagnostics.push(
        makeDiagnostic(
          'warning',
          'redefined-variable',
          entry.line,
          entry.outputColumn,
          `${entry.output} was already defined on line ${previous.line}; later steps read this new value`,
        ),
      );
    }
    deps.sort((a, b) => a - b);
    const id = steps.length;
    steps.push({
      id,
      output: entry.output,
      module: entry.module,
      args,
      receiver: null,
      deps,
      line: entry.line,
      column: entry.outputColumn,
      subTask: spec ? spec.subTask : null,
      distillable: spec ? spec.distillable && !usesFixedRegion : false,
      control: NO_CONTROL,
      repeated: false,
    });
    defined.set(entry.output, {
      stepId: id,
      type: spec ? spec.output : 'any',
      line: entry.line,
      column: entry.outputColumn,
      module: entry.module,
      used: false,
      isInput: false,
    });
    // A redefinition shadows the earlier value; if nothing read it, that earlier step was wasted.
    if (previous && !previous.isInput && previous.stepId !== null && !previous.used) {
      reportUnused(entry.output, previous, diagnostics);
    }
  }

  // Outputs nothing reads. The last step and RESULT steps are the program's result, not dead code.
  const lastStep = steps[steps.length - 1];
  for (const [name, definition] of defined) {
    if (definition.used || definition.isInput || definition.stepId === null) continue;
    if (definition.stepId === lastStep?.id || definition.module === 'RESULT') continue;
    reportUnused(name, definition, diagnostics);
  }

  const inputs: string[] = [];
  for (const name of inputNames) if (defined.get(name)?.isInput && defined.get(name)?.used) inputs.push(name);
  return { framework: 'visprog', steps, diagnostics: sortDiagnostics(diagnostics), inputs };
}

function reportUnused(name: string, definition: Definition, diagnostics: Diagnostic[]): void {
  diagnostics.push(
    makeDiagnostic(
      'warning',
      'unused-variable',
      definition.line,
      definition.column,
      `${name} (the output of ${definition.module}) is never used`,
    ),
  );
}

function findArgument(spec: ModuleSpec, name: string): ArgumentSpec | null {
  for (const arg of spec.args) if (arg.name === name || arg.aliases?.includes(name)) return arg;
  return null;
}

/** Checks one argument against its specification and returns its step form (EVAL text becomes an expression). */
function checkArgument(
  argument: ParsedArgument,
  argSpec: ArgumentSpec | null,
  spec: ModuleSpec | undefined,
  entry: ParsedLine,
  slots: Readonly<Record<string, LiteralValue>> | undefined,
  diagnostics: Diagnostic[],
  resolve: (name: string, column: number) => void,
): StepArgument {
  let value = argument.value;
  const moduleName = spec?.name ?? entry.module;
  const typeError = (message: string) =>
    diagnostics.push(makeDiagnostic('error', 'argument-type', entry.line, argument.valueColumn, message));

  if (value.kind === 'template') {
    const filled =
      slots && Object.prototype.hasOwnProperty.call(slots, value.slot) ? slots[value.slot] : undefined;
    if (filled === undefined) {
      diagnostics.push(
        makeDiagnostic(
          'warning',
          'unfilled-template',
          entry.line,
          argument.valueColumn,
          `argument '${argument.name}' is the unfilled template slot {${value.slot}}; give it a value to run the program`,
        ),
      );
      return value;
    }
    value = { kind: 'literal', value: filled };
    argument = { ...argument, value, writtenAs: typeof filled === 'string' ? 'string' : 'number' };
  }

  if (value.kind === 'variable') {
    if (argSpec && (argSpec.form === 'literal' || argSpec.form === 'expression')) {
      typeError(
        `argument '${argSpec.name}' of ${moduleName} must be ${argSpec.form === 'literal' ? 'a literal' : 'an expression string'}, but is the variable ${value.name}`,
      );
      return value;
    }
    resolve(value.name, argument.valueColumn);
    return value;
  }

  if (!argSpec) return value;
  if (argSpec.form === 'variable') {
    typeError(
      `argument '${argSpec.name}' of ${moduleName} must be a variable, but is ${describeWritten(argument)}`,
    );
    return value;
  }
  if (argSpec.form === 'expression') {
    if (value.kind !== 'literal' || typeof value.value !== 'string') {
      typeError(
        `argument '${argSpec.name}' of ${moduleName} must be an expression string, but is ${describeWritten(argument)}`,
      );
      return value;
    }
    const expression = parseEvalExpression(value.value);
    const columnOf = (offset: number) =>
      argument.columnMap
        ? (argument.columnMap[offset] ?? argument.columnMap[argument.columnMap.length - 1] + 1)
        : argument.valueColumn + 1 + offset;
    if (expression.error) {
      diagnostics.push(
        makeDiagnostic(
          'error',
          'malformed-expression',
          entry.line,
          columnOf(expression.error.offset),
          `invalid ${moduleName} expression: ${expression.error.message}`,
        ),
      );
    }
    return expressionArgument(expression, (name, offset) => resolve(name, columnOf(offset)));
  }
  if (value.kind === 'literal' && !literalMatchesType(value.value, argSpec)) {
    typeError(
      `argument '${argSpec.name}' of ${moduleName} must be ${typeWords(argSpec.type)}${argSpec.nullable ? ' or None' : ''}, but is ${describeWritten(argument)}`,
    );
  }
  return value;
}

function expressionArgument(
  expression: ParsedEvalExpression,
  resolve: (name: string, offset: number) => void,
): StepArgument {
  const variables: string[] = [];
  for (const placeholder of expression.placeholders) {
    resolve(placeholder.name, placeholder.offset);
    if (!variables.includes(placeholder.name)) variables.push(placeholder.name);
  }
  return { kind: 'expression', source: expression.source, variables };
}
