// Python's arithmetic, bitwise, membership and subscript operators over sandbox values, with CPython's semantics.

import { PythonError, SandboxRefusal, raise } from './python-errors';
import {
  PyDict,
  PyIterator,
  PyRange,
  PySet,
  PyTuple,
  type Runtime,
  type Value,
  codePoints,
  hashKey,
  isIntLike,
  isNumeric,
  pyEquals,
  pyRepr,
  toBigInt,
  toFloat,
  typeName,
} from './python-values';

export type BinaryOperator = '+' | '-' | '*' | '/' | '//' | '%' | '**' | '@' | '<<' | '>>' | '&' | '|' | '^';
export type UnaryOperator = '-' | '+' | '~';

function unsupported(operator: string, a: Value, b: Value): never {
  return raise.type(`unsupported operand type(s) for ${operator}: '${typeName(a)}' and '${typeName(b)}'`);
}

function bitLength(value: bigint): number {
  return value === 0n ? 0 : (value < 0n ? -value : value).toString(2).length;
}

/** Python's float modulo and floor division (CPython's float_divmod). */
function floatDivmod(x: number, y: number): [number, number] {
  let mod = x % y;
  let div = (x - mod) / y;
  if (mod !== 0) {
    if (y < 0 !== mod < 0) {
      mod += y;
      div -= 1;
    }
  } else mod = Object.is(y, -0) || y < 0 ? -0 : 0;
  let floor: number;
  if (div !== 0) {
    floor = Math.floor(div);
    if (div - floor > 0.5) floor += 1;
  } else floor = x / y < 0 || Object.is(x / y, -0) ? -0 : 0;
  return [floor, mod];
}

function intFloorDivide(a: bigint, b: bigint): bigint {
  const quotient = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? quotient - 1n : quotient;
}

function intModulo(a: bigint, b: bigint): bigint {
  const remainder = a % b;
  return remainder !== 0n && remainder < 0n !== b < 0n ? remainder + b : remainder;
}

function intTrueDivide(a: bigint, b: bigint): number {
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  if (a <= safe && a >= -safe && b <= safe && b >= -safe) return Number(a) / Number(b);
  // Scale so the quotient keeps 64 significant bits, then divide exactly in integers.
  const shift = Math.max(0, 64 - (bitLength(a) - bitLength(b)));
  const quotient = Number((a << BigInt(shift)) / b) / 2 ** shift;
  if (!Number.isFinite(quotient)) raise.overflow('integer division result too large for a float');
  return quotient;
}

function floatPower(x: number, y: number): number {
  if (x === 1 || y === 0) return 1;
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.NaN;
  if (x === -1 && !Number.isFinite(y)) return 1;
  if (x === 0 && y < 0) raise.zeroDivision('0.0 cannot be raised to a negative power');
  if (x < 0 && Number.isFinite(y) && !Number.isInteger(y)) {
    throw new SandboxRefusal(
      'unsupported',
      'a negative number to a fractional power is complex; complex numbers are outside the sandboxed subset',
    );
  }
  const result = x ** y;
  if (!Number.isFinite(result) && Number.isFinite(x) && Number.isFinite(y)) {
    raise.overflow("(34, 'Numerical result out of range')");
  }
  return result;
}

function repeatSequence<T>(items: readonly T[], count: Value, runtime: Runtime): T[] {
  const times = Number(toBigInt(count as bigint | boolean));
  if (times <= 0 || items.length === 0) return [];
  runtime.checkLength(items.length * times);
  runtime.charge(items.length * times);
  const out: T[] = [];
  for (let i = 0; i < times; i++) for (const item of items) out.push(item);
  return out;
}

function repeatString(text: string, count: Value, runtime: Runtime): string {
  const times = Number(toBigInt(count as bigint | boolean));
  if (times <= 0 || text.length === 0) return '';
  runtime.checkLength(text.length * times);
  runtime.charge(Math.ceil((text.length * times) / 64));
  return text.repeat(times);
}

function concatenationError(left: Value, right: Value): never {
  return raise.type(`can only concatenate ${typeName(left)} (not "${typeName(right)}") to ${typeName(left)}`);
}

function setOperation(operator: string, a: PySet, b: PySet): PySet {
  const result = new PySet();
  switch (operator) {
    case '|':
      for (const [hash, value] of a.items) result.items.set(hash, value);
      for (const [hash, value] of b.items) if (!result.items.has(hash)) result.items.set(hash, value);
      break;
    case '&':
      for (const [hash, value] of a.items) if (b.items.has(hash)) result.items.set(hash, value);
      break;
    case '-':
      for (const [hash, value] of a.items) if (!b.items.has(hash)) result.items.set(hash, value);
      break;
    default:
      for (const [hash, value] of a.items) if (!b.items.has(hash)) result.items.set(hash, value);
      for (const [hash, value] of b.items) if (!a.items.has(hash)) result.items.set(hash, value);
  }
  return result;
}

function numericOperation(
  operator: BinaryOperator,
  a: bigint | boolean | number,
  b: bigint | boolean | number,
  runtime: Runtime,
): Value {
  if (typeof a !== 'number' && typeof b !== 'number') {
    const x = toBigInt(a);
    const y = toBigInt(b);
    switch (operator) {
      case '+':
        return runtime.checkInt(x + y);
      case '-':
        return runtime.checkInt(x - y);
      case '*':
        return runtime.checkInt(x * y);
      case '/':
        if (y === 0n) raise.zeroDivision('division by zero');
        return intTrueDivide(x, y);
      case '//':
        if (y === 0n) raise.zeroDivision('integer division or modulo by zero');
        return intFloorDivide(x, y);
      case '%':
        if (y === 0n) raise.zeroDivision('integer modulo by zero');
        return intModulo(x, y);
      case '**': {
        if (y < 0n) return floatPower(toFloat(x), toFloat(y));
        if (x === 0n || x === 1n || y === 0n) return y === 0n ? 1n : x;
        if (x === -1n) return y % 2n === 0n ? 1n : -1n;
        // The result has at least (bits(x) - 1) * y + 1 bits: refuse before computing a number too wide.
        runtime.checkIntBits((bitLength(x) - 1) * Number(y > 1_000_000_000n ? 1_000_000_000n : y) + 1);
        return runtime.checkInt(x ** y);
      }
      case '<<':
      case '>>': {
        if (y < 0n) raise.value('negative shift count');
        if (operator === '>>') return y > 100_000n ? (x < 0n ? -1n : 0n) : x >> y;
        if (x === 0n) return 0n;
        runtime.checkIntBits(bitLength(x) + Number(y > 1_000_000_000n ? 1_000_000_000n : y));
        return runtime.checkInt(x << y);
      }
      case '&':
      case '|':
      case '^': {
        const result = operator === '&' ? x & y : operator === '|' ? x | y : x ^ y;
        return typeof a === 'boolean' && typeof b === 'boolean' ? result !== 0n : result;
      }
      default:
        return unsupported(operator, a, b);
    }
  }
  const x = toFloat(a);
  const y = toFloat(b);
  switch (operator) {
    case '+':
      return x + y;
    case '-':
      return x - y;
    case '*':
      return x * y;
    case '/':
      if (y === 0) raise.zeroDivision('float division by zero');
      return x / y;
    case '//':
      if (y === 0) raise.zeroDivision('float floor division by zero');
      return floatDivmod(x, y)[0];
    case '%':
      if (y === 0) raise.zeroDivision('float modulo');
      return floatDivmod(x, y)[1];
    case '**':
      return floatPower(x, y);
    default:
      return unsupported(operator, a, b);
  }
}

/** Python's binary operators. */
export function binaryOperation(operator: BinaryOperator, a: Value, b: Value, runtime: Runtime): Value {
  if (isNumeric(a) && isNumeric(b)) return numericOperation(operator, a, b, runtime);
  switch (operator) {
    case '+':
      if (typeof a === 'string') {
        if (typeof b !== 'string') concatenationError(a, b);
        runtime.checkLength(a.length + (b as string).length);
        return a + (b as string);
      }
      if (Array.isArray(a)) {
        if (!Array.isArray(b)) concatenationError(a, b);
        runtime.checkLength(a.length + (b as Value[]).length);
        runtime.charge(a.length + (b as Value[]).length);
        return [...a, ...(b as Value[])];
      }
      if (a instanceof PyTuple) {
        if (!(b instanceof PyTuple)) concatenationError(a, b);
        runtime.checkLength(a.items.length + (b as PyTuple).items.length);
        return new PyTuple([...a.items, ...(b as PyTuple).items]);
      }
      return unsupported(operator, a, b);
    case '*': {
      const [sequence, count] = isIntLike(b) ? [a, b] : isIntLike(a) ? [b, a] : [a, b];
      if (isIntLike(count)) {
        if (typeof sequence === 'string') return repeatString(sequence, count, runtime);
        if (Array.isArray(sequence)) return repeatSequence(sequence, count, runtime);
        if (sequence instanceof PyTuple) return new PyTuple(repeatSequence(sequence.items, count, runtime));
      }
      if (typeof a === 'string' || Array.isArray(a) || a instanceof PyTuple) {
        return raise.type(`can't multiply sequence by non-int of type '${typeName(b)}'`);
      }
      return unsupported(operator, a, b);
    }
    case '%':
      if (typeof a === 'string') {
        throw new SandboxRefusal(
          'unsupported',
          "printf-style '%' string formatting is outside the sandboxed subset; use an f-string or str.format",
        );
      }
      return unsupported(operator, a, b);
    case '-':
    case '&':
    case '|':
    case '^':
      if (a instanceof PySet && b instanceof PySet) {
        runtime.charge(a.items.size + b.items.size);
        return setOperation(operator, a, b);
      }
      if (operator === '|' && a instanceof PyDict && b instanceof PyDict) {
        const merged = new PyDict();
        for (const [key, value] of a.entries.values()) merged.set(key, value);
        for (const [key, value] of b.entries.values()) merged.set(key, value);
        return merged;
      }
      return unsupported(operator, a, b);
    default:
      return unsupported(operator, a, b);
  }
}

/** Python's unary `-`, `+` and `~` (`not` is truthiness). */
export function unaryOperation(operator: UnaryOperator, value: Value): Value {
  if (typeof value === 'number') {
    if (operator === '~') raise.type("bad operand type for unary ~: 'float'");
    return operator === '-' ? -value : value;
  }
  if (isIntLike(value)) {
    const integer = toBigInt(value);
    return operator === '-' ? -integer : operator === '~' ? ~integer : integer;
  }
  return raise.type(`bad operand type for unary ${operator}: '${typeName(value)}'`);
}

/**
 * Python's `item in container` for containers that can answer at once; undefined for iterators, which the
 * interpreter walks (they may call modules on the way).
 */
export function containsValue(container: Value, item: Value): boolean | undefined {
  if (typeof container === 'string') {
    if (typeof item !== 'string')
      raise.type(`'in <string>' requires string as left operand, not ${typeName(item)}`);
    return container.includes(item as string);
  }
  if (Array.isArray(container))
    return container.some((element) => element === item || pyEquals(element, item));
  if (container instanceof PyTuple)
    return container.items.some((element) => element === item || pyEquals(element, item));
  if (container instanceof PyDict) return container.has(item);
  if (container instanceof PySet) return container.has(item);
  if (container instanceof PyRange) {
    if (!isNumeric(item)) return false;
    if (typeof item === 'number' && !Number.isInteger(item)) return false;
    const value = typeof item === 'number' ? BigInt(item) : toBigInt(item);
    const { start, stop, step } = container;
    const inside = step > 0n ? value >= start && value < stop : value <= start && value > stop;
    return inside && (value - start) % step === 0n;
  }
  if (container instanceof PyIterator) return undefined;
  return raise.type(`argument of type '${typeName(container)}' is not iterable`);
}

function sequenceIndex(index: Value, length: number, what: string): number {
  if (!isIntLike(index)) raise.type(`${what} indices must be integers or slices, not ${typeName(index)}`);
  let position = toBigInt(index as bigint | boolean);
  if (position < 0n) position += BigInt(length);
  if (position < 0n || position >= BigInt(length)) raise.index(`${what} index out of range`);
  return Number(position);
}

/** Python's `container[key]` for a single key (slices go through getSlice). */
export function getItem(container: Value, key: Value): Value {
  if (Array.isArray(container)) return container[sequenceIndex(key, container.length, 'list')];
  if (container instanceof PyTuple)
    return container.items[sequenceIndex(key, container.items.length, 'tuple')];
  if (typeof container === 'string') {
    const points = codePoints(container);
    if (!isIntLike(key)) raise.type(`string indices must be integers, not '${typeName(key)}'`);
    return points
      ? points[sequenceIndex(key, points.length, 'string')]
      : container[sequenceIndex(key, container.length, 'string')];
  }
  if (container instanceof PyDict) {
    const value = container.get(key);
    if (value === undefined) throw new PythonError('KeyError', pyRepr(key));
    return value;
  }
  if (container instanceof PyRange) return container.at(sequenceIndex(key, container.length, 'range object'));
  return raise.type(`'${typeName(container)}' object is not subscriptable`);
}

/** Python's `container[key] = value`. */
export function setItem(container: Value, key: Value, value: Value): void {
  if (Array.isArray(container)) {
    if (!isIntLike(key)) raise.type(`list indices must be integers or slices, not ${typeName(key)}`);
    let position = toBigInt(key as bigint | boolean);
    if (position < 0n) position += BigInt(container.length);
    if (position < 0n || position >= BigInt(container.length))
      raise.index('list assignment index out of range');
    container[Number(position)] = value;
    return;
  }
  if (container instanceof PyDict) {
    hashKey(key);
    container.set(key, value);
    return;
  }
  raise.type(`'${typeName(container)}' object does not support item assignment`);
}

/** The positions a slice selects from a sequence of `length` (CPython's PySlice_AdjustIndices). */
export function sliceIndices(
  length: number,
  start: Value,
  stop: Value,
  step: Value,
): { start: number; step: number; count: number } {
  const toNumber = (value: Value): number | null => {
    if (value === null) return null;
    if (!isIntLike(value)) raise.type('slice indices must be integers or None or have an __index__ method');
    const integer = toBigInt(value as bigint | boolean);
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    return Number(integer > limit ? limit : integer < -limit ? -limit : integer);
  };
  const stride = toNumber(step) ?? 1;
  if (stride === 0) raise.value('slice step cannot be zero');
  const adjust = (value: number | null, fallback: number): number => {
    if (value === null) return fallback;
    if (value < 0) {
      const shifted = value + length;
      return shifted < 0 ? (stride < 0 ? -1 : 0) : shifted;
    }
    return value >= length ? (stride < 0 ? length - 1 : length) : value;
  };
  const first = adjust(toNumber(start), stride < 0 ? length - 1 : 0);
  const last = adjust(toNumber(stop), stride < 0 ? -1 : length);
  const count =
    stride > 0
      ? last > first
        ? Math.ceil((last - first) / stride)
        : 0
      : last < first
        ? Math.ceil((first - last) / -stride)
        : 0;
  return { start: first, step: stride, count };
}

/** Python's `container[start:stop:step]`. */
export function getSlice(container: Value, start: Value, stop: Value, step: Value, runtime: Runtime): Value {
  const pick = <T>(items: readonly T[]): T[] => {
    const { start: first, step: stride, count } = sliceIndices(items.length, start, stop, step);
    runtime.charge(count);
    const out = new Array<T>(count);
    for (let i = 0; i < count; i++) out[i] = items[first + i * stride];
    return out;
  };
  if (Array.isArray(container)) return pick(container);
  if (container instanceof PyTuple) return new PyTuple(pick(container.items));
  if (typeof container === 'string') {
    const points = codePoints(container);
    if (points) return pick(points).join('');
    if (step === null || step === 1n) {
      const { start: first, count } = sliceIndices(container.length, start, stop, step);
      return container.slice(first, first + count);
    }
    return pick(container.split('')).join('');
  }
  if (container instanceof PyRange) {
    const { start: first, step: stride, count } = sliceIndices(container.length, start, stop, step);
    const begin = container.at(first);
    const stepBig = container.step * BigInt(stride);
    return new PyRange(begin, begin + stepBig * BigInt(count), stepBig);
  }
  return raise.type(`'${typeName(container)}' object is not subscriptable`);
}
