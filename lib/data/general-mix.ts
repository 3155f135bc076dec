// The student's general training mix: a broad stream of questions and grounding phrases about fresh digit
// scenes drawn from the training split, as a generalist VLM's pretraining data would be — mostly colours,
// counts and finding digits, with only a small share of digit-identity questions (`identityShare`) and
// digit-number phrases (`digitPhraseShare`). Pretraining uses it, and the anti-forgetting term replays it.
// It never draws a validation or test digit.

import type { Box } from '../program/image';
import { type RenderedScene, drawScene, jitteredDigitCrop, locView } from './digit-crops';
import type { MnistDigits } from './mnist-digits';
import { COLOR_QUESTION, COUNT_QUESTION, IDENTITY_QUESTION, objectPhrase, questionText } from './phrases';
import type { Random } from './random';
import { COLOR_NAMES } from './scene';
import { findObjects, objectsIn } from './scene-queries';

export interface GeneralMixOptions {
  /** Share of VQA samples asking a crop's digit identity. Default 0.04. */
  identityShare: number;
  /** Share of grounding samples with a digit-number phrase ('digit 7'). Default 0.04. */
  digitPhraseShare: number;
}

export const DEFAULT_GENERAL_MIX: GeneralMixOptions = { identityShare: 0.04, digitPhraseShare: 0.04 };

/** One VQA sample: a view of a scene (source pixels), a question, the answer. */
export interface AnswerSample {
  image: RenderedScene['image'];
  region: Box;
  text: string;
  answer: string;
  kind: string;
}

/** One grounding sample: a view, a phrase, the boxes of the matching digits in the view's pixels. */
export interface GroundSample {
  image: RenderedScene['image'];
  region: Box;
  text: string;
  boxes: Box[];
  kind: string;
}

function relative(box: Box, region: Box): Box {
  return [box[0] - region[0], box[1] - region[1], box[2] - region[0], box[3] - region[1]];
}

/** Draws general-mix samples from a pool of MNIST samples (the training split's). */
export class GeneralMix {
  readonly #random: Random;
  readonly #pool: readonly number[];
  readonly #digits: MnistDigits;
  readonly #options: GeneralMixOptions;
  #scene: RenderedScene | undefined;
  #uses = 0;

  constructor(
    random: Random,
    pool: readonly number[],
    digits: MnistDigits,
    options: Partial<GeneralMixOptions> = {},
  ) {
    this.#random = random;
    this.#pool = pool;
    this.#digits = digits;
    this.#options = { ...DEFAULT_GENERAL_MIX, ...options };
  }

  /** A scene shared by a few consecutive samples (rendering is the costly part). */
  #nextScene(): RenderedScene {
    if (!this.#scene || this.#uses >= 3) {
      this.#scene = drawScene(this.#random, this.#pool, this.#digits);
      this.#uses = 0;
    }
    this.#uses++;
    return this.#scene;
  }

  answer(): AnswerSample {
    const random = this.#random;
    const { scene, image } = this.#nextScene();
    const whole: Box = [0, 0, scene.width, scene.height];
    const draw = random.next();
    const identity = this.#options.identityShare;
    if (draw < identity + 0.36) {
      const object = random.pick(scene.objects);
      const region = jitteredDigitCrop(random, object.box, scene);
      return draw < identity
        ? { image, region, text: IDENTITY_QUESTION, answer: String(object.digit), kind: 'identity' }
        : { image, region, text: COLOR_QUESTION, answer: object.color, kind: 'color' };
    }
    if (draw < identity + 0.58) {
      const color = random.chance(0.5) ? random.pick(scene.objects).color : random.pick(COLOR_NAMES);
      const yes = findObjects(scene, whole, { color }).length > 0;
      return {
        image,
        region: whole,
        text: questionText({ kind: 'exists', color }),
        answer: yes ? 'yes' : 'no',
        kind: 'exists',
      };
    }
    if (draw < identity + 0.79) {
      return {
        image,
        region: whole,
        text: COUNT_QUESTION,
        answer: String(objectsIn(scene, whole).length),
        kind: 'count',
      };
    }
    const color = random.chance(0.7) ? random.pick(scene.objects).color : random.pick(COLOR_NAMES);
    const count = findObjects(scene, whole, { color }).length;
    return {
      image,
      region: whole,
      text: questionText({ kind: 'count', color }),
      answer: String(count),
      kind: 'count-color',
    };
  }

  ground(): GroundSample {
    const random = this.#random;
    const { scene, image } = this.#nextScene();
    const region = locView(random, scene);
    const present = objectsIn(scene, region);
    const draw = random.next();
    if (draw < this.#options.digitPhraseShare) {
      const digit = present.length > 0 && random.chance(0.7) ? random.pick(present).digit : random.int(0, 9);
      const boxes = present
        .filter((object) => object.digit === digit)
        .map((object) => relative(object.box, region));
      return { image, region, text: objectPhrase({ digit }), boxes, kind: 'digit-phrase' };
    }
    if (draw < 0.5) {
      return {
        image,
        region,
        text: objectPhrase({}),
        boxes: present.map((object) => relative(object.box, region)),
        kind: 'any',
      };
    }
    const color =
      present.length > 0 && random.chance(0.75) ? random.pick(present).color : random.pick(COLOR_NAMES);
    const boxes = present
      .filter((object) => object.color === color)
      .map((object) => relative(object.box, region));
    return { image, region, text: objectPhrase({ color }), boxes, kind: 'color-phrase' };
  }
}
