import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogAttributes } from '@opentelemetry/api-logs';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { AttachAttributes } from '../../src/otel/attach-attributes';

function setup(limit: number) {
  const attach = new AttachAttributes(limit);
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    processors: [attach, new SimpleLogRecordProcessor({ exporter: memory })],
    logRecordLimits: { attributeCountLimit: limit },
  });
  return { attach, memory, logger: provider.getLogger('t') };
}

describe('AttachAttributes: the SDK record gets the mapped attributes', () => {
  it('later processors and the exporter see every attribute, arrays included, in order', () => {
    const { attach, memory, logger } = setup(2048);
    const attrs: LogAttributes = { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.request.header.accept': ['a', 'b'], 'headertap.truncated': true };
    attach.emitWith(attrs, 40, () => logger.emit({ body: 'GET / -> 200' }));
    logger.emit({ body: 'plain', attributes: { k: 'v' } }); // without emitWith: the SDK's own path
    const [first, second] = memory.getFinishedLogRecords();
    assert.deepEqual(first.attributes, attrs);
    assert.deepEqual(Object.keys(first.attributes), Object.keys(attrs));
    assert.equal(first.droppedAttributesCount, 0);
    assert.deepEqual(second.attributes, { k: 'v' }, 'nothing left over from the record before');
  });

  it('past the attribute limit the SDK applies it as before', () => {
    const { attach, memory, logger } = setup(3);
    const attrs: LogAttributes = { a: '1', b: '2', c: '3', d: '4', e: '5' };
    attach.emitWith(attrs, undefined, () => logger.emit({ body: 'x' }));
    attach.emitWith(attrs, 6, () => logger.emit({ body: 'y' })); // a bound over the limit: counted, then limited
    for (const rec of memory.getFinishedLogRecords()) {
      assert.equal(Object.keys(rec.attributes).length, 3);
      assert.equal(rec.droppedAttributesCount, 2);
    }
    assert.equal(memory.getFinishedLogRecords().length, 2);
  });
});
