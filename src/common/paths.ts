import * as path from 'node:path';

/** The package root: the folder holding package.json, bin/ and bpf/. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

/** The loader binary built by `npm run build` (bpf/Makefile). */
export const LOADER_PATH = path.join(PACKAGE_ROOT, 'bpf', '.output', 'headertap-loader');

/** OTLP protocol definitions used by the embedded receiver. */
export const PROTO_DIR = path.join(PACKAGE_ROOT, 'proto');
