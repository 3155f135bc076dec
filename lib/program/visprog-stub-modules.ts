// Deterministic stand-ins for VisProg's neural modules, chosen by each module's output type in the registry.

import { isRasterImage } from './image';
import type { ModuleImplementation } from './interpreter';
import { type ModuleRegistry, defaultModuleRegistry } from './module-registry';
import { VISPROG_CROP_MODULES } from './visprog-semantics';

/** Modules the VisProg interpreter computes itself. */
const BUILT_IN = new Set([...VISPROG_CROP_MODULES, 'COUNT', 'EVAL', 'RESULT']);

/**
 * Stub modules (`sdvp run --framework visprog --modules stub`), by output type: boxes → one box, the middle half
 * of the image; objects → that box as an object; text → 'yes'; list → []; number → 0; boolean → true; image → the
 * input image unchanged (the image operations TAG, EMOJI, COLORPOP, BGBLUR, REPLACE draw nothing). Modules the
 * interpreter computes itself (CROP*, COUNT, EVAL, RESULT) are not stubbed.
 */
export function createStubVisProgModules(
  registry: ModuleRegistry = defaultModuleRegistry(),
): Record<string, ModuleImplementation> {
  const middle = (image: unknown) => {
    if (!isRasterImage(image)) return [0, 0, 1, 1];
    return [
      Math.floor(image.width / 4),
      Math.floor(image.height / 4),
      Math.ceil((image.width * 3) / 4),
      Math.ceil((image.height * 3) / 4),
    ];
  };
  const modules: Record<string, ModuleImplementation> = {};
  for (const spec of registry.specs('visprog')) {
    if (BUILT_IN.has(spec.name)) continue;
    switch (spec.output) {
      case 'boxes':
        modules[spec.name] = ({ image }) => [middle(image)];
        break;
      case 'objects':
        modules[spec.name] = ({ image }) => [{ box: middle(image) }];
        break;
      case 'text':
        modules[spec.name] = () => 'yes';
        break;
      case 'list':
        modules[spec.name] = () => [];
        break;
      case 'number':
        modules[spec.name] = () => 0;
        break;
      case 'boolean':
        modules[spec.name] = () => true;
        break;
      case 'image':
        modules[spec.name] = ({ image }) => image;
        break;
    }
  }
  return modules;
}
