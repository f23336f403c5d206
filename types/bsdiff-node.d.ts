// bsdiff-node ships no types. Only the promise form is used: the callback reports progress.
declare module 'bsdiff-node' {
  export function diff(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  export function patch(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  const bsdiff: { diff: typeof diff; patch: typeof patch };
  export default bsdiff;
}
