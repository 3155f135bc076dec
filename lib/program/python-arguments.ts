// Binds the positional and keyword arguments of a call to a sandbox function's parameters, with Python's errors.

import { raise } from './python-errors';
import type { Keywords, Value } from './python-values';

/** A sandbox function's parameters: names in order, how many are required, how many are positional-only. */
export interface Parameters {
  names: readonly string[];
  required: number;
  /** Parameters that cannot be given by keyword (builtins such as len(obj, /)). */
  positionalOnly?: number;
  /** Parameters that can only be given by keyword (sorted's key and reverse). */
  keywordOnly?: readonly string[];
}

/**
 * The arguments by parameter position (keyword-only ones after the positional ones); undefined where a parameter
 * was not given.
 */
export function bindArguments(
  name: string,
  args: readonly Value[],
  keywords: Keywords,
  parameters: Parameters,
): Array<Value | undefined> {
  const { names, required } = parameters;
  const keywordOnly = parameters.keywordOnly ?? [];
  const positionalOnly = parameters.positionalOnly ?? 0;
  if (args.length > names.length) {
    const most = names.length;
    raise.type(
      `${name}() takes ${required === most ? 'exactly' : 'at most'} ${most} argument${most === 1 ? '' : 's'} (${args.length} given)`,
    );
  }
  const bound = new Array<Value | undefined>(names.length + keywordOnly.length);
  for (let i = 0; i < args.length; i++) bound[i] = args[i];
  if (keywords) {
    for (const [keyword, value] of keywords) {
      let index = names.indexOf(keyword);
      if (index >= 0 && index < positionalOnly) index = -1;
      if (index < 0) {
        const only = keywordOnly.indexOf(keyword);
        if (only >= 0) index = names.length + only;
      }
      if (index < 0) raise.type(`${name}() got an unexpected keyword argument '${keyword}'`);
      if (bound[index] !== undefined) raise.type(`${name}() got multiple values for argument '${keyword}'`);
      bound[index] = value;
    }
  }
  for (let i = 0; i < required; i++) {
    if (bound[i] === undefined)
      raise.type(`${name}() missing required argument '${names[i]}' (pos ${i + 1})`);
  }
  return bound;
}

/** For functions that take no keyword arguments at all. */
export function noKeywords(name: string, keywords: Keywords): void {
  if (keywords && keywords.size > 0) raise.type(`${name}() takes no keyword arguments`);
}
