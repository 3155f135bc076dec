// What ends a sandboxed ViperGPT run early: a Python exception, a sandbox limit, a refusal, or a failed module.
//
// These errors stay inside the interpreter (runs report them as diagnostics), so they skip capturing a JavaScript
// stack: programs that raise and handle many exceptions would otherwise pay for stacks nobody reads.

/** An Error without a captured stack. */
class SandboxError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

/** A Python exception the program raised (IndexError, ZeroDivisionError, ...), with CPython's type name. */
export class PythonError extends SandboxError {
  constructor(
    readonly pythonType: string,
    message: string,
  ) {
    super(message);
    this.name = 'PythonError';
  }
}

/** The limits a run is held to. */
export type SandboxLimitKind = 'steps' | 'time' | 'while' | 'recursion' | 'size' | 'nesting';

/** A run reached one of its limits. */
export class SandboxLimit extends SandboxError {
  constructor(
    readonly limit: SandboxLimitKind,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxLimit';
  }
}

/** The program reached something outside the sandboxed subset that only shows at run time. */
export class SandboxRefusal extends SandboxError {
  constructor(
    readonly code: 'unsupported' | 'forbidden',
    message: string,
  ) {
    super(message);
    this.name = 'SandboxRefusal';
  }
}

/** A module implementation threw, or returned a value of the wrong kind. */
export class ModuleFailure extends SandboxError {
  constructor(
    readonly module: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModuleFailure';
  }
}

/** Shorthand for the common Python exceptions. */
export const raise = {
  type: (message: string): never => {
    throw new PythonError('TypeError', message);
  },
  value: (message: string): never => {
    throw new PythonError('ValueError', message);
  },
  index: (message: string): never => {
    throw new PythonError('IndexError', message);
  },
  key: (message: string): never => {
    throw new PythonError('KeyError', message);
  },
  attribute: (message: string): never => {
    throw new PythonError('AttributeError', message);
  },
  zeroDivision: (message: string): never => {
    throw new PythonError('ZeroDivisionError', message);
  },
  overflow: (message: string): never => {
    throw new PythonError('OverflowError', message);
  },
};
