// What a region of a scene shows, by the benchmark's rules: which digits count as present in a crop, which
// one a crop shows, which match an object phrase. The oracle modules and the question templates share them.

import type { Box } from '../program/image';
import type { ObjectQuery } from './phrases';
import { type Scene, type SceneObject, visibleFraction } from './scene';

/** A digit is present in a region when at least this fraction of its box is inside. */
export const PRESENCE_FRACTION = 0.7;
/**
 * Questions are only generated where every digit is clearly in or out of each region the program crops:
 * its visible fraction is at most this low or at least PRESENCE_FRACTION + the same margin.
 */
export const CLEARLY_OUT_FRACTION = 0.6;
const CLEARLY_IN_FRACTION = PRESENCE_FRACTION + (PRESENCE_FRACTION - CLEARLY_OUT_FRACTION);

/** The whole image as a region. */
export function fullRegion(scene: Scene): Box {
  return [0, 0, scene.width, scene.height];
}

export function matchesQuery(object: SceneObject, query: ObjectQuery): boolean {
  return (
    (query.color === undefined || object.color === query.color) &&
    (query.digit === undefined || object.digit === query.digit)
  );
}

/** The digits present in a region (source pixels), in scene order. */
export function objectsIn(scene: Scene, region: Box): SceneObject[] {
  return scene.objects.filter((object) => visibleFraction(object.box, region) >= PRESENCE_FRACTION);
}

/** The digits present in a region that match a query. */
export function findObjects(scene: Scene, region: Box, query: ObjectQuery): SceneObject[] {
  return objectsIn(scene, region).filter((object) => matchesQuery(object, query));
}

/** Whether no digit is borderline (neither clearly in nor clearly out) in the region. */
export function isClearRegion(scene: Scene, region: Box): boolean {
  return scene.objects.every((object) => {
    const fraction = visibleFraction(object.box, region);
    return fraction <= CLEARLY_OUT_FRACTION || fraction >= CLEARLY_IN_FRACTION;
  });
}

/**
 * The digit a crop shows: the one with the largest visible fraction (then the largest visible area), or
 * undefined when no digit is at least half visible.
 */
export function shownObject(scene: Scene, region: Box): SceneObject | undefined {
  let best: SceneObject | undefined;
  let bestKey = -1;
  for (const object of scene.objects) {
    const fraction = visibleFraction(object.box, region);
    if (fraction < 0.5) continue;
    const area = (object.box[2] - object.box[0]) * (object.box[3] - object.box[1]);
    const key = fraction * 1e6 + area * fraction;
    if (key > bestKey) {
      best = object;
      bestKey = key;
    }
  }
  return best;
}

/** A box clipped to a region and moved into the region's own pixels. */
export function boxInRegion(box: Box, region: Box): Box {
  return [
    Math.max(box[0], region[0]) - region[0],
    Math.max(box[1], region[1]) - region[1],
    Math.min(box[2], region[2]) - region[0],
    Math.min(box[3], region[3]) - region[1],
  ];
}
