// `ferry/plugins/agent`: the Agent (the daemon behind `ferry agent`) and the types its options take.
// The same Agent is exported from `ferry`.

export { Agent, type AgentOptions, type AgentStopped, createAgentLog, type AgentLog, type AppOptions, type SpawnFn, type AttemptResult, PEER_WAKE_MS, type SleepFn, type ShareOptions } from './agent.ts';
