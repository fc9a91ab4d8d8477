/**
 * Real Go programs for tests, built from the standard library only with the
 * system Go (Debian golang-go), offline: GOPATH mode, a private build cache
 * and GOPATH in a temp dir, no cgo (a static binary like most Go services).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const GO = ['/usr/bin/go', '/usr/lib/go/bin/go'].find((p) => existsSync(p));

/** Why Go programs cannot be built here, or undefined when they can. */
export function goUnavailable(): string | undefined {
  return GO ? undefined : 'Go is not installed (Debian golang-go)';
}

/** GOPATH per test process; the build cache is shared by every run (Go locks it), so the standard library compiles once per machine. */
let cacheDir: string | undefined;
const BUILD_CACHE = path.join(tmpdir(), 'headertap-test-gocache');

/** The environment of an offline build; extra GOPATH entries (e.g. /usr/share/gocode) first. */
export function goEnv(extraGopath: string[] = []): NodeJS.ProcessEnv {
  cacheDir ??= mkdtempSync(path.join(tmpdir(), 'ht-gocache-'));
  const gopath = path.join(cacheDir, 'gopath');
  mkdirSync(gopath, { recursive: true });
  return {
    PATH: process.env.PATH,
    HOME: cacheDir,
    GOCACHE: BUILD_CACHE,
    GOPATH: [...extraGopath, gopath].join(':'),
    GO111MODULE: 'off',
    GOFLAGS: '',
    GOPROXY: 'off',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
}

/**
 * Builds one main package from `source` into `dir/name`; `stripped` links
 * with -s -w (no symbol table, no DWARF: only the function table remains).
 * Throws with the compiler's output when the build fails.
 */
export function buildGo(dir: string, name: string, source: string, opts: { stripped?: boolean; gopath?: string[] } = {}): string {
  const src = path.join(dir, `${name}-src`);
  mkdirSync(src, { recursive: true });
  writeFileSync(path.join(src, 'main.go'), source);
  const out = path.join(dir, name);
  const args = ['build', '-o', out, ...(opts.stripped ? ['-ldflags', '-s -w'] : []), '.'];
  const r = spawnSync(GO!, args, { cwd: src, env: goEnv(opts.gopath), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`go build ${name} failed: ${r.stderr || r.error?.message}`);
  return out;
}

/**
 * An HTTPS server and client on net/http and crypto/tls:
 *   server ADDR CERT KEY h1|h2      prints "listening" once it accepts
 *   client URL COUNT h1|h2 [gate]   COUNT GETs on one connection, headers
 *                                   X-From and X-Seq; with gate, waits for
 *                                   a line on stdin first; prints the mean
 *                                   ns per request ("ns_per_request N")
 * The server answers X-Go-Server: the protocol it saw (HTTP/1.1, HTTP/2.0).
 */
export const GO_HTTPS = `package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	switch os.Args[1] {
	case "server":
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Go-Server", r.Proto)
			io.WriteString(w, "hi "+r.URL.Path)
		})}
		if os.Args[5] == "h1" {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		fmt.Println("listening")
		panic(srv.ServeTLS(ln, os.Args[3], os.Args[4]))
	case "client":
		n, _ := strconv.Atoi(os.Args[3])
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: os.Args[4] == "h2"}
		c := &http.Client{Transport: tr}
		if len(os.Args) > 5 && os.Args[5] == "gate" {
			bufio.NewReader(os.Stdin).ReadString('\\n')
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest("GET", os.Args[2], nil)
			req.Header.Set("X-From", "go-client")
			req.Header.Set("X-Seq", strconv.Itoa(i))
			resp, err := c.Do(req)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Go-Server") == "" && os.Getenv("ANY_SERVER") == "" {
				fmt.Fprintln(os.Stderr, "status", resp.StatusCode, resp.Proto)
				os.Exit(1)
			}
		}
		fmt.Println("ns_per_request", time.Since(start).Nanoseconds()/int64(n))
	}
}
`;

/** Where Debian installs Go libraries (golang-google-grpc-dev and its dependencies). */
export const DEBIAN_GOCODE = '/usr/share/gocode';

/**
 * A gRPC server and client on grpc-go over TLS (Debian golang-google-grpc-dev),
 * speaking grpc.health.v1.Health (generated code that ships with grpc-go, so
 * no protoc is needed):
 *   server ADDR CERT KEY            prints "listening"; service "ht.Echo" is
 *                                   SERVING, anything else NOT_FOUND
 *   client ADDR COUNT               COUNT Check calls for ht.Echo, then one for
 *                                   ht.Missing (status NOT_FOUND); metadata
 *                                   x-from: go-grpc
 */
export const GO_GRPC = `package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	switch os.Args[1] {
	case "server":
		creds, err := credentials.NewServerTLSFromFile(os.Args[3], os.Args[4])
		if err != nil {
			panic(err)
		}
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		s := grpc.NewServer(grpc.Creds(creds))
		h := health.NewServer()
		h.SetServingStatus("ht.Echo", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s, h)
		fmt.Println("listening")
		panic(s.Serve(ln))
	case "client":
		n, _ := strconv.Atoi(os.Args[3])
		creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
		conn, err := grpc.Dial(os.Args[2], grpc.WithTransportCredentials(creds), grpc.WithBlock())
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		c := healthpb.NewHealthClient(conn)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-from", "go-grpc")
		for i := 0; i < n; i++ {
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "ht.Echo"}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "ht.Missing"}); err == nil {
			fmt.Fprintln(os.Stderr, "ht.Missing: expected NOT_FOUND")
			os.Exit(1)
		}
		fmt.Println("done")
	}
}
`;
