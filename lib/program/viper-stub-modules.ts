// Deterministic stand-ins for ViperGPT's neural modules, so a program's pure-Python logic can run without models.

import type { Box } from './image';
import type { ViperModules } from './viper-modules';

/** The fixed answer of the stub language-model modules. */
export const STUB_LLM_ANSWER = 'stub answer';

/**
 * Stub modules (`sdvp run --modules stub`). They look at nothing but image sizes and always answer the same way:
 * - find: two boxes, the top-left and the bottom-right quarter of the image (one box, the whole image, when the
 *   image is narrower or shorter than 2 pixels);
 * - simple_query: 'yes'; verify_property: true; best_text_match and best_image_match: the first option;
 * - compute_depth: 1.0 for every patch;
 * - llm_query and process_guesses: 'stub answer'; select_answer: the first option when the options are strings,
 *   else 'stub answer';
 * - exists is left out, so it is composed from find and simple_query as ViperGPT does (true whenever find finds).
 */
export function createStubViperModules(): ViperModules {
  return {
    find: ({ image }) => {
      const { width, height } = image;
      if (width < 2 || height < 2) return [[0, 0, width, height] as Box];
      const midX = Math.floor(width / 2);
      const midY = Math.floor(height / 2);
      return [
        [0, 0, midX, midY],
        [midX, midY, width, height],
      ] as Box[];
    },
    simple_query: () => 'yes',
    verify_property: () => true,
    best_text_match: () => 0,
    compute_depth: () => 1,
    llm_query: () => STUB_LLM_ANSWER,
    process_guesses: () => STUB_LLM_ANSWER,
    best_image_match: () => 0,
    select_answer: ({ options }) =>
      Array.isArray(options) && typeof options[0] === 'string' ? options[0] : STUB_LLM_ANSWER,
  };
}
