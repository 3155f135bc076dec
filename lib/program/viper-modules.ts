// The contract between the ViperGPT interpreter and the neural modules that serve ImagePatch's methods.

import type { Box, RasterImage } from './image';
import type { MaybePromise } from './maybe-async';
import type { Step } from './step-graph';
import type { JsonValue } from './sub-tasks';

/** What a module implementation is told besides its inputs. */
export interface ViperModuleContext {
  /** The API entry being served (`find`, `simple_query`, ...). */
  module: string;
  /** The step of the program's step graph the call belongs to (null when it matches none). */
  step: Step | null;
  programId: string;
  signal?: AbortSignal;
}

/**
 * The neural modules behind ViperGPT's API, each optional. Images are RasterImages: the patch's crop, whose `region`
 * and `root` say where it lies in the source image; boxes are `[x1, y1, x2, y2]` in the pixels of the image given
 * (y down, x2 and y2 exclusive). The interpreter converts to and from ViperGPT's y-up coordinates.
 */
export interface ViperModules {
  /** Detects objects (GLIP in ViperGPT): boxes, or objects with a `box`, in the pixels of `image`. */
  find?(
    inputs: { image: RasterImage; object_name: string },
    context: ViperModuleContext,
  ): MaybePromise<ReadonlyArray<Box | { box: Box }>>;
  /**
   * Whether the object is present. When absent, `exists` is composed as ViperGPT composes it: `find`, then
   * `simple_query('Is this a <name>?')` on each patch (and for digits, `simple_query` reading the number).
   */
  exists?(
    inputs: { image: RasterImage; object_name: string },
    context: ViperModuleContext,
  ): MaybePromise<boolean>;
  /** Whether the object has the property (X-VLM in ViperGPT). */
  verify_property?(
    inputs: { image: RasterImage; object_name: string; property: string },
    context: ViperModuleContext,
  ): MaybePromise<boolean>;
  /** The best option for the image: its index in `option_list`, or the option itself. */
  best_text_match?(
    inputs: { image: RasterImage; option_list: string[] },
    context: ViperModuleContext,
  ): MaybePromise<number | string>;
  /** Visual question answering (BLIP-2 in ViperGPT). */
  simple_query?(
    inputs: { image: RasterImage; question: string },
    context: ViperModuleContext,
  ): MaybePromise<string>;
  /** The median depth of the patch (MiDaS on the whole image in ViperGPT; `image.root` and `image.region` allow that). */
  compute_depth?(inputs: { image: RasterImage }, context: ViperModuleContext): MaybePromise<number>;
  /** A language-model answer (GPT-3 in ViperGPT). */
  llm_query?(
    inputs: { question: string; context: string | null; long_answer: boolean },
    context: ViperModuleContext,
  ): MaybePromise<string>;
  /** Merges guesses into an answer with a language model (OK-VQA programs). */
  process_guesses?(
    inputs: { prompt: string; guess1: JsonValue; guess2: JsonValue },
    context: ViperModuleContext,
  ): MaybePromise<string>;
  /** The index of the patch most likely to show the content (X-VLM in ViperGPT). */
  best_image_match?(
    inputs: { image: RasterImage | null; list_patches: RasterImage[]; content: string[] },
    context: ViperModuleContext,
  ): MaybePromise<number>;
  /** Picks an answer from collected information (video programs; GPT-3 in ViperGPT). */
  select_answer?(
    inputs: { info: JsonValue; question: string; options: JsonValue },
    context: ViperModuleContext,
  ): MaybePromise<string>;
}

/** The names a ViperModules object may implement. */
export const VIPER_MODULE_NAMES = Object.freeze([
  'find',
  'exists',
  'verify_property',
  'best_text_match',
  'simple_query',
  'compute_depth',
  'llm_query',
  'process_guesses',
  'best_image_match',
  'select_answer',
] as const);

export type ViperModuleName = (typeof VIPER_MODULE_NAMES)[number];

/** Any module implementation, as the interpreter calls it. */
export type ViperModuleImplementation = (
  inputs: Record<string, unknown>,
  context: ViperModuleContext,
) => unknown;
