// ViperGPT's API inside the sandbox: ImagePatch's attributes and methods, VideoSegment, and the module-level
// functions, each call recorded in the trace and the neural ones served by pluggable modules.

import type { Box, RasterImage } from './image';
import { ImagePatch, createImagePatch, cropPatch, pixelBoxToPatchCoordinates } from './image-patch';
import { type MaybePromise, sequence, then } from './maybe-async';
import { type ModuleRegistry, defaultModuleRegistry } from './module-registry';
import { bindArguments } from './python-arguments';
import { pythonInt } from './python-builtins';
import { ModuleFailure, PythonError, raise } from './python-errors';
import { collect } from './python-iteration';
import {
  DONE,
  type Keywords,
  PyBoundMethod,
  PyBuiltin,
  PyDict,
  PyImage,
  PyIterator,
  type Runtime,
  type Value,
  isIntLike,
  isTruthy,
  pyCompare,
  pyEquals,
  toBigInt,
  typeName,
} from './python-values';
import type { StepTrace } from './trace';
import { PyVideo, VideoSegment, createVideoSegment, frameAt, trimSegment } from './video-segment';
import { valueToJson, valueToTrace } from './viper-convert';
import { boolToYesNo, coerceToNumeric, viperDistance } from './viper-helpers';
import type { ViperModuleName } from './viper-modules';
import { regionBox } from './visprog-semantics';
import { wordsToNumber } from './word-numbers';

/** Where in the program a call is made: its step in the step graph (if any) and its source position. */
export interface CallSite {
  stepId: number | null;
  line: number;
  column: number;
  output: string | null;
}

/** What the API needs from the running interpreter. */
export interface ViperHost extends Runtime {
  /** The call being made now (the interpreter sets it right before each call). */
  readonly site: CallSite;
  readonly registry: ModuleRegistry;
  hasModule(name: ViperModuleName): boolean;
  /**
   * Calls a module and records it (moduleCalled: true); `check` turns its output into what the API returns, or
   * throws ModuleFailure, which is recorded as the call's error.
   */
  callModule<T>(
    name: ViperModuleName,
    inputs: Record<string, unknown>,
    site: CallSite,
    check: (output: unknown) => T,
  ): MaybePromise<T>;
  /** Records an API call that calls no model (or composes module calls); the caller fills in its value. */
  record(module: string, inputs: Record<string, unknown>, site: CallSite): StepTrace;
  /** Completes a record: its value (or error) and duration. */
  complete(record: StepTrace, value: unknown, error?: string): void;
}

function hostOf(runtime: Runtime): ViperHost {
  return runtime as ViperHost;
}

/**
 * Binds a call's arguments by the registry's parameter names (accepting their aliases, such as `attribute` for
 * `property`); `override` gives the parameters where ViperGPT's method differs from the registry entry.
 */
function apiArguments(
  host: ViperHost,
  name: string,
  args: Value[],
  keywords: Keywords,
  override?: { names: readonly string[]; required: number },
): Array<Value | undefined> {
  const spec = host.registry.get('viper', name) ?? defaultModuleRegistry().get('viper', name)!;
  let normalized = keywords;
  if (keywords && keywords.size > 0) {
    normalized = new Map();
    for (const [keyword, value] of keywords) {
      const canonical =
        spec.args.find((arg) => arg.name === keyword || arg.aliases?.includes(keyword))?.name ?? keyword;
      if (normalized.has(canonical)) raise.type(`${name}() got multiple values for argument '${canonical}'`);
      normalized.set(canonical, value);
    }
  }
  if (override) return bindArguments(name, args, normalized, override);
  let required = 0;
  while (required < spec.args.length && spec.args[required].required) required++;
  return bindArguments(name, args, normalized, { names: spec.args.map((arg) => arg.name), required });
}

function text(value: Value | undefined, method: string, parameter: string): string {
  if (typeof value !== 'string') {
    raise.type(`${method}() argument '${parameter}' must be str, not ${typeName(value ?? null)}`);
  }
  return value as string;
}

function integerOrNone(value: Value | undefined, method: string, parameter: string): number | null {
  if (value === undefined || value === null) return null;
  if (!isIntLike(value)) {
    raise.type(`${method}() argument '${parameter}' must be an int or None, not ${typeName(value)}`);
  }
  return Number(toBigInt(value as bigint | boolean));
}

/** Runs a recorded API call: the record gets the value (or the error) when the call completes. */
function recorded(
  host: ViperHost,
  module: string,
  inputs: Record<string, unknown>,
  site: CallSite,
  compute: () => MaybePromise<Value>,
): MaybePromise<Value> {
  const record = host.record(module, inputs, site);
  const fail = (error: unknown): never => {
    host.complete(record, undefined, error instanceof Error ? error.message : String(error));
    throw error;
  };
  let result: MaybePromise<Value>;
  try {
    result = compute();
  } catch (error) {
    return fail(error);
  }
  if (result instanceof Promise) {
    return result.then((value) => {
      host.complete(record, valueToTrace(value));
      return value;
    }, fail);
  }
  host.complete(record, valueToTrace(result));
  return result;
}

// ---- module output checks ----

function describe(output: unknown): string {
  if (output === null || output === undefined) return String(output);
  if (Array.isArray(output)) return `a list of ${output.length}`;
  if (typeof output === 'string')
    return `the string ${JSON.stringify(output.length > 40 ? `${output.slice(0, 40)}...` : output)}`;
  return typeof output === 'object' ? 'an object' : `${typeof output} ${String(output)}`;
}

function expect(module: string, output: unknown, expected: string): never {
  throw new ModuleFailure(
    module,
    `the ${module} implementation returned ${describe(output)}, but ${expected} was expected`,
  );
}

function checkBoxes(output: unknown): Box[] {
  if (!Array.isArray(output))
    return expect('find', output, 'a list of boxes [x1, y1, x2, y2] (or objects with a box)');
  return output.map(
    (entry) => regionBox(entry) ?? expect('find', entry, 'a box [x1, y1, x2, y2] (or an object with a box)'),
  );
}

function checkBoolean(module: string): (output: unknown) => boolean {
  return (output) => (typeof output === 'boolean' ? output : expect(module, output, 'a boolean'));
}

function checkString(module: string): (output: unknown) => string {
  return (output) => (typeof output === 'string' ? output : expect(module, output, 'a string'));
}

function checkNumber(module: string): (output: unknown) => number {
  return (output) =>
    typeof output === 'number' && !Number.isNaN(output) ? output : expect(module, output, 'a number');
}

function checkIndex(module: string, count: number, options?: readonly string[]): (output: unknown) => number {
  return (output) => {
    if (typeof output === 'number' && Number.isInteger(output) && output >= 0 && output < count)
      return output;
    if (typeof output === 'string' && options) {
      const index = options.indexOf(output);
      if (index >= 0) return index;
    }
    return expect(module, output, `an index in [0, ${count})${options ? ' or one of the options' : ''}`);
  };
}

// ---- ImagePatch methods ----

type PatchMethod = (
  patch: ImagePatch,
  args: Value[],
  keywords: Keywords,
  runtime: Runtime,
) => MaybePromise<Value>;

function findPatches(
  host: ViperHost,
  patch: ImagePatch,
  objectName: string,
  site: CallSite,
): MaybePromise<ImagePatch[]> {
  // ViperGPT asks GLIP for 'people' when the program says 'person'.
  const sent = objectName === 'person' ? 'people' : objectName;
  return then(
    host.callModule('find', { image: patch.cropped, object_name: sent }, site, checkBoxes),
    (boxes) => boxes.map((box) => cropPatch(patch, pixelBoxToPatchCoordinates(box, patch.height))),
  );
}

function askQuestion(
  host: ViperHost,
  patch: ImagePatch,
  question: string,
  site: CallSite,
): MaybePromise<string> {
  return host.callModule(
    'simple_query',
    { image: patch.cropped, question },
    site,
    checkString('simple_query'),
  );
}

/** ViperGPT's exists() when no exists module is given: find, then ask each patch whether it is the object. */
function composedExists(
  host: ViperHost,
  patch: ImagePatch,
  objectName: string,
  site: CallSite,
): MaybePromise<boolean> {
  if (/^[0-9]+$/.test(objectName) || objectName.toLowerCase().startsWith('number')) {
    const wanted = wordsToNumber(
      objectName
        .toLowerCase()
        .replace(/number/g, '')
        .trim(),
    );
    return then(
      askQuestion(host, patch, 'What number is written in the image (in digits)?', site),
      (answer) => pyEquals(wordsToNumber(answer), wanted),
    );
  }
  return then(findPatches(host, patch, objectName, site), (patches) =>
    then(
      sequence(patches.length, (i) => askQuestion(host, patches[i], `Is this a ${objectName}?`, site)),
      (answers) => answers.some((answer) => answer.includes('yes')),
    ),
  );
}

const PATCH_METHODS: Record<string, PatchMethod> = {
  find: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [name] = apiArguments(host, 'find', args, keywords);
    return findPatches(host, patch, text(name, 'find', 'object_name'), site);
  },
  exists: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [name] = apiArguments(host, 'exists', args, keywords);
    if (typeof name !== 'string')
      raise.attribute(`'${typeName(name ?? null)}' object has no attribute 'isdigit'`);
    const objectName = name as string;
    if (host.hasModule('exists')) {
      return host.callModule(
        'exists',
        { image: patch.cropped, object_name: objectName },
        site,
        checkBoolean('exists'),
      );
    }
    return recorded(host, 'exists', { image: patch.cropped, object_name: objectName }, site, () =>
      composedExists(host, patch, objectName, site),
    );
  },
  verify_property: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [objectName, property] = apiArguments(host, 'verify_property', args, keywords);
    const inputs = {
      image: patch.cropped,
      object_name: text(objectName, 'verify_property', 'object_name'),
      property: text(property, 'verify_property', 'property'),
    };
    return host.callModule('verify_property', inputs, site, checkBoolean('verify_property'));
  },
  best_text_match: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [optionList, prefix] = apiArguments(host, 'best_text_match', args, keywords);
    if (optionList === undefined || optionList === null) raise.type('best_text_match() needs an option_list');
    return then(collect(optionList as Value, runtime), (options) => {
      const strings = options.map((option, i) => text(option, 'best_text_match', `option_list[${i}]`));
      if (strings.length === 0) raise.value('best_text_match() got an empty option_list');
      const used =
        prefix === undefined || prefix === null
          ? strings
          : strings.map((option) => `${text(prefix, 'best_text_match', 'prefix')} ${option}`);
      const check = checkIndex('best_text_match', used.length, used);
      return then(
        host.callModule('best_text_match', { image: patch.cropped, option_list: used }, site, (output) =>
          typeof output === 'string' && strings.includes(output) ? strings.indexOf(output) : check(output),
        ),
        (index) => strings[index],
      );
    });
  },
  simple_query: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [question] = apiArguments(host, 'simple_query', args, keywords);
    // ViperGPT's API documentation: with no question, the patch is asked "What is this?".
    const asked =
      question === undefined || question === null
        ? 'What is this?'
        : text(question, 'simple_query', 'question');
    return askQuestion(host, patch, asked, site);
  },
  compute_depth: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    apiArguments(host, 'compute_depth', args, keywords);
    return host.callModule('compute_depth', { image: patch.cropped }, site, checkNumber('compute_depth'));
  },
  crop: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [left, lower, right, upper] = apiArguments(host, 'crop', args, keywords).map((value) =>
      Number(pythonInt(value ?? null)),
    );
    return recorded(host, 'crop', { image: patch.cropped, left, lower, right, upper }, site, () =>
      cropPatch(patch, { left, lower, right, upper }),
    );
  },
  overlaps_with: (patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [left, lower, right, upper] = apiArguments(host, 'overlaps_with', args, keywords) as Value[];
    const inputs = {
      image: patch.cropped,
      left: valueToTrace(left),
      lower: valueToTrace(lower),
      right: valueToTrace(right),
      upper: valueToTrace(upper),
    };
    return recorded(
      host,
      'overlaps_with',
      inputs,
      site,
      () =>
        pyCompare(BigInt(patch.left), right, '<=') &&
        pyCompare(BigInt(patch.right), left, '>=') &&
        pyCompare(BigInt(patch.lower), upper, '<=') &&
        pyCompare(BigInt(patch.upper), lower, '>='),
    );
  },
  llm_query: (_patch, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    // ImagePatch.llm_query(question, long_answer=True) forwards to llm_query(question, None, long_answer).
    const [question, longAnswer] = apiArguments(host, 'llm_query', args, keywords, {
      names: ['question', 'long_answer'],
      required: 1,
    });
    return askLanguageModel(host, site, question, null, longAnswer);
  },
};

function askLanguageModel(
  host: ViperHost,
  site: CallSite,
  question: Value | undefined,
  context: Value | undefined,
  longAnswer: Value | undefined,
): MaybePromise<Value> {
  const inputs = {
    question: text(question, 'llm_query', 'question'),
    context: context === undefined || context === null ? null : text(context, 'llm_query', 'context'),
    long_answer: longAnswer === undefined ? true : isTruthy(longAnswer),
  };
  return host.callModule('llm_query', inputs, site, checkString('llm_query'));
}

function patchAttribute(patch: ImagePatch, name: string): Value | undefined {
  switch (name) {
    case 'left':
      return BigInt(patch.left);
    case 'lower':
      return BigInt(patch.lower);
    case 'right':
      return BigInt(patch.right);
    case 'upper':
      return BigInt(patch.upper);
    case 'width':
      return BigInt(patch.width);
    case 'height':
      return BigInt(patch.height);
    case 'horizontal_center':
      return patch.horizontalCenter;
    case 'vertical_center':
      return patch.verticalCenter;
    case 'cropped_image':
      return patch.croppedValue;
    case 'original_image':
      return new PyImage(patch.cropped.root ?? patch.cropped);
  }
  if (!Object.prototype.hasOwnProperty.call(PATCH_METHODS, name)) return undefined;
  return new PyBoundMethod(patch, name, PATCH_METHODS[name] as PyBoundMethod['implementation']);
}

// ---- VideoSegment ----

/** `segment.frame_iterator()`: an ImagePatch per frame, made as the loop reaches it. */
class FrameIterator extends PyIterator {
  readonly typeName = 'generator';
  #index = 0;

  constructor(readonly segment: VideoSegment) {
    super();
  }

  next(): Value | typeof DONE {
    if (this.#index >= this.segment.numFrames) return DONE;
    return createImagePatch(this.segment.frames[this.#index++]);
  }
}

type SegmentMethod = (
  segment: VideoSegment,
  args: Value[],
  keywords: Keywords,
  runtime: Runtime,
) => MaybePromise<Value>;

const SEGMENT_METHODS: Record<string, SegmentMethod> = {
  frame_iterator: (segment, args, keywords, runtime) => {
    const host = hostOf(runtime);
    apiArguments(host, 'frame_iterator', args, keywords);
    return recorded(host, 'frame_iterator', {}, host.site, () => new FrameIterator(segment));
  },
  frame_from_index: (segment, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const [index] = apiArguments(host, 'frame_from_index', args, keywords);
    if (!isIntLike(index ?? null))
      raise.type(`frame_from_index() argument 'index' must be an int, not ${typeName(index ?? null)}`);
    const position = Number(toBigInt(index as bigint | boolean));
    return recorded(host, 'frame_from_index', { index: position }, host.site, () =>
      createImagePatch(frameAt(segment, position)),
    );
  },
  trim: (segment, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const [start, end] = apiArguments(host, 'trim', args, keywords);
    const from = integerOrNone(start, 'trim', 'start');
    const to = integerOrNone(end, 'trim', 'end');
    return recorded(host, 'trim', { start: from, end: to }, host.site, () => trimSegment(segment, from, to));
  },
  select_answer: (_segment, args, keywords, runtime) => {
    const host = hostOf(runtime);
    const site = host.site;
    const [info, question, options] = apiArguments(host, 'select_answer', args, keywords);
    if (!(info instanceof PyDict))
      raise.attribute(`'${typeName(info ?? null)}' object has no attribute 'items'`);
    const inputs = {
      info: valueToJson(info as PyDict),
      question: text(question, 'select_answer', 'question'),
      options: valueToJson(options ?? null),
    };
    return then(host.callModule('select_answer', inputs, site, checkString('select_answer')), (answer) =>
      answer.trim(),
    );
  },
};

function segmentAttribute(segment: VideoSegment, name: string): Value | undefined {
  switch (name) {
    case 'start':
      return BigInt(segment.start);
    case 'end':
      return BigInt(segment.end);
    case 'num_frames':
      return BigInt(segment.numFrames);
  }
  if (!Object.prototype.hasOwnProperty.call(SEGMENT_METHODS, name)) return undefined;
  return new PyBoundMethod(segment, name, SEGMENT_METHODS[name] as PyBoundMethod['implementation']);
}

/** The method `name` of an API object (ImagePatch, VideoSegment), unbound; undefined if it has none. */
export function viperMethod(value: Value, name: string): PyBoundMethod['implementation'] | undefined {
  const table =
    value instanceof ImagePatch ? PATCH_METHODS : value instanceof VideoSegment ? SEGMENT_METHODS : undefined;
  if (!table || !Object.prototype.hasOwnProperty.call(table, name)) return undefined;
  return table[name] as PyBoundMethod['implementation'];
}

/** The attribute `name` of an API object (ImagePatch, VideoSegment), or undefined. */
export function viperAttribute(value: Value, name: string): Value | undefined {
  if (value instanceof ImagePatch) return patchAttribute(value, name);
  if (value instanceof VideoSegment) return segmentAttribute(value, name);
  return undefined;
}

// ---- module-level functions ----

function imageOf(value: Value | undefined): RasterImage {
  if (value instanceof PyImage) return value.image;
  if (value === null || value === undefined) {
    throw new PythonError(
      'TypeError',
      'ImagePatch() got None for its image: no image was given to the program (sdvp run --image PATH)',
    );
  }
  if (value instanceof ImagePatch)
    raise.type('ImagePatch() needs an image, not an ImagePatch (use patch.cropped_image)');
  return raise.type(`ImagePatch() needs an image, not ${typeName(value)}`);
}

function apiFunction(
  name: string,
  implementation: (args: Value[], keywords: Keywords, host: ViperHost) => MaybePromise<Value>,
): [string, PyBuiltin] {
  return [
    name,
    new PyBuiltin(name, (args, keywords, runtime) => implementation(args, keywords, hostOf(runtime))),
  ];
}

/** ViperGPT's module-level names: ImagePatch, VideoSegment and the helper functions. */
export const VIPER_FUNCTIONS: ReadonlyMap<string, PyBuiltin> = new Map([
  apiFunction('ImagePatch', (args, keywords, host) => {
    const site = host.site;
    const [image, ...coordinates] = apiArguments(host, 'ImagePatch', args, keywords);
    const given = coordinates.map((value) => (value === undefined ? null : value));
    const inputs: Record<string, unknown> = { image: valueToTrace(image ?? null) };
    ['left', 'lower', 'right', 'upper'].forEach((name, i) => {
      if (given[i] !== null) inputs[name] = valueToTrace(given[i]);
    });
    return recorded(host, 'ImagePatch', inputs, site, () => {
      const raster = imageOf(image);
      if (given.every((value) => value === null)) return createImagePatch(raster);
      const [left, lower, right, upper] = given.map((value) => {
        if (value === null) raise.type("unsupported operand type(s) for -: 'int' and 'NoneType'");
        if (!isIntLike(value))
          raise.type('slice indices must be integers or None or have an __index__ method');
        return Number(toBigInt(value as bigint | boolean));
      });
      return createImagePatch(raster, { left, lower, right, upper });
    });
  }),
  apiFunction('VideoSegment', (args, keywords, host) => {
    const site = host.site;
    const [video, start, end] = apiArguments(host, 'VideoSegment', args, keywords);
    if (!(video instanceof PyVideo)) {
      raise.type(
        video === null || video === undefined
          ? 'VideoSegment() got None for its video: no video was given to the program'
          : `VideoSegment() needs a video, not ${typeName(video)}`,
      );
    }
    const from = integerOrNone(start, 'VideoSegment', 'start');
    const to = integerOrNone(end, 'VideoSegment', 'end');
    return recorded(host, 'VideoSegment', { start: from, end: to }, site, () =>
      createVideoSegment((video as PyVideo).video.frames, from, to),
    );
  }),
  apiFunction('best_image_match', (args, keywords, host) => {
    const site = host.site;
    const [listPatches, content, returnIndex] = apiArguments(host, 'best_image_match', args, keywords);
    return then(collect(listPatches ?? null, host), (patches) => {
      if (patches.length === 0) return null;
      const crops = patches.map((patch) => {
        if (!(patch instanceof ImagePatch))
          raise.type(`best_image_match() needs ImagePatch objects, not ${typeName(patch)}`);
        return (patch as ImagePatch).cropped;
      });
      return then(collect(content ?? null, host), (items) => {
        const phrases = items.map((item, i) => text(item, 'best_image_match', `content[${i}]`));
        const roots = new Set(crops.map((crop) => crop.root ?? crop));
        const inputs = {
          image: roots.size === 1 ? [...roots][0] : null,
          list_patches: crops,
          content: phrases,
        };
        return then(
          host.callModule('best_image_match', inputs, site, checkIndex('best_image_match', crops.length)),
          (index) => (returnIndex !== undefined && isTruthy(returnIndex) ? BigInt(index) : patches[index]),
        );
      });
    });
  }),
  apiFunction('distance', (args, keywords, host) => {
    const [a, b] = apiArguments(host, 'distance', args, keywords) as Value[];
    return recorded(host, 'distance', { patch_a: valueToTrace(a), patch_b: valueToTrace(b) }, host.site, () =>
      viperDistance(a, b, host),
    );
  }),
  apiFunction('bool_to_yesno', (args, keywords, host) => {
    const [answer] = apiArguments(host, 'bool_to_yesno', args, keywords) as Value[];
    return recorded(host, 'bool_to_yesno', { bool_answer: valueToTrace(answer) }, host.site, () =>
      boolToYesNo(answer),
    );
  }),
  apiFunction('coerce_to_numeric', (args, keywords, host) => {
    const [value, noString] = apiArguments(host, 'coerce_to_numeric', args, keywords);
    return recorded(host, 'coerce_to_numeric', { string: valueToTrace(value ?? null) }, host.site, () =>
      coerceToNumeric(value ?? null, noString !== undefined && isTruthy(noString)),
    );
  }),
  apiFunction('llm_query', (args, keywords, host) => {
    const site = host.site;
    const [question, context, longAnswer] = apiArguments(host, 'llm_query', args, keywords);
    return askLanguageModel(host, site, question, context, longAnswer);
  }),
  apiFunction('process_guesses', (args, keywords, host) => {
    const site = host.site;
    const [prompt, guess1, guess2] = apiArguments(host, 'process_guesses', args, keywords);
    const inputs = {
      prompt: text(prompt, 'process_guesses', 'prompt'),
      guess1: valueToJson(guess1 ?? null),
      guess2: valueToJson(guess2 ?? null),
    };
    return host.callModule('process_guesses', inputs, site, checkString('process_guesses'));
  }),
]);
