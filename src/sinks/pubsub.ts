// Google Cloud Pub/Sub publishing (contract section 3): one message per event, the event JSON as data,
// ordered by task (or workspace). Guarantees: `publish` resolves only when the server acknowledged every
// message of the batch; a failed batch fails whole and can simply be published again.
//
// Why not the client's ordered publisher: it keeps one queue and one Publish call per ordering key, and
// with a key per task a batch of a thousand events became a thousand calls (measured against the
// emulator: 0.8 to 3.4 s per thousand, against 0.1 to 0.2 s unordered). One Publish request may carry
// many ordering keys; the order per key holds as long as the requests go one after the other, which the
// pipeline does. A failed request leaves no key paused on the client, so nothing needs resuming.
// An event over Pub/Sub's message limit is published as a copy that leaves its largest values out
// (events/omit.ts): the service would refuse it for ever, and the stream would stop behind it.

import { existsSync } from 'node:fs'
import { PubSub, type ClientConfig, v1 } from '@google-cloud/pubsub'
import type { TaskEvent } from '../events/events.ts'
import { eventJson } from '../events/json.ts'
import { fitEvent } from '../events/omit.ts'
import { Unreachable } from '../unreachable.ts'

export type PublisherOptions = {
  projectId: string
  topic: string
  serviceAccountFile: string
  createTopic: boolean
  /** PUBSUB_EMULATOR_HOST, when set: the emulator, with no credentials. */
  emulatorHost?: string
}

export class TopicMissingError extends Error {
  override name = 'TopicMissingError'
}

export type Publisher = ReturnType<typeof createPublisher>

// Pub/Sub's limits (cloud.google.com/pubsub/quotas, "Resource limits"): a message of at most 10 MB, counted
// as its data plus its attributes' keys and values plus its ordering key; a Publish request of at most
// 1,000 messages and 10 MiB on the wire. A request's size is bounded by its messages' sizes, each with
// what protobuf adds around a message and its fields (tags and lengths: under 8 bytes a field, 8 fields at
// most here, so 64 is generous), and room for the topic's name and the request's own envelope.
export const MAX_MESSAGE_BYTES = 10_000_000
const MAX_REQUEST_MESSAGES = 1_000
const MAX_REQUEST_BYTES = 10 * 1024 * 1024 - 4 * 1024
const MESSAGE_ENVELOPE_BYTES = 64
// One Publish request's deadline. The client's own retries (for up to 10 minutes) are off: the pipeline
// retries with backoff itself, so an outage shows in /info and the log within seconds instead of hiding in a
// call that does not return. Its bundling is off too: requests are already sized, and it would hold small
// ones back for 10 ms.
const PUBLISH_DEADLINE_MS = 15_000
const PUBLISH_CALL_OPTIONS = { timeout: PUBLISH_DEADLINE_MS, retry: null, isBundling: false }
// The start-up check of the topic: one call, failing in seconds when the service cannot be reached.
const TOPIC_CHECK_OPTIONS = { timeout: 15_000, retry: null }
const GRPC_NOT_FOUND = 5
const GRPC_ALREADY_EXISTS = 6
const PUBSUB_ENDPOINT = 'pubsub.googleapis.com:443'

export function clientConfig(options: PublisherOptions): ClientConfig {
  if (options.emulatorHost)
    // universeDomain keeps the auth library from probing the GCE metadata server, off this machine;
    // emulatorMode keeps the insecure channel that an explicit universe would otherwise turn off.
    return { projectId: options.projectId, apiEndpoint: options.emulatorHost, emulatorMode: true, universeDomain: 'googleapis.com' }
  return existsSync(options.serviceAccountFile)
    ? { projectId: options.projectId, keyFilename: options.serviceAccountFile }
    : { projectId: options.projectId }
}

export function orderingKey(event: TaskEvent): string {
  return event.taskId ?? event.workspaceId ?? event.type.split('.')[0]!
}

export function attributes(event: TaskEvent): Record<string, string> {
  const attributes: Record<string, string> = { eventId: event.id, type: event.type, source: event.source }
  if (event.workspaceId) attributes.workspaceId = event.workspaceId
  if (event.taskId) attributes.taskId = event.taskId
  if (event.lsn) attributes.lsn = event.lsn
  return attributes
}

export function createPublisher(options: PublisherOptions) {
  const client = new PubSub(clientConfig(options))
  const topic = client.topic(options.topic)
  // The same settings as the client's own publisher (endpoint, credentials, the emulator's plain channel).
  const publisherClient = client.getClientConfig().then((config) => new v1.PublisherClient(config as ConstructorParameters<typeof v1.PublisherClient>[0]))
  const address = options.emulatorHost ? `${options.emulatorHost} (PUBSUB_EMULATOR_HOST)` : PUBSUB_ENDPOINT
  const missingTopic = () =>
    new TopicMissingError(`Pub/Sub topic ${options.topic} does not exist in project ${options.projectId}: create it, or pass --create-topic`)

  /** Publishes in as few requests as the limits allow, one after the other, in order. */
  async function publishMessages(messages: OutgoingMessage[]) {
    const publisher = await publisherClient
    for (const request of requests(messages)) await publisher.publish({ topic: topic.name, messages: request }, PUBLISH_CALL_OPTIONS)
  }

  async function topicExists(): Promise<boolean> {
    return (await publisherClient).getTopic({ topic: topic.name }, TOPIC_CHECK_OPTIONS).then(
      () => true,
      (error: { code?: number }) => {
        if (error.code === GRPC_NOT_FOUND) return false
        throw new Unreachable('Pub/Sub', address, `looking up topic ${topic.name}`, error)
      },
    )
  }

  return {
    /** Checks the topic exists, creating it with --create-topic; a missing topic is a startup error. */
    async start() {
      if (await topicExists()) return
      if (!options.createTopic) throw missingTopic()
      await (await publisherClient).createTopic({ name: topic.name }, TOPIC_CHECK_OPTIONS).catch((error: { code?: number }) => {
        // Another instance created it in the meantime.
        if (error.code !== GRPC_ALREADY_EXISTS) throw new Unreachable('Pub/Sub', address, `creating topic ${topic.name}`, error)
      })
    },

    /** Fails unless the topic is reachable and exists (readiness), on the publisher's own channel. */
    async checkTopic() {
      if (!(await topicExists())) throw missingTopic()
    },

    /** Publishes the events, each encoded as `encodeEvent` does, as `publishMessages` does. */
    publish: (events: TaskEvent[]) => publishMessages(events.map((event) => encodeEvent(event).message)),

    publishMessages,

    async close() {
      await (await publisherClient).close()
      await client.close()
    },
  }
}

export type OutgoingMessage = { data: Buffer; attributes: Record<string, string>; orderingKey: string }

/**
 * An event's message, the copy of the event it carries, and the bytes of the whole event's JSON: the copy is
 * the event itself, or, when the event is over MAX_MESSAGE_BYTES, a copy with its largest values left out
 * and named in `omitted`.
 */
export function encodeEvent(event: TaskEvent): { message: OutgoingMessage; copy: TaskEvent; bytes: number } {
  const message = messageOf(event)
  const bytes = message.data.length
  if (messageBytes(message) <= MAX_MESSAGE_BYTES) return { message, copy: event, bytes }
  // Candidates are measured with their JSON made apart: only the copy chosen is kept.
  const copy = fitEvent(event, (candidate) => messageBytes({ ...message, data: Buffer.from(JSON.stringify(candidate)) }), MAX_MESSAGE_BYTES)
  return { message: messageOf(copy), copy, bytes }
}

function messageOf(event: TaskEvent): OutgoingMessage {
  return { data: eventJson(event), attributes: attributes(event), orderingKey: orderingKey(event) }
}

/** A message's size as Pub/Sub counts it against MAX_MESSAGE_BYTES. */
export function messageBytes(message: OutgoingMessage): number {
  let bytes = message.data.length + Buffer.byteLength(message.orderingKey)
  for (const key in message.attributes) bytes += Buffer.byteLength(key) + Buffer.byteLength(message.attributes[key]!)
  return bytes
}

function* requests(all: OutgoingMessage[]): Generator<OutgoingMessage[]> {
  let messages: OutgoingMessage[] = []
  let bytes = 0
  for (const message of all) {
    const size = messageBytes(message) + MESSAGE_ENVELOPE_BYTES
    if (messages.length && (messages.length === MAX_REQUEST_MESSAGES || bytes + size > MAX_REQUEST_BYTES)) {
      yield messages
      messages = []
      bytes = 0
    }
    messages.push(message)
    bytes += size
  }
  if (messages.length) yield messages
}
