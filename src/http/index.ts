export type { Endpoint, HeaderList, HttpExchange, HttpMessageHead, HttpRequestHead, HttpResponseHead, Role } from './types';
export { ConnectionTracker, type HttpCounters } from './stitcher';
