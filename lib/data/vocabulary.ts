// The student's vocabularies for the digit benchmark: every word its sub-module calls use (VQA questions,
// LOC phrases) and every answer a VQA call can expect.

import { splitWords } from '../models/tokenizer';
import { COLOR_QUESTION, COUNT_QUESTION, IDENTITY_QUESTION, objectPhrase, questionText } from './phrases';
import { COLOR_NAMES } from './scene';

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Token vocabulary: `<pad>`, `<unk>`, then the words of the benchmark's sub-questions and phrases. */
export function digitTokenVocab(): string[] {
  const texts = [IDENTITY_QUESTION, COLOR_QUESTION, COUNT_QUESTION, objectPhrase({})];
  for (const color of COLOR_NAMES) {
    texts.push(
      questionText({ kind: 'count', color }),
      questionText({ kind: 'exists', color }),
      objectPhrase({ color }),
    );
  }
  for (const digit of DIGITS) texts.push(objectPhrase({ digit: Number(digit) }));
  const words = new Set<string>();
  for (const text of texts) for (const word of splitWords(text)) words.add(word);
  return ['<pad>', '<unk>', ...[...words].sort()];
}

/** Answer vocabulary: digits (also counts), yes/no, colour names. */
export function digitAnswerVocab(): string[] {
  return [...DIGITS, 'yes', 'no', ...COLOR_NAMES];
}
