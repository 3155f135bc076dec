// Python syntax errors located where CPython reports them: its tokenizer's errors (unclosed or mismatched brackets,
// unterminated strings, inconsistent dedents) first, then the parser's, mapped from the @lezer/python tree.

import type { SyntaxNode, Tree } from '@lezer/common';

/** One syntax error, as CPython's `ast.parse` would raise it (1-based line and column). */
export interface PythonSyntaxError {
  line: number;
  column: number;
  message: string;
}

/** Maps source offsets to 1-based line and column. */
export class LineIndex {
  readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code === 10) this.starts.push(i + 1);
      else if (code === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        this.starts.push(i + 1);
      }
    }
  }

  position(offset: number): { line: number; column: number } {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.starts[middle] <= offset) low = middle;
      else high = middle - 1;
    }
    return { line: low + 1, column: offset - this.starts[low] + 1 };
  }
}

interface OpenBracket {
  char: string;
  offset: number;
}

interface TokenScan {
  /** The first error CPython's tokenizer raises, at the offset it reports. */
  error: { offset: number; message: string; column?: number } | null;
  /** Brackets still open at the end of the source (when there is no tokenizer error). */
  open: OpenBracket[];
  /** Lines that start with more indentation than the line before (CPython's INDENT tokens), and that width. */
  indents: Map<number, number>;
  /** Offsets of the first token of each logical line. */
  lineStarts: number[];
  /** The first indented line whose previous logical line does not end with ':' (a parser error in CPython). */
  strayIndent: { offset: number; lineStart: number; line: number; width: number } | null;
}

const CLOSING: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
const STRING_PREFIX = /^(?:[rRbBuUfF]|[rR][bBfF]|[bBfF][rR])?(?:'''|"""|'|")/;

/** Walks the source the way CPython's tokenizer does, as far as errors are concerned. */
function scanTokens(source: string, lines: LineIndex): TokenScan {
  const scan: TokenScan = { error: null, open: [], indents: new Map(), lineStarts: [], strayIndent: null };
  // The last character of the previous logical line outside comments and strings (':' opens a block).
  let lastSignificant = '';
  // CPython measures indentation twice, with tabs to multiples of 8 and as one column, and calls a mismatch a TabError.
  const indentStack = [0];
  const altStack = [0];
  let i = 0;
  let atLineStart = true;
  let end = source.length;
  while (end > 0 && (source[end - 1] === '\n' || source[end - 1] === '\r')) end--;
  const lastLine = lines.position(end).line;
  while (i < source.length) {
    if (atLineStart && scan.open.length === 0) {
      atLineStart = false;
      let width = 0;
      let alt = 0;
      let j = i;
      while (j < source.length && (source[j] === ' ' || source[j] === '\t' || source[j] === '\f')) {
        if (source[j] === '\t') {
          width = (Math.floor(width / 8) + 1) * 8;
          alt++;
        } else if (source[j] === '\f') {
          width = 0;
          alt = 0;
        } else {
          width++;
          alt++;
        }
        j++;
      }
      const next = source[j];
      if (
        next !== undefined &&
        next !== '\n' &&
        next !== '\r' &&
        next !== '#' &&
        !(next === '\\' && (source[j + 1] === '\n' || source[j + 1] === '\r'))
      ) {
        scan.lineStarts.push(j);
        const { line } = lines.position(j);
        const top = indentStack.length - 1;
        const tabError = () => {
          scan.error = {
            offset: i,
            message: 'inconsistent use of tabs and spaces in indentation',
            column: 1,
          };
          return scan;
        };
        if (width === indentStack[top]) {
          if (alt !== altStack[top]) return tabError();
        } else if (width > indentStack[top]) {
          if (alt <= altStack[top]) return tabError();
          indentStack.push(width);
          altStack.push(alt);
          scan.indents.set(line, width);
          if (lastSignificant !== ':' && scan.strayIndent === null)
            scan.strayIndent = { offset: j, lineStart: i, line, width };
        } else {
          while (indentStack.length > 1 && width < indentStack[indentStack.length - 1]) {
            indentStack.pop();
            altStack.pop();
          }
          if (indentStack[indentStack.length - 1] !== width) {
            let lineEnd = 0;
            while (
              i + lineEnd < source.length &&
              source[i + lineEnd] !== '\n' &&
              source[i + lineEnd] !== '\r'
            )
              lineEnd++;
            scan.error = {
              offset: i,
              message: 'unindent does not match any outer indentation level',
              column: lineEnd + 1,
            };
            return scan;
          }
          if (altStack[altStack.length - 1] !== alt) return tabError();
        }
      }
      i = j;
      continue;
    }
    const char = source[i];
    if (char === '\n' || char === '\r') {
      if (scan.open.length === 0) atLineStart = true;
      i += char === '\r' && source[i + 1] === '\n' ? 2 : 1;
      continue;
    }
    if (char === '#') {
      while (i < source.length && source[i] !== '\n' && source[i] !== '\r') i++;
      continue;
    }
    if (char === '\\') {
      if (source[i + 1] === '\n' || source[i + 1] === '\r') {
        i += source[i + 1] === '\r' && source[i + 2] === '\n' ? 3 : 2;
        continue;
      }
      scan.error = { offset: i + 1, message: 'unexpected character after line continuation character' };
      return scan;
    }
    const isWordStart = /[A-Za-z_]/.test(char) && !/[A-Za-z0-9_]/.test(source[i - 1] ?? '');
    const prefix =
      char === "'" || char === '"' || isWordStart ? STRING_PREFIX.exec(source.slice(i, i + 5)) : null;
    if (prefix) {
      const quote = prefix[0].replace(/^[^'"]+/, '');
      let j = i + prefix[0].length;
      let closed = false;
      while (j < source.length) {
        const c = source[j];
        if (c === '\\') {
          j += 2;
          continue;
        }
        if (quote.length === 1 && (c === '\n' || c === '\r')) break;
        if (source.startsWith(quote, j)) {
          closed = true;
          j += quote.length;
          break;
        }
        j++;
      }
      if (!closed) {
        const detected = quote.length === 3 ? lastLine : lines.position(Math.min(j, source.length)).line;
        scan.error = {
          offset: i,
          message: `unterminated ${quote.length === 3 ? 'triple-quoted ' : ''}string literal (detected at line ${detected})`,
        };
        return scan;
      }
      i = j;
      lastSignificant = quote;
      continue;
    }
    if (isWordStart || /[0-9]/.test(char)) {
      while (i < source.length && /[A-Za-z0-9_.]/.test(source[i])) i++;
      lastSignificant = source[i - 1];
      continue;
    }
    if (char !== ' ' && char !== '\t' && char !== '\f') lastSignificant = char;
    if (char === '(' || char === '[' || char === '{') scan.open.push({ char, offset: i });
    else if (char === ')' || char === ']' || char === '}') {
      const opening = scan.open.pop();
      if (!opening) {
        scan.error = { offset: i, message: `unmatched '${char}'` };
        return scan;
      }
      if (opening.char !== CLOSING[char]) {
        const openLine = lines.position(opening.offset).line;
        const where = openLine === lines.position(i).line ? '' : ` on line ${openLine}`;
        scan.error = {
          offset: i,
          message: `closing parenthesis '${char}' does not match opening parenthesis '${opening.char}'${where}`,
        };
        return scan;
      }
    }
    i++;
  }
  return scan;
}

/** The first place the tree is not Python 3: an error node, or a Python 2 print statement. */
function firstErrorNode(tree: Tree): SyntaxNode | null {
  let found: SyntaxNode | null = null;
  const cursor = tree.cursor();
  do {
    if (
      (cursor.type.isError || cursor.name === 'PrintStatement') &&
      (found === null || cursor.from < found.from)
    ) {
      found = cursor.node;
    }
  } while (cursor.next());
  return found;
}

const BLOCK_STATEMENTS: Record<string, string> = {
  IfStatement: 'if',
  WhileStatement: 'while',
  ForStatement: 'for',
  FunctionDefinition: 'def',
  ClassDefinition: 'class',
  TryStatement: 'try',
  WithStatement: 'with',
};

const BRACKET_CONTAINERS = new Set([
  'ArgList',
  'ParenthesizedExpression',
  'TupleExpression',
  'ArrayExpression',
  'SetExpression',
  'DictionaryExpression',
  'DictionaryComprehensionExpression',
  'ArrayComprehensionExpression',
  'SetComprehensionExpression',
  'ComprehensionExpression',
]);

const PUNCTUATION = new Set([
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  ';',
  '.',
  'AssignOp',
  '*',
  '**',
  'for',
  'in',
  'if',
  'else',
  'lambda',
  'not',
  'and',
  'or',
]);

/** The statement whose body is missing, when the error is an empty block (CPython: "expected an indented block"). */
function missingBlock(node: SyntaxNode, source: string, lines: LineIndex): string | null {
  const body = node.parent;
  if (body?.name !== 'Body' || node.prevSibling?.name !== ':') return null;
  const statement = body.parent;
  if (!statement) return null;
  let keyword: SyntaxNode | null = null;
  for (let child = statement.firstChild; child && child.from < body.from; child = child.nextSibling) {
    if (
      ['if', 'elif', 'else', 'for', 'while', 'try', 'except', 'finally', 'with', 'def', 'class'].includes(
        child.name,
      )
    ) {
      keyword = child;
    }
  }
  if (!keyword) return null;
  const line = lines.position(keyword.from).line;
  const word = source.slice(keyword.from, keyword.to);
  if (word === 'def') return `expected an indented block after function definition on line ${line}`;
  if (word === 'class') return `expected an indented block after class definition on line ${line}`;
  return `expected an indented block after '${word}' statement on line ${line}`;
}

/** The message for a parser error at a lezer error node (the wording sdvp has used since its first parser). */
function parserMessage(node: SyntaxNode, source: string): string {
  const text = source.slice(node.from, node.to).trim();
  const parent = node.parent;
  const keyword = parent ? BLOCK_STATEMENTS[parent.name] : undefined;
  if (keyword && text === '') {
    let hasBodyAfter = false;
    for (let child = parent!.firstChild; child; child = child.nextSibling) {
      if (child.name === 'Body' && child.from >= node.from) hasBodyAfter = true;
    }
    if (!hasBodyAfter) return `Python syntax error: expected ':' at the end of the '${keyword}' line`;
  }
  if (text === '') {
    return node.from >= source.trimEnd().length
      ? 'Python syntax error: the program ends in the middle of a statement'
      : 'Python syntax error: unexpected end of line';
  }
  const shown = text.length > 24 ? `${text.slice(0, 24)}...` : text;
  return `Python syntax error: unexpected '${shown.replace(/\s+/g, ' ')}'`;
}

/**
 * The syntax error CPython would raise for `source`, or null when it parses. `tree` is the @lezer/python parse of
 * the same source (its first error node stands for where CPython's parser fails).
 */
export function pythonSyntaxError(
  source: string,
  tree: Tree,
  lines = new LineIndex(source),
): PythonSyntaxError | null {
  const scan = scanTokens(source, lines);
  const node = firstErrorNode(tree);
  const at = (offset: number, message: string, column?: number): PythonSyntaxError => {
    const position = lines.position(offset);
    return { line: position.line, column: column ?? position.column, message };
  };
  // An indented line after a line that opens no block: CPython's parser fails there ("unexpected indent"), and
  // reports it at the width of the indentation without looking further for tokenizer errors.
  const stray = scan.strayIndent;
  const strayFirst = stray !== null && (node === null || stray.lineStart <= node.from);
  if (strayFirst && (scan.error === null || stray!.offset < scan.error.offset)) {
    return { line: stray!.line, column: stray!.width, message: 'Python syntax error: unexpected indent' };
  }
  // CPython raises a tokenizer error when it reaches it, and also after a parser error (it tokenizes the rest of
  // the file looking for one).
  if (scan.error)
    return at(scan.error.offset, `Python syntax error: ${scan.error.message}`, scan.error.column);
  if (!node) return null;
  if (node.name === 'PrintStatement') {
    return at(
      node.from,
      "Python syntax error: Missing parentheses in call to 'print'. Did you mean print(...)?",
    );
  }
  const block = missingBlock(node, source, lines);
  if (block) return at(node.from, `Python syntax error: ${block}`);
  const innermost = scan.open[scan.open.length - 1];
  if (innermost) {
    const atEnd = source.slice(node.from).trim() === '';
    if (atEnd || lines.position(node.from).line > lines.position(innermost.offset).line) {
      return at(innermost.offset, `Python syntax error: '${innermost.char}' was never closed`);
    }
  }
  // Two expressions in a row inside brackets: CPython points at the first ("Perhaps you forgot a comma?").
  const container = node.parent;
  const previous = node.prevSibling;
  if (
    container &&
    BRACKET_CONTAINERS.has(container.name) &&
    previous &&
    !PUNCTUATION.has(previous.name) &&
    !previous.type.isError
  ) {
    const after = source.slice(node.from).replace(/^\s+/, '');
    if (
      /^[A-Za-z0-9_'"([{]/.test(after) &&
      !/^(?:and|or|not|in|is|if|else|for|lambda|async|await)\b/.test(after)
    ) {
      return at(previous.from, 'Python syntax error: invalid syntax. Perhaps you forgot a comma?');
    }
  }
  // `if x = 1:` — CPython points at the name and suggests '=='.
  if (
    container &&
    ['IfStatement', 'WhileStatement'].includes(container.name) &&
    /^=(?!=)/.test(source.slice(node.from)) &&
    previous &&
    ['VariableName', 'MemberExpression'].includes(previous.name)
  ) {
    return at(
      previous.from,
      "Python syntax error: invalid syntax. Maybe you meant '==' or ':=' instead of '='?",
    );
  }
  return at(node.from, parserMessage(node, source));
}
