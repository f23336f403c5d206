// The fenced code blocks of a Markdown document, in document order, so the README test can run
// every example. Only backtick fences are recognised (the README uses nothing else); a fence may be
// indented (a block inside a list item), and that indent is taken off every line of its body.

export interface FencedBlock {
  /** The info string's first word ("sh", "json", "text"); "" for an untagged fence. */
  lang: string;
  body: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
}

export function fencedBlocks(markdown: string): FencedBlock[] {
  const lines = markdown.split('\n');
  const blocks: FencedBlock[] = [];
  let open: { indent: number; fence: string; lang: string; line: number; body: string[] } | null = null;
  for (const [i, text] of lines.entries()) {
    if (open === null) {
      const m = /^( *)(`{3,})([^`]*)$/.exec(text);
      if (m) open = { indent: m[1]!.length, fence: m[2]!, lang: m[3]!.trim().split(/\s+/)[0] ?? '', line: i + 1, body: [] };
      continue;
    }
    // A closing fence is at least as long as the opening one and carries no info string.
    const close = /^ *(`{3,})\s*$/.exec(text);
    if (close && close[1]!.length >= open.fence.length) {
      blocks.push({ lang: open.lang, body: open.body.join('\n') + '\n', line: open.line });
      open = null;
      continue;
    }
    const strip = Math.min(open.indent, /^ */.exec(text)![0].length);
    open.body.push(text.slice(strip));
  }
  if (open !== null) throw new Error(`README.md:${open.line}: a fenced block is never closed`);
  return blocks;
}
