// Oracle modules: LOC and VQA answered exactly from the scene graph, by the benchmark's rules. Run through
// VisProgInterpreter they must return every record's answer; that checks programs and interpreter together.

import { SdvpError } from '../errors/sdvp-error';
import { type Box, type RasterImage, isRasterImage } from '../program/image';
import type { ModuleImplementation } from '../program/interpreter';
import { parseObjectPhrase, parseQuestion } from './phrases';
import type { Scene } from './scene';
import { boxInRegion, findObjects, fullRegion, shownObject } from './scene-queries';

/** Finds the scene an image (or a crop of it) shows, by its `ref`. */
export type SceneLookup = (ref: string) => Scene | undefined;

/** The scene and the region (source pixels) an image argument shows. */
export function sceneView(image: unknown, lookup: SceneLookup): { scene: Scene; region: Box } {
  if (!isRasterImage(image)) throw new SdvpError('ERR_SDVP_ARG', 'The oracle needs an image argument.');
  const ref = (image as RasterImage).ref ?? (image as RasterImage).root?.ref;
  const scene = ref === undefined ? undefined : lookup(ref);
  if (!scene) {
    throw new SdvpError('ERR_SDVP_ARG', `The oracle has no scene graph for image '${ref ?? '(no ref)'}'.`, {
      field: 'image.ref',
    });
  }
  return { scene, region: image.region ?? fullRegion(scene) };
}

/** LOC: the boxes (in the given image's pixels) of the digits present in it that match the phrase. */
export function oracleLoc(lookup: SceneLookup): ModuleImplementation {
  return ({ image, object }) => {
    const query = parseObjectPhrase(object);
    if (!query)
      throw new SdvpError(
        'ERR_SDVP_ARG',
        `The oracle LOC does not know the object phrase ${JSON.stringify(object)}.`,
      );
    const { scene, region } = sceneView(image, lookup);
    return findObjects(scene, region, query).map((found) => boxInRegion(found.box, region));
  };
}

/** VQA: the benchmark's questions answered from the scene graph. */
export function oracleVqa(lookup: SceneLookup): ModuleImplementation {
  return ({ image, question }) => {
    const meaning = parseQuestion(question);
    if (!meaning)
      throw new SdvpError(
        'ERR_SDVP_ARG',
        `The oracle VQA does not know the question ${JSON.stringify(question)}.`,
      );
    const { scene, region } = sceneView(image, lookup);
    switch (meaning.kind) {
      case 'identity':
      case 'color': {
        const shown = shownObject(scene, region);
        if (!shown)
          throw new SdvpError('ERR_SDVP_ARG', 'The oracle VQA was asked about a crop that shows no digit.');
        return meaning.kind === 'identity' ? String(shown.digit) : shown.color;
      }
      case 'count':
        return String(findObjects(scene, region, { color: meaning.color }).length);
      case 'exists':
        return findObjects(scene, region, { color: meaning.color }).length > 0 ? 'yes' : 'no';
    }
  };
}

/** Both oracle modules, ready for `new VisProgInterpreter({ modules })`. */
export function oracleModules(lookup: SceneLookup): { LOC: ModuleImplementation; VQA: ModuleImplementation } {
  return { LOC: oracleLoc(lookup), VQA: oracleVqa(lookup) };
}
