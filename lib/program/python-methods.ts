// Methods of the builtin types in the sandbox (str, list, dict, set, tuple), looked up in explicit tables.

import { type MaybePromise, then } from './maybe-async';
import { bindArguments, noKeywords } from './python-arguments';
import { sortItems } from './python-builtins';
import { PythonError, raise } from './python-errors';
import { strFormat } from './python-format';
import { collect, forEachItem } from './python-iteration';
import {
  type Keywords,
  PyBoundMethod,
  PyDict,
  PySet,
  PyTuple,
  type Runtime,
  type Value,
  codePoints,
  isIntLike,
  isTruthy,
  pyEquals,
  pyRepr,
  toBigInt,
  typeName,
} from './python-values';

type Method<T> = (self: T, args: Value[], keywords: Keywords, runtime: Runtime) => MaybePromise<Value>;

const WHITESPACE = /[\s\x1c-\x1f\x85]/u;

function stringArgument(value: Value | undefined, method: string, position = 1): string {
  if (typeof value !== 'string') {
    raise.type(`${method}() argument ${position} must be str, not ${typeName(value ?? null)}`);
  }
  return value as string;
}

function optionalChars(value: Value | undefined, method: string): string | null {
  if (value === undefined || value === null) return null;
  return stringArgument(value, method);
}

function strip(text: string, chars: string | null, left: boolean, right: boolean): string {
  const strips = (char: string) => (chars === null ? WHITESPACE.test(char) : chars.includes(char));
  const points = [...text];
  let start = 0;
  let end = points.length;
  if (left) while (start < end && strips(points[start])) start++;
  if (right) while (end > start && strips(points[end - 1])) end--;
  return points.slice(start, end).join('');
}

function maxSplit(value: Value | undefined): number {
  if (value === undefined) return -1;
  if (!isIntLike(value)) raise.type(`'${typeName(value)}' object cannot be interpreted as an integer`);
  return Number(toBigInt(value as bigint | boolean));
}

/** str.split() / rsplit() without a separator: runs of whitespace, at most `limit` splits, linear in the text. */
function splitWhitespace(text: string, limit: number, fromRight: boolean): string[] {
  const words: Array<[number, number]> = [];
  let start = 0;
  for (const match of text.matchAll(/[\s\x1c-\x1f\x85]+/gu)) {
    if (match.index > start) words.push([start, match.index]);
    start = match.index + match[0].length;
  }
  if (start < text.length) words.push([start, text.length]);
  const pieces = words.map(([from, to]) => text.slice(from, to));
  if (limit < 0 || words.length <= limit + 1) return pieces;
  // The unsplit remainder keeps its inner (and far-side) whitespace, as in Python.
  if (!fromRight) return [...pieces.slice(0, limit), text.slice(words[limit][0])];
  const keep = words.length - limit;
  return [text.slice(0, words[keep - 1][1]), ...pieces.slice(keep)];
}

function splitText(
  text: string,
  separator: string | null,
  limit: number,
  fromRight: boolean,
  runtime: Runtime,
): Value[] {
  runtime.charge(Math.ceil(text.length / 16));
  if (separator === null) return splitWhitespace(text, limit, fromRight);
  if (separator === '') raise.value('empty separator');
  const parts = text.split(separator);
  if (limit < 0 || parts.length <= limit + 1) return parts;
  return fromRight
    ? [parts.slice(0, parts.length - limit).join(separator), ...parts.slice(parts.length - limit)]
    : [...parts.slice(0, limit), parts.slice(limit).join(separator)];
}

function replaceText(
  text: string,
  old: string,
  replacement: string,
  count: number,
  runtime: Runtime,
): string {
  if (old === '') {
    const points = [...text];
    const slots = count < 0 ? points.length + 1 : Math.min(count, points.length + 1);
    runtime.checkLength(text.length + slots * replacement.length);
    let out = '';
    for (let i = 0; i < points.length; i++) out += (i < slots ? replacement : '') + points[i];
    return slots > points.length ? out + replacement : out;
  }
  const parts = text.split(old);
  const replaced = count < 0 ? parts.length - 1 : Math.min(count, parts.length - 1);
  runtime.checkLength(text.length + replaced * (replacement.length - old.length));
  if (count < 0 || replaced === parts.length - 1) return parts.join(replacement);
  return parts.slice(0, replaced + 1).join(replacement) + old + parts.slice(replaced + 1).join(old);
}

function affixTest(text: string, affix: Value | undefined, method: 'startswith' | 'endswith'): boolean {
  const options = affix instanceof PyTuple ? affix.items : [affix ?? null];
  return options.some((option) => {
    if (typeof option !== 'string') {
      raise.type(`${method} first arg must be str or a tuple of str, not ${typeName(option)}`);
    }
    return method === 'startswith' ? text.startsWith(option as string) : text.endsWith(option as string);
  });
}

function position(text: string, index: number): bigint {
  // Positions count code points, as Python's do.
  return BigInt(codePoints(text) ? [...text.slice(0, index)].length : index);
}

function titleCase(text: string): string {
  let out = '';
  let previousCased = false;
  for (const char of text) {
    const cased = char.toLowerCase() !== char.toUpperCase();
    out += cased ? (previousCased ? char.toLowerCase() : char.toUpperCase()) : char;
    previousCased = cased;
  }
  return out;
}

function predicate(test: RegExp): Method<string> {
  return (self) => self.length > 0 && test.test(self);
}

function isCase(self: string, upper: boolean): boolean {
  let cased = false;
  for (const char of self) {
    if (char.toLowerCase() === char.toUpperCase()) continue;
    if (upper ? char !== char.toUpperCase() : char !== char.toLowerCase()) return false;
    cased = true;
  }
  return cased;
}

function padText(
  self: string,
  args: Value[],
  keywords: Keywords,
  method: string,
  where: 'left' | 'right' | 'center',
): string {
  const [width, fill] = bindArguments(method, args, keywords, {
    names: ['width', 'fillchar'],
    required: 1,
    positionalOnly: 2,
  });
  if (!isIntLike(width as Value))
    raise.type(`'${typeName(width as Value)}' object cannot be interpreted as an integer`);
  const total = Number(toBigInt(width as bigint | boolean));
  const fillChar = fill === undefined ? ' ' : stringArgument(fill, method, 2);
  if ([...fillChar].length !== 1) raise.type('The fill character must be exactly one character long');
  const length = [...self].length;
  if (total <= length) return self;
  if (total > 1_000_000) raise.value('the padded width is outside the sandbox size limit');
  const missing = total - length;
  if (where === 'left') return fillChar.repeat(missing) + self;
  if (where === 'right') return self + fillChar.repeat(missing);
  const left = Math.floor(missing / 2) + (missing % 2 && total % 2 ? 1 : 0);
  return fillChar.repeat(left) + self + fillChar.repeat(missing - left);
}

const STRING_METHODS: Record<string, Method<string>> = {
  lower: (self, args, keywords) => {
    none('lower', args, keywords);
    return self.toLowerCase();
  },
  upper: (self, args, keywords) => {
    none('upper', args, keywords);
    return self.toUpperCase();
  },
  casefold: (self) => self.toLowerCase(),
  swapcase: (self) =>
    [...self].map((char) => (char === char.toUpperCase() ? char.toLowerCase() : char.toUpperCase())).join(''),
  title: (self) => titleCase(self),
  capitalize: (self) => {
    const points = [...self];
    return points.length === 0 ? '' : points[0].toUpperCase() + points.slice(1).join('').toLowerCase();
  },
  strip: (self, args, keywords) =>
    strip(
      self,
      optionalChars(
        bindArguments('strip', args, keywords, { names: ['chars'], required: 0, positionalOnly: 1 })[0],
        'strip',
      ),
      true,
      true,
    ),
  lstrip: (self, args, keywords) =>
    strip(
      self,
      optionalChars(
        bindArguments('lstrip', args, keywords, { names: ['chars'], required: 0, positionalOnly: 1 })[0],
        'lstrip',
      ),
      true,
      false,
    ),
  rstrip: (self, args, keywords) =>
    strip(
      self,
      optionalChars(
        bindArguments('rstrip', args, keywords, { names: ['chars'], required: 0, positionalOnly: 1 })[0],
        'rstrip',
      ),
      false,
      true,
    ),
  split: (self, args, keywords, runtime) => {
    const [separator, limit] = bindArguments('split', args, keywords, {
      names: ['sep', 'maxsplit'],
      required: 0,
    });
    return splitText(self, optionalChars(separator, 'split'), maxSplit(limit), false, runtime);
  },
  rsplit: (self, args, keywords, runtime) => {
    const [separator, limit] = bindArguments('rsplit', args, keywords, {
      names: ['sep', 'maxsplit'],
      required: 0,
    });
    return splitText(self, optionalChars(separator, 'rsplit'), maxSplit(limit), true, runtime);
  },
  splitlines: (self) =>
    self
      .split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/u)
      .filter((line, i, all) => i < all.length - 1 || line !== ''),
  join: (self, args, keywords, runtime) =>
    then(collect(one('join', args, keywords), runtime), (items) => {
      items.forEach((item, i) => {
        if (typeof item !== 'string')
          raise.type(`sequence item ${i}: expected str instance, ${typeName(item)} found`);
      });
      const total =
        items.reduce((sum: number, item) => sum + (item as string).length, 0) +
        self.length * Math.max(0, items.length - 1);
      runtime.checkLength(total);
      return (items as string[]).join(self);
    }),
  replace: (self, args, keywords, runtime) => {
    const [old, replacement, count] = bindArguments('replace', args, keywords, {
      names: ['old', 'new', 'count'],
      required: 2,
      positionalOnly: 3,
    });
    return replaceText(
      self,
      stringArgument(old, 'replace', 1),
      stringArgument(replacement, 'replace', 2),
      maxSplit(count),
      runtime,
    );
  },
  startswith: (self, args, keywords) => {
    noKeywords('startswith', keywords);
    return affixTest(self, args[0], 'startswith');
  },
  endswith: (self, args, keywords) => {
    noKeywords('endswith', keywords);
    return affixTest(self, args[0], 'endswith');
  },
  find: (self, args, keywords) => {
    const index = self.indexOf(stringArgument(one('find', args, keywords), 'find'));
    return index < 0 ? -1n : position(self, index);
  },
  rfind: (self, args, keywords) => {
    const index = self.lastIndexOf(stringArgument(one('rfind', args, keywords), 'rfind'));
    return index < 0 ? -1n : position(self, index);
  },
  index: (self, args, keywords) => {
    const index = self.indexOf(stringArgument(one('index', args, keywords), 'index'));
    if (index < 0) raise.value('substring not found');
    return position(self, index);
  },
  rindex: (self, args, keywords) => {
    const index = self.lastIndexOf(stringArgument(one('rindex', args, keywords), 'rindex'));
    if (index < 0) raise.value('substring not found');
    return position(self, index);
  },
  count: (self, args, keywords) => {
    const needle = stringArgument(one('count', args, keywords), 'count');
    return BigInt(needle === '' ? [...self].length + 1 : self.split(needle).length - 1);
  },
  format: (self, args, keywords, runtime) => {
    runtime.charge(1 + Math.ceil(self.length / 64));
    const text = strFormat(self, args, keywords, runtime.attribute);
    runtime.checkLength(text.length);
    return text;
  },
  isdigit: predicate(/^[\p{Nd}\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089]+$/u),
  isdecimal: predicate(/^\p{Nd}+$/u),
  isnumeric: predicate(/^\p{N}+$/u),
  isalpha: predicate(/^\p{L}+$/u),
  isalnum: predicate(/^[\p{L}\p{N}]+$/u),
  isspace: predicate(/^[\s\x1c-\x1f\x85]+$/u),
  islower: (self) => isCase(self, false),
  isupper: (self) => isCase(self, true),
  zfill: (self, args, keywords) => {
    const width = Number(toBigInt(one('zfill', args, keywords) as bigint));
    const sign = self.startsWith('-') || self.startsWith('+') ? self[0] : '';
    const body = sign ? self.slice(1) : self;
    return sign + body.padStart(Math.max(0, Math.min(width, 1_000_000) - sign.length), '0');
  },
  center: (self, args, keywords) => padText(self, args, keywords, 'center', 'center'),
  ljust: (self, args, keywords) => padText(self, args, keywords, 'ljust', 'right'),
  rjust: (self, args, keywords) => padText(self, args, keywords, 'rjust', 'left'),
  removeprefix: (self, args, keywords) => {
    const prefix = stringArgument(one('removeprefix', args, keywords), 'removeprefix');
    return self.startsWith(prefix) ? self.slice(prefix.length) : self;
  },
  removesuffix: (self, args, keywords) => {
    const suffix = stringArgument(one('removesuffix', args, keywords), 'removesuffix');
    return suffix !== '' && self.endsWith(suffix) ? self.slice(0, -suffix.length) : self;
  },
  partition: (self, args, keywords) => {
    const separator = stringArgument(one('partition', args, keywords), 'partition');
    if (separator === '') raise.value('empty separator');
    const index = self.indexOf(separator);
    return index < 0
      ? new PyTuple([self, '', ''])
      : new PyTuple([self.slice(0, index), separator, self.slice(index + separator.length)]);
  },
  rpartition: (self, args, keywords) => {
    const separator = stringArgument(one('rpartition', args, keywords), 'rpartition');
    if (separator === '') raise.value('empty separator');
    const index = self.lastIndexOf(separator);
    return index < 0
      ? new PyTuple(['', '', self])
      : new PyTuple([self.slice(0, index), separator, self.slice(index + separator.length)]);
  },
};

function one(name: string, args: Value[], keywords: Keywords): Value {
  noKeywords(name, keywords);
  if (args.length !== 1) raise.type(`${name}() takes exactly one argument (${args.length} given)`);
  return args[0];
}

function none(name: string, args: Value[], keywords: Keywords): void {
  noKeywords(name, keywords);
  if (args.length !== 0) raise.type(`${name}() takes no arguments (${args.length} given)`);
}

function findIndex(items: readonly Value[], value: Value): number {
  return items.findIndex((item) => item === value || pyEquals(item, value));
}

const LIST_METHODS: Record<string, Method<Value[]>> = {
  append: (self, args, keywords, runtime) => {
    const value = one('append', args, keywords);
    runtime.checkLength(self.length + 1);
    self.push(value);
    return null;
  },
  extend: (self, args, keywords, runtime) =>
    then(collect(one('extend', args, keywords), runtime), (items) => {
      runtime.checkLength(self.length + items.length);
      for (const item of items) self.push(item);
      return null;
    }),
  insert: (self, args, keywords, runtime) => {
    noKeywords('insert', keywords);
    if (args.length !== 2) raise.type(`insert expected 2 arguments, got ${args.length}`);
    if (!isIntLike(args[0])) raise.type(`'${typeName(args[0])}' object cannot be interpreted as an integer`);
    let index = Number(toBigInt(args[0] as bigint | boolean));
    if (index < 0) index = Math.max(0, index + self.length);
    runtime.checkLength(self.length + 1);
    self.splice(Math.min(index, self.length), 0, args[1]);
    return null;
  },
  pop: (self, args, keywords) => {
    noKeywords('pop', keywords);
    if (args.length > 1) raise.type(`pop expected at most 1 argument, got ${args.length}`);
    if (self.length === 0) raise.index('pop from empty list');
    if (args.length === 1 && !isIntLike(args[0]))
      raise.type(`'${typeName(args[0])}' object cannot be interpreted as an integer`);
    let index = args.length === 0 ? self.length - 1 : Number(toBigInt(args[0] as bigint | boolean));
    if (index < 0) index += self.length;
    if (index < 0 || index >= self.length) raise.index('pop index out of range');
    return self.splice(index, 1)[0];
  },
  remove: (self, args, keywords) => {
    const index = findIndex(self, one('remove', args, keywords));
    if (index < 0) raise.value('list.remove(x): x not in list');
    self.splice(index, 1);
    return null;
  },
  index: (self, args, keywords) => {
    const value = one('index', args, keywords);
    const index = findIndex(self, value);
    if (index < 0) raise.value(`${pyRepr(value)} is not in list`);
    return BigInt(index);
  },
  count: (self, args, keywords) => {
    const value = one('count', args, keywords);
    return BigInt(self.filter((item) => item === value || pyEquals(item, value)).length);
  },
  sort: (self, args, keywords, runtime) => {
    const [key, reverse] = bindArguments('sort', args, keywords, {
      names: [],
      required: 0,
      keywordOnly: ['key', 'reverse'],
    });
    return then(
      sortItems(self.slice(), key, reverse !== undefined && isTruthy(reverse), runtime),
      (sorted) => {
        for (let i = 0; i < sorted.length; i++) self[i] = sorted[i];
        return null;
      },
    );
  },
  reverse: (self, args, keywords) => {
    none('reverse', args, keywords);
    self.reverse();
    return null;
  },
  copy: (self, args, keywords) => {
    none('copy', args, keywords);
    return self.slice();
  },
  clear: (self, args, keywords) => {
    none('clear', args, keywords);
    self.length = 0;
    return null;
  },
};

const TUPLE_METHODS: Record<string, Method<PyTuple>> = {
  index: (self, args, keywords) => {
    const index = findIndex(self.items, one('index', args, keywords));
    if (index < 0) raise.value('tuple.index(x): x not in tuple');
    return BigInt(index);
  },
  count: (self, args, keywords) => {
    const value = one('count', args, keywords);
    return BigInt(self.items.filter((item) => item === value || pyEquals(item, value)).length);
  },
};

function updateDict(self: PyDict, args: Value[], keywords: Keywords, runtime: Runtime): MaybePromise<Value> {
  if (args.length > 1) raise.type(`update expected at most 1 argument, got ${args.length}`);
  const finish = () => {
    for (const [key, value] of keywords ?? []) self.set(key, value);
    return null;
  };
  if (args.length === 0) return finish();
  const source = args[0];
  if (source instanceof PyDict) {
    for (const [key, value] of [...source.entries.values()]) self.set(key, value);
    return finish();
  }
  return then(
    forEachItem(source, runtime, (pair) =>
      then(collect(pair, runtime), (parts) => {
        if (parts.length !== 2)
          raise.value(`dictionary update sequence element has length ${parts.length}; 2 is required`);
        self.set(parts[0], parts[1]);
        return true;
      }),
    ),
    finish,
  );
}

const DICT_METHODS: Record<string, Method<PyDict>> = {
  get: (self, args, keywords) => {
    noKeywords('get', keywords);
    if (args.length < 1 || args.length > 2) raise.type(`get expected 1 or 2 arguments, got ${args.length}`);
    return self.get(args[0]) ?? (args.length === 2 ? args[1] : null);
  },
  keys: (self, args, keywords) => {
    none('keys', args, keywords);
    return self.keys();
  },
  values: (self, args, keywords) => {
    none('values', args, keywords);
    return [...self.entries.values()].map((entry) => entry[1]);
  },
  items: (self, args, keywords) => {
    none('items', args, keywords);
    return [...self.entries.values()].map(([key, value]) => new PyTuple([key, value]));
  },
  pop: (self, args, keywords) => {
    noKeywords('pop', keywords);
    if (args.length < 1 || args.length > 2) raise.type(`pop expected 1 or 2 arguments, got ${args.length}`);
    const value = self.get(args[0]);
    if (value === undefined) {
      if (args.length === 2) return args[1];
      throw new PythonError('KeyError', pyRepr(args[0]));
    }
    self.delete(args[0]);
    return value;
  },
  setdefault: (self, args, keywords) => {
    noKeywords('setdefault', keywords);
    if (args.length < 1 || args.length > 2)
      raise.type(`setdefault expected 1 or 2 arguments, got ${args.length}`);
    const existing = self.get(args[0]);
    if (existing !== undefined) return existing;
    const fallback = args.length === 2 ? args[1] : null;
    self.set(args[0], fallback);
    return fallback;
  },
  update: (self, args, keywords, runtime) => updateDict(self, args, keywords, runtime),
  copy: (self, args, keywords) => {
    none('copy', args, keywords);
    const copy = new PyDict();
    for (const [key, value] of self.entries.values()) copy.set(key, value);
    return copy;
  },
  clear: (self, args, keywords) => {
    none('clear', args, keywords);
    self.entries.clear();
    return null;
  },
};

function setFrom(values: Value[]): PySet {
  return new PySet(values);
}

function setCombination(name: string, combine: (self: PySet, other: PySet) => PySet): Method<PySet> {
  return (self, args, keywords, runtime) => {
    noKeywords(name, keywords);
    let result = setFrom(self.values());
    let index = 0;
    const next = (): MaybePromise<Value> => {
      if (index >= args.length) return result;
      return then(collect(args[index++], runtime), (items) => {
        result = combine(result, setFrom(items));
        return next();
      });
    };
    return next();
  };
}

function subsetOf(a: PySet, b: PySet): boolean {
  for (const hash of a.items.keys()) if (!b.items.has(hash)) return false;
  return true;
}

function setTest(name: string, test: (self: PySet, other: PySet) => boolean): Method<PySet> {
  return (self, args, keywords, runtime) =>
    then(collect(one(name, args, keywords), runtime), (items) => test(self, setFrom(items)));
}

const SET_METHODS: Record<string, Method<PySet>> = {
  add: (self, args, keywords, runtime) => {
    const value = one('add', args, keywords);
    runtime.checkLength(self.items.size + 1);
    self.add(value);
    return null;
  },
  remove: (self, args, keywords) => {
    const value = one('remove', args, keywords);
    if (!self.has(value)) throw new PythonError('KeyError', pyRepr(value));
    self.items.delete([...self.items.entries()].find(([, item]) => pyEquals(item, value))![0]);
    return null;
  },
  discard: (self, args, keywords) => {
    const value = one('discard', args, keywords);
    const entry = [...self.items.entries()].find(([, item]) => pyEquals(item, value));
    if (entry) self.items.delete(entry[0]);
    return null;
  },
  pop: (self, args, keywords) => {
    none('pop', args, keywords);
    const first = self.items.entries().next();
    if (first.done) throw new PythonError('KeyError', "'pop from an empty set'");
    self.items.delete(first.value[0]);
    return first.value[1];
  },
  union: setCombination('union', (a, b) => {
    const out = setFrom(a.values());
    for (const value of b.values()) out.add(value);
    return out;
  }),
  intersection: setCombination('intersection', (a, b) => setFrom(a.values().filter((value) => b.has(value)))),
  difference: setCombination('difference', (a, b) => setFrom(a.values().filter((value) => !b.has(value)))),
  symmetric_difference: (self, args, keywords, runtime) =>
    then(collect(one('symmetric_difference', args, keywords), runtime), (items) => {
      const other = setFrom(items);
      const out = setFrom(self.values().filter((value) => !other.has(value)));
      for (const value of other.values()) if (!self.has(value)) out.add(value);
      return out;
    }),
  issubset: setTest('issubset', (a, b) => subsetOf(a, b)),
  issuperset: setTest('issuperset', (a, b) => subsetOf(b, a)),
  isdisjoint: setTest('isdisjoint', (a, b) => a.values().every((value) => !b.has(value))),
  update: (self, args, keywords, runtime) => {
    noKeywords('update', keywords);
    let index = 0;
    const next = (): MaybePromise<Value> => {
      if (index >= args.length) return null;
      return then(collect(args[index++], runtime), (items) => {
        runtime.checkLength(self.items.size + items.length);
        for (const item of items) self.add(item);
        return next();
      });
    };
    return next();
  },
  copy: (self, args, keywords) => {
    none('copy', args, keywords);
    return setFrom(self.values());
  },
  clear: (self, args, keywords) => {
    none('clear', args, keywords);
    self.items.clear();
    return null;
  },
};
const FLOAT_METHODS: Record<string, Method<number>> = {
  is_integer: (self, args, keywords) => {
    none('is_integer', args, keywords);
    return Number.isInteger(self);
  },
};

type AnyMethod = PyBoundMethod['implementation'];

function lookup(table: Record<string, unknown>, name: string): AnyMethod | undefined {
  return Object.prototype.hasOwnProperty.call(table, name) ? (table[name] as AnyMethod) : undefined;
}

/** The method `name` of a builtin-typed value (str, list, tuple, dict, set, float), unbound; undefined if none. */
export function builtinMethod(value: Value, name: string): AnyMethod | undefined {
  if (typeof value === 'string') return lookup(STRING_METHODS, name);
  if (Array.isArray(value)) return lookup(LIST_METHODS, name);
  if (value instanceof PyTuple) return lookup(TUPLE_METHODS, name);
  if (value instanceof PyDict) return lookup(DICT_METHODS, name);
  if (value instanceof PySet) return lookup(SET_METHODS, name);
  if (typeof value === 'number') return lookup(FLOAT_METHODS, name);
  return undefined;
}

/** The attribute `name` of a builtin-typed value (a bound method), or undefined when it has none. */
export function builtinAttribute(value: Value, name: string): Value | undefined {
  const method = builtinMethod(value, name);
  return method ? new PyBoundMethod(value, name, method) : undefined;
}
