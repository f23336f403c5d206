// Untrusted text made safe for a terminal or a log line (SECURITY.md row 14). Archive entry
// names, file names on a stick, server answers and metadata fields can hold control characters:
// ESC starts a terminal sequence (erase the line, move the cursor, retitle the window), CR and LF
// forge whole lines, C1 codes are 8-bit escapes, and bidi overrides show text in another order
// than it is. Each such character is shown as an escape instead (\x1b, \x0d, \u{202e}), so a
// message stays one line that says exactly what was received. Printable text, including any
// other Unicode, is kept as it is. A backslash is kept too: an escape and a name that spells one
// look alike, which can confuse but never move the cursor or forge a line.

/**
 * C0 controls (tab, CR, LF, ESC, …), DEL, C1 controls, the bidi marks, embeddings, overrides and
 * isolates, the Unicode line and paragraph separators, and lone surrogates (not text at all).
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** What JSON.stringify leaves raw inside strings: DEL, C1, bidi and separators (its newlines and indents are structure). */
const UNPRINTABLE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escape(char: string): string {
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every control, bidi and separator character written as an escape: one safe line. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escape);
}

/**
 * JSON text for a terminal: JSON.stringify already escapes C0 controls and lone surrogates; this
 * also writes DEL, C1, bidi and separator characters as \uXXXX. They can only occur inside JSON
 * strings, so the document decodes to exactly the same value.
 */
export function printableJson(value: unknown, indent?: number): string {
  return String(JSON.stringify(value, null, indent)).replace(UNPRINTABLE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
