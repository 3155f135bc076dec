// Training views of digit scenes drawn on the fly from one split's MNIST samples: crops around single
// digits (as CROP makes them, with jitter) and whole or half-plane views of scenes (as LOC sees them), written
// straight into batch tensors. The built-in teachers and the student's general training mix use them.

import type { Box, RasterImage } from '../program/image';
import { createImage } from '../program/image';
import { visprogCropBox, visprogExpandBox } from '../program/visprog-semantics';
import type { MnistDigits } from './mnist-digits';
import type { Random } from './random';
import { type Scene, renderScene } from './scene';
import { DEFAULT_LAYOUT, type SceneLayoutOptions, sampleScene } from './scene-layout';
import { objectsIn } from './scene-queries';

/** A rendered scene with its graph. */
export interface RenderedScene {
  scene: Scene;
  image: RasterImage;
}

/** Samples and renders one scene from a pool of MNIST samples. */
export function drawScene(
  random: Random,
  pool: readonly number[],
  digits: MnistDigits,
  layout: SceneLayoutOptions = DEFAULT_LAYOUT,
): RenderedScene {
  const scene = sampleScene(random, pool, digits, layout);
  return { scene, image: createImage(scene.width, scene.height, 3, renderScene(scene, digits)) };
}

/** A crop around a digit box as VisProg's CROP makes it (1.5× about the centre), jittered by up to `jitter` pixels. */
export function jitteredDigitCrop(random: Random, box: Box, scene: Scene, jitter = 2): Box {
  const dx = random.int(-jitter, jitter);
  const dy = random.int(-jitter, jitter);
  const grow = random.int(-jitter, jitter);
  const moved: Box = [box[0] + dx - grow, box[1] + dy - grow, box[2] + dx + grow, box[3] + dy + grow];
  return visprogExpandBox(moved, scene.width, scene.height);
}

const RELATION_CROPS = ['CROP_LEFTOF', 'CROP_RIGHTOF', 'CROP_ABOVE', 'CROP_BELOW'] as const;

/**
 * A region of a scene as LOC sees it in the benchmark's programs: the whole image, or (with probability
 * `halfPlane`) the half-plane beside one digit's centre, as CROP_LEFTOF & co. cut it.
 */
export function locView(random: Random, scene: Scene, halfPlane = 0.3): Box {
  if (!random.chance(halfPlane)) return [0, 0, scene.width, scene.height];
  const reference = random.pick(scene.objects);
  return (
    visprogCropBox(random.pick(RELATION_CROPS), reference.box, scene.width, scene.height) ?? [
      0,
      0,
      scene.width,
      scene.height,
    ]
  );
}

/** The digits a LOC view shows (by the benchmark's presence rule). */
export { objectsIn };
