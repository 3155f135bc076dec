// The ViperGPT versions of the benchmark's questions: `def execute_command(...)` programs in the style of
// ViperGPT's generated code (find, simple_query, list comprehensions, sort keys, bool_to_yesno), written by the
// same templates that write the VisProg programs.

const INDENT = '    ';

function quote(text: string): string {
  if (text.includes('"'))
    throw new Error(`ViperGPT string arguments here cannot contain a double quote: ${text}`);
  return `"${text}"`;
}

/** A program over one image: `image_patch` is the whole image. */
export function singleImageProgram(body: readonly string[]): string {
  return [
    'def execute_command(image):',
    `${INDENT}image_patch = ImagePatch(image)`,
    ...body.map((line) => INDENT + line),
  ].join('\n');
}

/** A program over a pair of images: `left_patch` and `right_patch`. */
export function pairProgram(body: readonly string[]): string {
  return [
    'def execute_command(image_dict):',
    `${INDENT}left_patch = ImagePatch(image_dict["left"])`,
    `${INDENT}right_patch = ImagePatch(image_dict["right"])`,
    ...body.map((line) => INDENT + line),
  ].join('\n');
}

/** `<patch>.find(phrase)[0].simple_query(question)` assigned to `name`. */
export function askFirst(name: string, patch: string, phrase: string, question: string): string {
  return `${name} = ${patch}.find(${quote(phrase)})[0].simple_query(${quote(question)})`;
}

export function find(name: string, patch: string, phrase: string): string {
  return `${name} = ${patch}.find(${quote(phrase)})`;
}

export function query(name: string, patch: string, question: string): string {
  return `${name} = ${patch}.simple_query(${quote(question)})`;
}

/** How a relation compares patch centres (ViperGPT measures y upward: "above" is a larger vertical centre). */
export const VIPER_RELATIONS = {
  CROP_LEFTOF: 'patch.horizontal_center < reference_patch.horizontal_center',
  CROP_RIGHTOF: 'patch.horizontal_center > reference_patch.horizontal_center',
  CROP_ABOVE: 'patch.vertical_center > reference_patch.vertical_center',
  CROP_BELOW: 'patch.vertical_center < reference_patch.vertical_center',
} as const;

/** The body of "<question> about the digit <relation> the <colour> digit". */
export function relationBody(
  crop: keyof typeof VIPER_RELATIONS,
  referencePhrase: string,
  question: string,
): string[] {
  return [
    `reference_patch = image_patch.find(${quote(referencePhrase)})[0]`,
    find('digit_patches', 'image_patch', 'digit'),
    `candidates = [patch for patch in digit_patches if ${VIPER_RELATIONS[crop]}]`,
    'candidates.sort(key=lambda patch: distance(patch, reference_patch))',
    `return candidates[0].simple_query(${quote(question)})`,
  ];
}
