// The arguments of a Python call in the @lezer/python tree, grouped as written: positional, keyword, splat, generator.

import type { SyntaxNode } from '@lezer/common';

/** One argument of a call as written. */
export interface ArgumentGroup {
  /** The argument's value nodes (for a keyword argument, what follows `name=`). */
  nodes: SyntaxNode[];
  keyword: string | null;
  keywordNode: SyntaxNode | null;
  /** `*args` or `**kwargs`. */
  splat: boolean;
  /** A bare generator expression (`any(x for x in xs)`). */
  generator: boolean;
}

/** Splits an ArgList at its commas (comments and error nodes skipped). */
export function argumentGroups(argList: SyntaxNode | null, source: string): ArgumentGroup[] {
  const groups: ArgumentGroup[] = [];
  if (!argList) return groups;
  let current: SyntaxNode[] = [];
  const flush = () => {
    if (current.length === 0) return;
    const isKeyword =
      current.length >= 3 && current[0].name === 'VariableName' && current[1].name === 'AssignOp';
    groups.push({
      nodes: isKeyword ? current.slice(2) : current,
      keyword: isKeyword ? source.slice(current[0].from, current[0].to) : null,
      keywordNode: isKeyword ? current[0] : null,
      splat: current[0].name === '*' || current[0].name === '**',
      generator: current.some((node) => node.name === 'for'),
    });
    current = [];
  };
  for (let child = argList.firstChild; child; child = child.nextSibling) {
    if (child.name === '(' || child.name === ')' || child.name === 'Comment' || child.type.isError) continue;
    if (child.name === ',') flush();
    else current.push(child);
  }
  flush();
  return groups;
}
