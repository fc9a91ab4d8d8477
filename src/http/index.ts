export type {
  ConnectionInfo,
  Endpoint,
  HeaderList,
  HttpExchange,
  HttpMessageHead,
  HttpRequestHead,
  HttpResponseHead,
  Role,
  TruncationReason,
  UnansweredReason,
} from './types';
export { Http1StreamParser, parseStartLine, parseContentLength, decodeHeaderText } from './parse';
export type { ParseProblem, ParserSink, ParserOptions } from './parse';
export { ConnectionTracker, looksLikeTlsRecord, type ConnectionFilter, type HttpCounters, type TrackerOptions } from './stitcher';
export type { Http2Problem } from './h2/session';
export type { DirectionParser } from './protocol';
