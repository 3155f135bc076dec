// VisProg parser: hand-written programs with their expected step graphs, and each kind of diagnostic.

import test from 'ava';
import {
  type Diagnostic,
  type StepGraph,
  createModuleRegistry,
  parseVisProgProgram,
  stepAncestors,
  stepDependents,
  stepGraphToJson,
} from '../lib/program';

const GQA = [
  "BOX0=LOC(image=IMAGE,object='TOP')",
  'IMAGE0=CROP(image=IMAGE,box=BOX0)',
  "BOX1=LOC(image=IMAGE0,object='vehicle')",
  'ANSWER0=COUNT(box=BOX1)',
  `ANSWER1=EVAL(expr="'yes' if {ANSWER0} > 0 else 'no'")`,
  'FINAL_RESULT=RESULT(var=ANSWER1)',
].join('\n');

function codes(graph: StepGraph): string[] {
  return graph.diagnostics.map((d) => `${d.severity}:${d.code}@${d.line}:${d.column}`);
}

function only(graph: StepGraph, code: Diagnostic['code']): Diagnostic {
  const found = graph.diagnostics.filter((d) => d.code === code);
  if (found.length !== 1) throw new Error(`expected one ${code}, got ${JSON.stringify(graph.diagnostics)}`);
  return found[0];
}

test('a GQA program becomes the expected step graph', (t) => {
  const graph = parseVisProgProgram(GQA);
  t.deepEqual(stepGraphToJson(graph), {
    framework: 'visprog',
    steps: [
      {
        id: 0,
        output: 'BOX0',
        module: 'LOC',
        args: { image: { kind: 'variable', name: 'IMAGE' }, object: { kind: 'literal', value: 'TOP' } },
        deps: [],
        line: 1,
        column: 1,
        subTask: 'grounding',
        distillable: false, // TOP is a fixed image half: no detector runs
        control: [],
        receiver: null,
      },
      {
        id: 1,
        output: 'IMAGE0',
        module: 'CROP',
        args: { image: { kind: 'variable', name: 'IMAGE' }, box: { kind: 'variable', name: 'BOX0' } },
        deps: [0],
        line: 2,
        column: 1,
        subTask: 'image-op',
        distillable: false,
        control: [],
        receiver: null,
      },
      {
        id: 2,
        output: 'BOX1',
        module: 'LOC',
        args: { image: { kind: 'variable', name: 'IMAGE0' }, object: { kind: 'literal', value: 'vehicle' } },
        deps: [1],
        line: 3,
        column: 1,
        subTask: 'grounding',
        distillable: true,
        control: [],
        receiver: null,
      },
      {
        id: 3,
        output: 'ANSWER0',
        module: 'COUNT',
        args: { box: { kind: 'variable', name: 'BOX1' } },
        deps: [2],
        line: 4,
        column: 1,
        subTask: 'logic',
        distillable: false,
        control: [],
        receiver: null,
      },
      {
        id: 4,
        output: 'ANSWER1',
        module: 'EVAL',
        args: {
          expr: { kind: 'expression', source: "'yes' if {ANSWER0} > 0 else 'no'", variables: ['ANSWER0'] },
        },
        deps: [3],
        line: 5,
        column: 1,
        subTask: 'logic',
        distillable: false,
        control: [],
        receiver: null,
      },
      {
        id: 5,
        output: 'FINAL_RESULT',
        module: 'RESULT',
        args: { var: { kind: 'variable', name: 'ANSWER1' } },
        deps: [4],
        line: 6,
        column: 1,
        subTask: 'logic',
        distillable: false,
        control: [],
        receiver: null,
      },
    ],
    diagnostics: [],
  });
  t.deepEqual(graph.inputs, ['IMAGE']);
  t.deepEqual(stepDependents(graph, 0), [1]);
  t.deepEqual(stepAncestors(graph, 5), [0, 1, 2, 3, 4]);
});

test('an NLVR program reads LEFT and RIGHT, and EVAL depends on every placeholder', (t) => {
  const graph = parseVisProgProgram(
    [
      "ANSWER0=VQA(image=LEFT,question='Is there a red convertible in the image?')",
      "ANSWER1=VQA(image=RIGHT,question='Is there a red convertible in the image?')",
      "ANSWER2=EVAL(expr='{ANSWER0} xor {ANSWER1}')",
      'FINAL_ANSWER=RESULT(var=ANSWER2)',
    ].join('\n'),
  );
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(graph.inputs, ['LEFT', 'RIGHT']);
  t.deepEqual(
    graph.steps.map((step) => [step.module, step.deps, step.subTask, step.distillable]),
    [
      ['VQA', [], 'vqa', true],
      ['VQA', [], 'vqa', true],
      ['EVAL', [0, 1], 'logic', false],
      ['RESULT', [2], 'logic', false],
    ],
  );
});

test('blank lines, trailing spaces, spaces around tokens and CRLF are tolerated', (t) => {
  const graph = parseVisProgProgram(
    "\r\n  BOX0 = LOC( image = IMAGE , object = 'cat' ,)   \r\n\r\n\t\nANSWER0=COUNT(box=BOX0)  \r\nFINAL=RESULT(var=ANSWER0)\n\n",
  );
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(
    graph.steps.map((step) => [step.output, step.module, step.line, step.column, step.deps]),
    [
      ['BOX0', 'LOC', 2, 3, []],
      ['ANSWER0', 'COUNT', 5, 1, [0]],
      ['FINAL', 'RESULT', 6, 1, [1]],
    ],
  );
});

test('literal values: both quotes with escapes, numbers, None, True and False', (t) => {
  const registry = createModuleRegistry().register({
    framework: 'visprog',
    name: 'PROBE',
    args: [
      { name: 'a', type: 'text', form: 'literal', required: true },
      { name: 'b', type: 'text', form: 'literal', required: true },
      { name: 'c', type: 'number', form: 'literal', required: true },
      { name: 'd', type: 'number', form: 'literal', required: true },
      { name: 'e', type: 'text', form: 'literal', required: true, nullable: true },
      { name: 'f', type: 'boolean', form: 'literal', required: true },
      { name: 'g', type: 'boolean', form: 'literal', required: true },
    ],
    output: 'any',
    subTask: 'logic',
    neural: false,
    distillable: false,
    description: 'test module',
  });
  const graph = parseVisProgProgram(
    `X=PROBE(a='it\\'s a "cat"\\n',b="tab\\there \\x41\\u00e9",c=-12,d=2.5e-1,e=None,f=True,g=False)`,
    { registry },
  );
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(graph.steps[0].args, {
    a: { kind: 'literal', value: 'it\'s a "cat"\n' },
    b: { kind: 'literal', value: 'tab\there Aé' },
    c: { kind: 'literal', value: -12 },
    d: { kind: 'literal', value: 0.25 },
    e: { kind: 'literal', value: null },
    f: { kind: 'literal', value: true },
    g: { kind: 'literal', value: false },
  });
});

test('an unknown module is reported with a suggestion, and the step is kept as not distillable', (t) => {
  const graph = parseVisProgProgram("BOX0=LCO(image=IMAGE,object='cat')\nN=COUNT(box=BOX0)");
  const diagnostic = only(graph, 'unknown-module');
  t.is(diagnostic.severity, 'error');
  t.is(diagnostic.line, 1);
  t.is(diagnostic.column, 6);
  t.regex(diagnostic.message, /unknown module LCO; did you mean LOC\?/);
  t.is(graph.steps[0].subTask, null);
  t.false(graph.steps[0].distillable);
  t.deepEqual(graph.steps[1].deps, [0]);
});

test('wrong, missing and repeated arguments', (t) => {
  const graph = parseVisProgProgram(
    "A=VQA(Image=IMAGE,question='what?')\nB=VQA(image=IMAGE,question='a',question='b')\nC=COUNT(box=A,extra=1)",
  );
  t.deepEqual(codes(graph), [
    'error:missing-argument@1:3',
    'error:unknown-argument@1:7',
    'warning:unused-variable@2:1',
    'error:duplicate-argument@2:32',
    'error:argument-type@3:13',
    'error:unknown-argument@3:15',
  ]);
  t.regex(graph.diagnostics[1].message, /VQA has no argument 'Image'; did you mean 'image'\?/);
  t.regex(graph.diagnostics[4].message, /argument 'box' of COUNT expects boxes, but A is the output of VQA/);
  t.deepEqual(graph.steps[1].args.question, { kind: 'literal', value: 'a' });
});

test('variables: undefined, used before their definition, redefined, unused', (t) => {
  const graph = parseVisProgProgram(
    [
      "BOX0=LOC(image=IMAGE1,object='cat')", // IMAGE1 is defined on line 3
      "BOX0=LOC(image=IMAGE,object='dog')", // redefines BOX0, and the first BOX0 was never read
      'IMAGE1=CROP(image=IMAGE,box=BOX0)',
      "UNUSED=VQA(image=IMAGE1,question='q')",
      'FINAL=RESULT(var=ANSWER)',
    ].join('\n'),
  );
  t.deepEqual(codes(graph), [
    'warning:unused-variable@1:1',
    'error:used-before-definition@1:16',
    'warning:redefined-variable@2:1',
    'warning:unused-variable@4:1',
    'error:undefined-variable@5:18',
  ]);
  t.regex(only(graph, 'used-before-definition').message, /IMAGE1 is used before line 3/);
  t.deepEqual(graph.steps[2].deps, [1]); // the second BOX0
  const selfReference = parseVisProgProgram('X=CROP(image=X,box=X)');
  t.regex(selfReference.diagnostics[0].message, /X is used by the step that defines it/);
});

test('a malformed line is reported, skipped, and parsing goes on with the next line', (t) => {
  const graph = parseVisProgProgram(
    [
      "BOX0=LOC(image=IMAGE,object='cat'", // missing ')'
      'IMAGE0=CROP(image=IMAGE,box=BOX0)', // BOX0 came from a broken line: no second report
      'this is not a step',
      "A=VQA(image=IMAGE0,question='unterminated)",
      'N=COUNT(box=12abc)',
      "B=VQA(image=IMAGE0,question='q') extra",
      "C=VQA(image=IMAGE0 question='q')",
      "D=VQA(image=IMAGE0,question='q')",
    ].join('\n'),
  );
  t.deepEqual(codes(graph), [
    'error:syntax@1:34',
    'error:syntax@3:6',
    'error:malformed-literal@4:29',
    'error:malformed-literal@5:13',
    'error:syntax@6:34',
    'error:syntax@7:20',
  ]);
  t.deepEqual(
    graph.steps.map((step) => [step.output, step.deps]),
    [
      ['IMAGE0', []],
      ['D', [0]],
    ],
  );
  t.regex(
    graph.diagnostics[0].message,
    /expected ',' or '\)' after the value of 'object', found the end of the line/,
  );
  t.regex(graph.diagnostics[1].message, /expected '=' after the output variable 'this'/);
  t.regex(graph.diagnostics[3].message, /'12abc' is not a valid number/);
  t.regex(graph.diagnostics[5].message, /expected ',' or '\)' after the value of 'image'/);
});

test('an unescaped quote inside a string is reported and read as part of the text', (t) => {
  const graph = parseVisProgProgram("A=VQA(image=IMAGE,question='Is it Disney's Frozen?')");
  const diagnostic = only(graph, 'malformed-literal');
  t.is(diagnostic.column, 41);
  t.deepEqual(graph.steps[0].args.question, { kind: 'literal', value: "Is it Disney's Frozen?" });
});

test('EVAL expressions are checked, with the column of the fault inside the string', (t) => {
  const graph = parseVisProgProgram(
    [
      "A=VQA(image=IMAGE,question='q')",
      `B=EVAL(expr="'yes' if {A} > 0 and else 'no'")`,
      `C=EVAL(expr="{A} + {MISSING}")`,
      "D=EVAL(expr='\\'x\\' if {A} @ 2 else 1')",
      'E=EVAL(expr=A)',
      'F=RESULT(var=C)',
    ].join('\n'),
  );
  t.deepEqual(codes(graph), [
    'warning:unused-variable@2:1',
    'error:malformed-expression@2:35',
    'error:undefined-variable@3:20',
    'warning:unused-variable@4:1',
    'error:malformed-expression@4:27',
    'warning:unused-variable@5:1',
    'error:argument-type@5:13',
  ]);
  t.regex(graph.diagnostics[1].message, /expected an expression after 'and', found 'else'/);
  t.regex(graph.diagnostics[4].message, /'@' is not supported/);
  t.deepEqual(graph.steps[2].args.expr, {
    kind: 'expression',
    source: '{A} + {MISSING}',
    variables: ['A', 'MISSING'],
  });
});

test('argument forms: variables where variables belong, literals of the right type elsewhere', (t) => {
  const graph = parseVisProgProgram(
    [
      "A=VQA(image='photo.jpg',question=IMAGE)",
      'B=LOC(image=IMAGE,object=3)',
      'C=CROP(image=IMAGE,box=IMAGE)',
      'D=SELECT(image=IMAGE,object=C,query=None,category=None)',
    ].join('\n'),
  );
  t.deepEqual(
    graph.diagnostics.filter((d) => d.code === 'argument-type').map((d) => [d.line, d.column]),
    [
      [1, 13],
      [1, 34],
      [2, 26],
      [3, 24],
      [4, 29],
      [4, 37],
    ],
  );
  t.regex(
    graph.diagnostics.find((d) => d.line === 1 && d.column === 13)!.message,
    /must be a variable, but is the string 'photo.jpg'/,
  );
  t.regex(
    graph.diagnostics.find((d) => d.line === 1 && d.column === 34)!.message,
    /must be a literal, but is the variable IMAGE/,
  );
});

test('template slots are reported when unfilled and replaced when given', (t) => {
  const program = "LIST0=LIST(query='colors',max={list_max})\nFINAL=RESULT(var=LIST0)";
  const unfilled = parseVisProgProgram(program);
  t.deepEqual(codes(unfilled), ['warning:unfilled-template@1:31']);
  t.deepEqual(unfilled.steps[0].args.max, { kind: 'template', slot: 'list_max' });
  const filled = parseVisProgProgram(program, { templateSlots: { list_max: 20 } });
  t.deepEqual(filled.diagnostics, []);
  t.deepEqual(filled.steps[0].args.max, { kind: 'literal', value: 20 });
});

test('the inputs option decides which variables exist before the first step', (t) => {
  const graph = parseVisProgProgram("A=VQA(image=PHOTO,question='q')", { inputs: ['PHOTO'] });
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(graph.inputs, ['PHOTO']);
  t.is(only(parseVisProgProgram("A=VQA(image=PHOTO,question='q')"), 'undefined-variable').column, 13);
});

test('the empty program and a program of blank lines parse to no steps and no diagnostics', (t) => {
  for (const source of ['', '\n\n', '   \r\n\t']) {
    const graph = parseVisProgProgram(source);
    t.deepEqual(graph.steps, []);
    t.deepEqual(graph.diagnostics, []);
  }
});

test('a non-string source is a usage error, not a diagnostic', (t) => {
  t.throws(() => parseVisProgProgram(42 as unknown as string), { code: 'ERR_SDVP_ARG' } as never);
});
