/**
 * Who headertap says it is, as every OpenTelemetry SDK decides it: the
 * --service-name flag (or config key) wins, then OTEL_SERVICE_NAME, then
 * service.name in OTEL_RESOURCE_ATTRIBUTES, then `headertap`; the rest of
 * OTEL_RESOURCE_ATTRIBUTES goes on its own resource (the DaemonSet's
 * k8s.node.name). host.name, for its resource and every workload's, is the
 * host's (src/workload/host.ts).
 */
import { otelEnvFromProcessEnv, parseResourceAttributes } from '../workload/environ';
import { detectHostName, type HostName, type HostProbes } from '../workload/host';

export const DEFAULT_SERVICE_NAME = 'headertap';

export interface AgentIdentity {
  serviceName: string;
  /** Attributes of headertap's own resource besides service.name/version: OTEL_RESOURCE_ATTRIBUTES and host.name. */
  attributes: Record<string, string>;
  host: HostName;
  /** One line each, for stderr: settings that were ignored or could not be honoured. */
  warnings: string[];
}

export async function resolveAgentIdentity(
  serviceNameFlag: string | undefined,
  env: NodeJS.ProcessEnv,
  probes?: HostProbes,
): Promise<AgentIdentity> {
  const own = otelEnvFromProcessEnv(env);
  const warnings: string[] = [];
  const rawAttrs = env.OTEL_RESOURCE_ATTRIBUTES;
  if (rawAttrs && rawAttrs.replace(/[\s,]/g, '') !== '' && Object.keys(parseResourceAttributes(rawAttrs)).length === 0) {
    warnings.push(
      'OTEL_RESOURCE_ATTRIBUTES is ignored: it is not key=value pairs separated by commas (percent-encode , = and % inside keys and values, e.g. k8s.node.name=node-1,team=a%2Cb)',
    );
  }
  const host = await detectHostName(env, own.resourceAttributes, probes);
  if (host.source === 'container') {
    warnings.push(
      `host.name is this container's hostname (${host.name}), not the host's: give headertap the host's PID namespace and CAP_SYS_ADMIN (to read the host's UTS namespace), or set K8S_NODE_NAME, or host.name in OTEL_RESOURCE_ATTRIBUTES`,
    );
  }
  const attributes: Record<string, string> = { ...own.resourceAttributes, 'host.name': host.name };
  delete attributes['service.name']; // decided above
  return {
    serviceName: serviceNameFlag ?? own.serviceName ?? DEFAULT_SERVICE_NAME,
    attributes,
    host,
    warnings,
  };
}
