// Drives the official @signalwire/js client in Node for the Python conformance tests.
//
// Protocol (one JSON object per line):
//   stdin, line 1: the config {"rest_url", "relay_url", "token", "fabric_origin", "relay_origin",
//                  "log_level"?}. fabric_origin ("https://fabric.<domain>") and relay_origin
//                  ("wss://<ch>") are the hosts the SDK is expected to derive from the token; the
//                  shims rewrite exactly those to the emulator's loopback URLs and refuse anything else.
//   stdin, then:   commands {"seq": n, "op": "join"|"send"|"get_messages"|"subscribe"|
//                  "unsubscribe"|"exit", ...}.
//   stdout:        observations {"obs": ...}: "ready" once SignalWire() resolved, "result" for each
//                  command (same seq, ok true/false), "message" for each chat.subscribe callback,
//                  "ws_open"/"ws_close"/"connected" for the socket's life, "unexpected_url" when the
//                  SDK reaches for a host it should not, "fatal" before a non-zero exit.
// This file is a thin driver: it decides nothing; the assertions live in Python.

import { createRequire } from 'node:module'
import { Console } from 'node:console'
import readline from 'node:readline'

const require = createRequire(import.meta.url)
const { WebSocket: NodeWebSocket } = require('ws')

// The SDK logs through console.*: keep stdout for observations only.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr })

const emit = (obs) => {
  process.stdout.write(JSON.stringify(obs) + '\n')
}

const errorText = (error) => {
  if (error instanceof Error) return error.message
  try {
    return JSON.stringify(error)
  } catch {
    return String(error)
  }
}

const trimSlash = (url) => url.replace(/\/+$/, '')

function installShims(config) {
  const restBase = trimSlash(config.rest_url)
  const restOrigin = new URL(config.rest_url).origin
  const fabricOrigin = trimSlash(config.fabric_origin)
  const relayOrigin = trimSlash(config.relay_origin)

  // fetch: the SDK builds https://fabric.<domain>/...; page links may also name the emulator itself.
  const realFetch = globalThis.fetch
  globalThis.fetch = (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input.url ?? String(input))
    let target
    if (url.origin === fabricOrigin) {
      target = restBase + url.pathname + url.search
    } else if (url.origin === restOrigin) {
      target = url.toString()
    } else {
      emit({ obs: 'unexpected_url', api: 'fetch', url: url.toString() })
      return Promise.reject(new TypeError(`harness: refused fetch to ${url.origin}`))
    }
    return realFetch(target, init)
  }

  // WebSocket: Node 20 has none; the SDK reads globalThis.WebSocket when it builds its session.
  class LoopbackWebSocket extends NodeWebSocket {
    constructor(url, protocols) {
      const wanted = trimSlash(String(url))
      if (wanted !== relayOrigin) {
        emit({ obs: 'unexpected_url', api: 'WebSocket', url: String(url) })
      }
      super(config.relay_url, protocols)
      emit({ obs: 'ws_created', url: String(url), protocols: protocols ?? null })
      const connectIds = new Map()
      const realSend = this.send.bind(this)
      this.send = (data, ...rest) => {
        try {
          const frame = JSON.parse(String(data))
          if (frame.method === 'signalwire.connect') {
            connectIds.set(frame.id, frame.params?.protocol ?? null)
          }
        } catch {
          // Not JSON: nothing to track.
        }
        return realSend(data, ...rest)
      }
      this.addEventListener('open', () => emit({ obs: 'ws_open' }))
      this.addEventListener('close', (event) => emit({ obs: 'ws_close', code: event.code }))
      this.addEventListener('message', (event) => {
        let frame
        try {
          frame = JSON.parse(String(event.data))
        } catch {
          return
        }
        if (frame.id !== undefined && connectIds.has(frame.id)) {
          emit({
            obs: 'connected',
            requested_protocol: connectIds.get(frame.id),
            protocol: frame.result?.protocol ?? null,
            error: frame.error ?? null,
          })
          connectIds.delete(frame.id)
        }
      })
    }
  }
  globalThis.WebSocket = LoopbackWebSocket

  // window.sessionStorage: read when the token is five-part (the SDK keeps the relay protocol there).
  const store = new Map()
  const sessionStorage = {
    getItem: (key) => (store.has(key) ? store.get(key) : null),
    setItem: (key, value) => void store.set(key, String(value)),
    removeItem: (key) => void store.delete(key),
    clear: () => store.clear(),
    key: (index) => Array.from(store.keys())[index] ?? null,
    get length() {
      return store.size
    },
  }
  globalThis.window = globalThis
  globalThis.sessionStorage = sessionStorage
}

const plainPage = (page) => ({
  data: page.data,
  hasNext: page.hasNext,
  hasPrev: page.hasPrev,
})

async function runCommand(client, command, subscriptions) {
  switch (command.op) {
    case 'join':
      return client.chat.join({ addressId: command.address_id })
    case 'send': {
      const params = { addressId: command.address_id, text: command.text }
      if (command.metadata !== undefined) params.metadata = command.metadata
      if (command.details !== undefined) params.details = command.details
      return client.chat.sendMessage(params)
    }
    case 'get_messages': {
      const params = { addressId: command.address_id }
      if (command.page_size !== undefined) params.pageSize = command.page_size
      const pages = []
      let page = await client.chat.getMessages(params)
      pages.push(plainPage(page))
      while (page.hasNext && pages.length < (command.max_pages ?? 1)) {
        page = await page.nextPage()
        pages.push(plainPage(page))
      }
      return pages
    }
    case 'subscribe': {
      const addressId = command.address_id
      const handle = await client.chat.subscribe({
        addressId,
        onMessage: (message) => emit({ obs: 'message', address_id: addressId, message }),
      })
      subscriptions.set(command.seq, handle)
      return { subscription: command.seq, methods: Object.keys(handle) }
    }
    case 'unsubscribe': {
      const handle = subscriptions.get(command.subscription)
      subscriptions.delete(command.subscription)
      // 3.28 returns {unsubscribe}; the reference page documents {cancel}.
      return { removed: (handle.cancel ?? handle.unsubscribe)() }
    }
    default:
      throw new Error(`harness: unknown op ${command.op}`)
  }
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  const iterator = lines[Symbol.asyncIterator]()
  const first = await iterator.next()
  if (first.done) throw new Error('harness: no config line on stdin')
  const config = JSON.parse(first.value)
  installShims(config)

  // Imported only now: the shims must exist before the SDK builds its session.
  const sdk = require('@signalwire/js')
  const client = await sdk.SignalWire({ token: config.token, logLevel: config.log_level ?? 'warn' })
  emit({ obs: 'ready', version: require('@signalwire/js/package.json').version })

  const subscriptions = new Map()
  for (;;) {
    const next = await iterator.next()
    const command = next.done ? { op: 'exit' } : JSON.parse(next.value)
    if (command.op === 'exit') {
      // disconnect() can wait forever when the server already closed the socket (it only
      // resolves on a close it initiated itself): bound it, and say whether it resolved.
      let disconnected = false
      if (command.disconnect !== false) {
        const bound = new Promise((resolve) => setTimeout(resolve, 2000))
        await Promise.race([client.disconnect().then(() => (disconnected = true)), bound])
      }
      emit({ obs: 'result', seq: command.seq ?? null, op: 'exit', ok: true, value: { disconnected } })
      process.exit(0)
    }
    // Commands run concurrently: a slow call must not hold back the next one.
    runCommand(client, command, subscriptions).then(
      (value) => emit({ obs: 'result', seq: command.seq, op: command.op, ok: true, value: value ?? null }),
      (error) => emit({ obs: 'result', seq: command.seq, op: command.op, ok: false, error: errorText(error) }),
    )
  }
}

main().catch((error) => {
  emit({ obs: 'fatal', error: errorText(error) })
  process.exit(1)
})
