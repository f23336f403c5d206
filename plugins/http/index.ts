// `ferry/plugins/http`: the HTTP transport (a Source over an origin serving a repository as static
// files) and the static repository server `ferry serve` runs.

export { createHttpTransport, type HttpTransport, type HttpTransportOptions } from './transport.ts';
export { startStaticServer, type StaticServer, type StaticServerOptions, type StaticServerStats } from './server.ts';
