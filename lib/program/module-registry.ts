// The module registry: every VisProg module and ImagePatch API call, with its arguments, output and sub-task kind.

import { SdvpError, argError, describeValue } from '../errors/sdvp-error';
import type { Framework } from './step-graph';

/** What kind of visual (or non-visual) sub-task a module solves. */
export type SubTaskKind =
  | 'grounding'
  | 'vqa'
  | 'classification'
  | 'segmentation'
  | 'face-detection'
  | 'depth'
  | 'verification'
  | 'text-match'
  | 'knowledge'
  | 'image-op'
  | 'logic';

export const SUB_TASK_KINDS: readonly SubTaskKind[] = Object.freeze([
  'grounding',
  'vqa',
  'classification',
  'segmentation',
  'face-detection',
  'depth',
  'verification',
  'text-match',
  'knowledge',
  'image-op',
  'logic',
]);

/** The type of a value flowing between steps. `boxes` and `objects` (boxes with masks or labels) interconvert. */
export type ValueType =
  | 'image'
  | 'boxes'
  | 'objects'
  | 'text'
  | 'number'
  | 'boolean'
  | 'list'
  | 'patch'
  | 'patches'
  | 'video'
  | 'any';

export const VALUE_TYPES: readonly ValueType[] = Object.freeze([
  'image',
  'boxes',
  'objects',
  'text',
  'number',
  'boolean',
  'list',
  'patch',
  'patches',
  'video',
  'any',
]);

/**
 * How an argument must be written in a VisProg step: a variable, a literal, an EVAL expression string, or
 * anything (ViperGPT arguments are Python expressions, so they are always `any`).
 */
export type ArgumentForm = 'variable' | 'literal' | 'expression' | 'any';

export interface ArgumentSpec {
  name: string;
  type: ValueType;
  form: ArgumentForm;
  required: boolean;
  /** Whether the literal `None` is accepted (VisProg SELECT's `category=None`). */
  nullable?: boolean;
  /** Other names the argument is known by (ViperGPT's `visual_property` for `property`). */
  aliases?: string[];
}

/** How a ViperGPT API entry is called: as a method (`patch.find(...)`), a function (`distance(a, b)`) or both. */
export type CallStyle = 'method' | 'function' | 'both';

export interface ModuleSpec {
  framework: Framework;
  name: string;
  args: ArgumentSpec[];
  output: ValueType;
  subTask: SubTaskKind;
  /** Whether a neural network computes it (an LLM counts). */
  neural: boolean;
  /** Whether it is a neural visual sub-module whose inputs SDVP labels with a teacher and distils. */
  distillable: boolean;
  /** The argument that carries the sub-task's text (the question, the object phrase, ...), if any. */
  textArgument?: string;
  /** ViperGPT only: how the entry is called. */
  callStyle?: CallStyle;
  description: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ARGUMENT_FORMS: readonly ArgumentForm[] = ['variable', 'literal', 'expression', 'any'];

/** Name → module specification, per framework. Parsers, the interpreter and sub-task extraction read it. */
export class ModuleRegistry {
  readonly #modules: Record<Framework, Map<string, ModuleSpec>> = { visprog: new Map(), viper: new Map() };
  #readOnly = false;

  constructor(specs: Iterable<ModuleSpec> = []) {
    for (const spec of specs) this.register(spec);
  }

  /** Adds a module (a validated, frozen copy). A name already registered needs `{ replace: true }`. */
  register(spec: ModuleSpec, options: { replace?: boolean } = {}): this {
    if (this.#readOnly) {
      throw new SdvpError(
        'ERR_SDVP_OPTION',
        'The default module registry is read-only; call createModuleRegistry() for a copy you can add to.',
      );
    }
    const copy = validateModuleSpec(spec);
    const table = this.#modules[copy.framework];
    if (table.has(copy.name) && !options.replace) {
      throw new SdvpError(
        'ERR_SDVP_OPTION',
        `Module ${copy.framework}:${copy.name} is already registered; pass { replace: true } to replace it.`,
        { field: 'spec.name' },
      );
    }
    table.set(copy.name, copy);
    return this;
  }

  get(framework: Framework, name: string): ModuleSpec | undefined {
    return this.#modules[framework]?.get(name);
  }

  has(framework: Framework, name: string): boolean {
    return this.#modules[framework]?.has(name) ?? false;
  }

  /** Module names of one framework, in registration order. */
  names(framework: Framework): string[] {
    return [...this.#modules[framework].keys()];
  }

  /** All specifications, or those of one framework. */
  specs(framework?: Framework): ModuleSpec[] {
    if (framework) return [...this.#modules[framework].values()];
    return [...this.#modules.visprog.values(), ...this.#modules.viper.values()];
  }

  /** The ViperGPT entry called as `receiver.name(...)`, if `name` is one. */
  viperMethod(name: string): ModuleSpec | undefined {
    const spec = this.#modules.viper.get(name);
    return spec && spec.callStyle !== 'function' ? spec : undefined;
  }

  /** The ViperGPT entry called as `name(...)`, if `name` is one. */
  viperFunction(name: string): ModuleSpec | undefined {
    const spec = this.#modules.viper.get(name);
    return spec && spec.callStyle !== 'method' ? spec : undefined;
  }

  /** A writable copy holding the same modules. */
  clone(): ModuleRegistry {
    return new ModuleRegistry(this.specs());
  }

  /** Makes further `register` calls throw. */
  freeze(): this {
    this.#readOnly = true;
    return this;
  }
}

function validateModuleSpec(spec: ModuleSpec): ModuleSpec {
  if (spec === null || typeof spec !== 'object') throw argError('ERR_SDVP_ARG', 'spec', 'an object', spec);
  if (spec.framework !== 'visprog' && spec.framework !== 'viper') {
    throw argError('ERR_SDVP_ARG', 'spec.framework', "'visprog' or 'viper'", spec.framework);
  }
  if (typeof spec.name !== 'string' || !IDENTIFIER.test(spec.name)) {
    throw argError('ERR_SDVP_ARG', 'spec.name', 'an identifier', spec.name);
  }
  if (!SUB_TASK_KINDS.includes(spec.subTask)) {
    throw argError('ERR_SDVP_ARG', 'spec.subTask', `one of ${SUB_TASK_KINDS.join(', ')}`, spec.subTask);
  }
  if (!VALUE_TYPES.includes(spec.output)) {
    throw argError('ERR_SDVP_ARG', 'spec.output', `one of ${VALUE_TYPES.join(', ')}`, spec.output);
  }
  if (typeof spec.neural !== 'boolean')
    throw argError('ERR_SDVP_ARG', 'spec.neural', 'a boolean', spec.neural);
  if (typeof spec.distillable !== 'boolean') {
    throw argError('ERR_SDVP_ARG', 'spec.distillable', 'a boolean', spec.distillable);
  }
  if (spec.distillable && !spec.neural) {
    throw new SdvpError('ERR_SDVP_ARG', `spec.distillable is true for ${spec.name}, which is not neural.`, {
      field: 'spec.distillable',
    });
  }
  if (!Array.isArray(spec.args)) throw argError('ERR_SDVP_ARG', 'spec.args', 'an array', spec.args);
  const seen = new Set<string>();
  const args = spec.args.map((arg, i) => {
    const field = `spec.args[${i}]`;
    if (arg === null || typeof arg !== 'object') throw argError('ERR_SDVP_ARG', field, 'an object', arg);
    if (typeof arg.name !== 'string' || !IDENTIFIER.test(arg.name)) {
      throw argError('ERR_SDVP_ARG', `${field}.name`, 'an identifier', arg.name);
    }
    const names = [arg.name, ...(arg.aliases ?? [])];
    for (const name of names) {
      if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
        throw argError('ERR_SDVP_ARG', `${field}.aliases`, 'identifiers', name);
      }
      if (seen.has(name)) {
        throw new SdvpError('ERR_SDVP_ARG', `${field} repeats the argument name '${name}'.`, { field });
      }
      seen.add(name);
    }
    if (!VALUE_TYPES.includes(arg.type)) {
      throw argError('ERR_SDVP_ARG', `${field}.type`, `one of ${VALUE_TYPES.join(', ')}`, arg.type);
    }
    if (!ARGUMENT_FORMS.includes(arg.form)) {
      throw argError('ERR_SDVP_ARG', `${field}.form`, `one of ${ARGUMENT_FORMS.join(', ')}`, arg.form);
    }
    if (typeof arg.required !== 'boolean') {
      throw argError('ERR_SDVP_ARG', `${field}.required`, 'a boolean', arg.required);
    }
    const copy: ArgumentSpec = { name: arg.name, type: arg.type, form: arg.form, required: arg.required };
    if (arg.nullable) copy.nullable = true;
    if (arg.aliases && arg.aliases.length > 0) copy.aliases = Object.freeze([...arg.aliases]) as string[];
    return Object.freeze(copy);
  });
  if (spec.textArgument !== undefined && !args.some((arg) => arg.name === spec.textArgument)) {
    throw new SdvpError(
      'ERR_SDVP_ARG',
      `spec.textArgument names '${spec.textArgument}', which is not one of the arguments of ${spec.name}.`,
      { field: 'spec.textArgument', received: describeValue(spec.textArgument) },
    );
  }
  if (spec.framework === 'viper') {
    const style = spec.callStyle ?? 'method';
    if (style !== 'method' && style !== 'function' && style !== 'both') {
      throw argError('ERR_SDVP_ARG', 'spec.callStyle', "'method', 'function' or 'both'", spec.callStyle);
    }
  }
  const copy: ModuleSpec = {
    framework: spec.framework,
    name: spec.name,
    args: Object.freeze(args) as ArgumentSpec[],
    output: spec.output,
    subTask: spec.subTask,
    neural: spec.neural,
    distillable: spec.distillable,
    description: typeof spec.description === 'string' ? spec.description : '',
  };
  if (spec.textArgument !== undefined) copy.textArgument = spec.textArgument;
  if (spec.framework === 'viper') copy.callStyle = spec.callStyle ?? 'method';
  return Object.freeze(copy);
}

/** Whether a value of type `actual` may be passed where `expected` is wanted. */
export function isCompatibleType(expected: ValueType, actual: ValueType): boolean {
  if (expected === actual || expected === 'any' || actual === 'any') return true;
  const regions = (type: ValueType) => type === 'boxes' || type === 'objects';
  return regions(expected) && regions(actual);
}

function arg(
  name: string,
  type: ValueType,
  form: ArgumentForm,
  required = true,
  extra: Partial<ArgumentSpec> = {},
): ArgumentSpec {
  return { name, type, form, required, ...extra };
}

const image = arg('image', 'image', 'variable');
const box = arg('box', 'boxes', 'variable');
const objects = arg('object', 'objects', 'variable');

function visprog(
  name: string,
  args: ArgumentSpec[],
  output: ValueType,
  subTask: SubTaskKind,
  neural: boolean,
  distillable: boolean,
  description: string,
  textArgument?: string,
): ModuleSpec {
  return {
    framework: 'visprog',
    name,
    args,
    output,
    subTask,
    neural,
    distillable,
    description,
    textArgument,
  };
}

const cropDescription = (where: string) => `crops the image ${where} (VisProg semantics, no model)`;

/** VisProg's modules (allenai/visprog engine/step_interpreters.py). */
export const BUILTIN_VISPROG_MODULES: readonly ModuleSpec[] = [
  visprog(
    'LOC',
    [image, arg('object', 'text', 'literal')],
    'boxes',
    'grounding',
    true,
    true,
    'open-vocabulary detection (OWL-ViT); TOP/BOTTOM/LEFT/RIGHT are fixed image halves',
    'object',
  ),
  visprog('FACEDET', [image], 'objects', 'face-detection', true, true, 'face detection (DSFD)'),
  visprog('SEG', [image], 'objects', 'segmentation', true, true, 'panoptic segmentation (MaskFormer)'),
  visprog(
    'SELECT',
    [
      image,
      objects,
      arg('query', 'text', 'literal'),
      arg('category', 'text', 'literal', true, { nullable: true }),
    ],
    'objects',
    'grounding',
    true,
    true,
    'picks the objects that match a phrase (CLIP)',
    'query',
  ),
  visprog('COUNT', [box], 'number', 'logic', false, false, 'the number of boxes'),
  visprog(
    'CROP',
    [image, box],
    'image',
    'image-op',
    false,
    false,
    cropDescription('to the first box, enlarged 1.5x'),
  ),
  visprog(
    'CROP_LEFTOF',
    [image, box],
    'image',
    'image-op',
    false,
    false,
    cropDescription('left of the first box'),
  ),
  visprog(
    'CROP_RIGHTOF',
    [image, box],
    'image',
    'image-op',
    false,
    false,
    cropDescription('right of the first box'),
  ),
  visprog(
    'CROP_ABOVE',
    [image, box],
    'image',
    'image-op',
    false,
    false,
    cropDescription('above the first box'),
  ),
  visprog(
    'CROP_BELOW',
    [image, box],
    'image',
    'image-op',
    false,
    false,
    cropDescription('below the first box'),
  ),
  visprog('CROP_FRONTOF', [image, box], 'image', 'image-op', false, false, cropDescription('as CROP')),
  visprog('CROP_INFRONTOF', [image, box], 'image', 'image-op', false, false, cropDescription('as CROP')),
  visprog('CROP_INFRONT', [image, box], 'image', 'image-op', false, false, cropDescription('as CROP')),
  visprog('CROP_BEHIND', [image, box], 'image', 'image-op', false, false, cropDescription('as CROP')),
  visprog('CROP_AHEAD', [image, box], 'image', 'image-op', false, false, cropDescription('as CROP')),
  visprog(
    'VQA',
    [image, arg('question', 'text', 'literal')],
    'text',
    'vqa',
    true,
    true,
    'visual question answering (BLIP)',
    'question',
  ),
  visprog('EVAL', [arg('expr', 'any', 'expression')], 'any', 'logic', false, false, 'a Python expression'),
  visprog('RESULT', [arg('var', 'any', 'variable')], 'any', 'logic', false, false, 'the program result'),
  visprog(
    'CLASSIFY',
    [image, objects, arg('categories', 'list', 'variable')],
    'objects',
    'classification',
    true,
    true,
    'assigns each object one of the categories (CLIP)',
  ),
  visprog(
    'LIST',
    [arg('query', 'text', 'literal'), arg('max', 'number', 'literal')],
    'list',
    'knowledge',
    true,
    false,
    'a list of names from a language model (GPT-3)',
    'query',
  ),
  visprog(
    'TAG',
    [image, objects],
    'image',
    'image-op',
    false,
    false,
    'draws the objects with their class labels',
  ),
  visprog(
    'EMOJI',
    [image, objects, arg('emoji', 'text', 'literal')],
    'image',
    'image-op',
    false,
    false,
    'pastes an emoji over each object',
  ),
  visprog(
    'COLORPOP',
    [image, objects],
    'image',
    'image-op',
    false,
    false,
    'keeps the objects in colour, the rest grey',
  ),
  visprog('BGBLUR', [image, objects], 'image', 'image-op', false, false, 'blurs everything but the objects'),
  visprog(
    'REPLACE',
    [image, objects, arg('prompt', 'text', 'literal')],
    'image',
    'image-op',
    true,
    false,
    'inpaints the objects from a prompt (Stable Diffusion)',
    'prompt',
  ),
];

function viper(
  name: string,
  callStyle: CallStyle,
  args: ArgumentSpec[],
  output: ValueType,
  subTask: SubTaskKind,
  neural: boolean,
  distillable: boolean,
  description: string,
  textArgument?: string,
): ModuleSpec {
  return {
    framework: 'viper',
    name,
    callStyle,
    args,
    output,
    subTask,
    neural,
    distillable,
    description,
    textArgument,
  };
}

const py = (name: string, type: ValueType, required = true, extra: Partial<ArgumentSpec> = {}) =>
  arg(name, type, 'any', required, extra);
const coordinates = (required: boolean) => [
  py('left', 'number', required),
  py('lower', 'number', required),
  py('right', 'number', required),
  py('upper', 'number', required),
];

/** ViperGPT's ImagePatch / VideoSegment API and helper functions (cvlab-columbia/viper prompts/api.prompt). */
export const BUILTIN_VIPER_MODULES: readonly ModuleSpec[] = [
  viper(
    'ImagePatch',
    'function',
    [py('image', 'image'), ...coordinates(false)],
    'patch',
    'image-op',
    false,
    false,
    'wraps an image (or a crop of it) as a patch',
  ),
  viper(
    'VideoSegment',
    'function',
    [py('video', 'video'), py('start', 'number', false), py('end', 'number', false)],
    'video',
    'image-op',
    false,
    false,
    'wraps a video (or a span of it)',
  ),
  viper(
    'find',
    'method',
    [py('object_name', 'text')],
    'patches',
    'grounding',
    true,
    true,
    'detects the objects matching a name (GLIP)',
    'object_name',
  ),
  viper(
    'exists',
    'method',
    [py('object_name', 'text')],
    'boolean',
    'grounding',
    true,
    true,
    'whether an object is present',
    'object_name',
  ),
  viper(
    'verify_property',
    'method',
    [py('object_name', 'text'), py('property', 'text', true, { aliases: ['visual_property', 'attribute'] })],
    'boolean',
    'verification',
    true,
    true,
    'whether the object has a property (X-VLM)',
    'property',
  ),
  viper(
    'best_text_match',
    'both',
    [py('option_list', 'list'), py('prefix', 'text', false)],
    'text',
    'text-match',
    true,
    true,
    'the option that best matches the patch (X-VLM)',
  ),
  viper(
    'simple_query',
    'method',
    [py('question', 'text', false)],
    'text',
    'vqa',
    true,
    true,
    'visual question answering (BLIP-2)',
    'question',
  ),
  viper('compute_depth', 'method', [], 'number', 'depth', true, true, 'median depth of the patch (MiDaS)'),
  viper('crop', 'method', coordinates(true), 'patch', 'image-op', false, false, 'a sub-patch'),
  viper(
    'overlaps_with',
    'method',
    coordinates(true),
    'boolean',
    'logic',
    false,
    false,
    'whether two crops overlap',
  ),
  viper(
    'llm_query',
    'both',
    [
      py('question', 'text', true, { aliases: ['query'] }),
      py('context', 'text', false),
      py('long_answer', 'boolean', false),
    ],
    'text',
    'knowledge',
    true,
    false,
    'a language-model answer (GPT-3)',
    'question',
  ),
  viper(
    'best_image_match',
    'function',
    [py('list_patches', 'patches'), py('content', 'list'), py('return_index', 'boolean', false)],
    'patch',
    'grounding',
    true,
    true,
    'the patch most likely to show the content (X-VLM)',
  ),
  viper(
    'distance',
    'function',
    [py('patch_a', 'any'), py('patch_b', 'any')],
    'number',
    'logic',
    false,
    false,
    'distance between two patches or numbers',
  ),
  viper(
    'bool_to_yesno',
    'function',
    [py('bool_answer', 'boolean')],
    'text',
    'logic',
    false,
    false,
    "'yes' or 'no'",
  ),
  viper(
    'coerce_to_numeric',
    'function',
    [py('string', 'text'), py('no_string', 'boolean', false)],
    'number',
    'logic',
    false,
    false,
    'the number in a string',
  ),
  viper(
    'process_guesses',
    'function',
    [py('prompt', 'text'), py('guess1', 'any', false), py('guess2', 'any', false)],
    'text',
    'knowledge',
    true,
    false,
    'merges guesses with a language model (GPT-3)',
    'prompt',
  ),
  viper('frame_iterator', 'method', [], 'patches', 'image-op', false, false, 'the frames of a video segment'),
  viper(
    'frame_from_index',
    'method',
    [py('index', 'number')],
    'patch',
    'image-op',
    false,
    false,
    'one frame',
  ),
  viper(
    'trim',
    'method',
    [py('start', 'number', false), py('end', 'number', false)],
    'video',
    'image-op',
    false,
    false,
    'a span of a video segment',
  ),
  viper(
    'select_answer',
    'method',
    [py('info', 'any'), py('question', 'text'), py('options', 'list')],
    'text',
    'knowledge',
    true,
    false,
    'picks an answer from collected information (GPT-3)',
    'question',
  ),
];

/** A new, writable registry holding the built-in VisProg and ViperGPT modules. */
export function createModuleRegistry(): ModuleRegistry {
  return new ModuleRegistry([...BUILTIN_VISPROG_MODULES, ...BUILTIN_VIPER_MODULES]);
}

let sharedRegistry: ModuleRegistry | undefined;

/** The shared, read-only registry of built-in modules the parsers use when given none. */
export function defaultModuleRegistry(): ModuleRegistry {
  sharedRegistry ??= createModuleRegistry().freeze();
  return sharedRegistry;
}
