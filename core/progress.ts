// Progress of long steps, for whoever shows it (the CLI draws bars or lines; nothing else needs
// it). `done`/`total` are bytes for a download, and 0/1 → 1/1 for staging (start and end only).

export interface ProgressEvent {
  step: 'download' | 'stage';
  /** The artifact's path for a download, the version for staging. */
  label: string;
  /** The source's name while downloading; null when not known (staging, a cached artifact). */
  source: string | null;
  done: number;
  total: number;
}

export type ProgressSink = (e: ProgressEvent) => void;
