// Small formatting and default helpers shared by commands.

/** The device's platform/arch names as Node reports them (linux, x64, arm64, …). */
export function defaultPlatform(): string {
  return process.platform;
}

export function defaultArch(): string {
  return process.arch;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
