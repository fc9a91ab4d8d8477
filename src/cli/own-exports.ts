/**
 * Exchanges that are OTLP exports of a headertap agent: never recorded.
 *
 * Own-traffic exclusion has two layers. In the kernel, every agent on the
 * host registers its sockets in one map shared through bpffs
 * (bpf/loader.c share_self_endpoints()), and no agent captures a socket
 * whose local or remote end is registered: neither another agent's exports
 * nor the collector's end of them. That covers every filter and every
 * protocol, and costs nothing per request, but it needs bpffs, and it can
 * miss the first TLS write of a session whose socket is not known yet
 * (memory BIOs, e.g. node).
 *
 * This is the second layer, in user space: an exchange whose request is an
 * OTLP export (POST to an OTLP service path: gRPC
 * /opentelemetry.proto.collector.<signal>.v1.<Signal>Service/Export, or
 * HTTP /v1/logs, /v1/metrics, /v1/traces) from a headertap exporter
 * (user-agent `headertap/…`, which every exporter of headertap's sends) is
 * dropped, whichever side (client or server) saw it. It catches agents the
 * kernel layer cannot (an agent in a container without the host's bpffs, an
 * older version). It cannot see a user-agent HPACK left out (an HTTP/2
 * connection opened before this agent started): there only the kernel layer
 * works. Other OTLP exporters on the host (applications, collectors) are
 * traffic like any other.
 */
import type { HttpExchange } from '../http';

const OTLP_GRPC_EXPORT = /^\/opentelemetry\.proto\.collector\.(?:logs|metrics|trace)\.v1\.(?:Logs|Metrics|Trace)Service\/Export$/;
/** OTLP/HTTP: the signal path at the end of the endpoint's path, any query ignored. */
const OTLP_HTTP_EXPORT = /\/v1\/(?:logs|metrics|traces)(?:\?.*)?$/;
const HEADERTAP_USER_AGENT = /^headertap\//;

/** Whether the exchange is an OTLP export sent by a headertap agent. */
export function isAgentExport(ex: HttpExchange): boolean {
  const req = ex.request;
  if (req.method !== 'POST') return false;
  if (!OTLP_GRPC_EXPORT.test(req.target) && !OTLP_HTTP_EXPORT.test(req.target)) return false;
  const h = req.headers;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'user-agent' && HEADERTAP_USER_AGENT.test(h[i + 1])) return true;
  }
  return false;
}
