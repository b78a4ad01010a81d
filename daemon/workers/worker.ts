// Worker thread: takes slot indices from its queue, runs the pipeline of the
// frame's epoch on the slot in place, writes the result record, and picks up
// new configuration only between frames. Maps come from the main thread's map
// store: a worker that needs one asks and waits for it (the build runs on the
// main thread's libuv pool, and the other workers go on meanwhile).
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { NativeMapSpec } from '../native';
import { FrameSlots } from '../rings/frame-slots';
import { IndexQueue } from '../rings/index-queue';
import { RecordRing } from '../rings/record-ring';
import { SeriesCorrelations } from './correlations';
import { IntegratorCache, type MapSource } from './integrator-cache';
import { Pipeline } from './pipeline';
import { CONTROL, type CorrelationReply, type CorrelationRequest, type FrameMeta, type MapRequest, type SeriesContext, type WorkerInit, type WorkerMessage } from './protocol';
import { encodedSize } from './result-codec';
import { RecentMap } from '../system/recent-map';

const init = workerData as WorkerInit;
const slots = new FrameSlots(init.slotInfo, init.slotData, init.layout);
const queue = new IndexQueue(init.queue);
const ring = new RecordRing(init.results);
const control = new Int32Array(init.control);
const contexts = new RecentMap<string, SeriesContext>(8);
// Shared by every epoch's pipeline: maps survive reloads that do not change them.
const integrators = new IntegratorCache(init.maxMaps);
const answers = new Map<string, Uint8Array | Error>();
// Per series, across epochs: the main thread asks for them when a result is wanted.
const correlations = new SeriesCorrelations();

const fromStore: MapSource = (key: string, spec: NativeMapSpec): Uint8Array => {
  const request: MapRequest = { kind: 'map-request', key, spec };
  init.port.postMessage(request);
  for (;;) {
    const g = Atomics.load(control, CONTROL.generation);
    drainMessages();
    generation = g;
    const answer = answers.get(key);
    if (answer) {
      answers.delete(key);
      if (answer instanceof Error) throw answer;
      return answer;
    }
    if (Atomics.load(control, CONTROL.stop)) throw new Error('stopping before the map arrived');
    Atomics.wait(control, CONTROL.generation, g, 1000);
  }
};

// A frame is processed with the pipeline of the epoch it was received under:
// frames queued before a reload finish with the configuration they came in with.
const KEPT_EPOCHS = 4;
const pipelines = new RecentMap<number, Pipeline>(KEPT_EPOCHS);
let latest = new Pipeline(init.initial, contexts, integrators, correlations, fromStore);
pipelines.set(latest.epoch, latest);
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
    } else if (msg.kind === 'correlation') answer(msg);
    else if (msg.kind === 'map') answers.set(msg.key, msg.blob);
    else if (msg.kind === 'map-error') answers.set(msg.key, new Error(msg.message));
    else if (msg.kind === 'map-evicted') integrators.dropMap(msg.key);
    else {
      const held = pipelines.get(msg.update.epoch);
      // A tracking snapshot changes the calibration set within an epoch.
      if (held && msg.update.calibration.set?.id === held.calibrationId) continue;
      latest = new Pipeline(msg.update, contexts, integrators, correlations, fromStore);
      pipelines.set(latest.epoch, latest);
    }
  }
}

function pipelineFor(meta: FrameMeta): Pipeline {
  if (meta.epoch === undefined) return latest;
  // Stamped with an epoch not seen yet: its update was posted before the frame, so it is on the port.
  if (meta.epoch > latest.epoch) drainMessages();
  return pipelines.get(meta.epoch) ?? latest;
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
  const { header, arrays } = pipelineFor(meta).process(meta, slots.payload(slot), slot, init.index, Atomics.load(control, CONTROL.preview) === 1);
  if (header.preview) Atomics.store(control, CONTROL.preview, 0);
  const record = encodedSize(header, arrays);
  // The main thread drains results continuously; wait for it rather than lose one.
  while (!ring.tryWrite(record.size, record.write)) ring.waitForSpace(50);
}
init.port.close();
