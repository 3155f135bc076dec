// Python values in the ViperGPT sandbox: the object types, truthiness, equality, hashing, ordering, repr and str.
//
// Representation: None is null, bool a boolean, int a bigint (arbitrary precision, as in Python), float a number,
// str a string, list a JavaScript array; everything else is a PyObject subclass. Nothing of JavaScript is reachable
// from a program: attributes are looked up in explicit tables, never on the objects themselves.

import { performance } from 'node:perf_hooks';
import type { RasterImage } from './image';
import type { MaybePromise } from './maybe-async';
import { PythonError, SandboxLimit, raise } from './python-errors';
import { floatRepr } from './python-number-format';

/** Any value a sandboxed program can hold. */
export type Value = null | boolean | bigint | number | string | Value[] | PyObject;

/** Keyword arguments of a call, in the order written. */
export type Keywords = Map<string, Value> | null;

/** What builtins and methods may ask of the running interpreter. */
export interface Runtime {
  /** Counts work against the step budget; checks the time limit now and then. */
  charge(steps: number): void;
  /** Refuses a string or collection longer than the size limit. */
  checkLength(length: number): void;
  /** Refuses an int wider than the size limit; returns it otherwise. */
  checkInt(value: bigint): bigint;
  /** Refuses, before computing it, an int that would need more than the size limit's bits. */
  checkIntBits(bits: number): void;
  /** Calls any callable value. */
  call(callee: Value, args: Value[], keywords?: Keywords): MaybePromise<Value>;
  /** Reads an attribute as `value.name` does in the program (str.format's `{0.left}` fields use it). */
  readonly attribute: (value: Value, name: string) => Value;
}

/** Base of every non-primitive value. */
export abstract class PyObject {
  abstract readonly typeName: string;
  /** The object's repr, for types that define one (ImagePatch, VideoSegment). */
  reprText?(): string;
}

/** An immutable sequence. */
export class PyTuple extends PyObject {
  readonly typeName = 'tuple';
  constructor(readonly items: readonly Value[]) {
    super();
  }
}

/** Insertion-ordered dict; keys are stored with their hash key so 1, 1.0 and True are one key, as in Python. */
export class PyDict extends PyObject {
  readonly typeName = 'dict';
  readonly entries = new Map<string, [Value, Value]>();

  get size(): number {
    return this.entries.size;
  }

  get(key: Value): Value | undefined {
    return this.entries.get(hashKey(key))?.[1];
  }

  set(key: Value, value: Value): void {
    const hash = hashKey(key);
    const existing = this.entries.get(hash);
    if (existing) existing[1] = value;
    else this.entries.set(hash, [key, value]);
  }

  has(key: Value): boolean {
    return this.entries.has(hashKey(key));
  }

  delete(key: Value): boolean {
    return this.entries.delete(hashKey(key));
  }

  keys(): Value[] {
    return [...this.entries.values()].map((entry) => entry[0]);
  }
}

/**
 * A set, iterated in insertion order. (CPython iterates sets in hash order, which for strings changes from run to
 * run; insertion order is one of the orders CPython can produce and keeps runs reproducible.)
 */
export class PySet extends PyObject {
  readonly typeName = 'set';
  readonly items = new Map<string, Value>();

  constructor(values: Iterable<Value> = []) {
    super();
    for (const value of values) this.add(value);
  }

  add(value: Value): void {
    const hash = hashKey(value);
    if (!this.items.has(hash)) this.items.set(hash, value);
  }

  has(value: Value): boolean {
    return this.items.has(hashKey(value));
  }

  values(): Value[] {
    return [...this.items.values()];
  }
}

/** `range(start, stop, step)`, lazily. */
export class PyRange extends PyObject {
  readonly typeName = 'range';
  readonly length: number;

  constructor(
    readonly start: bigint,
    readonly stop: bigint,
    readonly step: bigint,
  ) {
    super();
    if (step === 0n) raise.value('range() arg 3 must not be zero');
    const span = step > 0n ? stop - start : start - stop;
    const magnitude = step > 0n ? step : -step;
    this.length = span <= 0n ? 0 : Number((span + magnitude - 1n) / magnitude);
  }

  at(index: number): bigint {
    return this.start + BigInt(index) * this.step;
  }
}

/** An image handed to the program (its `image` argument, or a patch's `cropped_image`). */
export class PyImage extends PyObject {
  readonly typeName = 'Image';
  constructor(readonly image: RasterImage) {
    super();
  }
}

/** A module such as `math`: a fixed table of attributes. */
export class PyModule extends PyObject {
  readonly typeName = 'module';
  constructor(
    readonly name: string,
    readonly attributes: ReadonlyMap<string, Value>,
  ) {
    super();
  }
}

/** Anything a program can call. */
export abstract class PyCallable extends PyObject {
  abstract readonly name: string;
  abstract call(args: Value[], keywords: Keywords, runtime: Runtime): MaybePromise<Value>;
}

/** A function implemented by the sandbox (a builtin, a math function, an API function). */
export class PyBuiltin extends PyCallable {
  readonly typeName = 'builtin_function_or_method';
  constructor(
    readonly name: string,
    readonly implementation: (args: Value[], keywords: Keywords, runtime: Runtime) => MaybePromise<Value>,
  ) {
    super();
  }

  call(args: Value[], keywords: Keywords, runtime: Runtime): MaybePromise<Value> {
    return this.implementation(args, keywords, runtime);
  }
}

/** A method bound to the object it was read from (`patches.sort`, `image_patch.find`). */
export class PyBoundMethod extends PyCallable {
  readonly typeName = 'builtin_function_or_method';
  constructor(
    readonly self: Value,
    readonly name: string,
    readonly implementation: (
      self: Value,
      args: Value[],
      keywords: Keywords,
      runtime: Runtime,
    ) => MaybePromise<Value>,
  ) {
    super();
  }

  call(args: Value[], keywords: Keywords, runtime: Runtime): MaybePromise<Value> {
    return this.implementation(this.self, args, keywords, runtime);
  }
}

/** A lazy iterator: enumerate, zip, reversed, a generator expression, a frame iterator. */
export abstract class PyIterator extends PyObject {
  /** The next value, or DONE. */
  abstract next(runtime: Runtime): MaybePromise<Value | typeof DONE>;
}

/** Marks the end of an iteration. */
export const DONE: unique symbol = Symbol('DONE');

// ---- type names and truthiness ----

export function typeName(value: Value): string {
  if (value === null) return 'NoneType';
  switch (typeof value) {
    case 'boolean':
      return 'bool';
    case 'bigint':
      return 'int';
    case 'number':
      return 'float';
    case 'string':
      return 'str';
    default:
      return Array.isArray(value) ? 'list' : value.typeName;
  }
}

export function isTruthy(value: Value): boolean {
  if (value === null) return false;
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'bigint':
      return value !== 0n;
    case 'number':
      return value !== 0; // NaN is true, as in Python
    case 'string':
      return value.length > 0;
    default:
      if (Array.isArray(value)) return value.length > 0;
      if (value instanceof PyTuple) return value.items.length > 0;
      if (value instanceof PyDict) return value.size > 0;
      if (value instanceof PySet) return value.items.size > 0;
      if (value instanceof PyRange) return value.length > 0;
      return true;
  }
}

/** True for int and bool (bool is a subclass of int in Python). */
export function isIntLike(value: Value): value is bigint | boolean {
  return typeof value === 'bigint' || typeof value === 'boolean';
}

export function isNumeric(value: Value): value is bigint | boolean | number {
  return typeof value === 'bigint' || typeof value === 'boolean' || typeof value === 'number';
}

export function toBigInt(value: bigint | boolean): bigint {
  return typeof value === 'boolean' ? (value ? 1n : 0n) : value;
}

/** An int (or bool) as a float, with Python's OverflowError for ints beyond the float range. */
export function toFloat(value: bigint | boolean | number): number {
  if (typeof value === 'number') return value;
  const float = Number(toBigInt(value));
  if (!Number.isFinite(float)) raise.overflow('int too large to convert to float');
  return float;
}

/** An index operand (int or bool) as a JavaScript number, or Python's TypeError. */
export function toIndex(value: Value, what: string): number {
  if (!isIntLike(value)) raise.type(`${what} must be integers or slices, not ${typeName(value)}`);
  const index = toBigInt(value as bigint | boolean);
  if (index > BigInt(Number.MAX_SAFE_INTEGER) || index < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new PythonError('IndexError', "cannot fit 'int' into an index-sized integer");
  }
  return Number(index);
}

// ---- equality, hashing, ordering ----

/**
 * Work done by the structural operations (==, <, hashing, repr and the conversions to JSON) since the running
 * interpreter last collected it. Values can share parts (`x = [x] * 3` in a loop), so these walks can be far
 * larger than the memory a value takes: the interpreter adds this work to its step count, and no single walk
 * may visit more than STRUCTURAL_WALK_LIMIT parts.
 */
let structuralWork = 0;
let walkStart = 0;
let walkDeadline = Number.POSITIVE_INFINITY;

/** How many parts one walk (one comparison, hash, repr or conversion) may visit. */
export const STRUCTURAL_WALK_LIMIT = 1_000_000;

/** Starts a walk (at depth 0) and counts one visited part; long walks also watch the running program's deadline. */
export function countVisit(depth: number, weight = 1): void {
  if (depth === 0) walkStart = structuralWork;
  const before = structuralWork - walkStart;
  structuralWork += weight;
  const visited = structuralWork - walkStart;
  if (visited > STRUCTURAL_WALK_LIMIT) {
    throw new SandboxLimit(
      'size',
      `a value has more than ${STRUCTURAL_WALK_LIMIT.toLocaleString('en-US')} parts to compare, hash or print (the size limit)`,
    );
  }
  if (visited >> 14 !== before >> 14 && performance.now() > walkDeadline) {
    throw new SandboxLimit(
      'time',
      'the program ran longer than its time limit, in one comparison, hash or repr',
    );
  }
}

/** When the running program's time is up (performance.now() milliseconds); the interpreter keeps it current. */
export function setWalkDeadline(deadline: number): void {
  walkDeadline = deadline;
}

/** The structural work done since the last call (the interpreter charges it to the run). */
export function takeStructuralWork(): number {
  const work = structuralWork;
  structuralWork = 0;
  walkStart = 0;
  return work;
}

const identities = new WeakMap<object, number>();
let nextIdentity = 1;

function identity(value: object): number {
  let id = identities.get(value);
  if (id === undefined) {
    id = nextIdentity++;
    identities.set(value, id);
  }
  return id;
}

/** A string that is equal for values Python considers equal and hashable; TypeError for unhashable values. */
export function hashKey(value: Value, depth = 0): string {
  countVisit(depth);
  if (value === null) return 'N';
  switch (typeof value) {
    case 'boolean':
      return value ? 'i1' : 'i0';
    case 'bigint':
      return `i${value}`;
    case 'number':
      if (Number.isInteger(value)) return `i${BigInt(value)}`;
      return `f${value}`;
    case 'string':
      if (value.length > 64) countVisit(depth + 1, value.length >> 6);
      return `s${value.length}:${value}`;
    default:
      if (value instanceof PyTuple) {
        if (depth > 200)
          throw new PythonError('RecursionError', 'maximum recursion depth exceeded while hashing');
        return `t${value.items.length}(${value.items.map((item) => hashKey(item, depth + 1)).join(',')})`;
      }
      if (Array.isArray(value) || value instanceof PyDict || value instanceof PySet) {
        return raise.type(`unhashable type: '${typeName(value)}'`);
      }
      return `o${identity(value)}`;
  }
}

function numericEquals(a: bigint | boolean | number, b: bigint | boolean | number): boolean {
  const left = typeof a === 'boolean' ? (a ? 1n : 0n) : a;
  const right = typeof b === 'boolean' ? (b ? 1n : 0n) : b;
  // Loose equality between a bigint and a number compares exact mathematical values.
  // biome-ignore lint/suspicious/noDoubleEquals: exact int/float comparison
  return left == right;
}

/** Python's `==`. */
export function pyEquals(a: Value, b: Value, depth = 0): boolean {
  countVisit(depth);
  if (a === b) return !(typeof a === 'number' && Number.isNaN(a));
  if (isNumeric(a) && isNumeric(b)) return numericEquals(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (depth > 200) throw new PythonError('RecursionError', 'maximum recursion depth exceeded in comparison');
  if (Array.isArray(a)) return Array.isArray(b) && sequenceEquals(a, b, depth);
  if (a instanceof PyTuple) return b instanceof PyTuple && sequenceEquals(a.items, b.items, depth);
  if (a instanceof PyDict) {
    if (!(b instanceof PyDict) || a.size !== b.size) return false;
    for (const [hash, [, value]] of a.entries) {
      const other = b.entries.get(hash);
      if (!other || !pyEquals(value, other[1], depth + 1)) return false;
    }
    return true;
  }
  if (a instanceof PySet) {
    if (!(b instanceof PySet) || a.items.size !== b.items.size) return false;
    for (const hash of a.items.keys()) if (!b.items.has(hash)) return false;
    return true;
  }
  if (a instanceof PyRange && b instanceof PyRange) {
    if (a.length !== b.length) return false;
    return a.length === 0 || (a.start === b.start && (a.length === 1 || a.step === b.step));
  }
  return false;
}

function sequenceEquals(a: readonly Value[], b: readonly Value[], depth: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!pyEquals(a[i], b[i], depth + 1)) return false;
  return true;
}

export type ComparisonOperator = '<' | '<=' | '>' | '>=';

function hasSurrogates(text: string): boolean {
  return /[\uD800-\uDFFF]/.test(text);
}

/** Orders strings by code point, as Python does (UTF-16 order differs only above U+FFFF). */
function compareStrings(a: string, b: string): number {
  if (!hasSurrogates(a) && !hasSurrogates(b)) return a < b ? -1 : a > b ? 1 : 0;
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const difference = left[i].codePointAt(0)! - right[i].codePointAt(0)!;
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

function applyOrder(order: number, operator: ComparisonOperator): boolean {
  switch (operator) {
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
    case '>':
      return order > 0;
    default:
      return order >= 0;
  }
}

/** Python's `<`, `<=`, `>`, `>=` (TypeError between unordered types). */
export function pyCompare(a: Value, b: Value, operator: ComparisonOperator, depth = 0): boolean {
  countVisit(depth);
  if (isNumeric(a) && isNumeric(b)) {
    const left = typeof a === 'boolean' ? (a ? 1n : 0n) : a;
    const right = typeof b === 'boolean' ? (b ? 1n : 0n) : b;
    // Relational operators between bigint and number compare exact values; NaN is unordered.
    switch (operator) {
      case '<':
        return left < right;
      case '<=':
        return left <= right;
      case '>':
        return left > right;
      default:
        return left >= right;
    }
  }
  if (typeof a === 'string' && typeof b === 'string') return applyOrder(compareStrings(a, b), operator);
  if (depth > 200) throw new PythonError('RecursionError', 'maximum recursion depth exceeded in comparison');
  const left = Array.isArray(a) ? a : a instanceof PyTuple ? a.items : undefined;
  const right = Array.isArray(b) ? b : b instanceof PyTuple ? b.items : undefined;
  if (left && right && Array.isArray(a) === Array.isArray(b)) {
    const length = Math.min(left.length, right.length);
    for (let i = 0; i < length; i++) {
      if (!pyEquals(left[i], right[i], depth + 1)) return pyCompare(left[i], right[i], operator, depth + 1);
    }
    return applyOrder(left.length - right.length, operator);
  }
  if (a instanceof PySet && b instanceof PySet) {
    const subset = (x: PySet, y: PySet) => [...x.items.keys()].every((key) => y.items.has(key));
    switch (operator) {
      case '<':
        return a.items.size < b.items.size && subset(a, b);
      case '<=':
        return subset(a, b);
      case '>':
        return a.items.size > b.items.size && subset(b, a);
      default:
        return subset(b, a);
    }
  }
  return raise.type(`'${operator}' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`);
}

// ---- repr and str ----

const ESCAPED = /[\\\n\r\t]|[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

/** Python's repr of a str: single quotes unless the text has ' and no ", escapes for non-printable characters. */
export function reprString(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const char of text) {
    if (char === quote) out += `\\${char}`;
    else if (!ESCAPED.test(char)) out += char;
    else if (char === '\\') out += '\\\\';
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else {
      const code = char.codePointAt(0)!;
      out +=
        code < 0x100
          ? `\\x${code.toString(16).padStart(2, '0')}`
          : code < 0x10000
            ? `\\u${code.toString(16).padStart(4, '0')}`
            : `\\U${code.toString(16).padStart(8, '0')}`;
    }
  }
  return out + quote;
}

/** Python's repr(). */
export function pyRepr(value: Value, seen: Set<object> = new Set()): string {
  countVisit(seen.size);
  if (value === null) return 'None';
  switch (typeof value) {
    case 'boolean':
      return value ? 'True' : 'False';
    case 'bigint':
      return value.toString();
    case 'number':
      return floatRepr(value);
    case 'string':
      // Escaping walks every character: long strings weigh more.
      if (value.length > 64) countVisit(seen.size + 1, value.length >> 6);
      return reprString(value);
  }
  if (seen.has(value)) {
    return Array.isArray(value) ? '[...]' : value instanceof PyDict ? '{...}' : '(...)';
  }
  if (seen.size > 200) throw new PythonError('RecursionError', 'maximum recursion depth exceeded in repr');
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((item) => pyRepr(item, seen)).join(', ')}]`;
    if (value instanceof PyTuple) {
      const items = value.items.map((item) => pyRepr(item, seen));
      return items.length === 1 ? `(${items[0]},)` : `(${items.join(', ')})`;
    }
    if (value instanceof PyDict) {
      const items = [...value.entries.values()].map(
        ([key, item]) => `${pyRepr(key, seen)}: ${pyRepr(item, seen)}`,
      );
      return `{${items.join(', ')}}`;
    }
    if (value instanceof PySet) {
      return value.items.size === 0
        ? 'set()'
        : `{${value
            .values()
            .map((item) => pyRepr(item, seen))
            .join(', ')}}`;
    }
    if (value instanceof PyRange) {
      return value.step === 1n
        ? `range(${value.start}, ${value.stop})`
        : `range(${value.start}, ${value.stop}, ${value.step})`;
    }
    if (value instanceof PyModule) return `<module '${value.name}' (built-in)>`;
    if (value instanceof PyBuiltin) return `<built-in function ${value.name}>`;
    if (value instanceof PyBoundMethod)
      return `<built-in method ${value.name} of ${typeName(value.self)} object>`;
    if (value instanceof PyCallable) return `<function ${value.name}>`;
    if (value instanceof PyImage) return `<Image ${value.image.width}x${value.image.height}>`;
    return value.reprText ? value.reprText() : `<${value.typeName} object>`;
  } finally {
    seen.delete(value);
  }
}

/** Python's str(). */
export function pyStr(value: Value): string {
  return typeof value === 'string' ? value : pyRepr(value);
}

/** Python's len() for sized values, undefined for others. */
export function lengthOf(value: Value): number | undefined {
  if (typeof value === 'string') return hasSurrogates(value) ? [...value].length : value.length;
  if (Array.isArray(value)) return value.length;
  if (value instanceof PyTuple) return value.items.length;
  if (value instanceof PyDict) return value.size;
  if (value instanceof PySet) return value.items.size;
  if (value instanceof PyRange) return value.length;
  return undefined;
}

/** A str as an array of code points when it has characters beyond U+FFFF (Python indexes by code point). */
export function codePoints(text: string): string[] | undefined {
  return hasSurrogates(text) ? [...text] : undefined;
}
