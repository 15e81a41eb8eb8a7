// Google Cloud Pub/Sub publishing (contract section 3): one message per event, the event JSON as data,
// ordered by task (or workspace). Guarantees: `publish` resolves only when the server acknowledged every
// message of the batch; after a failure every ordering key of the batch is resumed, so a retry can go
// through instead of the key staying blocked for good.

import { existsSync } from 'node:fs'
import { PubSub, type ClientConfig, type Topic } from '@google-cloud/pubsub'
import type { TaskEvent } from '../events/events.ts'

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

// The client sends a batch when either bound is reached; a pipeline batch is at most a few of these.
const BATCHING = { maxMessages: 500, maxMilliseconds: 5, maxBytes: 8 * 1024 * 1024 }

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
  const topic: Topic = client.topic(options.topic, { messageOrdering: true, batching: BATCHING })

  return {
    /** Checks the topic exists, creating it with --create-topic; a missing topic is a startup error. */
    async start() {
      const [exists] = await topic.exists()
      if (exists) return
      if (!options.createTopic)
        throw new TopicMissingError(`Pub/Sub topic ${options.topic} does not exist in project ${options.projectId}: create it, or pass --create-topic`)
      await client.createTopic(options.topic).catch((error: { code?: number }) => {
        // ALREADY_EXISTS: another instance created it in the meantime.
        if (error.code !== 6) throw error
      })
    },

    async publish(events: TaskEvent[]) {
      const results = await Promise.allSettled(
        events.map((event) =>
          topic.publishMessage({ data: Buffer.from(JSON.stringify(event)), attributes: attributes(event), orderingKey: orderingKey(event) }),
        ),
      )
      const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
      if (!failed) return
      for (const event of events) topic.resumePublishing(orderingKey(event))
      throw failed.reason
    },

    async close() {
      await topic.flush().catch(() => {})
      await client.close()
    },
  }
}
