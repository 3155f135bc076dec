// One entry point for both frameworks: detects VisProg or ViperGPT source and parses it into a step graph.

import { argError } from '../errors/sdvp-error';
import type { Framework, StepGraph } from './step-graph';
import { type ViperParseOptions, parseViperProgram } from './viper-parser';
import { type VisProgParseOptions, parseVisProgProgram } from './visprog-parser';

export interface DecomposeOptions extends VisProgParseOptions, ViperParseOptions {
  /** The program style; detected from the text when absent. */
  framework?: Framework;
}

const PYTHON_STATEMENT = /^[ \t]*(?:async[ \t]+def|def|class|import|from|for|while|if|return|with|try)\b/m;

/**
 * Guesses the framework of a program: Python statements or the ImagePatch / VideoSegment API mean ViperGPT;
 * anything else is read as VisProg's one-step-per-line form.
 */
export function detectFramework(source: string): Framework {
  if (typeof source !== 'string') throw argError('ERR_SDVP_ARG', 'source', 'a string', source);
  if (PYTHON_STATEMENT.test(source)) return 'viper';
  if (/\b(?:ImagePatch|VideoSegment)\s*\(/.test(source)) return 'viper';
  return 'visprog';
}

/** Parses a VisProg or ViperGPT program into its step graph. Never throws on any string input. */
export function decomposeProgram(source: string, options: DecomposeOptions = {}): StepGraph {
  const framework = options.framework ?? detectFramework(source);
  if (framework !== 'visprog' && framework !== 'viper') {
    throw argError('ERR_SDVP_OPTION', 'options.framework', "'visprog' or 'viper'", framework);
  }
  if (framework === 'viper') {
    return parseViperProgram(source, {
      registry: options.registry,
      entryPoint: options.entryPoint,
      globals: options.globals,
      snippetInputs: options.snippetInputs,
    });
  }
  return parseVisProgProgram(source, options);
}
