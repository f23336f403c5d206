// A strict JSON reader for signed metadata. JSON.parse keeps the last of duplicate keys and
// silently rounds integers above 2^53, so two parsers can read one signed document differently
// (SECURITY.md row 13). This reader refuses both, and refuses documents over a size cap before
// looking at them (row 6).

import { FerryError } from '../errors.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function parseStrictJson(bytes: Uint8Array | string, maxBytes: number, what: string): Json {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${what} is ${size} bytes, over the ${maxBytes}-byte cap`);
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw new FerryError('ERR_JSON', `${what} is not valid UTF-8`, { cause });
  }
  const parser = new Parser(text, what);
  const value = parser.value(0);
  parser.end();
  return value;
}

const MAX_DEPTH = 64;

class Parser {
  private pos = 0;
  constructor(private readonly text: string, private readonly what: string) {}

  fail(why: string): never {
    throw new FerryError('ERR_JSON', `${this.what}: ${why} at offset ${this.pos}`);
  }

  private ws(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text[this.pos]!)) this.pos++;
  }

  end(): void {
    this.ws();
    if (this.pos !== this.text.length) this.fail('trailing data');
  }

  value(depth: number): Json {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const c = this.text[this.pos];
    switch (c) {
      case '{': return this.object(depth);
      case '[': return this.array(depth);
      case '"': return this.string();
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'n': return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail('unexpected character');
    }
  }

  private literal<T extends Json>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail('unexpected token');
    this.pos += word.length;
    return value;
  }

  private object(depth: number): { [key: string]: Json } {
    // A null-prototype object: a "__proto__" key is data, never a prototype change.
    const out: { [key: string]: Json } = Object.create(null);
    this.pos++;
    this.ws();
    if (this.text[this.pos] === '}') { this.pos++; return out; }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail(`duplicate key "${key}"`);
      this.ws();
      if (this.text[this.pos] !== ':') this.fail('expected ":"');
      this.pos++;
      out[key] = this.value(depth + 1);
      this.ws();
      const c = this.text[this.pos++];
      if (c === '}') return out;
      if (c !== ',') this.fail('expected "," or "}"');
    }
  }

  private array(depth: number): Json[] {
    const out: Json[] = [];
    this.pos++;
    this.ws();
    if (this.text[this.pos] === ']') { this.pos++; return out; }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos++];
      if (c === ']') return out;
      if (c !== ',') this.fail('expected "," or "]"');
    }
  }

  private string(): string {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') break;
      if (c < ' ') this.fail('control character in string');
      if (c === '\\') this.pos++;
      this.pos++;
    }
    this.pos++;
    try {
      return JSON.parse(this.text.slice(start, this.pos)) as string;
    } catch {
      return this.fail('bad string escape');
    }
  }

  private number(): number {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (!m) return this.fail('bad number');
    this.pos += m[0].length;
    const n = Number(m[0]);
    // Every number in ferry's formats is a count, size or sequence: a safe integer.
    if (m[2] !== undefined || m[3] !== undefined || !Number.isSafeInteger(n)) this.fail(`number ${m[0]} is not a safe integer`);
    return n;
  }
}
