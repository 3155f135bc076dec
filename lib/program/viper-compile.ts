// Compiles a ViperGPT program from its @lezer/python tree into closures the sandbox runs, refusing everything
// outside the supported Python subset with a located diagnostic.

import type { SyntaxNode, Tree } from '@lezer/common';
import { parser as pythonParser } from '@lezer/python';
import { type Diagnostic, type DiagnosticCode, makeDiagnostic, sortDiagnostics } from './diagnostics';
import { type MaybePromise, repeat, then } from './maybe-async';
import type { ModuleRegistry } from './module-registry';
import { argumentGroups } from './python-call-arguments';
import { PythonError, SandboxLimit, raise } from './python-errors';
import { convertField, formatValue } from './python-format';
import { collect, forEachItem, iterate } from './python-iteration';
import { decodeEscape, decodePythonString } from './python-literals';
import { MATH_MODULE } from './python-math';
import {
  type BinaryOperator,
  type UnaryOperator,
  binaryOperation,
  containsValue,
  getItem,
  getSlice,
  setItem,
  unaryOperation,
} from './python-operators';
import { LineIndex, pythonSyntaxError } from './python-syntax';
import {
  type ComparisonOperator,
  DONE,
  PyDict,
  PyIterator,
  PySet,
  PyTuple,
  type Runtime,
  type Value,
  isTruthy,
  pyCompare,
  pyEquals,
  pyRepr,
} from './python-values';
import type { Step, StepGraph } from './step-graph';
import type { CallSite } from './viper-api';
import { SANDBOX_GLOBALS } from './viper-globals';
import { parseViperTree } from './viper-parser';
import {
  BREAK,
  CONTINUE,
  type Completion,
  type Expression,
  Frame,
  NORMAL,
  PyFunction,
  RETURN,
  type RunState,
  type Statement,
  UNBOUND,
} from './viper-runtime';

/** A ViperGPT program ready to run: its step graph, and either compiled code or the errors that stop it. */
export interface CompiledViperProgram {
  readonly source: string;
  /** The step graph parseViperProgram gives for the same source (calls are matched to its steps). */
  readonly graph: StepGraph;
  /** Why the program cannot run (syntax errors, constructs outside the subset, refused names); empty if it can. */
  readonly errors: readonly Diagnostic[];
  /** The function the program defines as its entry point, or null for a bare snippet. */
  readonly entryPoint: string | null;
  /** Runs the module-level statements (which define the entry point). Null when there are errors. */
  readonly run: Statement | null;
  readonly lines: LineIndex;
}

export interface ViperCompileOptions {
  registry?: ModuleRegistry;
  /** The function that is the program (default `execute_command`). */
  entryPoint?: string;
}

/** Builtins that would let a program reach outside the sandbox: refused wherever they are named. */
const FORBIDDEN_NAMES = new Set([
  'eval',
  'exec',
  'compile',
  'open',
  'globals',
  'locals',
  'vars',
  'getattr',
  'setattr',
  'delattr',
  'breakpoint',
  'input',
  'exit',
  'quit',
  'help',
  'memoryview',
  'type',
  'object',
  'super',
  'classmethod',
  'staticmethod',
  'property',
  'dir',
  'id',
]);

/** Python builtins that exist but are not part of the sandboxed subset. */
const UNSUPPORTED_NAMES = new Set([
  'print',
  'map',
  'filter',
  'isinstance',
  'issubclass',
  'hasattr',
  'callable',
  'iter',
  'next',
  'chr',
  'ord',
  'hex',
  'oct',
  'bin',
  'format',
  'repr',
  'ascii',
  'hash',
  'pow',
  'divmod',
  'bytes',
  'bytearray',
  'frozenset',
  'slice',
  'complex',
  'NotImplemented',
  'Exception',
  'BaseException',
  'ValueError',
  'TypeError',
  'IndexError',
  'KeyError',
  'AttributeError',
  'ZeroDivisionError',
  'StopIteration',
  'RuntimeError',
  'NotImplementedError',
]);

const COMPARE_OPERATORS = new Set(['CompareOp', 'in', 'not', 'is']);

type Binder = (frame: Frame, value: Value) => MaybePromise<void>;

type ScopeKind = 'module' | 'function' | 'lambda' | 'comprehension';

class CompileScope {
  readonly slots = new Map<string, number>();

  constructor(
    readonly kind: ScopeKind,
    readonly parent: CompileScope | null,
  ) {}

  add(name: string): number {
    let index = this.slots.get(name);
    if (index === undefined) {
      index = this.slots.size;
      this.slots.set(name, index);
    }
    return index;
  }
}

type Resolved = { kind: 'local'; depth: number; index: number } | { kind: 'global' };

function children(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling)
    if (child.name !== 'Comment') out.push(child);
  return out;
}

function frameAt(frame: Frame, depth: number): Frame {
  let current = frame;
  for (let i = 0; i < depth; i++) current = current.parent!;
  return current;
}

/** Evaluates expressions left to right; stays synchronous until one returns a Promise. */
function evaluateAll(expressions: readonly Expression[], frame: Frame): MaybePromise<Value[]> {
  const values = new Array<Value>(expressions.length);
  for (let i = 0; i < expressions.length; i++) {
    const value = expressions[i](frame);
    if (value instanceof Promise) return finishAll(expressions, frame, values, i, value);
    values[i] = value;
  }
  return values;
}

async function finishAll(
  expressions: readonly Expression[],
  frame: Frame,
  values: Value[],
  index: number,
  pending: Promise<Value>,
): Promise<Value[]> {
  values[index] = await pending;
  for (let i = index + 1; i < expressions.length; i++) values[i] = await expressions[i](frame);
  return values;
}

/** Runs statements in order, stopping at break, continue or return. */
function block(statements: readonly Statement[]): Statement {
  if (statements.length === 1) return statements[0];
  const count = statements.length;
  const from = (frame: Frame, start: number): MaybePromise<Completion> => {
    for (let i = start; i < count; i++) {
      const completion = statements[i](frame);
      if (completion instanceof Promise) {
        return completion.then((done) => (done !== NORMAL ? done : from(frame, i + 1)));
      }
      if (completion !== NORMAL) return completion;
    }
    return NORMAL;
  };
  return (frame) => from(frame, 0);
}

function constant(value: Value): Expression {
  return () => value;
}

const toNormal = (): Completion => NORMAL;

function compare(operator: string, a: Value, b: Value, run: RunState): MaybePromise<boolean> {
  switch (operator) {
    case '==':
      return pyEquals(a, b);
    case '!=':
      return !pyEquals(a, b);
    case 'is':
      return a === b;
    case 'is not':
      return a !== b;
    case 'in':
    case 'not in': {
      const found = containsValue(b, a);
      const negate = operator === 'not in';
      if (found !== undefined) return negate ? !found : found;
      let hit = false;
      return then(
        forEachItem(b, run, (item) => {
          hit = item === a || pyEquals(item, a);
          return !hit;
        }),
        () => (negate ? !hit : hit),
      );
    }
    default:
      return pyCompare(a, b, operator as ComparisonOperator);
  }
}

/** A lazily evaluated comprehension: Python's generator expression, and the engine behind list/set/dict comprehensions. */
interface ComprehensionPlan {
  clauses: Array<{ kind: 'for'; bind: Binder; iterable: Expression } | { kind: 'if'; condition: Expression }>;
  /** Index in `clauses` of each for-clause. */
  forClauses: number[];
  element: Expression;
}

class ComprehensionGenerator extends PyIterator {
  readonly typeName = 'generator';
  readonly #iterators: PyIterator[];
  #delivered: Value | typeof DONE = DONE;

  constructor(
    readonly plan: ComprehensionPlan,
    readonly frame: Frame,
    first: PyIterator,
  ) {
    super();
    this.#iterators = [first];
  }

  next(runtime: Runtime): MaybePromise<Value | typeof DONE> {
    this.#delivered = DONE;
    return then(
      repeat(() => this.#pull(runtime)),
      () => this.#delivered,
    );
  }

  /** One step: advances the innermost loop; false once a value (or the end) has been delivered. */
  #pull(runtime: Runtime): MaybePromise<boolean> {
    const depth = this.#iterators.length - 1;
    if (depth < 0) return false;
    return then(this.#iterators[depth].next(runtime), (item) => {
      if (item === DONE) {
        this.#iterators.pop();
        return true;
      }
      runtime.charge(1);
      const clause = this.plan.clauses[this.plan.forClauses[depth]] as { bind: Binder };
      return then(clause.bind(this.frame, item), () => this.#after(this.plan.forClauses[depth] + 1));
    });
  }

  #after(index: number): MaybePromise<boolean> {
    const { clauses, element } = this.plan;
    if (index >= clauses.length) {
      return then(element(this.frame), (value) => {
        this.#delivered = value;
        return false;
      });
    }
    const clause = clauses[index];
    if (clause.kind === 'if') {
      return then(clause.condition(this.frame), (test) => (isTruthy(test) ? this.#after(index + 1) : true));
    }
    return then(clause.iterable(this.frame), (iterable) => {
      this.#iterators.push(iterate(iterable));
      return true;
    });
  }
}

class ViperCompiler {
  readonly diagnostics: Diagnostic[] = [];
  readonly #stepsAt = new Map<string, Step>();
  #scope = new CompileScope('module', null);
  #moduleNames = new Set<string>();
  #loops = 0;
  #inFunction = false;

  constructor(
    readonly source: string,
    readonly lines: LineIndex,
    graph: StepGraph,
  ) {
    for (const step of graph.steps) this.#stepsAt.set(`${step.line}:${step.column}`, step);
  }

  text(node: SyntaxNode): string {
    return this.source.slice(node.from, node.to);
  }

  refuse(code: DiagnosticCode, node: SyntaxNode, message: string): Expression {
    const { line, column } = this.lines.position(node.from);
    this.diagnostics.push(makeDiagnostic('error', code, line, column, message));
    return constant(null);
  }

  unsupported(node: SyntaxNode, what: string): Expression {
    return this.refuse('unsupported', node, `${what} is outside the sandboxed Python subset`);
  }

  // ---- module and scopes ----

  compileModule(top: SyntaxNode): Statement {
    const statements = children(top);
    this.#moduleNames = this.#bindings(statements);
    return block(statements.map((statement) => this.#statement(statement)));
  }

  /** Names a block binds in its own scope (not inside nested functions, lambdas or comprehensions). */
  #bindings(statements: readonly SyntaxNode[], into = new Set<string>()): Set<string> {
    const targetNames = (node: SyntaxNode) => {
      if (node.name === 'VariableName') into.add(this.text(node));
      else if (['TupleExpression', 'ArrayExpression', 'ParenthesizedExpression'].includes(node.name)) {
        for (const child of children(node)) targetNames(child);
      }
    };
    for (const statement of statements) {
      switch (statement.name) {
        case 'AssignStatement': {
          const parts = children(statement);
          const last = parts.map((part) => part.name).lastIndexOf('AssignOp');
          for (const part of parts.slice(0, Math.max(0, last))) targetNames(part);
          break;
        }
        case 'UpdateStatement': {
          const target = statement.firstChild;
          if (target?.name === 'VariableName') into.add(this.text(target));
          break;
        }
        case 'ForStatement': {
          const parts = children(statement);
          const inIndex = parts.findIndex((part) => part.name === 'in');
          for (const part of parts.slice(1, Math.max(1, inIndex))) targetNames(part);
          for (const part of parts) if (part.name === 'Body') this.#bindings(children(part), into);
          break;
        }
        case 'IfStatement':
        case 'WhileStatement':
          for (const part of children(statement))
            if (part.name === 'Body') this.#bindings(children(part), into);
          break;
        case 'StatementGroup':
          this.#bindings(children(statement), into);
          break;
        case 'FunctionDefinition': {
          const name = statement.getChild('VariableName');
          if (name) into.add(this.text(name));
          break;
        }
        case 'ImportStatement':
          for (const name of this.#importBindings(statement)) into.add(name[0]);
          break;
      }
    }
    return into;
  }

  #resolve(name: string): Resolved {
    let depth = 0;
    for (
      let scope: CompileScope | null = this.#scope;
      scope && scope.kind !== 'module';
      scope = scope.parent
    ) {
      const index = scope.slots.get(name);
      if (index !== undefined) return { kind: 'local', depth, index };
      depth++;
    }
    return { kind: 'global' };
  }

  #inScope<T>(scope: CompileScope, compile: () => T): T {
    const outer = this.#scope;
    const outerLoops = this.#loops;
    this.#scope = scope;
    if (scope.kind === 'function' || scope.kind === 'lambda') this.#loops = 0;
    try {
      return compile();
    } finally {
      this.#scope = outer;
      this.#loops = outerLoops;
    }
  }

  #checkName(node: SyntaxNode, name: string): boolean {
    if (name.startsWith('__')) {
      this.refuse('forbidden', node, `the name '${name}' is refused: dunder names are outside the sandbox`);
      return false;
    }
    return true;
  }

  // ---- statements ----

  #wrap(node: SyntaxNode, body: Statement): Statement {
    const pos = node.from;
    return (frame) => {
      const run = frame.run;
      run.pos = pos;
      run.charge(1);
      return body(frame);
    };
  }

  #body(node: SyntaxNode | undefined): Statement {
    const statements = node ? children(node).filter((child) => child.name !== ':') : [];
    if (statements.length === 0) return () => NORMAL;
    return block(statements.map((statement) => this.#statement(statement)));
  }

  #statement(node: SyntaxNode): Statement {
    switch (node.name) {
      case 'ExpressionStatement': {
        const parts = children(node);
        const value = this.#tupleOrSingle(parts);
        return this.#wrap(node, (frame) => {
          const result = value(frame);
          return result instanceof Promise ? result.then(toNormal) : NORMAL;
        });
      }
      case 'AssignStatement':
        return this.#assignment(node);
      case 'UpdateStatement':
        return this.#update(node);
      case 'IfStatement':
        return this.#if(node);
      case 'ForStatement':
        return this.#for(node);
      case 'WhileStatement':
        return this.#while(node);
      case 'ReturnStatement':
        return this.#return(node);
      case 'PassStatement':
        return this.#wrap(node, () => NORMAL);
      case 'BreakStatement':
      case 'ContinueStatement': {
        const word = node.name === 'BreakStatement' ? 'break' : 'continue';
        if (this.#loops === 0) this.refuse('syntax', node, `Python syntax error: '${word}' outside loop`);
        const completion = word === 'break' ? BREAK : CONTINUE;
        return this.#wrap(node, () => completion);
      }
      case 'StatementGroup':
        return block(
          children(node)
            .filter((child) => child.name !== ';')
            .map((child) => this.#statement(child)),
        );
      case 'FunctionDefinition':
        return this.#functionDefinition(node);
      case 'ImportStatement':
        return this.#import(node);
      case 'ClassDefinition':
        return this.#refuseStatement(node, 'a class definition');
      case 'TryStatement':
        return this.#refuseStatement(node, 'try/except');
      case 'WithStatement':
        return this.#refuseStatement(node, 'a with statement');
      case 'RaiseStatement':
        return this.#refuseStatement(node, 'raise');
      case 'AssertStatement':
        return this.#refuseStatement(node, 'assert');
      case 'DeleteStatement':
        return this.#refuseStatement(node, 'del');
      case 'ScopeStatement':
        return this.#refuseStatement(node, `'${this.text(node).split(/\s/)[0]}'`);
      case 'DecoratedStatement':
        return this.#refuseStatement(node, 'a decorator');
      case 'MatchStatement':
        return this.#refuseStatement(node, 'match');
      default:
        return this.#refuseStatement(node, `the statement '${this.text(node).split('\n')[0].slice(0, 30)}'`);
    }
  }

  #refuseStatement(node: SyntaxNode, what: string): Statement {
    this.unsupported(node, what);
    return () => NORMAL;
  }

  /** Splits an assignment at `=`: each part is its nodes and whether it had a comma (a tuple). */
  #parts(node: SyntaxNode): Array<{ nodes: SyntaxNode[]; tuple: boolean }> {
    const parts: Array<{ nodes: SyntaxNode[]; tuple: boolean }> = [{ nodes: [], tuple: false }];
    for (const child of children(node)) {
      if (child.name === 'AssignOp' || child.name === 'UpdateOp') parts.push({ nodes: [], tuple: false });
      else if (child.name === ',') parts[parts.length - 1].tuple = true;
      else if (child.name !== 'TypeDef') parts[parts.length - 1].nodes.push(child);
    }
    return parts;
  }

  #assignment(node: SyntaxNode): Statement {
    const parts = this.#parts(node);
    if (parts.length === 1) {
      // An annotation without a value (`x: int`) binds nothing.
      return this.#wrap(node, () => NORMAL);
    }
    const valuePart = parts[parts.length - 1];
    const value = this.#tupleOrSingle(valuePart.nodes, valuePart.tuple);
    const targets = parts.slice(0, -1).map((part) => this.#targetOf(part.nodes, part.tuple));
    if (targets.length === 1) {
      const target = targets[0];
      const store = (frame: Frame, result: Value): MaybePromise<Completion> => {
        const stored = target(frame, result);
        return stored instanceof Promise ? stored.then(toNormal) : NORMAL;
      };
      return this.#wrap(node, (frame) => {
        const result = value(frame);
        return result instanceof Promise ? result.then((ready) => store(frame, ready)) : store(frame, result);
      });
    }
    return this.#wrap(node, (frame) =>
      then(value(frame), (result) => {
        let index = 0;
        return then(
          repeat(() => (index < targets.length ? then(targets[index++](frame, result), () => true) : false)),
          () => NORMAL,
        );
      }),
    );
  }

  #update(node: SyntaxNode): Statement {
    const operatorNode = node.getChild('UpdateOp');
    const parts = this.#parts(node);
    if (!operatorNode || parts.length !== 2 || parts[0].nodes.length !== 1 || parts[0].tuple) {
      return this.#refuseStatement(node, 'this augmented assignment');
    }
    const operator = this.text(operatorNode).slice(0, -1) as BinaryOperator;
    const value = this.#tupleOrSingle(parts[1].nodes, parts[1].tuple);
    const target = parts[0].nodes[0];
    const pos = operatorNode.from;
    const apply = (current: Value, operand: Value, run: RunState): Value => {
      run.pos = pos;
      return inPlace(operator, current, operand, run);
    };
    if (target.name === 'VariableName') {
      const name = this.text(target);
      if (!this.#checkName(target, name)) return () => NORMAL;
      const load = this.#load(target, name);
      const store = this.#store(name);
      return this.#wrap(node, (frame) =>
        then(load(frame), (current) =>
          then(value(frame), (operand) =>
            then(store(frame, apply(current, operand, frame.run)), () => NORMAL),
          ),
        ),
      );
    }
    if (target.name === 'MemberExpression' && target.getChild('[') && !target.getChild(':')) {
      const parts = children(target);
      const container = this.#expression(parts[0]);
      const key = this.#tupleOrSingle(
        parts.slice(2, -1).filter((child) => child.name !== ','),
        parts.some((child) => child.name === ','),
      );
      return this.#wrap(node, (frame) =>
        then(container(frame), (object) =>
          then(key(frame), (index) => {
            frame.run.pos = target.from;
            const current = getItem(object, index);
            return then(value(frame), (operand) => {
              const result = apply(current, operand, frame.run);
              frame.run.pos = target.from;
              setItem(object, index, result);
              return NORMAL;
            });
          }),
        ),
      );
    }
    return this.#refuseStatement(target, 'augmented assignment to this target');
  }

  #if(node: SyntaxNode): Statement {
    const branches: Array<{ condition: Expression | null; body: Statement }> = [];
    let condition: Expression | null = null;
    let sawElse = false;
    for (const child of children(node)) {
      if (child.name === 'if' || child.name === 'elif') continue;
      if (child.name === 'else') {
        sawElse = true;
        continue;
      }
      if (child.name === 'Body') {
        branches.push({ condition: sawElse ? null : condition, body: this.#body(child) });
        condition = null;
      } else condition = this.#expression(child);
    }
    const pos = node.from;
    const tryBranch = (frame: Frame, index: number): MaybePromise<Completion> => {
      for (let i = index; i < branches.length; i++) {
        const branch = branches[i];
        if (!branch.condition) return branch.body(frame);
        const test = branch.condition(frame);
        if (test instanceof Promise) {
          return test.then((value) => (isTruthy(value) ? branch.body(frame) : tryBranch(frame, i + 1)));
        }
        if (isTruthy(test)) return branch.body(frame);
      }
      return NORMAL;
    };
    return (frame) => {
      frame.run.pos = pos;
      frame.run.charge(1);
      return tryBranch(frame, 0);
    };
  }

  #loopBody(node: SyntaxNode | undefined): Statement {
    this.#loops++;
    try {
      return this.#body(node);
    } finally {
      this.#loops--;
    }
  }

  #for(node: SyntaxNode): Statement {
    const parts = children(node);
    const inIndex = parts.findIndex((part) => part.name === 'in');
    const bodyIndex = parts.findIndex((part) => part.name === 'Body');
    const targetNodes = parts.slice(1, inIndex).filter((part) => part.name !== ',');
    const iterableNodes = parts.slice(inIndex + 1, bodyIndex).filter((part) => part.name !== ',');
    const target = this.#targetOf(
      targetNodes,
      parts.slice(1, inIndex).some((part) => part.name === ','),
    );
    const iterable = this.#tupleOrSingle(
      iterableNodes,
      parts.slice(inIndex + 1, bodyIndex).some((part) => part.name === ','),
    );
    const body = this.#loopBody(parts[bodyIndex]);
    const elseIndex = parts.findIndex((part, i) => i > bodyIndex && part.name === 'else');
    const orElse = elseIndex >= 0 ? this.#body(parts[elseIndex + 1]) : null;
    const loop = (frame: Frame, items: Value): MaybePromise<Completion> => {
      let completion: Completion = NORMAL;
      const settle = (done: Completion): boolean => {
        if (done === BREAK || done === RETURN) {
          completion = done;
          return false;
        }
        return true;
      };
      const runBody = (): MaybePromise<boolean> => {
        const done = body(frame);
        return done instanceof Promise ? done.then(settle) : settle(done);
      };
      const walked = forEachItem(items, frame.run, (item) => {
        const bound = target(frame, item);
        return bound instanceof Promise ? bound.then(runBody) : runBody();
      });
      const finish = (): MaybePromise<Completion> =>
        completion === RETURN ? RETURN : completion === BREAK || !orElse ? NORMAL : orElse(frame);
      return walked instanceof Promise ? walked.then(finish) : finish();
    };
    return this.#wrap(node, (frame) => {
      const items = iterable(frame);
      return items instanceof Promise ? items.then((ready) => loop(frame, ready)) : loop(frame, items);
    });
  }

  #while(node: SyntaxNode): Statement {
    const parts = children(node);
    const bodyIndex = parts.findIndex((part) => part.name === 'Body');
    const condition = this.#expression(parts[1]);
    const body = this.#loopBody(parts[bodyIndex]);
    const elseIndex = parts.findIndex((part, i) => i > bodyIndex && part.name === 'else');
    const orElse = elseIndex >= 0 ? this.#body(parts[elseIndex + 1]) : null;
    return this.#wrap(node, (frame) => {
      const run = frame.run;
      const bound = run.limits.maxWhileIterations;
      let iterations = 0;
      let completion: Completion = NORMAL;
      return then(
        repeat(() =>
          then(condition(frame), (test) => {
            if (!isTruthy(test)) return false;
            if (++iterations > bound) {
              run.pos = node.from;
              throw new SandboxLimit(
                'while',
                `a while loop ran more than ${bound.toLocaleString('en-US')} iterations (the while bound)`,
              );
            }
            run.charge(1);
            return then(body(frame), (done) => {
              if (done === BREAK || done === RETURN) {
                completion = done;
                return false;
              }
              return true;
            });
          }),
        ),
        () => (completion === RETURN ? RETURN : completion === BREAK || !orElse ? NORMAL : orElse(frame)),
      );
    });
  }

  #return(node: SyntaxNode): Statement {
    if (!this.#inFunction) this.refuse('syntax', node, "Python syntax error: 'return' outside function");
    const parts = children(node).filter((child) => child.name !== 'return');
    const hasComma = parts.some((part) => part.name === ',');
    const value =
      parts.length === 0
        ? constant(null)
        : this.#tupleOrSingle(
            parts.filter((part) => part.name !== ','),
            hasComma,
          );
    return this.#wrap(node, (frame) => {
      const result = value(frame);
      if (result instanceof Promise) {
        return result.then((ready) => {
          frame.returnValue = ready;
          return RETURN;
        });
      }
      frame.returnValue = result;
      return RETURN;
    });
  }

  #parameters(list: SyntaxNode | null, scope: CompileScope): { names: string[]; defaults: Expression[] } {
    const names: string[] = [];
    const defaults: Expression[] = [];
    if (!list) return { names, defaults };
    const parts = children(list).filter(
      (child) => child.name !== '(' && child.name !== ')' && child.name !== 'TypeDef',
    );
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part.name === ',') continue;
      if (part.name === '*' || part.name === '**' || part.name === '/') {
        this.unsupported(part, `'${part.name}' in a parameter list`);
        continue;
      }
      if (part.name !== 'VariableName') {
        this.unsupported(part, 'this parameter');
        continue;
      }
      const name = this.text(part);
      this.#checkName(part, name);
      if (names.includes(name))
        this.refuse(
          'syntax',
          part,
          `Python syntax error: duplicate argument '${name}' in function definition`,
        );
      names.push(name);
      scope.add(name);
      if (parts[i + 1]?.name === 'AssignOp' && parts[i + 2]) {
        defaults.push(this.#expression(parts[i + 2]));
        i += 2;
      } else if (defaults.length > 0) {
        this.refuse('syntax', part, 'Python syntax error: non-default argument follows default argument');
      }
    }
    return { names, defaults };
  }

  #functionDefinition(node: SyntaxNode): Statement {
    if (node.getChild('async')) return this.#refuseStatement(node, 'async def');
    const nameNode = node.getChild('VariableName');
    const name = nameNode ? this.text(nameNode) : '<function>';
    if (nameNode) this.#checkName(nameNode, name);
    const scope = new CompileScope('function', this.#scope);
    // Defaults are evaluated where the function is defined, in the enclosing scope.
    const { names, defaults } = this.#parameters(node.getChild('ParamList'), scope);
    const bodyNode = node.getChild('Body');
    const outerInFunction = this.#inFunction;
    const body = this.#inScope(scope, () => {
      this.#inFunction = true;
      try {
        for (const local of this.#bindings(bodyNode ? children(bodyNode) : [])) scope.add(local);
        return this.#body(bodyNode ?? undefined);
      } finally {
        this.#inFunction = outerInFunction;
      }
    });
    const store = this.#store(name);
    const run = (frame: Frame): MaybePromise<Value> =>
      then(body(frame), (completion) => (completion === RETURN ? frame.returnValue : null));
    return this.#wrap(node, (frame) =>
      then(evaluateAll(defaults, frame), (values) =>
        then(store(frame, new PyFunction(name, names, values, scope.slots.size, frame, run)), () => NORMAL),
      ),
    );
  }

  /** The (name bound, module attribute or null for the module) pairs of an import statement. */
  #importBindings(node: SyntaxNode): Array<[string, string | null, SyntaxNode]> {
    const parts = children(node);
    const bindings: Array<[string, string | null, SyntaxNode]> = [];
    if (parts[0]?.name === 'from') {
      const importIndex = parts.findIndex((part) => part.name === 'import');
      for (let i = importIndex + 1; i < parts.length; i++) {
        const part = parts[i];
        if (part.name !== 'VariableName') continue;
        const alias = parts[i + 1]?.name === 'as' ? parts[i + 2] : undefined;
        bindings.push([this.text(alias ?? part), this.text(part), part]);
        if (alias) i += 2;
      }
      return bindings;
    }
    for (let i = 1; i < parts.length; i++) {
      const part = parts[i];
      if (part.name !== 'VariableName') continue;
      const alias = parts[i + 1]?.name === 'as' ? parts[i + 2] : undefined;
      bindings.push([this.text(alias ?? part), null, part]);
      if (alias) i += 2;
    }
    return bindings;
  }

  #import(node: SyntaxNode): Statement {
    const parts = children(node);
    const fromImport = parts[0]?.name === 'from';
    const moduleParts = fromImport
      ? parts.slice(
          1,
          parts.findIndex((part) => part.name === 'import'),
        )
      : [];
    const moduleName = fromImport ? moduleParts.map((part) => this.text(part)).join('') : null;
    if (fromImport && moduleName !== 'math') {
      this.refuse('forbidden', node, `the import of '${moduleName}' is refused: only math can be imported`);
      return () => NORMAL;
    }
    if (fromImport && parts.some((part) => part.name === '*'))
      return this.#refuseStatement(node, "'from math import *'");
    if (!fromImport) {
      const dotted = parts.findIndex((part) => part.name === '.');
      const named = parts.filter((part, i) => part.name === 'VariableName' && parts[i - 1]?.name !== 'as');
      const refused =
        named.find((part) => this.text(part) !== 'math') ?? (dotted >= 0 ? parts[dotted] : undefined);
      if (refused) {
        const what = dotted >= 0 ? this.text(node).replace(/^import\s+/, '') : this.text(refused);
        this.refuse('forbidden', node, `the import of '${what}' is refused: only math can be imported`);
        return () => NORMAL;
      }
    }
    const bindings = this.#importBindings(node).map(([name, attribute, at]) => {
      const value = attribute === null ? MATH_MODULE : MATH_MODULE.attributes.get(attribute);
      if (value === undefined)
        this.refuse('python-error', at, `ImportError: cannot import name '${attribute}' from 'math'`);
      return { store: this.#store(name), value: value ?? null };
    });
    return this.#wrap(node, (frame) => {
      for (const binding of bindings) binding.store(frame, binding.value);
      return NORMAL;
    });
  }

  // ---- assignment targets ----

  #store(name: string): Binder {
    if (this.#scope.kind === 'module') {
      return (frame, value) => {
        frame.run.globals.set(name, value);
      };
    }
    const index = this.#scope.add(name);
    return (frame, value) => {
      frame.slots[index] = value;
    };
  }

  #targetOf(nodes: SyntaxNode[], tuple: boolean): Binder {
    if (nodes.length === 1 && !tuple) return this.#target(nodes[0]);
    return this.#unpack(nodes, nodes[0]);
  }

  #unpack(nodes: SyntaxNode[], at: SyntaxNode): Binder {
    const binders = nodes.map((node) => this.#target(node));
    const count = binders.length;
    const pos = at.from;
    const assign = (frame: Frame, items: readonly Value[]): MaybePromise<void> => {
      frame.run.pos = pos;
      if (items.length > count) raise.value(`too many values to unpack (expected ${count})`);
      if (items.length < count)
        raise.value(`not enough values to unpack (expected ${count}, got ${items.length})`);
      let index = 0;
      return repeat(() => (index < count ? then(binders[index](frame, items[index++]), () => true) : false));
    };
    return (frame, value) => {
      if (value instanceof PyTuple) return assign(frame, value.items);
      if (Array.isArray(value)) return assign(frame, value);
      frame.run.pos = pos;
      return then(collect(value, frame.run), (items) => assign(frame, items));
    };
  }

  #target(node: SyntaxNode): Binder {
    switch (node.name) {
      case 'VariableName': {
        const name = this.text(node);
        this.#checkName(node, name);
        return this.#store(name);
      }
      case 'TupleExpression':
      case 'ArrayExpression': {
        const items = children(node).filter((child) => !['(', ')', '[', ']', ','].includes(child.name));
        if (items.some((item) => item.name === '*')) {
          this.unsupported(node, 'starred assignment');
          return () => undefined;
        }
        return this.#unpack(items, node);
      }
      case 'ParenthesizedExpression': {
        const inner = children(node).filter((child) => child.name !== '(' && child.name !== ')');
        return inner.length === 1 ? this.#target(inner[0]) : this.#unpack(inner, node);
      }
      case 'MemberExpression': {
        const parts = children(node);
        if (!node.getChild('[')) {
          this.unsupported(node, 'assigning to an attribute');
          return () => undefined;
        }
        if (node.getChild(':')) {
          this.unsupported(node, 'assigning to a slice');
          return () => undefined;
        }
        const container = this.#expression(parts[0]);
        const keyNodes = parts.slice(2, -1);
        const key = this.#tupleOrSingle(
          keyNodes.filter((child) => child.name !== ','),
          keyNodes.some((child) => child.name === ','),
        );
        const pos = node.from;
        return (frame, value) =>
          then(container(frame), (object) =>
            then(key(frame), (index) => {
              frame.run.pos = pos;
              setItem(object, index, value);
            }),
          );
      }
      default:
        this.refuse(
          'syntax',
          node,
          `Python syntax error: cannot assign to ${node.name.replace(/Expression$/, ' expression').toLowerCase()}`,
        );
        return () => undefined;
    }
  }

  // ---- expressions ----

  /** One expression, or a tuple of several (`a, b` without parentheses). */
  #tupleOrSingle(nodes: SyntaxNode[], tuple = false): Expression {
    const items = nodes.filter((node) => node.name !== ',');
    if (items.length === 1 && !tuple) return this.#expression(items[0]);
    const expressions = items.map((item) => this.#element(item));
    return (frame) => then(evaluateAll(expressions, frame), (values) => new PyTuple(values));
  }

  #element(node: SyntaxNode): Expression {
    if (node.name === '*' || node.name === '**') return this.unsupported(node, 'unpacking with * or **');
    return this.#expression(node);
  }

  #load(node: SyntaxNode, name: string): Expression {
    const resolved = this.#resolve(name);
    const pos = node.from;
    if (resolved.kind === 'global') {
      if (!this.#moduleNames.has(name)) {
        if (FORBIDDEN_NAMES.has(name))
          return this.refuse('forbidden', node, `'${name}' is refused: it is outside the sandbox`);
        if (UNSUPPORTED_NAMES.has(name)) return this.unsupported(node, `'${name}'`);
      }
      // A sandbox builtin the program never rebinds at module level is the same value in every run.
      const builtin = this.#moduleNames.has(name) ? undefined : SANDBOX_GLOBALS.get(name);
      if (builtin !== undefined) return constant(builtin);
      return (frame) => {
        const run = frame.run;
        run.pos = pos;
        return run.global(name);
      };
    }
    const { depth, index } = resolved;
    const unbound = (): never => {
      throw new PythonError(
        depth === 0 ? 'UnboundLocalError' : 'NameError',
        depth === 0
          ? `cannot access local variable '${name}' where it is not associated with a value`
          : `cannot access free variable '${name}' where it is not associated with a value in enclosing scope`,
      );
    };
    if (depth === 0) {
      return (frame) => {
        const value = frame.slots[index];
        if (value === UNBOUND) {
          frame.run.pos = pos;
          return unbound();
        }
        return value;
      };
    }
    return (frame) => {
      const value = frameAt(frame, depth).slots[index];
      if (value === UNBOUND) {
        frame.run.pos = pos;
        return unbound();
      }
      return value;
    };
  }

  #expression(node: SyntaxNode): Expression {
    switch (node.name) {
      case 'VariableName': {
        const name = this.text(node);
        if (!this.#checkName(node, name)) return constant(null);
        return this.#load(node, name);
      }
      case 'Number':
        return this.#number(node);
      case 'String':
      case 'ContinuedString':
      case 'FormatString':
        return this.#string(node);
      case 'Boolean':
        return constant(this.text(node) === 'True');
      case 'None':
        return constant(null);
      case 'ParenthesizedExpression': {
        const inner = children(node).filter((child) => child.name !== '(' && child.name !== ')');
        return inner.length === 1 ? this.#expression(inner[0]) : this.#tupleOrSingle(inner, true);
      }
      case 'TupleExpression': {
        const items = children(node).filter((child) => !['(', ')'].includes(child.name));
        return this.#tupleOrSingle(items, true);
      }
      case 'ArrayExpression': {
        const items = children(node)
          .filter((child) => !['[', ']', ','].includes(child.name))
          .map((child) => this.#element(child));
        return (frame) =>
          then(evaluateAll(items, frame), (values) => {
            frame.run.checkLength(values.length);
            return values;
          });
      }
      case 'SetExpression': {
        const items = children(node)
          .filter((child) => !['{', '}', ','].includes(child.name))
          .map((child) => this.#element(child));
        const pos = node.from;
        return (frame) =>
          then(evaluateAll(items, frame), (values) => {
            frame.run.pos = pos;
            return new PySet(values);
          });
      }
      case 'DictionaryExpression':
        return this.#dictionary(node);
      case 'ArrayComprehensionExpression':
      case 'SetComprehensionExpression':
      case 'DictionaryComprehensionExpression':
      case 'ComprehensionExpression':
        return this.#comprehension(
          node.name,
          node,
          children(node).filter((child) => !['[', ']', '{', '}', '(', ')'].includes(child.name)),
        );
      case 'UnaryExpression':
        return this.#unary(node);
      case 'BinaryExpression':
        return this.#binary(node);
      case 'ConditionalExpression':
        return this.#conditional(node);
      case 'LambdaExpression':
        return this.#lambda(node);
      case 'CallExpression':
        return this.#call(node);
      case 'MemberExpression':
        return node.getChild('[') ? this.#subscript(node) : this.#attribute(node);
      case 'NamedExpression':
        return this.unsupported(node, "the assignment expression ':='");
      case 'YieldExpression':
        return this.unsupported(node, 'yield');
      case 'AwaitExpression':
        return this.unsupported(node, 'await');
      case 'Ellipsis':
        return this.unsupported(node, "'...'");
      default:
        return this.unsupported(node, `the expression '${this.text(node).slice(0, 30)}'`);
    }
  }

  #number(node: SyntaxNode): Expression {
    const text = this.text(node).replace(/_/g, '');
    if (/[jJ]$/.test(text)) return this.unsupported(node, 'a complex number');
    if (/^0[xX]/.test(text)) return constant(BigInt(text));
    if (/^0[oO]/.test(text)) return constant(BigInt(`0o${text.slice(2)}`));
    if (/^0[bB]/.test(text)) return constant(BigInt(`0b${text.slice(2)}`));
    if (/[.eE]/.test(text)) return constant(Number(text));
    if (/^0+[1-9]/.test(text)) {
      return this.refuse(
        'syntax',
        node,
        'Python syntax error: leading zeros in decimal integer literals are not permitted',
      );
    }
    if (text.length > 4300) {
      return this.refuse('limit', node, 'an int literal longer than 4300 digits is over the size limit');
    }
    return constant(BigInt(text));
  }

  #string(node: SyntaxNode): Expression {
    const parts = node.name === 'ContinuedString' ? children(node) : [node];
    const pieces: Expression[] = [];
    let literal = '';
    let allConstant = true;
    for (const part of parts) {
      const text = this.text(part);
      const prefix = /^[A-Za-z]*/.exec(text)![0].toLowerCase();
      if (prefix.includes('b')) return this.unsupported(part, 'a bytes literal');
      if (part.name === 'FormatString' || prefix.includes('f')) {
        allConstant = false;
        if (literal) pieces.push(constant(literal));
        literal = '';
        pieces.push(this.#formatString(part));
        continue;
      }
      const decoded = decodePythonString(text);
      if (decoded.error) this.refuse('syntax', part, `Python syntax error: ${decoded.error}`);
      literal += decoded.value;
    }
    if (allConstant) return constant(literal);
    if (literal) pieces.push(constant(literal));
    return (frame) => then(evaluateAll(pieces, frame), (values) => (values as string[]).join(''));
  }

  /** The text of an f-string's literal part: escapes (unless raw) and doubled braces. */
  #literalText(raw: string, isRaw: boolean): string {
    let out = '';
    for (let i = 0; i < raw.length; ) {
      const char = raw[i];
      if (char === '\\' && !isRaw) {
        const decoded = decodeEscape(raw, i);
        out += decoded.text;
        i = decoded.next;
      } else if ((char === '{' || char === '}') && raw[i + 1] === char) {
        out += char;
        i += 2;
      } else {
        out += char;
        i++;
      }
    }
    return out;
  }

  #formatString(node: SyntaxNode): Expression {
    const text = this.text(node);
    const prefix = /^[A-Za-z]*/.exec(text)![0];
    const isRaw = prefix.toLowerCase().includes('r');
    const quote = text.slice(prefix.length, prefix.length + 3) === text[prefix.length].repeat(3) ? 3 : 1;
    const start = node.from + prefix.length + quote;
    const end = node.to - quote;
    return this.#template(node, start, end, isRaw);
  }

  /** Literal text and replacement fields between `start` and `end` (an f-string body or a format spec). */
  #template(node: SyntaxNode, start: number, end: number, isRaw: boolean): Expression {
    const pieces: Expression[] = [];
    let cursor = start;
    for (const child of children(node)) {
      if (child.name !== 'FormatReplacement') continue;
      if (child.from > cursor)
        pieces.push(constant(this.#literalText(this.source.slice(cursor, child.from), isRaw)));
      pieces.push(this.#replacement(child));
      cursor = child.to;
    }
    if (end > cursor) pieces.push(constant(this.#literalText(this.source.slice(cursor, end), isRaw)));
    if (pieces.length === 1) return pieces[0];
    return (frame) =>
      then(evaluateAll(pieces, frame), (values) => {
        const text = (values as string[]).join('');
        frame.run.checkLength(text.length);
        return text;
      });
  }

  #replacement(node: SyntaxNode): Expression {
    const parts = children(node);
    const open = parts[0];
    const markers = ['FormatSelfDoc', 'FormatConversion', 'FormatSpec', '}'];
    const stop = parts.findIndex((part, i) => i > 0 && markers.includes(part.name));
    const expressionNodes = parts.slice(1, stop < 0 ? undefined : stop);
    const value = this.#tupleOrSingle(
      expressionNodes,
      expressionNodes.some((part) => part.name === ','),
    );
    const selfDoc = node.getChild('FormatSelfDoc');
    const conversionNode = node.getChild('FormatConversion');
    const specNode = node.getChild('FormatSpec');
    const conversion = conversionNode
      ? this.text(conversionNode).slice(1)
      : selfDoc && !specNode
        ? 'r'
        : null;
    if (conversion !== null && !['r', 's', 'a'].includes(conversion)) {
      return this.refuse(
        'syntax',
        conversionNode ?? node,
        `Python syntax error: f-string: invalid conversion character '${conversion}'`,
      );
    }
    const label = selfDoc ? this.source.slice(open.to, selfDoc.nextSibling?.from ?? selfDoc.to) : '';
    const spec = specNode ? this.#template(specNode, specNode.from + 1, specNode.to, false) : constant('');
    const pos = node.from;
    return (frame) =>
      then(value(frame), (result) =>
        then(spec(frame), (specText) => {
          frame.run.pos = pos;
          const text = label + formatValue(convertField(result, conversion), specText as string);
          frame.run.checkLength(text.length);
          return text;
        }),
      );
  }

  #dictionary(node: SyntaxNode): Expression {
    const parts = children(node).filter((child) => child.name !== '{' && child.name !== '}');
    const entries: Array<[Expression, Expression]> = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part.name === ',') continue;
      if (part.name === '**') {
        this.unsupported(part, "'**' in a dict display");
        i++;
        continue;
      }
      if (parts[i + 1]?.name !== ':' || !parts[i + 2]) {
        this.refuse('syntax', part, 'Python syntax error: a dict entry needs a key and a value');
        continue;
      }
      entries.push([this.#expression(part), this.#expression(parts[i + 2])]);
      i += 2;
    }
    const flat = entries.flat();
    const pos = node.from;
    return (frame) =>
      then(evaluateAll(flat, frame), (values) => {
        frame.run.pos = pos;
        const dict = new PyDict();
        for (let i = 0; i < values.length; i += 2) dict.set(values[i], values[i + 1]);
        return dict;
      });
  }

  /** A comprehension of `kind` (its node name) from its parts: the element, then for and if clauses. */
  #comprehension(kind: string, node: SyntaxNode, parts: SyntaxNode[]): Expression {
    const firstFor = parts.findIndex((part) => part.name === 'for');
    if (firstFor < 0)
      return this.refuse('syntax', node, 'Python syntax error: a comprehension needs a for clause');
    if (parts.some((part) => part.name === 'async')) return this.unsupported(node, 'an async comprehension');
    const elementNodes = parts.slice(0, firstFor).filter((part) => part.name !== ',');
    const clauseNodes = parts.slice(firstFor);
    // The first iterable is evaluated in the enclosing scope, the rest in the comprehension's own.
    const inIndex = clauseNodes.findIndex((part) => part.name === 'in');
    const firstIterableNode = clauseNodes[inIndex + 1];
    if (inIndex < 0 || !firstIterableNode)
      return this.refuse('syntax', node, 'Python syntax error: incomplete comprehension');
    const firstIterable = this.#expression(firstIterableNode);
    const scope = new CompileScope('comprehension', this.#scope);
    const plan = this.#inScope(scope, (): ComprehensionPlan => {
      const clauses: ComprehensionPlan['clauses'] = [];
      const forClauses: number[] = [];
      for (let i = 0; i < clauseNodes.length; ) {
        const part = clauseNodes[i];
        if (part.name === 'for') {
          const inAt = clauseNodes.findIndex((candidate, k) => k > i && candidate.name === 'in');
          const targets = clauseNodes.slice(i + 1, inAt);
          for (const target of targets) this.#declareTargets(target, scope);
          const bind = this.#targetOf(
            targets.filter((target) => target.name !== ','),
            targets.some((target) => target.name === ','),
          );
          const iterableNode = clauseNodes[inAt + 1];
          const iterable = clauses.length === 0 ? firstIterable : this.#expression(iterableNode);
          forClauses.push(clauses.length);
          clauses.push({ kind: 'for', bind, iterable });
          i = inAt + 2;
        } else if (part.name === 'if') {
          clauses.push({ kind: 'if', condition: this.#expression(clauseNodes[i + 1]) });
          i += 2;
        } else i++;
      }
      let element: Expression;
      if (kind === 'DictionaryComprehensionExpression') {
        const colon = parts.findIndex((part) => part.name === ':');
        const key = this.#expression(parts[0]);
        const value = this.#expression(parts[colon + 1]);
        element = (frame) => then(key(frame), (k) => then(value(frame), (v) => new PyTuple([k, v])));
      } else element = this.#tupleOrSingle(elementNodes);
      return { clauses, forClauses, element };
    });
    const pos = node.from;
    const create = (frame: Frame): MaybePromise<ComprehensionGenerator> =>
      then(firstIterable(frame), (iterable) => {
        frame.run.pos = pos;
        const inner = new Frame(scope.slots.size, frame, frame.run);
        return new ComprehensionGenerator(plan, inner, iterate(iterable));
      });
    switch (kind) {
      case 'ComprehensionExpression':
        return create;
      case 'ArrayComprehensionExpression':
        return (frame) => then(create(frame), (generator) => collect(generator, frame.run));
      case 'SetComprehensionExpression':
        return (frame) =>
          then(create(frame), (generator) =>
            then(collect(generator, frame.run), (items) => new PySet(items)),
          );
      default:
        return (frame) =>
          then(create(frame), (generator) =>
            then(collect(generator, frame.run), (pairs) => {
              const dict = new PyDict();
              for (const pair of pairs as PyTuple[]) dict.set(pair.items[0], pair.items[1]);
              return dict;
            }),
          );
    }
  }

  #declareTargets(node: SyntaxNode, scope: CompileScope): void {
    if (node.name === 'VariableName') scope.add(this.text(node));
    else if (['TupleExpression', 'ArrayExpression', 'ParenthesizedExpression'].includes(node.name)) {
      for (const child of children(node)) this.#declareTargets(child, scope);
    }
  }

  #unary(node: SyntaxNode): Expression {
    const [operatorNode, operandNode] = children(node);
    const operand = this.#expression(operandNode);
    const operator = this.text(operatorNode);
    if (operator === 'not') {
      return (frame) => {
        const value = operand(frame);
        return value instanceof Promise ? value.then((ready) => !isTruthy(ready)) : !isTruthy(value);
      };
    }
    const pos = node.from;
    return (frame) => {
      const value = operand(frame);
      if (value instanceof Promise) {
        return value.then((ready) => {
          frame.run.pos = pos;
          return unaryOperation(operator as UnaryOperator, ready);
        });
      }
      frame.run.pos = pos;
      return unaryOperation(operator as UnaryOperator, value);
    };
  }

  #binary(node: SyntaxNode): Expression {
    const parts = children(node);
    const operatorParts = parts.slice(1, -1);
    const operatorText = operatorParts.map((part) => this.text(part)).join(' ');
    if (operatorText === 'and' || operatorText === 'or') {
      const left = this.#expression(parts[0]);
      const right = this.#expression(parts[parts.length - 1]);
      const isAnd = operatorText === 'and';
      return (frame) => {
        const value = left(frame);
        if (value instanceof Promise)
          return value.then((ready) => (isTruthy(ready) === isAnd ? right(frame) : ready));
        return isTruthy(value) === isAnd ? right(frame) : value;
      };
    }
    if (operatorParts.every((part) => COMPARE_OPERATORS.has(part.name))) return this.#comparison(node);
    const left = this.#expression(parts[0]);
    const right = this.#expression(parts[parts.length - 1]);
    const operator = operatorText as BinaryOperator;
    const pos = operatorParts[0]?.from ?? node.from;
    return (frame) => {
      const a = left(frame);
      if (a instanceof Promise) {
        return a.then((ready) =>
          then(right(frame), (b) => {
            frame.run.pos = pos;
            return binaryOperation(operator, ready, b, frame.run);
          }),
        );
      }
      const b = right(frame);
      if (b instanceof Promise) {
        return b.then((ready) => {
          frame.run.pos = pos;
          return binaryOperation(operator, a, ready, frame.run);
        });
      }
      frame.run.pos = pos;
      return binaryOperation(operator, a, b, frame.run);
    };
  }

  /** A comparison chain `a < b <= c`: each operand evaluated once, stopping at the first false link. */
  #comparison(node: SyntaxNode): Expression {
    const operands: SyntaxNode[] = [];
    const operators: Array<{ text: string; pos: number }> = [];
    const flatten = (current: SyntaxNode) => {
      const parts = children(current);
      const operatorParts = parts.slice(1, -1);
      const isComparison =
        current.name === 'BinaryExpression' &&
        operatorParts.length > 0 &&
        operatorParts.every((part) => COMPARE_OPERATORS.has(part.name));
      if (!isComparison) {
        operands.push(current);
        return;
      }
      flatten(parts[0]);
      operators.push({
        text: operatorParts.map((part) => this.text(part)).join(' '),
        pos: operatorParts[0].from,
      });
      operands.push(parts[parts.length - 1]);
    };
    flatten(node);
    const expressions = operands.map((operand) => this.#expression(operand));
    if (expressions.length === 2) {
      const [left, right] = expressions;
      const { text, pos } = operators[0];
      const finish = (frame: Frame, a: Value, b: Value): MaybePromise<Value> => {
        frame.run.pos = pos;
        return compare(text, a, b, frame.run);
      };
      return (frame) => {
        const a = left(frame);
        if (a instanceof Promise)
          return a.then((ready) => then(right(frame), (b) => finish(frame, ready, b)));
        const b = right(frame);
        if (b instanceof Promise) return b.then((ready) => finish(frame, a, ready));
        return finish(frame, a, b);
      };
    }
    return (frame) =>
      then(expressions[0](frame), (first) => {
        let previous = first;
        let index = 0;
        let result = true;
        return then(
          repeat(() => {
            if (index >= operators.length) return false;
            const { text, pos } = operators[index];
            return then(expressions[index + 1](frame), (next) => {
              frame.run.pos = pos;
              return then(compare(text, previous, next, frame.run), (holds) => {
                previous = next;
                index++;
                result = holds;
                return holds;
              });
            });
          }),
          () => result,
        );
      });
  }

  #conditional(node: SyntaxNode): Expression {
    const parts = children(node);
    const ifIndex = parts.findIndex((part) => part.name === 'if');
    const elseIndex = parts.findIndex((part) => part.name === 'else');
    const body = this.#expression(parts[0]);
    const test = this.#expression(parts[ifIndex + 1]);
    const orElse = this.#expression(parts[elseIndex + 1]);
    return (frame) => {
      const value = test(frame);
      if (value instanceof Promise)
        return value.then((ready) => (isTruthy(ready) ? body(frame) : orElse(frame)));
      return isTruthy(value) ? body(frame) : orElse(frame);
    };
  }

  #lambda(node: SyntaxNode): Expression {
    const scope = new CompileScope('lambda', this.#scope);
    const { names, defaults } = this.#parameters(node.getChild('ParamList'), scope);
    const parts = children(node);
    const colon = parts.findIndex((part) => part.name === ':');
    const bodyNode = parts[colon + 1];
    if (!bodyNode) return this.refuse('syntax', node, 'Python syntax error: a lambda needs a body');
    const body = this.#inScope(scope, () => this.#expression(bodyNode));
    return (frame) =>
      then(
        evaluateAll(defaults, frame),
        (values) => new PyFunction('<lambda>', names, values, scope.slots.size, frame, body),
      );
  }

  #attribute(node: SyntaxNode): Expression {
    const parts = children(node);
    const property = parts[parts.length - 1];
    const name = this.text(property);
    const object = this.#expression(parts[0]);
    if (name.startsWith('__')) {
      return this.refuse(
        'forbidden',
        property,
        `the attribute '${name}' is refused: dunder attributes are outside the sandbox`,
      );
    }
    const pos = property.from;
    return (frame) => {
      const value = object(frame);
      if (value instanceof Promise) {
        return value.then((ready) => {
          frame.run.pos = pos;
          return frame.run.attribute(ready, name);
        });
      }
      frame.run.pos = pos;
      return frame.run.attribute(value, name);
    };
  }

  #subscript(node: SyntaxNode): Expression {
    const parts = children(node);
    const object = this.#expression(parts[0]);
    const inside = parts.slice(2, -1);
    const pos = parts[1].from;
    if (inside.some((part) => part.name === ':')) {
      if (inside.some((part) => part.name === ','))
        return this.unsupported(node, 'a multi-dimensional slice');
      const bounds: Array<Expression | null> = [null, null, null];
      let slot = 0;
      for (const part of inside) {
        if (part.name === ':') slot++;
        else if (slot < 3) bounds[slot] = this.#expression(part);
      }
      const [start, stop, step] = bounds.map((bound) => bound ?? constant(null));
      return (frame) =>
        then(object(frame), (container) =>
          then(evaluateAll([start, stop, step], frame), ([first, last, stride]) => {
            frame.run.pos = pos;
            return getSlice(container, first, last, stride, frame.run);
          }),
        );
    }
    const key = this.#tupleOrSingle(
      inside.filter((part) => part.name !== ','),
      inside.some((part) => part.name === ','),
    );
    return (frame) => {
      const container = object(frame);
      if (container instanceof Promise) {
        return container.then((ready) =>
          then(key(frame), (index) => {
            frame.run.pos = pos;
            return getItem(ready, index);
          }),
        );
      }
      const index = key(frame);
      if (index instanceof Promise) {
        return index.then((ready) => {
          frame.run.pos = pos;
          return getItem(container, ready);
        });
      }
      frame.run.pos = pos;
      return getItem(container, index);
    };
  }

  // ---- calls ----

  #site(nameNode: SyntaxNode): CallSite {
    const { line, column } = this.lines.position(nameNode.from);
    const step = this.#stepsAt.get(`${line}:${column}`);
    return { stepId: step?.id ?? null, line, column, output: step?.output ?? null };
  }

  #call(node: SyntaxNode): Expression {
    const calleeNode = node.firstChild!;
    const groups = argumentGroups(node.getChild('ArgList'), this.source);
    const positional: Expression[] = [];
    const keywordNames: string[] = [];
    const keywordValues: Expression[] = [];
    for (const group of groups) {
      if (group.splat) {
        this.unsupported(group.nodes[0], 'unpacking arguments with * or **');
        continue;
      }
      const value = group.generator
        ? this.#comprehension('ComprehensionExpression', group.nodes[0], group.nodes)
        : this.#expression(group.nodes[0]);
      if (group.keyword !== null) {
        if (keywordNames.includes(group.keyword)) {
          this.refuse(
            'syntax',
            group.nodes[0],
            `Python syntax error: keyword argument repeated: ${group.keyword}`,
          );
        }
        this.#checkName(group.nodes[0], group.keyword);
        keywordNames.push(group.keyword);
        keywordValues.push(value);
      } else {
        if (keywordNames.length > 0)
          this.refuse(
            'syntax',
            group.nodes[0],
            'Python syntax error: positional argument follows keyword argument',
          );
        positional.push(value);
      }
    }
    const isMethod = calleeNode.name === 'MemberExpression' && !calleeNode.getChild('[');
    const nameNode = isMethod ? calleeNode.lastChild! : calleeNode;
    const site = this.#site(nameNode);
    const pos = nameNode.from;
    const all = [...positional, ...keywordValues];
    const count = positional.length;
    const keywordsOf = (values: Value[]): Map<string, Value> | null => {
      if (keywordNames.length === 0) return null;
      const keywords = new Map<string, Value>();
      for (let i = 0; i < keywordNames.length; i++) keywords.set(keywordNames[i], values[count + i]);
      return keywords;
    };
    const invoke = (frame: Frame, fn: Value, values: Value[]): MaybePromise<Value> => {
      const run = frame.run;
      const keywords = keywordsOf(values);
      run.pos = pos;
      run.site = site;
      return run.call(fn, keywords ? values.slice(0, count) : values, keywords);
    };
    const methodName = isMethod ? this.text(nameNode) : '';
    if (isMethod && !methodName.startsWith('__')) {
      // `receiver.method(...)`: the method is looked up before the arguments are evaluated, as in Python, but
      // called without making a bound method first.
      const receiver = this.#expression(calleeNode.firstChild!);
      const apply = (frame: Frame, self: Value): MaybePromise<Value> => {
        const run = frame.run;
        run.pos = pos;
        const method = run.methodOf(self, methodName);
        const fn = method ? null : run.attribute(self, methodName);
        const finish = (values: Value[]): MaybePromise<Value> => {
          if (!method) return invoke(frame, fn, values);
          const keywords = keywordsOf(values);
          run.pos = pos;
          run.site = site;
          return method(self, keywords ? values.slice(0, count) : values, keywords, run);
        };
        const values = evaluateAll(all, frame);
        return values instanceof Promise ? values.then(finish) : finish(values);
      };
      return (frame) => {
        const self = receiver(frame);
        return self instanceof Promise ? self.then((ready) => apply(frame, ready)) : apply(frame, self);
      };
    }
    const callee = this.#expression(calleeNode);
    return (frame) => {
      const fn = callee(frame);
      if (fn instanceof Promise)
        return fn.then((ready) => then(evaluateAll(all, frame), (values) => invoke(frame, ready, values)));
      const values = evaluateAll(all, frame);
      if (values instanceof Promise) return values.then((ready) => invoke(frame, fn, ready));
      return invoke(frame, fn, values);
    };
  }
}

/** `x op= y`: lists, sets and dicts change in place, as their __iadd__ / __ior__ do in Python. */
function inPlace(operator: BinaryOperator, current: Value, operand: Value, run: RunState): Value {
  if (Array.isArray(current) && (operator === '+' || operator === '*')) {
    const result = binaryOperation(
      operator,
      current,
      operator === '+' && !Array.isArray(operand)
        ? raise.type(`'${pyRepr(operand)}' cannot be added to a list with +=`)
        : operand,
      run,
    ) as Value[];
    current.length = 0;
    for (const item of result) current.push(item);
    return current;
  }
  if (current instanceof PySet && operand instanceof PySet && ['|', '&', '-', '^'].includes(operator)) {
    const result = binaryOperation(operator, current, operand, run) as PySet;
    current.items.clear();
    for (const [hash, value] of result.items) current.items.set(hash, value);
    return current;
  }
  if (current instanceof PyDict && operator === '|' && operand instanceof PyDict) {
    for (const [key, value] of operand.entries.values()) current.set(key, value);
    return current;
  }
  return binaryOperation(operator, current, operand, run);
}

/**
 * Parses and compiles a ViperGPT program. Never throws on any string: syntax errors and constructs outside the
 * subset become `errors`.
 */
export function compileViperProgram(source: string, options: ViperCompileOptions = {}): CompiledViperProgram {
  const lines = new LineIndex(source);
  let tree: Tree;
  let graph: StepGraph;
  try {
    tree = pythonParser.parse(source);
    graph = parseViperTree(source, tree, lines, {
      registry: options.registry,
      entryPoint: options.entryPoint,
    });
  } catch (error) {
    const diagnostic = makeDiagnostic(
      'error',
      'internal',
      1,
      1,
      `internal error while parsing: ${(error as Error)?.message ?? String(error)}`,
    );
    return {
      source,
      graph: { framework: 'viper', steps: [], diagnostics: [diagnostic], inputs: [] },
      errors: [diagnostic],
      entryPoint: null,
      run: null,
      lines,
    };
  }
  const entryName = options.entryPoint ?? 'execute_command';
  const syntax = pythonSyntaxError(source, tree, lines);
  if (syntax) {
    const diagnostic = makeDiagnostic('error', 'syntax', syntax.line, syntax.column, syntax.message);
    return { source, graph, errors: [diagnostic], entryPoint: null, run: null, lines };
  }
  const compiler = new ViperCompiler(source, lines, graph);
  let run: Statement | null = null;
  try {
    run = compiler.compileModule(tree.topNode);
  } catch (error) {
    const message =
      error instanceof RangeError
        ? 'the program nests expressions too deeply to compile'
        : `internal error in the ViperGPT compiler: ${(error as Error)?.message ?? String(error)}`;
    compiler.diagnostics.push(
      makeDiagnostic('error', error instanceof RangeError ? 'nesting-too-deep' : 'internal', 1, 1, message),
    );
  }
  const errors = sortDiagnostics(compiler.diagnostics);
  const defined = children(tree.topNode).some(
    (statement) =>
      statement.name === 'FunctionDefinition' &&
      source.slice(
        statement.getChild('VariableName')?.from ?? 0,
        statement.getChild('VariableName')?.to ?? 0,
      ) === entryName,
  );
  return {
    source,
    graph,
    errors,
    entryPoint: defined ? entryName : null,
    run: errors.length === 0 ? run : null,
    lines,
  };
}
