// Sub-task instances from VisProg runs and imported ViperGPT traces; identical inputs share a content hash.

import test from 'ava';
import {
  type RasterImage,
  createImage,
  dedupeSubTaskInstances,
  importViperTrace,
  runVisProgProgram,
  subTaskInstances,
} from '../lib/program';

const GQA = [
  "BOX0=LOC(image=IMAGE,object='TOP')",
  'IMAGE0=CROP(image=IMAGE,box=BOX0)',
  "BOX1=LOC(image=IMAGE0,object='umbrella')",
  'IMAGE1=CROP(image=IMAGE0,box=BOX1)',
  "ANSWER0=VQA(image=IMAGE1,question='Who is carrying the umbrella?')",
  'FINAL_RESULT=RESULT(var=ANSWER0)',
].join('\n');

const modules = {
  LOC: () => [[4, 2, 8, 6]],
  VQA: () => 'a woman',
};

test('a VisProg trace yields its distillable calls, with image reference, crop box and text', async (t) => {
  const image = createImage(40, 30, 3, undefined, 'coco/000123.jpg');
  const trace = await runVisProgProgram(GQA, { IMAGE: image }, { modules, programId: 'gqa-2' });
  t.true(trace.ok);
  const instances = subTaskInstances(trace);
  // LOC 'TOP' is a fixed region (no detector), CROP/RESULT are not neural: two instances remain.
  t.deepEqual(
    instances.map(({ hash, ...rest }) => rest),
    [
      {
        framework: 'visprog',
        module: 'LOC',
        subTask: 'grounding',
        input: { image: { ref: 'coco/000123.jpg', box: [0, 0, 40, 18] }, text: 'umbrella', args: {} },
        programId: 'gqa-2',
        stepId: 2,
        line: 3,
        output: [[4, 2, 8, 6]], // in the pixels of the source image: the crop starts at (0, 0)
      },
      {
        framework: 'visprog',
        module: 'VQA',
        subTask: 'vqa',
        input: {
          image: { ref: 'coco/000123.jpg', box: [3, 1, 9, 7] },
          text: 'Who is carrying the umbrella?',
          args: {},
        },
        programId: 'gqa-2',
        stepId: 4,
        line: 5,
        output: 'a woman',
      },
    ],
  );
  for (const instance of instances) t.regex(instance.hash, /^[0-9a-f]{64}$/);
});

test('identical instances share a hash across programs; any change of input changes it', async (t) => {
  const image = createImage(40, 30, 3, undefined, 'same.jpg');
  const run = (program: string, id: string, ref = image) =>
    runVisProgProgram(program, { IMAGE: ref }, { modules, programId: id });
  const a = subTaskInstances(await run(GQA, 'a'));
  const b = subTaskInstances(await run(GQA, 'b'));
  const otherQuestion = subTaskInstances(await run(GQA.replace('Who is carrying', 'Who holds'), 'c'));
  const otherImage = subTaskInstances(await run(GQA, 'd', createImage(40, 30, 3, undefined, 'other.jpg')));
  t.deepEqual(
    a.map((instance) => instance.hash),
    b.map((instance) => instance.hash),
  );
  t.is(otherQuestion[0].hash, a[0].hash, 'the LOC call is the same');
  t.not(otherQuestion[1].hash, a[1].hash);
  t.not(otherImage[1].hash, a[1].hash);
  const { unique, occurrences } = dedupeSubTaskInstances([...a, ...b, ...otherQuestion, ...otherImage]);
  t.is(unique.length, 5);
  t.is(occurrences.get(a[0].hash), 3);
  t.is(occurrences.get(a[1].hash), 2);
  t.is(unique[0].programId, 'a');
});

test('an image without a ref is identified by a digest of its pixels', async (t) => {
  const pixels = new Uint8Array(4 * 4 * 3).fill(7);
  const run = async (data: Uint8Array) =>
    subTaskInstances(
      await runVisProgProgram(
        "A=VQA(image=IMAGE,question='q')",
        { IMAGE: createImage(4, 4, 3, data) },
        { modules },
      ),
    );
  const first = await run(pixels);
  const same = await run(new Uint8Array(pixels));
  const other = await run(new Uint8Array(4 * 4 * 3).fill(8));
  t.regex(first[0].input.image!.ref, /^sha256:[0-9a-f]{64}$/);
  t.is(first[0].hash, same[0].hash);
  t.not(first[0].hash, other[0].hash);
});

test('candidate regions and category lists become data in source pixels', async (t) => {
  const image = createImage(20, 20, 3, undefined, 'faces.jpg');
  const trace = await runVisProgProgram(
    "OBJ0=FACEDET(image=IMAGE)\nOBJ1=SELECT(image=IMAGE,object=OBJ0,query='Nicole Kidman',category=None)",
    { IMAGE: image },
    {
      modules: {
        FACEDET: () => [
          { box: [1, 1, 5, 5], category: 'face', mask: new Uint8Array(400) },
          { box: [10, 10, 14, 14] },
        ],
        SELECT: ({ object }) => [(object as unknown[])[0]],
      },
    },
  );
  const instances = subTaskInstances(trace);
  t.deepEqual(
    instances.map((instance) => [instance.module, instance.input.text, instance.input.args, instance.output]),
    [
      [
        'FACEDET',
        null,
        {},
        [
          [1, 1, 5, 5],
          [10, 10, 14, 14],
        ],
      ],
      [
        'SELECT',
        'Nicole Kidman',
        {
          object: [
            [1, 1, 5, 5],
            [10, 10, 14, 14],
          ],
          category: null,
        },
        [[1, 1, 5, 5]],
      ],
    ],
  );
});

const VIPER_PROGRAM = [
  'def execute_command(image)->str:',
  '    image_patch = ImagePatch(image)',
  '    toy_patches = image_patch.find("toy")',
  '    for toy_patch in toy_patches:',
  '        if toy_patch.simple_query("Is the toy wearing a shirt?") == "yes":',
  '            return toy_patch.simple_query("What toy is wearing a shirt?")',
  '    return toy_patches[0].simple_query("What toy is wearing a shirt?")',
].join('\n');

function jsonl(records: object[]): string {
  return records.map((record) => JSON.stringify(record)).join('\n');
}

test('ViperGPT traces are imported, matched to steps and turned into sub-task instances', (t) => {
  const text = jsonl([
    { program: 'gqa-4', source: VIPER_PROGRAM, result: 'teddy bear' },
    { program: 'gqa-4', seq: 1, module: 'ImagePatch', image: { ref: 'n1.jpg' }, args: {}, line: 2 },
    { program: 'gqa-4', seq: 2, module: 'find', image: { ref: 'n1.jpg' }, args: ['toy'], line: 3, result: 2 },
    {
      program: 'gqa-4',
      seq: 3,
      module: 'simple_query',
      image: { ref: 'n1.jpg', box: [10, 20, 50, 80] },
      args: { question: 'Is the toy wearing a shirt?' },
      result: 'no',
      line: 5,
    },
    {
      program: 'gqa-4',
      seq: 4,
      module: 'simple_query',
      image: { ref: 'n1.jpg', height: 100 },
      patch: { left: 60, lower: 10, right: 90, upper: 70 },
      args: { question: 'Is the toy wearing a shirt?' },
      result: 'yes',
      line: 5,
      duration_ms: 12.5,
    },
    {
      program: 'gqa-4',
      seq: 5,
      module: 'simple_query',
      image: { ref: 'n1.jpg', height: 100 },
      patch: { left: 60, lower: 10, right: 90, upper: 70 },
      args: { question: 'What toy is wearing a shirt?' },
      result: 'teddy bear',
      line: 6,
      column: 32,
    },
  ]);
  const { traces, diagnostics } = importViperTrace(text);
  t.deepEqual(diagnostics, []);
  t.is(traces.length, 1);
  const [trace] = traces;
  t.is(trace.programId, 'gqa-4');
  t.true(trace.ok);
  t.is(trace.result, 'teddy bear');
  t.is(trace.durationMs, 12.5);
  t.deepEqual(
    trace.steps.map((step) => [step.stepId, step.module, step.line]),
    [
      [0, 'ImagePatch', 2],
      [1, 'find', 3],
      [2, 'simple_query', 5],
      [2, 'simple_query', 5],
      [3, 'simple_query', 6],
    ],
  );
  const instances = subTaskInstances(trace);
  t.deepEqual(
    instances.map((instance) => [
      instance.module,
      instance.subTask,
      instance.input.image,
      instance.input.text,
      instance.output,
    ]),
    [
      ['find', 'grounding', { ref: 'n1.jpg', box: null }, 'toy', 2],
      ['simple_query', 'vqa', { ref: 'n1.jpg', box: [10, 20, 50, 80] }, 'Is the toy wearing a shirt?', 'no'],
      ['simple_query', 'vqa', { ref: 'n1.jpg', box: [60, 30, 90, 90] }, 'Is the toy wearing a shirt?', 'yes'],
      [
        'simple_query',
        'vqa',
        { ref: 'n1.jpg', box: [60, 30, 90, 90] },
        'What toy is wearing a shirt?',
        'teddy bear',
      ],
    ],
  );
  t.is(new Set(instances.map((instance) => instance.hash)).size, 4);
});

test('the same call recorded twice, in two programs, gives one hash', (t) => {
  const call = {
    module: 'verify_property',
    image: { ref: 'x.jpg', box: [0, 0, 5, 5] },
    args: ['cup', 'red'],
  };
  const { traces } = importViperTrace(
    jsonl([
      { program: 'p', ...call },
      { program: 'q', ...call, result: true },
    ]),
  );
  const [first, second] = traces.map((trace) => subTaskInstances(trace)[0]);
  t.is(first.hash, second.hash);
  t.deepEqual(first.input, {
    image: { ref: 'x.jpg', box: [0, 0, 5, 5] },
    text: 'red',
    args: { object_name: 'cup' },
  });
  t.is(first.stepId, null, 'no program source: the call is unmatched');
  t.is(second.output, true);
});

test('bad records are reported by line and skipped; failed calls fail their program', (t) => {
  const text = [
    '{"program": "a", "module": "find", "image": {"ref": "i.jpg"}, "args": {"object_name": "cat"}}',
    'not json',
    '[1, 2]',
    '{"module": "find"}',
    '{"program": "a", "module": "find", "image": {"box": [0, 0, 1, 1]}}',
    '{"program": "a", "module": "find", "image": {"ref": "i.jpg", "box": [0, 0]}}',
    '{"program": "a", "module": "simple_query", "patch": {"left": 1, "lower": 1, "right": 2, "upper": 2}}',
    '{"program": "a", "module": "find", "args": ["a", "b"]}',
    '{"program": "a", "module": "teleport", "args": {"where": "moon"}}',
    '{"program": "a", "module": "exists", "image": {"ref": "i.jpg"}, "args": ["dog"], "error": "CUDA out of memory"}',
    '{"program": "a", "module": "find", "line": 0}',
    '',
  ].join('\n');
  const { traces, diagnostics } = importViperTrace(text);
  t.deepEqual(
    diagnostics.map((d) => [d.line, d.severity, d.code]),
    [
      [2, 'error', 'syntax'],
      [3, 'error', 'syntax'],
      [4, 'error', 'syntax'],
      [5, 'error', 'syntax'],
      [6, 'error', 'syntax'],
      [7, 'error', 'syntax'],
      [8, 'error', 'syntax'],
      [9, 'warning', 'unknown-module'],
      [11, 'error', 'syntax'],
    ],
  );
  t.regex(diagnostics[1].message, /must be a JSON object/);
  t.regex(diagnostics[4].message, /'image.box' must be/);
  t.regex(diagnostics[5].message, /'patch' needs 'image'/);
  t.regex(diagnostics[6].message, /find takes at most 1 arguments, but the record has 2/);
  t.regex(diagnostics[8].message, /'line' must be an integer of at least 1/);
  const [trace] = traces;
  t.deepEqual(
    trace.steps.map((step) => step.module),
    ['find', 'teleport', 'exists'],
  );
  t.false(trace.ok);
  t.deepEqual(trace.error, { stepId: null, message: 'exists: CUDA out of memory' });
  t.deepEqual(
    subTaskInstances(trace).map((instance) => [instance.module, instance.output]),
    [
      ['find', undefined],
      ['exists', undefined],
    ],
  );
});

test('calls are matched by step id when given, and mismatches are reported', (t) => {
  const { traces, diagnostics } = importViperTrace(
    jsonl([
      { program: 'p', module: 'find', step: 1 },
      { program: 'p', module: 'find', step: 2 },
      { program: 'p', module: 'simple_query', line: 40 },
    ]),
    { programs: { p: VIPER_PROGRAM } },
  );
  t.deepEqual(
    traces[0].steps.map((step) => step.stepId),
    [1, null, null],
  );
  t.deepEqual(
    diagnostics.map((d) => [d.line, d.severity]),
    [
      [2, 'warning'],
      [3, 'warning'],
    ],
  );
  t.regex(diagnostics[0].message, /step 2 of the program calls simple_query, not find/);
  t.regex(diagnostics[1].message, /no simple_query call on line 40/);
});

test('instances keep the raster crop of an interpreter run distinct from the whole image', async (t) => {
  const image: RasterImage = createImage(10, 10, 1, undefined, 'gray.png');
  const trace = await runVisProgProgram(
    "A=VQA(image=IMAGE,question='q')\nB=LOC(image=IMAGE,object='x')\nC=CROP(image=IMAGE,box=B)\nD=VQA(image=C,question='q')",
    { IMAGE: image },
    { modules: { VQA: () => 'yes', LOC: () => [[2, 2, 4, 4]] } },
  );
  const [whole, , crop] = subTaskInstances(trace);
  t.deepEqual(whole.input.image, { ref: 'gray.png', box: null });
  t.deepEqual(crop.input.image, { ref: 'gray.png', box: [2, 2, 4, 4] });
  t.not(whole.hash, crop.hash);
});
