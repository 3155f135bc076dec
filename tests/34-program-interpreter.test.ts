// VisProg interpreter on small synthetic images with fake neural modules: crop geometry to the pixel, EVAL, traces.

import test, { type ExecutionContext } from 'ava';
import {
  type Box,
  type ModuleImplementation,
  type RasterImage,
  VisProgInterpreter,
  createImage,
  cropImage,
  parseVisProgProgram,
  pixelAt,
  runVisProgProgram,
  visprogCropBox,
} from '../lib/program';

/** A W x H RGB image whose pixel (x, y) is [x, y, (7x + 13y) mod 256], so every crop can be checked exactly. */
function patternImage(width: number, height: number, ref = 'pattern.png'): RasterImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      data[offset] = x % 256;
      data[offset + 1] = y % 256;
      data[offset + 2] = (7 * x + 13 * y) % 256;
    }
  }
  return createImage(width, height, 3, data, ref);
}

/** Checks size, recorded region and every pixel of a crop of the pattern image. */
function assertCrop(t: ExecutionContext, value: unknown, region: Box): void {
  const crop = value as RasterImage;
  const [x1, y1, x2, y2] = region;
  t.deepEqual(crop.region, region);
  t.is(crop.width, x2 - x1);
  t.is(crop.height, y2 - y1);
  const root = crop.root!;
  for (let y = 0; y < crop.height; y++) {
    for (let x = 0; x < crop.width; x++) {
      const sx = x1 + x;
      const sy = y1 + y;
      const expected =
        sx < root.width && sy < root.height && sx >= 0 && sy >= 0 ? pixelAt(root, sx, sy) : [0, 0, 0];
      const actual = pixelAt(crop, x, y);
      if (actual.some((v, i) => v !== expected[i])) {
        t.fail(`pixel (${x}, ${y}) of the crop is ${actual}, expected ${expected}`);
        return;
      }
    }
  }
  t.pass();
}

const locReturning =
  (...boxes: Box[]): ModuleImplementation =>
  () =>
    boxes.map((box) => [...box]);

async function cropWith(
  module: string,
  boxes: Box[],
  options: { aboveBelowFallback?: 'visprog' | 'matching-half' } = {},
) {
  const image = patternImage(40, 30);
  const trace = await runVisProgProgram(
    `BOX0=LOC(image=IMAGE,object='thing')\nIMAGE0=${module}(image=IMAGE,box=BOX0)\nFINAL=RESULT(var=IMAGE0)`,
    { IMAGE: image },
    { modules: { LOC: locReturning(...boxes) }, ...options },
  );
  if (!trace.ok) throw new Error(trace.error!.message);
  return { image, result: trace.result as RasterImage };
}

test('CROP enlarges the first box 1.5x about its centre, clamped to the image', async (t) => {
  assertCrop(
    t,
    (
      await cropWith('CROP', [
        [10, 6, 20, 16],
        [0, 0, 5, 5],
      ])
    ).result,
    [8, 4, 22, 18],
  );
  assertCrop(t, (await cropWith('CROP', [[0, 0, 10, 10]])).result, [0, 0, 12, 12]);
  assertCrop(t, (await cropWith('CROP', [[30, 20, 40, 30]])).result, [28, 18, 40, 30]);
  assertCrop(t, (await cropWith('CROP', [[11, 7, 14, 8]])).result, [10, 7, 14, 7]);
  assertCrop(t, (await cropWith('CROP', [[10, 8, 22, 20]])).result, [7, 5, 25, 23]);
  assertCrop(t, (await cropWith('CROP', [[4, 4, 24, 24]])).result, [0, 0, 29, 29]);
});

test('CROP with no box returns the image itself; the depth relations crop like CROP', async (t) => {
  const { image, result } = await cropWith('CROP', []);
  t.is(result, image);
  for (const module of ['CROP_FRONTOF', 'CROP_INFRONTOF', 'CROP_INFRONT', 'CROP_BEHIND', 'CROP_AHEAD']) {
    assertCrop(t, (await cropWith(module, [[10, 6, 20, 16]])).result, [8, 4, 22, 18]);
  }
});

test('CROP_LEFTOF / RIGHTOF / ABOVE / BELOW take the half-plane beside the box centre', async (t) => {
  const box: Box = [10, 6, 21, 17]; // centre (15, 11) after truncation
  assertCrop(t, (await cropWith('CROP_RIGHTOF', [box])).result, [15, 0, 39, 29]);
  assertCrop(t, (await cropWith('CROP_LEFTOF', [box])).result, [0, 0, 15, 29]);
  assertCrop(t, (await cropWith('CROP_ABOVE', [box])).result, [0, 0, 39, 11]);
  assertCrop(t, (await cropWith('CROP_BELOW', [box])).result, [0, 11, 39, 29]);
});

test("with no box, the half-plane crops fall back to image halves as VisProg's do", async (t) => {
  assertCrop(t, (await cropWith('CROP_RIGHTOF', [])).result, [20, 0, 39, 29]);
  assertCrop(t, (await cropWith('CROP_LEFTOF', [])).result, [0, 0, 20, 29]);
  // VisProg's own fall-back for ABOVE and BELOW is the left half; 'matching-half' gives the top or bottom half.
  assertCrop(t, (await cropWith('CROP_ABOVE', [])).result, [0, 0, 20, 29]);
  assertCrop(t, (await cropWith('CROP_BELOW', [])).result, [0, 0, 20, 29]);
  assertCrop(
    t,
    (await cropWith('CROP_ABOVE', [], { aboveBelowFallback: 'matching-half' })).result,
    [0, 0, 39, 15],
  );
  assertCrop(
    t,
    (await cropWith('CROP_BELOW', [], { aboveBelowFallback: 'matching-half' })).result,
    [0, 15, 39, 29],
  );
  t.deepEqual(visprogCropBox('CROP_RIGHTOF', undefined, 41, 31), [20, 0, 40, 30]);
});

test('LOC answers TOP/BOTTOM/LEFT/RIGHT with fixed halves, without calling the detector', async (t) => {
  let calls = 0;
  const image = patternImage(40, 30);
  const program = (object: string) =>
    `BOX0=LOC(image=IMAGE,object='${object}')\nIMAGE0=CROP(image=IMAGE,box=BOX0)`;
  const modules = {
    LOC: () => {
      calls++;
      return [];
    },
  };
  const expected: Record<string, [Box, Box]> = {
    TOP: [
      [0, 0, 39, 15],
      [0, 0, 40, 18],
    ],
    BOTTOM: [
      [0, 15, 39, 29],
      [0, 12, 40, 30],
    ],
    LEFT: [
      [0, 0, 20, 29],
      [0, 0, 25, 30],
    ],
    RIGHT: [
      [20, 0, 39, 29],
      [15, 0, 40, 30],
    ],
  };
  for (const [object, [box, crop]] of Object.entries(expected)) {
    const trace = await runVisProgProgram(program(object), { IMAGE: image }, { modules });
    t.true(trace.ok);
    t.deepEqual(trace.steps[0].value, [box], object);
    t.false(trace.steps[0].moduleCalled);
    assertCrop(t, trace.steps[1].value, crop);
  }
  t.is(calls, 0);
  const big = await runVisProgProgram(program('TOP'), { IMAGE: createImage(640, 480) }, { modules });
  t.deepEqual((big.steps[1].value as RasterImage).region, [0, 0, 640, 300]);
});

test('crops of crops record their region in the original image', async (t) => {
  const image = patternImage(40, 30);
  const seen: RasterImage[] = [];
  const trace = await runVisProgProgram(
    [
      "BOX0=LOC(image=IMAGE,object='mirror')",
      'IMAGE0=CROP_RIGHTOF(image=IMAGE,box=BOX0)',
      "BOX1=LOC(image=IMAGE0,object='curtain')",
      'IMAGE1=CROP(image=IMAGE0,box=BOX1)',
      "ANSWER0=VQA(image=IMAGE1,question='What color is the curtain?')",
      'FINAL_RESULT=RESULT(var=ANSWER0)',
    ].join('\n'),
    { IMAGE: image },
    {
      modules: {
        LOC: ({ object }) => (object === 'mirror' ? [[10, 6, 21, 17]] : [[2, 2, 6, 6]]),
        VQA: ({ image: crop }) => {
          seen.push(crop as RasterImage);
          return 'red';
        },
      },
    },
  );
  t.true(trace.ok);
  t.is(trace.result, 'red');
  assertCrop(t, trace.steps[1].value, [15, 0, 39, 29]);
  assertCrop(t, seen[0], [16, 1, 22, 7]);
  t.is(seen[0].ref, 'pattern.png');
  t.is(seen[0].root, image);
});

test('cropImage pads outside the image with zeros and rounds half to even, as PIL does', (t) => {
  const image = patternImage(4, 3);
  const crop = cropImage(image, [2.5, 1.5, 5.5, 3.5]);
  t.deepEqual(crop.region, [2, 2, 6, 4]);
  t.deepEqual(pixelAt(crop, 0, 0), pixelAt(image, 2, 2));
  t.deepEqual(pixelAt(crop, 1, 0), pixelAt(image, 3, 2));
  t.deepEqual(pixelAt(crop, 2, 0), [0, 0, 0]);
  t.deepEqual(pixelAt(crop, 0, 1), [0, 0, 0]);
  t.throws(() => cropImage(image, [3, 0, 1, 2]), { code: 'ERR_SDVP_RANGE' } as never);
});

test('COUNT counts boxes, EVAL reads counts and answers, RESULT is the program result', async (t) => {
  const trace = await runVisProgProgram(
    [
      "BOX0=LOC(image=IMAGE,object='train')",
      "BOX1=LOC(image=IMAGE,object='fence')",
      'ANSWER0=COUNT(box=BOX0)',
      'ANSWER1=COUNT(box=BOX1)',
      `ANSWER2=EVAL(expr="'yes' if {ANSWER0} + {ANSWER1} > 2 else 'no'")`,
      'FINAL_RESULT=RESULT(var=ANSWER2)',
    ].join('\n'),
    { IMAGE: patternImage(8, 8) },
    {
      modules: {
        LOC: ({ object }) =>
          object === 'train'
            ? [
                [0, 0, 1, 1],
                [1, 1, 2, 2],
              ]
            : [{ box: [2, 2, 3, 3], category: 'fence' }],
      },
    },
  );
  t.true(trace.ok);
  t.deepEqual(
    trace.steps.map((step) => step.value),
    [
      [
        [0, 0, 1, 1],
        [1, 1, 2, 2],
      ],
      [{ box: [2, 2, 3, 3], category: 'fence' }],
      2,
      1,
      'yes',
      'yes',
    ],
  );
  t.is(trace.result, 'yes');
  t.deepEqual(trace.steps[4].inputs, {
    expr: "'yes' if {ANSWER0} + {ANSWER1} > 2 else 'no'",
    values: { ANSWER0: 2, ANSWER1: 1 },
  });
});

test('NLVR: VQA answers on LEFT and RIGHT combine through EVAL xor, for every truth assignment', async (t) => {
  const program = [
    "ANSWER0=VQA(image=LEFT,question='Is there a dog?')",
    "ANSWER1=VQA(image=RIGHT,question='Is there a dog?')",
    "ANSWER2=EVAL(expr='{ANSWER0} xor {ANSWER1}')",
    'FINAL_ANSWER=RESULT(var=ANSWER2)',
  ].join('\n');
  for (const left of ['yes', 'no']) {
    for (const right of ['yes', 'no']) {
      const inputs = { LEFT: patternImage(4, 4, 'left.png'), RIGHT: patternImage(4, 4, 'right.png') };
      const trace = await runVisProgProgram(program, inputs, {
        modules: { VQA: ({ image }) => ((image as RasterImage).ref === 'left.png' ? left : right) },
      });
      t.true(trace.ok);
      t.is(trace.result, left !== right, `${left} xor ${right}`);
    }
  }
  const counting = await runVisProgProgram(
    "A=VQA(image=LEFT,question='How many?')\nB=VQA(image=RIGHT,question='How many?')\nC=EVAL(expr='{A} + {B} == 2')",
    { LEFT: patternImage(2, 2), RIGHT: patternImage(2, 2) },
    { modules: { VQA: () => '1' } },
  );
  t.true(counting.ok);
  t.is(counting.result, true);
});

test('a failing step fails its program only; the trace keeps the steps before it', async (t) => {
  const interpreter = new VisProgInterpreter({
    modules: {
      VQA: ({ question }) => {
        if (question === 'boom?') throw new Error('model crashed');
        return 'fine';
      },
    },
  });
  const program = (question: string) =>
    `A=VQA(image=IMAGE,question='ok?')\nB=VQA(image=IMAGE,question='${question}')\nC=RESULT(var=B)`;
  const traces = await interpreter.runMany(
    [
      { programId: 'p1', program: program('fine?'), inputs: { IMAGE: patternImage(2, 2) } },
      { programId: 'p2', program: program('boom?'), inputs: { IMAGE: patternImage(2, 2) } },
      { programId: 'p3', program: program('also fine?'), inputs: { IMAGE: patternImage(2, 2) } },
    ],
    { concurrency: 2 },
  );
  t.deepEqual(
    traces.map((trace) => [trace.programId, trace.ok, trace.result]),
    [
      ['p1', true, 'fine'],
      ['p2', false, undefined],
      ['p3', true, 'fine'],
    ],
  );
  const failed = traces[1];
  t.deepEqual(failed.error, { stepId: 1, message: 'VQA on line 2: model crashed' });
  t.deepEqual(
    failed.steps.map((step) => [step.stepId, step.value, step.error]),
    [
      [0, 'fine', null],
      [1, undefined, 'model crashed'],
    ],
  );
  for (const step of failed.steps) t.true(step.durationMs >= 0);
});

test('missing implementations, wrong return values and unknown modules fail the step with a message', async (t) => {
  const image = patternImage(4, 4);
  const missing = await runVisProgProgram("A=VQA(image=IMAGE,question='q')", { IMAGE: image });
  t.is(missing.steps[0].error, 'no implementation for VQA; pass modules.VQA to the interpreter');
  const wrong = await runVisProgProgram(
    "B=LOC(image=IMAGE,object='cat')",
    { IMAGE: image },
    { modules: { LOC: () => 'oops' } },
  );
  t.regex(wrong.error!.message, /the LOC implementation returned the string "oops", but a list of boxes/);
  const notImage = await runVisProgProgram(
    "B=LOC(image=IMAGE,object='cat')\nC=CROP(image=B,box=B)",
    { IMAGE: image },
    { modules: { LOC: () => [[0, 0, 1, 1]] } },
  );
  t.regex(notImage.error!.message, /argument-type/);
  const unknown = await runVisProgProgram('A=MAGIC(image=IMAGE)', { IMAGE: image });
  t.regex(unknown.error!.message, /unknown module MAGIC/);
});

test('errors in the program stop the run where VisProg would stop, after running the steps before', async (t) => {
  const image = patternImage(4, 4);
  const questions: string[] = [];
  const modules = {
    VQA: ({ question }: Record<string, unknown>) => {
      questions.push(String(question));
      return 'yes';
    },
  };
  const undefinedResult = await runVisProgProgram(
    "A=VQA(image=IMAGE,question='first')\nB=VQA(image=IMAGE,question='second')\nFINAL=RESULT(var=ANSWER)",
    { IMAGE: image },
    { modules },
  );
  t.false(undefinedResult.ok);
  t.deepEqual(questions, ['first', 'second']);
  t.regex(undefinedResult.error!.message, /RESULT on line 3: undefined variable ANSWER/);
  const broken = await runVisProgProgram(
    "A=VQA(image=IMAGE,question='third')\nB=VQA(image=IMAGE\nC=VQA(image=IMAGE,question='never')",
    { IMAGE: image },
    { modules },
  );
  t.false(broken.ok);
  t.deepEqual(questions, ['first', 'second', 'third']);
  t.is(broken.error!.stepId, null);
  t.regex(broken.error!.message, /^line 2 cannot run: /);
});

test('modules receive resolved arguments, template slots and their step; a step graph runs as well', async (t) => {
  const calls: Array<Record<string, unknown>> = [];
  const graph = parseVisProgProgram(
    "OBJ0=FACEDET(image=IMAGE)\nLIST0=LIST(query='presidents',max={list_max})\nOBJ1=CLASSIFY(image=IMAGE,object=OBJ0,categories=LIST0)\nIMAGE0=TAG(image=IMAGE,object=OBJ1)",
  );
  const image = patternImage(10, 10);
  const trace = await runVisProgProgram(
    graph,
    { IMAGE: image },
    {
      programId: 'knowtag-1',
      templateSlots: { list_max: 20 },
      modules: {
        FACEDET: () => [{ box: [1, 1, 4, 4] }],
        LIST: (args, context) => {
          calls.push({ ...args, programId: context.programId, stepId: context.step.id });
          return ['Lincoln', 'Obama'];
        },
        CLASSIFY: ({ object }) =>
          (object as Array<{ box: Box }>).map((o) => ({ ...o, className: 'Lincoln' })),
        TAG: ({ image: input }) => input,
      },
    },
  );
  t.true(trace.ok, trace.error?.message);
  t.deepEqual(calls, [{ query: 'presidents', max: 20, programId: 'knowtag-1', stepId: 1 }]);
  t.is(trace.result, image);
  t.deepEqual(trace.steps[2].inputs.categories, ['Lincoln', 'Obama']);
  const unfilled = await runVisProgProgram(
    graph,
    { IMAGE: image },
    { modules: { FACEDET: () => [], LIST: () => [] } },
  );
  t.regex(unfilled.error!.message, /template slot \{list_max\} has no value/);
});

test('an aborted signal rejects the run; bad arguments are usage errors', async (t) => {
  const controller = new AbortController();
  controller.abort();
  await t.throwsAsync(
    runVisProgProgram(
      "A=VQA(image=IMAGE,question='q')",
      { IMAGE: patternImage(2, 2) },
      { signal: controller.signal },
    ),
    { code: 'ERR_SDVP_ABORTED' } as never,
  );
  await t.throwsAsync(runVisProgProgram('A=COUNT(box=B)', null as never), { code: 'ERR_SDVP_ARG' } as never);
  t.throws(() => new VisProgInterpreter({ modules: { VQA: 'not a function' as never } }), {
    code: 'ERR_SDVP_ARG',
  } as never);
  t.throws(() => new VisProgInterpreter({ aboveBelowFallback: 'middle' as never }), {
    code: 'ERR_SDVP_OPTION',
  } as never);
});
