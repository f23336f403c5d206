// `ferry/plugins/lan`: LAN peers — discovery (mDNS or a static list), the Source that takes the
// metadata each peer verified and artifact chunks from all of them, and the peer server that
// shares this device's verified cache and metadata (and takes reports); the report relay.

export { createLanDiscovery, parseLanSpec, SERVICE, type LanDiscovery, type LanDiscoveryOptions, type LanPeer } from './discovery.ts';
export { createLanSource, type LanSourceOptions } from './source.ts';
export { startPeerServer, type PeerServer, type PeerServerOptions, type PeerServerStats } from './peer-server.ts';
export { sendReportsToPeers, REPORTS_PREFIX, type RelayResult } from './report-relay.ts';
