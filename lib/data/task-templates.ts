// The frozen "program generator" of the benchmark: question templates for digits-qa, digits-pairs and
// colors-qa, each producing a question, its VisProg program and the answer computed from the scene graph.

import type { Box } from '../program/image';
import { visprogCropBox } from '../program/visprog-semantics';
import {
  COLOR_QUESTION,
  COUNT_QUESTION,
  IDENTITY_QUESTION,
  type ObjectQuery,
  objectPhrase,
  questionText,
} from './phrases';
import type { Random } from './random';
import { COLOR_NAMES, type ColorName, type Scene, type SceneObject } from './scene';
import { findObjects, fullRegion, isClearRegion } from './scene-queries';
import { askFirst, find, pairProgram, query, relationBody, singleImageProgram } from './viper-programs';
import { type RelationCrop, VisProgBuilder } from './visprog-builder';

export type TaskName = 'digits-qa' | 'digits-pairs' | 'colors-qa';
export const TASK_NAMES: readonly TaskName[] = ['digits-qa', 'digits-pairs', 'colors-qa'];
/** The tasks SDVP distils for; colors-qa is the "previous task" that measures what the student keeps. */
export const TARGET_TASKS: readonly TaskName[] = ['digits-qa', 'digits-pairs'];

/** The scenes a question is about: IMAGE, or LEFT and RIGHT for digits-pairs. */
export type TaskScenes = Readonly<Record<string, Scene>>;

export interface TaskDraft {
  template: string;
  question: string;
  program: string;
  /** The same question as a ViperGPT program. */
  viperProgram: string;
  answer: string;
}

type Template = (scenes: TaskScenes, random: Random) => TaskDraft | null;

interface WeightedTemplate {
  name: string;
  weight: number;
  make: Template;
}

const RELATIONS: ReadonlyArray<{ crop: RelationCrop; words: string }> = [
  { crop: 'CROP_LEFTOF', words: 'left of' },
  { crop: 'CROP_RIGHTOF', words: 'right of' },
  { crop: 'CROP_ABOVE', words: 'above' },
  { crop: 'CROP_BELOW', words: 'below' },
];

function unique(scene: Scene, query: ObjectQuery): SceneObject | undefined {
  const found = findObjects(scene, fullRegion(scene), query);
  return found.length === 1 ? found[0] : undefined;
}

/** Colours that exactly one digit of the scene has. */
function uniqueColors(scene: Scene): ColorName[] {
  return COLOR_NAMES.filter((color) => unique(scene, { color }) !== undefined);
}

/** The centre of the patch ViperGPT's find makes of a box (10 pixels of margin, clamped to the image), y down. */
function viperCentre(box: Box, scene: Scene): [number, number] {
  const margin = 10;
  const left = Math.max(0, box[0] - margin);
  const right = Math.min(scene.width, box[2] + margin);
  const top = Math.max(0, box[1] - margin);
  const bottom = Math.min(scene.height, box[3] + margin);
  return [(left + right) / 2, (top + bottom) / 2];
}

function onSide(crop: RelationCrop, object: SceneObject, reference: SceneObject, scene: Scene): boolean {
  const [x, y] = viperCentre(object.box, scene);
  const [rx, ry] = viperCentre(reference.box, scene);
  if (crop === 'CROP_LEFTOF') return x < rx;
  if (crop === 'CROP_RIGHTOF') return x > rx;
  if (crop === 'CROP_ABOVE') return y < ry;
  return y > ry;
}

/**
 * The one digit `relation` of the reference digit, when neither framework leaves a doubt which: VisProg's
 * half-plane crop holds exactly that digit (and none half in), and it is the only digit whose ViperGPT patch
 * centre lies on that side of the reference's.
 */
function relatedObject(scene: Scene, reference: SceneObject, crop: RelationCrop): SceneObject | undefined {
  const region = visprogCropBox(crop, reference.box, scene.width, scene.height);
  if (!region || !isClearRegion(scene, region)) return undefined;
  const present = findObjects(scene, region, {});
  if (present.length !== 1 || present[0] === reference) return undefined;
  const sideways = scene.objects.filter(
    (object) => object !== reference && onSide(crop, object, reference, scene),
  );
  return sideways.length === 1 && sideways[0] === present[0] ? present[0] : undefined;
}

/** A digit 0–9: one the scenes show with probability 1/2, else any (so yes/no answers stay balanced). */
function pickDigit(random: Random, shown: readonly number[]): number {
  return shown.length > 0 && random.chance(0.5) ? random.pick(shown) : random.int(0, 9);
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

/**
 * "Which digit / what color is the digit <relation> the <color> digit?": LOC of the uniquely coloured reference,
 * the half-plane crop beside it, LOC of the one digit there, CROP around it, VQA on the crop.
 */
function relationTemplate(
  name: string,
  vqaQuestion: string,
  question: (words: string, color: ColorName) => string,
  answer: (target: SceneObject) => string,
): WeightedTemplate {
  return {
    name,
    weight: 2,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const options: Array<{ color: ColorName; relation: (typeof RELATIONS)[number]; target: SceneObject }> =
        [];
      for (const color of uniqueColors(scene)) {
        const reference = unique(scene, { color })!;
        for (const relation of RELATIONS) {
          const target = relatedObject(scene, reference, relation.crop);
          if (target) options.push({ color, relation, target });
        }
      }
      if (options.length === 0) return null;
      const { color, relation, target } = random.pick(options);
      const p = new VisProgBuilder();
      const side = p.crop(relation.crop, 'IMAGE', p.loc('IMAGE', objectPhrase({ color })));
      const result = p.askAbout(side, objectPhrase({}), vqaQuestion);
      return {
        template: name,
        question: question(relation.words, color),
        program: p.result(result),
        viperProgram: singleImageProgram(relationBody(relation.crop, objectPhrase({ color }), vqaQuestion)),
        answer: answer(target),
      };
    },
  };
}

/** "How many … ?": LOC of the phrase, then COUNT (in ViperGPT, the length of find's list). */
/**
 * A question about the digits of two distinct colours (each colour unique in the scene), combined by
 * EVAL in VisProg and by `viperReturn` (over `first_digit`, `second_digit`) in ViperGPT.
 */
function twoDigitTemplate(spec: {
  name: string;
  weight: number;
  question: (first: string, second: string) => string;
  visprogEval: (a: string, b: string) => string;
  viperReturn: string;
  answer: (first: number, second: number) => string;
}): WeightedTemplate {
  return {
    name: spec.name,
    weight: spec.weight,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const colors = random.shuffle(uniqueColors(scene));
      if (colors.length < 2) return null;
      const [first, second] = colors;
      const p = new VisProgBuilder();
      const a = p.askAbout('IMAGE', objectPhrase({ color: first }), IDENTITY_QUESTION);
      const b = p.askAbout('IMAGE', objectPhrase({ color: second }), IDENTITY_QUESTION);
      const result = p.eval(spec.visprogEval(a, b));
      return {
        template: spec.name,
        question: spec.question(first, second),
        program: p.result(result),
        viperProgram: singleImageProgram([
          askFirst('first_digit', 'image_patch', objectPhrase({ color: first }), IDENTITY_QUESTION),
          askFirst('second_digit', 'image_patch', objectPhrase({ color: second }), IDENTITY_QUESTION),
          spec.viperReturn,
        ]),
        answer: spec.answer(unique(scene, { color: first })!.digit, unique(scene, { color: second })!.digit),
      };
    },
  };
}

function countDraft(template: string, scene: Scene, query: ObjectQuery, question: string): TaskDraft {
  const p = new VisProgBuilder();
  const count = p.count(p.loc('IMAGE', objectPhrase(query)));
  return {
    template,
    question,
    program: p.result(count),
    viperProgram: singleImageProgram([
      find('digit_patches', 'image_patch', objectPhrase(query)),
      'return str(len(digit_patches))',
    ]),
    answer: String(findObjects(scene, fullRegion(scene), query).length),
  };
}

const DIGITS_QA: WeightedTemplate[] = [
  {
    name: 'identify-by-color',
    weight: 2,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const colors = uniqueColors(scene);
      if (colors.length === 0) return null;
      const color = random.pick(colors);
      const p = new VisProgBuilder();
      const answer = p.askAbout('IMAGE', objectPhrase({ color }), IDENTITY_QUESTION);
      return {
        template: 'identify-by-color',
        question: `Which digit is ${color}?`,
        program: p.result(answer),
        viperProgram: singleImageProgram([
          askFirst('digit', 'image_patch', objectPhrase({ color }), IDENTITY_QUESTION),
          'return digit',
        ]),
        answer: String(unique(scene, { color })!.digit),
      };
    },
  },
  relationTemplate(
    'relation',
    IDENTITY_QUESTION,
    (words, color) => `Which digit is ${words} the ${color} digit?`,
    (target) => String(target.digit),
  ),
  twoDigitTemplate({
    name: 'compare',
    weight: 1.5,
    question: (first, second) => `Is the ${first} digit larger than the ${second} digit?`,
    visprogEval: (a, b) => `'yes' if {${a}} > {${b}} else 'no'`,
    viperReturn: 'return bool_to_yesno(int(first_digit) > int(second_digit))',
    answer: (a, b) => yesNo(a > b),
  }),
  twoDigitTemplate({
    name: 'sum',
    weight: 1,
    question: (first, second) => `What is the sum of the ${first} digit and the ${second} digit?`,
    visprogEval: (a, b) => `{${a}} + {${b}}`,
    viperReturn: 'return str(int(first_digit) + int(second_digit))',
    answer: (a, b) => String(a + b),
  }),
  {
    name: 'count-digit',
    weight: 1,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const digit = pickDigit(
        random,
        scene.objects.map((object) => object.digit),
      );
      return countDraft('count-digit', scene, { digit }, `How many times does the digit ${digit} appear?`);
    },
  },
  {
    name: 'exists-digit',
    weight: 1,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const digit = pickDigit(
        random,
        scene.objects.map((object) => object.digit),
      );
      const p = new VisProgBuilder();
      const count = p.count(p.loc('IMAGE', objectPhrase({ digit })));
      const result = p.eval(`'yes' if {${count}} > 0 else 'no'`);
      return {
        template: 'exists-digit',
        question: `Is there a digit ${digit}?`,
        program: p.result(result),
        viperProgram: singleImageProgram([
          find('digit_patches', 'image_patch', objectPhrase({ digit })),
          'return bool_to_yesno(len(digit_patches) > 0)',
        ]),
        answer: yesNo(findObjects(scene, fullRegion(scene), { digit }).length > 0),
      };
    },
  },
  {
    name: 'color-of-digit',
    weight: 1,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const digits = [...new Set(scene.objects.map((object) => object.digit))].filter(
        (digit) => unique(scene, { digit }) !== undefined,
      );
      if (digits.length === 0) return null;
      const digit = random.pick(digits);
      const p = new VisProgBuilder();
      const answer = p.askAbout('IMAGE', objectPhrase({ digit }), COLOR_QUESTION);
      return {
        template: 'color-of-digit',
        question: `What color is the digit ${digit}?`,
        program: p.result(answer),
        viperProgram: singleImageProgram([
          askFirst('color', 'image_patch', objectPhrase({ digit }), COLOR_QUESTION),
          'return color',
        ]),
        answer: unique(scene, { digit })!.color,
      };
    },
  },
];

const DIGITS_PAIRS: WeightedTemplate[] = [
  {
    name: 'larger-across',
    weight: 2,
    make(scenes, random) {
      const left = uniqueColors(scenes.LEFT);
      const right = uniqueColors(scenes.RIGHT);
      if (left.length === 0 || right.length === 0) return null;
      const c1 = random.pick(left);
      const c2 = random.pick(right);
      const p = new VisProgBuilder();
      const a = p.askAbout('LEFT', objectPhrase({ color: c1 }), IDENTITY_QUESTION);
      const b = p.askAbout('RIGHT', objectPhrase({ color: c2 }), IDENTITY_QUESTION);
      const result = p.eval(`{${a}} > {${b}}`);
      return {
        template: 'larger-across',
        question: `The ${c1} digit in the left image is larger than the ${c2} digit in the right image.`,
        program: p.result(result),
        viperProgram: pairProgram([
          askFirst('left_digit', 'left_patch', objectPhrase({ color: c1 }), IDENTITY_QUESTION),
          askFirst('right_digit', 'right_patch', objectPhrase({ color: c2 }), IDENTITY_QUESTION),
          'return bool_to_yesno(int(left_digit) > int(right_digit))',
        ]),
        answer: yesNo(unique(scenes.LEFT, { color: c1 })!.digit > unique(scenes.RIGHT, { color: c2 })!.digit),
      };
    },
  },
  {
    name: 'same-across',
    weight: 1,
    make(scenes, random) {
      const pairs: Array<[ColorName, ColorName, boolean]> = [];
      for (const c1 of uniqueColors(scenes.LEFT)) {
        for (const c2 of uniqueColors(scenes.RIGHT)) {
          const same =
            unique(scenes.LEFT, { color: c1 })!.digit === unique(scenes.RIGHT, { color: c2 })!.digit;
          pairs.push([c1, c2, same]);
        }
      }
      if (pairs.length === 0) return null;
      const matching = pairs.filter((pair) => pair[2]);
      const [c1, c2, same] =
        matching.length > 0 && random.chance(0.5) ? random.pick(matching) : random.pick(pairs);
      const p = new VisProgBuilder();
      const a = p.askAbout('LEFT', objectPhrase({ color: c1 }), IDENTITY_QUESTION);
      const b = p.askAbout('RIGHT', objectPhrase({ color: c2 }), IDENTITY_QUESTION);
      const result = p.eval(`{${a}} == {${b}}`);
      return {
        template: 'same-across',
        question: `The ${c1} digit in the left image is the same digit as the ${c2} digit in the right image.`,
        program: p.result(result),
        viperProgram: pairProgram([
          askFirst('left_digit', 'left_patch', objectPhrase({ color: c1 }), IDENTITY_QUESTION),
          askFirst('right_digit', 'right_patch', objectPhrase({ color: c2 }), IDENTITY_QUESTION),
          'return bool_to_yesno(int(left_digit) == int(right_digit))',
        ]),
        answer: yesNo(same),
      };
    },
  },
  {
    name: 'both-contain',
    weight: 1.5,
    make(scenes, random) {
      const digit = pickDigit(
        random,
        scenes.LEFT.objects.map((object) => object.digit),
      );
      const p = new VisProgBuilder();
      const a = p.count(p.loc('LEFT', objectPhrase({ digit })));
      const b = p.count(p.loc('RIGHT', objectPhrase({ digit })));
      const result = p.eval(`{${a}} > 0 and {${b}} > 0`);
      const has = (scene: Scene) => findObjects(scene, fullRegion(scene), { digit }).length > 0;
      return {
        template: 'both-contain',
        question: `Both images contain the digit ${digit}.`,
        program: p.result(result),
        viperProgram: pairProgram([
          find('left_patches', 'left_patch', objectPhrase({ digit })),
          find('right_patches', 'right_patch', objectPhrase({ digit })),
          'return bool_to_yesno(len(left_patches) > 0 and len(right_patches) > 0)',
        ]),
        answer: yesNo(has(scenes.LEFT) && has(scenes.RIGHT)),
      };
    },
  },
  {
    name: 'more-digits',
    weight: 1,
    make(scenes) {
      const p = new VisProgBuilder();
      const a = p.vqa('LEFT', COUNT_QUESTION);
      const b = p.vqa('RIGHT', COUNT_QUESTION);
      const result = p.eval(`{${a}} > {${b}}`);
      return {
        template: 'more-digits',
        question: 'The left image shows more digits than the right image.',
        program: p.result(result),
        viperProgram: pairProgram([
          query('left_count', 'left_patch', COUNT_QUESTION),
          query('right_count', 'right_patch', COUNT_QUESTION),
          'return bool_to_yesno(int(left_count) > int(right_count))',
        ]),
        answer: yesNo(scenes.LEFT.objects.length > scenes.RIGHT.objects.length),
      };
    },
  },
];

const COLORS_QA: WeightedTemplate[] = [
  relationTemplate(
    'color-relation',
    COLOR_QUESTION,
    (words, color) => `What color is the digit ${words} the ${color} digit?`,
    (target) => target.color,
  ),
  {
    name: 'count-color',
    weight: 1,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const color = random.chance(0.6) ? random.pick(scene.objects).color : random.pick(COLOR_NAMES);
      return countDraft('count-color', scene, { color }, `How many ${color} digits are there?`);
    },
  },
  {
    name: 'exists-color',
    weight: 1,
    make(scenes, random) {
      const scene = scenes.IMAGE;
      const color = random.chance(0.5) ? random.pick(scene.objects).color : random.pick(COLOR_NAMES);
      const p = new VisProgBuilder();
      const answer = p.vqa('IMAGE', questionText({ kind: 'exists', color }));
      return {
        template: 'exists-color',
        question: `Is there a ${color} digit?`,
        program: p.result(answer),
        viperProgram: singleImageProgram([
          query('answer', 'image_patch', questionText({ kind: 'exists', color })),
          'return answer',
        ]),
        answer: yesNo(findObjects(scene, fullRegion(scene), { color }).length > 0),
      };
    },
  },
];

const TEMPLATES: Record<TaskName, WeightedTemplate[]> = {
  'digits-qa': DIGITS_QA,
  'digits-pairs': DIGITS_PAIRS,
  'colors-qa': COLORS_QA,
};

/** The input images a task's programs take. */
export function taskInputs(task: TaskName): string[] {
  return task === 'digits-pairs' ? ['LEFT', 'RIGHT'] : ['IMAGE'];
}

/** The template names of a task. */
export function templateNames(task: TaskName): string[] {
  return TEMPLATES[task].map((template) => template.name);
}

/**
 * One question about the scenes: templates are tried in a random order drawn by weight until one applies.
 * Null when none applies (the caller moves on to other scenes).
 */
export function draftTask(task: TaskName, scenes: TaskScenes, random: Random): TaskDraft | null {
  const remaining = [...TEMPLATES[task]];
  while (remaining.length > 0) {
    const total = remaining.reduce((sum, template) => sum + template.weight, 0);
    let draw = random.uniform(0, total);
    let index = 0;
    while (index < remaining.length - 1 && draw >= remaining[index].weight) draw -= remaining[index++].weight;
    const [template] = remaining.splice(index, 1);
    const draft = template.make(scenes, random);
    if (draft) return draft;
  }
  return null;
}

/** Used by tests: the box region a relation crop takes around a reference box. */
export function relationRegion(crop: RelationCrop, box: Box, scene: Scene): Box | null {
  return visprogCropBox(crop, box, scene.width, scene.height);
}
