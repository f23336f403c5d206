// `ferry/plugins/self`: the self-update library (self-update.ts) for an agent that updates itself
// through its self home: prepare, switch, restart, confirm. SelfUpdate and RESTART_EXIT_CODE are
// also exported from `ferry`.

export {
  SelfUpdate,
  RESTART_EXIT_CODE,
  DEFAULT_TRIES,
  DEFAULT_CONFIRM_WITHIN_MS,
  type SelfUpdateOptions,
  type PrepareResult,
  type ConfirmResult,
  type SelfPhase,
} from './self-update.ts';
export { GracefulSelfUpdate, type GracefulSelfUpdateOptions } from './graceful-self-update.ts';
