// Durations as people write them on a command line: "30d", "12h", "90m", "45s", "250ms".

import { FerryError } from '../errors.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDurationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new FerryError('ERR_USAGE', `"${text}" is not a duration like 30d, 12h, 90m, 45s or 250ms`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
