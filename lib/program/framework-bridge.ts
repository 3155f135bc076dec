// One set of neural modules for both frameworks: VisProg's LOC and VQA implementations serve ViperGPT's find
// and simple_query (the same sub-tasks: grounding and visual question answering), and both frameworks' runs
// take their inputs from one record's images.

import type { RasterImage } from './image';
import type { Box } from './image';
import type { ModuleCallContext, ModuleImplementation } from './interpreter';
import type { ViperModuleContext, ViperModules } from './viper-modules';

/** ViperGPT module names and the VisProg modules that answer the same sub-task. */
export const VIPER_TO_VISPROG: Readonly<Record<string, string>> = Object.freeze({
  find: 'LOC',
  simple_query: 'VQA',
});

/** The VisProg module answering the same sub-task as a module of either framework (itself for VisProg's). */
export function visprogModuleOf(module: string): string {
  return VIPER_TO_VISPROG[module] ?? module;
}

function context(viper: ViperModuleContext): ModuleCallContext {
  return { step: viper.step as ModuleCallContext['step'], programId: viper.programId, signal: viper.signal };
}

/** ViperGPT modules (find, simple_query) answered by VisProg-style LOC and VQA implementations. */
export function viperModulesFromVisProg(
  modules: Readonly<Record<string, ModuleImplementation>>,
): ViperModules {
  const viper: ViperModules = {};
  const loc = modules.LOC;
  const vqa = modules.VQA;
  if (loc)
    viper.find = async ({ image, object_name }, ctx) =>
      (await loc({ image, object: object_name }, context(ctx))) as Box[];
  if (vqa)
    viper.simple_query = async ({ image, question }, ctx) =>
      String(await vqa({ image, question }, context(ctx)));
  return viper;
}

/**
 * A ViperGPT program's inputs from a record's images: `image` for one image (IMAGE), `image_dict` with `left`
 * and `right` for a pair (LEFT, RIGHT), as ViperGPT's GQA and NLVR programs take them.
 */
export function viperInputs(images: Readonly<Record<string, RasterImage>>): Record<string, unknown> {
  if (images.LEFT && images.RIGHT) return { image_dict: { left: images.LEFT, right: images.RIGHT } };
  if (images.IMAGE) return { image: images.IMAGE };
  return Object.fromEntries(Object.entries(images).map(([name, image]) => [name.toLowerCase(), image]));
}
