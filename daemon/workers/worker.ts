// Worker thread: takes slot indices from its queue, runs the pipeline on the
// slot in place, writes the result record, and picks up a new pipeline
// configuration only between frames.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { FrameSlots } from '../rings/frame-slots';
import { IndexQueue } from '../rings/index-queue';
import { RecordRing } from '../rings/record-ring';
import { SeriesCorrelations } from './correlations';
import { IntegratorCache } from './integrator-cache';
import { Pipeline } from './pipeline';
import { CONTROL, type CorrelationReply, type CorrelationRequest, type FrameMeta, type SeriesContext, type WorkerInit, type WorkerMessage } from './protocol';
import { encodedSize } from './result-codec';

const init = workerData as WorkerInit;
const slots = new FrameSlots(init.slotInfo, init.slotData, init.layout);
const queue = new IndexQueue(init.queue);
const ring = new RecordRing(init.results);
const control = new Int32Array(init.control);
const contexts = new Map<string, SeriesContext>();
// Shared by every epoch's pipeline: maps survive reloads that do not change them.
const integrators = new IntegratorCache(4);
// Per series, across epochs: the main thread asks for them when a result is wanted.
const correlations = new SeriesCorrelations();
let pipeline = new Pipeline(init.initial, contexts, integrators, correlations);
let generation = 0;

function answer(req: CorrelationRequest): void {
  const reply: CorrelationReply = { kind: 'correlation', id: req.id, worker: init.index, state: null, evicted: correlations.evicted.splice(0) };
  try {
    reply.state = correlations.state(req.series, req.pairs, req.end);
  } catch (e) {
    reply.error = (e as Error).message;
  }
  init.port.postMessage(reply);
}

function drainMessages(): void {
  for (let m = receiveMessageOnPort(init.port); m; m = receiveMessageOnPort(init.port)) {
    const msg = m.message as WorkerMessage;
    if (msg.kind === 'series') {
      contexts.set(msg.context.key, msg.context);
      while (contexts.size > 8) contexts.delete(contexts.keys().next().value!);
    } else if (msg.kind === 'correlation') answer(msg);
    else if (msg.update.epoch !== pipeline.epoch || msg.update.calibration.set?.id !== pipeline.calibrationId) {
      pipeline = new Pipeline(msg.update, contexts, integrators, correlations);
    }
  }
}

for (;;) {
  const g = Atomics.load(control, CONTROL.generation);
  if (g !== generation) {
    generation = g;
    drainMessages();
  }
  const slot = queue.pop();
  if (slot === undefined) {
    if (Atomics.load(control, CONTROL.stop)) break;
    queue.waitForData(100);
    continue;
  }
  const meta = slots.meta<FrameMeta>(slot);
  const { header, arrays } = pipeline.process(meta, slots.payload(slot), slot, init.index, Atomics.load(control, CONTROL.preview) === 1);
  if (header.preview) Atomics.store(control, CONTROL.preview, 0);
  const record = encodedSize(header, arrays);
  // The main thread drains results continuously; wait for it rather than lose one.
  while (!ring.tryWrite(record.size, record.write)) ring.waitForSpace(50);
}
init.port.close();
