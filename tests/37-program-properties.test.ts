// Property tests (fast-check): no input string makes the parsers, the EVAL evaluator or the trace importer throw.

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { SdvpError } from '../lib/errors/sdvp-error';
import {
  type StepGraph,
  decomposeProgram,
  evaluateEvalExpression,
  importViperTrace,
  parseEvalExpression,
  parseViperProgram,
  parseVisProgProgram,
} from '../lib/program';
import { loadCorpus } from './helpers/corpus';

const corpus = loadCorpus();
const visprogPrograms = corpus
  .filter((record) => record.framework === 'visprog')
  .map((record) => record.program);
const viperPrograms = corpus.filter((record) => record.framework === 'viper').map((record) => record.program);

/** Any string: arbitrary code units (lone surrogates included), or printable text. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
);

/** Strings made of the tokens each parser cares about, so that near-miss programs are common. */
function tokenSoup(tokens: string[], maxLength = 60): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...tokens), { maxLength }).map((parts) => parts.join(''));
}

const visprogSoup = tokenSoup([
  'BOX0',
  'IMAGE',
  'ANSWER0',
  '=',
  'LOC',
  'VQA',
  'EVAL',
  'RESULT',
  'CROP',
  '(',
  ')',
  ',',
  "'",
  '"',
  '\\',
  '{',
  '}',
  'image',
  'object',
  'question',
  'expr',
  'var',
  'box',
  ' ',
  '\n',
  '\r',
  '\t',
  '-',
  '1',
  '.',
  'e',
  'None',
  'True',
  'xor',
  'if',
  'else',
  'and',
  '>',
]);

const viperSoup = tokenSoup([
  'def execute_command(image):',
  '\n',
  '    ',
  '        ',
  'image_patch',
  ' = ',
  'ImagePatch(image)',
  '.find',
  '.exists',
  '.simple_query',
  '(',
  ')',
  '"x"',
  "f'{a}'",
  ', ',
  'for ',
  ' in ',
  'if ',
  'elif ',
  'else',
  ':',
  'lambda p: ',
  '[',
  ']',
  '{',
  '}',
  'return ',
  'while ',
  'x',
  '*',
  '=',
  'and ',
  'not ',
  '\\',
  '#',
  'try:',
  'except',
  'with ',
  ' as ',
  'class ',
  '@',
  'import ',
  'yield ',
  ':=',
]);

/** A corpus program with random characters inserted, deleted or replaced. */
function mutated(programs: string[]): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom(...programs),
      fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.string({ unit: 'grapheme-ascii', maxLength: 3 })), {
        maxLength: 6,
      }),
    )
    .map(([program, edits]) => {
      let text = program;
      for (const [position, length, insert] of edits) {
        const at = text.length === 0 ? 0 : position % text.length;
        text = text.slice(0, at) + insert + text.slice(at + length);
      }
      return text;
    });
}

/** The invariants every graph keeps, whatever its input. */
function checkGraph(t: ExecutionContext, source: string, graph: StepGraph): boolean {
  const lineCount = source.split(/\r\n|\r|\n/).length;
  for (const diagnostic of graph.diagnostics) {
    if (diagnostic.code === 'internal')
      return t.fail(`internal error for ${JSON.stringify(source)}: ${diagnostic.message}`) as never;
    if (!(diagnostic.line >= 1 && diagnostic.line <= lineCount && diagnostic.column >= 1)) {
      return t.fail(
        `bad position ${diagnostic.line}:${diagnostic.column} for ${JSON.stringify(source)}`,
      ) as never;
    }
  }
  for (const [index, step] of graph.steps.entries()) {
    if (step.id !== index) return false;
    if (!step.deps.every((dep) => Number.isInteger(dep) && dep >= 0 && dep < graph.steps.length))
      return false;
    if (step.line < 1 || step.column < 1 || step.line > lineCount) return false;
  }
  return true;
}

const runs = { numRuns: Number(process.env.SDVP_PROPERTY_RUNS ?? 300) };

test('parseVisProgProgram never throws, whatever the string', (t) => {
  fc.assert(
    fc.property(fc.oneof(anyText, visprogSoup, mutated(visprogPrograms)), (source) =>
      checkGraph(t, source, parseVisProgProgram(source)),
    ),
    runs,
  );
  t.pass();
});

test('parseViperProgram never throws, whatever the string', (t) => {
  fc.assert(
    fc.property(fc.oneof(anyText, viperSoup, mutated(viperPrograms)), (source) =>
      checkGraph(t, source, parseViperProgram(source)),
    ),
    runs,
  );
  t.pass();
});

test('decomposeProgram never throws, with or without a framework', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(anyText, visprogSoup, viperSoup),
      fc.constantFrom(undefined, 'visprog' as const, 'viper' as const),
      (source, framework) => checkGraph(t, source, decomposeProgram(source, { framework })),
    ),
    runs,
  );
  t.pass();
});

const evalSoup = tokenSoup(
  [
    '{A}',
    '{B}',
    "'yes'",
    '"no"',
    '1',
    '0',
    '2.5',
    ' ',
    'and',
    'or',
    'not',
    'xor',
    'if',
    'else',
    '==',
    '>',
    '<=',
    '+',
    '-',
    '*',
    '/',
    '//',
    '%',
    '**',
    '(',
    ')',
    'True',
    'None',
    'in',
    'is',
    '{',
    '\\',
    "'",
  ],
  20,
);

test('EVAL: parsing never throws; evaluation returns a value or throws an SdvpError', (t) => {
  const value = fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.boolean(),
    fc.constantFrom('yes', 'no', 'red', ''),
    fc.constant(null),
  );
  fc.assert(
    fc.property(fc.oneof(anyText, evalSoup), value, value, (source, a, b) => {
      const parsed = parseEvalExpression(source);
      if ((parsed.root === null) === (parsed.error === null)) return false;
      try {
        const result = evaluateEvalExpression(parsed, { A: a, B: b });
        return result === null || ['number', 'string', 'boolean'].includes(typeof result);
      } catch (error) {
        return error instanceof SdvpError;
      }
    }),
    runs,
  );
  t.pass();
});

test('importViperTrace never throws, on any text or any JSON records', (t) => {
  const field = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom('find', 'simple_query', 'ImagePatch', 'nope'),
  );
  const record = fc.record(
    {
      program: fc.oneof(fc.constantFrom('p', 'q'), fc.jsonValue({ maxDepth: 1 })),
      module: field,
      image: fc.oneof(field, fc.record({ ref: field, box: field, height: field }, { requiredKeys: [] })),
      patch: fc.oneof(field, fc.record({ left: field, lower: field, right: field, upper: field })),
      args: field,
      source: fc.oneof(field, viperSoup),
      step: field,
      line: field,
      column: field,
      seq: field,
      error: field,
      duration_ms: field,
    },
    { requiredKeys: [] },
  );
  const text = fc.oneof(
    anyText,
    fc.array(record, { maxLength: 8 }).map((records) => records.map((r) => JSON.stringify(r)).join('\n')),
  );
  fc.assert(
    fc.property(text, (trace) => {
      const result = importViperTrace(trace);
      return Array.isArray(result.traces) && result.diagnostics.every((d) => d.line >= 1);
    }),
    runs,
  );
  t.pass();
});

/** Writes a string as a Python literal with the given quote. */
function pythonString(value: string, quote: "'" | '"'): string {
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(quote === "'" ? /'/g : /"/g, `\\${quote}`);
  return `${quote}${escaped}${quote}`;
}

test('generated well-formed VisProg programs parse back to exactly the steps they were made of', (t) => {
  const stepArbitrary = fc.record({
    module: fc.constantFrom('VQA', 'LOC'),
    text: fc.string({ unit: 'binary-ascii', maxLength: 30 }),
    quote: fc.constantFrom("'" as const, '"' as const),
    spaces: fc.constantFrom('', ' ', '  '),
  });
  fc.assert(
    fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 8 }), (steps) => {
      const lines = steps.map((step, i) => {
        const textArgument = step.module === 'VQA' ? 'question' : 'object';
        const s = step.spaces;
        return `OUT${i}${s}=${s}${step.module}(image=IMAGE,${s}${textArgument}=${pythonString(step.text, step.quote)})${s}`;
      });
      lines.push(`FINAL=RESULT(var=OUT${steps.length - 1})`);
      const graph = parseVisProgProgram(lines.join('\n'));
      if (graph.diagnostics.some((d) => d.severity === 'error')) return false;
      return steps.every((step, i) => {
        const parsed = graph.steps[i];
        const textArgument = step.module === 'VQA' ? 'question' : 'object';
        const argument = parsed.args[textArgument];
        return parsed.module === step.module && argument.kind === 'literal' && argument.value === step.text;
      });
    }),
    runs,
  );
  t.pass();
});
