// Python's format() mini-language, str.format and the conversions of f-string replacement fields.

import { PythonError, SandboxRefusal, raise } from './python-errors';
import { floatRepr, formatExponent, formatFixed, formatGeneral } from './python-number-format';
import { getItem } from './python-operators';
import { type Value, codePoints, isIntLike, pyRepr, pyStr, toBigInt, typeName } from './python-values';

interface FormatSpec {
  fill: string;
  align: '<' | '>' | '=' | '^' | null;
  sign: '+' | '-' | ' ' | null;
  negativeZero: boolean;
  alternate: boolean;
  width: number;
  grouping: ',' | '_' | null;
  precision: number | null;
  type: string | null;
}

const SPEC = /^(?:(.)?([<>=^]))?([+\- ])?(z)?(#)?(0)?(\d+)?([,_])?(?:\.(\d+))?([bcdeEfFgGnosxX%])?$/su;

function parseSpec(spec: string): FormatSpec {
  const match = SPEC.exec(spec);
  if (!match) return raise.value('Invalid format specifier');
  const [, fill, align, sign, z, alternate, zero, width, grouping, precision, type] = match;
  const parsed: FormatSpec = {
    fill: fill ?? ' ',
    align: (align as FormatSpec['align']) ?? null,
    sign: (sign as FormatSpec['sign']) ?? null,
    negativeZero: z !== undefined,
    alternate: alternate !== undefined,
    width: width ? Number(width) : 0,
    grouping: (grouping as FormatSpec['grouping']) ?? null,
    precision: precision !== undefined ? Number(precision) : null,
    type: type ?? null,
  };
  if (parsed.width > 100_000 || (parsed.precision ?? 0) > 10_000) {
    throw new SandboxRefusal(
      'unsupported',
      'format widths above 100000 and precisions above 10000 are outside the sandboxed subset',
    );
  }
  if (zero !== undefined && align === undefined) {
    parsed.fill = '0';
    parsed.align = '=';
  }
  return parsed;
}

function pad(body: string, prefix: string, spec: FormatSpec, defaultAlign: '<' | '>'): string {
  const length = (codePoints(body)?.length ?? body.length) + prefix.length;
  const missing = spec.width - length;
  if (missing <= 0) return prefix + body;
  const fill = spec.fill;
  switch (spec.align ?? defaultAlign) {
    case '<':
      return prefix + body + fill.repeat(missing);
    case '^': {
      const left = Math.floor(missing / 2);
      return fill.repeat(left) + prefix + body + fill.repeat(missing - left);
    }
    case '=':
      return prefix + fill.repeat(missing) + body;
    default:
      return fill.repeat(missing) + prefix + body;
  }
}

function group(digits: string, separator: string, size: number): string {
  let out = '';
  for (let i = digits.length; i > 0; i -= size)
    out = digits.slice(Math.max(0, i - size), i) + (out ? separator + out : '');
  return out;
}

function signPrefix(negative: boolean, spec: FormatSpec): string {
  if (negative) return '-';
  return spec.sign === '+' ? '+' : spec.sign === ' ' ? ' ' : '';
}

function formatInteger(value: bigint, spec: FormatSpec): string {
  const type = spec.type ?? 'd';
  if (spec.precision !== null) raise.value('Precision not allowed in integer format specifier');
  if (type === 'c') {
    if (value < 0n || value > 0x10ffffn) raise.overflow('%c arg not in range(0x110000)');
    return pad(String.fromCodePoint(Number(value)), '', spec, '<');
  }
  const magnitude = value < 0n ? -value : value;
  const radix = type === 'b' ? 2 : type === 'o' ? 8 : type === 'x' || type === 'X' ? 16 : 10;
  let digits = magnitude.toString(radix);
  if (type === 'X') digits = digits.toUpperCase();
  if (spec.grouping) digits = group(digits, spec.grouping, radix === 10 ? 3 : 4);
  const base = spec.alternate && radix !== 10 ? `0${type}` : '';
  return pad(digits, signPrefix(value < 0n, spec) + base, spec, '>');
}

function formatFloat(value: number, spec: FormatSpec): string {
  const type = spec.type;
  let negative = value < 0 || Object.is(value, -0);
  let magnitude = Math.abs(value);
  let body: string;
  const precision = spec.precision ?? 6;
  switch (type) {
    case 'f':
    case 'F':
      body = formatFixed(magnitude, precision, type === 'F');
      break;
    case 'e':
    case 'E':
      body = formatExponent(magnitude, precision, type === 'E', spec.alternate);
      break;
    case 'g':
    case 'G':
    case 'n':
      body = formatGeneral(magnitude, precision, { upper: type === 'G', alternate: spec.alternate });
      break;
    case '%':
      magnitude *= 100;
      body = `${formatFixed(magnitude, precision)}%`;
      break;
    case null:
      body =
        spec.precision === null
          ? floatRepr(magnitude)
          : formatGeneral(magnitude, spec.precision, { alternate: spec.alternate, noType: true });
      break;
    default:
      return raise.value(`Unknown format code '${type}' for object of type 'float'`);
  }
  if (spec.negativeZero && negative && /^[0.]*%?$/.test(body.replace(/e.*$/, ''))) negative = false;
  if (spec.grouping && Number.isFinite(magnitude)) {
    const match = /^(\d+)(.*)$/s.exec(body);
    if (match) body = group(match[1], spec.grouping, 3) + match[2];
  }
  return pad(body, signPrefix(negative && !Number.isNaN(value), spec), spec, '>');
}

/** Python's format(value, spec). */
export function formatValue(value: Value, spec: string): string {
  if (spec === '') return pyStr(value);
  const parsed = parseSpec(spec);
  if (typeof value === 'string') {
    if (parsed.type !== null && parsed.type !== 's')
      raise.value(`Unknown format code '${parsed.type}' for object of type 'str'`);
    if (parsed.sign) raise.value('Sign not allowed in string format specifier');
    if (parsed.align === '=') raise.value("'=' alignment not allowed in string format specifier");
    const points = codePoints(value);
    const body =
      parsed.precision === null
        ? value
        : points
          ? points.slice(0, parsed.precision).join('')
          : value.slice(0, parsed.precision);
    return pad(body, '', parsed, '<');
  }
  if (isIntLike(value)) {
    if (parsed.type !== null && 'eEfFgG%'.includes(parsed.type))
      return formatFloat(Number(toBigInt(value)), parsed);
    if (parsed.type === 's') raise.value(`Unknown format code 's' for object of type '${typeName(value)}'`);
    return formatInteger(toBigInt(value), parsed);
  }
  if (typeof value === 'number') return formatFloat(value, parsed);
  return raise.type(`unsupported format string passed to ${typeName(value)}.__format__`);
}

/** Python's ascii(): repr with every non-ASCII character escaped. */
export function asciiRepr(value: Value): string {
  return pyRepr(value).replace(/[^\x00-\x7f]/gu, (char) => {
    const code = char.codePointAt(0)!;
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : code < 0x10000
        ? `\\u${code.toString(16).padStart(4, '0')}`
        : `\\U${code.toString(16).padStart(8, '0')}`;
  });
}

/** Applies an f-string or str.format conversion (`!r`, `!s`, `!a`). */
export function convertField(value: Value, conversion: string | null): Value {
  switch (conversion) {
    case null:
      return value;
    case 'r':
      return pyRepr(value);
    case 's':
      return pyStr(value);
    case 'a':
      return asciiRepr(value);
    default:
      return raise.value(`Unknown conversion specifier ${conversion}`);
  }
}

/** What str.format needs from the interpreter: attribute lookup (`{0.left}`). */
export type FormatAttribute = (value: Value, name: string) => Value;

interface FieldState {
  automatic: number;
  mode: 'automatic' | 'manual' | null;
}

function resolveField(
  field: string,
  args: readonly Value[],
  keywords: ReadonlyMap<string, Value> | null,
  attribute: FormatAttribute,
  state: FieldState,
): Value {
  const match = /^([^.[]*)(.*)$/s.exec(field)!;
  const [, first, rest] = match;
  let value: Value;
  if (first === '') {
    if (state.mode === 'manual')
      raise.value('cannot switch from manual field specification to automatic field numbering');
    state.mode = 'automatic';
    const index = state.automatic++;
    if (index >= args.length)
      throw new PythonError(
        'IndexError',
        `Replacement index ${index} out of range for positional args tuple`,
      );
    value = args[index];
  } else if (/^\d+$/.test(first)) {
    if (state.mode === 'automatic')
      raise.value('cannot switch from automatic field numbering to manual field specification');
    state.mode = 'manual';
    const index = Number(first);
    if (index >= args.length)
      throw new PythonError(
        'IndexError',
        `Replacement index ${index} out of range for positional args tuple`,
      );
    value = args[index];
  } else {
    const found = keywords?.get(first);
    if (found === undefined) throw new PythonError('KeyError', pyRepr(first));
    value = found;
  }
  let remaining = rest;
  while (remaining.length > 0) {
    const accessor = /^\.([^.[]+)|^\[([^\]]+)\]/s.exec(remaining);
    if (!accessor) return raise.value("Only '.' or '[' may follow ']' in format field specifier");
    if (accessor[1] !== undefined) {
      if (accessor[1].startsWith('__')) {
        throw new SandboxRefusal(
          'forbidden',
          `the attribute '${accessor[1]}' is refused: dunder attributes are outside the sandbox`,
        );
      }
      value = attribute(value, accessor[1]);
    } else {
      const key = accessor[2];
      value = getItem(value, /^\d+$/.test(key) ? BigInt(key) : key);
    }
    remaining = remaining.slice(accessor[0].length);
  }
  return value;
}

/** Python's str.format. */
export function strFormat(
  template: string,
  args: readonly Value[],
  keywords: ReadonlyMap<string, Value> | null,
  attribute: FormatAttribute,
  nested = 0,
  state: FieldState = { automatic: 0, mode: null },
): string {
  let out = '';
  for (let i = 0; i < template.length; ) {
    const char = template[i];
    if (char === '}') {
      if (template[i + 1] !== '}') raise.value("Single '}' encountered in format string");
      out += '}';
      i += 2;
      continue;
    }
    if (char !== '{') {
      const next = template.slice(i).search(/[{}]/);
      const end = next < 0 ? template.length : i + next;
      out += template.slice(i, end);
      i = end;
      continue;
    }
    if (template[i + 1] === '{') {
      out += '{';
      i += 2;
      continue;
    }
    // A replacement field: find its end, allowing one level of nested fields in the spec.
    let depth = 1;
    let j = i + 1;
    while (j < template.length && depth > 0) {
      if (template[j] === '{') depth++;
      else if (template[j] === '}') depth--;
      if (depth > 0) j++;
    }
    if (depth > 0) raise.value("expected '}' before end of string");
    const inner = template.slice(i + 1, j);
    const specStart = inner.search(/[:!]/);
    const fieldName = specStart < 0 ? inner : inner.slice(0, specStart);
    let conversion: string | null = null;
    let spec = '';
    if (specStart >= 0) {
      let tail = inner.slice(specStart);
      if (tail.startsWith('!')) {
        conversion = tail[1] ?? '';
        tail = tail.slice(2);
        if (tail !== '' && !tail.startsWith(':')) raise.value("expected ':' after conversion specifier");
      }
      spec = tail.startsWith(':') ? tail.slice(1) : tail;
    }
    if (nested > 1) raise.value('Max string recursion exceeded');
    if (spec.includes('{')) spec = strFormat(spec, args, keywords, attribute, nested + 1, state);
    const value = convertField(resolveField(fieldName, args, keywords, attribute, state), conversion);
    out += formatValue(value, spec);
    i = j + 1;
  }
  return out;
}
