// Writes VisProg programs line by line with fresh variable names, as VisProg's program generator would.

/** The CROP modules the benchmark's programs use for spatial relations. */
export type RelationCrop = 'CROP_LEFTOF' | 'CROP_RIGHTOF' | 'CROP_ABOVE' | 'CROP_BELOW';

function quote(text: string): string {
  if (text.includes("'")) throw new Error(`VisProg string arguments cannot contain a quote: ${text}`);
  return `'${text}'`;
}

/** Accumulates program lines; every method returns the variable it defined. */
export class VisProgBuilder {
  readonly #lines: string[] = [];
  readonly #counters = new Map<string, number>();

  #fresh(prefix: string): string {
    const n = this.#counters.get(prefix) ?? 0;
    this.#counters.set(prefix, n + 1);
    return `${prefix}${n}`;
  }

  #line(prefix: string, call: string): string {
    const name = this.#fresh(prefix);
    this.#lines.push(`${name}=${call}`);
    return name;
  }

  loc(image: string, object: string): string {
    return this.#line('BOX', `LOC(image=${image},object=${quote(object)})`);
  }

  crop(module: 'CROP' | RelationCrop, image: string, box: string): string {
    return this.#line('IMAGE', `${module}(image=${image},box=${box})`);
  }

  vqa(image: string, question: string): string {
    return this.#line('ANSWER', `VQA(image=${image},question=${quote(question)})`);
  }

  count(box: string): string {
    return this.#line('ANSWER', `COUNT(box=${box})`);
  }

  /** EVAL of an expression over `{ANSWERn}` placeholders (written in double quotes, as VisProg does). */
  eval(expression: string): string {
    if (expression.includes('"')) throw new Error(`EVAL expressions here use single quotes: ${expression}`);
    return this.#line('ANSWER', `EVAL(expr="${expression}")`);
  }

  /** Ends the program with RESULT and returns its text. */
  result(variable: string): string {
    this.#lines.push(`FINAL_RESULT=RESULT(var=${variable})`);
    return this.#lines.join('\n');
  }

  /** LOC of a phrase, then CROP around the first box, then VQA on the crop. */
  askAbout(image: string, object: string, question: string): string {
    const box = this.loc(image, object);
    const crop = this.crop('CROP', image, box);
    return this.vqa(crop, question);
  }
}
