// A real Pub/Sub gRPC server for the tests: our wrapper around Google's in-memory pstest fake
// (scripts/pubsub-emulator). pause()/resume() take the gRPC port down and back with topics and messages
// kept; freeze()/thaw() suspend the process and wake it; messages(topic) reads back everything published
// to a topic, in publish order.

import { join } from 'node:path'
import { type ServerProcess, spawnServer, stopServer, tempDir, tool, waitReady } from './server-process.ts'

export type PublishedMessage = {
  id: string
  data: Buffer
  attributes: Record<string, string>
  /** '' when published without one */
  orderingKey: string
  publishTime: Date
}

export type PubSubEmulator = {
  /** 127.0.0.1:PORT, for PUBSUB_EMULATOR_HOST or the client's apiEndpoint */
  host: string
  port: number
  /** Refuses connections (and drops the open ones) until resume(); state is kept. */
  pause(): Promise<void>
  resume(): Promise<void>
  /** Suspends the process (SIGSTOP): connections stay open and nothing answers, as with a hung server. */
  freeze(): void
  thaw(): void
  /** Every message published to `topic` (short or full name), in publish order, from the `offset`-th on. */
  messages(topic: string, offset?: number): Promise<PublishedMessage[]>
  /** The same, one at a time as they are read, for more messages than fit in memory at once. */
  eachMessage(topic: string, visit: (message: PublishedMessage) => void, offset?: number): Promise<void>
  count(topic: string): Promise<number>
  stop(): Promise<void>
  /** Stops and starts the emulator on the same port: unlike pause(), every topic and message is lost. */
  restart(): Promise<void>
  logPath: string
}

export async function startPubSubEmulator(): Promise<PubSubEmulator> {
  const bin = tool('pubsub-emulator')
  const logPath = join(tempDir('pubsub-emulator-'), 'pubsub-emulator.log')
  let port = 0
  let debugPort = 0
  let proc: ServerProcess | undefined

  async function start() {
    proc = spawnServer(
      [bin, '--host', '127.0.0.1', '--port', String(port), '--debug-port', String(debugPort)],
      logPath,
      { pipeStdout: true },
    )
    const lines = readLines(proc.stdout as ReadableStream<Uint8Array>)
    let listening: string | undefined
    let debug: string | undefined
    const reading = (async () => {
      for await (const line of lines) {
        const [word, addr] = line.split(' ')
        if (word === 'debug') debug = addr
        if (word === 'listening') listening = addr
        if (listening && debug) return
      }
    })()
    await waitReady(proc, 'pubsub-emulator', logPath, async () => Boolean(listening && debug), 15_000)
    await reading
    port = Number(listening!.split(':')[1])
    debugPort = Number(debug!.split(':')[1])
  }

  async function debugCall(path: string, method = 'GET'): Promise<Response> {
    const res = await fetch(`http://127.0.0.1:${debugPort}${path}`, { method })
    if (!res.ok) throw new Error(`pubsub-emulator ${method} ${path}: ${res.status} ${await res.text()}`)
    return res
  }

  async function eachMessage(topic: string, visit: (message: PublishedMessage) => void, offset = 0) {
    const response = await debugCall(`/messages?topic=${encodeURIComponent(topic)}&offset=${offset}`)
    for await (const line of readLines(response.body!)) {
      if (!line) continue
      const m = JSON.parse(line)
      visit({
        id: m.id,
        data: Buffer.from(m.data ?? '', 'base64'),
        attributes: m.attributes ?? {},
        orderingKey: m.orderingKey,
        publishTime: new Date(m.publishTime),
      })
    }
  }

  await start()

  return {
    host: `127.0.0.1:${port}`,
    port,
    logPath,
    async pause() {
      await debugCall('/pause', 'POST')
    },
    async resume() {
      await debugCall('/resume', 'POST')
    },
    freeze() {
      proc?.kill('SIGSTOP')
    },
    thaw() {
      proc?.kill('SIGCONT')
    },
    async messages(topic, offset = 0) {
      const out: PublishedMessage[] = []
      await eachMessage(topic, (message) => out.push(message), offset)
      return out
    },
    eachMessage,
    async count(topic) {
      return Number(await (await debugCall(`/count?topic=${encodeURIComponent(topic)}`)).text())
    },
    async stop() {
      if (proc) await stopServer(proc)
    },
    async restart() {
      if (proc) await stopServer(proc)
      await start()
    },
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true })
    // One cut per chunk, not per line: a chunk may hold thousands of lines.
    let start = 0
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n', start)) {
      yield buffered.slice(start, nl)
      start = nl + 1
    }
    buffered = buffered.slice(start)
  }
}
