// Strict JSON (SECURITY.md rows 6 and 13): one signed document must mean one thing to every
// reader, so anything JSON.parse would read "its own way" is refused, and size is capped first.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStrictJson, type Json } from '../../core/io/strict-json.ts';
import { assertCode } from '../helpers/assert-code.ts';

const CAP = 64 * 1024;
const parse = (text: string | Uint8Array, cap = CAP) => plain(parseStrictJson(text, cap, 'doc'));

/**
 * The reader builds null-prototype objects (so "__proto__" stays data); uvu's deep equality also
 * compares constructors, so values are copied into ordinary objects before comparing them.
 * defineProperty keeps a "__proto__" key an own property in the copy too.
 */
function plain(value: Json): Json {
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== 'object') return value;
  const out: { [key: string]: Json } = {};
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, { value: plain(value[key]!), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const duplicates = suite('refuses duplicate keys');

duplicates('refuses a duplicate "version" key that JSON.parse would resolve to the last value', () => {
  const text = '{"version": 1, "version": 2}';
  assert.equal(JSON.parse(text), { version: 2 }); // what a lax reader would see
  const err = assertCode(() => parse(text), 'ERR_JSON');
  assert.match(err.message, /duplicate key "version"/);
});

duplicates('refuses a duplicate key in a nested object', () => {
  assertCode(() => parse('{"a": [{"b": 1, "c": 2, "b": 1}]}'), 'ERR_JSON');
});

duplicates('refuses keys that differ only in escaping but decode to the same string', () => {
  assertCode(() => parse('{"ab": 1, "a\\u0062": 2}'), 'ERR_JSON');
});

duplicates('accepts the same key name in sibling objects', () => {
  assert.equal(parse('[{"a": 1}, {"a": 2}]'), [{ a: 1 }, { a: 2 }]);
});

duplicates.run();

const numbers = suite('accepts only safe integers');

numbers('accepts 2^53 - 1 and -(2^53 - 1) exactly', () => {
  assert.equal(parse('[9007199254740991, -9007199254740991, 0]'), [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0]);
});

numbers('refuses 2^53 + 1, which JSON.parse silently rounds to 2^53', () => {
  assert.is(JSON.parse('9007199254740993'), 9007199254740992);
  assertCode(() => parse('{"sequence": 9007199254740993}'), 'ERR_JSON');
});

numbers('refuses 2^53 itself, the first integer that is not safe', () => {
  assertCode(() => parse('9007199254740992'), 'ERR_JSON');
});

numbers('refuses an integer of 500 digits', () => {
  assertCode(() => parse('1' + '0'.repeat(499)), 'ERR_JSON');
});

numbers('refuses floats, exponents and leading zeros', () => {
  for (const text of ['1.5', '1.0', '1e3', '1E+2', '-0.5', '01', '-', '+1', '.5', 'NaN', 'Infinity']) {
    assertCode(() => parse(text), 'ERR_JSON');
  }
});

numbers.run();

const size = suite('refuses documents over the size cap before parsing them');

size('accepts a document of exactly the cap and refuses one byte more', () => {
  const body = '"' + 'x'.repeat(98) + '"'; // 100 bytes
  assert.is(parse(body, 100), 'x'.repeat(98));
  assertCode(() => parse(body + ' ', 100), 'ERR_TOO_LARGE');
});

size('counts UTF-8 bytes, not UTF-16 code units, for string input', () => {
  const body = '"' + 'é'.repeat(40) + '"'; // 42 chars, 82 bytes
  assertCode(() => parse(body, 60), 'ERR_TOO_LARGE');
  assert.is(parse(body, 82), 'é'.repeat(40));
});

size('refuses an over-cap document even when it is not JSON at all', () => {
  assertCode(() => parse(new Uint8Array(2048).fill(0xff), 1024), 'ERR_TOO_LARGE');
});

size.run();

const encoding = suite('refuses bytes that are not valid UTF-8');

encoding('refuses a lone continuation byte inside a string', () => {
  const bytes = Buffer.concat([Buffer.from('{"a": "'), Buffer.from([0x80]), Buffer.from('"}')]);
  assertCode(() => parse(bytes), 'ERR_JSON');
});

encoding('refuses an overlong encoding of "/" (0xc0 0xaf)', () => {
  const bytes = Buffer.concat([Buffer.from('"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"')]);
  assertCode(() => parse(bytes), 'ERR_JSON');
});

encoding('refuses an encoded UTF-16 surrogate (0xed 0xa0 0x80)', () => {
  const bytes = Buffer.concat([Buffer.from('"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"')]);
  assertCode(() => parse(bytes), 'ERR_JSON');
});

encoding('accepts valid multi-byte UTF-8', () => {
  assert.equal(parse(Buffer.from('{"name": "Grüße ✓ 🚀"}')), { name: 'Grüße ✓ 🚀' });
});

encoding.run();

const syntax = suite('refuses anything but one complete JSON value');

syntax('refuses trailing data after the value', () => {
  for (const text of ['{} {}', '{"a":1}x', '[1]]', 'true false', '1 2', '{"a":1},']) {
    const err = assertCode(() => parse(text), 'ERR_JSON');
    assert.ok(err.message.length > 0);
  }
});

syntax('names trailing data in the message', () => {
  assert.match(assertCode(() => parse('{} {}'), 'ERR_JSON').message, /trailing data/);
});

syntax('accepts surrounding whitespace', () => {
  assert.equal(parse(' \n\t{"a": [1, 2]}\r\n '), { a: [1, 2] });
});

syntax('refuses empty input, truncation and JSON extensions', () => {
  const cases = ['', '   ', '{', '{"a":', '{"a":1', '[1,', '"abc', '{"a":1,}', '[1,]', "{'a':1}", '{a:1}', '// c\n{}', 'tru', 'nul', '"a\nb"', '"\\x41"', '"\\'];
  for (const text of cases) assertCode(() => parse(text), 'ERR_JSON');
});

syntax.run();

const depth = suite('refuses deep nesting');

depth('accepts 64 levels of arrays', () => {
  assert.ok(Array.isArray(parse('['.repeat(64) + ']'.repeat(64))));
});

depth('refuses 66 levels of arrays', () => {
  const err = assertCode(() => parse('['.repeat(66) + ']'.repeat(66)), 'ERR_JSON');
  assert.match(err.message, /nesting too deep/);
});

depth('refuses 100,000 levels of mixed nesting without overflowing the stack', () => {
  const text = '{"a":['.repeat(50_000) + ']}'.repeat(50_000);
  const err = assertCode(() => parse(text, 1 << 20), 'ERR_JSON');
  assert.match(err.message, /nesting too deep/);
});

depth.run();

const proto = suite('treats "__proto__" as data, never as a prototype');

proto('keeps "__proto__" as an own key and leaves Object.prototype alone', () => {
  const doc = parseStrictJson('{"__proto__": {"polluted": true}, "a": 1}', CAP, 'doc') as Record<string, unknown>;
  assert.ok(Object.prototype.hasOwnProperty.call(doc, '__proto__'));
  assert.equal(Object.keys(doc), ['__proto__', 'a']);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.is((Object.prototype as Record<string, unknown>).polluted, undefined);
  assert.is((doc as { polluted?: unknown }).polluted, undefined);
  assert.is(Object.getPrototypeOf(doc), null);
  assert.equal(plain(Object.getOwnPropertyDescriptor(doc, '__proto__')?.value as Json), { polluted: true });
});

proto('builds objects with a null prototype at every level', () => {
  const doc = parseStrictJson('{"a": {"b": [{}]}}', CAP, 'doc') as { a: { b: object[] } };
  assert.is(Object.getPrototypeOf(doc), null);
  assert.is(Object.getPrototypeOf(doc.a), null);
  assert.is(Object.getPrototypeOf(doc.a.b[0]), null);
});

proto('does not let "constructor" or "prototype" keys reach real prototypes', () => {
  const doc = parse('{"constructor": {"prototype": {"polluted": true}}}') as Record<string, unknown>;
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.keys(doc), ['constructor']);
});

proto('refuses a duplicate "__proto__" key like any other duplicate', () => {
  assertCode(() => parse('{"__proto__": 1, "__proto__": 2}'), 'ERR_JSON');
});

proto.run();

const roundTrip = suite('reads valid documents exactly as JSON.parse does');

roundTrip('round-trips a root-like document through JSON.stringify', () => {
  const doc = {
    type: 'ferry/root',
    version: 3,
    created: '2024-01-02T03:04:05.000Z',
    keys: { ab: { keytype: 'ed25519', public: 'cd' } },
    roles: { root: { keyids: ['ab'], threshold: 1 }, release: { keyids: [], threshold: 1 } },
    flags: [true, false, null, -7, 0, ''],
    text: 'quote " backslash \\ newline \n tab \t unicode \u00e9 \u2028 emoji 🚀',
  };
  for (const text of [JSON.stringify(doc), JSON.stringify(doc, null, 2)]) {
    const parsed = parse(text);
    assert.equal(parsed, JSON.parse(text));
    assert.is(JSON.stringify(parsed), JSON.stringify(doc));
  }
});

roundTrip('reads the same document from a string and from its UTF-8 bytes', () => {
  const text = '{"a":"ü","b":[1,{"c":null}]}';
  assert.equal(parse(Buffer.from(text)), parse(text));
  assert.equal(parse(new Uint8Array(Buffer.from(text))), { a: 'ü', b: [1, { c: null }] });
});

roundTrip('reads every JSON scalar at the top level', () => {
  assert.is(parse('true'), true);
  assert.is(parse('false'), false);
  assert.is(parse('null'), null);
  assert.is(parse('42'), 42);
  assert.is(parse('"s"'), 's');
  assert.equal(parse('{}'), {});
  assert.equal(parse('[]'), []);
});

roundTrip.run();
