// The ViperGPT sandbox holds: escapes are refused, limits end runaway programs, and no string makes run() throw.

import test from 'ava';
import fc from 'fast-check';
import {
  ViperInterpreter,
  type ViperLimits,
  type ViperRunTrace,
  createImage,
  createStubViperModules,
} from '../lib/program';
import { loadCorpus } from './helpers/corpus';
import { viperProgram } from './helpers/viper-program';

function summary(trace: ViperRunTrace): string {
  if (trace.ok) return `ok ${trace.resultRepr}`;
  const [diagnostic] = trace.diagnostics;
  return `${diagnostic.code}@${diagnostic.line}:${diagnostic.column}`;
}

const interpreter = new ViperInterpreter({ modules: createStubViperModules() });

test('escapes to the host are refused before the program runs', async (t) => {
  const cases: Record<string, string> = {
    'return ().__class__': 'forbidden@2:15',
    "return ''.__class__.__mro__[1].__subclasses__()": 'forbidden@2:15',
    "return __import__('os')": 'forbidden@2:12',
    'return __builtins__': 'forbidden@2:12',
    'import os\nreturn 1': 'forbidden@2:5',
    'import math, os\nreturn 1': 'forbidden@2:5',
    'import os.path\nreturn 1': 'forbidden@2:5',
    'from os import path\nreturn 1': 'forbidden@2:5',
    'from subprocess import run\nreturn 1': 'forbidden@2:5',
    "return open('/etc/passwd').read()": 'forbidden@2:12',
    "return eval('1 + 1')": 'forbidden@2:12',
    "exec('x = 1')\nreturn 1": 'forbidden@2:5',
    "return getattr(image, 'cropped_image')": 'forbidden@2:12',
    'return globals()': 'forbidden@2:12',
    'return type(1)': 'forbidden@2:12',
    'return image.__dict__': 'forbidden@2:18',
    'return math.__loader__': 'forbidden@2:17',
  };
  for (const [body, expected] of Object.entries(cases)) {
    const trace = await interpreter.run(viperProgram(body));
    t.is(summary(trace), expected, body);
    t.deepEqual(trace.steps, [], `${body}: nothing ran`);
  }
});

test('JavaScript never shows through: host properties are just missing attributes', async (t) => {
  const cases: Record<string, string> = {
    'return (1).constructor': '!AttributeError',
    "return 'a'.constructor": '!AttributeError',
    'return [].push': '!AttributeError',
    "return 'a'.hasOwnProperty": '!AttributeError',
    'return math.constructor': '!AttributeError',
    "d = {}\nd['__proto__'] = 1\nd['constructor'] = 2\nreturn [d, d.get('toString')]":
      "ok [{'__proto__': 1, 'constructor': 2}, None]",
    "return '{0.__class__}'.format(1)": 'forbidden@2:28',
  };
  for (const [body, expected] of Object.entries(cases)) {
    const trace = await interpreter.run(viperProgram(body));
    const actual =
      trace.ok || trace.diagnostics[0].code !== 'python-error'
        ? summary(trace)
        : `!${/^\w+/.exec(trace.diagnostics[0].message)![0]}`;
    t.is(actual, expected, body);
  }
});

test('Python outside the subset is refused with the construct named', async (t) => {
  const cases: Record<string, [string, RegExp]> = {
    'class A:\n    pass\nreturn 1': [
      'unsupported@2:5',
      /a class definition is outside the sandboxed Python subset/,
    ],
    'try:\n    x = 1\nexcept Exception:\n    x = 2\nreturn x': ['unsupported@2:5', /try\/except/],
    'with image as f:\n    pass\nreturn 1': ['unsupported@2:5', /with statement/],
    'print(1)\nreturn 1': ['unsupported@2:5', /'print'/],
    'x = yield 1\nreturn x': ['unsupported@2:9', /yield/],
    'global q\nreturn 1': ['unsupported@2:5', /'global'/],
    'image.left = 3\nreturn 1': ['unsupported@2:5', /assigning to an attribute/],
    'f = lambda *a: a\nreturn 1': ['unsupported@2:16', /'\*' in a parameter list/],
    'xs = [1]\nreturn max(*xs)': ['unsupported@3:16', /unpacking arguments/],
    'return 1j': ['unsupported@2:12', /complex number/],
    "return b'x'": ['unsupported@2:12', /bytes literal/],
    'return (y := 2)': ['unsupported@2:13', /':='/],
    'assert 1\nreturn 1': ['unsupported@2:5', /assert/],
    'del image\nreturn 1': ['unsupported@2:5', /del/],
    'return isinstance(1, int)': ['unsupported@2:12', /'isinstance'/],
  };
  for (const [body, [expected, message]] of Object.entries(cases)) {
    const trace = await interpreter.run(viperProgram(body));
    t.is(summary(trace), expected, body);
    t.regex(trace.diagnostics[0].message, message, body);
  }
  const percent = await interpreter.run(viperProgram("return '%d' % 5"));
  t.is(summary(percent), 'unsupported@2:17');
  t.regex(percent.diagnostics[0].message, /printf-style '%' string formatting/);
});

test('runaway programs end at a limit, located where they were stopped', async (t) => {
  const cases: Record<string, [string, RegExp]> = {
    'def f(n):\n    return f(n + 1)\nreturn f(0)': [
      'limit@3:16',
      /maximum recursion depth exceeded \(100 nested calls\)/,
    ],
    'f = lambda n: f(n + 1)\nreturn f(0)': ['limit@2:19', /maximum recursion depth/],
    'while True:\n    pass': ['limit@2:5', /while loop ran more than 10,000 iterations/],
    'n = 0\nfor i in range(10 ** 12):\n    n += i\nreturn n': ['limit@4:9', /more than 1,000,000 steps/],
    "return 'a' * 10 ** 9": ['limit@2:16', /size limit/],
    'return [0] * 10 ** 8': ['limit@2:16', /size limit/],
    'return 2 ** 10 ** 9': ['limit@2:14', /more than 14285 bits/],
    'return 10 ** 10000': ['limit@2:15', /more than 14285 bits/],
    'return list(range(10 ** 9))': ['limit@2:12', /size limit/],
    "s = 'ab'\nfor i in range(40):\n    s = s + s\nreturn len(s)": ['limit@4:15', /size limit/],
    // Shared parts: small in memory, exponential to print, compare or hash.
    'x = 1\nfor i in range(60):\n    x = [x] * 3\nreturn str(x)': ['limit@5:12', /more than 1,000,000 parts/],
    't = 1\nfor i in range(60):\n    t = (t, t)\nreturn {t: 1}': [
      'limit@5:12',
      /more than 1,000,000 parts|longer than its time limit/,
    ],
  };
  for (const [body, [expected, message]] of Object.entries(cases)) {
    const trace = await interpreter.run(viperProgram(body));
    t.is(summary(trace), expected, body);
    t.regex(trace.diagnostics[0].message, message, body);
    t.true(trace.durationMs < 5000, `${body} took ${trace.durationMs} ms`);
  }
});

test('the time limit counts interpreter time and leaves module time out', async (t) => {
  const fast = new ViperInterpreter({ limits: { timeLimitMs: 20, maxSteps: 1e9 } });
  const runaway = await fast.run(viperProgram('n = 0\nfor i in range(10 ** 9):\n    n += 1\nreturn n'));
  t.is(runaway.diagnostics[0]?.code, 'limit');
  t.regex(runaway.diagnostics[0].message, /longer than 20 ms/);
  const slowModule = new ViperInterpreter({
    limits: { timeLimitMs: 20 },
    modules: { simple_query: () => new Promise((resolve) => setTimeout(() => resolve('yes'), 60)) },
  });
  const trace = await slowModule.run(viperProgram('p = ImagePatch(image)\nreturn p.simple_query("?")'), {
    image: createImage(4, 4),
  });
  t.true(trace.ok, JSON.stringify(trace.diagnostics));
  t.true(trace.durationMs >= 55);
});

test('limits are validated; a deeply nested value ends in RecursionError as in CPython', async (t) => {
  t.throws(() => new ViperInterpreter({ limits: { maxSteps: -1 } }), { code: 'ERR_SDVP_RANGE' });
  t.throws(() => new ViperInterpreter({ limits: { maxStep: 5 } as unknown as Partial<ViperLimits> }), {
    code: 'ERR_SDVP_OPTION',
  });
  const trace = await interpreter.run(
    viperProgram('x = []\nfor i in range(5000):\n    x = [x]\nreturn str(x)'),
  );
  t.is(trace.diagnostics[0]?.code, 'python-error');
  t.regex(trace.diagnostics[0].message, /^RecursionError/);
});

const LIMITS: Partial<ViperLimits> = {
  maxSteps: 20_000,
  timeLimitMs: 100,
  maxLength: 50_000,
  maxWhileIterations: 2_000,
};
const propertyInterpreter = new ViperInterpreter({ modules: createStubViperModules(), limits: LIMITS });
const image = createImage(16, 12, 3, undefined, 'property');

/** Runs one program; fails the property if run() rejects, or the run ignores its limits. */
async function holdsLimits(source: string): Promise<boolean> {
  const trace = await propertyInterpreter.run(source, { image });
  if (!trace.ok && trace.diagnostics.length === 0) return false;
  for (const diagnostic of trace.diagnostics)
    if (!(diagnostic.line >= 1 && diagnostic.column >= 1)) return false;
  return trace.durationMs < 2_000 && trace.stepsUsed <= LIMITS.maxSteps! + 1024;
}

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
);

const PYTHON_TOKENS = [
  'def execute_command(image):\n',
  '\n',
  '    ',
  '        ',
  'return ',
  'x',
  'y',
  ' = ',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ':',
  ', ',
  'for ',
  ' in ',
  'range(',
  'while ',
  'if ',
  'else',
  'True',
  'None',
  '0',
  '1',
  '7',
  '10 ** 9',
  ' + ',
  ' * ',
  ' ** ',
  ' // ',
  ' % ',
  ' < ',
  ' == ',
  '"a"',
  "f'{x}'",
  'lambda x: ',
  'len(',
  'sorted(',
  'sum(',
  '.append(',
  '.sort(key=',
  'ImagePatch(image)',
  '.find("a")',
  '.exists("a")',
  '.simple_query("q")',
  '[0]',
  '[1:]',
  'not ',
  ' and ',
  'break',
  'def f(n):\n',
  'f(',
  '__class__',
  'import ',
  'math',
  '.',
  '#',
];

const tokenSoup = fc
  .array(fc.constantFrom(...PYTHON_TOKENS), { maxLength: 50 })
  .map((parts) => parts.join(''));

/** Small well-formed programs: loops, recursion and arithmetic that may or may not terminate within the limits. */
const expression: fc.Arbitrary<string> = fc.letrec((tie) => ({
  expression: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('x', 'i', '0', '1', '2', '10', '"s"', '[1, 2]', 'len(xs)'),
    fc
      .tuple(tie('expression'), fc.constantFrom('+', '*', '**', '//', '%', '-', '<', '=='), tie('expression'))
      .map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('expression').map((inner) => `[${inner} for i in range(3)]`),
    tie('expression').map((inner) => `sum([${inner}])`),
    tie('expression').map((inner) => `str(${inner})`),
  ),
})).expression;

const statement = fc.oneof(
  expression.map((value) => `x = ${value}`),
  expression.map((value) => `xs.append(${value})`),
  fc
    .tuple(fc.integer({ min: 0, max: 100_000 }), expression)
    .map(([count, value]) => `for i in range(${count}):\n        x = ${value}`),
  expression.map((condition) => `while ${condition}:\n        x = x + 1`),
  expression.map((value) => `xs = xs + [${value}] * 3`),
  fc.constant('x = [x, x, x]'),
  fc.constant('x = (x, x) == (x, x)'),
);

const generatedProgram = fc
  .array(statement, { minLength: 1, maxLength: 6 })
  .map(
    (statements) =>
      `def execute_command(image):\n    x = 1\n    xs = []\n${statements.map((s) => `    ${s}`).join('\n')}\n    return x\n`,
  );

test('no string makes run() throw: arbitrary text', async (t) => {
  await fc.assert(fc.asyncProperty(anyText, holdsLimits), { numRuns: 300 });
  t.pass();
});

test('no string makes run() throw or outrun its limits: Python token soup', async (t) => {
  await fc.assert(fc.asyncProperty(tokenSoup, holdsLimits), { numRuns: 400 });
  t.pass();
});

test('generated programs end with a value or at a limit, within the limits', async (t) => {
  await fc.assert(fc.asyncProperty(generatedProgram, holdsLimits), { numRuns: 150 });
  t.pass();
});

test('corpus programs cut at any point never make run() throw', async (t) => {
  const programs = loadCorpus()
    .filter((record) => record.framework === 'viper')
    .map((record) => record.program);
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...programs), fc.nat(), fc.nat(), (source, start, length) => {
      const from = start % (source.length + 1);
      return holdsLimits(source.slice(0, from) + source.slice(from + (length % 20)));
    }),
    { numRuns: 300 },
  );
  t.pass();
});
