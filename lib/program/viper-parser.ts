// The ViperGPT parser: `def execute_command(...)` Python, read with the @lezer/python grammar, into a step graph of API calls.

import type { SyntaxNode, Tree } from '@lezer/common';
import { parser as pythonParser } from '@lezer/python';
import { argError } from '../errors/sdvp-error';
import { type Diagnostic, closestName, makeDiagnostic, sortDiagnostics } from './diagnostics';
import {
  type ArgumentSpec,
  type ModuleRegistry,
  type ModuleSpec,
  defaultModuleRegistry,
} from './module-registry';
import { type ArgumentGroup, argumentGroups } from './python-call-arguments';
import { decodePythonString, parsePythonNumber } from './python-literals';
import { LineIndex, pythonSyntaxError } from './python-syntax';
import type { ControlContext, ControlKind, LiteralValue, Step, StepArgument, StepGraph } from './step-graph';

export interface ViperParseOptions {
  /** API entries to recognise (default: the built-in registry). */
  registry?: ModuleRegistry;
  /** The function that is the program (default `execute_command`). */
  entryPoint?: string;
  /** Names treated as defined when the source has no entry-point function (a bare snippet). */
  snippetInputs?: readonly string[];
  /** Further global names the program may use without defining them. */
  globals?: readonly string[];
}

/** Names a snippet without `def execute_command(...)` may use as inputs. */
export const DEFAULT_VIPER_INPUTS: readonly string[] = Object.freeze([
  'image',
  'video',
  'possible_answers',
  'query',
]);

const PYTHON_BUILTINS = [
  'abs',
  'all',
  'any',
  'ascii',
  'bin',
  'bool',
  'bytes',
  'callable',
  'chr',
  'dict',
  'dir',
  'divmod',
  'enumerate',
  'filter',
  'float',
  'format',
  'frozenset',
  'getattr',
  'hasattr',
  'hash',
  'hex',
  'id',
  'int',
  'isinstance',
  'issubclass',
  'iter',
  'len',
  'list',
  'map',
  'max',
  'min',
  'next',
  'object',
  'oct',
  'ord',
  'pow',
  'print',
  'range',
  'repr',
  'reversed',
  'round',
  'set',
  'setattr',
  'slice',
  'sorted',
  'str',
  'sum',
  'super',
  'tuple',
  'type',
  'zip',
  'None',
  'True',
  'False',
  'Exception',
  'ValueError',
  'TypeError',
  'IndexError',
  'KeyError',
  'AttributeError',
  'ZeroDivisionError',
  'StopIteration',
  'NotImplementedError',
];

/** Names ViperGPT's execution environment provides besides the API: modules and typing names in its prompts. */
const VIPER_ENVIRONMENT = [
  'math',
  'np',
  'numpy',
  'torch',
  're',
  'List',
  'Union',
  'Iterator',
  'Optional',
  'Tuple',
  'Dict',
  'Any',
  'Callable',
  'Set',
];

const KNOWN_GLOBALS: ReadonlySet<string> = new Set([...PYTHON_BUILTINS, ...VIPER_ENVIRONMENT]);

/** Methods that change the list or dict they are called on: their arguments flow into the receiver variable. */
const MUTATING_METHODS = new Set([
  'append',
  'extend',
  'insert',
  'sort',
  'reverse',
  'update',
  'add',
  'setdefault',
]);

const REPEATING: ReadonlySet<ControlKind> = new Set<ControlKind>(['for', 'while', 'comprehension', 'lambda']);

const COMPREHENSIONS = new Set([
  'ArrayComprehensionExpression',
  'SetComprehensionExpression',
  'DictionaryComprehensionExpression',
  'ComprehensionExpression',
]);

type Flow = ReadonlySet<number>;
const NO_FLOW: Flow = new Set<number>();

function union(...flows: Flow[]): Flow {
  let result: Set<number> | undefined;
  let single: Flow = NO_FLOW;
  for (const flow of flows) {
    if (flow.size === 0) continue;
    if (single.size === 0 && !result) {
      single = flow;
      continue;
    }
    result ??= new Set(single);
    for (const id of flow) result.add(id);
  }
  return result ?? single;
}

function childrenOf(node: SyntaxNode): SyntaxNode[] {
  const children: SyntaxNode[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) children.push(child);
  return children;
}

type ScopeKind = 'module' | 'function' | 'lambda' | 'comprehension';

class Scope {
  readonly flows = new Map<string, Flow>();
  /** Every name bound anywhere in the scope (filled as the analysis goes; checked at the end). */
  readonly everBound = new Set<string>();
  /** Names bound so far, in evaluation order. */
  readonly defined = new Set<string>();

  constructor(
    readonly kind: ScopeKind,
    readonly parent: Scope | null,
  ) {}

  lookup(name: string): Flow {
    for (let scope: Scope | null = this; scope; scope = scope.parent) {
      const flow = scope.flows.get(name);
      if (flow) return flow;
    }
    return NO_FLOW;
  }

  /** The nearest function (or module) scope: where assignments bind. */
  get owner(): Scope {
    let scope: Scope = this;
    while ((scope.kind === 'lambda' || scope.kind === 'comprehension') && scope.parent) scope = scope.parent;
    return scope;
  }
}

interface NameUse {
  name: string;
  line: number;
  column: number;
  scope: Scope;
  /** The function scope the use sits in directly (not inside a lambda or nested function), if any. */
  orderScope: Scope | null;
  definedAtUse: boolean;
}

class ViperAnalyzer {
  readonly steps: Step[] = [];
  readonly diagnostics: Diagnostic[] = [];
  readonly inputs: string[] = [];
  readonly #stepsByCall = new Map<number, Step>();
  readonly #uses: NameUse[] = [];
  readonly #control: ControlContext[] = [];
  readonly #known: ReadonlySet<string>;
  readonly #lines: LineIndex;
  #scope: Scope;
  /** The function scope whose evaluation order is being followed (null inside lambdas and nested functions). */
  #orderScope: Scope | null = null;
  /** Greater than zero while re-walking a loop body to propagate loop-carried flows: nothing is reported then. */
  #silent = 0;
  /** Flows that lambda parameters receive (the collection a `sort(key=lambda ...)` walks). */
  #lambdaFlows: Flow = NO_FLOW;
  #inputNames = new Set<string>();

  constructor(
    readonly source: string,
    readonly tree: Tree,
    readonly registry: ModuleRegistry,
    readonly options: ViperParseOptions,
    lines: LineIndex,
  ) {
    this.#lines = lines;
    this.#scope = new Scope('module', null);
    this.#known = options.globals?.length ? new Set([...KNOWN_GLOBALS, ...options.globals]) : KNOWN_GLOBALS;
  }

  /** Python builtins, ViperGPT's environment, the API functions and any globals the caller names. */
  #isKnownGlobal(name: string): boolean {
    return this.#known.has(name) || this.registry.viperFunction(name) !== undefined;
  }

  text(node: SyntaxNode): string {
    return this.source.slice(node.from, node.to);
  }

  position(node: SyntaxNode | number): { line: number; column: number } {
    return this.#lines.position(typeof node === 'number' ? node : node.from);
  }

  report(
    severity: 'error' | 'warning',
    code: Diagnostic['code'],
    at: SyntaxNode | number,
    message: string,
  ): void {
    if (this.#silent > 0) return;
    const { line, column } = this.position(at);
    this.diagnostics.push(makeDiagnostic(severity, code, line, column, message));
  }

  // ---- whole program ----

  analyze(): void {
    const tree = this.tree;
    this.#reportSyntaxError(tree);
    const entryName = this.options.entryPoint ?? 'execute_command';
    const statements = childrenOf(tree.topNode);
    const entry = statements.find((statement) => this.#functionName(statement) === entryName);
    if (!entry) {
      this.report(
        'warning',
        'missing-entry-point',
        0,
        `no 'def ${entryName}(...)' found; the program is read as top-level statements`,
      );
      for (const name of this.options.snippetInputs ?? DEFAULT_VIPER_INPUTS)
        this.#bindInput(name, this.#scope);
      this.#orderScope = this.#scope;
    }
    for (const statement of statements) {
      if (statement === entry) this.#entryFunction(statement);
      else this.#statement(statement);
    }
    this.#checkNames();
  }

  #functionName(statement: SyntaxNode): string | undefined {
    let definition: SyntaxNode | null = statement;
    if (statement.name === 'DecoratedStatement') definition = statement.getChild('FunctionDefinition');
    if (definition?.name !== 'FunctionDefinition') return undefined;
    const name = definition.getChild('VariableName');
    return name ? this.text(name) : undefined;
  }

  #bindInput(name: string, scope: Scope): void {
    scope.everBound.add(name);
    scope.defined.add(name);
    scope.flows.set(name, NO_FLOW);
    this.#inputNames.add(name);
  }

  #entryFunction(statement: SyntaxNode): void {
    const definition =
      statement.name === 'DecoratedStatement' ? statement.getChild('FunctionDefinition')! : statement;
    for (const decorator of statement.getChildren('Decorator')) this.#genericExpression(decorator);
    const name = definition.getChild('VariableName');
    if (name) this.#bindName(this.text(name), NO_FLOW, true);
    const functionScope = new Scope('function', this.#scope);
    const params = definition.getChild('ParamList');
    if (params) this.#parameters(params, functionScope, NO_FLOW, true);
    const typeDef = definition.getChild('TypeDef');
    if (typeDef) this.#genericExpression(typeDef);
    const body = definition.getChild('Body');
    const outer = this.#scope;
    const outerOrder = this.#orderScope;
    this.#scope = functionScope;
    this.#orderScope = functionScope;
    if (body) this.#body(body);
    this.#scope = outer;
    this.#orderScope = outerOrder;
  }

  /** One syntax error, where CPython reports it (an unclosed bracket at the bracket, not where parsing gave up). */
  #reportSyntaxError(tree: Tree): void {
    const error = pythonSyntaxError(this.source, tree, this.#lines);
    if (error && this.#silent === 0) {
      this.diagnostics.push(makeDiagnostic('error', 'syntax', error.line, error.column, error.message));
    }
  }

  #checkNames(): void {
    for (const use of this.#uses) {
      let owner: Scope | null = null;
      for (let scope: Scope | null = use.scope; scope; scope = scope.parent) {
        if (scope.everBound.has(use.name)) {
          owner = scope;
          break;
        }
      }
      if (!owner) {
        if (this.#isKnownGlobal(use.name)) continue;
        const candidates = new Set<string>();
        for (let scope: Scope | null = use.scope; scope; scope = scope.parent) {
          for (const name of scope.everBound) candidates.add(name);
        }
        const suggestion = closestName(use.name, candidates);
        this.diagnostics.push(
          makeDiagnostic(
            'error',
            'undefined-variable',
            use.line,
            use.column,
            `undefined variable ${use.name}${suggestion ? `; did you mean ${suggestion}?` : ''}`,
          ),
        );
      } else if (owner === use.orderScope && !use.definedAtUse) {
        this.diagnostics.push(
          makeDiagnostic(
            'warning',
            'used-before-definition',
            use.line,
            use.column,
            `variable ${use.name} is used before any assignment to it`,
          ),
        );
      }
    }
  }

  // ---- statements ----

  #body(body: SyntaxNode): void {
    for (let child = body.firstChild; child; child = child.nextSibling) this.#statement(child);
  }

  #withControl(kind: ControlKind, at: SyntaxNode, action: () => void): void {
    const { line, column } = this.position(at);
    this.#control.push({ kind, line, column });
    try {
      action();
    } finally {
      this.#control.pop();
    }
  }

  /** Straight-line code replaces a variable's flows; code under any control structure adds to them. */
  get #replaces(): boolean {
    return this.#control.length === 0 && this.#silent === 0;
  }

  #statement(node: SyntaxNode): void {
    switch (node.name) {
      case 'Comment':
      case ':':
      case 'PassStatement':
      case 'BreakStatement':
      case 'ContinueStatement':
        return;
      case 'StatementGroup':
        this.#body(node);
        return;
      case 'AssignStatement':
        this.#assignment(node);
        return;
      case 'UpdateStatement':
        this.#update(node);
        return;
      case 'IfStatement':
        this.#ifStatement(node);
        return;
      case 'ForStatement':
        this.#forStatement(node);
        return;
      case 'WhileStatement':
        this.#whileStatement(node);
        return;
      case 'TryStatement':
        this.#tryStatement(node);
        return;
      case 'WithStatement':
        this.#withStatement(node);
        return;
      case 'FunctionDefinition':
      case 'ClassDefinition':
      case 'DecoratedStatement':
        this.#nestedDefinition(node);
        return;
      case 'ImportStatement':
        this.#importStatement(node);
        return;
      case 'ScopeStatement':
        for (const name of node.getChildren('VariableName')) this.#bindName(this.text(name), NO_FLOW, false);
        return;
      case 'MatchStatement':
        this.#matchStatement(node);
        return;
      default:
        if (node.type.isError) return;
        this.#genericExpression(node);
    }
  }

  /** Splits an assignment's children at `=`: the last part is the value, the others are targets. */
  #assignment(node: SyntaxNode): void {
    const parts: SyntaxNode[][] = [[]];
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.name === 'AssignOp') parts.push([]);
      else if (child.name === 'TypeDef') this.#genericExpression(child);
      else if (child.name !== ',' && !child.type.isError) parts[parts.length - 1].push(child);
    }
    if (parts.length === 1) {
      for (const expression of parts[0]) this.#expression(expression);
      return;
    }
    const values = parts[parts.length - 1];
    const valueFlows = values.map((value) => this.#expression(value));
    const all = union(...valueFlows);
    const call = values.length === 1 ? this.#unparenthesize(values[0]) : null;
    for (const targets of parts.slice(0, -1)) {
      targets.forEach((target, i) => {
        const flow = targets.length === values.length ? valueFlows[i] : all;
        this.#bindTarget(target, flow);
      });
      if (call?.name === 'CallExpression' && targets.length === 1 && targets[0].name === 'VariableName') {
        const step = this.#stepsByCall.get(this.#callKey(call));
        if (step && step.output === null && this.#silent === 0) step.output = this.text(targets[0]);
      }
    }
  }

  #unparenthesize(node: SyntaxNode): SyntaxNode {
    let current = node;
    while (current.name === 'ParenthesizedExpression') {
      const inner = childrenOf(current).find((child) => child.name !== '(' && child.name !== ')');
      if (!inner) break;
      current = inner;
    }
    return current;
  }

  #update(node: SyntaxNode): void {
    const children = childrenOf(node).filter((child) => child.name !== ',' && !child.type.isError);
    const operator = children.findIndex((child) => child.name === 'UpdateOp');
    const targets = operator >= 0 ? children.slice(0, operator) : children;
    const values = operator >= 0 ? children.slice(operator + 1) : [];
    const flow = union(...values.map((value) => this.#expression(value)));
    for (const target of targets) {
      const targetFlow = this.#expression(target);
      if (target.name === 'VariableName') this.#bindName(this.text(target), union(targetFlow, flow), false);
      else this.#bindTarget(target, flow);
    }
  }

  #ifStatement(node: SyntaxNode): void {
    const children = childrenOf(node);
    let kind: ControlKind | null = null;
    let keywordNode: SyntaxNode | null = null;
    for (const child of children) {
      if (child.name === 'if' || child.name === 'elif' || child.name === 'else') {
        kind = child.name;
        keywordNode = child;
        continue;
      }
      if (child.type.isError || child.name === 'Comment') continue;
      if (child.name === 'Body') {
        if (kind && keywordNode) this.#withControl(kind, keywordNode, () => this.#body(child));
        else this.#body(child);
        continue;
      }
      // A condition: the first is evaluated whenever the statement is; an elif's only when earlier ones fail.
      if (kind === 'elif' && keywordNode)
        this.#withControl('elif', keywordNode, () => this.#expression(child));
      else this.#expression(child);
    }
  }

  /** Walks a loop body twice: the second, silent walk carries flows from the end of one iteration to the next. */
  #loopTwice(action: () => void): void {
    action();
    this.#silent++;
    try {
      action();
    } finally {
      this.#silent--;
    }
  }

  #forStatement(node: SyntaxNode): void {
    const children = childrenOf(node).filter((child) => !child.type.isError && child.name !== 'Comment');
    const forIndex = children.findIndex((child) => child.name === 'for');
    const inIndex = children.findIndex((child) => child.name === 'in');
    const bodyIndex = children.findIndex((child) => child.name === 'Body');
    const targets =
      inIndex >= 0
        ? children.slice(forIndex + 1, inIndex).filter((child) => child.name !== ',' && child.name !== '*')
        : [];
    const iterables =
      inIndex >= 0
        ? children
            .slice(inIndex + 1, bodyIndex >= 0 ? bodyIndex : undefined)
            .filter((child) => child.name !== ',')
        : [];
    const iterableFlow = union(...iterables.map((iterable) => this.#expression(iterable)));
    const body = bodyIndex >= 0 ? children[bodyIndex] : null;
    const keyword = forIndex >= 0 ? children[forIndex] : node;
    this.#withControl('for', keyword, () =>
      this.#loopTwice(() => {
        for (const target of targets) this.#bindTarget(target, iterableFlow);
        if (body) this.#body(body);
      }),
    );
    this.#elseClause(children, bodyIndex);
  }

  #whileStatement(node: SyntaxNode): void {
    const children = childrenOf(node).filter((child) => !child.type.isError && child.name !== 'Comment');
    const bodyIndex = children.findIndex((child) => child.name === 'Body');
    const keyword = children.find((child) => child.name === 'while') ?? node;
    const conditions = children.slice(1, bodyIndex >= 0 ? bodyIndex : undefined);
    this.#withControl('while', keyword, () =>
      this.#loopTwice(() => {
        for (const condition of conditions) this.#expression(condition);
        if (bodyIndex >= 0) this.#body(children[bodyIndex]);
      }),
    );
    this.#elseClause(children, bodyIndex);
  }

  #elseClause(children: SyntaxNode[], bodyIndex: number): void {
    if (bodyIndex < 0) return;
    const elseIndex = children.findIndex((child, i) => i > bodyIndex && child.name === 'else');
    const elseBody = elseIndex >= 0 ? children[elseIndex + 1] : undefined;
    if (elseBody?.name === 'Body') this.#withControl('else', children[elseIndex], () => this.#body(elseBody));
  }

  #tryStatement(node: SyntaxNode): void {
    let mode: 'try' | 'except' | 'else' | 'finally' = 'try';
    let keyword: SyntaxNode = node;
    let pendingAs = false;
    for (let child = node.firstChild; child; child = child.nextSibling) {
      const name = child.name;
      if (name === 'try' || name === 'except' || name === 'else' || name === 'finally') {
        mode = name;
        keyword = child;
        continue;
      }
      if (name === 'as') {
        pendingAs = true;
        continue;
      }
      if (name === 'Body') {
        const body = child;
        if (mode === 'except' || mode === 'else') this.#withControl(mode, keyword, () => this.#body(body));
        else this.#body(body);
        continue;
      }
      if (child.type.isError || name === 'Comment' || name === ',' || name === '*') continue;
      if (pendingAs && name === 'VariableName') {
        this.#bindName(this.text(child), NO_FLOW, false);
        pendingAs = false;
      } else this.#expression(child);
    }
  }

  #withStatement(node: SyntaxNode): void {
    let lastFlow: Flow = NO_FLOW;
    let pendingAs = false;
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.name === 'as') pendingAs = true;
      else if (child.name === 'Body') this.#body(child);
      else if (pendingAs && child.name === 'VariableName') {
        this.#bindName(this.text(child), lastFlow, this.#replaces);
        pendingAs = false;
      } else if (
        !child.type.isError &&
        child.name !== 'with' &&
        child.name !== ',' &&
        child.name !== 'async'
      ) {
        lastFlow = this.#expression(child);
      }
    }
  }

  #nestedDefinition(node: SyntaxNode): void {
    const definition =
      node.name === 'DecoratedStatement'
        ? (node.getChild('FunctionDefinition') ?? node.getChild('ClassDefinition'))
        : node;
    for (const decorator of node.getChildren('Decorator')) this.#genericExpression(decorator);
    if (!definition) return;
    const name = definition.getChild('VariableName');
    if (name) this.#bindName(this.text(name), NO_FLOW, this.#replaces);
    const argList = definition.getChild('ArgList');
    if (argList) this.#genericExpression(argList);
    const scope = new Scope('function', this.#scope);
    const params = definition.getChild('ParamList');
    if (params) this.#parameters(params, scope, NO_FLOW, false);
    const body = definition.getChild('Body');
    if (!body) return;
    const outer = this.#scope;
    const outerOrder = this.#orderScope;
    this.#scope = scope;
    this.#orderScope = null;
    try {
      this.#withControl('function', definition, () => this.#body(body));
    } finally {
      this.#scope = outer;
      this.#orderScope = outerOrder;
    }
  }

  #importStatement(node: SyntaxNode): void {
    let afterImport = !childrenOf(node).some((child) => child.name === 'from');
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.name === 'import') afterImport = true;
      else if (afterImport && child.name === 'VariableName' && child.prevSibling?.name !== '.') {
        this.#bindName(this.text(child), NO_FLOW, false);
      }
    }
  }

  #matchStatement(node: SyntaxNode): void {
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.name === 'MatchBody') {
        for (const clause of child.getChildren('MatchClause')) {
          this.#withControl('if', clause, () => {
            for (let part = clause.firstChild; part; part = part.nextSibling) {
              if (part.name === 'Body') this.#body(part);
              else if (part.name === 'Guard') this.#genericExpression(part);
              else this.#bindPatternNames(part);
            }
          });
        }
      } else if (child.name !== 'match' && !child.type.isError) this.#expression(child);
    }
  }

  #bindPatternNames(node: SyntaxNode): void {
    if (node.name === 'VariableName') {
      this.#bindName(this.text(node), NO_FLOW, false);
      return;
    }
    for (let child = node.firstChild; child; child = child.nextSibling) this.#bindPatternNames(child);
  }

  // ---- binding ----

  #bindName(name: string, flow: Flow, replace: boolean, scope: Scope = this.#scope.owner): void {
    scope.everBound.add(name);
    scope.defined.add(name);
    const previous = scope.flows.get(name);
    scope.flows.set(name, replace || !previous ? flow : union(previous, flow));
  }

  #bindTarget(target: SyntaxNode, flow: Flow, scope?: Scope): void {
    switch (target.name) {
      case 'VariableName':
        this.#bindName(this.text(target), flow, this.#replaces && !scope, scope);
        return;
      case 'TupleExpression':
      case 'ArrayExpression':
      case 'ParenthesizedExpression':
        for (let child = target.firstChild; child; child = child.nextSibling) {
          if (child.name === 'VariableName' || child.firstChild) this.#bindTarget(child, flow, scope);
        }
        return;
      case 'MemberExpression': {
        // `x.attr = v` or `x[i] = v` changes the object x refers to.
        const children = childrenOf(target);
        this.#expression(children[0]);
        for (const child of children.slice(1)) if (child.name !== 'PropertyName') this.#expression(child);
        const root = this.#rootVariable(target);
        if (root) this.#bindName(root, union(this.#scope.lookup(root), flow), false);
        return;
      }
      default:
        if (!target.type.isError && target.name !== '*' && target.name !== ',') this.#expression(target);
    }
  }

  #rootVariable(node: SyntaxNode): string | null {
    let current: SyntaxNode | null = node;
    while (current && current.name === 'MemberExpression') current = current.firstChild;
    return current?.name === 'VariableName' ? this.text(current) : null;
  }

  #parameters(params: SyntaxNode, scope: Scope, flow: Flow, areInputs: boolean): void {
    let afterAssign = false;
    for (let child = params.firstChild; child; child = child.nextSibling) {
      if (child.name === 'AssignOp') {
        afterAssign = true;
        continue;
      }
      if (child.name === ',') {
        afterAssign = false;
        continue;
      }
      if (afterAssign) {
        this.#expression(child);
        continue;
      }
      if (child.name === 'VariableName') {
        const name = this.text(child);
        if (areInputs) this.#bindInput(name, scope);
        else this.#bindName(name, flow, true, scope);
      } else if (child.name === 'TypeDef') this.#genericExpression(child);
    }
  }

  // ---- expressions ----

  #use(node: SyntaxNode): Flow {
    const name = this.text(node);
    if (this.#silent === 0) {
      const { line, column } = this.position(node);
      const orderScope = this.#orderScope && this.#scope.owner === this.#orderScope ? this.#orderScope : null;
      this.#uses.push({
        name,
        line,
        column,
        scope: this.#scope,
        orderScope,
        definedAtUse: orderScope ? orderScope.defined.has(name) : true,
      });
      if (this.#inputNames.has(name) && !this.inputs.includes(name)) this.inputs.push(name);
    }
    return this.#scope.lookup(name);
  }

  /** Analyses an expression: records uses, creates steps for API calls, and returns the steps its value comes from. */
  #expression(node: SyntaxNode): Flow {
    switch (node.name) {
      case 'VariableName':
        return this.#use(node);
      case 'Number':
      case 'String':
      case 'Boolean':
      case 'None':
      case 'Ellipsis':
      case 'Comment':
        return NO_FLOW;
      case 'CallExpression':
        return this.#call(node);
      case 'MemberExpression': {
        const children = childrenOf(node);
        return union(
          ...children.map((child) => (child.name === 'PropertyName' ? NO_FLOW : this.#expression(child))),
        );
      }
      case 'BinaryExpression':
        return this.#binary(node);
      case 'ConditionalExpression':
        return this.#conditional(node);
      case 'LambdaExpression':
        return this.#lambda(node, this.#lambdaFlows);
      case 'NamedExpression': {
        const children = childrenOf(node).filter((child) => child.name !== 'AssignOp');
        const flow = children.length > 1 ? this.#expression(children[children.length - 1]) : NO_FLOW;
        if (children[0]?.name === 'VariableName') {
          this.#bindName(this.text(children[0]), flow, false, this.#scope.owner);
        }
        return flow;
      }
      default:
        if (COMPREHENSIONS.has(node.name)) return this.#comprehension(childrenOf(node), node);
        if (node.type.isError) return NO_FLOW;
        return this.#genericExpression(node);
    }
  }

  /** Any other node: the union of what its children evaluate to. */
  #genericExpression(node: SyntaxNode): Flow {
    const flows: Flow[] = [];
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.name === 'PropertyName' || child.type.isError) continue;
      if (child.firstChild || child.name === 'VariableName') flows.push(this.#expression(child));
    }
    return union(...flows);
  }

  #binary(node: SyntaxNode): Flow {
    const children = childrenOf(node);
    const operator = children.find((child) => child.name === 'and' || child.name === 'or');
    if (!operator) return this.#genericExpression(node);
    const index = children.indexOf(operator);
    const left = union(...children.slice(0, index).map((child) => this.#expression(child)));
    let right: Flow = NO_FLOW;
    // The right side of `and` / `or` only runs when the left side does not decide the result.
    this.#withControl('conditional', operator, () => {
      right = union(...children.slice(index + 1).map((child) => this.#expression(child)));
    });
    return union(left, right);
  }

  #conditional(node: SyntaxNode): Flow {
    const children = childrenOf(node).filter((child) => !child.type.isError);
    const ifIndex = children.findIndex((child) => child.name === 'if');
    const elseIndex = children.findIndex((child) => child.name === 'else');
    if (ifIndex < 0 || elseIndex < 0) return this.#genericExpression(node);
    // The condition is evaluated for its calls and uses; the value comes from the branches.
    for (const child of children.slice(ifIndex + 1, elseIndex)) this.#expression(child);
    let value: Flow = NO_FLOW;
    this.#withControl('conditional', children[ifIndex], () => {
      value = union(
        ...children.slice(0, ifIndex).map((child) => this.#expression(child)),
        ...children.slice(elseIndex + 1).map((child) => this.#expression(child)),
      );
    });
    return value;
  }

  #lambda(node: SyntaxNode, parameterFlow: Flow): Flow {
    const scope = new Scope('lambda', this.#scope);
    const params = node.getChild('ParamList');
    if (params) this.#parameters(params, scope, parameterFlow, false);
    const children = childrenOf(node);
    const colon = children.findIndex((child) => child.name === ':');
    const body = colon >= 0 ? children.slice(colon + 1).filter((child) => !child.type.isError) : [];
    const outer = this.#scope;
    const outerOrder = this.#orderScope;
    this.#scope = scope;
    this.#orderScope = null;
    let flow: Flow = NO_FLOW;
    try {
      this.#withControl('lambda', node, () => {
        flow = union(...body.map((child) => this.#expression(child)));
      });
    } finally {
      this.#scope = outer;
      this.#orderScope = outerOrder;
    }
    return flow;
  }

  /**
   * A comprehension or generator, given its children: the element, then `for targets in iterable` and `if`
   * clauses. The first iterable is evaluated once, outside; everything else repeats per element.
   */
  #comprehension(children: SyntaxNode[], at: SyntaxNode): Flow {
    const parts = children.filter(
      (child) =>
        !['[', ']', '{', '}', '(', ')', ':', ',', '*', '**', 'async'].includes(child.name) &&
        !child.type.isError,
    );
    const firstFor = parts.findIndex((child) => child.name === 'for');
    if (firstFor < 0) return union(...parts.map((child) => this.#expression(child)));
    const element = parts.slice(0, firstFor);
    const scope = new Scope('comprehension', this.#scope);
    const outer = this.#scope;
    let flow: Flow = NO_FLOW;
    let first = true;
    const conditions: Flow[] = [];
    const clauses = parts.slice(firstFor);
    const bindClause = (targets: SyntaxNode[], iterable: SyntaxNode | undefined) => {
      const iterableFlow = iterable ? this.#expression(iterable) : NO_FLOW;
      this.#scope = scope;
      for (const target of targets) this.#bindTarget(target, iterableFlow, scope);
    };
    try {
      let i = 0;
      // The first clause's iterable runs in the enclosing scope and control.
      while (i < clauses.length) {
        const clause = clauses[i];
        if (clause.name === 'for') {
          const inIndex = clauses.findIndex((child, k) => k > i && child.name === 'in');
          const targets = clauses.slice(i + 1, inIndex < 0 ? undefined : inIndex);
          const iterable = inIndex >= 0 ? clauses[inIndex + 1] : undefined;
          if (first) {
            bindClause(targets, iterable);
            first = false;
            this.#control.push({ kind: 'comprehension', ...this.position(at) });
          } else bindClause(targets, iterable);
          i = inIndex < 0 ? clauses.length : inIndex + 2;
        } else if (clause.name === 'if') {
          if (clauses[i + 1]) conditions.push(this.#expression(clauses[i + 1]));
          i += 2;
        } else i++;
      }
      this.#scope = scope;
      flow = union(...element.map((child) => this.#expression(child)), ...conditions);
    } finally {
      if (!first) this.#control.pop();
      this.#scope = outer;
    }
    return flow;
  }

  // ---- calls ----

  /** Identifies a call by where its method or function name starts (calls chained on one receiver share a start). */
  #callKey(call: SyntaxNode): number {
    const callee = call.firstChild;
    const last = callee?.name === 'MemberExpression' ? callee.lastChild : null;
    return last?.name === 'PropertyName' ? last.from : (callee?.from ?? call.from);
  }

  #argumentValue(group: ArgumentGroup, lambdaFlows: Flow): Flow {
    if (group.generator) return this.#comprehension(group.nodes, group.nodes[0]);
    const nodes = group.splat ? group.nodes.slice(1) : group.nodes;
    const outer = this.#lambdaFlows;
    this.#lambdaFlows = lambdaFlows;
    try {
      return union(...nodes.map((node) => this.#expression(node)));
    } finally {
      this.#lambdaFlows = outer;
    }
  }

  #call(node: SyntaxNode): Flow {
    const callee = node.firstChild;
    const argList = node.getChild('ArgList');
    if (!callee) return NO_FLOW;
    const calleeChildren = callee.name === 'MemberExpression' ? childrenOf(callee) : [];
    const methodName =
      calleeChildren.length >= 3 && calleeChildren[calleeChildren.length - 1].name === 'PropertyName'
        ? calleeChildren[calleeChildren.length - 1]
        : null;
    const receiverNode = methodName ? calleeChildren[0] : null;
    let spec: ModuleSpec | undefined;
    let nameNode: SyntaxNode;
    let receiverFlow: Flow = NO_FLOW;
    if (methodName && receiverNode) {
      receiverFlow = this.#expression(receiverNode);
      spec = this.registry.viperMethod(this.text(methodName));
      nameNode = methodName;
    } else if (callee.name === 'VariableName') {
      const name = this.text(callee);
      // A local variable or parameter of that name shadows the API function.
      const shadowed = this.#scope.lookup(name) !== NO_FLOW || this.#scope.owner.everBound.has(name);
      spec = shadowed ? undefined : this.registry.viperFunction(name);
      receiverFlow = this.#use(callee);
      nameNode = callee;
    } else {
      receiverFlow = this.#expression(callee);
      nameNode = callee;
    }
    const groups = argumentGroups(argList, this.source);
    // Arguments first, then lambdas: a lambda's parameters receive the elements of what the call walks
    // (the receiver of `xs.sort(key=...)`, the positional arguments of `sorted(xs, key=...)`).
    const isLambda = (group: ArgumentGroup) => group.nodes[0]?.name === 'LambdaExpression';
    const argumentFlows: Flow[] = groups.map((group) =>
      isLambda(group) ? NO_FLOW : this.#argumentValue(group, NO_FLOW),
    );
    const walked = union(receiverFlow, ...argumentFlows.filter((_, i) => !groups[i].keyword));
    groups.forEach((group, i) => {
      if (isLambda(group)) argumentFlows[i] = this.#argumentValue(group, walked);
    });
    const allArguments = union(...argumentFlows);
    if (!spec) {
      if (methodName && receiverNode && MUTATING_METHODS.has(this.text(methodName))) {
        const root =
          this.#rootVariable(receiverNode) ??
          (receiverNode.name === 'VariableName' ? this.text(receiverNode) : null);
        if (root) this.#bindName(root, union(this.#scope.lookup(root), allArguments), false);
      }
      return union(receiverFlow, allArguments);
    }
    return this.#apiStep(node, spec, nameNode, receiverNode, receiverFlow, groups, argumentFlows);
  }

  #apiStep(
    call: SyntaxNode,
    spec: ModuleSpec,
    nameNode: SyntaxNode,
    receiverNode: SyntaxNode | null,
    receiverFlow: Flow,
    groups: ArgumentGroup[],
    argumentFlows: Flow[],
  ): Flow {
    const key = this.#callKey(call);
    const deps = union(receiverFlow, ...argumentFlows);
    const existing = this.#stepsByCall.get(key);
    if (existing) {
      // A later walk of a loop body: only new dependencies can appear.
      const merged = new Set(existing.deps);
      for (const dep of deps) merged.add(dep);
      if (merged.size !== existing.deps.length) existing.deps = [...merged].sort((a, b) => a - b);
      return new Set([existing.id]);
    }
    const args = this.#stepArguments(spec, nameNode, groups);
    const { line, column } = this.position(nameNode);
    const control = this.#control.map((context) => ({ ...context }));
    const step: Step = {
      id: this.steps.length,
      output: null,
      module: spec.name,
      args,
      receiver: receiverNode ? this.#argument(receiverNode) : null,
      deps: [...deps].sort((a, b) => a - b),
      line,
      column,
      subTask: spec.subTask,
      distillable: spec.distillable,
      control,
      repeated: control.some((context) => REPEATING.has(context.kind)),
    };
    this.steps.push(step);
    this.#stepsByCall.set(key, step);
    return new Set([step.id]);
  }

  #stepArguments(
    spec: ModuleSpec,
    nameNode: SyntaxNode,
    groups: ArgumentGroup[],
  ): Record<string, StepArgument> {
    const args: Record<string, StepArgument> = {};
    const hasSplat = groups.some((group) => group.splat);
    let positional = 0;
    for (const group of groups) {
      if (group.splat) continue;
      let argSpec: ArgumentSpec | undefined;
      const at = group.keywordNode ?? group.nodes[0];
      if (group.keyword !== null) {
        argSpec = spec.args.find(
          (arg) => arg.name === group.keyword || arg.aliases?.includes(group.keyword!),
        );
        if (!argSpec) {
          const suggestion = closestName(
            group.keyword,
            spec.args.map((arg) => arg.name),
          );
          this.report(
            'error',
            'unknown-argument',
            at,
            `${spec.name} has no argument '${group.keyword}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`,
          );
          continue;
        }
      } else {
        argSpec = spec.args[positional++];
        if (!argSpec) {
          const count = spec.args.length;
          this.report(
            'error',
            'extra-argument',
            at,
            `${spec.name} takes ${count === 0 ? 'no arguments' : `at most ${count} argument${count === 1 ? '' : 's'}`}, but more are given`,
          );
          continue;
        }
      }
      if (Object.prototype.hasOwnProperty.call(args, argSpec.name)) {
        this.report(
          'error',
          'duplicate-argument',
          at,
          `${spec.name} is given the argument '${argSpec.name}' twice`,
        );
        continue;
      }
      const value = group.generator ? this.#expressionArgument(group.nodes) : this.#argument(group.nodes[0]);
      args[argSpec.name] = value;
      if (value.kind === 'literal' && value.value !== null && !literalFits(value.value, argSpec)) {
        this.report(
          'warning',
          'argument-type',
          at,
          `argument '${argSpec.name}' of ${spec.name} expects ${argSpec.type === 'text' ? 'a string' : argSpec.type}, but is ${JSON.stringify(value.value)}`,
        );
      }
    }
    if (!hasSplat) {
      for (const argSpec of spec.args) {
        if (argSpec.required && !Object.prototype.hasOwnProperty.call(args, argSpec.name)) {
          this.report(
            'error',
            'missing-argument',
            nameNode,
            `${spec.name} needs the argument '${argSpec.name}'`,
          );
        }
      }
    }
    return args;
  }

  /** How an argument (or receiver) is written: a literal when it is one, a variable, or an expression. */
  #argument(node: SyntaxNode): StepArgument {
    const literal = this.#literal(node);
    if (literal !== undefined) return { kind: 'literal', value: literal };
    if (node.name === 'VariableName') return { kind: 'variable', name: this.text(node) };
    return this.#expressionArgument([node]);
  }

  #expressionArgument(nodes: SyntaxNode[]): StepArgument {
    const variables: string[] = [];
    const visit = (node: SyntaxNode) => {
      if (node.name === 'VariableName') {
        const parent = node.parent;
        const isKeyword = parent?.name === 'ArgList' && node.nextSibling?.name === 'AssignOp';
        const isParameter = parent?.name === 'ParamList';
        const name = this.text(node);
        if (!isKeyword && !isParameter && !variables.includes(name)) variables.push(name);
        return;
      }
      for (let child = node.firstChild; child; child = child.nextSibling) visit(child);
    };
    nodes.forEach(visit);
    const source = this.source.slice(nodes[0].from, nodes[nodes.length - 1].to);
    return { kind: 'expression', source, variables };
  }

  #literal(node: SyntaxNode): LiteralValue | undefined {
    switch (node.name) {
      case 'String': {
        const decoded = decodePythonString(this.text(node));
        if (decoded.error) {
          this.report('error', 'malformed-literal', node, `malformed string literal: ${decoded.error}`);
        }
        return decoded.value;
      }
      case 'ContinuedString': {
        let value = '';
        for (let child = node.firstChild; child; child = child.nextSibling) {
          if (child.name !== 'String') return undefined;
          value += decodePythonString(this.text(child)).value;
        }
        return value;
      }
      case 'Number':
        return parsePythonNumber(this.text(node));
      case 'Boolean':
        return this.text(node) === 'True';
      case 'None':
        return null;
      case 'UnaryExpression': {
        const children = childrenOf(node);
        if (children.length === 2 && children[0].name === 'ArithOp' && children[1].name === 'Number') {
          return parsePythonNumber(this.text(children[0]) + this.text(children[1]));
        }
        return undefined;
      }
      case 'ParenthesizedExpression': {
        const inner = childrenOf(node).filter((child) => child.name !== '(' && child.name !== ')');
        return inner.length === 1 ? this.#literal(inner[0]) : undefined;
      }
      case 'ArrayExpression':
      case 'TupleExpression': {
        const values: LiteralValue[] = [];
        for (let child = node.firstChild; child; child = child.nextSibling) {
          if (['[', ']', '(', ')', ','].includes(child.name)) continue;
          const value = this.#literal(child);
          if (value === undefined) return undefined;
          values.push(value);
        }
        return values;
      }
      default:
        return undefined;
    }
  }
}

function literalFits(value: LiteralValue, spec: ArgumentSpec): boolean {
  switch (spec.type) {
    case 'text':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean' || typeof value === 'number';
    case 'list':
      return Array.isArray(value);
    case 'any':
      return true;
    default:
      return false;
  }
}

/** Parses one ViperGPT program. Never throws on any string: problems become diagnostics. */
export function parseViperProgram(source: string, options: ViperParseOptions = {}): StepGraph {
  if (typeof source !== 'string') throw argError('ERR_SDVP_ARG', 'source', 'a string', source);
  return parseViperTree(source, pythonParser.parse(source), new LineIndex(source), options);
}

/**
 * The step graph of a program already parsed with @lezer/python (the interpreter parses once and shares the tree).
 * Never throws.
 */
export function parseViperTree(
  source: string,
  tree: Tree,
  lines: LineIndex,
  options: ViperParseOptions = {},
): StepGraph {
  const analyzer = new ViperAnalyzer(
    source,
    tree,
    options.registry ?? defaultModuleRegistry(),
    options,
    lines,
  );
  try {
    analyzer.analyze();
    return {
      framework: 'viper',
      steps: analyzer.steps,
      diagnostics: sortDiagnostics(analyzer.diagnostics),
      inputs: analyzer.inputs,
    };
  } catch (error) {
    // Recursion over the syntax tree can exhaust the stack on absurdly nested input: say so, do not throw.
    const diagnostic =
      error instanceof RangeError
        ? makeDiagnostic(
            'error',
            'nesting-too-deep',
            1,
            1,
            'the program nests expressions too deeply to analyse',
          )
        : makeDiagnostic(
            'error',
            'internal',
            1,
            1,
            `internal error in the ViperGPT parser: ${(error as Error)?.message ?? String(error)}`,
          );
    return {
      framework: 'viper',
      steps: analyzer.steps,
      inputs: analyzer.inputs,
      diagnostics: sortDiagnostics([...analyzer.diagnostics, diagnostic]),
    };
  }
}
