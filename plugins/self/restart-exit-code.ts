// The exit code that asks the launcher to start ferry again (ARCHITECTURE.md "Self-update"):
// 75, EX_TEMPFAIL in sysexits.h, "try again". The launcher script loops on it, the keeper
// (plugins/self/launch.ts) returns it for an agent that began a self-update or failed its trial,
// and the agent exits with it to hand over to the next version.

export const RESTART_EXIT_CODE = 75;
