# SPDX-License-Identifier: Apache-2.0
"""A real OTLP/gRPC collector stand-in on grpcio (python3-grpcio), with
grpcio's default limits (4 MiB received at most). Every export request of
any OTLP service is written as it arrived (decompressed) to OUT_DIR as
<sequence>-<signal>.pb before it is answered; DELAY seconds later the empty
Export response goes back. Prints the bound port on stdout.

  python3 grpcio_sink.py OUT_DIR PORT [DELAY]
"""
import os
import sys
import threading
import time
from concurrent import futures

import grpc

out_dir = sys.argv[1]
port = int(sys.argv[2])
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
lock = threading.Lock()
count = [0]


class OtlpExport(grpc.GenericRpcHandler):
    def service(self, details):
        # /opentelemetry.proto.collector.<signal>.v1.<Signal>Service/Export
        parts = details.method.split('.')
        if not details.method.startswith('/opentelemetry.proto.collector.') or not details.method.endswith('/Export'):
            return None
        signal = parts[3]

        def export(request, context):
            with lock:
                count[0] += 1
                n = count[0]
            path = os.path.join(out_dir, '%06d-%s.pb' % (n, signal))
            with open(path + '.tmp', 'wb') as f:
                f.write(request)
            os.rename(path + '.tmp', path)
            if delay:
                time.sleep(delay)
            return b''  # an empty Export*ServiceResponse

        # No (de)serializers: requests and responses stay bytes.
        return grpc.unary_unary_rpc_method_handler(export)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[OtlpExport()])
bound = server.add_insecure_port('127.0.0.1:%d' % port)
server.start()
print(bound, flush=True)
server.wait_for_termination()
