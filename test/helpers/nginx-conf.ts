/**
 * The parts of an nginx.conf every test and benchmark nginx shares: runs in
 * the foreground as root with one worker, keeps its pid, log and temp files
 * in `dir`, logs no requests.
 */
export function nginxConf(dir: string, opts: { workerConnections: number; http: string }): string {
  return `user root;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${opts.workerConnections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${opts.http}
}
`;
}
