// The list + watch server the discovery tests drive is the lab's own (src/lab/api-server.ts):
// one implementation of the protocol, so the tests and the lab cannot drift apart.
export { ListWatchServer as FakeApiServer, type RecordedRequest, type Resource } from '../../src/lab/api-server'
