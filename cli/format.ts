// Small formatting and default helpers shared by commands.

/** The device's platform/arch names as Node reports them (linux, x64, arm64, …). */
export function defaultPlatform(): string {
  return process.platform;
}

export function defaultArch(): string {
  return process.arch;
}

export { formatBytes } from '../core/io/format-bytes.ts';
