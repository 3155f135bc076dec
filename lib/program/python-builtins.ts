// The Python builtins of the sandboxed subset: len, sum, min, max, sorted, any, all, abs, round, int, float, str, ...

import { type MaybePromise, sequence, then } from './maybe-async';
import { type Parameters, bindArguments, noKeywords } from './python-arguments';
import { PythonError, raise } from './python-errors';
import {
  EnumerateIterator,
  SequenceIterator,
  ZipIterator,
  collect,
  forEachItem,
  iterate,
} from './python-iteration';
import { roundFloat } from './python-number-format';
import { binaryOperation } from './python-operators';
import {
  PyBuiltin,
  PyDict,
  PyRange,
  PySet,
  PyTuple,
  type Runtime,
  type Value,
  isIntLike,
  isTruthy,
  lengthOf,
  pyCompare,
  pyRepr,
  pyStr,
  toBigInt,
  typeName,
} from './python-values';

type Implementation = PyBuiltin['implementation'];

function builtin(name: string, implementation: Implementation): [string, PyBuiltin] {
  return [name, new PyBuiltin(name, implementation)];
}

function bind(name: string, args: Value[], keywords: Map<string, Value> | null, parameters: Parameters) {
  return bindArguments(name, args, keywords, parameters);
}

const INT_TEXT = /^[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[0-9](?:_?[0-9])*)$/;
/** Python's float() grammar, written so that no input makes the regular expression backtrack. */
const FLOAT_TEXT =
  /^[+-]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;
const DIGIT_LIMIT = 4300;

/** int(text, base) with Python's grammar: sign, optional base prefix, underscores between digits. */
export function parseIntText(text: string, base: number): bigint {
  const stripped = text.trim();
  const fail = (): never => raise.value(`invalid literal for int() with base ${base}: ${pyRepr(text)}`);
  let body = stripped;
  let negative = false;
  if (body.startsWith('+') || body.startsWith('-')) {
    negative = body[0] === '-';
    body = body.slice(1);
  }
  const prefix = body.slice(0, 2).toLowerCase();
  const prefixBase = prefix === '0x' ? 16 : prefix === '0o' ? 8 : prefix === '0b' ? 2 : 0;
  let radix = base;
  if (prefixBase !== 0 && (base === 0 || base === prefixBase)) {
    radix = prefixBase;
    body = body.slice(2).replace(/^_/, '');
  } else if (base === 0) {
    radix = 10;
    if (/^0+[1-9]/.test(body.replace(/_/g, ''))) fail();
  }
  if (body === '' || body.startsWith('_') || body.endsWith('_') || body.includes('__')) fail();
  const digits = body.replace(/_/g, '').toLowerCase();
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz'.slice(0, radix);
  for (const char of digits) if (!alphabet.includes(char)) fail();
  if (radix === 10 && digits.length > DIGIT_LIMIT) {
    raise.value(
      `Exceeds the limit (${DIGIT_LIMIT} digits) for integer string conversion: value has ${digits.length} digits; use sys.set_int_max_str_digits() to increase the limit`,
    );
  }
  let value = 0n;
  if (radix === 10) value = BigInt(digits);
  else for (const char of digits) value = value * BigInt(radix) + BigInt(alphabet.indexOf(char));
  return negative ? -value : value;
}

/** float(text) with Python's grammar (inf, nan, underscores between digits). */
export function parseFloatText(text: string): number {
  const stripped = text.trim();
  const lower = stripped.toLowerCase();
  const sign = lower.startsWith('-') ? -1 : 1;
  const unsigned = lower.replace(/^[+-]/, '');
  if (unsigned === 'inf' || unsigned === 'infinity') return sign * Number.POSITIVE_INFINITY;
  if (unsigned === 'nan') return Number.NaN;
  if (!FLOAT_TEXT.test(stripped)) raise.value(`could not convert string to float: ${pyRepr(text)}`);
  return Number(stripped.replace(/_/g, ''));
}

function toInt(value: Value, base: Value | undefined): bigint {
  if (base !== undefined) {
    if (typeof value !== 'string') raise.type("int() can't convert non-string with explicit base");
    if (!isIntLike(base)) raise.type(`'${typeName(base)}' object cannot be interpreted as an integer`);
    const radix = Number(toBigInt(base as bigint | boolean));
    if (radix !== 0 && (radix < 2 || radix > 36)) raise.value('int() base must be >= 2 and <= 36, or 0');
    return parseIntText(value as string, radix);
  }
  if (isIntLike(value)) return toBigInt(value);
  if (typeof value === 'number') {
    if (Number.isNaN(value)) raise.value('cannot convert float NaN to integer');
    if (!Number.isFinite(value)) raise.overflow('cannot convert float infinity to integer');
    return BigInt(Math.trunc(value));
  }
  if (typeof value === 'string') {
    if (!INT_TEXT.test(value.trim())) raise.value(`invalid literal for int() with base 10: ${pyRepr(value)}`);
    return parseIntText(value, 10);
  }
  return raise.type(
    `int() argument must be a string, a bytes-like object or a real number, not '${typeName(value)}'`,
  );
}

/** Python's int(x): also how ImagePatch.crop makes its coordinates integers. */
export function pythonInt(value: Value): bigint {
  return toInt(value, undefined);
}

function toFloatValue(value: Value): number {
  if (typeof value === 'number') return value;
  if (isIntLike(value)) {
    const float = Number(toBigInt(value));
    if (!Number.isFinite(float)) raise.overflow('int too large to convert to float');
    return float;
  }
  if (typeof value === 'string') return parseFloatText(value);
  return raise.type(`float() argument must be a string or a real number, not '${typeName(value)}'`);
}

function roundValue(number: Value, digits: Value | undefined): Value {
  if (digits !== undefined && digits !== null && !isIntLike(digits)) {
    raise.type(`'${typeName(digits)}' object cannot be interpreted as an integer`);
  }
  const places =
    digits === undefined || digits === null ? null : Number(toBigInt(digits as bigint | boolean));
  if (isIntLike(number)) {
    const integer = toBigInt(number);
    if (places === null || places >= 0) return integer;
    const unit = 10n ** BigInt(-places);
    const floor = integer >= 0n ? integer / unit : -((-integer + unit - 1n) / unit);
    const remainder = integer - floor * unit;
    const twice = remainder * 2n;
    const up = twice > unit || (twice === unit && floor % 2n !== 0n);
    return (up ? floor + 1n : floor) * unit;
  }
  if (typeof number !== 'number')
    return raise.type(`type ${typeName(number)} doesn't define __round__ method`);
  if (places === null) {
    if (Number.isNaN(number)) raise.value('cannot convert float NaN to integer');
    if (!Number.isFinite(number)) raise.overflow('cannot convert float infinity to integer');
    return BigInt(roundFloat(number, 0));
  }
  return roundFloat(number, places);
}

/** Keys for sort/min/max: computed once per item, in order, as CPython does. */
function keysOf(items: Value[], key: Value | undefined, runtime: Runtime): MaybePromise<Value[]> {
  if (key === undefined || key === null) return items;
  return sequence(items.length, (i) => runtime.call(key, [items[i]]));
}

/** Sorts stably by `<` on the keys; `reverse` keeps equal items in their original order, as CPython does. */
export function sortItems(
  items: Value[],
  key: Value | undefined,
  reverse: boolean,
  runtime: Runtime,
): MaybePromise<Value[]> {
  return then(keysOf(items, key, runtime), (keys) => {
    runtime.charge(Math.ceil(items.length * Math.log2(items.length + 1)));
    const order = items.map((_, index) => index);
    order.sort((a, b) => {
      const [first, second] = reverse ? [b, a] : [a, b];
      if (pyCompare(keys[first], keys[second], '<')) return -1;
      if (pyCompare(keys[second], keys[first], '<')) return 1;
      return 0;
    });
    return order.map((index) => items[index]);
  });
}

function extreme(
  name: 'min' | 'max',
  args: Value[],
  keywords: Map<string, Value> | null,
  runtime: Runtime,
): MaybePromise<Value> {
  let key: Value | undefined;
  let fallback: Value | undefined;
  for (const [keyword, value] of keywords ?? []) {
    if (keyword === 'key') key = value;
    else if (keyword === 'default') fallback = value;
    else raise.type(`${name}() got an unexpected keyword argument '${keyword}'`);
  }
  if (args.length === 0) raise.type(`${name} expected at least 1 argument, got 0`);
  if (args.length > 1 && fallback !== undefined) {
    raise.type(`Cannot specify a default for ${name}() with multiple positional arguments`);
  }
  const source: MaybePromise<Value[]> = args.length === 1 ? collect(args[0], runtime) : args;
  return then(source, (items) =>
    then(keysOf(items, key, runtime), (keys) => {
      if (items.length === 0) {
        if (fallback !== undefined) return fallback;
        return raise.value(`${name}() arg is an empty sequence`);
      }
      let best = 0;
      for (let i = 1; i < items.length; i++) {
        if (pyCompare(keys[i], keys[best], name === 'max' ? '>' : '<')) best = i;
      }
      return items[best];
    }),
  );
}

function rangeOf(args: Value[], keywords: Map<string, Value> | null): PyRange {
  noKeywords('range', keywords);
  if (args.length === 0 || args.length > 3)
    raise.type(`range expected at least 1 argument, got ${args.length}`);
  const integers = args.map((value) => {
    if (!isIntLike(value)) raise.type(`'${typeName(value)}' object cannot be interpreted as an integer`);
    return toBigInt(value as bigint | boolean);
  });
  if (integers.length === 1) return new PyRange(0n, integers[0], 1n);
  return new PyRange(integers[0], integers[1], integers[2] ?? 1n);
}

function dictOf(args: Value[], keywords: Map<string, Value> | null, runtime: Runtime): MaybePromise<Value> {
  if (args.length > 1) raise.type(`dict expected at most 1 argument, got ${args.length}`);
  const dict = new PyDict();
  const addKeywords = () => {
    for (const [key, value] of keywords ?? []) dict.set(key, value);
    return dict;
  };
  if (args.length === 0) return addKeywords();
  const source = args[0];
  if (source instanceof PyDict) {
    for (const [key, value] of source.entries.values()) dict.set(key, value);
    return addKeywords();
  }
  let index = 0;
  return then(
    forEachItem(source, runtime, (pair) =>
      then(collect(pair, runtime), (parts) => {
        if (parts.length !== 2) {
          raise.value(
            `dictionary update sequence element #${index} has length ${parts.length}; 2 is required`,
          );
        }
        dict.set(parts[0], parts[1]);
        index++;
        return true;
      }),
    ),
    addKeywords,
  );
}

function reversedOf(value: Value): Value {
  if (Array.isArray(value)) return new SequenceIterator(value.slice().reverse(), 'list_reverseiterator');
  if (value instanceof PyTuple) return new SequenceIterator(value.items.slice().reverse(), 'reversed');
  if (typeof value === 'string') return new SequenceIterator([...value].reverse(), 'reversed');
  if (value instanceof PyRange) {
    const items: Value[] = [];
    for (let i = value.length - 1; i >= 0; i--) items.push(value.at(i));
    return new SequenceIterator(items, 'range_iterator');
  }
  if (value instanceof PyDict) return new SequenceIterator(value.keys().reverse(), 'dict_reversekeyiterator');
  return raise.type(`'${typeName(value)}' object is not reversible`);
}

function sumOf(args: Value[], keywords: Map<string, Value> | null, runtime: Runtime): MaybePromise<Value> {
  const [iterable, start] = bind('sum', args, keywords, {
    names: ['iterable', 'start'],
    required: 1,
    positionalOnly: 1,
  });
  let total: Value = start ?? 0n;
  if (typeof total === 'string') raise.type("sum() can't sum strings [use ''.join(seq) instead]");
  return then(
    forEachItem(iterable as Value, runtime, (item) => {
      total = binaryOperation('+', total, item, runtime);
      return true;
    }),
    () => total,
  );
}

function truthTest(
  name: 'any' | 'all',
  args: Value[],
  keywords: Map<string, Value> | null,
  runtime: Runtime,
): MaybePromise<Value> {
  noKeywords(name, keywords);
  if (args.length !== 1) raise.type(`${name}() takes exactly one argument (${args.length} given)`);
  let result = name === 'all';
  return then(
    forEachItem(args[0], runtime, (item) => {
      if (isTruthy(item) === (name === 'any')) {
        result = !result;
        return false;
      }
      return true;
    }),
    () => result,
  );
}

function one(name: string, args: Value[], keywords: Map<string, Value> | null): Value {
  noKeywords(name, keywords);
  if (args.length !== 1) raise.type(`${name}() takes exactly one argument (${args.length} given)`);
  return args[0];
}

/** The builtins a sandboxed program can call, by name. */
export const PYTHON_BUILTINS: ReadonlyMap<string, PyBuiltin> = new Map([
  builtin('abs', (args, keywords) => {
    const value = one('abs', args, keywords);
    if (typeof value === 'number') return Math.abs(value);
    if (isIntLike(value)) {
      const integer = toBigInt(value);
      return integer < 0n ? -integer : integer;
    }
    return raise.type(`bad operand type for abs(): '${typeName(value)}'`);
  }),
  builtin('all', (args, keywords, runtime) => truthTest('all', args, keywords, runtime)),
  builtin('any', (args, keywords, runtime) => truthTest('any', args, keywords, runtime)),
  builtin('bool', (args, keywords) => {
    noKeywords('bool', keywords);
    if (args.length > 1) raise.type(`bool expected at most 1 argument, got ${args.length}`);
    return args.length === 0 ? false : isTruthy(args[0]);
  }),
  builtin('dict', (args, keywords, runtime) => dictOf(args, keywords, runtime)),
  builtin('enumerate', (args, keywords) => {
    const [iterable, start] = bind('enumerate', args, keywords, {
      names: ['iterable', 'start'],
      required: 1,
    });
    if (start !== undefined && !isIntLike(start))
      raise.type(`'${typeName(start)}' object cannot be interpreted as an integer`);
    return new EnumerateIterator(
      iterate(iterable as Value),
      start === undefined ? 0n : toBigInt(start as bigint | boolean),
    );
  }),
  builtin('float', (args, keywords) => {
    noKeywords('float', keywords);
    if (args.length > 1) raise.type(`float expected at most 1 argument, got ${args.length}`);
    return args.length === 0 ? 0 : toFloatValue(args[0]);
  }),
  builtin('int', (args, keywords, runtime) => {
    const [value, base] = bind('int', args, keywords, {
      names: ['x', 'base'],
      required: 0,
      positionalOnly: 1,
    });
    return value === undefined ? 0n : runtime.checkInt(toInt(value, base));
  }),
  builtin('len', (args, keywords) => {
    const value = one('len', args, keywords);
    const length = lengthOf(value);
    if (length === undefined) raise.type(`object of type '${typeName(value)}' has no len()`);
    return BigInt(length as number);
  }),
  builtin('list', (args, keywords, runtime) => {
    noKeywords('list', keywords);
    if (args.length > 1) raise.type(`list expected at most 1 argument, got ${args.length}`);
    return args.length === 0 ? [] : collect(args[0], runtime);
  }),
  builtin('max', (args, keywords, runtime) => extreme('max', args, keywords, runtime)),
  builtin('min', (args, keywords, runtime) => extreme('min', args, keywords, runtime)),
  builtin('range', (args, keywords) => rangeOf(args, keywords)),
  builtin('reversed', (args, keywords) => reversedOf(one('reversed', args, keywords))),
  builtin('round', (args, keywords) => {
    const [number, digits] = bind('round', args, keywords, { names: ['number', 'ndigits'], required: 1 });
    return roundValue(number as Value, digits);
  }),
  builtin('set', (args, keywords, runtime) => {
    noKeywords('set', keywords);
    if (args.length > 1) raise.type(`set expected at most 1 argument, got ${args.length}`);
    return args.length === 0 ? new PySet() : then(collect(args[0], runtime), (items) => new PySet(items));
  }),
  builtin('sorted', (args, keywords, runtime) => {
    const [iterable, key, reverse] = bind('sorted', args, keywords, {
      names: ['iterable'],
      required: 1,
      positionalOnly: 1,
      keywordOnly: ['key', 'reverse'],
    });
    return then(collect(iterable as Value, runtime), (items) =>
      sortItems(items, key, reverse !== undefined && isTruthy(reverse), runtime),
    );
  }),
  builtin('str', (args, keywords, runtime) => {
    noKeywords('str', keywords);
    if (args.length > 1) {
      throw new PythonError(
        'TypeError',
        'str() with an encoding is outside the sandboxed subset (there are no bytes)',
      );
    }
    if (args.length === 0) return '';
    const text = pyStr(args[0]);
    runtime.checkLength(text.length);
    return text;
  }),
  builtin('sum', (args, keywords, runtime) => sumOf(args, keywords, runtime)),
  builtin('tuple', (args, keywords, runtime) => {
    noKeywords('tuple', keywords);
    if (args.length > 1) raise.type(`tuple expected at most 1 argument, got ${args.length}`);
    return args.length === 0
      ? new PyTuple([])
      : then(collect(args[0], runtime), (items) => new PyTuple(items));
  }),
  builtin('zip', (args, keywords) => {
    noKeywords('zip', keywords);
    return new ZipIterator(args.map(iterate));
  }),
]);
