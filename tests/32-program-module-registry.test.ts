// Module registry: the built-in VisProg modules and ImagePatch API, and registering user modules.

import test from 'ava';
import {
  BUILTIN_VIPER_MODULES,
  BUILTIN_VISPROG_MODULES,
  type ModuleSpec,
  SUB_TASK_KINDS,
  createModuleRegistry,
  defaultModuleRegistry,
  parseViperProgram,
  parseVisProgProgram,
} from '../lib/program';

test('every VisProg module of the issue is registered with its sub-task kind', (t) => {
  const registry = defaultModuleRegistry();
  const expected: Record<string, [string, boolean]> = {
    LOC: ['grounding', true],
    FACEDET: ['face-detection', true],
    SEG: ['segmentation', true],
    SELECT: ['grounding', true],
    COUNT: ['logic', false],
    CROP: ['image-op', false],
    CROP_LEFTOF: ['image-op', false],
    CROP_RIGHTOF: ['image-op', false],
    CROP_ABOVE: ['image-op', false],
    CROP_BELOW: ['image-op', false],
    CROP_FRONTOF: ['image-op', false],
    CROP_INFRONTOF: ['image-op', false],
    CROP_INFRONT: ['image-op', false],
    CROP_BEHIND: ['image-op', false],
    CROP_AHEAD: ['image-op', false],
    VQA: ['vqa', true],
    EVAL: ['logic', false],
    RESULT: ['logic', false],
    CLASSIFY: ['classification', true],
    LIST: ['knowledge', false],
    TAG: ['image-op', false],
    EMOJI: ['image-op', false],
    COLORPOP: ['image-op', false],
    BGBLUR: ['image-op', false],
    REPLACE: ['image-op', false],
  };
  t.deepEqual(registry.names('visprog').sort(), Object.keys(expected).sort());
  for (const [name, [subTask, distillable]] of Object.entries(expected)) {
    const spec = registry.get('visprog', name)!;
    t.is(spec.subTask as string, subTask, name);
    t.is(spec.distillable, distillable, name);
  }
  t.true(registry.get('visprog', 'LIST')!.neural, 'LIST asks a language model');
  t.true(registry.get('visprog', 'REPLACE')!.neural, 'REPLACE runs an inpainting model');
});

test('the ImagePatch API and helper functions are registered with their call styles', (t) => {
  const registry = defaultModuleRegistry();
  const methods = [
    'find',
    'exists',
    'verify_property',
    'best_text_match',
    'simple_query',
    'compute_depth',
    'crop',
    'overlaps_with',
    'llm_query',
    'frame_iterator',
    'frame_from_index',
    'trim',
    'select_answer',
  ];
  for (const name of methods) t.truthy(registry.viperMethod(name), name);
  const functions = [
    'ImagePatch',
    'VideoSegment',
    'llm_query',
    'best_text_match',
    'best_image_match',
    'distance',
    'bool_to_yesno',
    'coerce_to_numeric',
    'process_guesses',
  ];
  for (const name of functions) t.truthy(registry.viperFunction(name), name);
  t.is(registry.viperFunction('find'), undefined);
  t.is(registry.viperMethod('distance'), undefined);
  t.deepEqual(
    BUILTIN_VIPER_MODULES.filter((spec) => spec.distillable).map((spec) => `${spec.name}:${spec.subTask}`),
    [
      'find:grounding',
      'exists:grounding',
      'verify_property:verification',
      'best_text_match:text-match',
      'simple_query:vqa',
      'compute_depth:depth',
      'best_image_match:grounding',
    ],
  );
});

test('every built-in spec is valid: known kinds, distillable only if neural, unique argument names', (t) => {
  for (const spec of [...BUILTIN_VISPROG_MODULES, ...BUILTIN_VIPER_MODULES]) {
    t.true(SUB_TASK_KINDS.includes(spec.subTask), spec.name);
    t.false(spec.distillable && !spec.neural, spec.name);
    const names = spec.args.flatMap((arg) => [arg.name, ...(arg.aliases ?? [])]);
    t.is(new Set(names).size, names.length, spec.name);
  }
  t.notThrows(() => createModuleRegistry());
});

const OCR: ModuleSpec = {
  framework: 'visprog',
  name: 'OCR',
  args: [{ name: 'image', type: 'image', form: 'variable', required: true }],
  output: 'text',
  subTask: 'vqa',
  neural: true,
  distillable: true,
  textArgument: undefined,
  description: 'reads the text in an image',
};

test('users register their own modules, and the parsers recognise them', (t) => {
  const registry = createModuleRegistry().register(OCR);
  const graph = parseVisProgProgram('TEXT=OCR(image=IMAGE)\nFINAL=RESULT(var=TEXT)', { registry });
  t.deepEqual(graph.diagnostics, []);
  t.is(graph.steps[0].subTask, 'vqa');
  t.true(graph.steps[0].distillable);
  t.is(parseVisProgProgram('TEXT=OCR(image=IMAGE)').diagnostics[0].code, 'unknown-module');

  registry.register({
    framework: 'viper',
    name: 'read_text',
    callStyle: 'method',
    args: [{ name: 'language', type: 'text', form: 'any', required: false }],
    output: 'text',
    subTask: 'vqa',
    neural: true,
    distillable: true,
    description: 'OCR on a patch',
  });
  const viper = parseViperProgram(
    'def execute_command(image):\n    return ImagePatch(image).read_text("en")',
    {
      registry,
    },
  );
  t.deepEqual(
    viper.steps.map((step) => [step.module, step.args]),
    [
      ['ImagePatch', { image: { kind: 'variable', name: 'image' } }],
      ['read_text', { language: { kind: 'literal', value: 'en' } }],
    ],
  );
});

test('registering checks the spec and refuses silent replacement', (t) => {
  const registry = createModuleRegistry();
  t.throws(() => registry.register({ ...OCR, name: 'VQA' }), { code: 'ERR_SDVP_OPTION' } as never);
  t.notThrows(() => registry.register({ ...OCR, name: 'VQA' }, { replace: true }));
  t.is(registry.get('visprog', 'VQA')!.description, 'reads the text in an image');
  const invalid: Array<[Partial<ModuleSpec>, RegExp]> = [
    [{ name: 'not a name' }, /spec.name must be an identifier/],
    [{ subTask: 'magic' as never }, /spec.subTask must be one of/],
    [{ output: 'pixels' as never }, /spec.output must be one of/],
    [{ neural: false }, /not neural/],
    [
      {
        args: [
          { name: 'a', type: 'text', form: 'literal', required: true },
          { name: 'a', type: 'text', form: 'literal', required: true },
        ],
      },
      /repeats the argument name 'a'/,
    ],
    [
      { args: [{ name: 'a', type: 'text', form: 'sometimes' as never, required: true }] },
      /form must be one of/,
    ],
    [{ textArgument: 'question' }, /textArgument names 'question'/],
    [{ framework: 'other' as never }, /spec.framework must be/],
  ];
  for (const [change, message] of invalid) {
    const error = t.throws(() => createModuleRegistry().register({ ...OCR, name: 'X', ...change }));
    t.regex(error!.message, message);
    t.is((error as { code?: string }).code, 'ERR_SDVP_ARG');
  }
});

test('the default registry is shared and read-only; createModuleRegistry gives a writable copy', (t) => {
  t.is(defaultModuleRegistry(), defaultModuleRegistry());
  t.throws(() => defaultModuleRegistry().register(OCR), { code: 'ERR_SDVP_OPTION' } as never);
  const copy = defaultModuleRegistry().clone().register(OCR);
  t.true(copy.has('visprog', 'OCR'));
  t.false(defaultModuleRegistry().has('visprog', 'OCR'));
  t.true(Object.isFrozen(copy.get('visprog', 'OCR')));
});
