// Diagnostics: what the program parsers report about malformed programs, instead of throwing.

/** How serious a diagnostic is: an `error` means the program cannot run as written. */
export type DiagnosticSeverity = 'error' | 'warning';

/** Stable diagnostic codes. Tools match on these, never on message text. */
export type DiagnosticCode =
  | 'syntax' // the text is not a well-formed step (VisProg) or not valid Python (ViperGPT)
  | 'unknown-module' // a VisProg step names a module the registry does not know
  | 'unknown-argument' // an argument name the module does not take
  | 'missing-argument' // a required argument is absent
  | 'duplicate-argument' // the same argument is given twice
  | 'extra-argument' // more positional arguments than the function takes
  | 'argument-type' // a value of the wrong kind or type for its argument
  | 'undefined-variable' // a name that is never defined
  | 'used-before-definition' // a name used on a line before the line that defines it
  | 'redefined-variable' // a VisProg variable assigned twice (the later step wins)
  | 'unused-variable' // a VisProg step whose output nothing reads
  | 'malformed-literal' // a string or number literal that is not well formed
  | 'malformed-expression' // an EVAL expression that is not in the supported Python subset
  | 'unfilled-template' // a `{slot}` left from a prompt template, with no value given for it
  | 'missing-entry-point' // a ViperGPT program without `def execute_command(...)`
  | 'nesting-too-deep' // expressions nested too deeply to analyse (thousands of levels)
  | 'unsupported' // a ViperGPT program uses Python outside the sandboxed subset (class, try, print, ...)
  | 'forbidden' // a ViperGPT program reaches for something the sandbox refuses (imports, dunders, eval, open)
  | 'python-error' // a ViperGPT run raised a Python exception (IndexError, ZeroDivisionError, ...)
  | 'limit' // a ViperGPT run reached a sandbox limit (steps, time, while bound, recursion, size)
  | 'module-error' // a module implementation failed or returned the wrong kind of value
  | 'step-failed' // a VisProg step failed when the program ran (sdvp run)
  | 'internal'; // a defect in sdvp itself, reported rather than thrown

/** One finding about a program, located at a 1-based line and column of its source. */
export interface Diagnostic {
  severity: DiagnosticSeverity;
  code: DiagnosticCode;
  line: number;
  column: number;
  message: string;
}

export function makeDiagnostic(
  severity: DiagnosticSeverity,
  code: DiagnosticCode,
  line: number,
  column: number,
  message: string,
): Diagnostic {
  return { severity, code, line, column, message };
}

/** True when any diagnostic is an error. */
export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  for (const diagnostic of diagnostics) if (diagnostic.severity === 'error') return true;
  return false;
}

/** Orders diagnostics by position, errors before warnings at the same position; stable otherwise. */
export function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.sort(
    (a, b) =>
      a.line - b.line ||
      a.column - b.column ||
      (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1),
  );
}

/** `3:14: error: message [code]`, the form the CLI prints, with an optional location prefix. */
export function formatDiagnostic(diagnostic: Diagnostic, location = ''): string {
  const where = location ? `${location}:` : '';
  return `${where}${diagnostic.line}:${diagnostic.column}: ${diagnostic.severity}: ${diagnostic.message} [${diagnostic.code}]`;
}

/** Suggests the closest candidate to a misspelt name (case-insensitive match or small edit distance). */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(2, Math.floor(name.length / 3)));
  for (const candidate of candidates) {
    if (candidate.toLowerCase() === lower) return candidate;
    const distance = editDistance(lower, candidate.toLowerCase(), bestDistance);
    if (distance <= bestDistance) {
      if (distance < bestDistance || best === undefined) best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Edit distance counting adjacent transpositions as one edit; gives up (limit + 1) beyond `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1);
    row[0] = i;
    rows.push(row);
  }
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    let rowMin = rows[i][0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, rows[i - 2][j - 2] + 1);
      rows[i][j] = best;
      if (best < rowMin) rowMin = best;
    }
    if (rowMin > limit) return limit + 1;
  }
  return rows[a.length][b.length];
}
