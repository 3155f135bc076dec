// Python literal syntax shared by the VisProg and ViperGPT parsers and the EVAL evaluator: string escapes, numbers.

/** The result of decoding one backslash escape: the text it stands for and where scanning resumes. */
export interface DecodedEscape {
  text: string;
  next: number;
  /** Set when the escape is malformed (`\x4` or `\u12`): the text is then the raw characters. */
  error?: string;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

function isHex(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102);
}

/**
 * Decodes the escape whose backslash is at `index` in `text`, with Python's rules: unknown escapes keep their
 * backslash, and a backslash before a newline joins the lines.
 */
export function decodeEscape(text: string, index: number, end = text.length): DecodedEscape {
  const next = index + 1 < end ? text[index + 1] : undefined;
  if (next === undefined)
    return { text: '\\', next: index + 1, error: 'a string cannot end with a lone backslash' };
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return { text: simple, next: index + 2 };
  if (next === '\n') return { text: '', next: index + 2 };
  if (next === '\r')
    return { text: '', next: index + 2 < end && text[index + 2] === '\n' ? index + 3 : index + 2 };
  if (next >= '0' && next <= '7') {
    let stop = index + 1;
    while (stop < index + 4 && stop < end && text[stop] >= '0' && text[stop] <= '7') stop++;
    return { text: String.fromCharCode(Number.parseInt(text.slice(index + 1, stop), 8)), next: stop };
  }
  const width = next === 'x' ? 2 : next === 'u' ? 4 : next === 'U' ? 8 : 0;
  if (width > 0) {
    const digits = text.slice(index + 2, Math.min(end, index + 2 + width));
    let valid = digits.length === width;
    for (let i = 0; valid && i < digits.length; i++) valid = isHex(digits.charCodeAt(i));
    const codePoint = valid ? Number.parseInt(digits, 16) : -1;
    if (!valid || codePoint > 0x10ffff) {
      return {
        text: `\\${next}`,
        next: index + 2,
        error: `'\\${next}' must be followed by ${width} hexadecimal digits`,
      };
    }
    return { text: String.fromCodePoint(codePoint), next: index + 2 + width };
  }
  return { text: `\\${next}`, next: index + 2 };
}

/** The decoded value of a complete Python string literal token (prefixes, single, double or triple quotes). */
export interface DecodedString {
  value: string;
  /** Whether it is an f-string (its value is then the text with the `{...}` replacements left in). */
  formatted: boolean;
  error?: string;
}

/** Decodes a Python string literal token such as `'a\\n'`, `r"x"`, `"""doc"""` or `f"{x}"`. */
export function decodePythonString(token: string): DecodedString {
  let start = 0;
  let raw = false;
  let formatted = false;
  while (start < token.length && /[rRbBuUfF]/.test(token[start])) {
    const prefix = token[start].toLowerCase();
    if (prefix === 'r') raw = true;
    if (prefix === 'f') formatted = true;
    start++;
  }
  const quote = token[start];
  if (quote !== "'" && quote !== '"') return { value: token, formatted, error: 'not a string literal' };
  const triple = token.startsWith(quote.repeat(3), start);
  const quoteLength = triple ? 3 : 1;
  const bodyStart = start + quoteLength;
  const closed = token.length - bodyStart >= quoteLength && token.endsWith(quote.repeat(quoteLength));
  const bodyEnd = closed ? token.length - quoteLength : token.length;
  const body = token.slice(bodyStart, bodyEnd);
  const error = closed ? undefined : 'unterminated string literal';
  if (raw) return { value: body, formatted, error };
  let value = '';
  let firstError = error;
  for (let i = 0; i < body.length; ) {
    const backslash = body.indexOf('\\', i);
    if (backslash < 0) {
      value += body.slice(i);
      break;
    }
    value += body.slice(i, backslash);
    const decoded = decodeEscape(body, backslash);
    value += decoded.text;
    firstError ??= decoded.error;
    i = decoded.next;
  }
  return { value, formatted, error: firstError };
}

/** Parses a Python number literal (`12`, `-3`, `1.5e3`, `0x1f`, `1_000`); undefined when it is not one. */
export function parsePythonNumber(text: string): number | undefined {
  let body = text;
  let sign = 1;
  if (body.startsWith('-') || body.startsWith('+')) {
    if (body[0] === '-') sign = -1;
    body = body.slice(1);
  }
  if (body.length === 0 || body.startsWith('_') || body.endsWith('_') || body.includes('__'))
    return undefined;
  const plain = body.replace(/_/g, '');
  let value: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(plain)) value = Number.parseInt(plain.slice(2), 16);
  else if (/^0[oO][0-7]+$/.test(plain)) value = Number.parseInt(plain.slice(2), 8);
  else if (/^0[bB][01]+$/.test(plain)) value = Number.parseInt(plain.slice(2), 2);
  else if (/^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(plain)) {
    // Python 3 rejects leading zeros on non-zero integers ("07").
    if (/^0[0-9]+$/.test(plain) && /[1-9]/.test(plain)) return undefined;
    value = Number(plain);
  } else return undefined;
  return sign * value;
}

/** Renders a literal back as Python source (for tables and messages). */
export function formatPythonLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') {
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    let escaped = value
      .replace(/\\/g, '\\\\')
      .replace(/\n/g, '\\n')
      .replace(/\r/g, '\\r')
      .replace(/\t/g, '\\t');
    if (quote === "'") escaped = escaped.replace(/'/g, "\\'");
    return `${quote}${escaped}${quote}`;
  }
  if (Array.isArray(value)) return `[${value.map(formatPythonLiteral).join(', ')}]`;
  return String(value);
}
