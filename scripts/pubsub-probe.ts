// Publishes ordered, attributed messages with the real @google-cloud/pubsub client and prints a JSON
// summary. test/sinks/pubsub-grpc.test.ts runs it in-process and as a `bun build --compile` binary, to
// prove the client's gRPC path works on Bun both ways.
//
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT pubsub-probe <topic> [count] [keys]

import { PubSub } from '@google-cloud/pubsub'

/**
 * Client options for an emulator. The explicit universeDomain stops google-gax from asking
 * google-auth-library for one, which without credentials probes the GCE metadata server
 * (169.254.169.254 and metadata.google.internal): network traffic off this machine, and a
 * MetadataLookupWarning. With universeDomain set the client would leave emulator mode (insecure
 * channel), hence emulatorMode: true.
 */
export function emulatorOptions(host?: string, projectId = 'probe') {
  // Without host the client reads PUBSUB_EMULATOR_HOST itself.
  return { projectId, apiEndpoint: host, emulatorMode: true, universeDomain: 'googleapis.com' }
}

export type ProbeResult = { published: number; ids: string[] }

/** Message i has ordering key `key-(i % keys)`, attributes { seq: i, key }, data {"seq":i}. */
export async function publishOrdered(host: string | undefined, topicName: string, count: number, keys: number): Promise<ProbeResult> {
  const pubsub = new PubSub(emulatorOptions(host))
  try {
    const [exists] = await pubsub.topic(topicName).exists()
    if (!exists) await pubsub.createTopic(topicName)
    const topic = pubsub.topic(topicName, {
      messageOrdering: true,
      batching: { maxMessages: 100, maxMilliseconds: 10 },
    })
    const ids = await Promise.all(
      Array.from({ length: count }, (_, seq) => {
        const key = `key-${seq % keys}`
        return topic.publishMessage({
          data: Buffer.from(JSON.stringify({ seq })),
          attributes: { seq: String(seq), key },
          orderingKey: key,
        })
      }),
    )
    await topic.flush()
    return { published: ids.length, ids }
  } finally {
    await pubsub.close()
  }
}

if (import.meta.main) {
  const [topic, count, keys] = process.argv.slice(2)
  if (!topic || !process.env.PUBSUB_EMULATOR_HOST) {
    console.error('usage: PUBSUB_EMULATOR_HOST=host:port pubsub-probe <topic> [count] [keys]')
    process.exit(2)
  }
  const result = await publishOrdered(undefined, topic, Number(count ?? 100), Number(keys ?? 10))
  console.log(JSON.stringify({ published: result.published, firstId: result.ids[0], lastId: result.ids.at(-1) }))
  process.exit(0)
}
