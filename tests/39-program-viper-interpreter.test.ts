// The ViperGPT interpreter's API: ImagePatch geometry, pluggable modules, traces and sub-task instances, video, misuse.

import test from 'ava';
import {
  type Box,
  type RasterImage,
  ViperInterpreter,
  type ViperModules,
  createImage,
  createStubViperModules,
  createVideo,
  parseViperProgram,
  sourceBoxInImage,
  subTaskInstances,
} from '../lib/program';
import { viperProgram } from './helpers/viper-program';

const image = createImage(100, 80, 3, undefined, 'scene.png');

/** find always answers the same boxes, in the pixels of the image it is given (y down). */
function fixedFind(boxes: Box[]): ViperModules {
  return { ...createStubViperModules(), find: () => boxes };
}

test('find boxes become patches with ViperGPT coordinates: y up, 10-pixel margin, pixel crop in the source', async (t) => {
  const interpreter = new ViperInterpreter({ modules: fixedFind([[10, 20, 40, 50]]) });
  const trace = await interpreter.run(
    viperProgram(
      'patch = ImagePatch(image).find("cat")[0]\ninner = patch.crop(5, 5, 20, 20)\nreturn [patch, patch.width, patch.height, patch.horizontal_center, patch.vertical_center, inner, inner.width]',
    ),
    { image },
  );
  t.true(trace.ok, JSON.stringify(trace.diagnostics));
  // The box [10, 20, 40, 50] is left 10, lower 80 - 50 = 30, right 40, upper 80 - 20 = 60; the margin makes it
  // (0, 20, 50, 70), rows 10..59 of the image. Cropping (5, 5, 20, 20) of that patch, with the margin and clamped
  // to it, is (0, 0, 30, 30) inside it: (0, 20, 30, 50) in the image.
  t.is(trace.resultRepr, '[ImagePatch(0, 20, 50, 70), 50, 50, 25.0, 45.0, ImagePatch(0, 20, 30, 50), 30]');
  t.deepEqual(trace.result, [
    { type: 'ImagePatch', left: 0, lower: 20, right: 50, upper: 70, ref: 'scene.png', box: [0, 10, 50, 60] },
    50,
    50,
    25,
    45,
    { type: 'ImagePatch', left: 0, lower: 20, right: 30, upper: 50, ref: 'scene.png', box: [0, 30, 30, 60] },
    30,
  ]);
  const crop = trace.steps.find((step) => step.module === 'crop')!;
  t.deepEqual((crop.value as RasterImage).region, [0, 30, 30, 60]);
});

test('ImagePatch with coordinates slices like torch; an empty patch raises as in ViperGPT', async (t) => {
  const interpreter = new ViperInterpreter();
  // Rows 80 - 500 .. 80 + 5 clamp to the image; the coordinates are kept as given.
  const sliced = await interpreter.run(
    viperProgram('p = ImagePatch(image, 10, -5, 30, 500)\nreturn [p, p.width, p.height]'),
    { image },
  );
  t.is(sliced.resultRepr, '[ImagePatch(10, -5, 30, 500), 20, 80]');
  // A negative left counts from the right edge, as in torch: columns 90..29 are none.
  const wrapped = await interpreter.run(viperProgram('return ImagePatch(image, -10, 0, 30, 80)'), { image });
  t.is(wrapped.diagnostics[0].message, 'Exception: ImagePatch has no area');
  const empty = await interpreter.run(viperProgram('return ImagePatch(image, 50, 10, 50, 20)'), { image });
  t.is(empty.diagnostics[0].message, 'Exception: ImagePatch has no area');
  const none = await interpreter.run(viperProgram('return ImagePatch(image)'));
  t.regex(none.diagnostics[0].message, /^TypeError: ImagePatch\(\) got None for its image/);
});

test('modules may be asynchronous; they get the patch crop, the arguments by name and their step', async (t) => {
  const seen: Array<{
    module: string;
    stepId: number | null;
    programId: string;
    inputs: Record<string, unknown>;
  }> = [];
  const modules: ViperModules = {
    find: async (inputs, context) => {
      seen.push({
        module: context.module,
        stepId: context.step?.id ?? null,
        programId: context.programId,
        inputs,
      });
      return [{ box: [0, 0, 50, 40] }];
    },
    verify_property: async (inputs, context) => {
      seen.push({
        module: context.module,
        stepId: context.step?.id ?? null,
        programId: context.programId,
        inputs,
      });
      return inputs.property === 'red';
    },
    best_text_match: async ({ option_list }) => option_list[1],
    simple_query: async ({ question }) => `answer to ${question}`,
  };
  const source = viperProgram(
    'patches = ImagePatch(image).find("person")\nred = patches[0].verify_property("car", attribute="red")\ncolor = patches[0].best_text_match(["red", "blue"], prefix="a")\nreturn [red, color, patches[0].simple_query()]',
  );
  const trace = await new ViperInterpreter({ modules }).run(source, { image }, { programId: 'job-7' });
  t.true(trace.ok, JSON.stringify(trace.diagnostics));
  t.is(trace.resultRepr, "[True, 'blue', 'answer to What is this?']");
  const graph = parseViperProgram(source);
  t.deepEqual(
    seen.map(({ module, stepId, programId }) => ({ module, stepId, programId })),
    [
      { module: 'find', stepId: graph.steps.find((step) => step.module === 'find')!.id, programId: 'job-7' },
      {
        module: 'verify_property',
        stepId: graph.steps.find((step) => step.module === 'verify_property')!.id,
        programId: 'job-7',
      },
    ],
  );
  // ViperGPT asks its detector for 'people' when a program says 'person'.
  t.is(seen[0].inputs.object_name, 'people');
  t.deepEqual(seen[1].inputs.object_name, 'car');
  t.deepEqual((seen[1].inputs.image as RasterImage).region, [0, 0, 60, 50]);
  const match = trace.steps.find((step) => step.module === 'best_text_match')!;
  t.deepEqual(match.inputs.option_list, ['a red', 'a blue']);
});

test('every call is traced in the VisProg trace format; sub-task instances name the image, crop and text', async (t) => {
  const source = viperProgram(
    'image_patch = ImagePatch(image)\nmen = image_patch.find("man")\nman = men[0]\nok = man.exists("backpack") and man.verify_property("man", "tall")\nmen.sort(key=lambda p: p.compute_depth())\nreturn bool_to_yesno(ok)',
  );
  const trace = await new ViperInterpreter({ modules: createStubViperModules() }).run(
    source,
    { image },
    { programId: 'p1' },
  );
  t.true(trace.ok);
  t.is(trace.framework, 'viper');
  t.deepEqual(
    trace.steps.map(
      (step) => `${step.stepId}:${step.module}:${step.line}:${step.moduleCalled ? 'model' : '-'}`,
    ),
    [
      '0:ImagePatch:2:-',
      '1:find:3:model',
      '2:exists:5:-',
      '2:find:5:model',
      '2:simple_query:5:model',
      '2:simple_query:5:model',
      '3:verify_property:5:model',
      '4:compute_depth:6:model',
      '4:compute_depth:6:model',
      '5:bool_to_yesno:7:-',
    ],
  );
  const instances = subTaskInstances(trace);
  t.deepEqual(
    instances.map((instance) => [
      instance.module,
      instance.subTask,
      instance.input.image,
      instance.input.text,
      instance.input.args,
    ]),
    [
      ['find', 'grounding', { ref: 'scene.png', box: null }, 'man', {}],
      ['find', 'grounding', { ref: 'scene.png', box: [0, 0, 60, 50] }, 'backpack', {}],
      ['simple_query', 'vqa', { ref: 'scene.png', box: [0, 0, 40, 35] }, 'Is this a backpack?', {}],
      ['simple_query', 'vqa', { ref: 'scene.png', box: [20, 15, 60, 50] }, 'Is this a backpack?', {}],
      [
        'verify_property',
        'verification',
        { ref: 'scene.png', box: [0, 0, 60, 50] },
        'tall',
        { object_name: 'man' },
      ],
      ['compute_depth', 'depth', { ref: 'scene.png', box: [0, 0, 60, 50] }, null, {}],
      ['compute_depth', 'depth', { ref: 'scene.png', box: [40, 30, 100, 80] }, null, {}],
    ],
  );
  t.deepEqual(instances[0].output, [
    [0, 0, 50, 40],
    [50, 40, 100, 80],
  ]);
});

test('an exists module, when given, is called instead of find and simple_query', async (t) => {
  const calls: string[] = [];
  const modules: ViperModules = {
    exists: ({ object_name }) => {
      calls.push(`exists ${object_name}`);
      return object_name === 'cat';
    },
  };
  const trace = await new ViperInterpreter({ modules }).run(
    viperProgram('p = ImagePatch(image)\nreturn [p.exists("cat"), p.exists("dog")]'),
    { image },
  );
  t.is(trace.resultRepr, '[True, False]');
  t.deepEqual(calls, ['exists cat', 'exists dog']);
  t.true(trace.steps.filter((step) => step.module === 'exists').every((step) => step.moduleCalled));
});

test('a failing, misbehaving or missing module fails the run at its call, with the step and a module-error', async (t) => {
  const failing = await new ViperInterpreter({
    modules: {
      find: () => {
        throw new Error('detector offline');
      },
    },
  }).run(viperProgram('p = ImagePatch(image)\nreturn p.find("cat")'), { image });
  t.deepEqual(
    [failing.diagnostics[0].code, failing.diagnostics[0].line, failing.diagnostics[0].column],
    ['module-error', 3, 14],
  );
  t.is(failing.diagnostics[0].message, 'the find implementation failed: detector offline');
  t.is(failing.error?.stepId, 1);
  t.is(failing.steps[1].error, 'the find implementation failed: detector offline');
  const wrong = await new ViperInterpreter({
    modules: { simple_query: () => 42 } as unknown as ViperModules,
  }).run(viperProgram('return ImagePatch(image).simple_query("q")'), { image });
  t.is(
    wrong.diagnostics[0].message,
    'the simple_query implementation returned number 42, but a string was expected',
  );
  const rejected = await new ViperInterpreter({
    modules: { compute_depth: () => Promise.reject(new Error('no GPU')) },
  }).run(viperProgram('return ImagePatch(image).compute_depth()'), { image });
  t.is(rejected.diagnostics[0].message, 'the compute_depth implementation failed: no GPU');
  const missing = await new ViperInterpreter().run(viperProgram('return ImagePatch(image).find("cat")'), {
    image,
  });
  t.is(
    missing.diagnostics[0].message,
    'no implementation for find; pass modules.find to the ViperInterpreter',
  );
  t.false(missing.steps[1].moduleCalled);
});

test('video programs: frames as patches, trim and frame_from_index as in ViperGPT, select_answer a module', async (t) => {
  const video = createVideo(
    Array.from({ length: 5 }, (_, i) => createImage(8, 6, 3, undefined, `clip#${i}`)),
  );
  const trace = await new ViperInterpreter({ modules: createStubViperModules() }).run(
    `def execute_command(video, possible_answers, query):
    segment = VideoSegment(video)
    short = segment.trim(1, 10)
    last = short.frame_from_index(-1)
    beyond = short.frame_from_index(99)
    seen = [i for i, frame in enumerate(short.frame_iterator()) if frame.exists("cat")]
    return [segment, short, short.num_frames, seen, last.cropped_image, segment.select_answer({"k": 1}, query, possible_answers)]
`,
    { video, possible_answers: ['one', 'two'], query: 'how many?' },
  );
  t.true(trace.ok, JSON.stringify(trace.diagnostics));
  t.is(trace.resultRepr, "[VideoSegment(0, 5), VideoSegment(1, 5), 4, [0, 1, 2, 3], <Image 8x6>, 'one']");
  t.deepEqual((trace.result as unknown[])[4], {
    type: 'Image',
    ref: 'clip#4',
    box: null,
    width: 8,
    height: 6,
  });
});

test('a program without execute_command runs its statements with image, video, possible_answers, query as globals', async (t) => {
  const trace = await new ViperInterpreter().run('x = ImagePatch(image).width\ny = query * 2\n', {
    image,
    query: 'ab',
  });
  t.true(trace.ok);
  t.is(trace.resultRepr, 'None');
  const withReturn = await new ViperInterpreter().run('return 1\n');
  t.is(withReturn.diagnostics[0].message, "Python syntax error: 'return' outside function");
  const defaults = await new ViperInterpreter().run(
    'def execute_command(image, k=3):\n    return [image, k]\n',
    {},
  );
  t.is(defaults.resultRepr, '[None, 3]');
});

test('runMany keeps job order; an abort signal rejects the run', async (t) => {
  const interpreter = new ViperInterpreter({
    modules: {
      simple_query: ({ question }) => new Promise((resolve) => setTimeout(() => resolve(question), 5)),
    },
  });
  const traces = await interpreter.runMany(
    ['a', 'b', 'c'].map((question, i) => ({
      programId: `p${i}`,
      program: viperProgram(`return ImagePatch(image).simple_query("${question}")`),
      inputs: { image },
    })),
    { concurrency: 2 },
  );
  t.deepEqual(
    traces.map((trace) => [trace.programId, trace.resultRepr]),
    [
      ['p0', "'a'"],
      ['p1', "'b'"],
      ['p2', "'c'"],
    ],
  );
  const controller = new AbortController();
  const slow = new ViperInterpreter({
    modules: {
      simple_query: () => {
        controller.abort();
        return 'x';
      },
    },
  });
  await t.throwsAsync(
    slow.run(
      viperProgram('p = ImagePatch(image)\nfor i in range(10 ** 6):\n    p.simple_query("q")'),
      { image },
      { signal: controller.signal },
    ),
    {
      code: 'ERR_SDVP_ABORTED',
    },
  );
});

test('misuse is an SdvpError naming the field', async (t) => {
  t.throws(() => new ViperInterpreter({ modules: { detect: () => [] } as unknown as ViperModules }), {
    code: 'ERR_SDVP_OPTION',
    message: /name/,
  });
  t.throws(() => new ViperInterpreter({ modules: { find: 'glip' } as unknown as ViperModules }), {
    code: 'ERR_SDVP_ARG',
    message: /modules\.find/,
  });
  t.throws(() => new ViperInterpreter({ entryPoint: 'not a name' }), { code: 'ERR_SDVP_ARG' });
  const interpreter = new ViperInterpreter();
  await t.throwsAsync(interpreter.run(viperProgram('return 1'), null as unknown as Record<string, unknown>), {
    code: 'ERR_SDVP_ARG',
    message: /inputs/,
  });
  await t.throwsAsync(interpreter.run(viperProgram('return 1'), { image: () => 1 }), {
    code: 'ERR_SDVP_ARG',
    message: /inputs\.image/,
  });
  t.throws(() => interpreter.compile(5 as unknown as string), { code: 'ERR_SDVP_ARG', message: /source/ });
  t.throws(() => createVideo([]), { code: 'ERR_SDVP_ARG', message: /frames/ });
});

test('compile() caches by source and reports why a program cannot run', (t) => {
  const interpreter = new ViperInterpreter();
  const compiled = interpreter.compile(viperProgram('import os\nreturn 1'));
  t.is(interpreter.compile(viperProgram('import os\nreturn 1')), compiled);
  t.is(compiled.run, null);
  t.deepEqual(
    compiled.errors.map((d) => `${d.code}@${d.line}:${d.column}`),
    ['forbidden@2:5'],
  );
  t.deepEqual(compiled.graph.steps, []);
});

test('a module that knows boxes in the source image answers find through sourceBoxInImage', async (t) => {
  // An oracle over a scene graph: objects in source pixels, moved into whichever crop find is asked about.
  const objects: Box[] = [
    [10, 10, 30, 30],
    [70, 50, 90, 70],
  ];
  const modules: ViperModules = {
    find: ({ image: crop }) =>
      objects.map((box) => sourceBoxInImage(crop, box)).filter((box): box is Box => box !== null),
  };
  const trace = await new ViperInterpreter({ modules }).run(
    viperProgram(
      'whole = ImagePatch(image).find("x")\nright = ImagePatch(image, 50, 0, 100, 80).find("x")\nreturn [whole, right]',
    ),
    { image },
  );
  t.true(trace.ok, JSON.stringify(trace.diagnostics));
  t.deepEqual(
    (trace.result as Array<Array<{ box: number[] }>>).map((patches) => patches.map((patch) => patch.box)),
    [
      [
        [0, 0, 40, 40],
        [60, 40, 100, 80],
      ],
      [[60, 40, 100, 80]],
    ],
  );
  t.deepEqual(sourceBoxInImage(createImage(10, 10), [20, 20, 30, 30]), null);
});
