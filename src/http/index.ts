export type { ConnectionInfo, Endpoint, HeaderList, HttpExchange, HttpMessageHead, HttpRequestHead, HttpResponseHead, Role } from './types';
export { ConnectionTracker, type ConnectionFilter, type HttpCounters } from './stitcher';
