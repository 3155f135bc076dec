// Number words to numbers with the semantics of the word2number package (w2n.word_to_num), which ViperGPT's
// exists() and coerce_to_numeric() rely on: "seventeen" -> 17, "two point five" -> 2.5, "3" -> 3.

import { PythonError } from './python-errors';

const NUMBER_WORDS: ReadonlyMap<string, number> = new Map([
  ['zero', 0],
  ['one', 1],
  ['two', 2],
  ['three', 3],
  ['four', 4],
  ['five', 5],
  ['six', 6],
  ['seven', 7],
  ['eight', 8],
  ['nine', 9],
  ['ten', 10],
  ['eleven', 11],
  ['twelve', 12],
  ['thirteen', 13],
  ['fourteen', 14],
  ['fifteen', 15],
  ['sixteen', 16],
  ['seventeen', 17],
  ['eighteen', 18],
  ['nineteen', 19],
  ['twenty', 20],
  ['thirty', 30],
  ['forty', 40],
  ['fifty', 50],
  ['sixty', 60],
  ['seventy', 70],
  ['eighty', 80],
  ['ninety', 90],
  ['hundred', 100],
  ['thousand', 1000],
  ['million', 1_000_000],
  ['billion', 1_000_000_000],
]);

const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

const INVALID =
  'No valid number words found! Please enter a valid number word (eg. two million twenty three thousand and forty nine)';
const REDUNDANT =
  'Redundant number word! Please enter a valid number word (eg. two million twenty three thousand and forty nine)';
const MALFORMED =
  'Malformed number! Please enter a valid number word (eg. two million twenty three thousand and forty nine)';

/** The value of a run of words before a multiplier ("two hundred fifty" -> 250), as word2number combines them. */
function groupValue(words: readonly string[]): number {
  const values = words.map((word) => NUMBER_WORDS.get(word)!);
  switch (values.length) {
    case 0:
      // word2number indexes an empty list here ("thousand five"): Python's IndexError.
      throw new PythonError('IndexError', 'list index out of range');
    case 4:
      return values[0] * values[1] + values[2] + values[3];
    case 3:
      return values[0] * values[1] + values[2];
    case 2:
      return values.includes(100) ? values[0] * values[1] : values[0] + values[1];
    default:
      return values[0];
  }
}

/** The fraction after "point", or null when a word is not a digit (word2number then adds an int 0). */
function decimalValue(words: readonly string[]): number | null {
  let digits = '';
  for (const word of words) {
    const digit = DIGIT_WORDS.indexOf(word);
    if (digit < 0) return null;
    digits += String(digit);
  }
  return Number(`0.${digits}`);
}

/**
 * word2number's word_to_num: an int (bigint) for whole numbers, a float with "point"; Python's ValueError when the
 * text has no number words or repeats or misorders thousand / million / billion.
 */
export function wordsToNumber(text: string): bigint | number {
  const sentence = text.replace(/-/g, ' ').toLowerCase();
  if (/^[0-9]+$/.test(sentence)) return BigInt(sentence);
  const words = sentence
    .trim()
    .split(/\s+/)
    .filter((word) => word === 'point' || NUMBER_WORDS.has(word));
  if (words.length === 0) throw new PythonError('ValueError', INVALID);
  for (const word of ['thousand', 'million', 'billion', 'point']) {
    if (words.filter((candidate) => candidate === word).length > 1)
      throw new PythonError('ValueError', REDUNDANT);
  }
  let whole = words;
  let decimals: string[] = [];
  const point = words.indexOf('point');
  if (point >= 0) {
    decimals = words.slice(point + 1);
    whole = words.slice(0, point);
  }
  const billion = whole.indexOf('billion');
  const million = whole.indexOf('million');
  const thousand = whole.indexOf('thousand');
  if ((thousand > -1 && (thousand < million || thousand < billion)) || (million > -1 && million < billion)) {
    throw new PythonError('ValueError', MALFORMED);
  }
  let total = 0;
  if (whole.length === 1) total += NUMBER_WORDS.get(whole[0])!;
  else if (whole.length > 1) {
    if (billion > -1) total += groupValue(whole.slice(0, billion)) * 1_000_000_000;
    if (million > -1) total += groupValue(whole.slice(billion > -1 ? billion + 1 : 0, million)) * 1_000_000;
    if (thousand > -1) {
      const from = million > -1 ? million + 1 : billion > -1 ? billion + 1 : 0;
      total += groupValue(whole.slice(from, thousand)) * 1000;
    }
    let hundreds = 0;
    const last = whole.length - 1;
    if (thousand > -1 && thousand !== last) hundreds = groupValue(whole.slice(thousand + 1));
    else if (million > -1 && million !== last && thousand !== last)
      hundreds = groupValue(whole.slice(million + 1));
    else if (billion > -1 && billion !== last) hundreds = groupValue(whole.slice(billion + 1));
    else if (thousand === -1 && million === -1 && billion === -1) hundreds = groupValue(whole);
    total += hundreds;
  }
  const fraction = decimals.length > 0 ? decimalValue(decimals) : null;
  return fraction === null ? BigInt(total) : total + fraction;
}
