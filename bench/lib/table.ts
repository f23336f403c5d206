// Plain-text tables for bench output: left-aligned text, right-aligned numbers, one header rule.

export type Cell = string | number;

export interface Column {
  title: string;
  align?: 'left' | 'right';
}

export function formatTable(columns: Column[], rows: Cell[][]): string {
  const text = rows.map((r) => columns.map((_, i) => String(r[i] ?? '')));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (columns[i]!.align === 'right' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

export const fmt = {
  bytes: (n: number) => n.toLocaleString('en-US'),
  mb: (n: number) => (n / 1e6).toFixed(2),
  seconds: (s: number) => (s < 10 ? s.toFixed(2) : s.toFixed(1)),
  mib: (kib: number) => (kib / 1024).toFixed(0),
  ratio: (r: number) => `${r.toFixed(2)}x`,
};
