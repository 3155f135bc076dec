// CPython's float rendering and rounding: repr, 'f' / 'e' / 'g' formats and round(), exact on the binary value.

/** A non-negative decimal `0.d1 d2 ... × 10^point`: the integer part is `digits.slice(0, point)`. */
interface Decimal {
  digits: string;
  point: number;
}

const scratch = new DataView(new ArrayBuffer(8));

/** The exact decimal expansion of a finite, non-zero |x| (a double has at most 767 significant digits). */
function exactDecimal(x: number): Decimal {
  scratch.setFloat64(0, Math.abs(x));
  const high = scratch.getUint32(0);
  const low = scratch.getUint32(4);
  const biased = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  let exponent = -1074;
  if (biased !== 0) {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  if (exponent >= 0) {
    const digits = (mantissa << BigInt(exponent)).toString();
    return { digits, point: digits.length };
  }
  const digits = (mantissa * 5n ** BigInt(-exponent)).toString();
  return { digits, point: digits.length + exponent };
}

/** Keeps the first `keep` digits, rounding half to even on the exact value (CPython's dtoa does the same). */
function roundDigits(value: Decimal, keep: number): Decimal {
  const { digits, point } = value;
  if (keep >= digits.length) return value;
  if (keep < 0) return { digits: '', point };
  const first = digits.charCodeAt(keep) - 48;
  let up = first > 5;
  if (first === 5) {
    let rest = false;
    for (let i = keep + 1; i < digits.length && !rest; i++) rest = digits.charCodeAt(i) !== 48;
    up = rest || (keep > 0 && (digits.charCodeAt(keep - 1) - 48) % 2 === 1);
  }
  const kept = digits.slice(0, keep);
  if (!up) return { digits: kept, point };
  const bumped = (BigInt(kept === '' ? '0' : kept) + 1n).toString();
  if (kept === '') return { digits: bumped, point: point + 1 };
  return bumped.length > kept.length ? { digits: bumped, point: point + 1 } : { digits: bumped, point };
}

function zeros(count: number): string {
  return count > 0 ? '0'.repeat(count) : '';
}

/** `digits × 10^(point - digits.length)` written with exactly `fraction` digits after the point. */
function fixedText(value: Decimal, fraction: number): string {
  const { digits, point } = value;
  const all = point <= 0 ? zeros(-point) + digits : digits;
  const integerLength = Math.max(point, 0);
  const integer = all.slice(0, integerLength) + zeros(integerLength - all.length);
  const rest = all.slice(integerLength);
  const decimals = (rest + zeros(fraction - rest.length)).slice(0, fraction);
  const integerText = integer.replace(/^0+(?=\d)/, '') || '0';
  return fraction > 0 ? `${integerText}.${decimals}` : integerText;
}

function exponentText(exponent: number): string {
  return `e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

function nonFinite(x: number, upper: boolean): string {
  const text = Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  return upper ? text.toUpperCase() : text;
}

/** `format(x, '.{p}f')` without sign handling beyond the value's own (`-0.00` keeps its sign, as in CPython). */
export function formatFixed(x: number, precision: number, upper = false): string {
  if (!Number.isFinite(x)) return nonFinite(x, upper);
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return sign + fixedText({ digits: '0', point: 1 }, precision);
  const exact = exactDecimal(x);
  const rounded = roundDigits(exact, exact.point + precision);
  return sign + fixedText(rounded.digits === '' ? { digits: '0', point: 1 } : rounded, precision);
}

/** `format(x, '.{p}e')`. */
export function formatExponent(x: number, precision: number, upper = false, alternate = false): string {
  if (!Number.isFinite(x)) return nonFinite(x, upper);
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  let digits: string;
  let exponent: number;
  if (x === 0) {
    digits = zeros(precision + 1);
    exponent = 0;
  } else {
    const rounded = roundDigits(exactDecimal(x), precision + 1);
    digits = rounded.digits + zeros(precision + 1 - rounded.digits.length);
    exponent = rounded.point - 1;
  }
  const mantissa = precision > 0 || alternate ? `${digits[0]}.${digits.slice(1)}` : digits[0];
  const text = `${sign}${mantissa}${exponentText(exponent)}`;
  return upper ? text.toUpperCase() : text;
}

/**
 * `format(x, '.{p}g')`, and with `noType` the format used when no type letter is given (fixed notation then keeps at
 * least one digit after the point).
 */
export function formatGeneral(
  x: number,
  precision: number,
  options: { upper?: boolean; alternate?: boolean; noType?: boolean } = {},
): string {
  if (!Number.isFinite(x)) return nonFinite(x, options.upper ?? false);
  const significant = precision === 0 ? 1 : precision;
  let exponent = 0;
  if (x !== 0) {
    const rounded = roundDigits(exactDecimal(x), significant);
    exponent = rounded.point - 1;
  }
  let text: string;
  if (exponent >= -4 && exponent < significant) {
    text = formatFixed(x, significant - 1 - exponent);
    if (!options.alternate && text.includes('.')) text = text.replace(/0+$/, '').replace(/\.$/, '');
    if (options.noType && !text.includes('.')) text += '.0';
  } else {
    text = formatExponent(x, significant - 1, false, options.alternate);
    if (!options.alternate) text = text.replace(/\.?0+e/, 'e');
  }
  return options.upper ? text.toUpperCase() : text;
}

/** `repr(x)` for a float: the shortest digits that read back as x, fixed for 1e-4 <= |x| < 1e16. */
export function floatRepr(x: number): string {
  if (!Number.isFinite(x)) return nonFinite(x, false);
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentPart] = x.toExponential().split('e');
  const exponent = Number(exponentPart);
  const sign = mantissa.startsWith('-') ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  if (exponent < -4 || exponent >= 16) {
    const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${body}${exponentText(exponent)}`;
  }
  if (exponent < 0) return `${sign}0.${zeros(-exponent - 1)}${digits}`;
  if (digits.length <= exponent + 1) return `${sign}${digits}${zeros(exponent + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
}

/** `round(x, ndigits)` for a float: correctly rounded, half to even on the exact value; NaN and inf pass through. */
export function roundFloat(x: number, ndigits: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  if (ndigits > 330) return x;
  if (ndigits < -330) return x < 0 ? -0 : 0;
  const exact = exactDecimal(x);
  const rounded = roundDigits(exact, exact.point + ndigits);
  if (rounded.digits === '' || /^0*$/.test(rounded.digits)) return x < 0 ? -0 : 0;
  const magnitude = Number(`${rounded.digits}e${rounded.point - rounded.digits.length}`);
  return x < 0 ? -magnitude : magnitude;
}
