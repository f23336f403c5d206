// Progress of long steps, for whoever shows it (the CLI draws bars or lines; nothing else needs
// it). `done`/`total` are bytes: of the artifact for a download, of the new tree's files written
// for staging (extracting a full artifact) and patching (building it from a delta or a chain).

export interface ProgressEvent {
  step: 'download' | 'patch' | 'stage';
  /** The artifact's path for a download; for staging the version, for patching "from → to". */
  label: string;
  /** The source's name while downloading; null when not known (staging, a cached artifact). */
  source: string | null;
  done: number;
  total: number;
}

export type ProgressSink = (e: ProgressEvent) => void;
