// A safe evaluator for VisProg's EVAL expressions: a small Python expression subset, parsed and interpreted here, never `eval`.

import { SdvpError } from '../errors/sdvp-error';
import { decodeEscape, formatPythonLiteral, parsePythonNumber } from './python-literals';

/** A value an EVAL expression computes with: Python's int/float, str, bool and None. */
export type EvalValue = number | string | boolean | null;

export type EvalCompareOperator =
  | '<'
  | '<='
  | '>'
  | '>='
  | '=='
  | '!='
  | 'xor'
  | 'in'
  | 'not in'
  | 'is'
  | 'is not';
export type EvalArithmeticOperator = '+' | '-' | '*' | '/' | '//' | '%' | '**';

/** The syntax tree of an EVAL expression; `offset` is where the node starts in the expression text. */
export type EvalNode =
  | { type: 'literal'; value: EvalValue; offset: number }
  | { type: 'placeholder'; name: string; offset: number }
  | { type: 'unary'; operator: '-' | '+' | 'not'; operand: EvalNode; offset: number }
  | { type: 'binary'; operator: EvalArithmeticOperator; left: EvalNode; right: EvalNode; offset: number }
  | { type: 'logical'; operator: 'and' | 'or'; left: EvalNode; right: EvalNode; offset: number }
  | { type: 'compare'; operands: EvalNode[]; operators: EvalCompareOperator[]; offset: number }
  | { type: 'conditional'; test: EvalNode; body: EvalNode; orElse: EvalNode; offset: number };

export interface EvalPlaceholder {
  name: string;
  /** Offset of the `{` in the expression text. */
  offset: number;
}

/** A parsed EVAL expression. `root` is null when the text is not a valid expression; `error` then says why. */
export interface ParsedEvalExpression {
  source: string;
  root: EvalNode | null;
  placeholders: EvalPlaceholder[];
  error: { offset: number; message: string } | null;
}

type TokenType = 'number' | 'string' | 'name' | 'placeholder' | 'operator' | 'end';

interface Token {
  type: TokenType;
  text: string;
  offset: number;
  value?: EvalValue;
}

class EvalSyntaxError {
  constructor(
    readonly offset: number,
    readonly message: string,
  ) {}
}

const KEYWORDS = new Set([
  'and',
  'or',
  'not',
  'if',
  'else',
  'in',
  'is',
  'xor',
  'True',
  'False',
  'None',
  'lambda',
]);
const THREE_CHAR_OPERATORS = new Set(['**=', '//=', '>>=', '<<=']);
const TWO_CHAR_OPERATORS = new Set([
  '**',
  '//',
  '<=',
  '>=',
  '==',
  '!=',
  '<>',
  '<<',
  '>>',
  '+=',
  '-=',
  '*=',
  '/=',
]);
const ONE_CHAR_OPERATORS = '+-*/%<>()=,[]:.&|^~@';
/** Python operators outside the EVAL subset: reported as such rather than as a generic syntax error. */
const UNSUPPORTED_OPERATORS = new Set([
  '[',
  ']',
  '.',
  ':',
  '&',
  '|',
  '^',
  '~',
  '@',
  '<<',
  '>>',
  '<>',
  '=',
  ',',
]);

function isIdentifierStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code > 127;
}

function isIdentifierPart(code: number): boolean {
  return isIdentifierStart(code) || (code >= 48 && code <= 57);
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function tokenize(text: string, placeholders: EvalPlaceholder[]): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const length = text.length;
  while (i < length) {
    const code = text.charCodeAt(i);
    if (code === 32 || code === 9 || code === 10 || code === 13 || code === 12) {
      i++;
      continue;
    }
    const start = i;
    if (code === 123 /* { */) {
      let end = i + 1;
      if (end < length && isIdentifierStart(text.charCodeAt(end))) {
        end++;
        while (end < length && isIdentifierPart(text.charCodeAt(end))) end++;
      }
      if (end === i + 1 || text.charCodeAt(end) !== 125 /* } */) {
        throw new EvalSyntaxError(start, "'{' must start a placeholder such as {ANSWER0}");
      }
      const name = text.slice(i + 1, end);
      placeholders.push({ name, offset: start });
      tokens.push({ type: 'placeholder', text: name, offset: start });
      i = end + 1;
      continue;
    }
    if (code === 39 /* ' */ || code === 34 /* " */) {
      const quote = text[i];
      let value = '';
      let j = i + 1;
      let closed = false;
      while (j < length) {
        const c = text[j];
        if (c === quote) {
          closed = true;
          j++;
          break;
        }
        if (c === '\n') break;
        if (c === '\\') {
          const decoded = decodeEscape(text, j);
          if (decoded.error) throw new EvalSyntaxError(j, decoded.error);
          value += decoded.text;
          j = decoded.next;
          continue;
        }
        value += c;
        j++;
      }
      if (!closed) throw new EvalSyntaxError(start, 'unterminated string literal');
      tokens.push({ type: 'string', text: text.slice(start, j), offset: start, value });
      i = j;
      continue;
    }
    if (isDigit(code) || (code === 46 /* . */ && isDigit(text.charCodeAt(i + 1)))) {
      let j = i;
      while (j < length && (isIdentifierPart(text.charCodeAt(j)) || text[j] === '.')) {
        if ((text[j] === 'e' || text[j] === 'E') && (text[j + 1] === '+' || text[j + 1] === '-')) j++;
        j++;
      }
      const literal = text.slice(i, j);
      const value = parsePythonNumber(literal);
      if (value === undefined || /[jJ]$/.test(literal)) {
        throw new EvalSyntaxError(start, `'${literal}' is not a valid number`);
      }
      tokens.push({ type: 'number', text: literal, offset: start, value });
      i = j;
      continue;
    }
    if (isIdentifierStart(code)) {
      let j = i + 1;
      while (j < length && isIdentifierPart(text.charCodeAt(j))) j++;
      tokens.push({ type: 'name', text: text.slice(i, j), offset: start });
      i = j;
      continue;
    }
    const three = text.slice(i, i + 3);
    const two = text.slice(i, i + 2);
    if (THREE_CHAR_OPERATORS.has(three)) {
      tokens.push({ type: 'operator', text: three, offset: start });
      i += 3;
    } else if (TWO_CHAR_OPERATORS.has(two)) {
      tokens.push({ type: 'operator', text: two, offset: start });
      i += 2;
    } else if (ONE_CHAR_OPERATORS.includes(text[i])) {
      tokens.push({ type: 'operator', text: text[i], offset: start });
      i++;
    } else {
      throw new EvalSyntaxError(start, `unexpected character '${text[i]}'`);
    }
  }
  tokens.push({ type: 'end', text: '', offset: length });
  return tokens;
}

function describeToken(token: Token): string {
  return token.type === 'end'
    ? 'the end of the expression'
    : `'${token.type === 'placeholder' ? `{${token.text}}` : token.text}'`;
}

class EvalParser {
  #index = 0;

  constructor(readonly tokens: Token[]) {}

  get #token(): Token {
    return this.tokens[this.#index];
  }

  #isKeyword(text: string): boolean {
    const token = this.#token;
    return token.type === 'name' && token.text === text;
  }

  #isOperator(text: string): boolean {
    const token = this.#token;
    return token.type === 'operator' && token.text === text;
  }

  /** Reports the current token where `expected` should be; operators outside the subset are named as such. */
  #unexpected(expected: string): never {
    const token = this.#token;
    if (token.type === 'operator' && UNSUPPORTED_OPERATORS.has(token.text)) {
      throw new EvalSyntaxError(token.offset, `'${token.text}' is not supported in EVAL expressions`);
    }
    throw new EvalSyntaxError(token.offset, `expected ${expected}, found ${describeToken(token)}`);
  }

  parse(): EvalNode {
    const root = this.#expression('the start');
    const token = this.#token;
    if (token.type === 'operator' && UNSUPPORTED_OPERATORS.has(token.text)) {
      throw new EvalSyntaxError(token.offset, `'${token.text}' is not supported in EVAL expressions`);
    }
    if (token.type !== 'end') {
      throw new EvalSyntaxError(
        token.offset,
        `unexpected ${describeToken(token)} after a complete expression`,
      );
    }
    return root;
  }

  #expression(after: string): EvalNode {
    const body = this.#orTest(after);
    if (!this.#isKeyword('if')) return body;
    this.#index++;
    const test = this.#orTest("'if'");
    if (!this.#isKeyword('else')) this.#unexpected("'else'");
    this.#index++;
    const orElse = this.#expression("'else'");
    return { type: 'conditional', test, body, orElse, offset: body.offset };
  }

  #orTest(after: string): EvalNode {
    let left = this.#andTest(after);
    while (this.#isKeyword('or')) {
      this.#index++;
      const right = this.#andTest("'or'");
      left = { type: 'logical', operator: 'or', left, right, offset: left.offset };
    }
    return left;
  }

  #andTest(after: string): EvalNode {
    let left = this.#notTest(after);
    while (this.#isKeyword('and')) {
      this.#index++;
      const right = this.#notTest("'and'");
      left = { type: 'logical', operator: 'and', left, right, offset: left.offset };
    }
    return left;
  }

  #notTest(after: string): EvalNode {
    if (this.#isKeyword('not')) {
      const offset = this.#token.offset;
      this.#index++;
      return { type: 'unary', operator: 'not', operand: this.#notTest("'not'"), offset };
    }
    return this.#comparison(after);
  }

  #compareOperator(): EvalCompareOperator | undefined {
    const token = this.#token;
    if (token.type === 'operator') {
      switch (token.text) {
        case '<':
        case '<=':
        case '>':
        case '>=':
        case '==':
        case '!=':
          this.#index++;
          return token.text;
        default:
          return undefined;
      }
    }
    if (token.type !== 'name') return undefined;
    if (token.text === 'xor' || token.text === 'in') {
      this.#index++;
      return token.text;
    }
    if (token.text === 'is') {
      this.#index++;
      if (this.#isKeyword('not')) {
        this.#index++;
        return 'is not';
      }
      return 'is';
    }
    if (
      token.text === 'not' &&
      this.tokens[this.#index + 1]?.type === 'name' &&
      this.tokens[this.#index + 1].text === 'in'
    ) {
      this.#index += 2;
      return 'not in';
    }
    return undefined;
  }

  #comparison(after: string): EvalNode {
    const first = this.#sum(after);
    const operands = [first];
    const operators: EvalCompareOperator[] = [];
    for (let operator = this.#compareOperator(); operator; operator = this.#compareOperator()) {
      operators.push(operator);
      operands.push(this.#sum(`'${operator}'`));
    }
    if (operators.length === 0) return first;
    return { type: 'compare', operands, operators, offset: first.offset };
  }

  #sum(after: string): EvalNode {
    let left = this.#term(after);
    while (this.#isOperator('+') || this.#isOperator('-')) {
      const operator = this.#token.text as '+' | '-';
      this.#index++;
      const right = this.#term(`'${operator}'`);
      left = { type: 'binary', operator, left, right, offset: left.offset };
    }
    return left;
  }

  #term(after: string): EvalNode {
    let left = this.#factor(after);
    while (
      this.#isOperator('*') ||
      this.#isOperator('/') ||
      this.#isOperator('//') ||
      this.#isOperator('%')
    ) {
      const operator = this.#token.text as '*' | '/' | '//' | '%';
      this.#index++;
      const right = this.#factor(`'${operator}'`);
      left = { type: 'binary', operator, left, right, offset: left.offset };
    }
    return left;
  }

  #factor(after: string): EvalNode {
    if (this.#isOperator('-') || this.#isOperator('+')) {
      const token = this.#token;
      this.#index++;
      return {
        type: 'unary',
        operator: token.text as '-' | '+',
        operand: this.#factor(`'${token.text}'`),
        offset: token.offset,
      };
    }
    return this.#power(after);
  }

  #power(after: string): EvalNode {
    const base = this.#atom(after);
    if (!this.#isOperator('**')) return base;
    this.#index++;
    const exponent = this.#factor("'**'");
    return { type: 'binary', operator: '**', left: base, right: exponent, offset: base.offset };
  }

  #atom(after: string): EvalNode {
    const token = this.#token;
    switch (token.type) {
      case 'number':
        this.#index++;
        return { type: 'literal', value: token.value as number, offset: token.offset };
      case 'string': {
        let value = token.value as string;
        this.#index++;
        // Adjacent string literals concatenate, as in Python.
        while (this.#token.type === 'string') {
          value += this.#token.value as string;
          this.#index++;
        }
        return { type: 'literal', value, offset: token.offset };
      }
      case 'placeholder':
        this.#index++;
        return { type: 'placeholder', name: token.text, offset: token.offset };
      case 'name':
        if (token.text === 'True' || token.text === 'False' || token.text === 'None') {
          this.#index++;
          return {
            type: 'literal',
            value: token.text === 'None' ? null : token.text === 'True',
            offset: token.offset,
          };
        }
        if (KEYWORDS.has(token.text)) {
          throw new EvalSyntaxError(
            token.offset,
            `expected an expression after ${after}, found '${token.text}'`,
          );
        }
        throw new EvalSyntaxError(
          token.offset,
          `unknown name '${token.text}': EVAL expressions refer to program variables as {${token.text}}`,
        );
      case 'operator':
        if (token.text === '(') {
          this.#index++;
          const inner = this.#expression("'('");
          if (!this.#isOperator(')')) {
            throw new EvalSyntaxError(
              this.#token.offset,
              `expected ')', found ${describeToken(this.#token)}`,
            );
          }
          this.#index++;
          return inner;
        }
        if (UNSUPPORTED_OPERATORS.has(token.text)) {
          throw new EvalSyntaxError(token.offset, `'${token.text}' is not supported in EVAL expressions`);
        }
        throw new EvalSyntaxError(
          token.offset,
          `expected an expression after ${after}, found '${token.text}'`,
        );
      default:
        throw new EvalSyntaxError(
          token.offset,
          `expected an expression after ${after}, found ${describeToken(token)}`,
        );
    }
  }
}

/** Parses an EVAL expression (`'yes' if {ANSWER0} > 0 else 'no'`). Never throws: errors come back in `error`. */
export function parseEvalExpression(source: string): ParsedEvalExpression {
  const placeholders: EvalPlaceholder[] = [];
  try {
    const tokens = tokenize(source, placeholders);
    const root = new EvalParser(tokens).parse();
    return { source, root, placeholders, error: null };
  } catch (error) {
    if (error instanceof EvalSyntaxError) {
      // The placeholders after a lexical error still count as references (for dependencies and diagnostics).
      collectRemainingPlaceholders(source, error.offset, placeholders);
      return { source, root: null, placeholders, error: { offset: error.offset, message: error.message } };
    }
    if (error instanceof RangeError) {
      return {
        source,
        root: null,
        placeholders,
        error: { offset: 0, message: 'the expression is nested too deeply' },
      };
    }
    throw error;
  }
}

function collectRemainingPlaceholders(source: string, from: number, placeholders: EvalPlaceholder[]): void {
  const seen = new Set(placeholders.map((placeholder) => placeholder.offset));
  const pattern = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
  pattern.lastIndex = from;
  for (let match = pattern.exec(source); match; match = pattern.exec(source)) {
    if (!seen.has(match.index)) placeholders.push({ name: match[1], offset: match.index });
  }
}

function typeName(value: EvalValue): string {
  if (value === null) return 'NoneType';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  return 'str';
}

function evalError(message: string): SdvpError {
  return new SdvpError('ERR_SDVP_ARG', `EVAL: ${message}`, { field: 'expr' });
}

/** Python truthiness. */
export function isTruthy(value: EvalValue): boolean {
  if (value === null || value === false || value === 0 || value === '') return false;
  return true;
}

function isNumeric(value: EvalValue): value is number | boolean {
  return typeof value === 'number' || typeof value === 'boolean';
}

function numeric(value: number | boolean): number {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

function arithmetic(operator: EvalArithmeticOperator, left: EvalValue, right: EvalValue): EvalValue {
  if (operator === '+' && typeof left === 'string' && typeof right === 'string') return left + right;
  if (operator === '*') {
    const repeat = (text: string, count: number | boolean) => {
      const n = numeric(count);
      if (!Number.isInteger(n)) throw evalError("can't multiply sequence by non-int of type 'float'");
      return n > 0 ? text.repeat(n) : '';
    };
    if (typeof left === 'string' && isNumeric(right)) return repeat(left, right);
    if (typeof right === 'string' && isNumeric(left)) return repeat(right, left);
  }
  if (!isNumeric(left) || !isNumeric(right)) {
    throw evalError(
      `unsupported operand types for ${operator}: '${typeName(left)}' and '${typeName(right)}'`,
    );
  }
  const a = numeric(left);
  const b = numeric(right);
  switch (operator) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      if (b === 0) throw evalError('division by zero');
      return a / b;
    case '//':
      if (b === 0) throw evalError('integer division or modulo by zero');
      return Math.floor(a / b);
    case '%': {
      if (b === 0) throw evalError('integer division or modulo by zero');
      const remainder = a % b;
      return remainder !== 0 && remainder < 0 !== b < 0 ? remainder + b : remainder;
    }
    case '**':
      if (a === 0 && b < 0) throw evalError('0.0 cannot be raised to a negative power');
      return a ** b;
  }
}

function equals(left: EvalValue, right: EvalValue): boolean {
  if (isNumeric(left) && isNumeric(right)) return numeric(left) === numeric(right);
  return left === right;
}

function compare(operator: EvalCompareOperator, left: EvalValue, right: EvalValue): boolean {
  switch (operator) {
    case '==':
      return equals(left, right);
    case '!=':
    case 'xor': // VisProg rewrites `xor` to `!=` before evaluating.
      return !equals(left, right);
    case 'is':
      return left === right;
    case 'is not':
      return left !== right;
    case 'in':
    case 'not in': {
      if (typeof right !== 'string') throw evalError(`argument of type '${typeName(right)}' is not iterable`);
      if (typeof left !== 'string') {
        throw evalError(`'in <string>' requires string as left operand, not ${typeName(left)}`);
      }
      return right.includes(left) === (operator === 'in');
    }
    default: {
      let a: number | string;
      let b: number | string;
      if (isNumeric(left) && isNumeric(right)) {
        a = numeric(left);
        b = numeric(right);
      } else if (typeof left === 'string' && typeof right === 'string') {
        a = left;
        b = right;
      } else {
        throw evalError(
          `'${operator}' not supported between instances of '${typeName(left)}' and '${typeName(right)}'`,
        );
      }
      if (operator === '<') return a < b;
      if (operator === '<=') return a <= b;
      if (operator === '>') return a > b;
      return a >= b;
    }
  }
}

/** Variable values an expression reads, by placeholder name. */
export type EvalBindings = Readonly<Record<string, EvalValue>> | ReadonlyMap<string, EvalValue>;

function lookup(bindings: EvalBindings, name: string): EvalValue {
  if (bindings instanceof Map) {
    if (!bindings.has(name)) throw evalError(`no value for {${name}}`);
    return bindings.get(name) as EvalValue;
  }
  const record = bindings as Readonly<Record<string, EvalValue>>;
  if (!Object.prototype.hasOwnProperty.call(record, name)) throw evalError(`no value for {${name}}`);
  return record[name];
}

function evaluate(node: EvalNode, bindings: EvalBindings): EvalValue {
  switch (node.type) {
    case 'literal':
      return node.value;
    case 'placeholder':
      return lookup(bindings, node.name);
    case 'unary': {
      const operand = evaluate(node.operand, bindings);
      if (node.operator === 'not') return !isTruthy(operand);
      if (!isNumeric(operand))
        throw evalError(`bad operand type for unary ${node.operator}: '${typeName(operand)}'`);
      return node.operator === '-' ? -numeric(operand) : numeric(operand);
    }
    case 'binary':
      return arithmetic(node.operator, evaluate(node.left, bindings), evaluate(node.right, bindings));
    case 'logical': {
      const left = evaluate(node.left, bindings);
      if (node.operator === 'and') return isTruthy(left) ? evaluate(node.right, bindings) : left;
      return isTruthy(left) ? left : evaluate(node.right, bindings);
    }
    case 'compare': {
      let left = evaluate(node.operands[0], bindings);
      for (let i = 0; i < node.operators.length; i++) {
        const right = evaluate(node.operands[i + 1], bindings);
        if (!compare(node.operators[i], left, right)) return false;
        left = right;
      }
      return true;
    }
    case 'conditional':
      return isTruthy(evaluate(node.test, bindings))
        ? evaluate(node.body, bindings)
        : evaluate(node.orElse, bindings);
  }
}

/**
 * Evaluates an EVAL expression with Python semantics. Throws an SdvpError when the expression is malformed or
 * fails at run time (a type error, a division by zero, a placeholder without a value).
 */
export function evaluateEvalExpression(
  expression: ParsedEvalExpression | string,
  bindings: EvalBindings,
): EvalValue {
  const parsed = typeof expression === 'string' ? parseEvalExpression(expression) : expression;
  if (!parsed.root) {
    throw new SdvpError('ERR_SDVP_PARSE', `EVAL: ${parsed.error?.message ?? 'invalid expression'}`, {
      field: 'expr',
    });
  }
  return evaluate(parsed.root, bindings);
}

/**
 * Converts a program value to what VisProg's EVAL substitutes for it: the answers 'yes'/'no' become booleans,
 * strings of decimal digits become integers, other strings stay strings; numbers, booleans and None pass through.
 */
export function visprogEvalValue(value: unknown): EvalValue {
  if (typeof value === 'string') {
    if (value === 'yes') return true;
    if (value === 'no') return false;
    if (value.length > 0 && /^[0-9]+$/.test(value)) return Number(value);
    return value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (value === null || value === undefined) return null;
  throw evalError(`cannot use ${Array.isArray(value) ? 'a list' : 'an object'} in an expression`);
}

/** Python's `repr` of an EVAL value (`True`, `'yes'`, `2`, `None`). */
export function formatEvalValue(value: EvalValue): string {
  return formatPythonLiteral(value);
}
